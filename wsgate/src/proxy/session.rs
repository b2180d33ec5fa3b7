//! One client connection, from its first byte to its close.
//!
//! Stage: the listener accepts (and terminates TLS), then calls
//! [`serve_http`] or [`serve_tcp`]. An HTTP session is a keep-alive loop:
//! read a request head (`timeout http-request`), pick a backend and a
//! server, connect (`timeout connect`, `retries`), forward the request and
//! its body, read the response (`timeout server`), forward it. A
//! `101 Switching Protocols` ends the HTTP part: both streams go to
//! [`tunnel::run`], pinned to the server that answered. Every failure is
//! answered with the status HAProxy would give (400/408/414/431/501/505 for
//! the client's mistakes, 502/503/504 for the server's).
//!
//! Server connections are not reused between requests yet: each request
//! gets its own, closed after the response (`Connection: close` to the
//! server, as with `option http-server-close`). The client side keeps
//! alive.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connect::{connect, ConnectError};
use super::errors;
use super::http1::body::{copy_body, BodyError, BodyKind};
use super::http1::head::{parse_request, parse_response, RequestError, RequestHead, ResponseHead};
use super::io::{with_timeout, write_with_timeout, IoError};
use super::route::{self, RequestFacts};
use super::tunnel::{self, IntoTunnel, TunnelOptions, TunnelTimeouts, WsSignals};
use super::upstream::{self, ServerStream};
use super::websocket;
use super::Runtime;
use crate::backend::{BackendRuntime, ConnGuard};
use crate::config::model::{Backend, Frontend, HttpConnMode};
use crate::ws::frame::Policy;

/// How much the head buffer grows per read.
const HEAD_READ_CHUNK: usize = 4096;

/// Serves one client connection of an `http` frontend. Returns the tunnel
/// to run when the connection was upgraded.
pub async fn serve_http<C>(
    mut client: C,
    peer: SocketAddr,
    tls: bool,
    frontend: &Frontend,
    runtime: &Runtime,
    shutdown: &CancellationToken,
) -> Option<Handoff<C>>
where
    C: AsyncRead + AsyncWrite + Unpin + IntoTunnel,
{
    let limit = runtime.global.tune_bufsize;
    let mut inbuf: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let fe = &frontend.timeouts;
        let wait = if first {
            fe.http_request.or(fe.client)
        } else {
            let be_keep_alive = frontend
                .default_backend
                .and_then(|b| runtime.backends[b.0].config.timeouts.http_keep_alive);
            fe.http_keep_alive
                .or(be_keep_alive)
                .or(fe.http_request)
                .or(fe.client)
        };
        let (request, head_len) =
            match read_request_head(&mut client, &mut inbuf, limit, wait, shutdown).await {
                HeadRead::Head(request, len) => (request, len),
                HeadRead::Invalid(e) => {
                    tracing::debug!(%peer, "refused request: {e}");
                    send_error(&mut client, e.status(), fe.client).await;
                    return None;
                }
                HeadRead::TimedOut { started } => {
                    // An idle keep-alive connection is closed silently; a
                    // request that was started (or never came on a new
                    // connection) gets 408, as in HAProxy.
                    if started || first {
                        send_error(&mut client, 408, fe.client).await;
                    }
                    return None;
                }
                HeadRead::Closed => return None,
            };
        inbuf.drain(..head_len);
        tracing::debug!(%peer, method = %request.method, target = %request.target, "request");

        let facts = RequestFacts::http(&request, peer, tls);
        let Some(backend_id) = route::select_backend(frontend, &facts, runtime) else {
            send_error(&mut client, 503, fe.client).await;
            return None;
        };
        let backend = &runtime.backends[backend_id.0];
        let exchange = Exchange {
            peer,
            tls,
            frontend,
            backend,
            runtime,
            backend_id: backend_id.0,
        };
        match exchange
            .forward(&mut client, request, &mut inbuf, limit, shutdown)
            .await
        {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = with_timeout(fe.client, client.shutdown()).await;
                return None;
            }
            Next::Abort => return None,
            Next::Upgrade {
                server,
                websocket,
                slot,
            } => {
                return Some(Handoff {
                    client,
                    server,
                    peer,
                    options: TunnelOptions {
                        timeouts: tunnel_timeouts(frontend, &backend.config),
                        websocket: ws_signals(websocket, runtime, backend_id.0, &slot, shutdown),
                    },
                    slot,
                });
            }
        }
        first = false;
        if inbuf.is_empty() {
            // Between requests an idle connection holds no head buffer.
            inbuf = Vec::new();
        }
    }
}

enum HeadRead {
    Head(RequestHead, usize),
    Invalid(RequestError),
    TimedOut {
        started: bool,
    },
    /// The client closed, failed, or the proxy is stopping while the
    /// connection was idle.
    Closed,
}

