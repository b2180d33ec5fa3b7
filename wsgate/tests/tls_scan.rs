//! An independent TLS scan of wsgate's default TLS settings: testssl.sh
//! (Debian package `testssl.sh`) against a `bind ... ssl crt` with nothing
//! else set. It exits 0 whatever it finds, so its JSON report is read: no
//! protocol below TLS 1.2, no weak cipher class offered, forward secrecy.
//! With `ssl-min-ver TLSv1.3`, TLS 1.2 is not offered either.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TempDir, TestCert, Wsgate};

fn testssl() -> Option<&'static str> {
    ["/usr/bin/testssl", "/usr/bin/testssl.sh"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Scans `port` and returns each finding id with its text.
fn scan(tool: &str, dir: &Path, port: u16) -> HashMap<String, String> {
    let json = dir.join("scan.json");
    let mut cmd = Command::new(tool);
    cmd.args([
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--jsonfile-pretty",
    ])
    .arg(&json)
    .args(["--protocols", "--std", "--fs"])
    .arg(format!("127.0.0.1:{port}"));
    let (status, out, err) = common::run_with_deadline(cmd, Duration::from_secs(600)).unwrap();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no report ({e}); testssl {status:?}:\n{out}\n{err}"));
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut findings = HashMap::new();
    for result in report["scanResult"].as_array().unwrap() {
        for (_, section) in result.as_object().unwrap() {
            for f in section.as_array().into_iter().flatten() {
                if let (Some(id), Some(finding)) = (f["id"].as_str(), f["finding"].as_str()) {
                    findings.insert(id.to_string(), finding.to_string());
                }
            }
        }
    }
    findings
}

fn config(port: u16, cert: &Path, bind_extra: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend fe\n    bind 127.0.0.1:{port} ssl crt {}{bind_extra}\n\
         \x20   http-request return status 200 content-type text/plain string ok\n",
        cert.display()
    )
}

#[test]
fn default_tls_settings_pass_a_testssl_scan() {
    let Some(tool) = testssl() else {
        common::skip_unless_ci("testssl.sh (Debian package testssl.sh) is missing");
        return;
    };
    let dir = TempDir::new("tls-scan");
    let cert = TestCert::generate(dir.path(), "site.pem");
    let scan_dir = TempDir::new("tls-scan-out");

    let port = common::free_port();
    let gate = Wsgate::start_in(dir, &config(port, &cert.pem_path, ""));
    let f = scan(tool, scan_dir.path(), port);
    let get = |id: &str| {
        f.get(id)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no '{id}' in the scan: {f:?}\n{}", gate.log()))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert_eq!(get(old), "not offered", "{old}");
    }
    assert_eq!(get("TLS1_2"), "offered");
    assert!(get("TLS1_3").starts_with("offered"), "{}", get("TLS1_3"));
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(get(weak), "not offered", "{weak}");
    }
    assert!(get("cipherlist_STRONG").starts_with("offered"));
    assert_eq!(get("PFS"), "offered", "forward secrecy");
    drop(gate);

    // ssl-min-ver TLSv1.3: TLS 1.2 goes too.
    let dir = TempDir::new("tls-scan13");
    let cert = TestCert::generate(dir.path(), "site.pem");
    let port = common::free_port();
    let _gate = Wsgate::start_in(dir, &config(port, &cert.pem_path, " ssl-min-ver TLSv1.3"));
    let scan_dir = TempDir::new("tls-scan13-out");
    let f = scan(tool, scan_dir.path(), port);
    assert_eq!(f.get("TLS1_2").map(String::as_str), Some("not offered"));
    assert!(
        f.get("TLS1_3").is_some_and(|s| s.starts_with("offered")),
        "{f:?}"
    );
}
