//! `maxconn` queueing end to end (issue #4), each test run against wsgate
//! and then, when installed, HAProxy 2.6 with the same configuration: a
//! WebSocket holds the only slot of a `maxconn 1` server, and what the
//! next requests get, and when, is compared; the queue length is read
//! from the stats CSV (`qcur`, `qmax`) over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use balance_support::{demo_backend_at, open_websocket, served_by, wsgate_then_haproxy};
use common::http::exchange;
use common::{free_port, poll_until, TempDir};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A `listen app` section with a stats page, one `maxconn 1` server
/// (`server_opts` added to it) and `extra` lines.
fn queue_config(
    port: u16,
    server: SocketAddr,
    queue: &str,
    extra: &str,
    server_opts: &str,
) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    \
         timeout tunnel 1h\n    timeout queue {queue}\n\n\
         listen app\n    bind 127.0.0.1:{port}\n    stats uri /stats\n{extra}    \
         server s1 {server} maxconn 1 {server_opts}\n"
    )
}

/// `qcur` and `qmax` of row `app,<svname>` of the stats CSV.
fn queue_of(proxy: SocketAddr, svname: &str) -> (u64, u64) {
    let res = exchange(
        proxy,
        b"GET /stats;csv HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let csv = res.body_str();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("no CSV header in {csv:?}"))
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r[0] == "app" && r[1] == svname)
        .unwrap_or_else(|| panic!("no row app,{svname} in\n{csv}"));
    let num = |name: &str| row[col(name)].parse::<u64>().unwrap_or(0);
    (num("qcur"), num("qmax"))
}

/// One request from another thread; its status and how long it took.
fn request_in_background(
    proxy: SocketAddr,
    target: &'static str,
) -> thread::JoinHandle<(u16, Duration)> {
    thread::spawn(move || {
        let started = Instant::now();
        let (status, _) = served_by(proxy, None, target, &[]).unwrap();
        (status, started.elapsed())
    })
}

fn wait_queue(proxy: SocketAddr, svname: &str, want: u64, who: &str) {
    poll_until(Duration::from_secs(10), "the queue length", || {
        (queue_of(proxy, svname).0 == want).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{who}: app,{svname} qcur {:?}, expected {want}: {e}",
            queue_of(proxy, svname)
        )
    });
}

/// With every server full and no hash choosing one, a request waits in
/// the backend's queue (`qcur` 1 on the BACKEND row, 0 on the server's)
/// and is served as soon as the WebSocket holding the slot closes.
#[test]
fn a_queued_request_is_counted_and_served_once_a_slot_frees() {
    let dir = TempDir::new("queue");
    let addr = loopback(free_port());
    let _s1 = demo_backend_at(addr, "s1", &dir);
    wsgate_then_haproxy(
        &|port| queue_config(port, addr, "20s", "", ""),
        &|proxy, who| {
            let (ws, server) = open_websocket(proxy).unwrap();
            assert_eq!(server, "s1", "{who}");
            let waiting = request_in_background(proxy, "/health");
            wait_queue(proxy, "BACKEND", 1, who);
            assert_eq!(
                queue_of(proxy, "s1").0,
                0,
                "{who}: not in the server's queue"
            );
            assert!(!waiting.is_finished(), "{who}: it waits");
            drop(ws);
            let (status, _) = waiting.join().unwrap();
            assert_eq!(status, 200, "{who}: served once the slot is free");
            let (qcur, qmax) = queue_of(proxy, "BACKEND");
            assert_eq!(qcur, 0, "{who}");
            assert!(qmax >= 1, "{who}: qmax {qmax}");
        },
    );
}

/// A queued request gets 503 only once `timeout queue` has passed.
#[test]
fn a_request_queued_too_long_gets_503_after_timeout_queue() {
    let dir = TempDir::new("queue-timeout");
    let addr = loopback(free_port());
    let _s1 = demo_backend_at(addr, "s1", &dir);
    let queue = Duration::from_secs(1);
    wsgate_then_haproxy(
        &|port| queue_config(port, addr, "1s", "", ""),
        &|proxy, who| {
            let (ws, _) = open_websocket(proxy).unwrap();
            let (status, took) = request_in_background(proxy, "/health").join().unwrap();
            assert_eq!(status, 503, "{who}: the only slot is held by the WebSocket");
            assert!(
                took >= queue,
                "{who}: 503 after {took:?}, before timeout queue"
            );
            drop(ws);
            poll_until(Duration::from_secs(5), "the slot to be released", || {
                let (status, _) = served_by(proxy, None, "/health", &[]).ok()?;
                (status == 200).then_some(())
            })
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        },
    );
}

/// `maxqueue 1` on a server a hash pins every request to (`balance
/// uri`, one server): the first waiting request is queued on the server,
/// the next gets 503 at once, long before `timeout queue`.
#[test]
fn beyond_maxqueue_a_request_gets_503_at_once() {
    let dir = TempDir::new("maxqueue");
    let addr = loopback(free_port());
    let _s1 = demo_backend_at(addr, "s1", &dir);
    let config = |port| queue_config(port, addr, "20s", "    balance uri\n", "maxqueue 1");
    wsgate_then_haproxy(&config, &|proxy, who| {
        let (ws, _) = open_websocket(proxy).unwrap();
        let first = request_in_background(proxy, "/health?first");
        wait_queue(proxy, "s1", 1, who);
        assert_eq!(
            queue_of(proxy, "BACKEND").0,
            0,
            "{who}: the backend's qcur counts its own queue only"
        );
        let (status, took) = request_in_background(proxy, "/health?second")
            .join()
            .unwrap();
        assert_eq!(status, 503, "{who}: the server's queue is full");
        assert!(
            took < Duration::from_secs(10),
            "{who}: refused at once, not after timeout queue ({took:?})"
        );
        assert!(!first.is_finished(), "{who}: the first still waits");
        drop(ws);
        assert_eq!(first.join().unwrap().0, 200, "{who}");
    });
}
