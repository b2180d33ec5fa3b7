//! `option tcp-check` end to end: a Redis-like fake server (`PING\r\n` →
//! `+PONG`) that the test can switch to a wrong answer; the script's
//! checks take the server DOWN, with HAProxy's wording of the failed step,
//! and back UP; traffic follows. A second script uses `connect port`,
//! `send-binary`, `expect binary`, `rstring` and `!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, poll_until, Wsgate};

/// A Redis-like server: answers each `PING\r\n` with `+PONG\r\n` (or
/// `-ERR` while `healthy` is false, or when `require_proxy` and the
/// connection did not start with a PROXY line), and records what it
/// received.
struct FakeRedis {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl FakeRedis {
    fn start() -> FakeRedis {
        FakeRedis::start_with(false)
    }

    fn start_with(require_proxy: bool) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (healthy.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (h, s) = (h.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 512];
                    let mut proxied = false;
                    while let Ok(n) = conn.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        s.lock().unwrap().extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                            let line: Vec<u8> = buf.drain(..end + 2).collect();
                            if line.starts_with(b"PROXY TCP4 ") {
                                proxied = true;
                                continue;
                            }
                            let healthy = h.load(Ordering::SeqCst) && (proxied || !require_proxy);
                            let answer: &[u8] = match (&line[..], healthy) {
                                (b"PING\r\n", true) => b"+PONG\r\n",
                                (b"PING\r\n", false) => b"-ERR loading the dataset\r\n",
                                _ => b"-ERR unknown command\r\n",
                            };
                            if conn.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        FakeRedis {
            addr,
            healthy,
            seen,
        }
    }
}

fn wait_log(wsgate: &Wsgate, what: &str) {
    poll_until(Duration::from_secs(15), what, || {
        wsgate.log().contains(what).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wsgate.log()));
}

/// One PING through the proxy: the answer, or `None` when the proxy
/// closed the connection (no server).
fn ping_through(proxy: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
    }
}

#[test]
fn redis_ping_script_marks_down_then_up() {
    let redis = FakeRedis::start();
    let port = free_port();
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout check 1s\n\n\
         listen redis\n    bind 127.0.0.1:{port}\n    option tcp-check\n    \
         tcp-check comment \"PING check\"\n    tcp-check send PING\\r\\n\n    \
         tcp-check expect string +PONG\n    \
         server r1 {} check inter 200 fall 2 rise 2\n",
        redis.addr
    );
    let wsgate = Wsgate::start(&cfg);
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    // The script ran: the server got exactly the PING line.
    poll_until(Duration::from_secs(10), "a check PING", || {
        redis
            .seen
            .lock()
            .unwrap()
            .starts_with(b"PING\r\n")
            .then_some(())
    })
    .unwrap();
    assert_eq!(ping_through(proxy).as_deref(), Some("+PONG\r\n"));

    redis.healthy.store(false, Ordering::SeqCst);
    wait_log(
        &wsgate,
        // Redis keeps the connection open: as in HAProxy, the expect
        // waits for more and the check ends as a Layer7 timeout.
        "Server redis/r1 is DOWN, reason: Layer7 timeout at step 3 of tcp-check (expect string '+PONG') comment: 'PING check'",
    );
    assert_eq!(ping_through(proxy), None, "no server while DOWN");

    redis.healthy.store(true, Ordering::SeqCst);
    wait_log(
        &wsgate,
        "Server redis/r1 is UP, reason: Layer7 check passed, info: \"(tcp-check)\"",
    );
    assert_eq!(ping_through(proxy).as_deref(), Some("+PONG\r\n"));
}

/// `connect port` sends the checks to another port than the traffic;
/// `send-binary`, `expect binary`, `expect rstring` and `expect !` judge
/// the answers; with `min-recv` a wrong answer is a mismatch at once
/// (Layer7 invalid response) instead of a wait. A refused connect is a
/// Layer4 failure of step 1.
#[test]
fn binary_regex_and_negated_steps_on_another_port() {
    let redis = FakeRedis::start();
    // Traffic would go to a port nobody listens on: only the checks reach
    // the fake server.
    let traffic = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout check 1s\n\n\
         backend redis\n    option tcp-check\n    \
         tcp-check connect port {}\n    \
         tcp-check send-binary 50494e470d0a\n    \
         tcp-check expect min-recv 5 binary 2b504f4e47 comment \"binary pong\"\n    \
         tcp-check send PING\\r\\n\n    \
         tcp-check expect min-recv 4 ! string -ERR\n    \
         tcp-check send PING\\r\\n\n    \
         tcp-check expect rstring ^\\+P[O]NG\n    \
         server r1 {traffic} check inter 200 fall 2 rise 2\n\n\
         backend gone\n    option tcp-check\n    tcp-check connect port {}\n    \
         server g1 {traffic} check inter 200 fall 2 rise 2\n\n\
         frontend fe\n    bind 127.0.0.1:{}\n    default_backend redis\n",
        redis.addr.port(),
        free_port(),
        free_port(),
    );
    let wsgate = Wsgate::start(&cfg);
    wait_log(
        &wsgate,
        "Server gone/g1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\" at step 1 of tcp-check (connect)",
    );
    // Three PINGs per check, in order.
    poll_until(Duration::from_secs(10), "a whole script", || {
        redis
            .seen
            .lock()
            .unwrap()
            .starts_with(b"PING\r\nPING\r\nPING\r\n")
            .then_some(())
    })
    .unwrap();
    redis.healthy.store(false, Ordering::SeqCst);
    wait_log(
        &wsgate,
        "Server redis/r1 is DOWN, reason: Layer7 invalid response, info: \"TCPCHK did not match binary '2b504f4e47' at step 3 comment: 'binary pong'\"",
    );
    redis.healthy.store(true, Ordering::SeqCst);
    wait_log(
        &wsgate,
        "Server redis/r1 is UP, reason: Layer7 check passed",
    );
}

