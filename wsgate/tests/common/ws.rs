//! WebSocket clients for the tests: tokio-tungstenite (an implementation
//! that shares no code with the proxy), over plain TCP or rustls trusting
//! the test CA.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Deadline for one WebSocket step (connect, one expected message).
pub const WS_DEADLINE: Duration = Duration::from_secs(15);

/// The prefix of the demo backend's echo.
pub const ECHO_PREFIX: &str = "got your message: ";

/// Opens `ws://` or `wss://` `url`; for `wss://`, `ca` is the only trusted
/// root.
pub async fn connect(url: &str, ca: Option<&rustls_pki_types::CertificateDer<'static>>) -> Ws {
    let connector = ca.map(|ca| {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).expect("add test CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_tungstenite::Connector::Rustls(Arc::new(config))
    });
    let fut = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector);
    match tokio::time::timeout(WS_DEADLINE, fut).await {
        Ok(Ok((ws, resp))) => {
            assert_eq!(resp.status().as_u16(), 101, "{url}: handshake status");
            ws
        }
        Ok(Err(e)) => panic!("{url}: WebSocket handshake failed: {e}"),
        Err(_) => panic!("{url}: no WebSocket handshake within {WS_DEADLINE:?}"),
    }
}

/// Opens `ws://127.0.0.1:<port>/chat` to a proxy in front of demo
/// backends, with `Cookie: SRV=<cookie>` when given (a persistence
/// cookie); returns the WebSocket and the server its welcome names
/// (`welcome [<name>]`).
pub async fn connect_with_cookie(port: u16, cookie: Option<&str>) -> (Ws, String) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/chat")
        .into_client_request()
        .expect("request");
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("Cookie", format!("SRV={c}").parse().expect("cookie"));
    }
    let (mut ws, resp) = tokio::time::timeout(WS_DEADLINE, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(resp.status().as_u16(), 101);
    let welcome = next_text(&mut ws, "welcome").await;
    let server = welcome
        .strip_prefix("welcome [")
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a demo welcome: {welcome}"))
        .to_owned();
    (ws, server)
}

/// The next text message, skipping pings/pongs; panics on close, error or
/// deadline.
pub async fn next_text(ws: &mut Ws, context: &str) -> String {
    loop {
        match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {}
            Ok(Some(Ok(other))) => panic!("{context}: unexpected message {other:?}"),
            Ok(Some(Err(e))) => panic!("{context}: WebSocket error: {e}"),
            Ok(None) => panic!("{context}: WebSocket closed"),
            Err(_) => panic!("{context}: no message within {WS_DEADLINE:?}"),
        }
    }
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text))
        .await
        .unwrap_or_else(|e| panic!("send {text:?}: {e}"));
}

/// Reads until a close frame arrives; returns its code and reason.
pub async fn expect_close(ws: &mut Ws, context: &str) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (frame.code, frame.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) => panic!("{context}: close frame without a code"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("{context}: error instead of a close frame: {e}"),
            Ok(None) => panic!("{context}: connection ended without a close frame"),
            Err(_) => panic!("{context}: no close frame within {WS_DEADLINE:?}"),
        }
    }
}

/// What the demo backend's echo of `text` looks like for server `name`.
pub fn expected_echo(text: &str, name: &str) -> String {
    format!("{ECHO_PREFIX}{text} [{name}]")
}

/// Sends `text` and waits for its echo, collecting the pushes that arrive
/// meanwhile. Panics if another echo arrives instead.
pub async fn echo(ws: &mut Ws, text: &str, context: &str) -> (String, Vec<String>) {
    send(ws, text).await;
    let mut pushes = Vec::new();
    loop {
        let m = next_text(ws, context).await;
        if m.starts_with(ECHO_PREFIX) {
            assert!(
                m.starts_with(&format!("{ECHO_PREFIX}{text}")),
                "{context}: echo of something else: {m:?} (sent {text:?})"
            );
            return (m, pushes);
        }
        pushes.push(m);
    }
}

/// Waits for a pushed (non-echo) message.
pub async fn next_push(ws: &mut Ws, context: &str) -> String {
    loop {
        let m = next_text(ws, context).await;
        if !m.starts_with(ECHO_PREFIX) {
            return m;
        }
    }
}

/// Checks the tutorial behaviour on one connection: the echo of a message
/// (naming server `name`) and a push both arrive.
pub async fn check_echo_and_push(ws: &mut Ws, name: &str, context: &str) {
    let text = format!("hello from tokio-tungstenite ({context})");
    let (echo, mut pushes) = echo(ws, &text, context).await;
    assert_eq!(echo, expected_echo(&text, name), "{context}: echo");
    if pushes.is_empty() {
        pushes.push(next_push(ws, context).await);
    }
    for p in &pushes {
        assert!(
            p.contains(name),
            "{context}: push {p:?} does not name {name}"
        );
    }
}

/// A WebSocket echo backend (tokio-tungstenite) that records what the
/// proxy did to it: how many handshakes reached it, and the close code
/// each connection ended with (`None`: closed without a close frame).
pub struct RecordingBackend {
    pub addr: std::net::SocketAddr,
    closes: Arc<std::sync::Mutex<Vec<Option<u16>>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingBackend {
    /// Starts on a free loopback port. With a name, text messages are
    /// answered `name:text`; without, echoed as they are.
    pub async fn start(name: Option<&'static str>) -> RecordingBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let closes: Arc<std::sync::Mutex<Vec<Option<u16>>>> = Arc::default();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen, count) = (closes.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let mut code = None;
                    while let Some(Ok(msg)) = ws.next().await {
                        match msg {
                            Message::Text(t) => {
                                let reply = match name {
                                    Some(n) => format!("{n}:{t}"),
                                    None => t.to_string(),
                                };
                                let _ = ws.send(Message::Text(reply.into())).await;
                            }
                            Message::Close(frame) => code = frame.map(|f| u16::from(f.code)),
                            _ => {}
                        }
                    }
                    seen.lock().unwrap().push(code);
                });
            }
        });
        RecordingBackend {
            addr,
            closes,
            accepted,
        }
    }

    /// Handshakes (TCP connections) that reached the backend.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The close codes of ended connections, once at least `n` have ended
    /// (or the deadline passed).
    pub async fn closes(&self, n: usize) -> Vec<Option<u16>> {
        let deadline = std::time::Instant::now() + WS_DEADLINE;
        loop {
            let seen = self.closes.lock().unwrap().clone();
            if seen.len() >= n || std::time::Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
