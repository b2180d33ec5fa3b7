//! The tutorial's WebSocket server (`wsgate demo-backend`), also run
//! in-process by `wsgate demo` and used as the backend in tests.
//!
//! It is deliberately *not* built on the proxy's code: it is the thing the
//! proxy sits in front of, so it uses tokio-tungstenite for WebSocket framing
//! and only reads the HTTP request head itself (with httparse) to decide
//! between a plain request and an upgrade.
//!
//! # Wire behaviour (stable: tests, the demo page and `wsload` rely on it)
//!
//! `SUFFIX` below is ` [NAME]` when `--name NAME` is given, empty otherwise.
//!
//! * Upgrade requests (`Upgrade: websocket`, version 13) are accepted on
//!   **any path**. The `101` carries `X-Served-By: NAME` when named.
//! * Server → client text messages:
//!   - `welcome SUFFIX` (i.e. `welcome [s1]`), once, right after the upgrade,
//!     so a client learns at once which server it is pinned to;
//!   - `push N SUFFIX` every push interval, `N` = 1, 2, … per connection
//!     (an interval of 0 disables these pushes);
//!   - `got your message: TEXT SUFFIX` in answer to each text message `TEXT`.
//! * Binary messages are echoed back unchanged as binary; pings are answered
//!   with pongs (by tungstenite); a client close is answered with a close.
//! * On stop (SIGINT/SIGTERM in `run`, the `stop` future in [`serve`]) every
//!   WebSocket gets a close frame `1001 server stopping`.
//! * Plain HTTP/1.1 (keep-alive supported): `GET|HEAD /` (and `/index.html`)
//!   → the demo page (`text/html`); `GET|HEAD /health` → `200 ok`;
//!   `GET /ws` without upgrade → `426`; other paths → `404`; other methods →
//!   `405`. Every plain response carries `X-Served-By: NAME` when named.
//!   A request with a body is answered and the connection closed (the demo
//!   has no use for bodies, and not reading one must not desynchronise the
//!   next request).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The demo page, served at `/`.
pub const PAGE: &str = include_str!("page.html");

/// Largest request head accepted (bytes); larger gets `431`.
const MAX_HEAD: usize = 16 * 1024;
/// Time allowed for a request head (first or next on keep-alive).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest WebSocket message accepted (bytes).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long open connections get to finish after a stop.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Options of `wsgate demo-backend`.
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Server name shown in replies and pushes.
    #[arg(long)]
    pub name: Option<String>,
    /// Interval between pushed messages (HAProxy time syntax: 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = crate::config::units::parse_time)]
    pub push_interval: std::time::Duration,
}

/// What a backend says and how often: the library form of [`BackendArgs`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Appended to every server message as ` [NAME]`, and sent as
    /// `X-Served-By`.
    pub name: Option<String>,
    /// Interval between pushes; zero disables them (the welcome is still
    /// sent).
    pub push_interval: Duration,
}

impl Options {
    fn suffix(&self) -> String {
        match &self.name {
            Some(name) => format!(" [{name}]"),
            None => String::new(),
        }
    }
}

/// Runs the demo backend until SIGINT/SIGTERM.
pub async fn run(args: BackendArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let opts = Options {
        name: args.name,
        push_interval: args.push_interval,
    };
    tracing::info!(
        "demo backend {} listening on {addr} (push every {:?})",
        opts.name.as_deref().unwrap_or("(unnamed)"),
        opts.push_interval
    );
    // The signal handlers must exist before we report readiness, so a
    // SIGTERM right after start is not lost.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let signals = tokio::spawn(async move {
        let result = crate::proxy::wait_for_stop_signal().await;
        let _ = stop_tx.send(true);
        result
    });
    serve(listener, opts, async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
    })
    .await?;
    signals.abort();
    tracing::info!("demo backend stopped");
    Ok(())
}

/// A backend started with [`spawn`]: its address and a way to stop it.
pub struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes its WebSockets with 1001 and waits (bounded) for it to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("demo backend on {}: {e}", self.addr),
            Err(e) => tracing::warn!("demo backend on {} ended abnormally: {e}", self.addr),
        }
    }
}

/// Starts a backend on `listener` in a task of the current runtime.
pub fn spawn(listener: TcpListener, opts: Options) -> io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, opts, async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
    }));
    Ok(Running { addr, stop, task })
}

