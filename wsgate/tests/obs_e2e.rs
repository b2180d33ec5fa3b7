//! Observability end to end, through the real binary: the stats page (with
//! and without credentials), its CSV and the Prometheus text checked
//! against a known load (three WebSockets open on s1), the runtime API on
//! a Unix socket (levels, `;`, prompt, drain and maint effects on new
//! connections), and access log lines parsed field by field (HTTP request,
//! tunnel closed by the client, by the server, by `timeout tunnel`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::{poll_until, ws, DemoBackend, TempDir, Wsgate};

const DEADLINE: Duration = Duration::from_secs(10);

fn config(port: u16, sock: &Path, backends: &[&DemoBackend], extra_be: &str) -> String {
    let servers: String = backends
        .iter()
        .map(|b| format!("    server {} {}\n", b.name, b.addr))
        .collect();
    format!(
        "\
global
    stats socket {sock} mode 600 level admin
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s

frontend fe
    bind 127.0.0.1:{port}
    stats enable
    stats uri /stats
    stats auth admin:s3cret
    stats realm wsgate\\ stats
    stats refresh 5s
    http-request use-service prometheus-exporter if {{ path /metrics }}
    default_backend app

backend app
    balance first
{extra_be}{servers}",
        sock = sock.display()
    )
}

/// Raw HTTP/1.1 GET; returns (status, headers lower-cased, body).
fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// base64("admin:s3cret") and base64("admin:wrong!").
const GOOD: &str = "YWRtaW46czNjcmV0";
const BAD: &str = "YWRtaW46d3Jvbmch";

/// CSV rows keyed by (pxname, svname), checking the header and that every
/// line has as many fields as the header.
fn parse_csv(csv: &str) -> HashMap<(String, String), HashMap<String, String>> {
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let header = header
        .strip_prefix("# ")
        .expect("CSV header starts with '# '");
    let cols: Vec<&str> = header.strip_suffix(',').unwrap().split(',').collect();
    assert_eq!(
        &cols[..18],
        [
            "pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout",
            "dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis", "status"
        ],
        "HAProxy's column order"
    );
    assert_eq!(cols[32], "type");
    assert_eq!(cols[39], "hrsp_1xx");
    assert_eq!(cols[73], "addr");
    let mut rows = HashMap::new();
    for l in lines {
        let fields: Vec<&str> = l
            .strip_suffix(',')
            .expect("lines end with ','")
            .split(',')
            .collect();
        assert_eq!(fields.len(), cols.len(), "field count in {l}");
        let row: HashMap<String, String> = cols
            .iter()
            .zip(&fields)
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .collect();
        rows.insert((row["pxname"].clone(), row["svname"].clone()), row);
    }
    rows
}

/// A strict parser of the Prometheus text format (0.0.4): every sample
/// line is `name{label="value",...} value`, every metric has `# TYPE`
/// (or, for a histogram's `_bucket`, `_sum` and `_count`, its family's)
/// before its samples, names and labels are valid. Returns the samples.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut histograms = std::collections::HashSet::new();
    let mut samples = HashMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram"].contains(&ty), "{line}");
            if ty == "histogram" {
                histograms.insert(name.to_string());
            }
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(*b)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE before {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("labels in {line}"));
                for pair in inner.split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(valid_name(k), "{line}");
                    assert!(!v.trim_end_matches('"').contains('"'), "{line}");
                }
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "dup {line}"
        );
    }
    samples
}

/// `series{labels}` with its labels sorted by name, as `prometheus_client`
/// prints them.
fn sorted_labels(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else {
        return format!("{series}{{}}");
    };
    let inner = labels.trim_end_matches('}');
    let mut pairs: Vec<String> = inner
        .split("\",")
        .map(|p| p.trim_end_matches('"').to_string() + "\"")
        .collect();
    pairs.sort();
    format!("{name}{{{}}}", pairs.join(","))
}

