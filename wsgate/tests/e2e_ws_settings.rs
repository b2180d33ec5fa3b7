//! Where `websocket` settings may be written — `defaults`, `frontend`,
//! `backend`, `listen` — both size limits (1009 to the client, 1001 to
//! its server), and how a frontend's and a backend's combine (the
//! smaller limit wins; a section's own line replaces what it inherited
//! from `defaults`), through the real binary with tokio-tungstenite
//! peers; and `websocket rate-limit ... from server`, which holds the
//! server to a rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, expect_close, next_text, send, RecordingBackend};
use common::Wsgate;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n";

/// A message of `ok` bytes is echoed and one of `ok + 1` gets 1009, its
/// server 1001.
async fn limit_is(ok: usize, port: u16, be: &RecordingBackend, gate: &Wsgate, context: &str) {
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
    send(&mut ws, &"x".repeat(ok)).await;
    assert_eq!(next_text(&mut ws, context).await.len(), ok, "{context}");
    send(&mut ws, &"x".repeat(ok + 1)).await;
    let (code, _) = expect_close(&mut ws, context).await;
    assert_eq!(code, CloseCode::Size, "{context}\n{}", gate.log());
    let _ = ws.flush().await;
    drop(ws);
    assert_eq!(
        be.closes(1).await,
        vec![Some(1001)],
        "{context}\n{}",
        gate.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_apply_from_every_section_and_the_smaller_limit_wins() {
    let limit = |n: u32| format!("    websocket max-message-size {n}\n");
    // (where, frontend lines, backend lines, the limit in force)
    let cases = [
        ("frontend", &limit(1024)[..], "", 1024),
        // tokio-tungstenite sends a message as one frame.
        (
            "frontend max-frame-size",
            "    websocket max-frame-size 1k\n",
            "",
            1024,
        ),
        ("defaults", "", "", 100),
        ("backend", "", &limit(120)[..], 120),
        (
            "frontend 1000 + backend 150",
            &limit(1000)[..],
            &limit(150)[..],
            150,
        ),
        (
            "frontend 150 + backend 1000",
            &limit(150)[..],
            &limit(1000)[..],
            150,
        ),
        // Each section's own line replaces what it took from `defaults`
        // (a frontend's alone would not: its backend still has 100).
        (
            "defaults 100, overridden",
            &limit(300)[..],
            &limit(300)[..],
            300,
        ),
    ];
    for (where_, frontend, backend, ok) in cases {
        let be = RecordingBackend::start(None).await;
        let port = common::free_port();
        let defaults = if where_.starts_with("defaults") {
            format!("{DEFAULTS}{}", limit(100))
        } else {
            DEFAULTS.to_owned()
        };
        let gate = Wsgate::start(&format!(
            "{defaults}frontend fe\n    bind 127.0.0.1:{port}\n{frontend}    default_backend be\n\
             backend be\n{backend}    server s1 {}\n",
            be.addr
        ));
        limit_is(ok, port, &be, &gate, where_).await;
    }
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}listen ws\n    bind 127.0.0.1:{port}\n{}    server s1 {}\n",
        limit(80),
        be.addr
    ));
    limit_is(80, port, &be, &gate, "listen").await;
}

/// `from server`: the server's messages are counted; over the rate the
/// server gets 1008 and the client 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_over_its_rate_gets_1008_and_the_client_1001() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    websocket rate-limit 1 per 1m burst 2 from server\n    server s1 {}\n",
        be.addr
    ));
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
    // The client's own messages are not limited: it sends three at once.
    for text in ["one", "two", "three"] {
        ws.send(Message::text(text)).await.unwrap();
    }
    assert_eq!(next_text(&mut ws, "first echo").await, "one");
    assert_eq!(next_text(&mut ws, "second echo").await, "two");
    let (code, reason) = expect_close(&mut ws, "third echo").await;
    assert_eq!(code, CloseCode::Away, "{}", gate.log());
    assert_eq!(reason, "peer violated the WebSocket policy");
    drop(ws);
    assert_eq!(be.closes(1).await, vec![Some(1008)], "{}", gate.log());
}
