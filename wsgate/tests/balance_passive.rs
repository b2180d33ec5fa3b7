//! Passive health (`observe`, `error-limit`, `on-error`) end to end: live
//! traffic alone marks a server DOWN while its health checks still pass,
//! and the checks bring it back. A server that starts answering 500
//! (`observe layer7`), and one whose traffic port refuses connections while
//! its check port answers (`observe layer4`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use balance_support::{demo_backend_at, served_by};
use common::{free_port, poll_until, TempDir, Wsgate};

const DEFAULTS: &str = "\
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
";

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An HTTP server named `s1` that answers 200, or 500 while `broken`;
/// counts the connections it accepted (health checks included).
struct Flaky {
    addr: SocketAddr,
    broken: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Flaky {
    fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let broken = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (b, a) = (broken.clone(), accepted.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                std::thread::spawn(move || {
                    if balance_support::read_request_head(&mut conn).is_none() {
                        return;
                    }
                    let status = if b.load(Ordering::SeqCst) {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nX-Served-By: s1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        Flaky {
            addr,
            broken,
            accepted,
        }
    }
}

fn wait_log(wsgate: &Wsgate, what: &str) {
    poll_until(Duration::from_secs(15), what, || {
        wsgate.log().contains(what).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wsgate.log()));
}

/// `observe layer7 error-limit 3 on-error mark-down`: s1 starts answering
/// 500; its TCP checks still pass, yet after three 500s in a row it is
/// DOWN ("Health analyze"), then its next check (`fastinter`) brings it
/// back.
#[test]
fn layer7_errors_mark_down_then_checks_bring_back() {
    let dir = TempDir::new("passive-l7");
    let flaky = Flaky::start();
    let a2 = loopback(free_port());
    let _s2 = demo_backend_at(a2, "s2", &dir);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    \
         server s1 {} check inter 20s fastinter 500 rise 1 observe layer7 error-limit 3 on-error mark-down\n    \
         server s2 {a2}\n",
        flaky.addr
    );
    let wsgate = Wsgate::start(&cfg);
    let proxy = loopback(port);
    // Healthy: alternation, and the 200s keep the error count at zero.
    let seen: Vec<String> = (0..4)
        .map(|_| served_by(proxy, None, "/", &[]).unwrap().1)
        .collect();
    assert_eq!(seen, ["s1", "s2", "s1", "s2"]);

    flaky.broken.store(true, Ordering::SeqCst);
    // Three 500s in a row from s1 (s2's 200s between them do not count:
    // the errors are the server's own), then nothing more is sent until
    // the health task has marked it: the mark follows the third error,
    // not a later one (the log line names the count).
    let mut errors = 0;
    for _ in 0..20 {
        let (status, _) = served_by(proxy, None, "/", &[]).unwrap();
        if status == 500 {
            errors += 1;
        }
        if errors == 3 {
            break;
        }
    }
    assert_eq!(errors, 3, "s1 answered 500 three times");
    wait_log(
        &wsgate,
        "Server app/s1 is DOWN, reason: Health analyze, info: \"Detected 3 consecutive errors, last one was: Wrong http response\"",
    );
    // The TCP check still passes: back UP within `fastinter`, not `inter`.
    flaky.broken.store(false, Ordering::SeqCst);
    wait_log(&wsgate, "Server app/s1 is UP, reason: Layer4 check passed");
}

/// `observe layer4 error-limit 2 on-error sudden-death`, `retries 0`: s1's
/// checks go to a live port (`port`), its traffic to a closed one. The
/// first two refused connections leave it one failed check from DOWN; the
/// next two take it DOWN: four 503s in all.
#[test]
fn layer4_refusals_sudden_death() {
    let dir = TempDir::new("passive-l4");
    let check_target = Flaky::start();
    let closed = loopback(free_port());
    let a2 = loopback(free_port());
    let _s2 = demo_backend_at(a2, "s2", &dir);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}    retries 0\n\nlisten app\n    bind 127.0.0.1:{port}\n    \
         server s1 {closed} check port {} inter 20s fastinter 20s rise 2 fall 3 observe layer4 error-limit 2 on-error sudden-death\n    \
         server s2 {a2}\n",
        check_target.addr.port()
    );
    let wsgate = Wsgate::start(&cfg);
    let proxy = loopback(port);
    // Wait for s1's first check, which gives it its full margin (a server
    // that was never checked falls at the first failure).
    poll_until(Duration::from_secs(5), "s1's first check", || {
        (check_target.accepted.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .unwrap();
    let mut refused = 0;
    for _ in 0..20 {
        let (status, server) = served_by(proxy, None, "/", &[]).unwrap();
        match status {
            503 => refused += 1,
            200 => assert_eq!(server, "s2"),
            other => panic!("status {other}"),
        }
        if wsgate.log().contains("Server app/s1 is DOWN") {
            break;
        }
    }
    wait_log(
        &wsgate,
        "Server app/s1 is DOWN, reason: Health analyze, info: \"Detected 2 consecutive errors, last one was: L4 unsuccessful connection\"",
    );
    assert!((4..=5).contains(&refused), "{refused} refused before DOWN");
    // DOWN: only s2 now.
    for _ in 0..4 {
        assert_eq!(
            served_by(proxy, None, "/", &[]).unwrap(),
            (200, "s2".into())
        );
    }
}
