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

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::after::{self, After};
use super::connect::{connect, ConnectError};
use super::counters::{close_reason, EofWatch, FirstEof, Observability, Sessions};
use super::errors;
use super::http1::body::{check_buffered, copy_body, BodyError, BodyKind};
use super::http1::head::{parse_request, parse_response, RequestError, RequestHead, ResponseHead};
use super::io::{with_timeout, write_with_timeout, IoError};
use super::park;
use super::persist::Sticky;
use super::route::{self, RequestFacts};
use super::rules::{self, Outcome};
use super::track::{Scope, Trackers};
use super::tunnel::{
    self, Flow, IntoTunnel, NotParked, Parkable, ServerGone, Tunnel, TunnelIo, TunnelOptions,
    TunnelSignals, TunnelTimeouts, WsPolicy,
};
use super::upstream::{self, ServerEnd, ServerStream};
use super::websocket::{self, TunnelPlan};
use super::Runtime;
use crate::admin;
use crate::backend::sessions::ServerSignals;
use crate::backend::{BackendRuntime, CloseReason, ConnGuard, Counters};
use crate::config::logline::{self, LogLine};
use crate::config::model::{Backend, Frontend, HttpConnMode, LogStyle, StatsPage};
use crate::log::{Entry, Logger};
use crate::proxy_protocol::Origin;

/// How much the head buffer grows per read.
const HEAD_READ_CHUNK: usize = 4096;

/// After a request wsgate answered itself: on to the next request of the
/// connection (`Next::KeepAlive`), or the session ends.
macro_rules! next_request_or_end {
    ($next:expr, $first:ident) => {
        match $next {
            Next::KeepAlive => {
                $first = false;
                continue;
            }
            _ => return None,
        }
    };
}

