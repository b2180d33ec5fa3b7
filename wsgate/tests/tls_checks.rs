//! TLS health checks and server ALPN through the real binary: `check-ssl`
//! marks a TLS server UP (`L6OK`, or `L7OK` with `option httpchk` over
//! TLS) and a plain one (`L6TOUT`: it waits for a request) or one whose
//! certificate the `ca-file` does not vouch for (`L6RSP`) DOWN; `ssl` without `port` checks over TLS by
//! itself; server `alpn` is what a TLS server (tokio-rustls, reading the
//! ClientHello) is offered, with `h2` left out and warned about. Every
//! status is read from the stats CSV, as HAProxy's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::http::{exchange, Script, ScriptedBackend};
use common::{free_port, poll_until, run_wsgate, TempDir, Wsgate};

/// An HTTPS server (tokio-rustls) for `cert_pem` that records the ALPN
/// list each client offered and answers every request `200 ok`.
struct TlsServer {
    addr: SocketAddr,
    offered: Arc<Mutex<Vec<Vec<String>>>>,
}

fn start_tls_server(rt: &tokio::runtime::Runtime, cert_pem: &str) -> TlsServer {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let offered = Arc::new(Mutex::new(Vec::new()));
    let seen = offered.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (config, seen) = (config.clone(), seen.clone());
            tokio::spawn(async move {
                let acceptor =
                    tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                let Ok(start) = acceptor.await else { return };
                let alpn: Vec<String> = start
                    .client_hello()
                    .alpn()
                    .map(|l| l.map(|p| String::from_utf8_lossy(p).into_owned()).collect())
                    .unwrap_or_default();
                seen.lock().unwrap().push(alpn);
                let Ok(mut tls) = start.into_stream(config).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsServer { addr, offered }
}

/// A runtime whose thread serves the TLS server while the test blocks.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The stats CSV rows by (pxname, svname).
fn stats(addr: SocketAddr) -> HashMap<(String, String), HashMap<String, String>> {
    let csv = exchange(
        addr,
        b"GET /stats;csv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap()
    .body_str();
    let mut lines = csv.lines();
    let cols: Vec<String> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            let row: HashMap<String, String> = cols
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect();
            ((row["pxname"].clone(), row["svname"].clone()), row)
        })
        .collect()
}

#[test]
fn check_ssl_marks_tls_servers_up_and_plain_ones_down() {
    let rt = runtime();
    let ca = tls_support::Ca::new();
    let other_ca = tls_support::Ca::new();
    let dir = TempDir::new("check-ssl");
    let ca_path = dir.write("ca.pem", &ca.pem);
    let other_path = dir.write("other.pem", &other_ca.pem);
    let tls = start_tls_server(&rt, &ca.leaf("localhost", &["127.0.0.1"]));
    let plain = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let (t, p) = (tls.addr, plain.addr);
    let config = format!(
        "defaults\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 1h\n\
         frontend fe\n    mode http\n    bind 127.0.0.1:{port}\n    stats uri /stats\n    default_backend l6\n\
         backend l6\n    mode http\n\
         \x20   server tls {t} check-ssl verify none check inter 200 fall 1\n\
         \x20   server tls-ca {t} check-ssl ca-file {ca} check inter 200 fall 1\n\
         \x20   server tls-other-ca {t} check-ssl ca-file {other} check inter 200 fall 1\n\
         \x20   server plain {p} check-ssl verify none check inter 200 fall 1\n\
         \x20   server plain-tcp {p} check inter 200 fall 1\n\
         \x20   server inherited {t} ssl verify none check inter 200 fall 1\n\
         \x20   server not-inherited {t} ssl verify none check inter 200 fall 1 port {pp}\n\
         backend l7\n    mode http\n    option httpchk GET /health\n\
         \x20   server tls {t} check-ssl verify none check inter 200 fall 1\n\
         \x20   server plain {p} check-ssl verify none check inter 200 fall 1\n",
        ca = ca_path.display(),
        other = other_path.display(),
        pp = p.port(),
    );
    let wsgate = Wsgate::start_in(dir, &config);
    let want = [
        ("l6", "tls", "UP", "L6OK"),
        ("l6", "tls-ca", "UP", "L6OK"),
        ("l6", "tls-other-ca", "DOWN", "L6RSP"),
        // The plain server waits for an HTTP head that never comes.
        ("l6", "plain", "DOWN", "L6TOUT"),
        ("l6", "plain-tcp", "UP", "L4OK"),
        ("l6", "inherited", "UP", "L6OK"),
        // `port` moves the checks, which then stay plain (a plain server).
        ("l6", "not-inherited", "UP", "L4OK"),
        ("l7", "tls", "UP", "L7OK"),
        ("l7", "plain", "DOWN", "L6TOUT"),
    ];
    let seen = poll_until(Duration::from_secs(15), "check results", || {
        let rows = stats(SocketAddr::from(([127, 0, 0, 1], port)));
        let got: Vec<(String, String)> = want
            .iter()
            .map(|(b, s, _, _)| {
                let r = &rows[&(b.to_string(), s.to_string())];
                (r["status"].clone(), r["check_status"].clone())
            })
            .collect();
        let ok = want
            .iter()
            .zip(&got)
            .all(|((_, _, st, cs), (gst, gcs))| gst == st && gcs == cs);
        ok.then_some(got)
    });
    assert!(
        seen.is_ok(),
        "{seen:?}: {:?}\n{}",
        stats(SocketAddr::from(([127, 0, 0, 1], port))),
        wsgate.log()
    );
    let log = wsgate.log();
    assert!(
        log.contains("Server l6/tls-other-ca is DOWN, reason: Layer6 invalid response"),
        "{log}"
    );
    drop(rt);
}

#[test]
fn server_alpn_is_offered_without_h2() {
    let rt = runtime();
    let ca = tls_support::Ca::new();
    let tls = start_tls_server(&rt, &ca.leaf("localhost", &["127.0.0.1"]));
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let t = tls.addr;
    let config = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 1h\n\
         frontend f1\n    bind 127.0.0.1:{p1}\n    default_backend b1\n\
         backend b1\n    server s {t} ssl verify none alpn h2,http/1.1\n\
         frontend f2\n    bind 127.0.0.1:{p2}\n    default_backend b2\n\
         backend b2\n    server s {t} ssl verify none alpn x-custom,http/1.1\n\
         frontend f3\n    bind 127.0.0.1:{p3}\n    default_backend b3\n\
         backend b3\n    server s {t} ssl verify none\n"
    );
    let dir = TempDir::new("alpn");
    let path = dir.write("wsgate.cfg", &config);
    let (status, out) = run_wsgate(
        &[
            std::ffi::OsStr::new("-c"),
            std::ffi::OsStr::new("-f"),
            path.as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert!(status.success(), "{out}");
    assert!(
        out.contains("warning: 'h2' left out of the server ALPN list: wsgate speaks HTTP/1.1 to servers; it offers http/1.1"),
        "{out}"
    );
    let wsgate = Wsgate::start(&config);
    for p in [p1, p2, p3] {
        let resp = exchange(
            SocketAddr::from(([127, 0, 0, 1], p)),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(resp.status(), 200, "{}", wsgate.log());
    }
    assert_eq!(
        *tls.offered.lock().unwrap(),
        [
            vec!["http/1.1".to_owned()],
            vec!["x-custom".to_owned(), "http/1.1".to_owned()],
            vec!["http/1.1".to_owned()],
        ]
    );
    drop(rt);
}
