//! The runtime API's session and error views and small queries, through
//! the real binary, on its Unix socket (Rust and Python clients): `show
//! sess` lists a WebSocket tunnel and a keep-alive HTTP connection with
//! their backend and server, and forgets them when they close; `show
//! errors` shows a refused request with the position of its bad byte;
//! `show backend`, `get weight` (after `set weight`) and their errors
//! answer as Debian's HAProxy 2.6 does on the same configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use common::cli;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{Reader, Script, ScriptedBackend};
use common::ws::{connect, echo};
use common::{free_port, poll_until, DemoBackend, TempDir, Wsgate};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(10);

fn config(port: u16, admin: &Path, user: &Path, server: SocketAddr, other: SocketAddr) -> String {
    format!(
        "global\n    stats socket {} level admin\n    stats socket {} level user\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
         backend app\n    server s1 {server} weight 2\n\
         backend other\n    server o1 {other}\n",
        admin.display(),
        user.display()
    )
}

/// The same exchange from Python's `socket` module.
fn python_cli(sock: &Path, command: &str) -> Option<String> {
    let script = "import socket, sys\n\
        s = socket.socket(socket.AF_UNIX)\n\
        s.connect(sys.argv[1])\n\
        s.sendall(sys.argv[2].encode() + b'\\n')\n\
        out = b''\n\
        while True:\n\
        \x20   b = s.recv(65536)\n\
        \x20   if not b: break\n\
        \x20   out += b\n\
        sys.stdout.write(out.decode())\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(sock)
        .arg(command)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_sess_lists_tunnels_and_http_connections() {
    let dir = TempDir::new("cli");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let s1 = DemoBackend::start("s1", "1h");
    let o1 = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let gate = Wsgate::start_in(dir, &config(port, &admin, &user, s1.addr, o1.addr));

    // The start-up probe's connection may still be open for a moment.
    poll_until(DEADLINE, "nothing open yet", || {
        (cli(&admin, "show sess") == "\n").then_some(())
    })
    .unwrap();
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/"), None).await;
    echo(&mut ws, "hi", "echo").await;
    // A keep-alive HTTP connection after one request.
    let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut reader = Reader::new(http.try_clone().unwrap(), DEADLINE);
    reader.read_response().unwrap();
    let http_port = http.local_addr().unwrap().port();

    let answer = poll_until(DEADLINE, "both sessions listed", || {
        let a = cli(&admin, "show sess");
        (a.lines().filter(|l| !l.is_empty()).count() == 2 && a.contains(" state=http reqs=1"))
            .then_some(a)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", cli(&admin, "show sess")));
    let lines: Vec<&str> = answer.lines().collect();
    assert!(answer.ends_with("\n\n"), "{answer:?}");
    let ws_line = lines[0];
    assert!(ws_line.starts_with("0x"), "{answer}");
    for part in [
        "proto=tcpv4 src=127.0.0.1:",
        " fe=fe be=app srv=s1 age=",
        " state=websocket reqs=1 tunnel_age=",
    ] {
        assert!(ws_line.contains(part), "{part} in {ws_line}");
    }
    // Tunnel bytes so far: the masked "hi" frame (8 bytes) up, its echo
    // down.
    let count = |key: &str| -> u64 {
        ws_line
            .split(' ')
            .find_map(|f| f.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {ws_line}"))
            .parse()
            .unwrap()
    };
    assert!(count("bytes_in=") >= 8, "{ws_line}");
    assert!(count("bytes_out=") > 20, "{ws_line}");
    assert!(
        lines[1].contains(&format!(
            "src=127.0.0.1:{http_port} fe=fe be=app srv=s1 age="
        )),
        "{answer}"
    );
    assert!(lines[1].contains(" state=http reqs=1"), "{answer}");

    // Python sees the same; the user level may not.
    if let Some(py) = python_cli(&admin, "show sess") {
        assert_eq!(py.lines().filter(|l| !l.is_empty()).count(), 2, "{py}");
    } else {
        common::skip_unless_ci("python3 is missing: no Python client");
    }
    assert_eq!(cli(&user, "show sess"), "Permission denied\n\n");

    // `shutdown session`: the WebSocket gets 1012; an HTTP connection is
    // not a tunnel; unknown ids and the user level are refused.
    let id = |line: &str| line.split(':').next().unwrap().to_string();
    let http_id = id(lines[1]);
    assert_eq!(
        cli(&admin, &format!("shutdown session {http_id}")),
        "wsgate only shuts down tunnels (WebSocket or mode tcp); this session is not one.\n\n"
    );
    assert_eq!(
        cli(&admin, "shutdown session 0xfffff"),
        "No such session (use 'show sess').\n\n"
    );
    assert_eq!(
        cli(&user, &format!("shutdown session {}", id(ws_line))),
        "Permission denied\n\n"
    );
    assert_eq!(
        cli(&admin, &format!("shutdown session {}", id(ws_line))),
        "\n"
    );
    let code = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break f.code,
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, CloseCode::Restart);

    // Closed connections leave the list.
    drop(ws);
    drop(reader);
    drop(http);
    poll_until(DEADLINE, "sessions gone", || {
        (cli(&admin, "show sess") == "\n").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", cli(&admin, "show sess"), gate.log()));
}

#[test]
fn show_errors_shows_the_refused_bytes() {
    let dir = TempDir::new("cli-errors");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let b = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let _gate = Wsgate::start_in(dir, &config(port, &admin, &user, b.addr, b.addr));
    let empty = cli(&admin, "show errors");
    assert!(empty.starts_with("Total events captured on ["), "{empty}");
    assert!(empty.ends_with("] : 0\n\n"), "{empty}");

    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");

    let answer = cli(&admin, "show errors");
    assert!(answer.contains("] : 1\n"), "{answer}");
    assert!(
        answer.contains("] frontend fe (#1): invalid request\n"),
        "{answer}"
    );
    assert!(answer.contains("event #0, src 127.0.0.1:"), "{answer}");
    assert!(answer.contains("  answered 400 ("), "{answer}");
    assert!(
        answer.contains("  len 30, error at position 6:\n"),
        "{answer}"
    );
    assert!(
        answer.contains(
            "\n  00000  GET /a\\x01b HTTP/1.1\\r\\n\n  00019  Host: x\\r\\n\n  00028  \\r\\n\n"
        ),
        "{answer}"
    );
    assert_eq!(cli(&user, "show errors"), "Permission denied\n\n");
}

#[test]
fn show_errors_shows_an_unreadable_response() {
    let dir = TempDir::new("cli-errors-resp");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let garbage = ScriptedBackend::start(Script::Garbage);
    let port = free_port();
    let _gate = Wsgate::start_in(
        dir,
        &config(port, &admin, &user, garbage.addr, garbage.addr),
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
    let answer = cli(&admin, "show errors");
    assert!(answer.contains("] : 1\n"), "{answer}");
    assert!(
        answer.contains("] backend app (#1): invalid response\n"),
        "{answer}"
    );
    assert!(
        answer.contains("  frontend fe (#1), server s1 (#1), event #0, src 127.0.0.1:"),
        "{answer}"
    );
    assert!(
        answer.contains("  answered 502 (invalid response head)\n"),
        "{answer}"
    );
    assert!(
        answer.contains(", error at position 0:\n\n  00000  "),
        "{answer}"
    );
}

/// `show backend`, `get weight`, `set weight` and their errors: the same
/// answers from wsgate and HAProxy.
#[test]
fn small_queries_answer_as_haproxy() {
    let dir = TempDir::new("cli-queries");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let b = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let _gate = Wsgate::start_in(dir, &config(port, &admin, &user, b.addr, b.addr));
    let script = [
        "show backend",
        "get weight app/s1",
        "set weight app/s1 50",
        "get weight app/s1",
        "set server app/s1 weight 25%",
        "get weight app/s1",
        "get weight app/nope",
        "get weight nope/s1",
        "get weight app",
        "set server app/s1 addr 127.0.0.2",
        "set server app/s1 addr 127.0.0.2",
        "set server app/s1 addr 127.0.0.3 port 9999",
        "set server app/s1 addr 127.0.0.3 port 9999",
        "set server app/s1 addr 127.0.0.3 port 9998",
        "set server app/s1 addr nope",
        "set server app/s1 addr 127.0.0.3 port x",
        "set server app/s1 addr",
        "set maxconn server app/s1 10",
        "set maxconn server app/nope 10",
        "set maxconn server app/s1 x",
        "set maxconn server app/s1",
        "set maxconn server app/s1 10x",
        "set maxconn server app",
        "disable health app/s1",
        "enable health app/s1",
        "disable health app/nope",
        "enable health app",
    ];
    let ours: Vec<String> = script.iter().map(|c| cli(&admin, c)).collect();
    assert_eq!(ours[0], "# name\napp\nother\n\n");
    assert_eq!(ours[1], "2 (initial 2)\n\n");
    assert_eq!(ours[3], "50 (initial 2)\n\n");
    let version = cli(&user, "show version");
    assert_eq!(version, format!("{}\n\n", env!("CARGO_PKG_VERSION")));

    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let hdir = TempDir::new("cli-haproxy");
    let hadmin = hdir.path().join("admin.sock");
    let huser = hdir.path().join("user.sock");
    let hport = free_port();
    let _h = Haproxy::start(
        &bin,
        &config(hport, &hadmin, &huser, b.addr, b.addr),
        &[SocketAddr::from(([127, 0, 0, 1], hport))],
    );
    for (cmd, mine) in script.iter().zip(&ours) {
        let theirs = cli(&hadmin, cmd);
        if theirs.ends_with("\n\n") || theirs == "\n" {
            assert_eq!(&theirs, mine, "{cmd}");
        } else {
            // HAProxy 2.6 leaves out the answer's final empty line after
            // some `set maxconn` errors; wsgate keeps the protocol's.
            assert_eq!(theirs + "\n", *mine, "{cmd}");
        }
    }
}

/// `set server addr`: new WebSockets go to the new address, the open one
/// stays on the old; `show servers state` and `show sess` follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_server_addr_moves_new_connections_only() {
    let dir = TempDir::new("cli-addr");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let d1 = DemoBackend::start("d1", "1h");
    let d2 = DemoBackend::start("d2", "1h");
    let port = free_port();
    let _gate = Wsgate::start_in(dir, &config(port, &admin, &user, d1.addr, d1.addr));
    let url = format!("ws://127.0.0.1:{port}/");
    let mut old = connect(&url, None).await;
    assert!(echo(&mut old, "a", "old").await.0.ends_with("[d1]"));

    let answer = cli(
        &admin,
        &format!("set server app/s1 addr 127.0.0.1 port {}", d2.addr.port()),
    );
    assert_eq!(
        answer,
        format!(
            "no need to change the addr, port changed from '{}' to '{}' by 'stats socket command'\n\n",
            d1.addr.port(),
            d2.addr.port()
        )
    );
    let state = cli(&admin, "show servers state app");
    assert!(state.contains(" s1 127.0.0.1 "), "{state}");
    assert!(state.contains(&format!(" {} ", d2.addr.port())), "{state}");

    let mut new = connect(&url, None).await;
    assert!(echo(&mut new, "b", "new").await.0.ends_with("[d2]"));
    assert!(echo(&mut old, "c", "old again").await.0.ends_with("[d1]"));
    assert_eq!(
        cli(&user, "set server app/s1 addr 127.0.0.1"),
        "Permission denied\n\n"
    );
}

/// `set maxconn server`: a server at its new limit gets no more
/// WebSockets (`balance first` moves on to the next), and lifting the
/// limit lets them in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_maxconn_server_limits_new_connections() {
    let dir = TempDir::new("cli-maxconn");
    let admin = dir.path().join("admin.sock");
    let d1 = DemoBackend::start("d1", "1h");
    let d2 = DemoBackend::start("d2", "1h");
    let port = free_port();
    let _gate = Wsgate::start_in(
        dir,
        &format!(
            "global\n    stats socket {} level admin\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
             backend app\n    balance first\n    server s1 {}\n    server s2 {}\n",
            admin.display(),
            d1.addr,
            d2.addr
        ),
    );
    let url = format!("ws://127.0.0.1:{port}/");
    let served = |reply: String| {
        reply
            .rsplit('[')
            .next()
            .unwrap()
            .trim_end_matches(']')
            .to_string()
    };
    let mut a = connect(&url, None).await;
    assert_eq!(served(echo(&mut a, "a", "a").await.0), "d1");
    assert_eq!(cli(&admin, "set maxconn server app/s1 1"), "\n");
    let mut b = connect(&url, None).await;
    assert_eq!(served(echo(&mut b, "b", "b").await.0), "d2", "s1 is full");
    assert_eq!(cli(&admin, "set maxconn server app/s1 0"), "\n");
    let mut c = connect(&url, None).await;
    assert_eq!(served(echo(&mut c, "c", "c").await.0), "d1", "no limit");
}

/// `disable health`: a server its checks marked DOWN counts as up and gets
/// traffic; `enable health` lets the checks mark it DOWN again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_health_keeps_a_failing_server_in() {
    let dir = TempDir::new("cli-health");
    let admin = dir.path().join("admin.sock");
    let d1 = DemoBackend::start("d1", "1h");
    // Checks go to a port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let port = free_port();
    let _gate = Wsgate::start_in(
        dir,
        &format!(
            "global\n    stats socket {} level admin\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
             backend app\n    server s1 {} check port {dead_port} inter 100 fall 1 rise 1\n",
            admin.display(),
            d1.addr
        ),
    );
    let op_state = || {
        let out = cli(&admin, "show servers state app");
        out.lines()
            .find(|l| l.split(' ').nth(3) == Some("s1"))
            .and_then(|l| l.split(' ').nth(5).map(str::to_string))
            .unwrap_or_else(|| panic!("{out}"))
    };
    poll_until(DEADLINE, "s1 DOWN", || (op_state() == "0").then_some(())).unwrap();
    assert_eq!(cli(&admin, "disable health app/s1"), "\n");
    assert_eq!(op_state(), "2", "up once its checks are off");
    let url = format!("ws://127.0.0.1:{port}/");
    let mut ws = connect(&url, None).await;
    assert!(echo(&mut ws, "x", "served").await.0.ends_with("[d1]"));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(op_state(), "2", "no check ran");
    assert_eq!(cli(&admin, "enable health app/s1"), "\n");
    poll_until(DEADLINE, "s1 DOWN again", || {
        (op_state() == "0").then_some(())
    })
    .unwrap();
}