/// Serves one client connection of an `http` frontend. Returns the tunnel
/// to run when the connection was upgraded.
pub async fn serve_http<C>(
    mut client: C,
    tls: bool,
    origin: &Origin,
    frontend: &Frontend,
    runtime: &Arc<Runtime>,
    shutdown: &CancellationToken,
    tracked: Option<&Arc<Trackers>>,
) -> Option<Handoff<C>>
where
    C: AsyncRead + AsyncWrite + Unpin + IntoTunnel,
{
    // The client and the address it reached: announced by a PROXY header
    // (`accept-proxy`), or the socket's.
    let (peer, local) = (origin.src, Some(origin.dst));
    let limit = runtime.global.tune_bufsize;
    let fe_index = Observability::frontend_index(&runtime.frontends, frontend);
    let sessions =
        runtime
            .obs
            .session(fe_index)
            .track(&runtime.obs.registry, &frontend.name, peer, tls);
    let obs = Obs::new(runtime, fe_index, frontend, peer, local, tls);
    let conn = rules::Conn {
        peer,
        local,
        tls,
        handshake: origin.tls.as_ref(),
    };
    let fe_pages = errors::Pages {
        frontend: &frontend.errorfiles,
        backend: None,
        after: After::new(frontend, None, conn),
    };
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
        let (mut request, head_len, began) =
            match read_request_head(&mut client, &mut inbuf, limit, wait, shutdown).await {
                HeadRead::Head(request, len, began) => (request, len, began),
                HeadRead::Invalid(e) => {
                    tracing::debug!(%peer, "refused request: {e}");
                    let reason = e.to_string();
                    runtime
                        .obs
                        .captures
                        .request(&frontend.name, peer, e.status(), reason, &inbuf);
                    send_error(&mut client, &fe_pages, e.status(), fe.client).await;
                    obs.refused(e.status(), *b"PR");
                    return None;
                }
                HeadRead::TimedOut { started } => {
                    // An idle keep-alive connection is closed silently; a
                    // request that was started (or never came on a new
                    // connection) gets 408, as in HAProxy.
                    if started || first {
                        send_error(&mut client, &fe_pages, 408, fe.client).await;
                        obs.refused(408, *b"cR");
                    }
                    return None;
                }
                HeadRead::Closed => {
                    if first && inbuf.is_empty() && !frontend.log.dontlognull {
                        obs.null_connection();
                    }
                    return None;
                }
            };
        inbuf.drain(..head_len);
        tracing::debug!(%peer, method = %request.method, target = %request.target, "request");
        let mut rec = Rec::new(began, head_len);
        // Stick counters this request tracks (released when it ends, or
        // when its WebSocket tunnel closes).
        let trackers = Trackers::for_request(tracked);
        let fe_scope = Scope {
            trackers: &trackers,
            runtime,
            own: &frontend.name,
        };

        // `monitor-uri` first: HAProxy answers it before any rule.
        {
            let facts = RequestFacts::http(&request, peer, tls)
                .with_conn(&conn)
                .with_runtime(runtime);
            if let Some(reply) = super::monitor::reply(frontend, &request.target, &facts) {
                let reply = fe_pages.with(&request).after.raw(Cow::Owned(reply));
                let _ = write_with_timeout(&mut client, &reply, fe.client).await;
                let _ = with_timeout(fe.client, client.shutdown()).await;
                return None;
            }
        }
        // HAProxy's order: the frontend's `http-request` rules, the stats
        // page, the `redirect` lines, then routing.
        let outcome = rules::apply_request(
            &frontend.http_request,
            &frontend.acls,
            &mut request,
            &conn,
            &fe_scope,
        );
        if outcome != Outcome::Continue {
            trackers.answered(&outcome);
            let next = answer(
                &mut client,
                outcome,
                &fe_pages,
                &request,
                &obs,
                rec,
                "<NOSRV>",
            )
            .await;
            next_request_or_end!(next, first);
        }
        if let Some(page) = frontend
            .stats
            .as_ref()
            .filter(|p| admin::stats::matches(p, &request.target))
        {
            let admin = frontend.stats_admin.as_ref().is_some_and(|rule| {
                let facts = RequestFacts::http(&request, peer, tls)
                    .with_conn(&conn)
                    .with_runtime(runtime);
                rule.condition
                    .as_ref()
                    .is_none_or(|c| route::condition_holds(c, &frontend.acls, &facts))
            });
            let next = serve_stats(
                &mut client,
                page,
                &request,
                runtime,
                &obs,
                &frontend.name,
                rec,
                fe_pages.after,
                admin,
                &mut inbuf,
            )
            .await;
            next_request_or_end!(next, first);
        }
        let outcome = rules::apply_request(
            &frontend.redirects,
            &frontend.acls,
            &mut request,
            &conn,
            &fe_scope,
        );
        if outcome != Outcome::Continue {
            trackers.answered(&outcome);
            let next = answer(
                &mut client,
                outcome,
                &fe_pages,
                &request,
                &obs,
                rec,
                "<NOSRV>",
            )
            .await;
            next_request_or_end!(next, first);
        }
        let facts = RequestFacts::http(&request, peer, tls)
            .with_conn(&conn)
            .with_scope(fe_scope);
        if let Some(rule) = &frontend.prometheus {
            let holds = rule
                .condition
                .as_ref()
                .is_none_or(|c| route::condition_holds(c, &frontend.acls, &facts));
            if holds {
                let next =
                    serve_metrics(&mut client, &request, runtime, &obs, rec, fe_pages.after).await;
                next_request_or_end!(next, first);
            }
        }
        let Some(backend_id) = route::select_backend(frontend, &facts, runtime) else {
            send_error(&mut client, &fe_pages.with(&request), 503, fe.client).await;
            rec.status = Some(503);
            rec.term = *b"SC";
            obs.exchange(&rec, None, "<NOSRV>", "<NOSRV>", &request);
            return None;
        };
        let backend = &runtime.backends[backend_id.0];
        let be_http = &backend.config.http;
        let pages = errors::Pages {
            frontend: &frontend.errorfiles,
            backend: Some(&be_http.errorfiles),
            after: After::new(frontend, Some(be_http), conn),
        };
        let be_scope = Scope {
            own: &backend.config.name,
            ..fe_scope
        };
        let mut outcome = rules::apply_request(
            &be_http.http_request,
            &be_http.acls,
            &mut request,
            &conn,
            &be_scope,
        );
        if outcome == Outcome::Continue {
            outcome = rules::apply_request(
                &be_http.redirects,
                &be_http.acls,
                &mut request,
                &conn,
                &be_scope,
            );
        }
        if outcome != Outcome::Continue {
            trackers.answered(&outcome);
            let name = &backend.config.name;
            let next = answer(&mut client, outcome, &pages, &request, &obs, rec, name).await;
            next_request_or_end!(next, first);
        }
        if let Some(page) = backend
            .config
            .stats
            .as_ref()
            .filter(|p| admin::stats::matches(p, &request.target))
        {
            Counters::add(&backend.counters.intercepted, 1);
            let next = serve_stats(
                &mut client,
                page,
                &request,
                runtime,
                &obs,
                &backend.config.name,
                rec,
                pages.after,
                false,
                &mut inbuf,
            )
            .await;
            next_request_or_end!(next, first);
        }
        let exchange = Exchange {
            conn,
            pages,
            origin,
            frontend,
            backend,
            runtime,
            backend_id: backend_id.0,
        };
        let next = exchange
            .forward(&mut client, &request, &mut inbuf, limit, shutdown, &mut rec)
            .await;
        let tunnel = match &next {
            Next::Upgrade { websocket, .. } => Some(websocket.is_some()),
            _ => None,
        };
        sessions.note(&backend.config.name, rec.server_name(backend), tunnel);
        if let Some(status) = rec.status {
            trackers.response(status);
        }
        if let Next::Upgrade { slot, .. } = &next {
            // Counted now; logged when the tunnel ends.
            obs.count(
                &rec,
                Some(backend),
                slot.as_ref().map(ConnGuard::server_counters),
            );
        } else {
            obs.exchange(
                &rec,
                Some(backend),
                &backend.config.name,
                rec.server_name(backend),
                &request,
            );
        }
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                // The request is over before the connection is.
                drop(trackers);
                let _ = with_timeout(fe.client, client.shutdown()).await;
                return None;
            }
            Next::Abort => return None,
            Next::Upgrade {
                server,
                websocket,
                slot,
                early,
            } => {
                let log = obs.pending(&rec, backend, &request);
                return Some(Handoff {
                    client,
                    server,
                    peer,
                    options: TunnelOptions {
                        timeouts: tunnel_timeouts(frontend, &backend.config),
                        signals: Some(tunnel_signals(
                            runtime,
                            backend_id.0,
                            slot.as_ref().map(ConnGuard::server),
                            shutdown,
                            &sessions,
                        )),
                        websocket: ws_policy(
                            websocket,
                            [obs.frontend.as_deref(), Some(&backend.counters)],
                        ),
                        early,
                        park_after: park::delay(&runtime.global),
                    },
                    slot,
                    obs: TunnelObs {
                        sessions,
                        log,
                        _trackers: (!trackers.is_empty()).then(|| Box::new(trackers)),
                    },
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

/// Answers a request the rules decided on: the error page of a `deny`
/// (or a failed rewrite), a `redirect`, or a `return`'s response.
async fn answer<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    outcome: Outcome,
    pages: &errors::Pages<'_>,
    request: &RequestHead,
    obs: &Obs,
    mut rec: Rec,
    proxy: &str,
) -> Next {
    let pages = pages.with(request);
    let (status, response) = match outcome {
        Outcome::Continue => return Next::KeepAlive,
        Outcome::Deny(status) => (status, pages.response(status, None)),
        Outcome::Redirect { code, response } => (code, pages.after.raw(Cow::Owned(response))),
        Outcome::Answer { status, response } => {
            let name = obs.frontend_name.clone();
            let proxy = if proxy == "<NOSRV>" {
                name.as_str()
            } else {
                proxy
            };
            return intercepted(
                client,
                request,
                obs,
                &mut rec,
                status,
                &response,
                proxy,
                "<NOSRV>",
                pages.after,
            )
            .await;
        }
    };
    let written = write_with_timeout(client, &response, obs.client_timeout).await;
    let _ = with_timeout(obs.client_timeout, client.shutdown()).await;
    rec.status = Some(after::status_of(&response).unwrap_or(status));
    rec.term = if written.is_ok() { *b"PR" } else { *b"CR" };
    rec.bytes_out = response.len() as u64;
    obs.exchange(&rec, None, proxy, "<NOSRV>", request);
    Next::Close
}

/// Answers a stats page request (`stats uri`): HTML, `;csv` or `;json`;
/// a POST carries `stats admin` actions (`admin`: its condition holds).
#[allow(clippy::too_many_arguments)]
async fn serve_stats<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    page: &StatsPage,
    request: &RequestHead,
    runtime: &Arc<Runtime>,
    obs: &Obs,
    proxy: &str,
    mut rec: Rec,
    after: After<'_>,
    admin: bool,
    inbuf: &mut Vec<u8>,
) -> Next {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.is(name))
            .map(|h| h.value.as_slice())
    };
    let auth = header("authorization");
    let (status, response) = if request.method == "POST" {
        match read_form(client, request, inbuf, obs.client_timeout).await {
            Some(body) => {
                let text = |name: &str| header(name).and_then(|v| std::str::from_utf8(v).ok());
                let post = admin::stats_admin::Post {
                    host: text("host"),
                    origin: text("origin"),
                    referer: text("referer"),
                    body: &body,
                };
                admin::stats::answer_post(page, auth, runtime, admin, &post)
            }
            None => (
                400,
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
            ),
        }
    } else {
        // The page's script polls `;json` every `stats refresh`: with
        // thousands of servers each answer is megabytes of text.
        let (page, target) = (page.clone(), request.target.clone());
        let (auth, rt) = (auth.map(<[u8]>::to_vec), runtime.clone());
        render_off_worker(move || admin::stats::answer(&page, &target, auth.as_deref(), &rt, admin))
            .await
            .unwrap_or_else(|| (500, RENDER_FAILED.to_vec()))
    };
    intercepted(
        client, request, obs, &mut rec, status, &response, proxy, "<STATS>", after,
    )
    .await
}

