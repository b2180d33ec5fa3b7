//! Why tunnels closed and how long they lived, through the real binary:
//! WebSockets (tokio-tungstenite) closed by the client, by `shutdown
//! sessions server` on the runtime API, by a reload that removed their
//! server and by `timeout tunnel`; `/metrics` is read with Prometheus' own
//! Python parser (`prometheus_client`) when installed, and checked for
//! `wsgate_tunnels_closed_total{reason}` and the
//! `wsgate_tunnel_duration_seconds` histogram.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, echo, Ws, WS_DEADLINE};
use common::{free_port, poll_until, DemoBackend, TempDir, Wsgate};

const DEADLINE: Duration = Duration::from_secs(10);

fn config(port: u16, sock: &Path, servers: &[&DemoBackend], idle: &DemoBackend) -> String {
    let servers: String = servers
        .iter()
        .map(|b| format!("    server {} {}\n", b.name, b.addr))
        .collect();
    format!(
        "global\n    stats socket {sock} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 60s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n\
         \x20   http-request use-service prometheus-exporter if {{ path /metrics }}\n\
         \x20   use_backend idle if {{ path_beg /idle }}\n    default_backend app\n\
         backend app\n    balance first\n{servers}\
         backend idle\n    timeout tunnel 1s\n    server i1 {}\n",
        idle.addr,
        sock = sock.display()
    )
}

/// `/metrics` as `series -> value`, parsed by `prometheus_client` when it
/// is installed (then every series has `{}`, labels sorted).
fn scrape(port: u16) -> HashMap<String, f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (_, body) = raw.split_once("\r\n\r\n").unwrap();
    common::metrics::prometheus_client_parse(body).unwrap_or_else(|| {
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_string(), value.parse().unwrap())
            })
            .collect()
    })
}

/// Series names as `prometheus_client` prints them: labels sorted.
fn closed(reason: &str, proxy: &str) -> String {
    format!("wsgate_tunnels_closed_total{{proxy=\"{proxy}\",reason=\"{reason}\"}}")
}

async fn close_code(ws: &mut Ws, context: &str) -> CloseCode {
    loop {
        match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return f.code,
            Ok(Some(Ok(_))) => {}
            other => panic!("{context}: no close frame: {other:?}"),
        }
    }
}

/// Reads on until the close handshake is over (tungstenite answers a
/// close frame while polled), then closes TCP.
async fn finish(mut ws: Ws) {
    tokio::time::timeout(WS_DEADLINE, async { while ws.next().await.is_some() {} })
        .await
        .unwrap();
}

fn wait_for(port: u16, series: &str, want: f64) -> HashMap<String, f64> {
    let mut last = HashMap::new();
    let got = poll_until(DEADLINE, series, || {
        last = scrape(port);
        (last.get(series) == Some(&want)).then_some(())
    });
    if got.is_err() {
        panic!("{series} != {want}: {last:?}");
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_closed_by_reason_and_their_lifetimes() {
    let dir = TempDir::new("tunnels");
    let sock = dir.path().join("admin.sock");
    let s1 = DemoBackend::start("s1", "1h");
    let s2 = DemoBackend::start("s2", "1h");
    let i1 = DemoBackend::start("i1", "1h");
    let port = free_port();
    let gate = Wsgate::start_in(dir, &config(port, &sock, &[&s1, &s2], &i1));
    let url = format!("ws://127.0.0.1:{port}/");

    // The client closes.
    let mut a = connect(&url, None).await;
    echo(&mut a, "a", "a").await;
    a.close(None).await.unwrap();
    finish(a).await;
    wait_for(port, &closed("client_close", "app"), 1.0);

    // `shutdown sessions server`: 1012.
    let mut b = connect(&url, None).await;
    echo(&mut b, "b", "b").await;
    assert_eq!(cli(&sock, "shutdown sessions server app/s1"), "\n");
    assert_eq!(close_code(&mut b, "shutdown").await, CloseCode::Restart);
    finish(b).await;
    wait_for(port, &closed("shutdown_sessions", "app"), 1.0);

    // A reload that removes s1: 1012 too, counted as `reload`.
    let mut c = connect(&url, None).await;
    let (reply, _) = echo(&mut c, "c", "c").await;
    assert!(reply.ends_with("[s1]"), "{reply}");
    std::fs::write(&gate.config, config(port, &sock, &[&s2], &i1)).unwrap();
    let answer = cli(&sock, "reload");
    assert!(answer.contains("Success=1"), "{answer}\n{}", gate.log());
    assert_eq!(close_code(&mut c, "reload").await, CloseCode::Restart);
    finish(c).await;
    wait_for(port, &closed("reload", "app"), 1.0);

    // `timeout tunnel 1s` on the idle backend.
    let mut d = connect(&format!("ws://127.0.0.1:{port}/idle"), None).await;
    echo(&mut d, "d", "d").await;
    assert_eq!(close_code(&mut d, "idle").await, CloseCode::Away);
    finish(d).await;
    let m = wait_for(port, &closed("timeout", "idle"), 1.0);

    for reason in ["server_close", "stop", "error", "limit"] {
        assert_eq!(m.get(&closed(reason, "app")), Some(&0.0), "{reason}: {m:?}");
    }
    // Lifetimes: a, b, c under a second each (reload keeps the backend's
    // counters); d between 1 s and 10 s.
    // `prometheus_client` sorts labels; wsgate writes `proxy` first.
    let bucket = |proxy: &str, le: &str| {
        let sorted =
            format!("wsgate_tunnel_duration_seconds_bucket{{le=\"{le}\",proxy=\"{proxy}\"}}");
        let ours =
            format!("wsgate_tunnel_duration_seconds_bucket{{proxy=\"{proxy}\",le=\"{le}\"}}");
        *m.get(&sorted)
            .or_else(|| m.get(&ours))
            .unwrap_or_else(|| panic!("{sorted}: {m:?}"))
    };
    let count =
        |proxy: &str| m[&format!("wsgate_tunnel_duration_seconds_count{{proxy=\"{proxy}\"}}")];
    let sum = |proxy: &str| m[&format!("wsgate_tunnel_duration_seconds_sum{{proxy=\"{proxy}\"}}")];
    assert_eq!(count("app"), 3.0, "{m:?}");
    assert_eq!(bucket("app", "+Inf"), 3.0);
    assert_eq!(count("idle"), 1.0);
    assert_eq!(bucket("idle", "1"), 0.0, "{m:?}");
    assert_eq!(bucket("idle", "10"), 1.0, "{m:?}");
    assert!(sum("idle") >= 1.0 && sum("idle") < 10.0, "{m:?}");
}