/// The same samples and values read by this file's strict parser and by
/// Python's `prometheus_client`.
fn same_with_prometheus_client(text: &str) -> Option<HashMap<String, f64>> {
    let theirs = common::metrics::prometheus_client_parse(text)?;
    let ours = parse_prometheus(text);
    assert_eq!(ours.len(), theirs.len(), "sample counts");
    for (series, value) in &ours {
        let key = sorted_labels(series);
        assert_eq!(theirs.get(&key), Some(value), "{key}");
    }
    Some(theirs)
}

/// The access log lines wsgate wrote so far (httplog lines contain '"').
fn log_lines(gate: &Wsgate) -> Vec<String> {
    gate.log()
        .lines()
        .filter(|l| l.contains(" [") && l.ends_with('"'))
        .map(str::to_string)
        .collect()
}

/// An httplog line split into HAProxy's fields.
#[derive(Debug)]
struct HttpLog {
    client: String,
    frontend: String,
    backend: String,
    server: String,
    times: Vec<i64>,
    status: i64,
    bytes: u64,
    term: String,
    conns: Vec<String>,
    queues: String,
    request: String,
}

fn parse_httplog(line: &str) -> HttpLog {
    let (before, request) = line.split_once(" \"").unwrap();
    let request = request.strip_suffix('"').unwrap().to_string();
    let (client, rest) = before.split_once(" [").unwrap();
    let (date, rest) = rest.split_once("] ").unwrap();
    // 06/Feb/2009:12:14:14.655
    assert_eq!(date.len(), 24, "date {date}");
    assert_eq!(&date[2..3], "/");
    assert_eq!(&date[20..21], ".");
    let f: Vec<&str> = rest.split(' ').collect();
    assert_eq!(f.len(), 10, "fields of {line}");
    let (backend, server) = f[1].split_once('/').unwrap();
    assert_eq!((f[5], f[6]), ("-", "-"), "captured cookies");
    HttpLog {
        client: client.to_string(),
        frontend: f[0].to_string(),
        backend: backend.to_string(),
        server: server.to_string(),
        times: f[2].split('/').map(|t| t.parse().unwrap()).collect(),
        status: f[3].parse().unwrap(),
        bytes: f[4].parse().unwrap(),
        term: f[7].to_string(),
        conns: f[8].split('/').map(str::to_string).collect(),
        queues: f[9].to_string(),
        request,
    }
}

