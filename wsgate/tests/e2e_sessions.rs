//! Ending the tunnels of one server, end to end with independent peers
//! (tokio-tungstenite on both sides, raw TCP for mode tcp):
//! `on-marked-down shutdown-sessions` closes the WebSockets of a server its
//! checks mark down with 1012 at a message boundary (HAProxy would cut the
//! TCP connection), `on-marked-up shutdown-backup-sessions` moves clients
//! back from a backup, and the runtime API's `shutdown sessions server`
//! does it on demand (mode tcp tunnels are closed without a frame).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, next_text, RecordingBackend, Ws, WS_DEADLINE};
use common::{TempDir, Wsgate};

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n";

/// A port that health checks connect to; `None` while "down" (closed).
struct CheckPort {
    addr: SocketAddr,
    listener: Option<TcpListener>,
}

impl CheckPort {
    fn open() -> CheckPort {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        CheckPort {
            addr: listener.local_addr().unwrap(),
            listener: Some(listener),
        }
    }
    fn fail(&mut self) {
        self.listener = None;
    }
    fn recover(&mut self) {
        self.listener = Some(TcpListener::bind(self.addr).unwrap());
    }
}

async fn ask(ws: &mut Ws, msg: &str) -> String {
    ws.send(Message::Text(msg.into())).await.unwrap();
    next_text(ws, msg).await
}

/// The next close frame (code, reason); panics on anything else ending.
async fn close_of(ws: &mut Ws, context: &str) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return (f.code, f.reason.to_string()),
            Ok(Some(Ok(_))) => {}
            other => panic!("{context}: no close frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marked_down_server_gets_its_websockets_closed_with_1012() {
    let s1 = RecordingBackend::start(Some("s1")).await;
    let s2 = RecordingBackend::start(Some("s2")).await;
    let mut check1 = CheckPort::open();
    let check2 = CheckPort::open();
    let port = common::free_port();
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}backend be\n    balance roundrobin\n\
         \x20   server s1 {} check addr 127.0.0.1 port {} inter 100 fall 2 rise 2 on-marked-down shutdown-sessions\n\
         \x20   server s2 {} check addr 127.0.0.1 port {} inter 100 fall 2 rise 2\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n",
        s1.addr,
        check1.addr.port(),
        s2.addr,
        check2.addr.port()
    ));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut a = connect(&url, None).await;
    let mut b = connect(&url, None).await;
    assert_eq!(ask(&mut a, "x").await, "s1:x");
    assert_eq!(ask(&mut b, "y").await, "s2:y");

    check1.fail();
    let (code, reason) = close_of(&mut a, "client on s1").await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Restart, "server unavailable"),
        "{}",
        gate.log()
    );
    let _ = a.flush().await;
    assert_eq!(s1.closes(1).await, vec![Some(1001)], "s1 got 1001");
    assert!(
        gate.log().contains("Server be/s1 is DOWN"),
        "{}",
        gate.log()
    );
    // The other server's WebSocket is untouched, and reconnects land there.
    assert_eq!(ask(&mut b, "still").await, "s2:still");
    let mut again = connect(&url, None).await;
    assert_eq!(ask(&mut again, "z").await, "s2:z");
    assert_eq!(s2.closes(0).await, Vec::<Option<u16>>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_back_up_closes_backup_sessions() {
    let primary = RecordingBackend::start(Some("p")).await;
    let backup = RecordingBackend::start(Some("b")).await;
    let mut check = CheckPort::open();
    let port = common::free_port();
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}backend be\n\
         \x20   server p {} check addr 127.0.0.1 port {} inter 100 fall 2 rise 2 on-marked-up shutdown-backup-sessions\n\
         \x20   server b {} backup\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n",
        primary.addr,
        check.addr.port(),
        backup.addr
    ));
    let url = format!("ws://127.0.0.1:{port}/ws");
    check.fail();
    common::poll_until(WS_DEADLINE, "p DOWN", || {
        gate.log().contains("Server be/p is DOWN").then_some(())
    })
    .unwrap();
    let mut on_backup = connect(&url, None).await;
    assert_eq!(ask(&mut on_backup, "x").await, "b:x");

    check.recover();
    let (code, _) = close_of(&mut on_backup, "client on the backup").await;
    assert_eq!(code, CloseCode::Restart, "{}", gate.log());
    assert!(gate.log().contains("Server be/p is UP"), "{}", gate.log());
    let mut back = connect(&url, None).await;
    assert_eq!(ask(&mut back, "y").await, "p:y");
}

/// One runtime API command on a Unix socket; the answer.
fn cli(path: &std::path::Path, line: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_shutdown_sessions_server() {
    let ws_server = RecordingBackend::start(Some("w")).await;
    // A mode tcp server that holds its connection open.
    let tcp_server = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp_server.local_addr().unwrap();
    // Every accepted connection goes to the test (the start-up probe of
    // the harness is one of them).
    let (conns_tx, conns) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in tcp_server.incoming().flatten() {
            if conns_tx.send(s).is_err() {
                return;
            }
        }
    });
    let dir = TempDir::new("shutdown-sessions");
    let sock = dir.path().join("admin.sock");
    let (http_port, tcp_port) = (common::free_port(), common::free_port());
    let gate = Wsgate::start_in(
        dir,
        &format!(
            "global\n    stats socket {} level admin\n{DEFAULTS}\
             frontend fe\n    bind 127.0.0.1:{http_port}\n    default_backend be\n\
             backend be\n    server w {}\n\
             listen raw\n    mode tcp\n    bind 127.0.0.1:{tcp_port}\n    server t {tcp_addr}\n",
            sock.display(),
            ws_server.addr
        ),
    );
    common::poll_until(WS_DEADLINE, "the stats socket", || {
        sock.exists().then_some(())
    })
    .unwrap();
    let mut ws = connect(&format!("ws://127.0.0.1:{http_port}/"), None).await;
    assert_eq!(ask(&mut ws, "x").await, "w:x");
    let mut raw = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    raw.write_all(b"ping").unwrap();
    // The server-side connection that carries the client's bytes.
    let _held = loop {
        let mut c = conns
            .recv_timeout(WS_DEADLINE)
            .expect("the tunnel's connection");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = [0u8; 4];
        if c.read_exact(&mut got).is_ok() {
            assert_eq!(&got, b"ping");
            break c;
        }
    };
    let sock2 = sock.clone();
    let answer = tokio::task::spawn_blocking(move || cli(&sock2, "shutdown sessions server be/w"))
        .await
        .unwrap();
    assert_eq!(answer, "\n", "{}", gate.log());
    let (code, reason) = close_of(&mut ws, "WebSocket").await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Restart, "server unavailable")
    );

    assert_eq!(
        cli(&sock, "shutdown sessions server be/nope"),
        "No such server.\n\n"
    );
    // mode tcp: the tunnel is closed, no frame to send.
    let answer = cli(&sock, "shutdown sessions server raw/t");
    assert_eq!(answer, "\n");
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    // EOF (not the read timeout): wsgate closed the client side.
    let n = raw.read_to_end(&mut rest);
    assert!(matches!(n, Ok(0)), "the client side closed: {n:?} {rest:?}");
}
