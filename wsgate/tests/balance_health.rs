//! Health checks, backup servers and `leastconn` levelling (queueing is
//! in balance_queue.rs), end to end through the real binary and demo backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use balance_support::{
    demo_backend_at, haproxy_bin, open_websocket, served_by, Haproxy, SwitchableServer,
};
use common::{free_port, poll_until, skip_unless_ci, TempDir, Wsgate};

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

fn servers_seen(proxy: SocketAddr, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| {
            let (status, server) = served_by(proxy, None, "/health", &[]).unwrap();
            assert_eq!(status, 200, "served by {server:?}");
            server
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Kill a server: after `fall` failed checks it is logged DOWN in
/// HAProxy's words and gets no traffic; restarted, it is back after
/// `rise` good checks.
#[test]
fn down_after_fall_checks_up_after_rise() {
    let dir = TempDir::new("health");
    let addrs: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let mut backends: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Some(demo_backend_at(*a, &format!("s{}", i + 1), &dir)))
        .collect();
    let port = free_port();
    let mut cfg = format!(
        "{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    option httpchk GET /health\n"
    );
    for (i, a) in addrs.iter().enumerate() {
        cfg.push_str(&format!(
            "    server s{} {a} check inter 100 fall 2 rise 3\n",
            i + 1
        ));
    }
    let wsgate = Wsgate::start(&cfg);
    let proxy = loopback(port);
    assert_eq!(servers_seen(proxy, 6), set(&["s1", "s2", "s3"]));

    backends[1] = None; // kills s2
                        // Refused at connect (Layer4), or reset by the dying server in the
                        // middle of a check that had connected (Layer7), as HAProxy says.
    poll_until(Duration::from_secs(10), "s2 to be marked DOWN", || {
        let log = wsgate.log();
        ["Layer4", "Layer7"]
            .iter()
            .any(|l| {
                log.contains(&format!(
                    "Server app/s2 is DOWN, reason: {l} connection problem"
                ))
            })
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wsgate.log()));
    assert!(
        wsgate.log().contains("2 active and 0 backup servers left"),
        "{}",
        wsgate.log()
    );
    assert_eq!(servers_seen(proxy, 12), set(&["s1", "s3"]));

    backends[1] = Some(demo_backend_at(addrs[1], "s2", &dir));
    poll_until(Duration::from_secs(10), "s2 to be marked UP", || {
        wsgate
            .log()
            .contains("Server app/s2 is UP, reason: Layer7 check passed, code: 200")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wsgate.log()));
    assert_eq!(servers_seen(proxy, 6), set(&["s1", "s2", "s3"]));
}

/// Backup servers take over only when every active server is down, the
/// first one alone unless `option allbackups`.
#[test]
fn backup_failover_and_failback() {
    let dir = TempDir::new("backup");
    let addrs: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let names = ["main", "spare1", "spare2"];
    let mut backends: Vec<_> = addrs
        .iter()
        .zip(names)
        .map(|(a, n)| Some(demo_backend_at(*a, n, &dir)))
        .collect();
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    \
         server main {} check inter 100 fall 1 rise 1\n    \
         server spare1 {} backup\n    server spare2 {} backup\n",
        addrs[0], addrs[1], addrs[2]
    );
    let wsgate = Wsgate::start(&cfg);
    let proxy = loopback(port);
    assert_eq!(servers_seen(proxy, 4), set(&["main"]));
    backends[0] = None;
    poll_until(Duration::from_secs(10), "main to be DOWN", || {
        wsgate
            .log()
            .contains("Server app/main is DOWN")
            .then_some(())
    })
    .unwrap();
    assert_eq!(servers_seen(proxy, 4), set(&["spare1"]));
    backends[0] = Some(demo_backend_at(addrs[0], "main", &dir));
    poll_until(Duration::from_secs(10), "main to be UP", || {
        wsgate.log().contains("Server app/main is UP").then_some(())
    })
    .unwrap();
    assert_eq!(servers_seen(proxy, 4), set(&["main"]));
}

/// `option allbackups`: with the active server in maintenance, every
/// backup takes traffic (without it, only the first), as in HAProxy 2.6.
#[test]
fn allbackups_uses_every_backup() {
    let dir = TempDir::new("allbackups");
    let addrs: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    let _backends: Vec<_> = addrs
        .iter()
        .zip(["main", "spare1", "spare2"])
        .map(|(a, n)| demo_backend_at(*a, n, &dir))
        .collect();
    for (option, expected) in [
        ("", &["spare1"][..]),
        ("    option allbackups\n", &["spare1", "spare2"][..]),
    ] {
        let config = |port: u16| {
            format!(
                "{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n{option}    \
                 server main {} disabled\n    server spare1 {} backup\n    server spare2 {} backup\n",
                addrs[0], addrs[1], addrs[2]
            )
        };
        balance_support::wsgate_then_haproxy(&config, &|proxy, who| {
            assert_eq!(servers_seen(proxy, 6), set(expected), "{who} {option:?}");
        });
    }
}