/// `tcp-check connect send-proxy`: the check connection starts with a
/// PROXY v1 line (a server behind a PROXY-protocol listener only answers
/// such connections); the same script without it gets `-ERR` and, with
/// `min-recv`, a mismatch at once.
#[test]
fn connect_send_proxy() {
    let redis = FakeRedis::start_with(true);
    let port = free_port();
    let script = |proxy: &str| {
        format!(
            "    option tcp-check\n    tcp-check connect{proxy}\n    tcp-check send PING\\r\\n\n    \
             tcp-check expect min-recv 5 string +PONG\n    server r1 {} check inter 200 fall 2 rise 2\n",
            redis.addr
        )
    };
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout check 1s\n\n\
         backend proxied\n{}\nbackend plain\n{}\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend proxied\n",
        script(" send-proxy"),
        script(""),
    );
    let wsgate = Wsgate::start(&cfg);
    wait_log(
        &wsgate,
        "Server plain/r1 is DOWN, reason: Layer7 invalid response, info: \"TCPCHK did not match content '+PONG' at step 3\"",
    );
    poll_until(Duration::from_secs(10), "a PROXY line", || {
        String::from_utf8_lossy(&redis.seen.lock().unwrap())
            .contains("PROXY TCP4 127.0.0.1 127.0.0.1 ")
            .then_some(())
    })
    .unwrap();
    // Three checks of the proxied server later it never went DOWN.
    let checks = |log: &str| log.matches("PROXY TCP4").count();
    poll_until(Duration::from_secs(10), "three proxied checks", || {
        (checks(&String::from_utf8_lossy(&redis.seen.lock().unwrap())) >= 3).then_some(())
    })
    .unwrap();
    assert!(
        !wsgate.log().contains("Server proxied/r1 is DOWN"),
        "{}",
        wsgate.log()
    );
}

/// `tcp-check connect ssl` and `connect default` (with the server's
/// `ssl`): the script talks to `openssl s_server -rev` (which sends each
/// line back reversed) over TLS. The server starts after wsgate, so the
/// checks first fail at the connect step, then pass.
#[test]
fn connect_ssl_to_openssl_s_server() {
    if Command::new("openssl").arg("version").output().is_err() {
        common::skip_unless_ci("openssl is not installed");
        return;
    }
    let dir = common::TempDir::new("tcp-check-ssl");
    let cert = common::TestCert::generate(dir.path(), "server.pem");
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = free_port();
    let script = |connect: &str| {
        format!(
            "    option tcp-check\n    tcp-check connect {connect}\n    tcp-check send GNOP+\\n\n    \
             tcp-check expect string +PONG\n    server t1 {tls} ssl verify required ca-file {} check inter 200 fall 1 rise 1\n",
            cert.ca_path.display()
        )
    };
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout check 2s\n\n\
         backend explicit\n{}\nbackend default\n{}\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend explicit\n",
        script("ssl"),
        script("default"),
    );
    let wsgate = Wsgate::start(&cfg);
    for be in ["explicit", "default"] {
        wait_log(
            &wsgate,
            &format!("Server {be}/t1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\" at step 1 of tcp-check (connect)"),
        );
    }
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-quiet", "-rev", "-accept"])
        .arg(tls.to_string())
        .arg("-cert")
        .arg(&cert.pem_path);
    let _server = common::ChildGuard::spawn(cmd, dir.path().join("s_server.log"));
    for be in ["explicit", "default"] {
        wait_log(
            &wsgate,
            &format!("Server {be}/t1 is UP, reason: Layer7 check passed, info: \"(tcp-check)\""),
        );
    }
}