/// The body of a stats form POST: `Content-Length` framed, at most
/// `stats_admin::MAX_FORM` bytes; `None` otherwise or when it does not
/// come in time.
async fn read_form<C: AsyncRead + Unpin>(
    client: &mut C,
    request: &RequestHead,
    inbuf: &mut Vec<u8>,
    timeout: Option<Duration>,
) -> Option<Vec<u8>> {
    let len = match request.body {
        BodyKind::None => 0,
        BodyKind::Length(n) => usize::try_from(n).ok()?,
        BodyKind::Chunked | BodyKind::UntilClose => return None,
    };
    if len > admin::stats_admin::MAX_FORM {
        return None;
    }
    let have = len.min(inbuf.len());
    let mut body: Vec<u8> = inbuf.drain(..have).collect();
    body.resize(len, 0);
    with_timeout(timeout, client.read_exact(&mut body[have..]))
        .await
        .ok()?;
    Some(body)
}

/// Answers a Prometheus scrape (`http-request use-service
/// prometheus-exporter`).
async fn serve_metrics<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    request: &RequestHead,
    runtime: &Arc<Runtime>,
    obs: &Obs,
    mut rec: Rec,
    after: After<'_>,
) -> Next {
    let rt = runtime.clone();
    let scrape = render_off_worker(move || admin::metrics::response(&rt)).await;
    let (status, bytes) = match &scrape {
        Some(scrape) => (200, scrape.as_bytes()),
        None => (500, RENDER_FAILED),
    };
    let name = obs.frontend_name.clone();
    intercepted(
        client, request, obs, &mut rec, status, bytes, &name, "<PROMEX>", after,
    )
    .await
}

/// The answer when a render of [`render_off_worker`] failed (it panicked).
const RENDER_FAILED: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Renders a large answer wsgate makes itself (a Prometheus scrape, the
/// stats page and its `;csv`/`;json`) on tokio's blocking pool, at most
/// two at a time for the whole process. With thousands of servers a
/// render takes tens of milliseconds and tens of megabytes: on the worker
/// it would stall every other connection there, and many scrapers or
/// open stats tabs at once would each hold such a buffer. `None` when the
/// render panicked (answered 500, never retried on the worker).
async fn render_off_worker<T: Send + 'static>(
    render: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _turn = RENDERS.acquire().await.ok()?;
    tokio::task::spawn_blocking(render).await.ok()
}

/// Sends a response wsgate made itself; counts and logs it (`LR`: handled
/// locally, as HAProxy logs its stats page).
#[allow(clippy::too_many_arguments)]
async fn intercepted<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    request: &RequestHead,
    obs: &Obs,
    rec: &mut Rec,
    status: u16,
    response: &[u8],
    proxy: &str,
    server: &str,
    after: After<'_>,
) -> Next {
    let response = after.with(request).raw(Cow::Borrowed(response));
    let response = &response[..];
    if let Some(c) = &obs.frontend {
        Counters::add(&c.intercepted, 1);
    }
    rec.status = Some(after::status_of(response).unwrap_or(status));
    rec.term = *b"LR";
    let written = write_with_timeout(client, response, obs.client_timeout)
        .await
        .is_ok();
    if written {
        rec.bytes_out = response.len() as u64;
    } else {
        rec.term = *b"CR";
    }
    obs.exchange(rec, None, proxy, server, request);
    // A request body is not read: close rather than misread it as the
    // next request.
    if written && request.body == BodyKind::None && request.wants_keep_alive() {
        Next::KeepAlive
    } else {
        let _ = with_timeout(obs.client_timeout, client.shutdown()).await;
        Next::Close
    }
}

/// What one exchange gave, for the counters and the access log.
struct Rec {
    /// When the request's first byte came.
    began: Instant,
    date: SystemTime,
    t_request: u64,
    /// Waiting for a server slot (`%Tw`); `None` when no server was got.
    t_queue: Option<u64>,
    t_connect: Option<u64>,
    t_response: Option<u64>,
    server: Option<usize>,
    server_conns: u64,
    status: Option<u16>,
    bytes_in: u64,
    bytes_out: u64,
    term: [u8; 2],
}

impl Rec {
    /// `%Tw` and `%Tc` of a request that got a server: the time since
    /// `started` (before the server was chosen), less the time `queued`
    /// for a slot, is the connect time.
    fn record_connect(&mut self, started: Instant, queued: Duration) {
        self.t_queue = Some(ms(queued));
        self.t_connect = Some(ms(started.elapsed().saturating_sub(queued)));
    }

    fn new(began: Instant, head_len: usize) -> Rec {
        let now = Instant::now();
        let ago = now.saturating_duration_since(began);
        Rec {
            began,
            date: SystemTime::now()
                .checked_sub(ago)
                .unwrap_or_else(SystemTime::now),
            t_request: ms(ago),
            t_queue: None,
            t_connect: None,
            t_response: None,
            server: None,
            server_conns: 0,
            status: None,
            bytes_in: head_len as u64,
            bytes_out: 0,
            term: *b"--",
        }
    }

    fn server_name<'b>(&self, backend: &'b BackendRuntime) -> &'b str {
        self.server
            .and_then(|i| backend.config.servers.get(i))
            .map_or("<NOSRV>", |s| s.name.as_str())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The session's view of the counters and the logger.
struct Obs {
    process: Arc<Counters>,
    frontend: Option<Arc<Counters>>,
    logger: Arc<Logger>,
    /// The frontend's log targets, when it writes access logs.
    targets: Option<Arc<[crate::config::model::LogTarget]>>,
    /// The line this frontend writes (`log-format`, `option httplog|tcplog`).
    line: Arc<LogLine>,
    frontend_name: String,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: bool,
    client_timeout: Option<Duration>,
}

impl Obs {
    fn new(
        runtime: &Runtime,
        fe_index: usize,
        frontend: &Frontend,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        tls: bool,
    ) -> Obs {
        Obs {
            process: runtime.obs.process.clone(),
            frontend: runtime.obs.frontends.get(fe_index).cloned(),
            logger: runtime.obs.logger.clone(),
            targets: runtime.obs.log_targets.get(fe_index).cloned().flatten(),
            // A `mode tcp` frontend writes tcplog lines unless it has a
            // `log-format`.
            line: match (&frontend.log.format, frontend.mode, frontend.log.style) {
                (Some(line), _, _) => line.clone(),
                (None, crate::config::model::Mode::Http, LogStyle::Http) => logline::httplog(),
                (None, _, _) => logline::tcplog(),
            },
            frontend_name: frontend.name.clone(),
            peer,
            local,
            tls,
            client_timeout: frontend.timeouts.client,
        }
    }

