//! `maxconn` queueing end to end (issue #4), each test run against wsgate
//! and then, when installed, HAProxy 2.6 with the same configuration: a
//! WebSocket holds the only slot of a `maxconn 1` server, and what the
//! next requests get, and when, is compared; the queue length is read
//! from the stats CSV (`qcur`, `qmax`) over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::{SocketAddr, UdpSocket};
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

/// A syslog socket, and the `listen` lines that log `option httplog`
/// lines to it.
fn syslog() -> (UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let lines = format!(
        "    log {} format raw local0\n    option httplog\n",
        socket.local_addr().unwrap()
    );
    (socket, lines)
}

/// Drops what an earlier proxy of the test logged (its process is gone:
/// every line it sent is already in the socket).
fn drain(syslog: &UdpSocket) {
    syslog.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while syslog.recv(&mut buf).is_ok() {}
    syslog.set_nonblocking(false).unwrap();
}

/// `%Tw` and `%Tc` (-1: none) of the next `option httplog` line logged for
/// a request for `path`.
fn queue_and_connect_times(syslog: &UdpSocket, path: &str, who: &str) -> (i64, i64) {
    let mut buf = [0u8; 4096];
    loop {
        let n = syslog
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{who}: no log line for {path}: {e}"));
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !line.contains(&format!("GET {path} ")) {
            continue;
        }
        // `%TR/%Tw/%Tc/%Tr/%Ta` is the word after `backend/server`.
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| w.starts_with("app/")).unwrap();
        let timers: Vec<i64> = words[at + 1]
            .split('/')
            .map(|t| t.parse().unwrap())
            .collect();
        return (timers[1], timers[2]);
    }
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
    let (syslog, log) = syslog();
    wsgate_then_haproxy(
        &|port| queue_config(port, addr, "20s", &log, ""),
        &|proxy, who| {
            drain(&syslog);
            let (ws, server) = open_websocket(proxy).unwrap();
            assert_eq!(server, "s1", "{who}");
            let waiting = request_in_background(proxy, "/health");
            wait_queue(proxy, "BACKEND", 1, who);
            assert_eq!(
                queue_of(proxy, "s1").0,
                0,
                "{who}: not in the server's queue"
            );
            // Kept in the queue at least this long, for `%Tw`.
            thread::sleep(Duration::from_millis(300));
            assert!(!waiting.is_finished(), "{who}: it waits");
            drop(ws);
            let (status, _) = waiting.join().unwrap();
            assert_eq!(status, 200, "{who}: served once the slot is free");
            let (qcur, qmax) = queue_of(proxy, "BACKEND");
            assert_eq!(qcur, 0, "{who}");
            assert!(qmax >= 1, "{who}: qmax {qmax}");
            let (tw, tc) = queue_and_connect_times(&syslog, "/health", who);
            assert!(tw >= 300, "{who}: %Tw {tw}: the time in the queue");
            assert!((0..tw).contains(&tc), "{who}: %Tc {tc}: the connect alone");
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
    let (syslog, log) = syslog();
    wsgate_then_haproxy(
        &|port| queue_config(port, addr, "1s", &log, ""),
        &|proxy, who| {
            drain(&syslog);
            let (ws, _) = open_websocket(proxy).unwrap();
            let (status, took) = request_in_background(proxy, "/health").join().unwrap();
            assert_eq!(status, 503, "{who}: the only slot is held by the WebSocket");
            assert!(
                took >= queue,
                "{who}: 503 after {took:?}, before timeout queue"
            );
            let (tw, tc) = queue_and_connect_times(&syslog, "/health", who);
            assert!(tw >= 1000, "{who}: %Tw {tw}: the whole timeout queue");
            assert_eq!(tc, -1, "{who}: no connection was made");
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
