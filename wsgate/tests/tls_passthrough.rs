//! TLS passthrough routed by SNI (`mode tcp`, no `ssl` on the bind):
//! `tcp-request inspect-delay`, `tcp-request content accept if {
//! req.ssl_hello_type 1 }` and `use_backend ... if { req.ssl_sni ... }`,
//! HAProxy's classic configuration. Two TLS servers with different
//! certificates (wsgate instances terminating TLS) sit behind the
//! passthrough; which one answered is read from the certificate
//! (`openssl s_client -servername`), from curl (`--resolve`, verifying
//! against the test CA) and from a `wss://` echo with tokio-tungstenite.
//! A plain-text client, a silent one, a cut hello and a hello without SNI
//! go to the default backend; HAProxy 2.6 runs the same file side by side.
//!
//! Needs `openssl` and `curl`, and `/usr/sbin/haproxy` for the
//! comparison; without them the tests are skipped, except in CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, skip_unless_ci, DemoBackend, TempDir, Wsgate};
use tls_support::{have, served_cn, Ca, Haproxy};

/// A raw TCP server that writes `name` and a newline to each connection
/// (the default backend: anything that is not TLS for a known name).
fn naming_server(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.write_all(format!("{name}\n").as_bytes());
                std::thread::sleep(Duration::from_millis(500));
            });
        }
    });
    addr
}

/// The TLS servers behind the passthrough: a wsgate with one `bind ...
/// ssl` per name, each answering `/name` with its letter and passing
/// WebSockets to its own demo backend.
struct Servers {
    dir: TempDir,
    _gate: Wsgate,
    _demos: Vec<DemoBackend>,
    a: u16,
    b: u16,
    plain: SocketAddr,
    ca_der: rustls_pki_types::CertificateDer<'static>,
}

impl Servers {
    fn start() -> Servers {
        let ca = Ca::new();
        let dir = TempDir::new("passthrough");
        let certs = TempDir::new("passthrough-servers");
        certs.write("a.pem", ca.leaf("a.example.com", &[]));
        certs.write("b.pem", ca.leaf("b.example.com", &[]));
        dir.write("ca.pem", &ca.pem);
        let demos = vec![
            DemoBackend::start("da", "300ms"),
            DemoBackend::start("db", "300ms"),
        ];
        let (a, b) = (free_port(), free_port());
        let mut cfg = String::from(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n",
        );
        for (letter, port, demo) in [("a", a, &demos[0]), ("b", b, &demos[1])] {
            cfg.push_str(&format!(
                "frontend fe_{letter}\n    bind 127.0.0.1:{port} ssl crt {letter}.pem\n\
                 \x20   http-request return status 200 content-type text/plain string {letter} if {{ path /name }}\n\
                 \x20   default_backend demo_{letter}\n\
                 backend demo_{letter}\n    server s {}\n",
                demo.addr
            ));
        }
        let gate = Wsgate::start_in(certs, &cfg);
        let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(ca.pem.as_bytes()).unwrap();
        Servers {
            dir,
            _gate: gate,
            _demos: demos,
            a,
            b,
            plain: naming_server("plain"),
            ca_der,
        }
    }

    /// The passthrough frontend (HAProxy's documented example, plus
    /// reject rules) on `port`, and a second one on `short` with a 300 ms
    /// delay for the clients that never complete a hello.
    fn passthrough(&self, port: u16, short: u16, log: bool) -> String {
        let log = if log {
            "global\n    log stdout format raw local0\n"
        } else {
            ""
        };
        let logged = if log.is_empty() {
            ""
        } else {
            "    log global\n    option tcplog\n"
        };
        let rules = "    tcp-request content reject if { req.ssl_sni -i evil.example.com }\n\
                     \x20   tcp-request content reject if { req.ssl_ver lt 3.1 }\n\
                     \x20   tcp-request content accept if { req.ssl_hello_type 1 }\n\
                     \x20   use_backend bk_a if { req.ssl_sni -i a.example.com }\n\
                     \x20   use_backend bk_b if { req_ssl_sni -i B.example.com }\n\
                     \x20   default_backend bk_plain\n";
        format!(
            "{log}defaults\n    mode tcp\n{logged}    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend sni\n    bind 127.0.0.1:{port}\n    tcp-request inspect-delay 5s\n{rules}\
             frontend sni_short\n    bind 127.0.0.1:{short}\n    tcp-request inspect-delay 300ms\n{rules}\
             backend bk_a\n    server a 127.0.0.1:{}\n\
             backend bk_b\n    server b 127.0.0.1:{}\n\
             backend bk_plain\n    server plain {}\n",
            self.a, self.b, self.plain
        )
    }
}

fn peers_present() -> bool {
    if !have("openssl") || Command::new("curl").arg("--version").output().is_err() {
        skip_unless_ci("openssl and curl are needed");
        return false;
    }
    true
}

/// A real ClientHello (rustls), with `name` as SNI or none.
fn client_hello(name: Option<&str>) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.enable_sni = name.is_some();
    let server = rustls_pki_types::ServerName::try_from(name.unwrap_or("none.invalid"))
        .unwrap()
        .to_owned();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Sends `bytes` (nothing when empty), then reads until the peer closes
/// or 8 s pass: what came back, and how long the first byte (or the close)
/// took.
fn exchange(port: u16, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let started = Instant::now();
    if !bytes.is_empty() {
        s.write_all(bytes).unwrap();
    }
    let mut got = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first.get_or_insert_with(|| started.elapsed());
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"\n") {
                    break;
                }
            }
        }
    }
    (got, first.unwrap_or_else(|| started.elapsed()))
}