    /// Counts one exchange on the frontend, the backend and the server.
    fn count(&self, rec: &Rec, backend: Option<&BackendRuntime>, server: Option<&Arc<Counters>>) {
        Counters::add(&self.process.requests, 1);
        let mut all: Vec<&Counters> = Vec::with_capacity(3);
        all.extend(self.frontend.as_deref());
        if let Some(be) = backend {
            Counters::add(&be.counters.requests, 1);
            all.push(&be.counters);
        }
        all.extend(server.map(|s| &**s));
        for c in all {
            if let Some(status) = rec.status {
                c.response(status);
            }
            c.bytes(rec.bytes_in, rec.bytes_out);
        }
        if let Some(fe) = &self.frontend {
            Counters::add(&fe.requests, 1);
        }
    }

    /// Counts and logs a finished exchange.
    fn exchange(
        &self,
        rec: &Rec,
        backend: Option<&BackendRuntime>,
        backend_name: &str,
        server_name: &str,
        request: &RequestHead,
    ) {
        let server = backend.and_then(|be| rec.server.map(|i| &be.servers[i].counters));
        self.count(rec, backend, server);
        if let Some(entry) = self.entry(rec, backend, backend_name, server_name, request) {
            self.logger.send(entry);
        }
    }

    /// A `mode tcp` connection that got no server.
    fn tcp_log(&self, rec: &Rec, backend: Option<&BackendRuntime>, be: &str, srv: &str) {
        if let Some(e) = self.entry_raw(rec, backend, be, srv) {
            self.logger.send(e);
        }
    }

    /// A request refused before routing (400, 408, ...).
    fn refused(&self, status: u16, term: [u8; 2]) {
        Counters::add(&self.process.requests, 1);
        if let Some(fe) = &self.frontend {
            Counters::add(&fe.request_errors, 1);
            Counters::add(&fe.requests, 1);
            fe.response(status);
        }
        let mut rec = Rec::new(Instant::now(), 0);
        rec.status = Some(status);
        rec.term = term;
        rec.t_request = 0;
        if let Some(mut e) = self.entry_raw(&rec, None, "<NOSRV>", "<NOSRV>") {
            e.request_line = "<BADREQ>".into();
            self.logger.send(e);
        }
    }

    /// A connection closed before sending anything (logged unless
    /// `option dontlognull`).
    fn null_connection(&self) {
        let mut rec = Rec::new(Instant::now(), 0);
        rec.term = *b"CR";
        if let Some(mut e) = self.entry_raw(&rec, None, &self.frontend_name, "<NOSRV>") {
            e.request_line = "<BADREQ>".into();
            self.logger.send(e);
        }
    }

    fn entry(
        &self,
        rec: &Rec,
        backend: Option<&BackendRuntime>,
        backend_name: &str,
        server_name: &str,
        request: &RequestHead,
    ) -> Option<Entry> {
        let mut e = self.entry_raw(rec, backend, backend_name, server_name)?;
        let version = match request.version {
            super::http1::head::Version::Http10 => "HTTP/1.0",
            super::http1::head::Version::Http11 => "HTTP/1.1",
        };
        e.request_line = format!("{} {} {version}", request.method, request.target);
        e.samples = self
            .line
            .header_fetches()
            .map(|name| rules::header_value(&request.headers, name))
            .collect();
        Some(e)
    }

    fn entry_raw(
        &self,
        rec: &Rec,
        backend: Option<&BackendRuntime>,
        backend_name: &str,
        server_name: &str,
    ) -> Option<Entry> {
        let targets = self.targets.clone()?;
        let g = Counters::get;
        Some(Entry {
            line: self.line.clone(),
            targets,
            client: self.peer,
            local: self.local,
            server_addr: backend
                .zip(rec.server)
                .and_then(|(b, i)| b.servers.get(i))
                .map(|s| s.addr()),
            date: rec.date,
            frontend: self.frontend_name.clone(),
            tls: self.tls,
            backend: backend_name.to_owned(),
            server: server_name.to_owned(),
            t_request: Some(rec.t_request),
            t_queue: rec.t_queue,
            t_connect: rec.t_connect,
            t_response: rec.t_response,
            t_total: ms(rec.began.elapsed()),
            status: rec.status,
            bytes: rec.bytes_out,
            bytes_up: rec.bytes_in,
            term: rec.term,
            conns: [
                g(&self.process.cur_sessions),
                self.frontend.as_ref().map_or(0, |c| g(&c.cur_sessions)),
                backend.map_or(0, |b| g(&b.counters.cur_sessions)),
                rec.server_conns,
            ],
            retries: 0,
            redispatched: false,
            queues: [0, 0],
            request_line: String::new(),
            samples: Vec::new(),
        })
    }

    /// The log line of an upgraded request, completed when its tunnel
    /// ends.
    fn pending(
        &self,
        rec: &Rec,
        backend: &BackendRuntime,
        request: &RequestHead,
    ) -> Option<Box<PendingLog>> {
        let entry = self.entry(
            rec,
            Some(backend),
            &backend.config.name,
            rec.server_name(backend),
            request,
        )?;
        Some(Box::new(PendingLog {
            entry,
            began: rec.began,
            logger: self.logger.clone(),
        }))
    }
}

/// An access log line waiting for its tunnel to end.
struct PendingLog {
    entry: Entry,
    began: Instant,
    logger: Arc<Logger>,
}

/// What a tunnel keeps for the counters and the log.
struct TunnelObs {
    /// The connection's place in the process and frontend session counts
    /// (and so the frontend's counters: [`TunnelObs::frontend`]).
    sessions: Sessions,
    /// Boxed: most tunnels log nothing, and those that do should not make
    /// every idle tunnel's task bigger.
    log: Option<Box<PendingLog>>,
    /// The request's stick counters: the tunnel holds them (`conn_cur`
    /// counts it) until it closes. Boxed, as `log`.
    _trackers: Option<Box<Trackers>>,
}

impl TunnelObs {
    /// The frontend's counters.
    fn frontend(&self) -> Option<&Counters> {
        self.sessions.frontend.as_ref().map(|g| &**g.counters())
    }
}

