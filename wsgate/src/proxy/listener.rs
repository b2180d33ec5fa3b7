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
//!
//! Out of file descriptors (EMFILE), accepting pauses and retries instead
//! of spinning, and says so at most once a second (tests/e2e_abuse.rs).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::io::IoError;
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
        // SAFETY: the std listener owns its descriptor, and the AsyncFd
        // owns the listener until it is dropped: the descriptor stays open
        // and the same for the registration's whole life.
        let registered =
            unsafe { AsyncFd::register_with_interest(self.socket, Interest::READABLE) };
        let listener = match registered {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!("cannot register a listening socket: {e}");
                return;
            }
        };
        loop {
            // Slots are taken only once a connection waits: a loop idle on
            // an empty queue holding one would keep it from a connection
            // waiting in another worker's queue (SO_REUSEPORT).
            let mut ready = tokio::select! {
                r = listener.readable() => match r {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("listening socket {}: {e}", self.addr);
                        return;
                    }
                },
                _ = shutdown.cancelled() => return,
                _ = self.removed.cancelled() => return,
            };
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
            let accepted = match ready.try_io(|l| accept(l.get_ref())) {
                Ok(accepted) => accepted,
                // Nothing waits any more (readiness cleared): start over.
                Err(_would_block) => continue,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    drop(slots);
                    if let Some(pause) = after_accept_error(self.addr, &e) {
                        // The connection stays in the kernel's queue
                        // meanwhile; closing sessions free descriptors.
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = shutdown.cancelled() => return,
                            _ = self.removed.cancelled() => return,
                        }
                    }
                    continue;
                }
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

/// Accepts a connection the way tokio would, in one system call: the
/// socket comes non-blocking and close-on-exec.
fn accept(listener: &std::net::TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (socket, peer) =
        socket2::SockRef::from(listener).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
    let peer = peer
        .as_socket()
        .ok_or_else(|| std::io::Error::other("accepted a connection that is not TCP/IP"))?;
    Ok((TcpStream::from_std(socket.into())?, peer))
}

/// How long accepting pauses after a failure that is not one connection's
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM): retrying at once would spin on the
/// connection still waiting in the queue, a core burnt for nothing.
/// HAProxy pauses its listeners too, until a connection ends or 100 ms.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// At most one log line a second for accept failures, for the whole
/// process: at EMFILE every worker's every listener fails together.
static ACCEPT_LOG: LogBudget = LogBudget::new(1);

/// Handshake failures logged per second, for the whole process. HAProxy
/// logs every one; a scanner or a flood of garbage connections would then
/// write as fast as it connects, so beyond this the lines are counted and
/// the count is given with the next line logged (docs/tls.md).
static HANDSHAKE_LOG: LogBudget = LogBudget::new(20);

/// A rate limit for one kind of log line: `per_second` lines in each
/// one-second window, the others counted.
struct LogBudget {
    per_second: u32,
    /// Start of the window, lines logged in it, lines not logged since the
    /// last one that was.
    state: Mutex<(Option<Instant>, u32, u64)>,
}

impl LogBudget {
    const fn new(per_second: u32) -> LogBudget {
        LogBudget {
            per_second,
            state: Mutex::new((None, 0, 0)),
        }
    }

    /// `Some(lines not logged since the last one)` when this line may be
    /// logged; `None` when it is over the budget (and counted).
    fn take(&self) -> Option<u64> {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.0 {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            _ => (s.0, s.1) = (Some(now), 0),
        }
        if s.1 >= self.per_second {
            s.2 += 1;
            return None;
        }
        s.1 += 1;
        Some(std::mem::take(&mut s.2))
    }
}

/// Logs an accept failure (rate-limited) and says how long to pause:
/// `None` for errors that concern only the connection being accepted (it
/// was reset before we took it): the next one may be fine.
fn after_accept_error(addr: SocketAddr, e: &std::io::Error) -> Option<Duration> {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
    ) {
        tracing::debug!("accept on {addr}: {e}");
        return None;
    }
    if let Some(unlogged) = ACCEPT_LOG.take() {
        let fds = if e.raw_os_error() == Some(libc::EMFILE) {
            " (out of file descriptors: raise `ulimit -n`, or lower `maxconn`)"
        } else {
            ""
        };
        tracing::warn!(
            "accept on {addr} failed: {e}{fds}; accepting pauses {} ms at a time \
             ({unlogged} more such failures since the last report)",
            ACCEPT_PAUSE.as_millis()
        );
    }
    Some(ACCEPT_PAUSE)
}

/// One line per failed client handshake: the client, `frontend/bind`,
/// then HAProxy's words and why (rate-limited: [`HANDSHAKE_LOG`]).
fn log_handshake_failure(peer: SocketAddr, frontend: &str, bound: SocketAddr, e: &IoError) {
    let Some(unlogged) = HANDSHAKE_LOG.take() else {
        return;
    };
    let what = match e {
        IoError::Timeout => {
            "Timeout during SSL handshake (no complete handshake within `timeout client`)"
                .to_owned()
        }
        IoError::Io(e) => crate::tls::handshake_failure(e),
    };
    let more = if unlogged > 0 {
        format!(
            " [{unlogged} more handshake failures not logged: over {} a second]",
            HANDSHAKE_LOG.per_second
        )
    } else {
        String::new()
    };
    tracing::info!("{peer} {frontend}/{bound}: {what}{more}");
}

/// Takes a slot of the frontend, then one of the process. In this order:
/// a loop waiting for its full frontend must not sit on a global slot
/// meanwhile, which would take it from the other frontends (a flood of one
/// frontend would then lower everyone's global `maxconn`).
async fn acquire_slots(
    global: &Arc<Semaphore>,
    frontend: Option<&Arc<Semaphore>>,
) -> Option<Slots> {
    let frontend = match frontend {
        Some(s) => Some(Slot::acquire(s).await?),
        None => None,
    };
    let global = Slot::acquire(global).await?;
    Some(Slots {
        _global: global,
        _frontend: frontend,
    })
}

/// Connection slots held for the life of a session, and of its tunnel.
pub(super) struct Slots {
    _global: Slot,
    _frontend: Option<Slot>,
}

/// One permit of a `maxconn` semaphore, kept as the semaphore alone: 8
/// bytes, where tokio's owned permit is 16 with its count (always 1
/// here), and every parked tunnel holds two (docs/performance.md, "Idle
/// memory").
struct Slot(Arc<Semaphore>);

impl Slot {
    /// `None` when the semaphore is closed.
    async fn acquire(semaphore: &Arc<Semaphore>) -> Option<Slot> {
        semaphore.acquire().await.ok()?.forget();
        Some(Slot(semaphore.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.add_permits(1);
    }
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
                Err(e) => {
                    let name = &self.runtime.frontends[self.frontend].name;
                    log_handshake_failure(self.peer, name, self.bound, &e);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_budget_counts_what_it_drops_and_reports_it_next_window() {
        let budget = LogBudget::new(3);
        let start = Instant::now();
        let taken: Vec<Option<u64>> = (0..5).map(|_| budget.take_at(start)).collect();
        assert_eq!(taken, [Some(0), Some(0), Some(0), None, None]);
        let later = start + Duration::from_millis(999);
        assert_eq!(budget.take_at(later), None, "same window");
        let next = start + Duration::from_secs(1);
        assert_eq!(budget.take_at(next), Some(3), "the three dropped lines");
        assert_eq!(budget.take_at(next), Some(0));
    }
}