/// Reads until a complete request head is in `inbuf`. `wait` bounds the
/// whole head (`timeout http-request` is not an inactivity timeout: a
/// client trickling one byte a second still gets 408).
async fn read_request_head<C: AsyncRead + Unpin>(
    client: &mut C,
    inbuf: &mut Vec<u8>,
    limit: usize,
    wait: Option<Duration>,
    shutdown: &CancellationToken,
) -> HeadRead {
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        if !inbuf.is_empty() {
            match parse_request(inbuf, limit) {
                Ok(Some((head, len))) => return HeadRead::Head(head, len),
                Ok(None) => {}
                Err(e) => return HeadRead::Invalid(e),
            }
        }
        if inbuf.capacity() - inbuf.len() < HEAD_READ_CHUNK / 4 {
            inbuf.reserve(HEAD_READ_CHUNK.min(limit + 1 - inbuf.len().min(limit)));
        }
        let idle = inbuf.is_empty();
        tokio::select! {
            read = client.read_buf(inbuf) => match read {
                Ok(0) | Err(_) => return HeadRead::Closed,
                Ok(_) => {}
            },
            _ = sleep_until(deadline) => return HeadRead::TimedOut { started: !idle },
            _ = shutdown.cancelled(), if idle => return HeadRead::Closed,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Answers with an error status and ends the connection.
async fn refuse<C: AsyncWrite + Unpin>(
    client: &mut C,
    status: u16,
    limit: Option<Duration>,
) -> Next {
    send_error(client, status, limit).await;
    Next::Abort
}

async fn send_error<C: AsyncWrite + Unpin>(client: &mut C, status: u16, limit: Option<Duration>) {
    send_error_with(client, status, None, limit).await;
}

/// An error response with one extra header line (e.g. 426's
/// `Sec-WebSocket-Version: 13`), then the end of the connection.
async fn send_error_with<C: AsyncWrite + Unpin>(
    client: &mut C,
    status: u16,
    header: Option<&str>,
    limit: Option<Duration>,
) {
    let _ = write_with_timeout(client, &errors::response_with(status, header), limit).await;
    let _ = with_timeout(limit, client.shutdown()).await;
}

/// What the session does after an exchange.
enum Next {
    KeepAlive,
    /// Shut the client connection down cleanly.
    Close,
    /// The connection is unusable (an error was answered or it broke).
    Abort,
    /// The server switched protocols: tunnel to it until the end.
    /// With the server's connection slot, which the tunnel keeps.
    Upgrade {
        server: ServerStream,
        /// The new protocol is WebSocket: what each side may send (client,
        /// server).
        websocket: Option<(Policy, Policy)>,
        slot: Option<ConnGuard>,
    },
}

/// One request/response exchange (or the upgrade that ends the session).
struct Exchange<'a> {
    peer: SocketAddr,
    tls: bool,
    frontend: &'a Frontend,
    backend: &'a BackendRuntime,
    runtime: &'a Runtime,
    backend_id: usize,
}

impl Exchange<'_> {
    async fn forward<C>(
        &self,
        client: &mut C,
        request: RequestHead,
        inbuf: &mut Vec<u8>,
        limit: usize,
        shutdown: &CancellationToken,
    ) -> Next
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let be = &self.backend.config;
        let client_timeout = self.frontend.timeouts.client;
        let server_timeout = be.timeouts.server;

        let ws_settings =
            websocket::is_websocket(&request).then_some((&self.frontend.websocket, &be.websocket));
        if let Some((fe_ws, be_ws)) = ws_settings {
            if let Err(refusal) = websocket::check_handshake(&request, fe_ws, be_ws) {
                tracing::info!(peer = %self.peer, "WebSocket handshake refused: {refusal}");
                send_error_with(client, refusal.status(), refusal.header(), client_timeout).await;
                return Next::Abort;
            }
        }

        let facts = RequestFacts::http(&request, self.peer, self.tls);
        let server = match connect(self.backend, &facts).await {
            Ok(connected) => connected,
            Err(e) => {
                match &e {
                    ConnectError::NoServer => {
                        tracing::warn!(backend = %be.name, "no server available: 503")
                    }
                    _ => tracing::warn!(backend = %be.name, "{e}: 503"),
                }
                return refuse(client, 503, client_timeout).await;
            }
        };
        let target = &be.servers[server.server];
        let server_name = &target.name;
        let tls = self.runtime.server_tls(self.backend_id, server.server);
        let host = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.is(name))
                .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        };
        let stream =
            upstream::secure(server.stream, tls, target.addr, host, be.timeouts.connect).await;
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(backend = %be.name, server = %server_name, "TLS to the server failed: {e}: 503");
                return refuse(client, 503, client_timeout).await;
            }
        };

        let forwarded_for = (self.frontend.forwardfor || be.forwardfor).then(|| self.peer.ip());
        let mut out = Vec::with_capacity(1024);
        request.write_for_server(forwarded_for, &mut out);
        if write_with_timeout(&mut stream, &out, server_timeout)
            .await
            .is_err()
        {
            return refuse(client, 502, client_timeout).await;
        }
        drop(out);

        match copy_body(
            request.body,
            inbuf,
            client,
            client_timeout,
            &mut stream,
            server_timeout,
        )
        .await
        {
            Ok(_) => {}
            Err(BodyError::Read(IoError::Timeout)) => {
                return refuse(client, 408, client_timeout).await
            }
            Err(BodyError::Chunked(_)) => return refuse(client, 400, client_timeout).await,
            Err(BodyError::Write(_)) => return refuse(client, 502, client_timeout).await,
            Err(BodyError::Read(_) | BodyError::Truncated) => return Next::Abort,
        }

        let mut srvbuf: Vec<u8> = Vec::new();
        let response = loop {
            match read_response_head(&mut stream, &mut srvbuf, limit, server_timeout, &request)
                .await
            {
                Ok((head, len)) => {
                    srvbuf.drain(..len);
                    // Interim responses (100 Continue, 103 Early Hints) go
                    // to the client as they are; the final one follows.
                    if (100..200).contains(&head.status) && head.status != 101 {
                        let mut interim = Vec::new();
                        head.write_for_client(false, &mut interim);
                        if write_with_timeout(client, &interim, client_timeout)
                            .await
                            .is_err()
                        {
                            return Next::Abort;
                        }
                        continue;
                    }
                    break head;
                }
                Err(status) => {
                    tracing::warn!(backend = %be.name, server = %server_name, "bad or missing response: {status}");
                    return refuse(client, status, client_timeout).await;
                }
            }
        };

        if response.status == 101 {
            if request.upgrade.is_none() {
                tracing::warn!(server = %server_name, "101 without an upgrade request: 502");
                return refuse(client, 502, client_timeout).await;
            }
            let websocket = ws_settings
                .map(|(fe_ws, be_ws)| websocket::policies(&fe_ws.merged(be_ws), &response));
            // The server's connection slot goes with the tunnel.
            return match self
                .upgrade(client, stream, &response, &srvbuf, inbuf)
                .await
            {
                Some(stream) => Next::Upgrade {
                    server: stream,
                    websocket,
                    slot: Some(server.guard),
                },
                None => Next::Abort,
            };
        }

        let conn_mode = self.frontend.http_conn_mode.max(be.http_conn_mode);
        let close = !request.wants_keep_alive()
            || conn_mode == HttpConnMode::Close
            || response.body == BodyKind::UntilClose
            || shutdown.is_cancelled();
        let mut head = Vec::with_capacity(512);
        response.write_for_client(close, &mut head);
        if write_with_timeout(client, &head, client_timeout)
            .await
            .is_err()
        {
            return Next::Abort;
        }
        drop(head);
        let body = copy_body(
            response.body,
            &mut srvbuf,
            &mut stream,
            server_timeout,
            client,
            client_timeout,
        )
        .await;
        if let Err(e) = body {
            tracing::debug!(server = %server_name, "response body: {e}");
            return Next::Abort;
        }
        if close {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }

    /// The server accepted the protocol switch: relay its `101`, then the
    /// bytes either side sent early. Returns the server connection for the
    /// tunnel, or `None` when either side broke meanwhile.
    async fn upgrade<C>(
        &self,
        client: &mut C,
        mut server: ServerStream,
        response: &ResponseHead,
        server_early: &[u8],
        client_early: &mut Vec<u8>,
    ) -> Option<ServerStream>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let be = &self.backend.config;
        let fe = &self.frontend.timeouts;
        let mut head = Vec::with_capacity(256);
        response.write_for_client(false, &mut head);
        head.extend_from_slice(server_early);
        if write_with_timeout(client, &head, fe.client).await.is_err() {
            return None;
        }
        drop(head);
        if !client_early.is_empty()
            && write_with_timeout(&mut server, client_early, be.timeouts.server)
                .await
                .is_err()
        {
            return None;
        }
        *client_early = Vec::new();
        Some(server)
    }
}

