//! `stats admin if <cond>` through the real binary, driven with curl: the
//! page (with `stats auth`) shows per-server forms carrying the process's
//! token; HAProxy's POST fields (`s=<server>&action=<action>&b=<backend>`)
//! drain, maintain, re-weight and ready a server, answered with `303` to
//! `<uri>;st=DONE`, and the effect is checked with real WebSocket clients
//! and the runtime API; a missing token, a foreign `Origin`, a wrong
//! password, and a frontend without `stats admin` are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ws::{connect, echo};
use common::{free_port, DemoBackend, TempDir, Wsgate};

const DEADLINE: Duration = Duration::from_secs(10);

fn config(port: u16, plain: u16, sock: &Path, s1: &DemoBackend, s2: &DemoBackend) -> String {
    format!(
        "global\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    stats uri /stats\n    stats auth admin:s3cret\n    stats admin if LOCALHOST\n    default_backend app\n\
         frontend readonly\n    bind 127.0.0.1:{plain}\n    stats uri /stats\n    default_backend app\n\
         backend app\n    balance roundrobin\n    server s1 {}\n    server s2 {}\n",
        sock.display(),
        s1.addr,
        s2.addr
    )
}

/// curl: (status, headers, body).
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-D", "-"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The server's state in `show servers state`: (admin state, weight).
fn state(sock: &Path, server: &str) -> (String, String) {
    let out = cli(sock, "show servers state app");
    let line = out
        .lines()
        .find(|l| l.split(' ').nth(3) == Some(server))
        .unwrap_or_else(|| panic!("{server} in {out}"));
    let f: Vec<&str> = line.split(' ').collect();
    (f[6].to_string(), f[7].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_actions_with_csrf_checks() {
    if Command::new("curl").arg("--version").output().is_err() {
        common::skip_unless_ci("curl is not installed");
        return;
    }
    let dir = TempDir::new("stats-admin");
    let sock = dir.path().join("admin.sock");
    let s1 = DemoBackend::start("s1", "1h");
    let s2 = DemoBackend::start("s2", "1h");
    let (port, plain) = (free_port(), free_port());
    let _gate = Wsgate::start_in(dir, &config(port, plain, &sock, &s1, &s2));
    let page = format!("http://127.0.0.1:{port}/stats");

    // The page shows the forms and the token; without auth, 401.
    assert_eq!(curl(&[&page]).0, 401);
    let (status, _, html) = curl(&["-u", "admin:s3cret", &page]);
    assert_eq!(status, 200);
    assert!(
        html.contains("<form method=\"post\" action=\"/stats\""),
        "{html}"
    );
    assert!(html.contains("name=\"s\" value=\"s1\""), "{html}");
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 32, "{token}");

    let post = |body: String, extra: &[&str]| {
        let mut args = vec!["-u", "admin:s3cret", "--data", body.as_str()];
        args.extend_from_slice(extra);
        args.push(&page);
        curl(&args)
    };

    // Refusals: no token, a wrong token, a foreign origin, wrong password.
    assert_eq!(post("s=s1&action=drain&b=app".into(), &[]).0, 403);
    assert_eq!(
        post(
            "s=s1&action=drain&b=app&token=00000000000000000000000000000000".into(),
            &[]
        )
        .0,
        403
    );
    let with_token = format!("s=s1&action=drain&b=app&token={token}");
    assert_eq!(
        post(with_token.clone(), &["-H", "Origin: http://evil.example"]).0,
        403
    );
    assert_eq!(
        post(
            with_token.clone(),
            &["-H", "Referer: http://evil.example/stats"]
        )
        .0,
        403
    );
    let wrong = curl(&["-u", "admin:nope", "--data", &with_token, &page]);
    assert_eq!(wrong.0, 401);
    // The read-only frontend has no `stats admin`.
    let ro = curl(&[
        "--data",
        &with_token,
        &format!("http://127.0.0.1:{plain}/stats"),
    ]);
    assert_eq!(ro.0, 403);
    assert_eq!(state(&sock, "s1").0, "0", "nothing changed yet");

    // Drain s1 (same-origin browser headers accepted): new WebSockets all
    // go to s2.
    let origin = format!("Origin: http://127.0.0.1:{port}");
    let (status, head, _) = post(with_token.clone(), &["-H", &origin]);
    assert_eq!(status, 303);
    assert!(head.contains("\r\nlocation: /stats;st=done"), "{head}");
    assert_eq!(state(&sock, "s1").0, "8", "drain");
    for i in 0..3 {
        let mut ws = connect(&format!("ws://127.0.0.1:{port}/"), None).await;
        let (reply, _) = echo(&mut ws, "x", "drained").await;
        assert!(reply.ends_with("[s2]"), "{i}: {reply}");
    }
    let (_, _, html) = curl(&["-u", "admin:s3cret", &format!("{page};st=DONE")]);
    assert!(html.contains("Action processed successfully."), "{html}");

    // Weight and maint on both, then ready again; unknown names count.
    let both =
        |action: &str, extra: &str| format!("s=s1&s=s2&action={action}&b=app&token={token}{extra}");
    assert!(post(both("weight", "&weight=7"), &[]).1.contains("st=done"));
    assert_eq!(state(&sock, "s2").1, "7");
    assert!(post(both("maint", ""), &[]).1.contains("st=done"));
    assert_eq!(state(&sock, "s2").0, "1");
    assert!(post(both("ready", ""), &[]).1.contains("st=done"));
    assert_eq!(state(&sock, "s1"), ("0".to_string(), "7".to_string()));
    let partial = format!("s=s1&s=nope&action=drain&b=app&token={token}");
    assert!(post(partial, &[]).1.contains("st=part"));
    let bad = format!("s=s1&action=explode&b=app&token={token}");
    assert!(post(bad, &[]).1.contains("st=errp"));
    let none = format!("action=drain&b=app&token={token}");
    assert!(post(none, &[]).1.contains("st=none"));
}

#[test]
fn stats_admin_needs_a_condition_and_a_frontend() {
    let dir = TempDir::new("stats-admin-cfg");
    let head = "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n";
    for (body, needle, valid) in [
        ("frontend fe\n    bind 127.0.0.1:1\n    stats admin\n    default_backend be\nbackend be\n    server s 127.0.0.1:2\n", ":8:5: error: 'stats admin' needs a condition", false),
        ("frontend fe\n    bind 127.0.0.1:1\n    stats admin if nope\n    default_backend be\nbackend be\n    server s 127.0.0.1:2\n", ":8:", false),
        // A backend's page stays read-only: a warning (real configs do this).
        ("frontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    stats admin if { always_true }\n    server s 127.0.0.1:2\n", ":10:5: warning: 'stats admin' in a backend is ignored", true),
    ] {
        let path = dir.write("bad.cfg", format!("{head}{body}"));
        let (status, out) = common::run_wsgate(&["-c".as_ref(), "-f".as_ref(), path.as_os_str()], DEADLINE);
        assert_eq!(status.success(), valid, "{body}: {out}");
        assert!(out.contains(needle), "{needle} in {out}");
    }
}

/// Loads `url` in headless Chromium; the DOM after its scripts ran.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = TempDir::new("chromium-profile");
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
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg("--dump-dom")
    .arg(url);
    let (status, out, err) = common::run_with_deadline(cmd, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("chromium on {url}: {e}"));
    assert!(status.success(), "chromium on {url}: {status}\n{err}");
    out
}

