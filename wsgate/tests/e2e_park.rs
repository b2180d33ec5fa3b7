//! Parked tunnels (`tune.idle-park`, proxy/park.rs) through the real
//! binary, with independent peers (tokio-tungstenite, the demo backend, a
//! raw TCP echo): a tunnel idle past the delay leaves its task
//! (`wsgate_tunnels_parked` counts it) and everything that can happen to
//! it still does: a message from either peer, its `timeout tunnel` (close
//! 1001 "idle timeout"), `shutdown session` and `shutdown sessions
//! server` (1012), a reload that removes its server (1012), a stop (1001), a
//! peer's FIN, and a `mode tcp` tunnel's bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::metrics::metric_reaches;
use common::raw_ws::{close_code, masked, raw_upgrade, read_server_frame};
use common::ws::{
    connect, echo, expect_close, expected_echo, next_push, next_text, RecordingBackend,
};
use common::{DemoBackend, TempDir, Wsgate};

const PARKED: &str = "wsgate_tunnels_parked";

/// A frontend that parks tunnels idle for 100 ms, with metrics on
/// `/metrics` and the runtime API on `sock` when given.
fn config(port: u16, backend: SocketAddr, tunnel: &str, sock: Option<&std::path::Path>) -> String {
    let api = sock.map_or(String::new(), |s| {
        format!("    stats socket {} level admin\n", s.display())
    });
    format!(
        "global\n    tune.idle-park 100ms\n{api}\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel {tunnel}\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend be\n\
         backend be\n    server s1 {backend}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_websocket_carries_on_both_ways() {
    let backend = DemoBackend::start("s1", "700ms");
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, backend.addr, "1h", None));
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/"), None).await;
    let welcome = next_text(&mut ws, "welcome").await;
    assert!(welcome.contains("s1"), "{welcome}");
    for round in 0..3 {
        metric_reaches(port, PARKED, 1, &gate).await;
        // Woken by the client.
        let text = format!("round {round}");
        let (reply, _) = echo(&mut ws, &text, "echo after parking").await;
        assert_eq!(reply, expected_echo(&text, "s1"));
        metric_reaches(port, PARKED, 1, &gate).await;
        // Woken by the server (its push every 700 ms).
        let push = next_push(&mut ws, "push to a parked tunnel").await;
        assert!(push.contains("s1"), "{push}");
    }
    // A big message after parking goes through whole.
    metric_reaches(port, PARKED, 1, &gate).await;
    let big = "x".repeat(200_000);
    let (reply, _) = echo(&mut ws, &big, "big echo").await;
    assert_eq!(reply.len(), expected_echo(&big, "s1").len());
    // The client leaves while parked: the tunnel ends, nothing stays.
    metric_reaches(port, PARKED, 1, &gate).await;
    ws.close(None).await.unwrap();
    drop(ws);
    metric_reaches(port, PARKED, 0, &gate).await;
    metric_reaches(
        port,
        "wsgate_tunnels_closed_total{proxy=\"be\",reason=\"client_close\"}",
        1,
        &gate,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_websocket_gets_its_idle_timeout() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, backend.addr, "1500ms", None));
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/"), None).await;
    ws.send(Message::Text("one".into())).await.unwrap();
    assert_eq!(next_text(&mut ws, "echo").await, "one");
    metric_reaches(port, PARKED, 1, &gate).await;
    let (code, reason) = expect_close(&mut ws, "parked, idle").await;
    assert_eq!(code, CloseCode::Away, "{}", gate.log());
    assert_eq!(reason, "idle timeout");
    assert_eq!(backend.closes(1).await, vec![Some(1001)], "{}", gate.log());
}

/// Every signal that ends tunnels reaches parked ones: they hold no
/// registration of their own (backend/sessions.rs rings their set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signal_reaches_parked_websockets() {
    let backend = RecordingBackend::start(None).await;
    let other = RecordingBackend::start(None).await;
    let port = common::free_port();
    let dir = TempDir::new("park-api");
    let sock = dir.path().join("api.sock");
    let mut gate = Wsgate::start_in(dir, &config(port, backend.addr, "1h", Some(&sock)));
    let url = format!("ws://127.0.0.1:{port}/");
    let mut first = parked(&url).await;
    let mut second = parked(&url).await;
    metric_reaches(port, PARKED, 2, &gate).await;

    // `shutdown session <id>` of the first: 1012 to it, the second stays.
    let first_port = match first.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().unwrap().port(),
        _ => unreachable!("plain ws://"),
    };
    let sess = common::cli(&sock, "show sess");
    let id = sess
        .lines()
        .find(|l| l.contains(&format!("src=127.0.0.1:{first_port} ")))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no session from port {first_port}:\n{sess}"))
        .to_string();
    let answer = common::cli(&sock, &format!("shutdown session {id}"));
    assert!(answer.trim().is_empty(), "{answer}");
    let (code, reason) = expect_close(&mut first, "shut down while parked").await;
    assert_eq!(code, CloseCode::Restart, "{}", gate.log());
    assert_eq!(reason, "server unavailable");
    drop(first);
    metric_reaches(port, PARKED, 1, &gate).await;

    // `shutdown sessions server be/s1`: the second gets 1012.
    let answer = common::cli(&sock, "shutdown sessions server be/s1");
    assert!(answer.trim().is_empty(), "{answer}");
    let (code, _) = expect_close(&mut second, "server's sessions shut down while parked").await;
    assert_eq!(code, CloseCode::Restart, "{}", gate.log());
    drop(second);

    // A reload that replaces s1: a third, parked on s1, gets 1012.
    let mut third = parked(&url).await;
    metric_reaches(port, PARKED, 1, &gate).await;
    std::fs::write(&gate.config, config(port, other.addr, "1h", Some(&sock))).unwrap();
    gate.guard.signal(libc::SIGHUP);
    let (code, reason) = expect_close(&mut third, "server removed while parked").await;
    assert_eq!(code, CloseCode::Restart, "{}", gate.log());
    assert_eq!(reason, "service restart");
    drop(third);

    // A stop: a fourth, parked on the new server, gets 1001.
    let mut fourth = parked(&url).await;
    metric_reaches(port, PARKED, 1, &gate).await;
    gate.guard.signal(libc::SIGTERM);
    let (code, reason) = expect_close(&mut fourth, "stop while parked").await;
    assert_eq!(code, CloseCode::Away, "{}", gate.log());
    assert_eq!(reason, "server stopping");
    let _ = fourth.flush().await;
    drop(fourth);
    gate.exits_cleanly();
    assert_eq!(
        backend.closes(3).await,
        vec![Some(1001); 3],
        "{}",
        gate.log()
    );
    assert_eq!(other.closes(1).await, vec![Some(1001)], "{}", gate.log());
}

