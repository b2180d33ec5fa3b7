//! The tutorial's `ws.cfg`, unchanged except for ports and the certificate
//! path, in front of `wsgate demo-backend`: `ws://` and `wss://` both give
//! the echo and the pushes, seen by two independent clients
//! (tokio-tungstenite and Python `websockets`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{ws, DemoBackend, TempDir, TestCert, Wsgate};

/// `ws.cfg` from the tutorial, verbatim (see ../shared/examples/ws.cfg on
/// the development machine; embedded so the test runs on a fresh clone).
pub const WS_CFG: &str = "\
# The configuration built step by step in the tutorial (seed/), as a user would type it.
# It must run unchanged: `wsgate -f ws.cfg` (the certificate path is the user's own file).
frontend ws
    mode http
    timeout client 10s
    bind *:80
    bind *:443 ssl crt websocketsite.pem
    default_backend wsbackend

backend wsbackend
    mode http
    timeout connect 10s
    timeout server 100s
    server s1 127.0.0.1:8080
";

/// A running tutorial setup: demo backend s1 and wsgate with ws.cfg.
struct Tutorial {
    ws_port: u16,
    wss_port: u16,
    cert: TestCert,
    _backend: DemoBackend,
    gate: Wsgate,
}

fn start_tutorial() -> Tutorial {
    let backend = DemoBackend::start("s1", "500ms");
    let dir = TempDir::new("tutorial");
    let cert = TestCert::generate(dir.path(), "websocketsite.pem");
    let (ws_port, wss_port) = (common::free_port(), common::free_port());
    let config = WS_CFG
        .replace("bind *:80\n", &format!("bind 127.0.0.1:{ws_port}\n"))
        .replace("bind *:443 ", &format!("bind 127.0.0.1:{wss_port} "))
        .replace("127.0.0.1:8080", &backend.addr.to_string());
    assert_ne!(config, WS_CFG, "substitutions must apply");
    let gate = Wsgate::start_in(dir, &config);
    Tutorial {
        ws_port,
        wss_port,
        cert,
        _backend: backend,
        gate,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_ws_and_wss_with_tokio_tungstenite() {
    let t = tokio::task::spawn_blocking(start_tutorial).await.unwrap();

    let url = format!("ws://127.0.0.1:{}/", t.ws_port);
    let mut c = ws::connect(&url, None).await;
    ws::check_echo_and_push(&mut c, "s1", "ws://").await;

    let url = format!("wss://127.0.0.1:{}/", t.wss_port);
    let mut c = ws::connect(&url, Some(&t.cert.ca_der)).await;
    ws::check_echo_and_push(&mut c, "s1", "wss://").await;

    // Several messages on one connection, each echoed in order.
    for i in 0..5 {
        let text = format!("message {i}");
        let (echo, _) = ws::echo(&mut c, &text, "wss:// sequence").await;
        assert_eq!(echo, ws::expected_echo(&text, "s1"));
    }
    drop(t.gate);
}

#[test]
fn tutorial_ws_and_wss_with_python_websockets() {
    if !common::python_websockets_available() {
        common::skip_unless_ci("python3 with the `websockets` package (>= 11) is not available");
        return;
    }
    let t = start_tutorial();
    let script = common::py_script("ws_echo_push.py");
    let ca = t.cert.ca_path.to_str().unwrap().to_string();
    for url in [
        format!("ws://127.0.0.1:{}/", t.ws_port),
        format!("wss://127.0.0.1:{}/", t.wss_port),
    ] {
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(&url).arg("s1").arg("--ca").arg(&ca);
        let (status, out, err) =
            common::run_with_deadline(cmd, Duration::from_secs(60)).expect("run python client");
        assert!(
            status.success(),
            "python websockets client against {url} failed ({status})\nstdout: {out}\nstderr: {err}\nwsgate log:\n{}",
            t.gate.log()
        );
        assert!(out.contains("got your message: hello from python websockets [s1]"));
    }
}

/// `wsgate -c` accepts the tutorial's configuration (warnings allowed).
#[test]
fn tutorial_config_checks_valid() {
    let dir = TempDir::new("tutorial-check");
    TestCert::generate(dir.path(), "websocketsite.pem");
    let config = WS_CFG
        .replace(
            "bind *:80\n",
            &format!("bind 127.0.0.1:{}\n", common::free_port()),
        )
        .replace(
            "bind *:443 ",
            &format!("bind 127.0.0.1:{} ", common::free_port()),
        )
        .replace(
            "websocketsite.pem",
            dir.path().join("websocketsite.pem").to_str().unwrap(),
        );
    let cfg = dir.write("ws.cfg", config);
    let (status, out) = common::run_wsgate(
        &["-c".as_ref(), "-f".as_ref(), cfg.as_os_str()],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(0), "wsgate -c on ws.cfg:\n{out}");
    assert!(!out.contains(": error:"), "no errors expected:\n{out}");
}