fn metric(text: &str, series: &str) -> f64 {
    *parse_prometheus(text)
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_metrics_and_tunnel_logs() {
    let dir = TempDir::new("obs");
    let sock = dir.path().join("admin.sock");
    let sock2 = sock.clone();
    let (s1, s2, gate, addr) = tokio::task::spawn_blocking(move || {
        let s1 = DemoBackend::start("s1", "60s");
        let s2 = DemoBackend::start("s2", "60s");
        let port = common::free_port();
        let gate = Wsgate::start(&config(port, &sock2, &[&s1, &s2], ""));
        (s1, s2, gate, SocketAddr::from(([127, 0, 0, 1], port)))
    })
    .await
    .unwrap();
    let url = format!("ws://{addr}/");

    // Three WebSockets, all on s1 (`balance first`).
    let mut conns = Vec::new();
    for i in 0..3 {
        let mut c = ws::connect(&url, None).await;
        let (echo, _) = ws::echo(&mut c, &format!("hello {i}"), "open").await;
        assert!(echo.ends_with("[s1]"), "{echo}");
        conns.push(c);
    }

    let (status, head, _) = tokio::task::spawn_blocking(move || get(addr, "/stats", None))
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        head.contains("www-authenticate: basic realm=\"wsgate stats\""),
        "{head}"
    );
    let (status, _, _) = tokio::task::spawn_blocking(move || get(addr, "/stats", Some(BAD)))
        .await
        .unwrap();
    assert_eq!(status, 401, "wrong password");
    let (status, head, html) = tokio::task::spawn_blocking(move || get(addr, "/stats", Some(GOOD)))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"));
    assert!(html.contains("<meta name=\"viewport\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let s1_row = html
        .split("data-sv=\"s1\"")
        .nth(1)
        .expect("s1 row")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        s1_row.contains("data-field=\"tunnel_cur\" class=\"ws\">3<"),
        "3 tunnels on s1: {s1_row}"
    );

    let (status, _, csv) = tokio::task::spawn_blocking(move || get(addr, "/stats;csv", Some(GOOD)))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let rows = parse_csv(&csv);
    let s1_csv = &rows[&("app".to_string(), "s1".to_string())];
    assert_eq!(s1_csv["scur"], "3", "{csv}");
    assert_eq!(s1_csv["stot"], "3");
    assert_eq!(s1_csv["status"], "no check");
    assert_eq!(s1_csv["hrsp_1xx"], "3");
    assert_eq!(s1_csv["type"], "2");
    assert_eq!(s1_csv["addr"], s1.addr.to_string());
    assert_eq!(rows[&("app".into(), "s2".into())]["scur"], "0");
    assert_eq!(rows[&("app".into(), "BACKEND".into())]["scur"], "3");
    let fe = &rows[&("fe".to_string(), "FRONTEND".to_string())];
    assert_eq!(fe["status"], "OPEN");
    assert!(fe["scur"].parse::<u64>().unwrap() >= 3);
    assert!(fe["intercepted"].parse::<u64>().unwrap() >= 3);
    let (_, _, json) = tokio::task::spawn_blocking(move || get(addr, "/stats;json", Some(GOOD)))
        .await
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert!(parsed.as_array().unwrap().len() >= 4);

    let (status, head, text) = tokio::task::spawn_blocking(move || get(addr, "/metrics", None))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/plain; version=0.0.4"));
    same_with_prometheus_client(&text);
    assert_eq!(
        metric(
            &text,
            "wsgate_server_open_tunnels{proxy=\"app\",server=\"s1\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "haproxy_server_current_sessions{proxy=\"app\",server=\"s1\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "haproxy_server_status{proxy=\"app\",server=\"s1\",state=\"UP\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "haproxy_backend_http_responses_total{proxy=\"app\",code=\"1xx\"}"
        ),
        3.0
    );
    assert!(metric(&text, "haproxy_frontend_current_sessions{proxy=\"fe\"}") >= 3.0);
    assert!(metric(&text, "haproxy_process_current_connections") >= 3.0);

    // The client closes one: counted as client_close, logged with `----`
    // (a clean close, as HAProxy logs it).
    let mut c = conns.pop().unwrap();
    c.close(None).await.unwrap();
    while tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(&mut c))
        .await
        .unwrap()
        .is_some()
    {}
    drop(c);
    let text = tokio::task::spawn_blocking(move || {
        poll_until(DEADLINE, "the closed tunnel to be counted", || {
            let (_, _, text) = get(addr, "/metrics", None);
            (metric(
                &text,
                "wsgate_tunnels_closed_total{proxy=\"app\",reason=\"client_close\"}",
            ) == 1.0)
                .then_some(text)
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        metric(
            &text,
            "wsgate_server_open_tunnels{proxy=\"app\",server=\"s1\"}"
        ),
        2.0
    );
    let gate_ref = &gate;
    let line = poll_until(DEADLINE, "the tunnel's log line", || {
        log_lines(gate_ref)
            .into_iter()
            .find(|l| l.contains(" 101 ") && l.contains(" app/s1 "))
    })
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", gate.log()));
    let l = parse_httplog(&line);
    assert!(l.client.starts_with("127.0.0.1:"), "{line}");
    assert_eq!(
        (l.frontend.as_str(), l.backend.as_str(), l.server.as_str()),
        ("fe", "app", "s1")
    );
    assert_eq!(l.status, 101);
    assert_eq!(l.term, "----", "{line}");
    assert_eq!(l.request, "GET / HTTP/1.1");
    assert_eq!(l.times.len(), 5);
    assert!(l.times.iter().all(|t| *t >= 0), "{line}");
    assert!(l.times[4] >= l.times[3], "Ta covers the tunnel: {line}");
    assert!(l.bytes > 129, "101 head plus the echo: {line}");
    assert_eq!(l.conns.len(), 5);
    assert_eq!(l.queues, "0/0");

    // A plain HTTP request is logged when it completes.
    let (status, _, _) = tokio::task::spawn_blocking(move || get(addr, "/", None))
        .await
        .unwrap();
    let line = poll_until(DEADLINE, "the GET's log line", || {
        log_lines(gate_ref)
            .into_iter()
            .find(|l| l.contains("\"GET / HTTP/1.1\"") && !l.contains(" 101 "))
    })
    .unwrap();
    let l = parse_httplog(&line);
    assert_eq!(l.status, i64::from(status));
    assert_eq!(l.term, "----");
    assert_eq!(l.server, "s1");

    // The stats page itself is logged as HAProxy does: <STATS>, LR.
    let stats_line = log_lines(&gate)
        .into_iter()
        .find(|l| l.contains("/<STATS> "))
        .expect("stats request logged");
    assert_eq!(parse_httplog(&stats_line).term, "LR--");

    // The server goes away (its FINs): the tunnels on it end as server
    // closes, logged `----` like HAProxy's (CD/SD are for resets).
    drop(s1);
    for mut c in conns.drain(..) {
        // The clients see the end and drop their side.
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(DEADLINE, futures_util::StreamExt::next(&mut c)).await
        {}
    }
    let text = tokio::task::spawn_blocking(move || {
        poll_until(DEADLINE, "server closes to be counted", || {
            let (_, _, text) = get(addr, "/metrics", None);
            (metric(
                &text,
                "wsgate_tunnels_closed_total{proxy=\"app\",reason=\"server_close\"}",
            ) == 2.0)
                .then_some(text)
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        metric(
            &text,
            "wsgate_server_open_tunnels{proxy=\"app\",server=\"s1\"}"
        ),
        0.0
    );
    let sd = poll_until(DEADLINE, "three tunnel lines", || {
        let lines = log_lines(gate_ref);
        let tunnels: Vec<_> = lines.iter().filter(|l| l.contains(" 101 ")).collect();
        let clean = tunnels.iter().all(|l| parse_httplog(l).term == "----");
        (tunnels.len() == 3 && clean).then_some(())
    });
    assert!(sd.is_ok(), "{sd:?}; log:\n{}", gate.log());
    drop(conns);
    drop(s2);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_steers_servers() {
    let dir = TempDir::new("cli");
    let sock = dir.path().join("admin.sock");
    let sock2 = sock.clone();
    let (_s1, _s2, gate, addr) = tokio::task::spawn_blocking(move || {
        let s1 = DemoBackend::start("s1", "60s");
        let s2 = DemoBackend::start("s2", "60s");
        let port = common::free_port();
        let gate = Wsgate::start(&config(
            port,
            &sock2,
            &[&s1, &s2],
            "    timeout tunnel 1s\n",
        ));
        (s1, s2, gate, SocketAddr::from(([127, 0, 0, 1], port)))
    })
    .await
    .unwrap();
    let url = format!("ws://{addr}/");
    let sock_ref = sock.clone();
    poll_until(DEADLINE, "the stats socket", || {
        sock_ref.exists().then_some(())
    })
    .unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "mode 600");

    let s = sock.clone();
    let run = move |cmd: &'static str| {
        let s = s.clone();
        async move {
            tokio::task::spawn_blocking(move || cli(&s, cmd))
                .await
                .unwrap()
        }
    };

    let help = run("help").await;
    assert!(
        help.starts_with("The following commands are valid at this level:\n"),
        "{help}"
    );
    assert!(help.contains("  set server <bk>/<srv> [opts]"), "{help}");
    assert!(help.ends_with("\n\n"), "answers end with an empty line");
    let unknown = run("frobnicate").await;
    assert!(
        unknown.starts_with(
            "Unknown command: 'frobnicate'. Please enter one of the following commands only:"
        ),
        "{unknown}"
    );
    let info = run("show info").await;
    assert!(
        info.contains("Name: wsgate\n") && info.contains("Uptime_sec: "),
        "{info}"
    );
    let both = run("show info;show stat").await;
    assert!(
        both.contains("Name: wsgate") && both.contains("# pxname,svname,"),
        "{both}"
    );
    let state = run("show servers state app").await;
    assert!(
        state.starts_with("1\n# be_id be_name srv_id srv_name"),
        "{state}"
    );
    assert!(state.contains(" app 1 s1 127.0.0.1 2 0 1 1 "), "{state}");

    // An open WebSocket on s1, then s1 drains: it stays, new ones go to s2.
    let mut kept = ws::connect(&url, None).await;
    let (echo, _) = ws::echo(&mut kept, "before", "kept").await;
    assert!(echo.ends_with("[s1]"), "{echo}");
    assert_eq!(run("set server app/s1 state drain").await, "\n");
    let mut next = ws::connect(&url, None).await;
    let (echo, _) = ws::echo(&mut next, "after drain", "new").await;
    assert!(
        echo.ends_with("[s2]"),
        "drained s1 takes no new connection: {echo}"
    );
    let (echo, _) = ws::echo(&mut kept, "still here", "kept").await;
    assert!(echo.ends_with("[s1]"), "existing WebSocket stays: {echo}");
    let csv = run("show stat").await;
    let rows = parse_csv(csv.trim_end_matches('\n'));
    assert_eq!(rows[&("app".into(), "s1".into())]["status"], "DRAIN");

    // s2 in maintenance too: nothing left, 503.
    assert_eq!(run("disable server app/s2").await, "\n");
    let (status, _, _) = tokio::task::spawn_blocking(move || get(addr, "/", None))
        .await
        .unwrap();
    assert_eq!(status, 503);
    let csv = run("show stat").await;
    let rows = parse_csv(csv.trim_end_matches('\n'));
    assert_eq!(rows[&("app".into(), "s2".into())]["status"], "MAINT");
    // Back to ready: s1 takes traffic again.
    assert_eq!(run("set server app/s1 state ready").await, "\n");
    let (status, _, _) = tokio::task::spawn_blocking(move || get(addr, "/", None))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(run("set server app/s1 weight 7").await, "\n");
    let csv = run("show stat").await;
    assert_eq!(
        parse_csv(csv.trim_end_matches('\n'))[&("app".into(), "s1".into())]["weight"],
        "7"
    );
    assert_eq!(
        run("set server app/nope state ready").await,
        "No such server.\n\n"
    );
    assert_eq!(
        run("set server nope/s1 state ready").await,
        "No such backend.\n\n"
    );

    // Interactive mode: a prompt after each answer, until quit.
    let s = sock.clone();
    let transcript = tokio::task::spawn_blocking(move || {
        let mut c = UnixStream::connect(&s).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        c.write_all(b"prompt\n").unwrap();
        let mut buf = [0u8; 3];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(
            &buf, b"\n> ",
            "HAProxy 2.6 answers `prompt` with an empty line"
        );
        c.write_all(b"show info\nquit\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(
        transcript.contains("Name: wsgate") && transcript.ends_with("\n\n> "),
        "{transcript:?}"
    );

    // The idle tunnel times out (timeout tunnel 1s): cD-- in the log.
    drop(next);
    let gate_ref = &gate;
    let line = poll_until(DEADLINE, "a cD line", || {
        log_lines(gate_ref)
            .into_iter()
            .find(|l| l.contains(" 101 ") && parse_httplog(l).term == "cD--")
    });
    assert!(line.is_ok(), "{line:?}\n{}", gate.log());
    let mut kept = kept;
    let _ = kept.close(None).await;
    drop(dir);
}

#[test]
fn cli_levels_are_enforced() {
    let dir = TempDir::new("cli-level");
    let sock = dir.path().join("user.sock");
    let port = common::free_port();
    let cfg = format!(
        "global\n    stats socket {} level user\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\nfrontend fe\n    bind 127.0.0.1:{port}\n",
        sock.display()
    );
    let _gate = Wsgate::start(&cfg);
    poll_until(DEADLINE, "the socket", || sock.exists().then_some(())).unwrap();
    assert_eq!(
        cli(&sock, "set server app/s1 state drain"),
        "Permission denied\n\n"
    );
    assert_eq!(cli(&sock, "clear counters"), "Permission denied\n\n");
    assert!(cli(&sock, "show stat").starts_with("# pxname,"));
    assert!(!cli(&sock, "help").contains("set server"));
}

#[test]
fn unusable_socket_path_fails_at_start_with_its_line() {
    let dir = TempDir::new("cli-bad");
    let cfg = dir.write(
        "bad.cfg",
        "global\n    stats socket /nonexistent-dir/wsgate.sock level admin\n\nfrontend fe\n    mode http\n    bind 127.0.0.1:0\n    timeout client 1s\n",
    );
    let (status, out) = common::run_wsgate(
        &[std::ffi::OsStr::new("-f"), cfg.as_os_str()],
        Duration::from_secs(20),
    );
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(
            "bad.cfg:2:18: error: cannot bind the stats socket /nonexistent-dir/wsgate.sock"
        ),
        "{out}"
    );
}

/// Limits and check states in Prometheus, read by `prometheus_client`:
/// `haproxy_process_max_connections` (global `maxconn`),
/// `haproxy_frontend_limit_sessions` (the frontend's), and per server and
/// backend `haproxy_server_check_status{state}` / `haproxy_backend_status`
/// with one server passing its checks and one failing them.
#[test]
fn prometheus_limits_and_check_states() {
    let up = DemoBackend::start("up", "1h");
    let dead = common::free_port();
    let port = common::free_port();
    let gate = Wsgate::start(&format!(
        "global\n    maxconn 500\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    maxconn 100\n\
         \x20   http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend app\n\
         backend app\n    server up {} check inter 200ms\n\
         backend gone\n    server dead 127.0.0.1:{dead} check inter 200ms fall 1\n",
        up.addr
    ));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let check = |server: &str, state: &str| {
        format!(
            "haproxy_server_check_status{{proxy=\"{}\",server=\"{server}\",state=\"{state}\"}}",
            if server == "up" { "app" } else { "gone" }
        )
    };
    let mut last = HashMap::new();
    let settled = poll_until(DEADLINE, "both checks done", || {
        let (_, _, text) = get(addr, "/metrics", None);
        last = same_with_prometheus_client(&text)?;
        (last.get(&check("up", "L4OK")) == Some(&1.0)
            && last.get(&check("dead", "L4CON")) == Some(&1.0))
        .then(|| last.clone())
    });
    let Ok(m) = settled else {
        if last.is_empty() {
            return; // prometheus_client missing outside CI: skipped above
        }
        panic!("{last:?}\n{}", gate.log());
    };
    assert_eq!(m["haproxy_process_max_connections{}"], 500.0);
    assert_eq!(m["haproxy_frontend_limit_sessions{proxy=\"fe\"}"], 100.0);
    assert_eq!(m[&check("up", "L4CON")], 0.0);
    assert_eq!(m[&check("dead", "L4OK")], 0.0);
    let status = |proxy: &str, state: &str| {
        m[&format!("haproxy_backend_status{{proxy=\"{proxy}\",state=\"{state}\"}}")]
    };
    assert_eq!((status("app", "UP"), status("app", "DOWN")), (1.0, 0.0));
    assert_eq!((status("gone", "UP"), status("gone", "DOWN")), (0.0, 1.0));
}
