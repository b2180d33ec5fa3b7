//! Round robin over three demo backends: six WebSockets land on s1 s2 s3
//! s1 s2 s3, and each stays pinned to its server (every echo and push on
//! it names that server) while the six are used interleaved; and
//! `shutdown sessions server` waits for the end of a message in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ws, DemoBackend, Wsgate};

fn config(port: u16, backends: &[DemoBackend]) -> String {
    let servers: String = backends
        .iter()
        .map(|b| format!("    server {} {}\n", b.name, b.addr))
        .collect();
    format!(
        "\
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
{servers}"
    )
}

/// The server a connection landed on, read from the name in its echo.
fn server_of(echo: &str) -> &str {
    echo.rsplit_once(" [")
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .unwrap_or_else(|| panic!("echo without a server name: {echo:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_websockets_round_robin_and_stay_pinned() {
    let (backends, gate, port) = tokio::task::spawn_blocking(|| {
        let backends: Vec<DemoBackend> = ["s1", "s2", "s3"]
            .iter()
            .map(|n| DemoBackend::start(n, "300ms"))
            .collect();
        let port = common::free_port();
        let gate = Wsgate::start(&config(port, &backends));
        (backends, gate, port)
    })
    .await
    .unwrap();

    let url = format!("ws://127.0.0.1:{port}/");
    let mut conns = Vec::new();
    let mut landed = Vec::new();
    for i in 0..6 {
        let mut c = ws::connect(&url, None).await;
        let (echo, _) = ws::echo(&mut c, &format!("who are you {i}"), &format!("conn {i}")).await;
        landed.push(server_of(&echo).to_string());
        conns.push(c);
    }
    assert_eq!(
        landed,
        ["s1", "s2", "s3", "s1", "s2", "s3"],
        "round robin order; wsgate log:\n{}",
        gate.log()
    );

    // Interleave: every round sends one message on each connection before
    // reading any answer, so answers from all servers are in flight at once.
    for round in 0..4 {
        for (i, c) in conns.iter_mut().enumerate() {
            ws::send(c, &format!("round {round} conn {i}")).await;
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let own = &landed[i];
            let context = format!("round {round} conn {i} (pinned to {own})");
            let text = format!("round {round} conn {i}");
            loop {
                let m = ws::next_text(c, &context).await;
                if let Some(rest) = m.strip_prefix(ws::ECHO_PREFIX) {
                    assert_eq!(m, ws::expected_echo(&text, own), "{context}: got {rest:?}");
                    break;
                }
                // A push: it must come from the pinned server only.
                assert!(m.contains(own.as_str()), "{context}: push {m:?}");
                for other in ["s1", "s2", "s3"].iter().filter(|s| *s != own) {
                    assert!(!m.contains(other), "{context}: push from {other}: {m:?}");
                }
            }
        }
    }
    drop(gate);
    drop(backends);
}

/// A WebSocket server that sends one text message in two fragments: the
/// first (`first` bytes of `a`) at once, the last (`end`) when `go` is
/// received; it tells `sent` once the first fragment is written.
fn slow_sender(
    first: usize,
    sent: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head);
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .or_else(|| {
                text.lines()
                    .find_map(|l| l.strip_prefix("sec-websocket-key: "))
            })
            .unwrap()
            .trim();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let frame = |fin_opcode: u8, payload: &[u8]| {
            let mut f = vec![fin_opcode];
            match payload.len() {
                n if n < 126 => f.push(n as u8),
                n => {
                    f.push(126);
                    f.extend_from_slice(&(n as u16).to_be_bytes());
                }
            }
            f.extend_from_slice(payload);
            f
        };
        conn.write_all(
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        conn.write_all(&frame(0x01, &vec![b'a'; first])).unwrap();
        sent.send(()).unwrap();
        go.recv().unwrap();
        conn.write_all(&frame(0x80, b"end")).unwrap();
        // Whatever comes back (the close) until the proxy hangs up.
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
    });
    addr
}

/// `shutdown sessions server` while the server is in the middle of a
/// message: the client gets the whole message, then 1012, never a message
/// cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sessions_closes_at_the_message_boundary() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let server = slow_sender(20_000, sent_tx, go_rx);
    let dir = common::TempDir::new("boundary");
    let sock = dir.path().join("admin.sock");
    let port = common::free_port();
    let _gate = Wsgate::start(&format!(
        "global\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
         backend app\n    server s1 {server}\n",
        sock.display()
    ));
    let mut client = ws::connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
    tokio::task::spawn_blocking(move || sent_rx.recv().unwrap())
        .await
        .unwrap();
    // The first fragment has been read by wsgate (its tracker has the
    // message open: `show sess` counts the bytes as they are read), then
    // the server's sessions are shut while the message is open.
    let cli_sock = sock.clone();
    tokio::task::spawn_blocking(move || {
        common::poll_until(ws::WS_DEADLINE, "the first fragment read", || {
            let sess = common::cli(&cli_sock, "show sess");
            sess.split_whitespace()
                .filter_map(|w| w.strip_prefix("bytes_out="))
                .any(|n| n.parse::<u64>().is_ok_and(|n| n >= 20_000))
                .then_some(())
        })
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));
    let answer = common::cli(&sock, "shutdown sessions server app/s1");
    assert!(answer.trim().is_empty(), "{answer:?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    go_tx.send(()).unwrap();
    let next = tokio::time::timeout(ws::WS_DEADLINE, client.next()).await;
    match next {
        Ok(Some(Ok(Message::Text(t)))) => {
            assert_eq!(t.len(), 20_003, "the whole message");
            assert!(t.ends_with("aend"));
        }
        other => panic!("expected the whole message first, got {other:?}"),
    }
    match tokio::time::timeout(ws::WS_DEADLINE, client.next()).await {
        Ok(Some(Ok(Message::Close(Some(f))))) => assert_eq!(f.code, CloseCode::Restart),
        other => panic!("expected 1012 after the message, got {other:?}"),
    }
}