/// A page whose script posts the stats form to `action` with `token`.
/// (Reading the token with `fetch` first works in a browser, but headless
/// Chromium's virtual time then never ends the page load, so the test
/// hands the token in.)
fn posting_page(action: &str, token: &str) -> &'static str {
    let body = format!(
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body><p id=\"out\">posting</p><script>\
         Promise.resolve('{token}').then(tok => {{\
           const f = document.createElement('form'); f.method = 'post'; f.action = '{action}';\
           for (const [k, v] of [['s', 's1'], ['action', 'drain'], ['b', 'app'], ['token', tok]]) {{\
             const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }}\
           document.body.appendChild(f); f.submit(); }});\
         </script></body></html>"
    );
    Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    )
}

/// Serves `reply` to every connection on `listener` (a thread per
/// connection; ends with the process).
fn serve_page(listener: std::net::TcpListener, reply: &'static str) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(reply.as_bytes());
            });
        }
    });
}

/// Headless Chromium: a page on the stats page's own origin can drain a
/// server through the form; a page on another origin cannot, even with the
/// process's token (its `Origin` gives it away).
#[test]
fn browser_posts_from_same_origin_only() {
    let Some(chromium) = common::chromium() else {
        common::skip_unless_ci("Chromium (/usr/bin/chromium) is not installed");
        return;
    };
    let dir = TempDir::new("stats-admin-browser");
    let sock = dir.path().join("admin.sock");
    let s1 = DemoBackend::start("s1", "1h");
    let (port, evil_port) = (free_port(), free_port());
    let same = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = format!(
        "global\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    stats uri /stats\n    stats admin if LOCALHOST\n\
         \x20   use_backend same if {{ path_beg /page }}\n    default_backend app\n\
         frontend other\n    bind 127.0.0.1:{evil_port}\n    default_backend evil\n\
         backend app\n    server s1 {}\n\
         backend same\n    server p {}\n\
         backend evil\n    server p {}\n",
        sock.display(),
        s1.addr,
        same.local_addr().unwrap(),
        evil.local_addr().unwrap()
    );
    let gate = Wsgate::start(&cfg);
    let stats = format!("http://127.0.0.1:{port}/stats");
    let (_, _, html) = curl(&[&stats]);
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    serve_page(same, posting_page("/stats", &token));
    serve_page(evil, posting_page(&stats, &token));

    // Another origin, right token: refused, nothing changes.
    let dom = dump_dom(&chromium, &format!("http://127.0.0.1:{evil_port}/"));
    assert!(dom.contains("403 Forbidden"), "{dom}\n{}", gate.log());
    assert_eq!(state(&sock, "s1").0, "0");

    // The page's own origin: the form goes through, the browser follows
    // the 303 to the page, which says so.
    let dom = dump_dom(&chromium, &format!("http://127.0.0.1:{port}/page"));
    assert!(
        dom.contains("Action processed successfully."),
        "{dom}\n{}",
        gate.log()
    );
    assert_eq!(state(&sock, "s1").0, "8", "drain");
}