/// A connection whose HTTP part (if any) is over, handed from the session
/// to a task of its own. The session's state (head buffers, the request
/// and response machinery) is freed before the tunnel starts, so a
/// long-lived WebSocket costs only the tunnel's few hundred bytes.
pub struct Handoff<C> {
    client: C,
    server: ServerStream,
    peer: SocketAddr,
    options: TunnelOptions,
    /// The server's connection slot, held until the tunnel ends so that
    /// `leastconn` and `maxconn` count open WebSockets.
    slot: Option<ConnGuard>,
}

impl<C: IntoTunnel> Handoff<C> {
    /// Runs the tunnel to its end.
    pub async fn run(self) {
        let Handoff {
            client,
            server,
            peer,
            options,
            slot: _slot,
        } = self;
        let ends = client
            .into_tunnel()
            .and_then(|c| Ok((c, server.into_tunnel()?)));
        let (client, server) = match ends {
            Ok(ends) => ends,
            Err(e) => {
                tracing::warn!(%peer, "cannot set up the tunnel: {e}");
                return;
            }
        };
        let outcome = tunnel::run(client, server, options).await;
        tracing::debug!(
            %peer,
            up = outcome.bytes_up,
            down = outcome.bytes_down,
            "tunnel ended: {}",
            outcome.end
        );
    }
}

