//! The stats page in a real browser: headless Chromium loads it (with
//! `stats auth` credentials) while a known load is held through wsgate —
//! 7 WebSockets pinned on s1 and 2 on s2 by their persistence cookie
//! (tokio-tungstenite), s3 down, and one closed WebSocket whose messages
//! are known — and the test reads the numbers back from the DOM Chromium
//! built: open tunnels, sessions, status per server, the frontend's and
//! backend's tunnels and message counts. A wrong password gets 401 (from
//! curl and in Chromium). A screenshot is taken on every run; with
//! `BLESS=1` it replaces `docs/img/stats-page.png` (the README's picture).
//! With `stats refresh`, the page's script updates the cells in place:
//! watched over the DevTools protocol (`tests/py/cdp_watch.py`), a
//! WebSocket opened after the load shows up in its cell while a
//! JavaScript global set at load survives (no reload). On a 390-px-wide
//! phone viewport the page does not scroll sideways: each table scrolls
//! in its own container (`docs/img/stats-page-phone.png`, retaken with
//! `BLESS=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use common::{poll_until, ws, ChildGuard, DemoBackend, TempDir, Wsgate};

const DEADLINE: Duration = Duration::from_secs(15);

fn config(port: u16, s1: &DemoBackend, s2: &DemoBackend, dead: u16) -> String {
    // No idle parking: a parked tunnel hands in its message counts, and
    // the checks below expect the held ones' not to be counted yet.
    format!(
        "\
global
    tune.idle-park 0

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 60s

frontend web
    bind 127.0.0.1:{port}
    stats enable
    stats uri /stats
    stats auth admin:s3cret
    stats realm wsgate
    default_backend app

backend app
    cookie SRV insert indirect nocache
    server s1 {a1} cookie s1 check inter 1s
    server s2 {a2} cookie s2 check inter 1s
    server s3 127.0.0.1:{dead} cookie s3 check inter 200ms fall 1
",
        a1 = s1.addr,
        a2 = s2.addr
    )
}

/// A WebSocket to the proxy, pinned to `server` by its cookie; checks the
/// demo backend's welcome names that server.
async fn pinned(port: u16, server: &str) -> ws::Ws {
    let (sock, who) = ws::connect_with_cookie(port, Some(server)).await;
    assert_eq!(who, server);
    sock
}