enum HeadRead {
    /// The head, its length, and when its first byte came.
    Head(RequestHead, usize, Instant),
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
    // One timer for the whole head, first polled only when a read has to
    // wait: registering a tokio timer earlier than its driver's next
    // wake-up writes to the driver's eventfd (even from its own thread),
    // a system call and a spurious wake-up per connection whose request
    // is already there (docs/performance.md, churn).
    let timer = sleep_until(wait.map(|w| Instant::now() + w));
    tokio::pin!(timer);
    let mut began = (!inbuf.is_empty()).then(Instant::now);
    loop {
        if !inbuf.is_empty() {
            let first_byte = *began.get_or_insert_with(Instant::now);
            match parse_request(inbuf, limit) {
                Ok(Some((head, len))) => return HeadRead::Head(head, len, first_byte),
                Ok(None) => {}
                Err(e) => return HeadRead::Invalid(e),
            }
        }
        if inbuf.capacity() - inbuf.len() < HEAD_READ_CHUNK / 4 {
            inbuf.reserve(HEAD_READ_CHUNK.min(limit + 1 - inbuf.len().min(limit)));
        }
        let idle = inbuf.is_empty();
        tokio::select! {
            biased;
            read = client.read_buf(inbuf) => match read {
                Ok(0) | Err(_) => return HeadRead::Closed,
                Ok(_) => {}
            },
            _ = shutdown.cancelled(), if idle => return HeadRead::Closed,
            _ = &mut timer => return HeadRead::TimedOut { started: !idle },
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
    pages: &errors::Pages<'_>,
    status: u16,
    limit: Option<Duration>,
) -> Next {
    send_error(client, pages, status, limit).await;
    Next::Abort
}

async fn send_error<C: AsyncWrite + Unpin>(
    client: &mut C,
    pages: &errors::Pages<'_>,
    status: u16,
    limit: Option<Duration>,
) {
    send_error_with(client, pages, status, None, limit).await;
}

/// An error response with one extra header line (e.g. 426's
/// `Sec-WebSocket-Version: 13`), then the end of the connection.
async fn send_error_with<C: AsyncWrite + Unpin>(
    client: &mut C,
    pages: &errors::Pages<'_>,
    status: u16,
    header: Option<&str>,
    limit: Option<Duration>,
) {
    let _ = write_with_timeout(client, &pages.response(status, header), limit).await;
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
        /// server). Boxed: it is the largest part of `Next`.
        websocket: Option<Box<TunnelPlan>>,
        slot: Option<ConnGuard>,
        /// What either side sent after its head: the tunnel reads it first.
        early: Option<Box<tunnel::Early>>,
    },
}

/// One request/response exchange (or the upgrade that ends the session).
struct Exchange<'a> {
    conn: rules::Conn<'a>,
    /// The error pages: the backend's `errorfile`s, then the frontend's.
    pages: errors::Pages<'a>,
    /// What a PROXY header to the server says (`send-proxy*`).
    origin: &'a Origin,
    frontend: &'a Frontend,
    backend: &'a BackendRuntime,
    runtime: &'a Runtime,
    backend_id: usize,
}

