//! `slowstart`: a server that health checks bring back UP takes a growing
//! share of new connections instead of a full one at once, end to end
//! through the real binary and demo backends that report their name.
//! Never at start-up: both servers share evenly from the first request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use balance_support::{demo_backend_at, open_websocket, served_by};
use common::{free_port, poll_until, ChildGuard, TempDir, Wsgate};

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

/// How many of `n` requests `s2` served.
fn served_by_s2(proxy: SocketAddr, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let (status, server) = served_by(proxy, None, "/", &[]).unwrap();
            assert_eq!(status, 200, "served by {server:?}");
            server == "s2"
        })
        .count()
}

/// Two servers, `s2` with `slowstart`; returns wsgate, the proxy address,
/// s2's address and both backends.
fn start(
    balance: &str,
    slowstart: &str,
    dir: &TempDir,
) -> (Wsgate, SocketAddr, SocketAddr, [Option<ChildGuard>; 2]) {
    let a1 = loopback(free_port());
    let a2 = loopback(free_port());
    let b1 = demo_backend_at(a1, "s1", dir);
    let b2 = demo_backend_at(a2, "s2", dir);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    balance {balance}\n    \
         default-server check inter 100 fall 1 rise 1\n    \
         server s1 {a1}\n    server s2 {a2} slowstart {slowstart}\n"
    );
    let wsgate = Wsgate::start(&cfg);
    (wsgate, loopback(port), a2, [Some(b1), Some(b2)])
}

fn wait_log(wsgate: &Wsgate, what: &str) {
    poll_until(Duration::from_secs(10), what, || {
        wsgate.log().contains(what).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wsgate.log()));
}

/// `balance roundrobin`, `slowstart 8s`: right after s2 comes back its
/// weight is 1/16 of s1's, then 3/16, 5/16... (HAProxy's steps of one
/// second), so of 40 requests sent at once it serves a handful, not 20;
/// once the period is over the two alternate again.
#[test]
fn roundrobin_share_grows_after_comeback() {
    let dir = TempDir::new("slowstart-rr");
    let (wsgate, proxy, a2, mut backends) = start("roundrobin", "8s", &dir);
    // Not at start-up: an even share at once.
    assert_eq!(served_by_s2(proxy, 20), 10);

    backends[1] = None;
    wait_log(&wsgate, "Server app/s2 is DOWN");
    assert_eq!(served_by_s2(proxy, 6), 0);
    backends[1] = Some(demo_backend_at(a2, "s2", &dir));
    wait_log(&wsgate, "Server app/s2 is UP");
    // Within the first two seconds s2's weight is at most 3/16 (of 19 in
    // all); allow up to the third step (5/21 of 40 is 9.5) for a slow
    // machine, against 20 without slowstart.
    let early = served_by_s2(proxy, 40);
    eprintln!("s2 served {early} of 40 requests right after coming back");
    assert!(
        (1..=10).contains(&early),
        "s2 served {early} of 40 requests right after coming back"
    );
    // After the period, alternation again.
    poll_until(Duration::from_secs(20), "s2 to get a full share", || {
        (served_by_s2(proxy, 20) == 10).then_some(())
    })
    .unwrap();
}

/// `balance leastconn`, `slowstart 20s`: s1 holds six WebSockets when s2
/// comes back. Without slowstart the next ones would all go to s2 (it has
/// none); at 1/16 of the weight its one connection weighs more than s1's
/// seven, so new WebSockets keep going to s1 in the first seconds.
#[test]
fn leastconn_does_not_flood_the_comeback() {
    let dir = TempDir::new("slowstart-lc");
    let (wsgate, proxy, a2, mut backends) = start("leastconn", "20s", &dir);
    backends[1] = None;
    wait_log(&wsgate, "Server app/s2 is DOWN");
    let mut held = Vec::new();
    for _ in 0..6 {
        let (ws, server) = open_websocket(proxy).unwrap();
        assert_eq!(server, "s1");
        held.push(ws);
    }
    backends[1] = Some(demo_backend_at(a2, "s2", &dir));
    wait_log(&wsgate, "Server app/s2 is UP");
    let mut after = Vec::new();
    for _ in 0..4 {
        let (ws, server) = open_websocket(proxy).unwrap();
        after.push(server);
        held.push(ws);
    }
    assert_eq!(after, vec!["s1"; 4], "{}", wsgate.log());
}

/// `slowstart 20s` with `maxconn 10`: the limit in force ramps from 1
/// (HAProxy: `max(1, maxconn * (100 * elapsed / period) / 100)`, still 1
/// for the first four seconds). Before the server went down two WebSockets
/// were open at once; right after it is back, one open WebSocket fills it
/// and a request waits in the queue, then gets 503 after `timeout queue`.
#[test]
fn maxconn_ramps_from_one() {
    let dir = TempDir::new("slowstart-maxconn");
    let addr = loopback(free_port());
    let first = demo_backend_at(addr, "s1", &dir);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}    timeout queue 300ms\n\nlisten app\n    bind 127.0.0.1:{port}\n    \
         server s1 {addr} check inter 100 fall 1 rise 1 maxconn 10 slowstart 20s\n"
    );
    let wsgate = Wsgate::start(&cfg);
    let proxy = loopback(port);
    let both = (
        open_websocket(proxy).unwrap(),
        open_websocket(proxy).unwrap(),
    );
    assert_eq!(served_by(proxy, None, "/", &[]).unwrap().0, 200);
    drop(both);

    drop(first); // stops s1
    wait_log(&wsgate, "Server app/s1 is DOWN");
    let _again = demo_backend_at(addr, "s1", &dir);
    wait_log(&wsgate, "Server app/s1 is UP");
    let (ws, server) = open_websocket(proxy).unwrap();
    assert_eq!(server, "s1");
    let (status, _) = served_by(proxy, None, "/", &[]).unwrap();
    assert_eq!(
        status,
        503,
        "the one slot in force is taken\n{}",
        wsgate.log()
    );
    drop(ws);
    poll_until(Duration::from_secs(5), "the slot to be free again", || {
        (served_by(proxy, None, "/", &[]).ok()?.0 == 200).then_some(())
    })
    .unwrap();
}
