//! What the proxy counts and logs beyond the backends' own counters: the
//! frontends' counters, the process figures (uptime, connections), the
//! access logger, and the small adapter that tells who closed a tunnel
//! first.
//!
//! Stage: built with the [`super::Runtime`]; sessions take a
//! [`SessionGuard`] per connection (one atomic add each for the frontend
//! and the process), count requests and responses once per exchange, and
//! tunnels once when they end. `admin/` reads all of it.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use super::buffers::PooledBuf;
use super::captured::Captures;
use super::registry::{Live, Registry, Tracked};
use super::tunnel::{Parkable, TunnelEnd, TunnelIo};
use crate::backend::{CloseReason, Counters, SessionGuard};
use crate::config::model::{Config, Frontend, LogStyle, LogTarget};
use crate::log::Logger;

/// Process-wide observability state, shared by every session.
#[derive(Debug)]
pub struct Observability {
    pub started: SystemTime,
    pub started_at: Instant,
    /// Process-wide sessions (`CurrConns`, `CumConns`, `MaxConn` seen).
    pub process: Arc<Counters>,
    /// One per `Runtime::frontends` entry.
    pub frontends: Vec<Arc<Counters>>,
    /// Per frontend: its log targets when it writes access logs.
    pub log_targets: Vec<Option<Arc<[LogTarget]>>>,
    pub logger: Arc<Logger>,
    /// Live connections (`show sess`), kept across reloads.
    pub registry: Arc<Registry>,
    /// Last refused request per frontend (`show errors`), kept across
    /// reloads.
    pub captures: Arc<Captures>,
}