/// `curl` status of the stats page with `user:pass`.
fn curl_status(port: u16, userpass: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "-u",
        ])
        .arg(userpass)
        .arg(format!("http://127.0.0.1:{port}/stats"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .rsplit('\n')
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// `;csv` rows by (pxname, svname), read with curl.
fn csv(port: u16) -> HashMap<(String, String), HashMap<String, String>> {
    let out = Command::new("curl")
        .args(["-s", "-u", "admin:s3cret"])
        .arg(format!("http://127.0.0.1:{port}/stats;csv"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let cols: Vec<&str> = header
        .trim_start_matches("# ")
        .trim_end_matches(',')
        .split(',')
        .collect();
    lines
        .map(|l| {
            let row: HashMap<String, String> = cols
                .iter()
                .zip(l.trim_end_matches(',').split(','))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect();
            ((row["pxname"].clone(), row["svname"].clone()), row)
        })
        .collect()
}

fn chromium_cmd(chromium: &Path, profile: &TempDir) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    cmd
}

/// The DOM of `url` after Chromium loaded it, and what Chromium said on
/// stderr (credentials in the URL are used for Basic authentication on a
/// top-level navigation).
fn dump_dom(chromium: &Path, url: &str) -> (String, String) {
    let profile = TempDir::new("chromium-profile");
    let mut cmd = chromium_cmd(chromium, &profile);
    cmd.arg("--virtual-time-budget=3000")
        .arg("--dump-dom")
        .arg(url);
    let (status, out, err) = common::run_with_deadline(cmd, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("chromium on {url}: {e}"));
    assert!(status.success(), "chromium on {url}: {status}\n{err}");
    (out, err)
}

/// A PNG of `url` at a desktop width.
fn screenshot(chromium: &Path, url: &str, png: &Path) {
    let profile = TempDir::new("chromium-profile");
    let mut cmd = chromium_cmd(chromium, &profile);
    cmd.arg("--hide-scrollbars")
        .arg("--window-size=2300,520")
        .arg(format!("--screenshot={}", png.display()))
        .arg(url);
    let (status, _, err) = common::run_with_deadline(cmd, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("chromium screenshot of {url}: {e}"));
    assert!(status.success(), "chromium screenshot: {status}\n{err}");
}

/// The cells (`data-field` → text) of the table row `<tr class="{class}"
/// data-px="app" data-sv="{sv}">` in the DOM.
fn row_cells(dom: &str, class: &str, sv: &str) -> HashMap<String, String> {
    let px = if class == "fe" { "web" } else { "app" };
    let marker = format!("<tr class=\"{class}\" data-px=\"{px}\" data-sv=\"{sv}\">");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no row {marker} in the DOM:\n{dom}"));
    let row = &dom[at..at + dom[at..].find("</tr>").unwrap()];
    let mut cells = HashMap::new();
    for cell in row.split("<td ").skip(1) {
        let field = cell
            .split("data-field=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("every cell names its field");
        let text = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
        cells.insert(field.to_string(), text.to_string());
    }
    cells
}

/// The text of the element with `id` (up to its first child tag).
fn element_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker}:\n{dom}"));
    let rest = &dom[at + dom[at..].find('>').unwrap() + 1..];
    rest[..rest.find('<').unwrap_or(rest.len())].trim()
}

/// A headless Chromium on about:blank listening for the DevTools
/// protocol; its guard, profile directory and port.
fn chromium_devtools(chromium: &Path) -> (ChildGuard, TempDir, u16) {
    let devtools = common::free_port();
    let profile = TempDir::new("chromium-devtools");
    let mut cmd = chromium_cmd(chromium, &profile);
    cmd.arg(format!("--remote-debugging-port={devtools}"))
        .arg("about:blank");
    let log = profile.path().join("chromium.log");
    (ChildGuard::spawn(cmd, log), profile, devtools)
}

fn chromium_or_skip() -> Option<PathBuf> {
    let c = common::chromium();
    if c.is_none() {
        common::skip_unless_ci("Chromium (/usr/bin/chromium) is not installed");
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_in_chromium_shows_the_known_load() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let s1 = DemoBackend::start("s1", "0");
    let s2 = DemoBackend::start("s2", "0");
    let port = common::free_port();
    let dead = common::free_port();
    let gate = Wsgate::start(&config(port, &s1, &s2, dead));

    // s3 is down (its checks fail) before the load starts.
    poll_until(DEADLINE, "s3 marked DOWN", || {
        let rows = csv(port);
        let st = rows.get(&("app".into(), "s3".into()))?;
        (st["status"] == "DOWN").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));

    // One WebSocket on s1 with known messages, then closed: its counts
    // are added at the tunnel's end.
    let mut once = pinned(port, "s1").await;
    for size in [10usize, 100, 1000, 5000, 70_000] {
        once.send(Message::binary(vec![b'x'; size])).await.unwrap();
        match tokio::time::timeout(DEADLINE, once.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => assert_eq!(b.len(), size),
            other => panic!("echo of {size} bytes: {other:?}"),
        }
    }
    once.close(None).await.unwrap();
    while let Ok(Some(Ok(_))) = tokio::time::timeout(DEADLINE, once.next()).await {}
    drop(once);

    // The held load: 7 on s1, 2 on s2.
    let mut held = Vec::new();
    for server in ["s1"; 7].iter().chain(&["s2"; 2]) {
        held.push(pinned(port, server).await);
    }
    let mut last = String::new();
    let settled = poll_until(DEADLINE, "9 open tunnels, 1 closed", || {
        let rows = csv(port);
        let be = rows.get(&("app".into(), "BACKEND".into()))?;
        let got = [&be["tunnel_cur"], &be["tunnel_tot"], &be["ws_msg_in"]];
        last = format!("{got:?}");
        (got == ["9", "10", "5"]).then_some(rows)
    })
    .unwrap_or_else(|e| panic!("{e}: {last}\n{}", gate.log()));
    assert_eq!(settled[&("app".into(), "s1".into())]["tunnel_cur"], "7");

    let (dom, _) = dump_dom(
        &chromium,
        &format!("http://admin:s3cret@127.0.0.1:{port}/stats"),
    );
    let s1_row = row_cells(&dom, "sv", "s1");
    let s2_row = row_cells(&dom, "sv", "s2");
    let s3_row = row_cells(&dom, "sv", "s3");
    let be_row = row_cells(&dom, "be", "BACKEND");
    let fe_row = row_cells(&dom, "fe", "FRONTEND");

    assert_eq!(s1_row["svname"], "s1");
    assert_eq!(s1_row["tunnel_cur"], "7", "{s1_row:?}");
    assert_eq!(s1_row["tunnel_tot"], "8", "{s1_row:?}");
    assert_eq!(s1_row["scur/smax/slim"], "7/7/", "{s1_row:?}");
    assert_eq!(s1_row["stot"], "8", "{s1_row:?}");
    assert_eq!(s1_row["status"], "UP", "{s1_row:?}");
    assert_eq!(s2_row["tunnel_cur"], "2", "{s2_row:?}");
    assert_eq!(s2_row["tunnel_tot"], "2", "{s2_row:?}");
    assert_eq!(s2_row["scur/smax/slim"], "2/2/", "{s2_row:?}");
    assert_eq!(s2_row["status"], "UP", "{s2_row:?}");
    assert_eq!(s3_row["tunnel_cur"], "0", "{s3_row:?}");
    assert_eq!(s3_row["status"], "DOWN", "{s3_row:?}");
    assert!(s3_row["check_status"].starts_with("L4CON"), "{s3_row:?}");
    assert_eq!(be_row["tunnel_cur"], "9", "{be_row:?}");
    assert_eq!(be_row["tunnel_tot"], "10", "{be_row:?}");
    assert_eq!(be_row["status"], "UP", "{be_row:?}");
    // The closed WebSocket's five binary messages each way, and the
    // server's welcome (counted too when it arrives with the 101: early
    // bytes go through the tunnel's frame tracking). Open tunnels flush
    // their counts when they close or every 1,024 messages.
    assert_eq!(be_row["ws_msg_in/ws_msg_out"], "5/6", "{be_row:?}");
    assert_eq!(fe_row["tunnel_cur"], "9", "{fe_row:?}");
    assert_eq!(fe_row["tunnel_tot"], "10", "{fe_row:?}");
    assert_eq!(
        fe_row["ws_msg_in/ws_msg_out"], be_row["ws_msg_in/ws_msg_out"],
        "{fe_row:?}"
    );
    assert_eq!(fe_row["status"], "OPEN", "{fe_row:?}");
    assert_eq!(element_text(&dom, "tunnels"), "9");

    // A wrong password: 401 with the realm, to curl and to Chromium.
    let (code, head) = curl_status(port, "admin:wrong");
    assert_eq!(code, 401, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"wsgate\""),
        "{head}"
    );
    assert_eq!(curl_status(port, "admin:s3cret").0, 200);
    // Chromium, refused the credentials of its URL, shows no page.
    let (denied, said) = dump_dom(
        &chromium,
        &format!("http://admin:wrong@127.0.0.1:{port}/stats"),
    );
    assert!(said.contains("ERR_INVALID_AUTH_CREDENTIALS"), "{said}");
    assert!(!denied.contains("data-sv="), "{denied}");

    let shots = TempDir::new("stats-shot");
    let png = shots.path().join("stats-page.png");
    screenshot(
        &chromium,
        &format!("http://admin:s3cret@127.0.0.1:{port}/stats"),
        &png,
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("BLESS").is_some() {
        let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/stats-page.png");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &bytes).unwrap();
    }

    // Still all open: the page did not disturb them.
    for (i, sock) in held.iter_mut().enumerate() {
        let server = if i < 7 { "s1" } else { "s2" };
        let text = format!("still here {i}");
        let (got, _) = ws::echo(sock, &text, server).await;
        assert_eq!(got, ws::expected_echo(&text, server));
    }
}

/// What the DevTools tests run against: Chromium, and wsgate (with
/// `extra` lines in its frontend) in front of two demo backends and a
/// dead one.
struct DevtoolsSetup {
    chromium: PathBuf,
    port: u16,
    gate: Wsgate,
    _servers: [DemoBackend; 2],
}

/// `None` (the test is skipped) without Chromium or Python's websockets.
fn devtools_setup(extra: &str) -> Option<DevtoolsSetup> {
    let chromium = chromium_or_skip()?;
    if !common::python_websockets_available() {
        common::skip_unless_ci("python3 with websockets is not installed");
        return None;
    }
    let s1 = DemoBackend::start("s1", "0");
    let s2 = DemoBackend::start("s2", "0");
    let port = common::free_port();
    let dead = common::free_port();
    let cfg = config(port, &s1, &s2, dead).replace(
        "    stats realm wsgate\n",
        &format!("    stats realm wsgate\n{extra}"),
    );
    Some(DevtoolsSetup {
        chromium,
        port,
        gate: Wsgate::start(&cfg),
        _servers: [s1, s2],
    })
}

/// `stats refresh 1s`: no `Refresh` header, a `<noscript>` meta refresh
/// for browsers without JavaScript, and with it the script that fetches
/// `;json` and rewrites the cells: a WebSocket opened after the page
/// loaded appears in s1's tunnel cell, and the page was not reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_refresh_updates_cells_without_a_reload() {
    let Some(setup) = devtools_setup("    stats refresh 1s\n") else {
        return;
    };
    let (chromium, port, gate) = (&setup.chromium, setup.port, &setup.gate);
    let page = common::http::exchange(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        b"GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.header("refresh").is_none(), "no Refresh header");
    let body = page.body_str();
    assert!(
        body.contains("<noscript><meta http-equiv=\"refresh\" content=\"1\"></noscript>"),
        "{body}"
    );
    assert!(body.contains("period:1000"), "{body}");

    let (_browser, _profile, devtools) = chromium_devtools(chromium);

    let mut watch = Command::new("python3")
        .arg(common::py_script("cdp_watch.py"))
        .arg(devtools.to_string())
        .arg(format!("http://admin:s3cret@127.0.0.1:{port}/stats"))
        .arg("tr.sv[data-sv=s1] td[data-field=tunnel_cur]")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = watch.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap());
    let read_json = |lines: &mut std::io::BufReader<std::process::ChildStdout>| {
        let mut line = String::new();
        std::io::BufRead::read_line(lines, &mut line).unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    let (before, mut lines) = tokio::task::spawn_blocking(move || (read_json(&mut lines), lines))
        .await
        .unwrap();
    assert_eq!(before["before"], "0", "{before}\n{}", gate.log());

    let mut held = pinned(port, "s1").await;
    std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
    let after = tokio::task::spawn_blocking(move || read_json(&mut lines))
        .await
        .unwrap();
    assert_eq!(after["after"], "1", "{after}");
    assert_eq!(after["marker_kept"], true, "the page was reloaded: {after}");
    assert_eq!(after["navigations"], 0, "{after}");
    assert!(watch.wait().unwrap().success());
    let (echo, _) = ws::echo(&mut held, "still here", "s1").await;
    assert_eq!(echo, ws::expected_echo("still here", "s1"));
}

/// The page on a 390-px-wide phone: the page itself never scrolls
/// sideways, every table sits in a container that scrolls horizontally,
/// and the wide ones do overflow it (so the container is what scrolls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_fits_a_phone() {
    let Some(setup) = devtools_setup("") else {
        return;
    };
    let (chromium, port) = (&setup.chromium, setup.port);
    let _held = [pinned(port, "s1").await, pinned(port, "s2").await];

    let (_browser, profile, devtools) = chromium_devtools(chromium);
    let png = profile.path().join("phone.png");
    let url = format!("http://admin:s3cret@127.0.0.1:{port}/stats");
    let mut cmd = Command::new("python3");
    cmd.arg(common::py_script("cdp_phone.py"))
        .arg(devtools.to_string())
        .arg(&url)
        .arg(&png);
    let (status, out, err) = tokio::task::spawn_blocking(move || {
        common::run_with_deadline(cmd, Duration::from_secs(90)).unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "{out}\n{err}");
    let m: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(m["viewport"], 390, "{m}");
    assert!(
        m["scroll_width"].as_u64().unwrap() <= 390,
        "the page scrolls sideways: {m}"
    );
    let tables = m["tables"].as_array().unwrap();
    assert!(!tables.is_empty(), "{m}");
    assert!(tables.iter().all(|t| t["scrolls"] == true), "{m}");
    assert!(tables.iter().any(|t| t["overflows"] == true), "{m}");
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("BLESS").is_some() {
        let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/stats-page-phone.png");
        std::fs::write(&dest, &bytes).unwrap();
    }
}