impl Exchange<'_> {
    async fn forward<C>(
        &self,
        client: &mut C,
        request: &RequestHead,
        inbuf: &mut Vec<u8>,
        limit: usize,
        shutdown: &CancellationToken,
        rec: &mut Rec,
    ) -> Next
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let pages = self.pages.with(request);
        let be = &self.backend.config;
        let client_timeout = self.frontend.timeouts.client;
        let server_timeout = be.timeouts.server;

        let ws_settings =
            websocket::is_websocket(request).then_some((&self.frontend.websocket, &be.websocket));
        if let Some((fe_ws, be_ws)) = ws_settings {
            if let Err(refusal) = websocket::check_handshake(request, fe_ws, be_ws) {
                tracing::info!(peer = %self.conn.peer, "WebSocket handshake refused: {refusal}");
                send_error_with(
                    client,
                    &pages,
                    refusal.status(),
                    refusal.header(),
                    client_timeout,
                )
                .await;
                (rec.status, rec.term) = (Some(refusal.status()), *b"PR");
                return Next::Abort;
            }
        }

        if check_buffered(request.body, inbuf).is_err() {
            tracing::info!(peer = %self.conn.peer, "invalid chunked body: 400");
            (rec.status, rec.term) = (Some(400), *b"PR");
            return refuse(client, &self.pages, 400, client_timeout).await;
        }
        let facts = RequestFacts::http(request, self.conn.peer, self.conn.tls)
            .with_conn(&self.conn)
            .with_runtime(self.runtime);
        let sticky = Sticky::for_request(self.runtime, self.backend, &facts);
        let connect_started = Instant::now();
        let connected = connect(self.backend, &facts, sticky.prefer()).await;
        let server = match connected {
            Ok(connected) => {
                rec.record_connect(connect_started, connected.queued);
                connected
            }
            Err(ConnectError::Redirect { location, .. }) => {
                let response = pages
                    .after
                    .raw(Cow::Owned(errors::redirect(302, &location)));
                let _ = write_with_timeout(client, &response, client_timeout).await;
                let _ = with_timeout(client_timeout, client.shutdown()).await;
                (rec.status, rec.term) = (Some(302), *b"LR");
                return Next::Abort;
            }
            Err(e) => {
                rec.status = Some(503);
                if let ConnectError::Queue(_) = &e {
                    // It waited in the queue all along (HAProxy's `%Tw`
                    // for a queue timeout; `%Tc` stays -1).
                    rec.t_queue = Some(ms(connect_started.elapsed()));
                }
                rec.term = match &e {
                    ConnectError::Queue(crate::backend::AcquireError::QueueTimeout) => *b"sQ",
                    ConnectError::Queue(_) => *b"SQ",
                    _ => *b"SC",
                };
                match &e {
                    ConnectError::NoServer => {
                        tracing::warn!(backend = %be.name, "no server available: 503")
                    }
                    _ => tracing::warn!(backend = %be.name, "{e}: 503"),
                }
                return refuse(client, &pages, 503, client_timeout).await;
            }
        };
        sticky.connected(self.runtime, self.backend, server.server);
        let target = &be.servers[server.server];
        let server_name = &target.name;
        rec.server = Some(server.server);
        rec.server_conns = u64::from(server.guard.server_conns());
        let tls = self.runtime.server_tls(self.backend_id, server.server);
        let host = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.is(name))
                .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        };
        let stream = upstream::secure(
            server.stream,
            tls,
            target,
            self.origin,
            host,
            be.timeouts.connect,
        )
        .await;
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                (rec.status, rec.term) = (Some(503), *b"SC");
                tracing::warn!(backend = %be.name, server = %server_name, "TLS to the server failed: {e}: 503");
                return refuse(client, &pages, 503, client_timeout).await;
            }
        };
        let sent_at = Instant::now();

        let forwarded_for = rules::forwarded_for(
            self.frontend.forwardfor.as_ref(),
            be.http.forwardfor.as_ref(),
            request,
            self.conn.peer.ip(),
        );
        let mut out = Vec::with_capacity(1024);
        sticky
            .request(request)
            .write_for_server(forwarded_for, &mut out);
        if write_with_timeout(&mut stream, &out, server_timeout)
            .await
            .is_err()
        {
            rec.status = Some(502);
            rec.term = *b"SH";
            return refuse(client, &pages, 502, client_timeout).await;
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
            Ok(n) => rec.bytes_in += n,
            Err(BodyError::Read(IoError::Timeout)) => {
                (rec.status, rec.term) = (Some(408), *b"cD");
                return refuse(client, &pages, 408, client_timeout).await;
            }
            Err(BodyError::Chunked(_)) => {
                (rec.status, rec.term) = (Some(400), *b"PR");
                return refuse(client, &pages, 400, client_timeout).await;
            }
            Err(BodyError::Write(_)) => {
                (rec.status, rec.term) = (Some(502), *b"SD");
                return refuse(client, &pages, 502, client_timeout).await;
            }
            Err(BodyError::Read(_) | BodyError::Truncated) => {
                rec.term = *b"CD";
                return Next::Abort;
            }
        }

        let mut srvbuf: Vec<u8> = Vec::new();
        let mut response = loop {
            match read_response_head(&mut stream, &mut srvbuf, limit, server_timeout, request).await
            {
                Ok((head, len)) => {
                    srvbuf.drain(..len);
                    rec.t_response.get_or_insert(ms(sent_at.elapsed()));
                    // Interim responses (100 Continue, 103 Early Hints) go
                    // to the client as they are; the final one follows.
                    if (100..200).contains(&head.status) && head.status != 101 {
                        let mut interim = Vec::new();
                        head.write_for_client(false, &mut interim);
                        if write_with_timeout(client, &interim, client_timeout)
                            .await
                            .is_err()
                        {
                            rec.term = *b"CH";
                            return Next::Abort;
                        }
                        rec.bytes_out += interim.len() as u64;
                        continue;
                    }
                    break head;
                }
                Err(status) => {
                    rec.status = Some(status);
                    rec.term = if status == 504 { *b"sH" } else { *b"SH" };
                    Counters::add(&self.backend.counters.response_errors, 1);
                    Counters::add(&server.guard.server_counters().response_errors, 1);
                    tracing::warn!(backend = %be.name, server = %server_name, "bad or missing response: {status}");
                    if status == 502 && !srvbuf.is_empty() {
                        self.runtime.obs.captures.response(
                            &self.frontend.name,
                            &be.name,
                            server_name,
                            self.conn.peer,
                            status,
                            &srvbuf,
                        );
                    }
                    return refuse(client, &pages, status, client_timeout).await;
                }
            }
        };

        // `http-response` rules: the backend's, then the frontend's.
        let denied = rules::apply_response(
            &be.http.http_response,
            &be.http.acls,
            request,
            &mut response,
            &self.conn,
        )
        .or_else(|| {
            rules::apply_response(
                &self.frontend.http_response,
                &self.frontend.acls,
                request,
                &mut response,
                &self.conn,
            )
        });
        if let Some(status) = denied {
            (rec.status, rec.term) = (Some(status), *b"PH");
            tracing::info!(server = %server_name, "response denied by an http-response rule: {status}");
            return refuse(client, &pages, status, client_timeout).await;
        }
        sticky.response(self.backend, server.server, request, &mut response);
        pages.after.head(&mut response);
        rec.status = Some(response.status);
        if response.status == 101 {
            if request.upgrade.is_none() {
                (rec.status, rec.term) = (Some(502), *b"SH");
                tracing::warn!(server = %server_name, "101 without an upgrade request: 502");
                return refuse(client, &pages, 502, client_timeout).await;
            }
            let websocket = ws_settings
                .map(|(fe_ws, be_ws)| Box::new(websocket::plan(&fe_ws.merged(be_ws), &response)));
            // The server's connection slot goes with the tunnel.
            if !self.upgrade(client, &response, rec).await {
                rec.term = *b"CD";
                return Next::Abort;
            }
            return Next::Upgrade {
                server: stream,
                websocket,
                slot: Some(server.guard),
                early: tunnel::Early::new(std::mem::take(inbuf), srvbuf),
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
            rec.term = *b"CH";
            return Next::Abort;
        }
        rec.bytes_out += head.len() as u64;
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
        match body {
            Ok(n) => rec.bytes_out += n,
            Err(e) => {
                rec.term = match e {
                    BodyError::Write(_) => *b"CD",
                    BodyError::Read(IoError::Timeout) => *b"sD",
                    _ => *b"SD",
                };
                tracing::debug!(server = %server_name, "response body: {e}");
                return Next::Abort;
            }
        }
        if close {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }

    /// The server accepted the protocol switch: relay its `101`. Whether
    /// the client could take it; the bytes either side sent early go to
    /// the tunnel ([`tunnel::Early`]).
    async fn upgrade<C>(&self, client: &mut C, response: &ResponseHead, rec: &mut Rec) -> bool
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let mut head = Vec::with_capacity(256);
        response.write_for_client(false, &mut head);
        if write_with_timeout(client, &head, self.frontend.timeouts.client)
            .await
            .is_err()
        {
            return false;
        }
        rec.bytes_out += head.len() as u64;
        true
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
    /// Session counts held, counters to update and the log line to write
    /// when the tunnel ends.
    obs: TunnelObs,
}

impl<C: IntoTunnel> Handoff<C> {
    /// The tunnel's task: it runs the tunnel to its end, then counts its
    /// bytes and why it ended (`wsgate_tunnels_closed_total`) and writes its
    /// access log line; `hold` (connection slots) is kept until then.
    /// `None` when the connection cannot be set up as a tunnel (logged).
    ///
    /// The task is what an idle WebSocket costs, so it is a plain struct
    /// around the tunnel's future rather than an `async` block, which would
    /// keep a second copy of that future (its captured value and the value
    /// being awaited).
    pub fn run<H>(self, hold: H) -> Option<TunnelTask<C::End, ServerEnd, H>> {
        let Handoff {
            client,
            server,
            peer,
            options,
            slot,
            obs,
        } = self;
        let ends = client
            .into_tunnel()
            .and_then(|c| Ok((c, server.into_tunnel()?)));
        let (client, server) = match ends {
            Ok(ends) => ends,
            Err(e) => {
                tracing::warn!(%peer, "cannot set up the tunnel: {e}");
                return None;
            }
        };
        let first = Arc::new(FirstEof::default());
        let websocket = options.websocket.is_some();
        let client = EofWatch {
            inner: client,
            first: first.clone(),
            side: 1,
            websocket,
        };
        let server = EofWatch {
            inner: server,
            first,
            side: 2,
            websocket,
        };
        if let Some(slot) = &slot {
            slot.server_counters().tunnel_open();
            slot.backend_counters().tunnel_open();
        }
        if let Some(f) = obs.frontend() {
            f.tunnel_open();
        }
        Some(TunnelTask {
            tunnel: Some(tunnel::run(client, server, options)),
            end: Some(TunnelFinish {
                slot,
                obs,
                _hold: hold,
            }),
        })
    }
}

/// One tunnel's task (see [`Handoff::run`]). When the tunnel is idle, the
/// task ends and leaves it parked (park.rs); waking it makes a new one.
pub struct TunnelTask<C, S, H> {
    tunnel: Option<Tunnel<EofWatch<C>, EofWatch<S>>>,
    end: Option<TunnelFinish<H>>,
}