/// Health flapping, side by side with HAProxy 2.6 (`fall 3 rise 2`,
/// `inter 1s fastinter 700 downinter 1500`): `fall - 1` failures keep the
/// server UP, the `fall`-th takes it DOWN; while DOWN the checks come every
/// `downinter`; one success after a failure does not bring it back, exactly
/// `rise` in a row do. Each check's answer is scripted; the state is read
/// from what a request gets (503 while DOWN).
#[test]
fn flapping_follows_fall_rise_and_downinter() {
    let server = SwitchableServer::start(200, "ok");
    let config = |port: u16| {
        format!(
            "{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    option httpchk\n    \
             server s {} check inter 1s fastinter 700 downinter 1500 fall 3 rise 2\n",
            server.addr
        )
    };
    balance_support::wsgate_then_haproxy(&config, &|proxy, who| {
        let status = || served_by(proxy, None, "/x", &[]).unwrap().0;
        let answered = || server.scripted().len();
        let wait_checks = |n: usize| {
            poll_until(Duration::from_secs(20), "the scripted checks", || {
                (answered() >= n).then_some(())
            })
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        };
        server.script_checks(&[200, 500, 500, 200, 500, 500, 500, 200, 500, 200, 200]);
        wait_checks(3);
        assert_eq!(status(), 200, "{who}: UP after fall - 1 failures");
        wait_checks(6);
        assert_eq!(status(), 200, "{who}: UP after fall - 1 failures again");
        wait_checks(7);
        poll_until(Duration::from_secs(5), "DOWN", || {
            (status() == 503).then_some(())
        })
        .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(answered(), 7, "{who}: DOWN at the fall-th failure");
        wait_checks(8);
        assert_eq!(status(), 503, "{who}: one success is not rise 2");
        wait_checks(10);
        assert_eq!(status(), 503, "{who}: one success after a failure neither");
        wait_checks(11);
        poll_until(Duration::from_secs(5), "UP", || {
            (status() == 200).then_some(())
        })
        .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(answered(), 11, "{who}: UP at the rise-th success");
        let at = server.scripted();
        for down in [6, 8] {
            let gap = at[down + 1].0 - at[down].0;
            assert!(
                gap >= Duration::from_millis(1300),
                "{who}: while DOWN, checks every downinter (1.5 s), not {gap:?}"
            );
        }
    });
}

/// `leastconn` counts open WebSockets: a server that comes back gets the
/// new WebSockets until it is level with the others.
#[test]
fn leastconn_levels_a_recovered_server() {
    let dir = TempDir::new("leastconn");
    let addrs: Vec<SocketAddr> = (0..3).map(|_| loopback(free_port())).collect();
    // s3 is down at first.
    let _s1 = demo_backend_at(addrs[0], "s1", &dir);
    let _s2 = demo_backend_at(addrs[1], "s2", &dir);
    let port = free_port();
    let mut cfg =
        format!("{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    balance leastconn\n");
    for (i, a) in addrs.iter().enumerate() {
        cfg.push_str(&format!(
            "    server s{} {a} check inter 100 fall 1 rise 1\n",
            i + 1
        ));
    }
    let wsgate = Wsgate::start(&cfg);
    poll_until(Duration::from_secs(10), "s3 to be DOWN", || {
        wsgate.log().contains("Server app/s3 is DOWN").then_some(())
    })
    .unwrap();
    let proxy = loopback(port);
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(open_websocket(proxy).unwrap());
    }
    let on = |name: &str, list: &[(std::net::TcpStream, String)]| {
        list.iter().filter(|(_, s)| s == name).count()
    };
    assert_eq!((on("s1", &open), on("s2", &open)), (3, 3));
    let _s3 = demo_backend_at(addrs[2], "s3", &dir);
    poll_until(Duration::from_secs(10), "s3 to be UP", || {
        wsgate.log().contains("Server app/s3 is UP").then_some(())
    })
    .unwrap();
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(open_websocket(proxy).unwrap());
    }
    assert_eq!(
        on("s3", &more),
        3,
        "new WebSockets go to s3 until it is level"
    );
    more.push(open_websocket(proxy).unwrap());
    more.push(open_websocket(proxy).unwrap());
    more.push(open_websocket(proxy).unwrap());
    assert_eq!(
        (on("s1", &more), on("s2", &more), on("s3", &more)),
        (1, 1, 4),
        "then round robin among equals"
    );
}