/// The close signals of a WebSocket tunnel: proxy stop, and removal of its
/// server by a reload. `None` for other upgrades (not framed as WebSocket).
fn ws_signals(
    websocket: Option<(Policy, Policy)>,
    runtime: &Runtime,
    backend: usize,
    slot: &Option<ConnGuard>,
    stop: &CancellationToken,
) -> Option<WsSignals> {
    let (client_policy, server_policy) = websocket?;
    let server_gone = slot
        .as_ref()
        .and_then(|g| runtime.server_gone(backend, g.server()))
        // No known server: only the stop applies.
        .unwrap_or_else(|| stop.child_token());
    Some(WsSignals {
        client_policy,
        server_policy,
        stop: stop.clone(),
        server_gone,
    })
}

/// HAProxy's tunnel timeouts: `timeout tunnel` when set, else the shorter
/// of `timeout client` and `timeout server`; `client-fin`/`server-fin` after
/// a half-close.
fn tunnel_timeouts(frontend: &Frontend, backend: &Backend) -> TunnelTimeouts {
    let (fe, be) = (&frontend.timeouts, &backend.timeouts);
    TunnelTimeouts {
        idle: be.tunnel.or(shorter(fe.client, be.server)),
        client_fin: fe.client_fin,
        server_fin: be.server_fin,
    }
}

/// The shorter of two optional timeouts; unset means infinite.
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads the next response head. `Err` carries the status for the client:
/// 504 when `timeout server` expires first, 502 for anything malformed or
/// a server that closes before answering.
async fn read_response_head<S: AsyncRead + Unpin>(
    server: &mut S,
    srvbuf: &mut Vec<u8>,
    limit: usize,
    server_timeout: Option<Duration>,
    request: &RequestHead,
) -> Result<(ResponseHead, usize), u16> {
    loop {
        if !srvbuf.is_empty() {
            match parse_response(srvbuf, limit, request.is_head()) {
                Ok(Some(parsed)) => return Ok(parsed),
                Ok(None) => {}
                Err(_) => return Err(502),
            }
        }
        if srvbuf.capacity() - srvbuf.len() < HEAD_READ_CHUNK / 4 {
            srvbuf.reserve(HEAD_READ_CHUNK);
        }
        match with_timeout(server_timeout, server.read_buf(srvbuf)).await {
            Ok(0) => return Err(502),
            Ok(_) => {}
            Err(IoError::Timeout) => return Err(504),
            Err(IoError::Io(_)) => return Err(502),
        }
    }
}

/// Serves one client connection of a `tcp` frontend: a tunnel to a server
/// from the first byte.
pub async fn serve_tcp<C: IntoTunnel>(
    client: C,
    peer: SocketAddr,
    frontend: &Frontend,
    runtime: &Runtime,
) -> Option<Handoff<C>> {
    let backend_id = frontend.default_backend?.0;
    let backend = &runtime.backends[backend_id];
    let connected = match connect(backend, &RequestFacts::tcp(peer, false)).await {
        Ok(connected) => connected,
        Err(e) => {
            tracing::warn!(%peer, backend = %backend.config.name, "{e}");
            return None;
        }
    };
    let target = &backend.config.servers[connected.server];
    let tls = runtime.server_tls(backend_id, connected.server);
    let no_headers = |_: &str| None;
    let limit = backend.config.timeouts.connect;
    let server = match upstream::secure(connected.stream, tls, target.addr, no_headers, limit).await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, server = %target.name, "TLS to the server failed: {e}");
            return None;
        }
    };
    let slot = connected.guard;
    Some(Handoff {
        client,
        server,
        peer,
        options: TunnelOptions {
            timeouts: tunnel_timeouts(frontend, &backend.config),
            websocket: None,
        },
        slot: Some(slot),
    })
}