/// What the end of a tunnel needs besides who closed first (its ends
/// know: [`EofWatch`]): where it went, its counters and log line, why
/// wsgate closed it, and the slots it holds. (When it opened is in its
/// `show sess` entry.)
pub struct TunnelFinish<H> {
    slot: Option<ConnGuard>,
    obs: TunnelObs,
    _hold: H,
}

impl<C, S, H> Future for TunnelTask<C, S, H>
where
    C: TunnelIo + Parkable + Send + Unpin + 'static,
    S: TunnelIo + Parkable + Send + Unpin + 'static,
    H: Send + Unpin + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(tunnel) = this.tunnel.as_mut() else {
            return Poll::Ready(());
        };
        let flow = std::task::ready!(tunnel.poll_tunnel(cx));
        let (Some(tunnel), Some(end)) = (this.tunnel.take(), this.end.take()) else {
            return Poll::Ready(());
        };
        let first = tunnel.ends().0.first.clone();
        let tunnel = match flow {
            Flow::End(outcome) => {
                finish(outcome, &first, end);
                return Poll::Ready(());
            }
            Flow::Idle if park::available() => tunnel.park(),
            Flow::Idle => Err(NotParked::Kept(tunnel)),
        };
        match tunnel {
            Ok(tunnel) => {
                park::park(Box::new(ParkedTunnel::<C, S, H> { tunnel, end }));
                Poll::Ready(())
            }
            Err(NotParked::Kept(mut tunnel)) => {
                tunnel.park_refused();
                this.tunnel = Some(tunnel);
                this.end = Some(end);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(NotParked::Broken(outcome)) => {
                finish(outcome, &first, end);
                Poll::Ready(())
            }
        }
    }
}

/// A tunnel and what its task held, while parked.
struct ParkedTunnel<C: Parkable, S: Parkable, H> {
    tunnel: Tunnel<EofWatch<C::Parked>, EofWatch<S::Parked>>,
    end: TunnelFinish<H>,
}

impl<C, S, H> park::Sleeper for ParkedTunnel<C, S, H>
where
    C: TunnelIo + Parkable + Send + Unpin + 'static,
    S: TunnelIo + Parkable + Send + Unpin + 'static,
    H: Send + Unpin + 'static,
{
    fn sockets(&self) -> [std::os::fd::RawFd; 2] {
        self.tunnel.sockets()
    }

    fn wake_at(&self) -> Option<Instant> {
        self.tunnel.wake_at()
    }

    fn signalled(&self) -> bool {
        self.tunnel.signalled()
    }

    fn watch_signals(&mut self, waker: &std::task::Waker) {
        self.tunnel.watch_signals(waker);
    }

    fn wake(self: Box<Self>, tasks: &tokio_util::task::TaskTracker) {
        let ParkedTunnel { tunnel, end } = *self;
        let first = tunnel.ends().0.first.clone();
        match Tunnel::<EofWatch<C>, EofWatch<S>>::unpark(tunnel) {
            Ok(tunnel) => {
                tasks.spawn(TunnelTask {
                    tunnel: Some(tunnel),
                    end: Some(end),
                });
            }
            Err(outcome) => finish(outcome, &first, end),
        }
    }
}

/// The end of a tunnel: counters by close reason, lifetime and bytes, the
/// access log line.
fn finish<H>(outcome: tunnel::TunnelOutcome, first: &FirstEof, end: TunnelFinish<H>) {
    let TunnelFinish { slot, obs, _hold } = end;
    tracing::debug!(
        peer = ?obs.sessions.live().map(|l| l.peer),
        up = outcome.bytes_up,
        down = outcome.bytes_down,
        "tunnel ended: {}",
        outcome.end
    );
    let (reason, term) = close_reason(&outcome.end, first.client_first());
    let (reason, term) = match (reason, outcome.server_gone) {
        (CloseReason::Stop, Some(ServerGone::Removed)) => (CloseReason::Reload, term),
        // HAProxy 2.6: `K---` for `shutdown sessions`, `D---` when the
        // server went down (`on-marked-down shutdown-sessions`).
        (CloseReason::Stop, Some(ServerGone::SessionsShutDown)) => {
            let down = slot.as_ref().is_some_and(|s| !s.server_usable());
            (CloseReason::Shutdown, if down { *b"D-" } else { *b"K-" })
        }
        (reason, _) => (reason, term),
    };
    let mut counted: Vec<&Counters> = Vec::with_capacity(3);
    if let Some(f) = obs.frontend() {
        f.tunnel_closed(reason);
    }
    counted.extend(obs.frontend());
    if let Some(slot) = &slot {
        slot.server_counters().tunnel_closed(reason);
        slot.backend_counters().tunnel_closed(reason);
        if let Some(since) = obs.sessions.live().and_then(|l| l.tunnel_since()) {
            slot.backend_counters().tunnel_lifetime(since.elapsed());
        }
        counted.push(slot.server_counters());
        counted.push(slot.backend_counters());
    }
    for c in counted {
        c.bytes(outcome.bytes_up, outcome.bytes_down);
    }
    if let Some(log) = obs.log {
        let PendingLog {
            mut entry,
            began,
            logger,
        } = *log;
        entry.t_total = ms(began.elapsed());
        entry.bytes += outcome.bytes_down;
        entry.bytes_up += outcome.bytes_up;
        entry.term = term;
        logger.send(entry);
    }
    drop(slot);
    drop(obs.sessions);
}

/// Why wsgate may end a tunnel on its own: proxy stop, removal of its
/// server by a reload, shutdown of its server's sessions.
fn tunnel_signals(
    runtime: &Runtime,
    backend: usize,
    server: Option<usize>,
    stop: &CancellationToken,
    conn: &Sessions,
) -> TunnelSignals {
    let spread = runtime.global.close_spread();
    let server = match server.and_then(|s| runtime.server_sessions(backend, s)) {
        Some(sessions) => sessions.signals(stop, spread),
        // No known server: only the stop applies.
        None => Arc::new(ServerSignals::stop_only(stop, spread)),
    };
    TunnelSignals {
        server,
        // `shutdown session <id>` ends this one tunnel the same way.
        live: conn.live(),
    }
}

