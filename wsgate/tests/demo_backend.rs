//! End-to-end tests of `wsgate demo-backend`: the real binary on a port
//! picked at run time, driven by tokio-tungstenite and raw HTTP/1.1.
//! No sleeps as synchronisation: readiness is a polled connect with a
//! deadline, and the child is killed on drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

const DEADLINE: Duration = Duration::from_secs(10);

/// A running `wsgate demo-backend`, killed on drop.
struct Backend {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Backend {
    /// Starts the backend; retries on another port if the one picked was
    /// taken in between (the child then exits with a bind error).
    fn start(extra: &[&str]) -> Backend {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
                .arg("demo-backend")
                .arg("--listen")
                .arg(addr.to_string())
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn wsgate demo-backend");
            let mut backend = Backend { child, addr };
            if backend.wait_ready() {
                return backend;
            }
        }
        panic!("demo-backend did not start");
    }

    /// Polls until the port accepts; false if the child exited first.
    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if TcpStream::connect(self.addr).is_ok() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5)); // polling interval, not sync
        }
        panic!(
            "demo-backend not accepting on {} after {DEADLINE:?}",
            self.addr
        );
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("message within deadline")
            .expect("stream open")
            .expect("no error");
        match msg {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads text messages, skipping pushes, until one starts with `prefix`.
async fn text_starting_with(ws: &mut Ws, prefix: &str) -> String {
    loop {
        let t = next_text(ws).await;
        if t.starts_with(prefix) {
            return t;
        }
        assert!(t.starts_with("push ") || t.starts_with("welcome"), "{t}");
    }
}

/// One raw HTTP/1.1 exchange with `Connection: close`: (status line, head, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("complete head");
    let status = head.lines().next().unwrap().to_owned();
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn welcome_and_echo_carry_the_name() {
    let b = Backend::start(&["--name", "s1"]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(b.url("/ws"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-served-by"], "s1");
    assert_eq!(next_text(&mut ws).await, "welcome [s1]");
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        text_starting_with(&mut ws, "got your message").await,
        "got your message: hello [s1]"
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn upgrade_on_any_path_and_no_suffix_without_name() {
    let b = Backend::start(&[]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(b.url("/some/where?x=1"))
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("x-served-by"));
    assert_eq!(next_text(&mut ws).await, "welcome");
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        text_starting_with(&mut ws, "got your message").await,
        "got your message: hi"
    );
}

#[tokio::test]
async fn pushes_arrive_at_the_configured_interval() {
    let b = Backend::start(&["--name", "s2", "--push-interval", "200ms"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(b.url("/")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "welcome [s2]");
    let connected = Instant::now();
    assert_eq!(next_text(&mut ws).await, "push 1 [s2]");
    let first = connected.elapsed();
    assert_eq!(next_text(&mut ws).await, "push 2 [s2]");
    assert_eq!(next_text(&mut ws).await, "push 3 [s2]");
    let third = connected.elapsed();
    // Three intervals of 200 ms: generous bounds for a loaded machine.
    assert!(
        first >= Duration::from_millis(150),
        "first push after {first:?}"
    );
    assert!(
        third >= Duration::from_millis(550),
        "third push after {third:?}"
    );
    assert!(third < Duration::from_secs(3), "third push after {third:?}");
}

#[tokio::test]
async fn binary_echo_ping_and_close() {
    let b = Backend::start(&["--name", "s3"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(b.url("/ws"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "welcome [s3]");
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::Binary(Bytes::from(payload.clone())))
        .await
        .unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"p1")))
        .await
        .unwrap();
    let (mut got_binary, mut got_pong) = (false, false);
    while !(got_binary && got_pong) {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            Message::Binary(b) => {
                assert_eq!(b.as_ref(), payload.as_slice());
                got_binary = true;
            }
            Message::Pong(p) => {
                assert_eq!(p.as_ref(), b"p1");
                got_pong = true;
            }
            Message::Text(t) => assert!(t.starts_with("push "), "{t}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A client close is answered with a close, then the stream ends.
    ws.close(None).await.unwrap();
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_) | Message::Text(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn plain_http_health_page_and_404() {
    let b = Backend::start(&["--name", "s1"]);
    let (status, head, body) = http_get(b.addr, "/health");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("X-Served-By: s1"), "{head}");
    assert_eq!(body, "ok\n");

    let (status, head, body) = http_get(b.addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(body.starts_with("<!doctype html>"));
    for id in ["status", "server", "echo", "push", "log"] {
        assert!(body.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
    }

    let (status, _, _) = http_get(b.addr, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = http_get(b.addr, "/ws");
    assert_eq!(status, "HTTP/1.1 426 Upgrade Required");
}

#[test]
fn plain_http_keep_alive_serves_several_requests() {
    let b = Backend::start(&[]);
    let mut s = TcpStream::connect(b.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // Two pipelined requests; the second asks to close.
    s.write_all(
        b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_zero() {
    let mut b = Backend::start(&["--name", "s1"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(b.url("/ws"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "welcome [s1]");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(b.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let frame = loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(Message::Text(_))) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = frame.expect("close frame with a code");
    assert_eq!(frame.code, CloseCode::Away);
    // Reading on sends our queued close reply, completing the handshake.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(DEADLINE, ws.next()).await {}
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = b.child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < DEADLINE, "backend did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await; // polling interval, not sync
    };
    assert!(exit.success(), "{exit:?}");
}

/// Runs headless Chromium on `url` and returns the DOM after ~3 s of
/// virtual time; `None` when Chromium is not installed (the test is then
/// skipped unless WSGATE_REQUIRE_CHROMIUM=1).
fn chromium_dump_dom(url: &str, extra: &[&str]) -> Option<String> {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("WSGATE_REQUIRE_CHROMIUM").is_none(),
            "WSGATE_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("skipped: no chromium on PATH");
        return None;
    };
    let profile = std::env::temp_dir().join(format!(
        "wsgate-chromium-{}-{}",
        std::process::id(),
        url.len()
    ));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        let _ = stdout.read_to_string(&mut dom);
        dom
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish");
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval, not sync
    }
    let dom = reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    Some(dom)
}

/// Text content of the element with `id` (flat elements only).
fn element_text(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[at..];
    let open_end = rest.find('>').unwrap() + 1;
    let close = rest[open_end..].find('<').unwrap();
    rest[open_end..open_end + close].to_owned()
}

#[test]
fn the_page_connects_and_shows_echo_push_and_server_in_chromium() {
    let b = Backend::start(&["--name", "s2"]);
    let Some(dom) = chromium_dump_dom(&format!("http://{}/", b.addr), &[]) else {
        return;
    };
    assert_eq!(element_text(&dom, "status"), "open", "{dom}");
    assert_eq!(element_text(&dom, "server"), "s2");
    assert_eq!(
        element_text(&dom, "echo"),
        "got your message: hello from the page [s2]"
    );
    assert_eq!(element_text(&dom, "push"), "welcome [s2]");
}

/// `wsgate demo` started on OS-chosen ports, killed on drop.
struct Demo {
    child: Child,
    plain: SocketAddr,
    tls: SocketAddr,
    pem: std::path::PathBuf,
    fingerprint: String,
    config_lines: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Starts `wsgate demo` and reads its banner up to the https line.
    fn start(backends: u16) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(["demo", "--port", "0", "--tls-port", "0", "--backends"])
            .arg(backends.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        let (mut plain, mut tls, mut pem, mut fingerprint) = (None, None, None, None);
        let mut config_lines = Vec::new();
        let start = Instant::now();
        while tls.is_none() {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("wsgate demo banner incomplete: {e}"));
            let addr_after = |prefix: &str| -> SocketAddr {
                let rest = line.split(prefix).nth(1).unwrap();
                rest.split('/').next().unwrap().parse().unwrap()
            };
            if let Some(cfg) = line.strip_prefix("  | ") {
                config_lines.push(cfg.to_owned());
            } else if line.starts_with("open   http://") {
                plain = Some(addr_after("http://"));
            } else if line.starts_with("open   https://") {
                tls = Some(addr_after("https://"));
            } else if let Some(rest) = line.strip_prefix("certificate ") {
                pem = Some(rest.split(' ').next().unwrap().into());
            } else if let Some(fp) = line.trim().strip_prefix("SHA-256 fingerprint ") {
                fingerprint = Some(fp.to_owned());
            }
        }
        Demo {
            child,
            plain: plain.expect("http line"),
            tls: tls.unwrap(),
            pem: pem.expect("certificate line"),
            fingerprint: fingerprint.expect("fingerprint line"),
            config_lines,
        }
    }
}

fn served_by(addr: SocketAddr) -> String {
    let (status, head, _) = http_get(addr, "/health");
    assert_eq!(status, "HTTP/1.1 200 OK", "{head}");
    head.lines()
        .find_map(|l| l.strip_prefix("X-Served-By: "))
        .unwrap_or_else(|| panic!("no X-Served-By in {head}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsgate_demo_serves_ws_and_wss_round_robin_and_stops_cleanly() {
    let mut demo = Demo::start(2);

    // The printed configuration is HAProxy syntax naming both backends.
    assert!(demo
        .config_lines
        .iter()
        .any(|l| l == "    balance roundrobin"));
    assert!(demo
        .config_lines
        .iter()
        .any(|l| l.starts_with("    server s2 ")));

    // Round robin over plain HTTP.
    let mut seen: Vec<String> = (0..4).map(|_| served_by(demo.plain)).collect();
    seen.sort();
    assert_eq!(seen, ["s1", "s1", "s2", "s2"]);

    // ws:// through the proxy, pinned to one server.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", demo.plain))
        .await
        .unwrap();
    let welcome = next_text(&mut ws).await;
    assert!(
        welcome == "welcome [s1]" || welcome == "welcome [s2]",
        "{welcome}"
    );
    let name = &welcome["welcome ".len()..];
    ws.send(Message::text("via proxy")).await.unwrap();
    assert_eq!(
        text_starting_with(&mut ws, "got your message").await,
        format!("got your message: via proxy {name}")
    );

    // wss:// trusting the printed certificate, whose fingerprint matches.
    let pem = std::fs::read(&demo.pem).unwrap();
    let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, certs[0].as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(demo.fingerprint, hex.join(":"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(client));
    let (mut wss, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://localhost:{}/ws", demo.tls.port()),
        None,
        false,
        Some(connector),
    )
    .await
    .unwrap();
    assert!(next_text(&mut wss).await.starts_with("welcome [s"));
    wss.send(Message::text("over tls")).await.unwrap();
    assert!(
        text_starting_with(&mut wss, "got your message: over tls [s")
            .await
            .ends_with(']')
    );

    // SIGTERM: WebSockets get 1001 (from the backends, through the proxy),
    // the process exits 0 and removes its temporary files.
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(demo.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    for ws in [&mut ws, &mut wss] {
        let frame = loop {
            match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(Message::Text(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(frame.unwrap().code, CloseCode::Away);
        while let Ok(Some(Ok(_))) = tokio::time::timeout(DEADLINE, ws.next()).await {}
    }
    // Close our sockets too: the proxy forwards the backend's FIN as a
    // half-close and would otherwise wait for ours until its grace ends.
    drop(ws);
    drop(wss);
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(start.elapsed() < DEADLINE, "wsgate demo did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await; // polling interval, not sync
    };
    assert!(exit.success(), "{exit:?}");
    assert!(!demo.pem.exists(), "temporary certificate left behind");
}
