//! TLS to servers (`server ... ssl`): a `wss://` backend (tokio-rustls +
//! tokio-tungstenite, no code shared with the proxy) reached through wsgate
//! with `verify none`, with `verify required` and the right CA, and refused
//! (503, with the reason logged) when the CA is wrong; `sni req.hdr(host)`
//! checked against a wsgate TLS frontend with `strict-sni` as the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, next_text};
use common::{TempDir, TestCert, Wsgate};

/// A `wss://` echo server with the test certificate (for localhost).
async fn wss_backend(cert: &TestCert) -> SocketAddr {
    let pem = std::fs::read(&cert.pem_path).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&pem).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(Message::Text(t))) = ws.next().await {
                    let _ = ws.send(Message::Text(format!("tls:{t}").into())).await;
                }
            });
        }
    });
    addr
}

fn config(port: u16, server_line: &str) -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    {server_line}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_backends_with_and_without_verification() {
    let dir = TempDir::new("backend-tls");
    let cert = TestCert::generate(dir.path(), "server");
    let backend = wss_backend(&cert).await;
    let ca = cert.ca_path.display();
    for server_line in [
        format!("server s1 {backend} ssl verify none"),
        format!("server s1 {backend} ssl verify required ca-file {ca} sni str(localhost)"),
        format!("server s1 {backend} ssl ca-file {ca}"),
    ] {
        let port = common::free_port();
        let gate = Wsgate::start(&config(port, &server_line));
        let mut ws = connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
        ws.send(Message::Text("hi".into())).await.unwrap();
        assert_eq!(
            next_text(&mut ws, &server_line).await,
            "tls:hi",
            "{server_line}\n{}",
            gate.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused_with_503() {
    let dir = TempDir::new("backend-tls-bad");
    let cert = TestCert::generate(dir.path(), "server");
    let other_dir = TempDir::new("backend-tls-other");
    let other = TestCert::generate(other_dir.path(), "other");
    let backend = wss_backend(&cert).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        &format!(
            "server s1 {backend} ssl verify required ca-file {}",
            other.ca_path.display()
        ),
    ));
    let status = common::http::status_of(
        SocketAddr::from(([127, 0, 0, 1], port)),
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        "wrong CA",
    );
    assert_eq!(status, 503, "{}", gate.log());
    let log = gate.log();
    // The reason, not only the prefix: both test CAs are named alike, so
    // the issuer is found by name and its signature does not verify.
    assert!(
        log.lines().any(|l| l.contains(
            "TLS to the server failed: invalid peer certificate: BadSignature: 503 backend=be server=s1"
        )),
        "{log}"
    );
}

#[test]
fn server_sni_from_the_host_header_reaches_a_strict_sni_server() {
    use common::http::{exchange, Script, ScriptedBackend};
    let app = ScriptedBackend::start(Script::Ok);
    let ca = tls_support::Ca::new();
    let dir = TempDir::new("backend-sni");
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    for name in ["a.example.com", "b.example.com"] {
        dir.write(&format!("certs/{name}.pem"), ca.leaf(name, &[]));
    }
    let ca_path = dir.write("ca.pem", &ca.pem);
    // The server: TLS with strict-sni, telling the app which SNI it got
    // (`%[ssl_fc_sni]` is not a log-format fetch yet: one rule per name).
    let back = common::free_port();
    let _server = Wsgate::start_in(
        dir,
        &format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend back\n    bind 127.0.0.1:{back} ssl crt certs strict-sni\n\
             \x20   http-request set-header X-SNI a.example.com if {{ ssl_fc_sni a.example.com }}\n\
             \x20   http-request set-header X-SNI b.example.com if {{ ssl_fc_sni b.example.com }}\n\
             \x20   default_backend app\n\
             backend app\n    server app {}\n",
            app.addr
        ),
    );
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        &format!(
            "server s1 127.0.0.1:{back} ssl verify required ca-file {} sni req.hdr(host)",
            ca_path.display()
        ),
    ));
    let front = SocketAddr::from(([127, 0, 0, 1], port));
    for (host, status) in [
        ("a.example.com", 200),
        ("b.example.com", 200),
        ("c.example.com", 503),
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let resp = exchange(front, request.as_bytes()).unwrap();
        assert_eq!(resp.status(), status, "{host}\n{}", gate.log());
    }
    let sni: Vec<String> = app
        .seen()
        .iter()
        .map(|r| r.header("x-sni").unwrap_or("-").to_owned())
        .collect();
    assert_eq!(sni, ["a.example.com", "b.example.com"]);
}
