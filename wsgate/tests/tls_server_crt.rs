//! `server ... ssl crt <pem>` and `default-server ... crt <pem>`: the
//! client certificate wsgate presents to a TLS server that asks for one
//! (mutual TLS to the backend). The servers: a wsgate frontend with
//! `verify required` that answers with the CN it received (`ssl_c_s_dn`),
//! and `openssl s_server -Verify 1`, which prints the certificate it got.
//! Without `crt` the server refuses the handshake and the client gets 503.
//! Configuration errors name the `server` line.
//!
//! Needs `curl` and `openssl`; without them the tests are skipped, except
//! in CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::process::Command;
use std::time::Duration;

use common::{free_port, run_wsgate, skip_unless_ci, ChildGuard, TempDir, Wsgate};
use tls_support::{have, Ca};

fn get(port: u16, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn server_crt_is_presented_to_servers_that_ask() {
    if !have("openssl") || Command::new("curl").arg("--version").output().is_err() {
        skip_unless_ci("curl and openssl are needed");
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("server-crt");
    let ca_path = dir.write("ca.pem", &ca.pem);
    let (c, k) = ca.leaf_dated("localhost", &["127.0.0.1"], (2020, 1, 1), (2090, 1, 1));
    let backend_pem = dir.write("backend.pem", format!("{c}{k}"));
    let backend_crt = dir.write("backend.crt", &c);
    let backend_key = dir.write("backend.key", &k);
    // One PEM with the key, and one with the key in `<file>.key`.
    dir.write("client.pem", ca.leaf("wsgate-client", &[]));
    let (c, k) = ca.leaf_dated("wsgate-client2", &[], (2020, 1, 1), (2090, 1, 1));
    dir.write("client2.pem", c);
    dir.write("client2.pem.key", k);

    let b = free_port();
    let servers = Wsgate::start(&format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend mtls\n    bind 127.0.0.1:{b} ssl crt {} ca-file {} verify required\n\
         \x20   http-request return status 200 content-type text/plain lf-string \"cn=%[ssl_c_s_dn(cn)]\"\n",
        backend_pem.display(),
        ca_path.display()
    ));
    let o = free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-Verify", "1", "-www", "-CAfile"])
        .arg(&ca_path)
        .arg("-cert")
        .arg(&backend_crt)
        .arg("-key")
        .arg(&backend_key)
        .arg("-accept")
        .arg(o.to_string());
    let s_server = ChildGuard::spawn(cmd, dir.path().join("s_server.log"));
    common::poll_until(Duration::from_secs(10), "openssl s_server", || {
        common::accepts(([127, 0, 0, 1], o).into()).then_some(())
    })
    .unwrap();

    let p = free_port();
    let ca = ca_path.display();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind 127.0.0.1:{p}\n\
         \x20   use_backend with_crt if {{ path_beg /with }}\n\
         \x20   use_backend defaulted if {{ path_beg /default }}\n\
         \x20   use_backend openssl if {{ path_beg /openssl }}\n\
         \x20   default_backend without_crt\n\
         backend with_crt\n    server b 127.0.0.1:{b} ssl ca-file {ca} crt client.pem\n\
         backend defaulted\n    default-server ssl ca-file {ca} crt client2.pem\n    server b 127.0.0.1:{b}\n\
         backend openssl\n    server o 127.0.0.1:{o} ssl ca-file {ca} crt client.pem\n\
         backend without_crt\n    server b 127.0.0.1:{b} ssl ca-file {ca}\n"
    );
    let gate = Wsgate::start_in(dir, &cfg);
    assert_eq!(
        get(p, "/with"),
        (200, "cn=wsgate-client".to_owned()),
        "{}\n{}",
        gate.log(),
        servers.log()
    );
    assert_eq!(get(p, "/default"), (200, "cn=wsgate-client2".to_owned()));
    let (status, page) = get(p, "/openssl");
    assert_eq!(status, 200, "{page}\n{}", s_server.output());
    assert!(
        page.contains("Client certificate") && page.contains("Subject: CN=wsgate-client"),
        "{page}"
    );
    // Without `crt` the server refuses: in TLS 1.3 the client's side of
    // the handshake is over before the server reads the (empty)
    // certificate, so the refusal is an alert where the response should
    // be: 502, as for a server that closes without answering.
    assert_eq!(get(p, "/").0, 502, "{}", gate.log());
}

#[test]
fn server_crt_errors_name_the_line() {
    let ca = Ca::new();
    let dir = TempDir::new("server-crt-errors");
    let (c, _) = ca.leaf_dated("no-key", &[], (2020, 1, 1), (2090, 1, 1));
    let nokey = dir.write("nokey.pem", c);
    let missing = dir.path().join("missing.pem");
    let (nokey, missing) = (nokey.display(), missing.display());
    let cases = [
        (
            format!("ssl verify none crt {missing}"),
            "error: [environment] crt '",
            "missing.pem' does not exist",
        ),
        (
            format!("ssl verify none crt {nokey}"),
            "error:",
            "no private key in",
        ),
        (format!("crt {nokey}"), "warning:", "has `crt` but no `ssl`"),
    ];
    for (options, kind, message) in cases {
        let path = dir.write(
            "bad.cfg",
            format!(
                "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
                 frontend fe\n    bind 127.0.0.1:{}\n    default_backend be\n\
                 backend be\n    server s1 127.0.0.1:1 {options}\n",
                free_port(),
            ),
        );
        let (status, out) = run_wsgate(
            &[
                std::ffi::OsStr::new("-c"),
                std::ffi::OsStr::new("-f"),
                path.as_os_str(),
            ],
            Duration::from_secs(30),
        );
        assert_eq!(status.success(), kind == "warning:", "{options}:\n{out}");
        assert!(
            out.contains("bad.cfg:10:") && out.contains(kind) && out.contains(message),
            "{options}: expected `{kind} ... {message}` at line 10:\n{out}"
        );
    }
}
