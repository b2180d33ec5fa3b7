//! Close frames that wsgate sends itself, seen by independent peers
//! (tokio-tungstenite on both sides): SIGTERM closes every WebSocket with
//! 1001 at a message boundary and waits for the close handshake; an idle
//! WebSocket reaching `timeout tunnel` gets 1001 "idle timeout" instead of
//! a bare TCP close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, RecordingBackend, WS_DEADLINE};
use common::Wsgate;

fn config(port: u16, backend: SocketAddr, tunnel: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel {tunnel}\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    server s1 {backend}\n"
    )
}

/// Reads until a close frame arrives; returns its code and reason.
async fn expect_close(ws: &mut common::ws::Ws, context: &str) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code, frame.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("{context}: close frame without a code"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("{context}: error instead of a close frame: {e}"),
            Ok(None) => panic!("{context}: connection ended without a close frame"),
            Err(_) => panic!("{context}: no close frame within {WS_DEADLINE:?}"),
        }
    }
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

    let status = gate
        .guard
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("after SIGTERM: {e}\n{}", gate.log()));
    assert_eq!(status.code(), Some(0), "{}", gate.log());
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
    let status = gate
        .guard
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("after SIGTERM: {e}\n{}", gate.log()));
    let took = stopped_at.elapsed();
    assert_eq!(status.code(), Some(0), "{}", gate.log());
    assert!(
        took >= Duration::from_millis(900),
        "stopped after {took:?}, before hard-stop-after"
    );
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    drop(client);
}