/// Each backend checks the same server with another expectation (`name`,
/// check lines).
const EXPECTATIONS: &[(&str, &str)] = &[
    ("plain", "option httpchk"),
    (
        "status",
        "option httpchk GET /st\n    http-check expect status 404",
    ),
    (
        "rstatus",
        "option httpchk GET /rs\n    http-check expect rstatus ^5",
    ),
    (
        "string",
        "option httpchk GET /str\n    http-check expect string alive",
    ),
    (
        "range",
        "option httpchk GET /range\n    http-check expect ! status 200-299,404",
    ),
];

fn http_check_config(port: u16, server: SocketAddr) -> String {
    let mut cfg = format!("{DEFAULTS}\nfrontend fe\n    bind 127.0.0.1:{port}\n");
    for (name, _) in EXPECTATIONS {
        cfg.push_str(&format!(
            "    use_backend {name} if {{ path_beg /{name}/ }}\n"
        ));
    }
    for (name, check) in EXPECTATIONS {
        cfg.push_str(&format!(
            "backend {name}\n    {check}\n    server s {server} check inter 100 fall 1 rise 1\n"
        ));
    }
    cfg
}

/// Drives the server through answers and waits until the proxy on `port`
/// has each backend UP or DOWN as expected (a DOWN backend answers 503,
/// which the server never sends); returns the log lines `log` shows.
fn follow_the_server(port: u16, server: &SwitchableServer, log: &dyn Fn() -> String, who: &str) {
    // (status, body, backends UP): the others are DOWN.
    let phases: &[(u16, &str, &[&str])] = &[
        (200, "alive", &["plain", "string"]),
        (404, "gone", &["status"]),
        (500, "alive", &["rstatus", "string", "range"]),
        (200, "alive", &["plain", "string"]),
    ];
    for (status, body, up) in phases {
        server.set(*status, body);
        let state = || -> Vec<&str> {
            EXPECTATIONS
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| {
                    let (got, _) =
                        served_by(loopback(port), None, &format!("/{name}/x"), &[]).unwrap();
                    got != 503
                })
                .collect()
        };
        poll_until(Duration::from_secs(15), "the checks to follow", || {
            (state() == *up).then_some(())
        })
        .unwrap_or_else(|e| {
            panic!(
                "{who}, server answering {status} {body}: UP {:?}, expected {up:?}: {e}\n{}",
                state(),
                log()
            )
        });
    }
}

/// `option httpchk` (bare: `OPTIONS / HTTP/1.0`) and `http-check expect
/// status|rstatus|string`, negated and with code ranges: one server
/// answering 200, 404 then 500 takes each backend DOWN and UP as in HAProxy
/// 2.6, which sends the same request lines and logs the same reasons.
#[test]
fn http_check_expectations_follow_the_server() {
    let server = SwitchableServer::start(200, "alive");
    let port = free_port();
    let wsgate = Wsgate::start(&http_check_config(port, server.addr));
    follow_the_server(port, &server, &|| wsgate.log(), "wsgate");
    let mut logs = vec![("wsgate", wsgate.log())];
    let mut lines = vec![("wsgate", server.lines())];
    drop(wsgate);

    if let Some(bin) = haproxy_bin() {
        let server = SwitchableServer::start(200, "alive");
        let ha_port = free_port();
        let haproxy = Haproxy::start(
            &bin,
            &http_check_config(ha_port, server.addr),
            &[loopback(ha_port)],
        );
        follow_the_server(ha_port, &server, &|| haproxy.guard.output(), "haproxy 2.6");
        logs.push(("haproxy 2.6", haproxy.guard.output()));
        lines.push(("haproxy 2.6", server.lines()));
    } else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
    }
    for (who, log) in logs {
        for reason in [
            "Server status/s is DOWN, reason: Layer7 wrong status, code: 200",
            "Server rstatus/s is UP, reason: Layer7 check passed, code: 500",
            "Server string/s is DOWN, reason: Layer7 invalid response, info: \"HTTP content check did not match\"",
            "Server plain/s is DOWN, reason: Layer7 wrong status, code: 404",
            "Server range/s is UP, reason: Layer7 check passed, code: 500",
        ] {
            assert!(log.contains(reason), "{who} did not log {reason:?}:\n{log}");
        }
    }
    for (who, seen) in lines {
        let checks: BTreeSet<String> = seen.into_iter().filter(|l| !l.contains("/x ")).collect();
        assert_eq!(
            checks,
            set(&[
                "OPTIONS / HTTP/1.0",
                "GET /st HTTP/1.0",
                "GET /rs HTTP/1.0",
                "GET /str HTTP/1.0",
                "GET /range HTTP/1.0"
            ]),
            "{who}'s check request lines"
        );
    }
}