/// What wsgate checks and adds on a WebSocket tunnel. `None` for other
/// upgrades (not framed as WebSocket).
fn ws_policy(
    websocket: Option<Box<TunnelPlan>>,
    counters: [Option<&Counters>; 2],
) -> Option<WsPolicy> {
    websocket.map(|plan| WsPolicy {
        client_policy: plan.client,
        server_policy: plan.server,
        keepalive: plan.keepalive,
        counters: counters.map(|c| c.map(|c| c.ws.clone())),
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
pub async fn serve_tcp<C>(
    mut client: C,
    peer: SocketAddr,
    origin: &Origin,
    frontend: &Frontend,
    runtime: &Runtime,
    shutdown: &CancellationToken,
    tracked: Option<&Arc<Trackers>>,
) -> Option<Handoff<C>>
where
    C: AsyncRead + AsyncWrite + Unpin + IntoTunnel + super::inspect::Peek,
{
    let fe_index = Observability::frontend_index(&runtime.frontends, frontend);
    let sessions =
        runtime
            .obs
            .session(fe_index)
            .track(&runtime.obs.registry, &frontend.name, peer, false);
    let obs = Obs::new(runtime, fe_index, frontend, peer, None, false);
    let mut rec = Rec::new(Instant::now(), 0);
    rec.bytes_in = 0;
    // `use_backend` rules hold here too, on what a TCP connection offers
    // (`src`, `nbsrv`, the connection's stick counters...; HTTP fetches
    // find nothing), as in HAProxy.
    let counters = Trackers::of_connection(tracked);
    let scope = Scope {
        trackers: &counters,
        runtime,
        own: &frontend.name,
    };
    let handshake = origin.tls.as_ref();
    let facts = RequestFacts::tcp(peer, handshake.is_some())
        .with_scope(scope)
        .with_handshake(handshake)
        .with_local(Some(origin.dst));
    let bufsize = runtime.global.tune_bufsize;
    let inspected = match super::inspect::content(&client, frontend, &facts, bufsize).await {
        Ok(inspected) => inspected,
        Err(refused) => {
            tracing::debug!(%peer, "{refused}");
            rec.term = refused.term();
            obs.tcp_log(&rec, None, &frontend.name, "<NOSRV>");
            return None;
        }
    };
    let facts = facts.with_inspected(inspected.as_ref());
    let Some(backend_id) = route::select_backend(frontend, &facts, runtime) else {
        rec.term = *b"SC";
        obs.tcp_log(&rec, None, "<NOSRV>", "<NOSRV>");
        return None;
    };
    let backend = &runtime.backends[backend_id.0];
    let first =
        super::persist::first_bytes(&mut client, backend, runtime.global.tune_bufsize).await;
    let facts = RequestFacts {
        payload: Some(&first),
        ..facts
    };
    let started = Instant::now();
    let sticky = Sticky::for_request(runtime, backend, &facts);
    let connected = match connect(backend, &facts, sticky.prefer()).await {
        Ok(connected) => connected,
        Err(e) => {
            tracing::warn!(%peer, backend = %backend.config.name, "{e}");
            rec.term = *b"SC";
            obs.tcp_log(&rec, Some(backend), &backend.config.name, "<NOSRV>");
            return None;
        }
    };
    sticky.connected(runtime, backend, connected.server);
    let target = &backend.config.servers[connected.server];
    let tls = runtime.server_tls(backend_id.0, connected.server);
    let no_headers = |_: &str| None;
    let limit = backend.config.timeouts.connect;
    let secured = upstream::secure(connected.stream, tls, target, origin, no_headers, limit).await;
    let mut server = match secured {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, server = %target.name, "TLS to the server failed: {e}");
            rec.term = *b"SC";
            obs.tcp_log(&rec, Some(backend), &backend.config.name, &target.name);
            return None;
        }
    };
    if !first.is_empty() {
        let limit = backend.config.timeouts.server;
        if write_with_timeout(&mut server, &first, limit)
            .await
            .is_err()
        {
            rec.term = *b"SD";
            obs.tcp_log(&rec, Some(backend), &backend.config.name, &target.name);
            return None;
        }
        rec.bytes_in += first.len() as u64;
    }
    drop(first);
    let slot = connected.guard;
    rec.record_connect(started, connected.queued);
    rec.server = Some(slot.server());
    rec.server_conns = u64::from(slot.server_conns());
    sessions.note(&backend.config.name, rec.server_name(backend), Some(false));
    let log = obs
        .entry_raw(
            &rec,
            Some(backend),
            &backend.config.name,
            rec.server_name(backend),
        )
        .map(|entry| {
            Box::new(PendingLog {
                entry,
                began: rec.began,
                logger: obs.logger.clone(),
            })
        });
    let signals = tunnel_signals(
        runtime,
        backend_id.0,
        Some(slot.server()),
        shutdown,
        &sessions,
    );
    Some(Handoff {
        client,
        server,
        peer,
        options: TunnelOptions {
            timeouts: tunnel_timeouts(frontend, &backend.config),
            signals: Some(signals),
            websocket: None,
            early: None,
            park_after: park::delay(&runtime.global),
        },
        slot: Some(slot),
        obs: TunnelObs {
            sessions,
            log,
            _trackers: Trackers::holding(tracked),
        },
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    /// An idle WebSocket costs mostly its task, whose size is this future's
    /// (plus tokio's header). It was 2.6 KiB while `Handoff::run` was an
    /// `async fn` around an `async fn`, 808 bytes once both were structs,
    /// and 1,272 after per-peer keepalive state, per-message counters, stick
    /// counters and close-reason tracking were added; 768 once what only
    /// limits, keepalive and wsgate's own closes need was boxed apart and
    /// timeouts kept in milliseconds; 744 with the message-size histogram,
    /// early bytes and the `shutdown session` switch; 592 with the message
    /// counts boxed until the first message, the directions' own frames
    /// kept without an offset, the stop and server signals shared by the
    /// tunnels of a server, and no copies of the `show sess` entry and the
    /// who-closed-first record. tokio rounds a task up to 128 bytes (its
    /// header is cache-line aligned): with the accept slots it holds, the
    /// spawned task was 896 bytes at 744 (measured with dhat; at 1,272 it
    /// was 1,408), and is 768 from 616 down.
    #[tokio::test]
    async fn an_idle_tunnel_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server = tokio::net::TcpStream::connect(addr).await.unwrap();
        let config = crate::config::model::Config {
            global: Default::default(),
            frontends: Vec::new(),
            backends: Vec::new(),
        };
        let handoff = Handoff {
            client,
            server: ServerStream::Plain(server),
            peer: addr,
            options: TunnelOptions {
                timeouts: TunnelTimeouts::default(),
                signals: None,
                websocket: None,
                early: None,
                park_after: None,
            },
            slot: None,
            obs: TunnelObs {
                sessions: Observability::new(&config, None).session(0),
                log: None,
                _trackers: None,
            },
        };
        let task = handoff.run(()).unwrap();
        let size = std::mem::size_of_val(&task);
        assert!(size <= 592, "tunnel task is {size} bytes");
    }

    /// A parked tunnel is boxed as it is, minus its task, registrations,
    /// timer and stop registration (park.rs): 512 bytes, jemalloc's 512
    /// size class (it was 672, in the 768 class, before the savings listed
    /// above), against 768 for the task plus 512 for the two
    /// registrations, 112 for the timer and 72 for the stop registration.
    #[test]
    fn a_parked_tunnel_is_smaller_than_its_task() {
        type Parked = ParkedTunnel<tunnel::PlainSocket, ServerEnd, crate::proxy::listener::Slots>;
        let size = std::mem::size_of::<Parked>();
        assert!(size <= 512, "parked tunnel is {size} bytes");
    }
}