impl Observability {
    /// The counters of a new configuration. On a reload (`previous`: the
    /// replaced runtime's, with its frontends) what must not reset is
    /// kept: the start time (uptime), process counters, the counters of
    /// frontends that stay (by name), and the log writer when one runs.
    pub fn new(config: &Config, previous: Option<(&Observability, &[Frontend])>) -> Observability {
        let log_targets: Vec<Option<Arc<[LogTarget]>>> = config
            .frontends
            .iter()
            .map(|fe| {
                (fe.log.style != LogStyle::None && !fe.log.targets.is_empty())
                    .then(|| Arc::from(fe.log.targets.clone()))
            })
            .collect();
        let logging = log_targets.iter().any(Option::is_some);
        let frontends = config
            .frontends
            .iter()
            .map(|fe| {
                previous
                    .and_then(|(obs, old)| {
                        let j = old.iter().position(|o| o.name == fe.name)?;
                        obs.frontends.get(j).cloned()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let logger = match previous {
            Some((obs, _)) if obs.logger.is_enabled() || !logging => obs.logger.clone(),
            _ => Arc::new(Logger::start(logging)),
        };
        Observability {
            started: previous.map_or_else(SystemTime::now, |(o, _)| o.started),
            started_at: previous.map_or_else(Instant::now, |(o, _)| o.started_at),
            process: previous.map_or_else(Counters::new, |(o, _)| o.process.clone()),
            frontends,
            log_targets,
            logger,
            registry: previous.map_or_else(Arc::default, |(o, _)| o.registry.clone()),
            captures: previous.map_or_else(Arc::default, |(o, _)| o.captures.clone()),
        }
    }

    /// The index of `fe` in `frontends` (a frontend is always one of the
    /// runtime's, so this is found; 0 otherwise).
    pub fn frontend_index(frontends: &[Frontend], fe: &Frontend) -> usize {
        frontends
            .iter()
            .position(|f| std::ptr::eq(f, fe))
            .unwrap_or(0)
    }

    /// Holds a new client connection in the process and frontend counts.
    pub fn session(&self, frontend: usize) -> Sessions {
        Sessions {
            frontend: self
                .frontends
                .get(frontend)
                .map(|c| SessionGuard::new(c.clone())),
            _process: SessionGuard::new(self.process.clone()),
            tracked: None,
        }
    }
}

/// A client connection's place in the current-session counts, held until
/// the connection (or its tunnel) ends.
#[derive(Debug)]
pub struct Sessions {
    pub frontend: Option<SessionGuard>,
    _process: SessionGuard,
    /// The connection's entry in `show sess`.
    tracked: Option<Tracked>,
}

impl Sessions {
    /// Lists the connection in `show sess` until it ends.
    pub fn track(
        mut self,
        registry: &Arc<Registry>,
        frontend: &str,
        peer: std::net::SocketAddr,
        tls: bool,
    ) -> Sessions {
        self.tracked = Some(registry.track(frontend, peer, tls));
        self
    }

    /// The connection's `show sess` entry.
    pub fn live(&self) -> Option<Arc<Live>> {
        self.tracked.as_ref().map(|t| t.live().clone())
    }

    /// An exchange went to `backend`/`server` (`tunnel`: it became one,
    /// `Some(true)` for a WebSocket).
    pub fn note(&self, backend: &str, server: &str, tunnel: Option<bool>) {
        if let Some(t) = &self.tracked {
            t.note(backend, server, tunnel);
        }
    }

    pub fn frontend_counters(&self) -> Option<&Arc<Counters>> {
        self.frontend.as_ref().map(SessionGuard::counters)
    }
}

/// Which end of a tunnel started closing it: 0 unknown, 1 the client, 2
/// the server. For WebSockets that is the side whose close frame came
/// first (after a client's close frame it is the server that shuts TCP
/// first, as RFC 6455 asks, so end-of-stream order alone would blame it);
/// otherwise, or when no close frame was seen, the side that reached
/// end-of-stream first.
#[derive(Debug, Default)]
pub struct FirstEof {
    eof: AtomicU8,
    close_frame: AtomicU8,
}

impl FirstEof {
    pub fn client_first(&self) -> Option<bool> {
        let by_frame = self.close_frame.load(Ordering::Relaxed);
        let v = if by_frame != 0 {
            by_frame
        } else {
            self.eof.load(Ordering::Relaxed)
        };
        match v {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }
}

/// A tunnel end that notes its end-of-stream (and, on WebSockets, a read
/// starting with a close frame) in a shared [`FirstEof`]; otherwise it
/// forwards every call. Cost: two byte comparisons per read.
pub struct EofWatch<T> {
    pub inner: T,
    pub first: Arc<FirstEof>,
    /// 1 for the client end, 2 for the server end.
    pub side: u8,
    /// Look for close frames (the tunnel carries WebSocket).
    pub websocket: bool,
}

/// Whether a read starts with a whole WebSocket close frame header from
/// this side: FIN + opcode 8, masked from the client and unmasked from
/// the server (RFC 6455 5.1), payload at most 125 bytes (5.5).
fn starts_with_close(data: &[u8], from_client: bool) -> bool {
    match data {
        [0x88, second, ..] => (second & 0x80 != 0) == from_client && second & 0x7f <= 125,
        _ => false,
    }
}

impl<T: TunnelIo> TunnelIo for EofWatch<T> {
    fn poll_read_pooled(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<(PooledBuf, usize)>> {
        let r = self.inner.poll_read_pooled(cx);
        match &r {
            Poll::Ready(Ok((_, 0))) => {
                let _ = self.first.eof.compare_exchange(
                    0,
                    self.side,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(Ok((buf, n))) if self.websocket => {
                let data = buf.as_ref();
                if starts_with_close(&data[..(*n).min(data.len())], self.side == 1) {
                    let _ = self.first.close_frame.compare_exchange(
                        0,
                        self.side,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
            }
            _ => {}
        }
        r
    }
    fn poll_write_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.poll_write_some(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.poll_shutdown(cx)
    }
}

/// Parked, the watch keeps what it notes into; only the end inside
/// changes form.
impl<T: Parkable> Parkable for EofWatch<T> {
    type Parked = EofWatch<T::Parked>;

    fn parkable(&self) -> bool {
        self.inner.parkable()
    }

    fn park(self) -> Result<Self::Parked, Self> {
        let EofWatch {
            inner,
            first,
            side,
            websocket,
        } = self;
        match inner.park() {
            Ok(inner) => Ok(EofWatch {
                inner,
                first,
                side,
                websocket,
            }),
            Err(inner) => Err(EofWatch {
                inner,
                first,
                side,
                websocket,
            }),
        }
    }

    fn unpark(parked: Self::Parked) -> std::io::Result<Self> {
        Ok(EofWatch {
            inner: T::unpark(parked.inner)?,
            first: parked.first,
            side: parked.side,
            websocket: parked.websocket,
        })
    }
}

impl<P: AsRawFd> AsRawFd for EofWatch<P> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// Why a tunnel ended, and HAProxy's two termination-state letters for it:
/// `--` a clean close by either side (HAProxy 2.6 logs `----` for a
/// WebSocket closed with close frames or a FIN, whoever began; the
/// `client_close` / `server_close` counters still tell who), `CD`/`SD` the
/// client/server side failed (a reset, an error) while data flowed, `cD`
/// the tunnel's inactivity timeout, `KD` closed by wsgate (stop, reload;
/// the session refines `shutdown sessions`), `PD` closed by wsgate for a
/// broken WebSocket limit.
pub fn close_reason(end: &TunnelEnd, client_first: Option<bool>) -> (CloseReason, [u8; 2]) {
    match end {
        TunnelEnd::Closed => match client_first {
            Some(false) => (CloseReason::ServerClose, *b"--"),
            _ => (CloseReason::ClientClose, *b"--"),
        },
        TunnelEnd::Timeout => (CloseReason::Timeout, *b"cD"),
        // Stop, reload or shutdown-sessions: the session tells which.
        TunnelEnd::Stopped => (CloseReason::Stop, *b"KD"),
        TunnelEnd::Policy(_) => (CloseReason::Limit, *b"PD"),
        TunnelEnd::ClientError(_) => (CloseReason::Error, *b"CD"),
        TunnelEnd::ServerError(_) => (CloseReason::Error, *b"SD"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frame_detection() {
        assert!(starts_with_close(&[0x88, 0x82, 1, 2, 3, 4, 0, 0], true));
        assert!(!starts_with_close(&[0x88, 0x02, 3, 0xe8], true));
        assert!(starts_with_close(&[0x88, 0x02, 3, 0xe8], false));
        assert!(!starts_with_close(&[0x81, 0x82], true));
        assert!(!starts_with_close(&[0x88], true));
    }
}
