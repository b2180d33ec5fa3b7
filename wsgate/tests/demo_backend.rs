//! End-to-end tests of `wsgate demo-backend`: the real binary on a port
//! picked at run time, driven by tokio-tungstenite and raw HTTP/1.1.
//! No sleeps as synchronisation: readiness is a polled connect with a
//! deadline, and the child is killed on drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

const DEADLINE: Duration = Duration::from_secs(10);

/// A running `wsgate demo-backend`, killed on drop.
struct Backend {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Backend {
    /// Starts the backend; retries on another port if the one picked was
    /// taken in between (the child then exits with a bind error).
    fn start(extra: &[&str]) -> Backend {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
                .arg("demo-backend")
                .arg("--listen")
                .arg(addr.to_string())
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn wsgate demo-backend");
            let mut backend = Backend { child, addr };
            if backend.wait_ready() {
                return backend;
            }
        }
        panic!("demo-backend did not start");
    }

    /// Polls until the port accepts; false if the child exited first.
    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if TcpStream::connect(self.addr).is_ok() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5)); // polling interval, not sync
        }
        panic!(
            "demo-backend not accepting on {} after {DEADLINE:?}",
            self.addr
        );
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("message within deadline")
            .expect("stream open")
            .expect("no error");
        match msg {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads text messages, skipping pushes, until one starts with `prefix`.
async fn text_starting_with(ws: &mut Ws, prefix: &str) -> String {
    loop {
        let t = next_text(ws).await;
        if t.starts_with(prefix) {
            return t;
        }
        assert!(t.starts_with("push ") || t.starts_with("welcome"), "{t}");
    }
}

/// One raw HTTP/1.1 exchange with `Connection: close`: (status line, head, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("complete head");
    let status = head.lines().next().unwrap().to_owned();
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn welcome_and_echo_carry_the_name() {
    let b = Backend::start(&["--name", "s1"]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(b.url("/ws"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-served-by"], "s1");
    assert_eq!(next_text(&mut ws).await, "welcome [s1]");
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        text_starting_with(&mut ws, "got your message").await,
        "got your message: hello [s1]"
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn upgrade_on_any_path_and_no_suffix_without_name() {
    let b = Backend::start(&[]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(b.url("/some/where?x=1"))
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("x-served-by"));
    assert_eq!(next_text(&mut ws).await, "welcome");
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        text_starting_with(&mut ws, "got your message").await,
        "got your message: hi"
    );
}

#[tokio::test]
async fn pushes_arrive_at_the_configured_interval() {
    let b = Backend::start(&["--name", "s2", "--push-interval", "200ms"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(b.url("/")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "welcome [s2]");
    let connected = Instant::now();
    assert_eq!(next_text(&mut ws).await, "push 1 [s2]");
    let first = connected.elapsed();
    assert_eq!(next_text(&mut ws).await, "push 2 [s2]");
    assert_eq!(next_text(&mut ws).await, "push 3 [s2]");
    let third = connected.elapsed();
    // Three intervals of 200 ms: generous bounds for a loaded machine.
    assert!(
        first >= Duration::from_millis(150),
        "first push after {first:?}"
    );
    assert!(
        third >= Duration::from_millis(550),
        "third push after {third:?}"
    );
    assert!(third < Duration::from_secs(3), "third push after {third:?}");
}

#[tokio::test]
async fn binary_echo_ping_and_close() {
    let b = Backend::start(&["--name", "s3"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(b.url("/ws"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "welcome [s3]");
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::Binary(Bytes::from(payload.clone())))
        .await
        .unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"p1")))
        .await
        .unwrap();
    let (mut got_binary, mut got_pong) = (false, false);
    while !(got_binary && got_pong) {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            Message::Binary(b) => {
                assert_eq!(b.as_ref(), payload.as_slice());
                got_binary = true;
            }
            Message::Pong(p) => {
                assert_eq!(p.as_ref(), b"p1");
                got_pong = true;
            }
            Message::Text(t) => assert!(t.starts_with("push "), "{t}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A client close is answered with a close, then the stream ends.
    ws.close(None).await.unwrap();
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_) | Message::Text(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn plain_http_health_page_and_404() {
    let b = Backend::start(&["--name", "s1"]);
    let (status, head, body) = http_get(b.addr, "/health");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("X-Served-By: s1"), "{head}");
    assert_eq!(body, "ok\n");

    let (status, head, body) = http_get(b.addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(body.starts_with("<!doctype html>"));
    for id in ["status", "server", "echo", "push", "log"] {
        assert!(body.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
    }

    let (status, _, _) = http_get(b.addr, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = http_get(b.addr, "/ws");
    assert_eq!(status, "HTTP/1.1 426 Upgrade Required");
}

#[test]
fn plain_http_keep_alive_serves_several_requests() {
    let b = Backend::start(&[]);
    let mut s = TcpStream::connect(b.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // Two pipelined requests; the second asks to close.
    s.write_all(
        b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_zero() {
    let mut b = Backend::start(&["--name", "s1"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(b.url("/ws"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "welcome [s1]");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(b.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let frame = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(Message::Text(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = frame.expect("close frame with a code");
    assert_eq!(frame.code, CloseCode::Away);
    // Reading on sends our queued close reply, completing the handshake.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(DEADLINE, ws.next()).await {}
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = b.child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < DEADLINE, "backend did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await; // polling interval, not sync
    };
    assert!(exit.success(), "{exit:?}");
}
