//! Headless Chromium opens the demo page through wsgate over http and
//! https; the page's WebSocket (same origin, ws or wss by the page's
//! scheme) receives an echo and a push, read back from the page's DOM.
//!
//! The page (wsgate/src/demo/page.html) sends `hello from the page` on
//! open and writes what it gets into elements with stable ids. Over https
//! Chromium trusts exactly the test certificate's key
//! (`--ignore-certificate-errors-spki-list`), not any certificate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ChildGuard, DemoBackend, TempDir, TestCert, Wsgate};

const PAGE_ECHO: &str = "got your message: hello from the page";

/// The text inside the element with `id` (up to its first child tag), as
/// Chromium's `--dump-dom` serialises it.
fn element_text<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let marker = format!("id=\"{id}\"");
    let at = dom.find(&marker)?;
    let open_end = at + dom[at..].find('>')? + 1;
    let rest = &dom[open_end..];
    Some(rest[..rest.find('<').unwrap_or(rest.len())].trim())
}

/// The base64 SHA-256 of a certificate's public key (SPKI), computed by
/// openssl, for Chromium's `--ignore-certificate-errors-spki-list`: the
/// browser trusts exactly that test key, and nothing else.
fn spki_hash(pem: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | openssl enc -base64",
        pem.display()
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Loads `url` in headless Chromium and returns the DOM after the page's
/// scripts ran for `budget_ms` of virtual time. `spki` pins the test
/// certificate for https.
fn dump_dom(chromium: &std::path::Path, url: &str, spki: Option<&str>, budget_ms: u32) -> String {
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
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--virtual-time-budget={budget_ms}"));
    if let Some(spki) = spki {
        cmd.arg(format!("--ignore-certificate-errors-spki-list={spki}"));
    }
    cmd.arg("--dump-dom").arg(url);
    let (status, out, err) = common::run_with_deadline(cmd, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("chromium on {url}: {e}"));
    assert!(status.success(), "chromium on {url}: {status}\n{err}");
    out
}

/// Opens `url` and checks the page showed the echo (naming one of
/// `servers`) and a push. Chromium's virtual time makes a single run
/// usually enough; a loaded machine gets two more runs with larger budgets
/// before the test fails.
fn check_page(
    chromium: &std::path::Path,
    url: &str,
    spki: Option<&str>,
    servers: &[&str],
    log: &dyn Fn() -> String,
) {
    let mut last = String::new();
    for budget in [3000, 6000, 10000] {
        let dom = dump_dom(chromium, url, spki, budget);
        let echo = element_text(&dom, "echo").unwrap_or_default();
        let push = element_text(&dom, "push").unwrap_or_default();
        let echo_ok = echo.starts_with(PAGE_ECHO)
            && servers.iter().any(|s| echo.ends_with(&format!("[{s}]")));
        let push_ok = !push.is_empty() && servers.iter().any(|s| push.contains(s));
        if echo_ok && push_ok {
            return;
        }
        last = format!("echo element: {echo:?}\npush element: {push:?}\nDOM:\n{dom}");
    }
    panic!(
        "{url}: the page did not show the echo and a push\n{last}\nwsgate log:\n{}",
        log()
    );
}

fn chromium_or_skip() -> Option<std::path::PathBuf> {
    let c = common::chromium();
    if c.is_none() {
        common::skip_unless_ci("Chromium (/usr/bin/chromium) is not installed");
    }
    c
}

#[test]
fn demo_page_through_config_over_http_and_https() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let backend = DemoBackend::start("s1", "500ms");
    let dir = TempDir::new("browser");
    let cert = TestCert::generate(dir.path(), "site.pem");
    let (http, https) = (common::free_port(), common::free_port());
    let config = format!(
        "\
frontend web
    mode http
    timeout client 30s
    bind 127.0.0.1:{http}
    bind 127.0.0.1:{https} ssl crt {pem}
    default_backend demo

backend demo
    mode http
    timeout connect 5s
    timeout server 30s
    server s1 {addr}
",
        pem = cert.pem_path.display(),
        addr = backend.addr
    );
    let gate = Wsgate::start_in(dir, &config);
    let log = || gate.log();
    check_page(
        &chromium,
        &format!("http://127.0.0.1:{http}/"),
        None,
        &["s1"],
        &log,
    );
    let spki = spki_hash(&cert.pem_path);
    check_page(
        &chromium,
        &format!("https://127.0.0.1:{https}/"),
        Some(&spki),
        &["s1"],
        &log,
    );
}

#[test]
fn wsgate_demo_command_over_http_and_https() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = TempDir::new("demo");
    let (http, https) = (common::free_port(), common::free_port());
    let mut cmd = Command::new(common::wsgate_bin());
    cmd.args(["demo", "--port", &http.to_string()])
        .args(["--tls-port", &https.to_string()])
        .current_dir(dir.path());
    let mut demo = ChildGuard::spawn(cmd, dir.path().join("demo.log"));
    let addrs = [http, https].map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    let ready = common::poll_until(common::START_DEADLINE, "wsgate demo to listen", || {
        if let Ok(Some(status)) = demo.child.try_wait() {
            return Some(Err(status));
        }
        addrs.iter().all(|a| common::accepts(*a)).then_some(Ok(()))
    });
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(status)) => panic!("wsgate demo exited ({status}):\n{}", demo.output()),
        Err(e) => panic!("{e}\n{}", demo.output()),
    }
    let log = || demo.output();
    let servers = ["s1", "s2", "s3"];
    check_page(
        &chromium,
        &format!("http://127.0.0.1:{http}/"),
        None,
        &servers,
        &log,
    );
    // The demo prints where its certificate is: pin exactly that key.
    let out = demo.output();
    let pem = out
        .lines()
        .find_map(|l| l.strip_prefix("certificate "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no certificate path in the demo output:\n{out}"));
    let spki = spki_hash(std::path::Path::new(pem));
    check_page(
        &chromium,
        &format!("https://127.0.0.1:{https}/"),
        Some(&spki),
        &servers,
        &log,
    );
    // The demo prints where its certificate is and its fingerprint.
    let out = demo.output();
    assert!(
        out.to_ascii_lowercase().contains("sha-256") || out.to_ascii_lowercase().contains("sha256"),
        "demo output should show the certificate's SHA-256 fingerprint:\n{out}"
    );
}
