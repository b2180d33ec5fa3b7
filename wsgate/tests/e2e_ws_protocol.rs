//! `websocket strict`'s RFC 6455 frame checks through the real binary, in
//! both directions, each seen by two independent peers: the offender (a
//! raw socket, since no WebSocket library sends these frames) gets close
//! 1002, and the other side (a tokio-tungstenite peer) gets 1001. What
//! makes the checks cheap (frame headers only, close payloads ≤ 125 bytes)
//! is in `ws::frame`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::SocketAddr;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use common::raw_ws::{
    client_frames, close_code, close_payload, frame, masked, raw_backend, raw_upgrade,
    read_server_frame,
};
use common::ws::{connect, expect_close, RecordingBackend, WS_DEADLINE};
use common::Wsgate;

/// A strict frontend; `backends[i]` serves path `/i`, the first one any
/// other path.
fn config(port: u16, backends: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    websocket strict\n"
    );
    for i in 0..backends.len() {
        cfg += &format!("    use_backend b{i} if {{ path /{i} }}\n");
    }
    cfg += "    default_backend b0\n";
    for (i, addr) in backends.iter().enumerate() {
        cfg += &format!("backend b{i}\n    server s {addr}\n");
    }
    cfg
}

/// What a client may not send (RFC 6455 §5.1–5.5, §7.4), after a good
/// message: each closes the connection.
fn client_violations() -> Vec<(&'static str, Vec<u8>)> {
    let mut inside_message = masked(false, 1, b"open ");
    inside_message.extend(masked(true, 1, b"new message"));
    let mut cases = vec![
        ("RSV1 without an extension", frame(0xc1, true, b"x")),
        ("RSV3", frame(0x91, true, b"x")),
        ("ping of 126 bytes", frame(0x89, true, &[0u8; 126])),
        ("fragmented ping", frame(0x09, true, b"p")),
        ("reserved data opcode 3", frame(0x83, true, b"x")),
        ("reserved control opcode 11", frame(0x8b, true, b"")),
        ("continuation without a start", frame(0x80, true, b"x")),
        ("new message inside a fragmented one", inside_message),
        ("close with a 1-byte payload", frame(0x88, true, &[0x03])),
        (
            "close reason not UTF-8",
            frame(0x88, true, &close_payload(1000, b"bye \xff")),
        ),
    ];
    for code in [999, 1004, 1005, 1006, 1015, 2000, 5000] {
        let name = format!("close code {code}").leak();
        cases.push((name, frame(0x88, true, &close_payload(code, b"bye"))));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_breaking_the_protocol_gets_1002_and_the_server_1001() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, &[be.addr]));
    let cases = client_violations();
    for (i, (name, bad)) in cases.into_iter().enumerate() {
        let log = gate.log();
        tokio::task::spawn_blocking(move || {
            let mut s = raw_upgrade(port, &[], &log);
            s.write_all(&masked(true, 1, b"hello")).unwrap();
            assert_eq!(read_server_frame(&mut s), (1, b"hello".to_vec()), "{name}");
            s.write_all(&bad).unwrap();
            let (opcode, payload) = read_server_frame(&mut s);
            assert_eq!(opcode, 8, "{name}: a close frame");
            assert_eq!(close_code(&payload), Some(1002), "{name}");
            assert_eq!(&payload[2..], b"protocol error", "{name}");
        })
        .await
        .unwrap();
        let closes = be.closes(i + 1).await;
        assert_eq!(closes.len(), i + 1, "{name}: the server's connection ended");
        assert_eq!(closes[i], Some(1001), "{name}\n{}", gate.log());
    }
    // The checks refuse what is wrong, not every close: a client's close
    // with a code it may send, and a UTF-8 reason, goes through.
    let log = gate.log();
    let n = be.closes(0).await.len();
    tokio::task::spawn_blocking(move || {
        let mut s = raw_upgrade(port, &[], &log);
        let reason = "fin ✓".as_bytes();
        s.write_all(&frame(0x88, true, &close_payload(4000, reason)))
            .unwrap();
        let (opcode, payload) = read_server_frame(&mut s);
        assert_eq!((opcode, close_code(&payload)), (8, Some(4000)), "{log}");
    })
    .await
    .unwrap();
    assert_eq!(be.closes(n + 1).await[n], Some(4000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_breaking_the_protocol_gets_1002_and_the_client_1001() {
    let cases: [(&str, Vec<u8>); 5] = [
        ("masked frame", frame(0x81, true, b"hi")),
        ("RSV1 without an extension", frame(0xc1, false, b"hi")),
        (
            "close code 1006",
            frame(0x88, false, &close_payload(1006, b"")),
        ),
        ("close with a 1-byte payload", frame(0x88, false, &[0x03])),
        (
            "close reason not UTF-8",
            frame(0x88, false, &close_payload(1001, b"\xc3")),
        ),
    ];
    let (addrs, received): (Vec<_>, Vec<_>) = cases
        .iter()
        .map(|(_, bad)| raw_backend(bad.clone()))
        .unzip();
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, &addrs));
    for (i, ((name, _), got)) in cases.iter().zip(received).enumerate() {
        let mut ws = connect(&format!("ws://127.0.0.1:{port}/{i}"), None).await;
        let (code, reason) = expect_close(&mut ws, name).await;
        assert_eq!(code, CloseCode::Away, "{name}\n{}", gate.log());
        assert_eq!(reason, "peer violated the WebSocket policy", "{name}");
        drop(ws);
        let got = tokio::task::spawn_blocking(move || got.recv_timeout(WS_DEADLINE))
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("{name}: the server's connection never ended"));
        let frames = client_frames(&got);
        let (opcode, payload) = frames.last().expect("a frame to the server");
        assert_eq!(*opcode, 8, "{name}: {frames:?}");
        assert_eq!(close_code(payload), Some(1002), "{name}");
        assert_eq!(&payload[2..], b"protocol error", "{name}");
    }
}
