//! `http-request redirect scheme https unless { ssl_fc }` and the older
//! `redirect scheme https if !{ ssl_fc }`: plain requests are sent to
//! https with the Host and URI kept; TLS requests go through. The same file
//! passes `haproxy -c` when HAProxy is installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use common::http::{exchange, Script, ScriptedBackend};
use common::{TempDir, TestCert, Wsgate};

fn haproxy_accepts(path: &std::path::Path) {
    if let Some(Err(stderr)) = common::haproxy_check(path) {
        panic!("haproxy -c refused it:\n{stderr}");
    }
}

fn https_status(port: u16, ca: &std::path::Path) -> String {
    let script = "import ssl, sys, http.client\n\
        ctx = ssl.create_default_context(cafile=sys.argv[2])\n\
        c = http.client.HTTPSConnection('localhost', int(sys.argv[1]), context=ctx)\n\
        c.request('GET', '/x')\n\
        print(c.getresponse().status)\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn plain_requests_are_redirected_to_https() {
    let backend = ScriptedBackend::start(Script::Ok);
    for (rule, code) in [
        (
            "http-request redirect scheme https code 301 unless { ssl_fc }",
            301,
        ),
        ("redirect scheme https if !{ ssl_fc }", 302),
    ] {
        let dir = TempDir::new("redirect");
        let cert = TestCert::generate(dir.path(), "site");
        let (plain, tls) = (common::free_port(), common::free_port());
        let cfg = format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind 127.0.0.1:{plain}\n    bind 127.0.0.1:{tls} ssl crt {}\n    {rule}\n    default_backend be\n\
             backend be\n    server s1 {}\n",
            cert.pem_path.display(),
            backend.addr
        );
        let gate = Wsgate::start_in(dir, &cfg);
        haproxy_accepts(&gate.config);
        let resp = exchange(
            SocketAddr::from(([127, 0, 0, 1], plain)),
            b"GET /room/1?user=a HTTP/1.1\r\nHost: chat.example.com:8080\r\n\r\n",
        )
        .unwrap();
        assert_eq!(resp.status(), code, "{rule}\n{}", gate.log());
        assert_eq!(
            resp.header("location"),
            Some("https://chat.example.com:8080/room/1?user=a"),
            "{rule}"
        );
        assert_eq!(
            https_status(tls, &cert.ca_path),
            "200",
            "{rule}\n{}",
            gate.log()
        );
    }
}

/// `curl` over TLS to `localhost:port` trusting `ca`: the response head.
fn https_head(port: u16, ca: &std::path::Path) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
        ])
        .arg(ca)
        .arg(format!("https://localhost:{port}/x"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn forwarded_proto_and_hsts_only_on_the_tls_bind() {
    let backend = ScriptedBackend::start(Script::Ok);
    let dir = TempDir::new("xfp-hsts");
    let cert = TestCert::generate(dir.path(), "site");
    let (plain, tls) = (common::free_port(), common::free_port());
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind 127.0.0.1:{plain}\n    bind 127.0.0.1:{tls} ssl crt {}\n\
         \x20   http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n\
         \x20   http-response set-header Strict-Transport-Security \"max-age=63072000\" if {{ ssl_fc }}\n\
         \x20   default_backend be\n\
         backend be\n    server s1 {}\n",
        cert.pem_path.display(),
        backend.addr
    );
    let gate = Wsgate::start_in(dir, &cfg);
    haproxy_accepts(&gate.config);
    let head = https_head(tls, &cert.ca_path);
    assert!(
        head.starts_with("HTTP/1.1 200")
            && head
                .to_ascii_lowercase()
                .contains("strict-transport-security: max-age=63072000\r\n"),
        "{head}\n{}",
        gate.log()
    );
    let resp = exchange(
        SocketAddr::from(([127, 0, 0, 1], plain)),
        b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("strict-transport-security"), None);
    let seen = backend.seen();
    let proto: Vec<Option<&str>> = seen.iter().map(|r| r.header("x-forwarded-proto")).collect();
    assert_eq!(proto, [Some("https"), None], "TLS request, then plain");
}
