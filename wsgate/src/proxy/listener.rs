//! Listening sockets (`bind`) and the accept loop.
//!
//! Stage: every worker thread binds its own socket for each `bind`
//! (SO_REUSEPORT: the kernel spreads new connections over the threads, no
//! lock or hand-off between them); one task per socket accepts connections
//! while the connection limits allow (`maxconn` in `global` and in the frontend: at
//! the limit the loop stops accepting and the kernel queues, as HAProxy
//! does), reads the PROXY protocol header when the bind has `accept-proxy`
//! (proxy_protocol.rs), terminates TLS when it has `ssl`, then spawns the
//! session with the client's address (the announced one, if any).

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session;
use super::tunnel::IntoTunnel;
use super::{BindTarget, Runtime, Shared};
use crate::config::model::Mode;
use crate::proxy_protocol::{self, Announced, HeaderError, Origin, Parsed};
use crate::tls::Handshake;

/// Accept backlog, as HAProxy's default for a listener (`backlog` unset
/// means the frontend's maxconn; this is a plain, generous value).
const BACKLOG: i32 = 1024;

/// Binds `addr` with SO_REUSEADDR (a restarted proxy can rebind at once
/// while old connections sit in TIME_WAIT) and SO_REUSEPORT (one socket per
/// worker thread on the same address). The socket is registered with a
/// reactor later, by the thread that serves it.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Everything one accept loop needs.
pub struct Listener {
    pub socket: std::net::TcpListener,
    /// The bound address: where to look up, in the current runtime, which
    /// frontend this socket serves and with which certificates.
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    /// Global `maxconn`.
    pub global_slots: Arc<Semaphore>,
    /// Cancelled when a reload removes this bind.
    pub removed: CancellationToken,
}

impl Listener {
    /// Accepts until `shutdown` or removal; runs on the thread that owns
    /// the socket. Each connection is served with the runtime current when
    /// it was accepted, so a reload never changes a session midway.
    pub async fn run(self, shutdown: CancellationToken, sessions: TaskTracker) {
        let tcp = match TcpListener::from_std(self.socket) {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::error!("cannot register a listening socket: {e}");
                return;
            }
        };
        loop {
            let frontend_slots = {
                let runtime = self.shared.current();
                let Some(target) = runtime.binds.get(&self.addr) else {
                    return;
                };
                runtime.frontend_slots[target.frontend].clone()
            };
            let slots = tokio::select! {
                s = acquire_slots(&self.global_slots, frontend_slots.as_ref()) => s,
                _ = shutdown.cancelled() => return,
                _ = self.removed.cancelled() => return,
            };
            let Some(slots) = slots else { return };
            let (stream, peer) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: wait a little rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
                _ = self.removed.cancelled() => return,
            };
            let _ = stream.set_nodelay(true);
            let runtime = self.shared.current();
            let Some(target) = runtime.binds.get(&self.addr).cloned() else {
                return;
            };
            let token = shutdown.clone();
            let tracker = sessions.clone();
            sessions.spawn(async move {
                let conn = Conn {
                    peer,
                    bound: self.addr,
                    runtime,
                    frontend: target.frontend,
                    shutdown: token,
                    tracker,
                    slots,
                };
                conn.serve(stream, target).await;
            });
        }
    }
}

async fn acquire_slots(
    global: &Arc<Semaphore>,
    frontend: Option<&Arc<Semaphore>>,
) -> Option<Slots> {
    let global = global.clone().acquire_owned().await.ok()?;
    let frontend = match frontend {
        Some(s) => Some(s.clone().acquire_owned().await.ok()?),
        None => None,
    };
    Some(Slots {
        _global: global,
        _frontend: frontend,
    })
}

