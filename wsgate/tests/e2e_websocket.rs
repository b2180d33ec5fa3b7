//! wsgate's `websocket` settings through the real binary, seen by
//! independent peers: tokio-tungstenite and Python `websockets` clients, a
//! raw socket for malformed frames, a tokio-tungstenite backend that
//! records the close code it gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;

use common::ws::{RecordingBackend, WS_DEADLINE};
use common::Wsgate;

fn config(port: u16, backend: SocketAddr, settings: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n{settings}    default_backend be\n\
         backend be\n    server s1 {backend}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_sees_1009() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, be.addr, "    websocket max-frame-size 100\n"));
    let script = r#"
import asyncio, sys
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
async def main():
    async with connect(sys.argv[1]) as ws:
        await ws.send("ok")
        assert await ws.recv() == "ok"
        await ws.send("y" * 500)
        try:
            await ws.recv()
        except ConnectionClosed as e:
            print("closed", e.rcvd.code, e.rcvd.reason)
asyncio.run(main())
"#;
    let Some(stdout) = run_python(script, port, &gate) else {
        return;
    };
    assert_eq!(
        stdout.trim(),
        "closed 1009 message too big",
        "{}",
        gate.log()
    );
}

/// A raw handshake; returns the stream after the 101 (and the status).
fn raw_handshake(port: u16, extra: &str) -> (std::net::TcpStream, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WS_DEADLINE)).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Runs a Python `websockets` client script with the proxy's URL as its
/// argument; its stdout, or `None` when the module is missing outside CI.
fn run_python(script: &str, port: u16, gate: &Wsgate) -> Option<String> {
    run_python_with(script, &[format!("ws://127.0.0.1:{port}/ws")], gate)
}

/// [`run_python`] with the script's arguments given.
fn run_python_with(script: &str, args: &[String], gate: &Wsgate) -> Option<String> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'websockets'") && !common::in_ci() {
        eprintln!("SKIPPED: Python websockets is not installed");
        return None;
    }
    assert!(
        out.status.success(),
        "python client failed: {stderr}\n{}",
        gate.log()
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A raw handshake with `extra` headers must get `status`.
fn expect_handshake(port: u16, extra: &str, status: u16, gate: &Wsgate) {
    let (_, head) = raw_handshake(port, extra);
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "{extra:?}: {head}\n{}",
        gate.log()
    );
}

const GOOD_KEY: &str =
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_bad_handshakes_before_the_server() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, be.addr, "    websocket strict\n"));
    let (_, head) = raw_handshake(
        port,
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}\n{}", gate.log());
    assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
    let (_, head) = raw_handshake(port, "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert_eq!(be.accepted(), 0, "the server was contacted");
    let (_, head) = raw_handshake(port, GOOD_KEY);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_closes_unmasked_client_frames_with_1002() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, be.addr, "    websocket strict\n"));
    let (mut s, head) = raw_handshake(port, GOOD_KEY);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    // An unmasked text frame "hi": clients must mask (RFC 6455 §5.1).
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let mut frame = [0u8; 2];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 0x88, "a close frame\n{}", gate.log());
    let mut payload = vec![0u8; usize::from(frame[1] & 0x7f)];
    s.read_exact(&mut payload).unwrap();
    assert_eq!(&payload[..2], &1002u16.to_be_bytes());
    assert_eq!(&payload[2..], b"protocol error");
    drop(s);
    assert_eq!(be.closes(1).await, vec![Some(1001)], "{}", gate.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_origin_refuses_other_origins_with_403() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        be.addr,
        "    websocket allow-origin https://app.example.com https://*.example.org\n",
    ));
    for (origin, status) in [
        ("https://app.example.com", 101),
        ("https://a.b.example.org", 101),
        ("https://evil.example.com", 403),
        ("https://example.org", 403),
    ] {
        expect_handshake(
            port,
            &format!("{GOOD_KEY}Origin: {origin}\r\n"),
            status,
            &gate,
        );
    }
    expect_handshake(port, GOOD_KEY, 403, &gate);
    assert_eq!(be.accepted(), 2, "only allowed handshakes reach the server");
}

#[test]
fn check_mode_marks_the_extension_and_rejects_bad_values() {
    let dir = common::TempDir::new("wscfg");
    let good = dir.write(
        "good.cfg",
        config(
            1,
            "127.0.0.1:2".parse().unwrap(),
            "    websocket max-message-size 64k\n",
        ),
    );
    let (status, out) = common::run_wsgate(
        &["-c".as_ref(), "-f".as_ref(), good.as_os_str()],
        WS_DEADLINE,
    );
    assert!(status.success(), "{out}");
    assert!(out.contains("wsgate extension"), "{out}");
    let bad = dir.write(
        "bad.cfg",
        config(
            1,
            "127.0.0.1:2".parse().unwrap(),
            "    websocket allow-origin example.com\n    websocket max-frame-size lots\n",
        ),
    );
    let (status, out) = common::run_wsgate(
        &["-c".as_ref(), "-f".as_ref(), bad.as_os_str()],
        WS_DEADLINE,
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("bad.cfg:9:") && out.contains("invalid origin"),
        "{out}"
    );
    assert!(
        out.contains("bad.cfg:10:") && out.contains("invalid size"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_keeps_a_quiet_python_client_past_timeout_tunnel() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    // timeout tunnel alone would close the idle WebSocket after 700 ms; the
    // pings (answered by the client library) keep it alive.
    let gate = Wsgate::start(
        &config(port, be.addr, "    websocket keepalive 200ms timeout 2s\n")
            .replace("timeout tunnel 1h", "timeout tunnel 700ms"),
    );
    let script = r#"
import asyncio, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1]) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
        await asyncio.sleep(2.0)
        await ws.send("after")
        print(await ws.recv())
asyncio.run(main())
"#;
    let Some(stdout) = run_python(script, port, &gate) else {
        return;
    };
    assert_eq!(stdout.trim(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_closes_a_client_that_does_not_answer() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        be.addr,
        "    websocket keepalive 100ms timeout 300ms\n",
    ));
    let (mut s, head) = raw_handshake(port, GOOD_KEY);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let started = std::time::Instant::now();
    let mut read_frame = || {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let mut payload = vec![0u8; usize::from(h[1] & 0x7f)];
        s.read_exact(&mut payload).unwrap();
        (h[0], payload)
    };
    let (ping, _) = read_frame();
    assert_eq!(ping, 0x89, "a ping first\n{}", gate.log());
    let (close, payload) = read_frame();
    assert_eq!(close, 0x88, "then a close\n{}", gate.log());
    assert_eq!(&payload[..2], &1001u16.to_be_bytes());
    assert_eq!(&payload[2..], b"ping timeout");
    assert!(started.elapsed() >= std::time::Duration::from_millis(350));
    assert_eq!(be.closes(1).await, vec![Some(1001)], "{}", gate.log());
}