/// Serves connections from `listener` until `stop` resolves; then closes
/// open WebSockets with 1001 and returns after they end (or after a short
/// grace). Dropping the returned future aborts every connection task.
pub async fn serve(
    listener: TcpListener,
    opts: Options,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let opts = Arc::new(opts);
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let opts = Arc::clone(&opts);
                    let stopping = stopping_rx.clone();
                    conns.spawn(async move {
                        if let Err(e) = handle_connection(stream, &opts, stopping).await {
                            tracing::debug!("demo backend: connection from {peer}: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin; the listener itself stays usable.
                    tracing::warn!("demo backend: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            "demo backend: {} connections did not close in time",
            conns.len()
        );
    }
    conns.shutdown().await;
    Ok(())
}

/// A parsed request head: only what this server looks at.
struct Head {
    method: String,
    path: String,
    http10: bool,
    /// Bytes the head occupied in the buffer.
    len: usize,
    has_body: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    upgrade_websocket: bool,
    ws_key: Option<String>,
    ws_version: Option<String>,
}

enum ReadHead {
    Head(Head),
    /// The peer closed (or timed out) between requests: nothing to answer.
    Closed,
    /// Answer with this status and close.
    Bad(u16, &'static str),
}

async fn handle_connection(
    mut stream: TcpStream,
    opts: &Options,
    stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let head = match read_head(&mut stream, &mut buf).await? {
            ReadHead::Head(head) => head,
            ReadHead::Closed => return Ok(()),
            ReadHead::Bad(status, reason) => {
                let body = format!("{reason}\n");
                respond(&mut stream, opts, status, "text/plain", &body, true, false).await?;
                return Ok(());
            }
        };
        if head.upgrade_websocket && head.connection_upgrade {
            // Whatever followed the head (a client may pipeline its first
            // frames) belongs to the WebSocket.
            let tail = buf.split_off(head.len);
            return upgrade(stream, head, tail, opts, stopping).await;
        }
        buf.drain(..head.len);
        let close =
            head.http10 && !head.connection_keep_alive || head.connection_close || head.has_body;
        let head_only = head.method == "HEAD";
        let path = head.path.as_str();
        let (status, ctype, body): (u16, &str, &str) = match head.method.as_str() {
            "GET" | "HEAD" => match path {
                "/" | "/index.html" => (200, "text/html; charset=utf-8", PAGE),
                "/health" => (200, "text/plain", "ok\n"),
                "/ws" => (
                    426,
                    "text/plain",
                    "this is a WebSocket endpoint: send Upgrade: websocket\n",
                ),
                _ => (404, "text/plain", "not found\n"),
            },
            _ => (405, "text/plain", "method not allowed\n"),
        };
        respond(&mut stream, opts, status, ctype, body, close, head_only).await?;
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// Reads until `buf` holds a complete request head, and parses it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<ReadHead> {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => return Ok(parse_head(&req, len)),
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Ok(ReadHead::Bad(431, "too many header fields"))
                }
                Err(_) => return Ok(ReadHead::Bad(400, "bad request")),
            }
            if buf.len() >= MAX_HEAD {
                return Ok(ReadHead::Bad(431, "request head too large"));
            }
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        match read {
            Err(_elapsed) if buf.is_empty() => return Ok(ReadHead::Closed),
            Err(_elapsed) => return Ok(ReadHead::Bad(408, "request timeout")),
            Ok(Ok(0)) => return Ok(ReadHead::Closed),
            Ok(Ok(n)) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(Err(e)) => return Err(e),
        }
    }
}

fn parse_head(req: &httparse::Request<'_, '_>, len: usize) -> ReadHead {
    let method = req.method.unwrap_or("").to_owned();
    let target = req.path.unwrap_or("");
    let path = target.split(['?', '#']).next().unwrap_or("").to_owned();
    let mut head = Head {
        method,
        path,
        http10: req.version == Some(0),
        len,
        has_body: false,
        connection_close: false,
        connection_keep_alive: false,
        connection_upgrade: false,
        upgrade_websocket: false,
        ws_key: None,
        ws_version: None,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                head.connection_close |= token.eq_ignore_ascii_case("close");
                head.connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                head.connection_upgrade |= token.eq_ignore_ascii_case("upgrade");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket |= value
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            head.ws_key = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            head.ws_version = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.has_body = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            head.has_body |= value != "0";
        }
    }
    ReadHead::Head(head)
}