/// Connection slots held for the life of a session.
struct Slots {
    _global: tokio::sync::OwnedSemaphorePermit,
    _frontend: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// One accepted connection and what it holds until its very end.
struct Conn {
    peer: SocketAddr,
    /// The listening address (where the client connected, unless it is a
    /// wildcard).
    bound: SocketAddr,
    runtime: Arc<Runtime>,
    frontend: usize,
    shutdown: CancellationToken,
    /// Where an upgraded connection's tunnel task is tracked.
    tracker: TaskTracker,
    /// Held by the session, then by its tunnel.
    slots: Slots,
}

impl Conn {
    async fn serve(mut self, stream: TcpStream, target: BindTarget) {
        // The PROXY header and the TLS handshake are client inactivity
        // too: `timeout client` bounds them (HAProxy's `timeout client-hs`
        // default).
        let limit = self.runtime.frontends[self.frontend].timeouts.client;
        // Where the client connected, for `send-proxy*` (a system call only
        // for wildcard binds).
        let local = if self.bound.ip().is_unspecified() {
            stream.local_addr().unwrap_or(self.bound)
        } else {
            self.bound
        };
        // `tcp-request connection` rules: before anything is read, on the
        // socket's peer, as in HAProxy.
        let fe = &self.runtime.frontends[self.frontend];
        let Ok(tracked) = super::track::connection(fe, &self.runtime, self.peer) else {
            // Reset, not closed: HAProxy's `reject` leaves no TIME_WAIT.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
            tracing::debug!(peer = %self.peer, "connection rejected by a `tcp-request connection` rule");
            return;
        };
        let mut origin = Origin::plain(self.peer, local);
        if target.accept_proxy {
            let header = match limit {
                Some(limit) => tokio::time::timeout(limit, read_proxy_header(&stream))
                    .await
                    .unwrap_or(Err(AcceptProxyError::Timeout)),
                None => read_proxy_header(&stream).await,
            };
            match header {
                Ok(Announced::Addresses { src, dst }) => (origin.src, origin.dst) = (src, dst),
                Ok(Announced::KeepReal) => {}
                Err(e) => {
                    // As HAProxy: logged and closed, nothing sent back.
                    tracing::info!(peer = %self.peer, "PROXY protocol: {e}; connection closed");
                    return;
                }
            }
            // The announced client is the session's peer everywhere.
            self.peer = origin.src;
        }
        match target.tls {
            None => self.serve_stream(stream, false, origin, tracked).await,
            Some(acceptor) => match super::io::with_timeout(limit, acceptor.accept(stream)).await {
                Ok(tls_stream) => {
                    origin.tls = Some(Handshake::of(tls_stream.get_ref().1));
                    self.serve_stream(tls_stream, true, origin, tracked).await
                }
                Err(e) => tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
            },
        }
    }

    async fn serve_stream<C>(
        self,
        stream: C,
        tls: bool,
        origin: Origin,
        tracked: Option<Arc<super::track::Trackers>>,
    ) where
        C: AsyncRead + AsyncWrite + Unpin + IntoTunnel + super::inspect::Peek + Send + 'static,
    {
        let fe = &self.runtime.frontends[self.frontend];
        let (rt, peer, sd) = (&self.runtime, self.peer, &self.shutdown);
        let tracked = tracked.as_ref();
        let handoff = match fe.mode {
            Mode::Http => session::serve_http(stream, tls, &origin, fe, rt, sd, tracked).await,
            Mode::Tcp => session::serve_tcp(stream, peer, &origin, fe, rt, sd, tracked).await,
        };
        // The tunnel gets a task of its own, and this one ends: see
        // `session::Handoff`.
        if let Some(task) = handoff.and_then(|h| h.run(self.slots)) {
            self.tracker.spawn(task);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum AcceptProxyError {
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("the client closed the connection before a complete header")]
    Closed,
    #[error("no complete header within `timeout client`")]
    Timeout,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads exactly the PROXY protocol header at the start of `stream` and
/// nothing after it (a TLS ClientHello or a request stays in the socket):
/// bytes are peeked, and only those that belong to the header are
/// consumed. At most [`proxy_protocol::V2_MAX`] bytes are held.
async fn read_proxy_header(stream: &TcpStream) -> Result<Announced, AcceptProxyError> {
    let mut have: Vec<u8> = Vec::with_capacity(proxy_protocol::V1_MAX);
    let mut scratch = vec![0u8; 4096];
    loop {
        let room = (proxy_protocol::V2_MAX - have.len()).min(scratch.len());
        let n = stream.peek(&mut scratch[..room]).await?;
        if n == 0 {
            return Err(AcceptProxyError::Closed);
        }
        let consumed = have.len();
        have.extend_from_slice(&scratch[..n]);
        let (announced, take) = match proxy_protocol::parse(&have)? {
            Parsed::Complete { announced, len } => (Some(announced), len - consumed),
            // Everything peeked belongs to the header: consume it and wait
            // for the rest.
            Parsed::Incomplete => (None, n),
        };
        have.truncate(consumed + take);
        consume(stream, &mut scratch[..take]).await?;
        if let Some(announced) = announced {
            return Ok(announced);
        }
    }
}

/// Reads exactly `buf.len()` bytes that are known to be in the socket.
async fn consume(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        stream.readable().await?;
        match stream.try_read(&mut buf[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
