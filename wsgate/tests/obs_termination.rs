//! The termination state (`%tsc`) of WebSocket log lines, side by side
//! with Debian's HAProxy 2.6 on the same configuration and the same
//! events: a clean close by the client (close frames) and by the server
//! (its close frame when it stops) are `----`, a client reset is `CD--`,
//! `shutdown sessions server` is `K---`, a server marked down with
//! `on-marked-down shutdown-sessions` (by its check, or put in
//! maintenance) is `D---`; and wsgate's own `PD--`
//! for a broken `websocket` limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use balance_support::{haproxy_bin, Haproxy};
use common::{cli, free_port, DemoBackend, TempDir, Wsgate};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(20);

/// The backends of one proxy: one per event, so that stopping or
/// failing one leaves the others.
struct Backends {
    app: DemoBackend,
    stop: DemoBackend,
    kill: DemoBackend,
    down: DemoBackend,
    maint: DemoBackend,
    /// What `down`'s health check connects to; dropped to fail it.
    check: Option<TcpListener>,
}

fn backends() -> Backends {
    Backends {
        app: DemoBackend::start("app", "1h"),
        stop: DemoBackend::start("stop", "1h"),
        kill: DemoBackend::start("kill", "1h"),
        down: DemoBackend::start("down", "1h"),
        maint: DemoBackend::start("maint", "1h"),
        check: Some(TcpListener::bind("127.0.0.1:0").unwrap()),
    }
}

/// `%B` in the line makes HAProxy log a tunnel when it ends: with only
/// fields known at the `101` it logs then (`----`, whatever follows).
fn config(port: u16, syslog: SocketAddr, sock: &Path, b: &Backends, limited: bool) -> String {
    let check_port = b.check.as_ref().unwrap().local_addr().unwrap().port();
    let (limit_rule, limit_backend) = if limited {
        (
            "    use_backend limited if { path /limit }\n".to_owned(),
            format!(
                "backend limited\n    websocket max-message-size 1k\n    server s5 {}\n",
                b.app.addr
            ),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        "global\n    log {syslog} format raw local0\n    stats socket {} level admin\n\
         defaults\n    mode http\n    log global\n    log-format \"%HU %b/%s %ST %tsc %B\"\n\
         \x20   timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n\
         \x20   use_backend stop if {{ path /stop }}\n    use_backend kill if {{ path /kill }}\n\
         \x20   use_backend down if {{ path /down }}\n    use_backend maint if {{ path /maint }}\n\
         {limit_rule}    default_backend app\n\
         backend app\n    server s1 {}\n\
         backend stop\n    server s2 {}\n\
         backend kill\n    server s3 {}\n\
         backend down\n    server s4 {} check port {check_port} inter 300ms fall 1 rise 1 on-marked-down shutdown-sessions\n\
         backend maint\n    server s6 {} on-marked-down shutdown-sessions\n\
         {limit_backend}",
        sock.display(),
        b.app.addr,
        b.stop.addr,
        b.kill.addr,
        b.down.addr,
        b.maint.addr,
    )
}

/// Waits until the WebSocket ends (a close frame, or the stream ends),
/// then drops it (the client's FIN ends a cleanly closed tunnel).
async fn until_closed(mut ws: common::ws::Ws, what: &str) {
    tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the WebSocket stayed open"));
}

/// An upgrade on a raw socket, then a reset (SO_LINGER 0).
fn reset_after_upgrade(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(
        b"GET /rst HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    std::thread::sleep(Duration::from_millis(200));
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Runs every event through one proxy; the `%tsc` logged per path.
async fn events(
    addr: SocketAddr,
    syslog: UdpSocket,
    sock: &Path,
    b: &mut Backends,
    limited: bool,
) -> BTreeMap<String, String> {
    let url = |path: &str| format!("ws://{addr}{path}");
    // A clean close by the client.
    let mut ws = common::ws::connect(&url("/clean"), None).await;
    common::ws::echo(&mut ws, "hi", "clean").await;
    ws.close(None).await.unwrap();
    until_closed(ws, "clean").await;
    // A reset by the client.
    tokio::task::spawn_blocking(move || reset_after_upgrade(addr))
        .await
        .unwrap();
    // The server closes: the demo backend sends 1001 when it stops.
    let mut ws = common::ws::connect(&url("/stop"), None).await;
    common::ws::echo(&mut ws, "hi", "stop").await;
    b.stop.guard.signal(libc::SIGTERM);
    until_closed(ws, "stop").await;
    // `shutdown sessions server`.
    let mut ws = common::ws::connect(&url("/kill"), None).await;
    common::ws::echo(&mut ws, "hi", "kill").await;
    let answer = cli(sock, "shutdown sessions server kill/s3");
    assert_eq!(answer, "\n");
    until_closed(ws, "kill").await;
    // The server is marked down by its check.
    let mut ws = common::ws::connect(&url("/down"), None).await;
    common::ws::echo(&mut ws, "hi", "down").await;
    b.check = None;
    until_closed(ws, "down").await;
    // Maintenance with `on-marked-down shutdown-sessions`.
    let mut ws = common::ws::connect(&url("/maint"), None).await;
    common::ws::echo(&mut ws, "hi", "maint").await;
    assert_eq!(cli(sock, "disable server maint/s6"), "\n");
    until_closed(ws, "maint").await;
    let mut want = 6;
    if limited {
        // A message over `websocket max-message-size`.
        let mut ws = common::ws::connect(&url("/limit"), None).await;
        common::ws::echo(&mut ws, "hi", "limit").await;
        ws.send(Message::text("x".repeat(4096))).await.unwrap();
        until_closed(ws, "limit").await;
        want += 1;
    }
    tokio::task::spawn_blocking(move || {
        let mut lines = BTreeMap::new();
        let end = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        while lines.len() < want {
            assert!(Instant::now() < end, "log lines so far: {lines:?}");
            if let Ok(n) = syslog.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() == 5 && f[2] == "101" {
                    lines.insert(f[0].to_owned(), f[3].to_owned());
                }
            }
        }
        lines
    })
    .await
    .unwrap()
}

fn syslog() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_termination_states_beside_haproxy() {
    let dir = TempDir::new("termination");
    let sock = dir.path().join("admin.sock");
    let mut ours = backends();
    let port = free_port();
    let log = syslog();
    let cfg = config(port, log.local_addr().unwrap(), &sock, &ours, true);
    let gate = Wsgate::start_in(dir, &cfg);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mine = events(addr, log, &sock, &mut ours, true).await;
    let expected = [
        ("/clean", "----"),
        ("/down", "D---"),
        ("/kill", "K---"),
        ("/limit", "PD--"),
        ("/maint", "D---"),
        ("/rst", "CD--"),
        ("/stop", "----"),
    ];
    assert_eq!(
        mine,
        expected
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
        "{}",
        gate.log()
    );

    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let hdir = TempDir::new("termination-haproxy");
    let hsock = hdir.path().join("admin.sock");
    let mut theirs = backends();
    let hport = free_port();
    let hlog = syslog();
    let hcfg = config(hport, hlog.local_addr().unwrap(), &hsock, &theirs, false);
    let haddr = SocketAddr::from(([127, 0, 0, 1], hport));
    let _h = Haproxy::start(&bin, &hcfg, &[haddr]);
    let theirs_lines = events(haddr, hlog, &hsock, &mut theirs, false).await;
    let mut mine_shared = mine.clone();
    mine_shared.remove("/limit");
    assert_eq!(mine_shared, theirs_lines);
}
