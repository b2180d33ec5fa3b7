//! Certificates are re-read on reload: a certificate added to a `crt`
//! directory is served after SIGHUP, without a restart, while a wss
//! connection opened before keeps working (checked with `openssl
//! s_client -servername` and tokio-tungstenite over rustls).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::time::Duration;

use common::ws::{connect, echo, expected_echo};
use common::{free_port, DemoBackend, TempDir, Wsgate};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tls_support::{openssl_present, served_cn, Ca};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_added_to_the_directory_is_served_after_sighup() {
    if !openssl_present() {
        return;
    }
    let ca = Ca::new();
    let ca_der = CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap();
    let dir = TempDir::new("tls-reload");
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    dir.write("certs/00-localhost.pem", ca.leaf("localhost", &[]));
    let backend = DemoBackend::start("b1", "1h");
    let port = free_port();
    let gate = Wsgate::start_in(
        dir,
        &format!(
            "defaults\n mode http\n timeout client 30s\n timeout connect 2s\n timeout server 30s\n timeout tunnel 1h\n\
             frontend fe\n bind 127.0.0.1:{port} ssl crt certs\n default_backend app\n\
             backend app\n server b1 {}\n",
            backend.addr
        ),
    );
    let url = format!("wss://localhost:{port}/ws");
    let mut held = connect(&url, Some(&ca_der)).await;
    let (got, _) = echo(&mut held, "before", "held wss before the reload").await;
    assert_eq!(got, expected_echo("before", "b1"));
    // Unknown name: the default certificate.
    assert_eq!(
        served_cn(port, Some("new.example.com")).as_deref(),
        Some("localhost")
    );

    gate.dir
        .write("certs/10-new.pem", ca.leaf("new.example.com", &[]));
    gate.guard.signal(libc::SIGHUP);
    logged(&gate, "reloaded");

    assert_eq!(
        served_cn(port, Some("new.example.com")).as_deref(),
        Some("new.example.com"),
        "{}",
        gate.log()
    );
    assert_eq!(
        served_cn(port, Some("localhost")).as_deref(),
        Some("localhost")
    );
    let (got, _) = echo(&mut held, "after", "held wss after the reload").await;
    assert_eq!(got, expected_echo("after", "b1"));
    let mut fresh = connect(&url, Some(&ca_der)).await;
    echo(&mut fresh, "fresh", "wss opened after the reload").await;

    // An expired certificate refuses the next reload; the loaded ones stay.
    let (c, k) = ca.leaf_dated("old.example.com", &[], (2019, 1, 1), (2021, 1, 1));
    gate.dir.write("certs/20-old.pem", format!("{c}{k}"));
    gate.guard.signal(libc::SIGHUP);
    logged(&gate, "reload refused");
    assert!(gate
        .log()
        .contains("20-old.pem': certificate expired on 2021-01-01"));
    assert_eq!(
        served_cn(port, Some("new.example.com")).as_deref(),
        Some("new.example.com")
    );
    echo(&mut held, "still", "held wss after the refused reload").await;
}

fn logged(gate: &Wsgate, line: &str) {
    common::poll_until(Duration::from_secs(20), line, || {
        gate.log().contains(line).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));
}
