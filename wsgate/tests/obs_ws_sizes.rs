//! The WebSocket message-size histogram through the real binary: clients
//! send messages of known sizes — tokio-tungstenite one frame each, Python
//! `websockets` fragmented ones (one of them one byte past the last bucket,
//! 16 MiB) — to an echo backend; `/metrics` is parsed by `prometheus_client`
//! and `wsgate_websocket_message_size_bytes` checked bucket by bucket, per
//! frontend and backend, per sender, with its count and sum; the stats
//! page's `;json` carries the same buckets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, RecordingBackend, WS_DEADLINE};
use common::{free_port, poll_until, Wsgate};

const DEADLINE: Duration = Duration::from_secs(20);

/// The histogram's bounds, as the exposition writes them.
const LES: [&str; 9] = [
    "64", "256", "1024", "4096", "16384", "65536", "1048576", "16777216", "+Inf",
];

/// One frame each, from tokio-tungstenite.
const SINGLE: [usize; 11] = [
    1, 64, 65, 256, 257, 1000, 4096, 4097, 70_000, 300_000, 2_000_000,
];

/// Fragmented messages from Python `websockets`: their fragments' sizes.
const FRAGMENTED: [&[usize]; 3] = [&[100, 100, 100], &[8 << 20, 8 << 20, 1], &[5]];

fn config(port: u16, backend: std::net::SocketAddr) -> String {
    format!(
        "\
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s

frontend fe
    bind 127.0.0.1:{port}
    stats enable
    stats uri /stats
    http-request use-service prometheus-exporter if {{ path /metrics }}
    default_backend app

backend app
    server r1 {backend}
"
    )
}

fn get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `/metrics` parsed by `prometheus_client` (labels sorted), as
/// `series -> value`; `None` when it is not installed (outside CI).
fn scrape(port: u16) -> Option<HashMap<String, f64>> {
    common::metrics::prometheus_client_parse(&get(port, "/metrics"))
}

fn prometheus_client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends each size as one text message and checks its echo.
async fn send_single_frames(port: u16) {
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/"), None).await;
    for size in SINGLE {
        ws.send(Message::text("x".repeat(size))).await.unwrap();
        match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.len(), size),
            other => panic!("echo of {size} bytes: {other:?}"),
        }
    }
    ws.close(None).await.unwrap();
    tokio::time::timeout(WS_DEADLINE, async { while ws.next().await.is_some() {} })
        .await
        .unwrap();
}