/// The same Origin policy in plain HAProxy syntax (`acl` + `http-request
/// deny`): the file is checked by HAProxy itself when it is installed, and
/// wsgate refuses other Origins with 403 before contacting the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_deny_in_haproxy_syntax() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let cfg = config(
        port,
        be.addr,
        "    acl is_ws hdr(Upgrade) -i websocket\n    \
         http-request deny if is_ws !{ hdr(origin) -m str https://app.example.com }\n",
    );
    let gate = Wsgate::start(&cfg);
    if let Some(Err(stderr)) = common::haproxy_check(&gate.config) {
        panic!("haproxy -c refused the file:\n{stderr}");
    }
    for (origin, status) in [
        ("https://app.example.com", 101),
        ("https://evil.example.com", 403),
    ] {
        expect_handshake(
            port,
            &format!("{GOOD_KEY}Origin: {origin}\r\n"),
            status,
            &gate,
        );
    }
    expect_handshake(port, GOOD_KEY, 403, &gate);
    // Plain requests are not WebSocket handshakes: the rule lets them through.
    let status = common::http::status_of(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        b"GET / HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example.com\r\n\r\n",
        "plain request",
    );
    assert_ne!(status, 403, "{}", gate.log());
    assert_eq!(be.accepted(), 2, "denied handshakes never reach the server");
}

/// permessage-deflate end to end: a Python `websockets` server and client
/// (both compress by default) through `websocket strict` and a message
/// limit. The 101 accepts the extension, so RSV1 passes on each message's
/// first frame (a fragmented message's continuation carries none); the
/// limit counts wire (compressed) bytes: 20,000 repeated letters pass a
/// 1k limit, 3,000 random bytes do not (1009 to the client, 1001 to the
/// server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_messages_pass_strict_and_limits_count_wire_bytes() {
    let backend = common::free_port();
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        SocketAddr::from(([127, 0, 0, 1], backend)),
        "    websocket strict\n    websocket max-message-size 1k\n",
    ));
    let script = r#"
import asyncio, os, sys
from websockets.asyncio.server import serve
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
ended = asyncio.Event()
async def echo(ws):
    try:
        async for m in ws:
            await ws.send(m)
    except ConnectionClosed:
        pass
    print("server got", ws.protocol.close_rcvd.code)
    ended.set()
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1])):
        async with connect(sys.argv[2]) as ws:
            print("extension", ws.response.headers["Sec-WebSocket-Extensions"].split(";")[0])
            big = "a" * 20000
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(["b" * 5000, "c" * 5000])
            assert await ws.recv() == "b" * 5000 + "c" * 5000
            print("compressed messages passed")
            await ws.send(os.urandom(3000))
            try:
                await ws.recv()
            except ConnectionClosed as e:
                print("client got", e.rcvd.code, e.rcvd.reason)
        await asyncio.wait_for(ended.wait(), 15)
asyncio.run(main())
"#;
    let args = [backend.to_string(), format!("ws://127.0.0.1:{port}/ws")];
    let Some(stdout) = run_python_with(script, &args, &gate) else {
        return;
    };
    // The two peers' closes are printed in either order.
    let mut lines: Vec<_> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "client got 1009 message too big",
            "compressed messages passed",
            "extension permessage-deflate",
            "server got 1001",
        ],
        "{}",
        gate.log()
    );
}

/// `websocket allow-origin` with a real client setting its Origin (Python
/// `websockets`' `origin=`): the allowed one is echoed, the other refused
/// with 403 before the server is contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_origins_are_checked() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        be.addr,
        "    websocket allow-origin https://*.example.com\n",
    ));
    let script = r#"
import asyncio, sys
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
async def main():
    for origin in ["https://app.example.com", "https://evil.example.net"]:
        try:
            async with connect(sys.argv[1], origin=origin) as ws:
                await ws.send("hi")
                print(origin, "echo", await ws.recv())
        except InvalidStatus as e:
            print(origin, "refused", e.response.status_code)
asyncio.run(main())
"#;
    let Some(stdout) = run_python(script, port, &gate) else {
        return;
    };
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "https://app.example.com echo hi",
            "https://evil.example.net refused 403"
        ],
        "{}",
        gate.log()
    );
    assert_eq!(
        be.accepted(),
        1,
        "the refused handshake never reached the server"
    );
}
