//! `stats admin if <cond>` through the real binary, driven with curl: the
//! page (with `stats auth`) shows per-server forms carrying the process's
//! token; HAProxy's POST fields (`s=<server>&action=<action>&b=<backend>`)
//! drain, maintain, re-weight and ready a server, answered with `303` to
//! `<uri>;st=DONE`, and the effect is checked with real WebSocket clients
//! and the runtime API; a missing token, a foreign `Origin`, a wrong
//! password, and a frontend without `stats admin` are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
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

fn cli(sock: &Path, command: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
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
    for (body, needle) in [
        ("frontend fe\n    bind 127.0.0.1:1\n    stats admin\n    default_backend be\nbackend be\n    server s 127.0.0.1:2\n", ":8:5: error: 'stats admin' needs a condition"),
        ("frontend fe\n    bind 127.0.0.1:1\n    stats admin if nope\n    default_backend be\nbackend be\n    server s 127.0.0.1:2\n", ":8:"),
        ("frontend fe\n    bind 127.0.0.1:1\n    default_backend be\nbackend be\n    stats admin if { always_true }\n    server s 127.0.0.1:2\n", ":10:5: error: 'stats admin' is supported in frontend and listen sections"),
    ] {
        let path = dir.write("bad.cfg", format!("{head}{body}"));
        let (status, out) = common::run_wsgate(&["-c".as_ref(), "-f".as_ref(), path.as_os_str()], DEADLINE);
        assert!(!status.success(), "{body}: {out}");
        assert!(out.contains(needle), "{needle} in {out}");
    }
}
