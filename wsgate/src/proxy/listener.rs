//! Listening sockets (`bind`) and the accept loop.
//!
//! Stage: every worker thread binds its own socket for each `bind`
//! (SO_REUSEPORT: the kernel spreads new connections over the threads, no
//! lock or hand-off between them); one task per socket accepts connections
//! while the connection limits allow (`maxconn` in `global` and in the frontend: at
//! the limit the loop stops accepting and the kernel queues, as HAProxy
//! does), terminates TLS when the bind has `ssl`, then spawns the session.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session;
use super::Runtime;
use crate::config::model::Mode;

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
    pub runtime: Arc<Runtime>,
    /// Index into `runtime.frontends`.
    pub frontend: usize,
    pub tls: Option<TlsAcceptor>,
    /// Global `maxconn`.
    pub global_slots: Arc<Semaphore>,
    /// Frontend `maxconn`, when set.
    pub frontend_slots: Option<Arc<Semaphore>>,
}

impl Listener {
    /// Accepts until `shutdown`; runs on the thread that owns the socket.
    pub async fn run(self, shutdown: CancellationToken, sessions: TaskTracker) {
        let tcp = match TcpListener::from_std(self.socket) {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::error!("cannot register a listening socket: {e}");
                return;
            }
        };
        let limits = (self.global_slots, self.frontend_slots);
        loop {
            let slots = tokio::select! {
                s = acquire_slots(&limits.0, limits.1.as_ref()) => s,
                _ = shutdown.cancelled() => return,
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
            };
            let _ = stream.set_nodelay(true);
            let runtime = self.runtime.clone();
            let frontend = self.frontend;
            let tls = self.tls.clone();
            let token = shutdown.clone();
            sessions.spawn(async move {
                let _slots = slots;
                serve(stream, peer, runtime, frontend, tls, token).await;
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

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    runtime: Arc<Runtime>,
    frontend: usize,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let fe = &runtime.frontends[frontend];
    match tls {
        None => match fe.mode {
            Mode::Http => session::serve_http(stream, peer, false, fe, &runtime, &shutdown).await,
            Mode::Tcp => session::serve_tcp(stream, peer, fe, &runtime).await,
        },
        Some(acceptor) => {
            // The handshake is client inactivity too: `timeout client`
            // bounds it (HAProxy's `timeout client-hs` default).
            let handshake = super::io::with_timeout(fe.timeouts.client, acceptor.accept(stream));
            let tls_stream = match handshake.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
            };
            match fe.mode {
                Mode::Http => {
                    session::serve_http(tls_stream, peer, true, fe, &runtime, &shutdown).await
                }
                Mode::Tcp => session::serve_tcp(tls_stream, peer, fe, &runtime).await,
            }
        }
    }
}
