//! `ssl_fc_sni`: routing on the server name a client asked for in its TLS
//! handshake, in mode http (curl with `--resolve`, so the name is sent as
//! SNI) and in mode tcp (openssl s_client `-servername`), where a
//! `tcp-request content reject` rule can read it too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::{TempDir, TestCert, Wsgate};

fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

/// curl over TLS to `127.0.0.1:port` with `name` as SNI; the body.
fn curl_sni(port: u16, name: &str) -> String {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg(format!("https://{name}:{port}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A raw TCP server that writes `name` and a newline to each connection.
fn naming_server(name: &'static str) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(format!("{name}\n").as_bytes());
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    addr
}

/// openssl s_client to `port` with `name` as SNI; what the server wrote.
fn s_client_sni(port: u16, name: &str) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", name]);
    let (_, out, _) = common::run_with_deadline(cmd, Duration::from_secs(10)).unwrap();
    out.trim().to_string()
}

#[test]
fn ssl_fc_sni_routes_in_http_and_tcp_mode() {
    if !tool("curl") || !tool("openssl") {
        common::skip_unless_ci("curl and openssl are needed");
        return;
    }
    let dir = TempDir::new("ssl-fc-sni");
    let cert = TestCert::generate(dir.path(), "site.pem");
    let (http, tcp) = (common::free_port(), common::free_port());
    let (ta, tb) = (naming_server("ta"), naming_server("tb"));
    let pem = cert.pem_path.display();
    let gate = Wsgate::start_in(
        dir,
        &format!(
            "defaults\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend web\n    mode http\n    bind 127.0.0.1:{http} ssl crt {pem}\n\
             \x20   use_backend a if {{ ssl_fc_sni -i A.example.com }}\n    default_backend b\n\
             backend a\n    mode http\n    http-request return status 200 content-type text/plain string a\n\
             backend b\n    mode http\n    http-request return status 200 content-type text/plain string b\n\
             frontend raw\n    mode tcp\n    bind 127.0.0.1:{tcp} ssl crt {pem}\n\
             \x20   tcp-request content reject if {{ ssl_fc_sni -i bad.example.com }}\n\
             \x20   use_backend ta if {{ ssl_fc_sni -m end .a.example.com }}\n    default_backend tb\n\
             backend ta\n    mode tcp\n    server ta {ta}\n\
             backend tb\n    mode tcp\n    server tb {tb}\n"
        ),
    );
    assert_eq!(curl_sni(http, "a.example.com"), "a", "{}", gate.log());
    assert_eq!(curl_sni(http, "b.example.com"), "b");
    assert_eq!(
        s_client_sni(tcp, "ws.a.example.com"),
        "ta",
        "{}",
        gate.log()
    );
    assert_eq!(s_client_sni(tcp, "other.example.com"), "tb");
    // A content rule on a bind that terminates TLS runs once the handshake
    // is done, on what it said (no ClientHello to wait for).
    assert_eq!(s_client_sni(tcp, "bad.example.com"), "", "{}", gate.log());
}
