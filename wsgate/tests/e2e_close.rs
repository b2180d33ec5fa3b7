//! Close frames that wsgate sends itself, seen by independent peers
//! (tokio-tungstenite on both sides): SIGTERM closes every WebSocket with
//! 1001 at a message boundary and waits for the close handshake; an idle
//! WebSocket reaching `timeout tunnel` gets 1001 "idle timeout" instead of
//! a bare TCP close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, expect_close, RecordingBackend};
use common::Wsgate;

fn config(port: u16, backend: SocketAddr, tunnel: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel {tunnel}\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    server s1 {backend}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_going_away_to_both_peers() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let mut gate = Wsgate::start(&config(port, backend.addr, "1h"));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut ws = connect(&url, None).await;
        ws.send(Message::Text(format!("hello {i}").into()))
            .await
            .unwrap();
        let echo = common::ws::next_text(&mut ws, "echo before stop").await;
        assert_eq!(echo, format!("hello {i}"));
        clients.push(ws);
    }

    let stopped_at = Instant::now();
    gate.guard.signal(libc::SIGTERM);
    for (i, mut ws) in clients.into_iter().enumerate() {
        let (code, reason) = expect_close(&mut ws, &format!("client {i}")).await;
        assert_eq!(code, CloseCode::Away, "client {i}\n{}", gate.log());
        assert_eq!(reason, "server stopping");
        // Answer the close and hang up, as a browser does (tungstenite
        // sends its queued reply on the next flush).
        let _ = ws.flush().await;
        drop(ws);
    }
    let seen = backend.closes(3).await;
    assert_eq!(seen, vec![Some(1001); 3], "backend side\n{}", gate.log());

    gate.exits_cleanly();
    // The close handshakes completed, so the stop did not wait out the
    // whole grace time.
    assert!(
        stopped_at.elapsed() < Duration::from_secs(4),
        "stop took {:?}\n{}",
        stopped_at.elapsed(),
        gate.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_sends_going_away_instead_of_a_reset() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, backend.addr, "400ms"));
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
    ws.send(Message::Text("one".into())).await.unwrap();
    assert_eq!(common::ws::next_text(&mut ws, "echo").await, "one");
    let idle_from = Instant::now();
    let (code, reason) = expect_close(&mut ws, "idle client").await;
    assert_eq!(code, CloseCode::Away, "{}", gate.log());
    assert_eq!(reason, "idle timeout");
    assert!(idle_from.elapsed() >= Duration::from_millis(300));
    let seen = backend.closes(1).await;
    assert_eq!(seen, vec![Some(1001)], "backend side\n{}", gate.log());
}

#[test]
fn hard_stop_after_bounds_the_stop() {
    // A raw TCP tunnel cannot be closed with a frame: it is held until
    // `hard-stop-after`, then the process exits 0.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let holder = std::thread::spawn(move || backend.accept().map(|(s, _)| s));
    let port = common::free_port();
    let mut gate = Wsgate::start(&format!(
        "global\n    hard-stop-after 1s\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    server s1 {backend_addr}\n"
    ));
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _server_side = holder.join().unwrap().unwrap();
    assert!(
        gate.log()
            .contains("open connections get 1s (hard-stop-after)"),
        "{}",
        gate.log()
    );
    let stopped_at = Instant::now();
    gate.guard.signal(libc::SIGTERM);
    gate.exits_cleanly();
    let took = stopped_at.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "stopped after {took:?}, before hard-stop-after"
    );
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    drop(client);
}

/// Opens `n` WebSockets through the proxy, each proven by one echo.
async fn open_echoing(url: &str, n: usize) -> Vec<common::ws::Ws> {
    let mut clients = Vec::new();
    for i in 0..n {
        let mut ws = connect(url, None).await;
        ws.send(Message::Text(format!("hi {i}").into()))
            .await
            .unwrap();
        assert_eq!(
            common::ws::next_text(&mut ws, "echo").await,
            format!("hi {i}")
        );
        clients.push(ws);
    }
    clients
}

fn with_global(global: &str, rest: String) -> String {
    format!("global\n{global}{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_spread_time_spreads_the_going_away_frames() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let mut gate = Wsgate::start(&with_global(
        "    close-spread-time 2s\n    hard-stop-after 10s\n",
        config(port, backend.addr, "1h"),
    ));
    let clients = open_echoing(&format!("ws://127.0.0.1:{port}/ws"), 20).await;
    let stopped_at = Instant::now();
    gate.guard.signal(libc::SIGTERM);
    let waits = clients.into_iter().enumerate().map(|(i, mut ws)| {
        tokio::spawn(async move {
            let (code, reason) = expect_close(&mut ws, &format!("client {i}")).await;
            let at = stopped_at.elapsed();
            let _ = ws.flush().await;
            (code, reason, at)
        })
    });
    let mut times = Vec::new();
    for w in waits.collect::<Vec<_>>() {
        // A client's panic (no close frame) shows with wsgate's log.
        let (code, reason, at) = w.await.unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));
        assert_eq!(
            (code, reason.as_str()),
            (CloseCode::Away, "server stopping")
        );
        times.push(at);
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    // 20 uniform draws over 2 s: their range is below 0.5 s with
    // probability about 20 * 0.25^19, i.e. never.
    assert!(
        last - first > Duration::from_millis(500),
        "closes not spread: {times:?}\n{}",
        gate.log()
    );
    assert!(
        last < Duration::from_millis(3500),
        "closes beyond the 2 s window: {times:?}"
    );
    gate.exits_cleanly();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_spread_time_infinite_leaves_websockets_to_hard_stop_after() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let mut gate = Wsgate::start(&with_global(
        "    close-spread-time infinite\n    hard-stop-after 2s\n",
        config(port, backend.addr, "1h"),
    ));
    let mut clients = open_echoing(&format!("ws://127.0.0.1:{port}/ws"), 1).await;
    let mut ws = clients.pop().unwrap();
    let stopped_at = Instant::now();
    gate.guard.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Still carried: wsgate sends no close frame of its own.
    ws.send(Message::Text("still there".into())).await.unwrap();
    assert_eq!(
        common::ws::next_text(&mut ws, "echo during the stop").await,
        "still there"
    );
    gate.exits_cleanly();
    assert!(
        stopped_at.elapsed() >= Duration::from_millis(1800),
        "hard-stop-after ended it, not a close: {:?}",
        stopped_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_keeps_serving_after_the_stop_signal() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let mut gate = Wsgate::start(&with_global(
        "    grace 1500ms\n",
        config(port, backend.addr, "1h"),
    ));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut old = open_echoing(&url, 1).await.pop().unwrap();
    let stopped_at = Instant::now();
    gate.guard.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // During the grace a new WebSocket is still accepted and served.
    let mut new = open_echoing(&url, 1).await.pop().unwrap();
    let (code, _) = expect_close(&mut old, "old client").await;
    assert_eq!(code, CloseCode::Away);
    assert!(
        stopped_at.elapsed() >= Duration::from_millis(1400),
        "closed before the grace ended: {:?}\n{}",
        stopped_at.elapsed(),
        gate.log()
    );
    let (code, _) = expect_close(&mut new, "new client").await;
    assert_eq!(code, CloseCode::Away);
    let _ = old.flush().await;
    let _ = new.flush().await;
    drop((old, new));
    gate.exits_cleanly();
    assert!(
        !common::accepts(SocketAddr::from(([127, 0, 0, 1], port))),
        "listener closed after the stop"
    );
}