/// A WebSocket that has said something and gone quiet (to be parked).
async fn parked(url: &str) -> common::ws::Ws {
    let mut ws = connect(url, None).await;
    ws.send(Message::Text("hi".into())).await.unwrap();
    assert_eq!(next_text(&mut ws, "echo").await, "hi");
    ws
}

/// A raw TCP echo server: every connection echoes until EOF, then closes.
fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_tcp_tunnel_resumes_and_ends_on_fin() {
    let echo_addr = tcp_echo();
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let gate = Wsgate::start(&format!(
        "global\n    tune.idle-park 100ms\n\
         defaults\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         listen tcp\n    mode tcp\n    bind 127.0.0.1:{port}\n    server s1 {echo_addr}\n\
         frontend metrics\n    mode http\n    bind 127.0.0.1:{metrics_port}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n"
    ));
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    for word in [&b"first"[..], b"second", b"third"] {
        client.write_all(word).unwrap();
        let mut got = Vec::new();
        while got.len() < word.len() {
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0, "EOF before the echo of {word:?}\n{}", gate.log());
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, word);
        metric_reaches(metrics_port, PARKED, 1, &gate).await;
    }
    // Our FIN wakes the parked tunnel; the echo server's FIN comes back.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(client.read(&mut buf).unwrap(), 0, "{}", gate.log());
    metric_reaches(metrics_port, PARKED, 0, &gate).await;
}

/// `websocket keepalive` on a parked tunnel, with an interval (1 s) well
/// past `tune.idle-park` (100 ms): the tunnel parks between pings, the
/// pings still go out on time and keep a live client open, and a client
/// that never answers is reaped with 1001 "ping timeout" (its server too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_a_parked_websocket_and_reaps_a_dead_client() {
    let backend = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, backend.addr, "1h", None).replace(
        "    default_backend be\n",
        "    websocket keepalive 1s\n    default_backend be\n",
    ));
    // A live client: tokio-tungstenite answers pings as it reads, so it
    // keeps reading (its task) while the dead one below is reaped.
    let mut ws = parked(&format!("ws://127.0.0.1:{port}/")).await;
    metric_reaches(port, PARKED, 1, &gate).await;
    let live = tokio::spawn(async move {
        for ping in 0..3 {
            match tokio::time::timeout(common::ws::WS_DEADLINE, ws.next()).await {
                Ok(Some(Ok(Message::Ping(_)))) => {}
                other => panic!("ping {ping} to a parked tunnel: {other:?}"),
            }
        }
        ws.send(Message::Text("still here".into())).await.unwrap();
        assert_eq!(next_text(&mut ws, "after the pings").await, "still here");
    });
    // A dead one: a raw socket that never answers.
    let log = gate.log();
    let reaped = tokio::task::spawn_blocking(move || {
        let mut s = raw_upgrade(port, &masked(true, 1, b"hi"), &log);
        assert_eq!(read_server_frame(&mut s), (1, b"hi".to_vec()));
        let quiet = std::time::Instant::now();
        let (opcode, _) = read_server_frame(&mut s);
        assert_eq!(opcode, 9, "a ping first");
        let (opcode, payload) = read_server_frame(&mut s);
        assert_eq!(opcode, 8, "then a close");
        assert_eq!(close_code(&payload), Some(1001));
        assert_eq!(&payload[2..], b"ping timeout");
        quiet.elapsed()
    });
    // Both tunnels park between pings.
    metric_reaches(port, PARKED, 2, &gate).await;
    let waited = reaped.await.unwrap();
    assert!(
        waited >= Duration::from_millis(1500),
        "reaped after one interval and (most of) one timeout: {waited:?}"
    );
    assert_eq!(backend.closes(1).await, vec![Some(1001)], "{}", gate.log());
    live.await
        .unwrap_or_else(|e| panic!("the live client: {e}\n{}", gate.log()));
}