/// What a client sees through the passthrough on `port` (`short`: the
/// 300 ms frontend), one line per case; the same for wsgate and HAProxy.
fn observe(port: u16, short: u16) -> Vec<String> {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).trim().to_owned();
    let hello = client_hello(Some("a.example.com"));
    vec![
        format!("a: {:?}", served_cn(port, Some("a.example.com"))),
        format!("b: {:?}", served_cn(port, Some("b.example.com"))),
        format!("A (case): {:?}", served_cn(port, Some("A.EXAMPLE.COM"))),
        format!(
            "other: {}",
            text(exchange(port, &client_hello(Some("c.example.com"))).0)
        ),
        format!("no sni: {}", text(exchange(port, &client_hello(None)).0)),
        format!(
            "plain text: {}",
            text(exchange(port, b"GET / HTTP/1.0\r\n\r\n").0)
        ),
        format!(
            "evil: {:?}",
            text(exchange(port, &client_hello(Some("evil.example.com"))).0)
        ),
        // A hello offering SSLv3 (3.0): refused by `req.ssl_ver lt 3.1`.
        format!(
            "sslv3: {:?}",
            text(exchange(port, b"\x16\x03\x00\x00\x06\x01\x00\x00\x02\x03\x00").0)
        ),
        format!("silent: {}", text(exchange(short, b"").0)),
        format!(
            "cut hello: {}",
            text(exchange(short, &hello[..hello.len() / 2]).0)
        ),
    ]
}

#[test]
fn sni_routes_tls_it_does_not_terminate() {
    if !peers_present() {
        return;
    }
    let servers = Servers::start();
    let (port, short) = (free_port(), free_port());
    let gate = Wsgate::start(&servers.passthrough(port, short, true));
    let seen = observe(port, short);
    assert_eq!(
        seen,
        [
            "a: Some(\"a.example.com\")",
            "b: Some(\"b.example.com\")",
            "A (case): Some(\"a.example.com\")",
            "other: plain",
            "no sni: plain",
            "plain text: plain",
            "evil: \"\"",
            "sslv3: \"\"",
            "silent: plain",
            "cut hello: plain",
        ],
        "{}",
        gate.log()
    );
    // curl verifies the certificate against the test CA: the TLS server
    // for the name answered, end to end.
    for letter in ["a", "b"] {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert"])
            .arg(servers.dir.path().join("ca.pem"))
            .arg("--resolve")
            .arg(format!("{letter}.example.com:{port}:127.0.0.1"))
            .arg(format!("https://{letter}.example.com:{port}/name"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            letter,
            "curl: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            gate.log()
        );
    }
    // The tcplog line of the rejected connection: no backend, `PR`.
    let log = common::poll_until(Duration::from_secs(5), "the PR log line", || {
        let log = gate.log();
        log.lines().any(|l| l.contains(" PR ")).then_some(log)
    });
    let log = log.unwrap_or_else(|e| panic!("{e}:\n{}", gate.log()));
    assert!(
        log.lines()
            .any(|l| l.contains("sni sni/<NOSRV>") && l.contains(" PR ")),
        "{log}"
    );
}

#[test]
fn a_client_that_is_not_tls_is_not_kept_waiting() {
    if !peers_present() {
        return;
    }
    let servers = Servers::start();
    let (port, short) = (free_port(), free_port());
    let gate = Wsgate::start(&servers.passthrough(port, short, false));
    // Plain text is known not to be a hello from its first byte: the
    // rules decide at once, not after the 5 s delay.
    let (got, took) = exchange(port, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(got, b"plain\n", "{}", gate.log());
    assert!(took < Duration::from_secs(4), "waited {took:?}");
    // A hello sent in two parts is waited for, then routed by its name.
    let hello = client_hello(Some("b.example.com"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&hello[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(&hello[7..]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x16, "a TLS handshake record from server b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_through_the_passthrough() {
    if !peers_present() {
        return;
    }
    let (servers, gate, port) = tokio::task::spawn_blocking(|| {
        let servers = Servers::start();
        let (port, short) = (free_port(), free_port());
        let gate = Wsgate::start(&servers.passthrough(port, short, false));
        (servers, gate, port)
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(servers.ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(config));
    for (name, demo) in [("a.example.com", "da"), ("b.example.com", "db")] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("wss://{name}:{port}/");
        let handshake = tokio_tungstenite::client_async_tls_with_config(
            url.as_str(),
            tcp,
            None,
            Some(connector.clone()),
        );
        let (mut ws, resp) = tokio::time::timeout(common::ws::WS_DEADLINE, handshake)
            .await
            .unwrap_or_else(|_| panic!("{url}: no handshake; {}", gate.log()))
            .unwrap_or_else(|e| panic!("{url}: {e}; {}", gate.log()));
        assert_eq!(resp.status().as_u16(), 101);
        common::ws::check_echo_and_push(&mut ws, demo, name).await;
    }
}

#[test]
fn same_routing_as_haproxy() {
    if !peers_present() {
        return;
    }
    if !std::path::Path::new("/usr/sbin/haproxy").exists() {
        skip_unless_ci("haproxy is not installed");
        return;
    }
    let servers = Servers::start();
    let (port, short) = (free_port(), free_port());
    let gate = Wsgate::start(&servers.passthrough(port, short, false));
    let (hport, hshort) = (free_port(), free_port());
    let cfg = servers
        .dir
        .write("haproxy.cfg", servers.passthrough(hport, hshort, false));
    let _haproxy = Haproxy::start(
        &cfg,
        &[hport, hshort],
        servers.dir.path().join("haproxy.log"),
    );
    let ours = observe(port, short);
    let theirs = observe(hport, hshort);
    assert_eq!(
        ours,
        theirs,
        "wsgate (left) and HAProxy (right); wsgate log:\n{}",
        gate.log()
    );
}