async fn respond(
    stream: &mut TcpStream,
    opts: &Options,
    status: u16,
    content_type: &str,
    body: &str,
    close: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
        reason(status),
        body.len()
    );
    if let Some(name) = &opts.name {
        out.push_str(&format!("X-Served-By: {name}\r\n"));
    }
    match status {
        405 => out.push_str("Allow: GET, HEAD\r\n"),
        426 => out.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"),
        _ => {}
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "",
    }
}

/// Completes the RFC 6455 handshake on a head we already parsed, then runs
/// the WebSocket session.
async fn upgrade(
    mut stream: TcpStream,
    head: Head,
    tail: Vec<u8>,
    opts: &Options,
    stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let key = match (&head.ws_key, head.method.as_str(), head.http10) {
        (Some(key), "GET", false) => key.clone(),
        _ => {
            let body = "bad WebSocket upgrade: needs GET, HTTP/1.1 and Sec-WebSocket-Key\n";
            return respond(&mut stream, opts, 400, "text/plain", body, true, false).await;
        }
    };
    if head.ws_version.as_deref() != Some("13") {
        let body = "unsupported WebSocket version (this server speaks 13)\n";
        return respond(&mut stream, opts, 426, "text/plain", body, true, false).await;
    }
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(name) = &opts.name {
        out.push_str(&format!("X-Served-By: {name}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = WebSocketStream::from_partially_read(stream, tail, Role::Server, Some(config)).await;
    session(ws, opts, stopping).await.map_err(io::Error::other)
}

/// One WebSocket: welcome, echo, periodic pushes, close on stop.
async fn session(
    mut ws: WebSocketStream<TcpStream>,
    opts: &Options,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let suffix = opts.suffix();
    ws.send(Message::text(format!("welcome{suffix}"))).await?;
    let pushes = !opts.push_interval.is_zero();
    // `interval` panics on a zero period; with pushes off the ticker is never
    // polled, so any non-zero period will do.
    let period = if pushes {
        opts.push_interval
    } else {
        Duration::from_secs(3600)
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pushed: u64 = 0;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(Message::Text(text))) => {
                    let reply = format!("got your message: {}{suffix}", text.as_str());
                    ws.send(Message::text(reply)).await?;
                }
                Some(Ok(Message::Binary(data))) => ws.send(Message::Binary(data)).await?,
                Some(Ok(Message::Close(_))) => {
                    // tungstenite queued the close reply; send it, then the
                    // server closes the TCP connection (RFC 6455 §7.1.1).
                    let _ = ws.flush().await;
                    return Ok(());
                }
                // Pongs to pings are queued and flushed by tungstenite.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            },
            _ = ticker.tick(), if pushes => {
                pushed += 1;
                ws.send(Message::text(format!("push {pushed}{suffix}"))).await?;
            }
            changed = stopping.changed() => {
                if changed.is_ok() && !*stopping.borrow() {
                    continue;
                }
                let frame = CloseFrame { code: CloseCode::Away, reason: "server stopping".into() };
                ws.close(Some(frame)).await?;
                // Wait for the client's close reply (bounded by the caller's
                // grace), discarding anything sent before it.
                while let Some(msg) = ws.next().await {
                    if msg.is_err() {
                        break;
                    }
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Head {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = req.parse(raw.as_bytes()) else {
            panic!("incomplete test request");
        };
        match parse_head(&req, len) {
            ReadHead::Head(h) => h,
            _ => panic!("not a head"),
        }
    }

    #[test]
    fn upgrade_detection_is_token_based() {
        let h = parse(
            "GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert!(h.connection_upgrade && h.upgrade_websocket && h.connection_keep_alive);
        assert_eq!(h.path, "/ws");
        assert_eq!(h.ws_version.as_deref(), Some("13"));
    }

    #[test]
    fn plain_request_with_body_is_flagged() {
        let h = parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
        assert!(h.has_body && !h.upgrade_websocket);
        let h = parse("GET /health HTTP/1.0\r\n\r\n");
        assert!(h.http10 && !h.has_body);
    }

    #[test]
    fn suffix_only_when_named() {
        let named = Options {
            name: Some("s1".into()),
            push_interval: Duration::ZERO,
        };
        assert_eq!(named.suffix(), " [s1]");
        let anon = Options {
            name: None,
            push_interval: Duration::ZERO,
        };
        assert_eq!(anon.suffix(), "");
    }
}