/// Python `websockets` sends each of [`FRAGMENTED`] as one message in
/// fragments (an iterable given to `send`) and checks each echo's length.
fn send_fragmented(port: u16) {
    let messages: Vec<String> = FRAGMENTED
        .iter()
        .map(|frags| {
            let list: Vec<String> = frags.iter().map(|n| format!("'x' * {n}")).collect();
            format!("[{}]", list.join(", "))
        })
        .collect();
    let script = format!(
        "import sys\n\
         from websockets.sync.client import connect\n\
         with connect('ws://127.0.0.1:{port}/', max_size=None, open_timeout=15) as ws:\n\
         \x20   for frags in [{}]:\n\
         \x20       ws.send(iter(frags))\n\
         \x20       echo = ws.recv(timeout=15)\n\
         \x20       assert len(echo) == sum(map(len, frags)), (len(echo), list(map(len, frags)))\n\
         print('ok')\n",
        messages.join(", ")
    );
    let (status, out, err) = common::run_with_deadline(
        {
            let mut c = Command::new("python3");
            c.arg("-c").arg(script);
            c
        },
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(
        status.success() && out.trim() == "ok",
        "python: {out}\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_sizes_by_sender_in_prometheus_and_json() {
    if !prometheus_client_available() || !common::python_websockets_available() {
        common::skip_unless_ci("python3 prometheus_client or websockets is missing");
        return;
    }
    let backend = RecordingBackend::start(None).await;
    let port = free_port();
    let gate = Wsgate::start(&config(port, backend.addr));

    send_single_frames(port).await;
    tokio::task::spawn_blocking(move || send_fragmented(port))
        .await
        .unwrap();

    let sizes: Vec<u64> = SINGLE
        .iter()
        .map(|&s| s as u64)
        .chain(FRAGMENTED.iter().map(|f| f.iter().sum::<usize>() as u64))
        .collect();
    let total: u64 = sizes.iter().sum();
    let series = |name: &str, ty: &str, proxy: &str, from: &str, le: Option<&str>| {
        let le = le.map(|l| format!("le=\"{l}\",")).unwrap_or_default();
        format!(
            "wsgate_websocket_message_size_bytes{name}{{from=\"{from}\",{le}proxy=\"{proxy}\",type=\"{ty}\"}}"
        )
    };
    // Both tunnels have ended (their counts are added then).
    let want_count = series("_count", "backend", "app", "server", None);
    let mut last = HashMap::new();
    let metrics = poll_until(DEADLINE, "both tunnels counted", || {
        last = scrape(port)?;
        (last.get(&want_count) == Some(&(sizes.len() as f64))).then(|| last.clone())
    })
    .unwrap_or_else(|e| panic!("{e}: {last:?}\n{}", gate.log()));

    for (ty, proxy) in [("frontend", "fe"), ("backend", "app")] {
        for from in ["client", "server"] {
            for le in LES {
                let bound = le.parse::<u64>().unwrap_or(u64::MAX);
                let want = sizes.iter().filter(|&&s| s <= bound).count() as f64;
                let name = series("_bucket", ty, proxy, from, Some(le));
                assert_eq!(metrics.get(&name), Some(&want), "{name}: {metrics:?}");
            }
            let count = series("_count", ty, proxy, from, None);
            assert_eq!(metrics[&count], sizes.len() as f64, "{count}");
            let sum = series("_sum", ty, proxy, from, None);
            assert_eq!(metrics[&sum], total as f64, "{sum}");
        }
    }

    // The same buckets in the stats page's JSON (cumulative, like `le`).
    let json: serde_json::Value = serde_json::from_str(&get(port, "/stats;json")).unwrap();
    let field = |obj: &str, name: &str| -> u64 {
        json.as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .find(|f| f["objType"] == obj && f["field"]["name"] == name)
            .and_then(|f| f["value"]["value"].as_u64())
            .unwrap_or_else(|| panic!("{obj} {name} in {json}"))
    };
    let upto = |bound: u64| sizes.iter().filter(|&&s| s <= bound).count() as u64;
    for obj in ["Frontend", "Backend"] {
        assert_eq!(field(obj, "ws_size_in_le64"), upto(64));
        assert_eq!(field(obj, "ws_size_in_le1k"), upto(1024));
        assert_eq!(field(obj, "ws_size_out_le64k"), upto(64 << 10));
        assert_eq!(field(obj, "ws_size_out_le1m"), upto(1 << 20));
        assert_eq!(field(obj, "ws_size_out_le16m"), upto(16 << 20));
        assert_eq!(field(obj, "ws_msg_in"), sizes.len() as u64);
        assert_eq!(field(obj, "ws_bytes_out"), total);
    }

    // Close codes by sender: each `ws_close_<in|out>_<code>` column is its
    // Prometheus series, and the page shows the codes seen.
    let mut seen = 0.0;
    for (series, value) in &metrics {
        let Some(labels) = series
            .strip_prefix("wsgate_frontend_ws_close_codes_total{")
            .map(|l| ("Frontend", l))
            .or_else(|| {
                series
                    .strip_prefix("wsgate_backend_ws_close_codes_total{")
                    .map(|l| ("Backend", l))
            })
        else {
            continue;
        };
        let (obj, labels) = labels;
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|p| p.strip_prefix(&format!("{k}=\"")))
                .unwrap()
                .trim_end_matches(['"', '}'])
                .to_owned()
        };
        let dir = if label("from") == "client" {
            "in"
        } else {
            "out"
        };
        let column = format!("ws_close_{dir}_{}", label("code"));
        assert_eq!(field(obj, &column) as f64, *value, "{column} of {obj}");
        seen += value;
    }
    assert!(
        seen >= 4.0,
        "both WebSockets' close frames, both ways: {seen}"
    );
    let page = get(port, "/stats");
    let cell = page
        .split("data-field=\"ws_closes\">")
        .nth(1)
        .and_then(|c| c.split("</td>").next())
        .unwrap();
    assert!(
        cell.contains("1000\u{d7}") && cell.contains(" / "),
        "{cell}"
    );
}
