//! End-to-end tests of the `wsload` binary against the demo backend (run
//! in-process through `wsgate::demo::backend`, so this needs no other
//! binary) and against a small wss echo server built here from
//! tokio-rustls + tokio-tungstenite with a throwaway rcgen certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use wsgate::demo::backend;

async fn demo_backend(name: Option<&str>, push: Duration) -> backend::Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    backend::spawn(
        listener,
        backend::Options {
            name: name.map(str::to_owned),
            push_interval: push,
        },
    )
    .unwrap()
}

/// Runs wsload; returns (success, parsed JSON report).
async fn wsload(args: &[&str]) -> (bool, Value) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wsload"))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("wsload finished in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "wsload printed no JSON ({e}): stdout {stdout:?} stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_binary_against_demo_backend() {
    let b = demo_backend(Some("s1"), Duration::from_millis(50)).await;
    let url = format!("ws://{}/ws", b.addr());
    let (ok, r) = wsload(&[
        "echo",
        "--url",
        &url,
        "--connections",
        "3",
        "--size",
        "1000",
        "--duration",
        "500ms",
    ])
    .await;
    assert!(ok, "{r}");
    assert_eq!(r["connected"], 3, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let messages = r["messages"].as_u64().unwrap();
    assert!(messages > 10, "{r}");
    assert_eq!(r["latency_us"]["count"].as_u64(), Some(messages));
    assert!(r["latency_us"]["p50"].as_u64().unwrap() <= r["latency_us"]["p99"].as_u64().unwrap());
    assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0);
    // Pushes every 50 ms arrived in between and were skipped, not errors.
    assert!(r["server_messages_skipped"].as_u64().unwrap() > 0, "{r}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_text_matches_wrapped_replies() {
    let b = demo_backend(Some("s2"), Duration::from_secs(5)).await;
    let url = format!("ws://{}/", b.addr());
    let (ok, r) = wsload(&[
        "echo",
        "--url",
        &url,
        "--connections",
        "2",
        "--size",
        "64",
        "--duration",
        "300ms",
        "--text",
    ])
    .await;
    assert!(ok, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_keeps_connections_and_closes_cleanly() {
    let b = demo_backend(Some("s3"), Duration::from_millis(100)).await;
    let url = format!("ws://{}/ws", b.addr());
    let (ok, r) = wsload(&[
        "hold",
        "--url",
        &url,
        "--connections",
        "40",
        "--rate",
        "400/s",
        "--hold",
        "300ms",
    ])
    .await;
    assert!(ok, "{r}");
    assert_eq!(r["opened"], 40, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["still_open"], 40, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["closed_clean"], 40, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_reports_connections_the_server_closes() {
    let b = demo_backend(None, Duration::ZERO).await;
    let url = format!("ws://{}/ws", b.addr());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsload"))
        .args([
            "hold",
            "--url",
            &url,
            "--connections",
            "5",
            "--rate",
            "0",
            "--hold",
            "30s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // wsload says on stderr when every connection is open: our sync point.
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.contains("5 open, 0 failed"), "{line}");
    // Stop the server while wsload holds: every connection gets 1001, and
    // wsload ends the (30 s) hold early because nothing is left to hold.
    b.stop().await;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("hold ended early")
        .unwrap();
    let ok = out.status.success();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["hold_ended_early"], true, "{r}");
    assert!(ok, "{r}");
    assert_eq!(r["opened"], 5, "{r}");
    assert_eq!(r["still_open"], 0, "{r}");
    assert_eq!(r["lost"], 5, "{r}");
    assert_eq!(
        r["error_kinds"]["closed by server during hold (1001)"], 5,
        "{r}"
    );
}

#[tokio::test]
async fn connection_refused_is_a_failure_with_json() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/");
    let (ok, r) = wsload(&["echo", "--url", &url, "--duration", "100ms"]).await;
    assert!(!ok);
    assert_eq!(r["connected"], 0);
    assert_eq!(
        r["error_kinds"]["connect: io: connection refused"], 1,
        "{r}"
    );
}

/// A wss echo server with a fresh self-signed certificate; returns its
/// address and the certificate PEM.
async fn tls_echo_server() -> (SocketAddr, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_pem = cert.pem();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, cert_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_needs_insecure_or_ca_for_a_self_signed_cert() {
    let (addr, pem) = tls_echo_server().await;
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let common = ["--url", &url, "--connections", "2", "--duration", "200ms"];

    let (ok, r) = wsload(&[&["echo"][..], &common[..]].concat()).await;
    assert!(
        !ok,
        "an unknown issuer must be refused without --insecure: {r}"
    );
    assert_eq!(r["connected"], 0, "{r}");

    let (ok, r) = wsload(&[&["echo", "--insecure"][..], &common[..]].concat()).await;
    assert!(ok, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["messages"].as_u64().unwrap() > 0, "{r}");

    let dir = std::env::temp_dir().join(format!("wsload-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let ca_arg = ca.display().to_string();
    let (ok, r) = wsload(&[&["echo", "--ca", &ca_arg][..], &common[..]].concat()).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{r}");
    assert_eq!(r["errors"], 0, "{r}");

    let (ok, r) = wsload(&[
        "hold",
        "--url",
        &url,
        "--insecure",
        "--connections",
        "3",
        "--rate",
        "0",
        "--hold",
        "100ms",
    ])
    .await;
    assert!(ok, "{r}");
    assert_eq!(r["still_open"], 3, "{r}");
}

/// Starts `wsload serve` on an ephemeral port (plain, and TLS when a PEM
/// path is given) for `duration`; returns the child and its addresses.
async fn wsload_serve(
    tls_pem: Option<&str>,
    duration: &str,
) -> (tokio::process::Child, Vec<SocketAddr>) {
    use tokio::io::AsyncBufReadExt as _;
    let mut args = vec![
        "--threads",
        "1",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        duration,
    ];
    if let Some(pem) = tls_pem {
        args.extend(["--listen-tls", "127.0.0.1:0", "--cert", pem]);
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsload"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // "wsload serve: listening on [127.0.0.1:1234, 127.0.0.1:1235]"
    let list = line.split_once('[').unwrap().1.trim_end_matches(']');
    let addrs = list.split(", ").map(|a| a.parse().unwrap()).collect();
    (child, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_echoes_and_churn_counts_cycles() {
    let (child, addrs) = wsload_serve(None, "3s").await;
    let url = format!("ws://{}/", addrs[0]);

    // A fixed workload: 2 connections × 5 round trips.
    let (ok, r) = wsload(&[
        "--threads",
        "1",
        "echo",
        "--url",
        &url,
        "--connections",
        "2",
        "--count",
        "5",
        "--duration",
        "10s",
    ])
    .await;
    assert!(ok, "{r}");
    assert_eq!(r["messages"], 10, "{r}");
    assert_eq!(r["count"], 5, "{r}");

    // Churn from two loopback source addresses.
    let (ok, r) = wsload(&[
        "churn",
        "--url",
        &url,
        "--concurrency",
        "4",
        "--duration",
        "300ms",
        "--bind-ips",
        "127.0.0.2-127.0.0.3",
    ])
    .await;
    assert!(ok, "{r}");
    assert_eq!(r["mode"], "churn");
    assert_eq!(r["errors"], 0, "{r}");
    let completed = r["completed"].as_u64().unwrap();
    assert!(completed > 0, "{r}");
    assert_eq!(r["cycle_latency_us"]["count"].as_u64(), Some(completed));
    assert!(r["conns_per_sec"].as_f64().unwrap() > 0.0);

    // serve stops by itself and reports what it carried.
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["mode"], "serve");
    assert!(
        report["connections"].as_u64().unwrap() >= 2 + completed,
        "{report}"
    );
    assert!(
        report["messages"].as_u64().unwrap() >= 10 + completed,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_and_churn_with_full_handshakes() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wsload-serve-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("site.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let pem_arg = pem.display().to_string();
    let (_child, addrs) = wsload_serve(Some(&pem_arg), "5s").await;
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("wss://{}/", addrs[1]);
    for resume in [false, true] {
        let mut args = vec![
            "churn",
            "--url",
            &url,
            "--insecure",
            "--concurrency",
            "2",
            "--duration",
            "300ms",
        ];
        if resume {
            args.push("--tls-resume");
        }
        let (ok, r) = wsload(&args).await;
        assert!(ok, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["tls_resume"], resume, "{r}");
        assert!(r["completed"].as_u64().unwrap() > 0, "{r}");
    }
}
