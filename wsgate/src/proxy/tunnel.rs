//! The tunnel: an upgraded connection (after `101 Switching Protocols`) or
//! a `mode tcp` session, copied blindly in both directions.
//!
//! Stage: the session hands over both streams once the HTTP exchange is
//! over; this module knows nothing of HTTP (sozu's `Pipe`).
//!
//! Memory: a direction waiting for data holds no buffer. It waits for
//! readiness first and only then borrows a [`PooledBuf`] for the read, so
//! an idle tunnel costs two sockets and a timer. This is the basis of the
//! memory-per-idle-WebSocket target (DESIGN.md principle 3).
//!
//! System calls: a plain TCP end ([`PlainSocket`]) treats a read that
//! returns less than the buffer as "drained" and waits for the next
//! readiness edge instead of reading again only to get EAGAIN, as HAProxy
//! does; that saves one `recv` per message and direction. Ends that are
//! not plain sockets (TLS) go through [`Stream`], which reads until the
//! stream itself says it is not ready.
//!
//! Timeouts, as HAProxy applies them to tunnels: `timeout tunnel`
//! (inactivity in both directions) when set, otherwise the frontend's
//! `timeout client` and the backend's `timeout server` (the shorter one,
//! since either side's inactivity ends a HAProxy tunnel); once one side
//! has shut its sending direction, `timeout client-fin` / `server-fin`
//! take over when set.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::buffers::PooledBuf;
use super::registry::Live;
use crate::backend::sessions::ServerSignals;
use crate::config::process::CloseSpread;
use crate::ws::close::{close_frame, ping_frame, CloseCode, Peer};
use crate::ws::counters::{WsCounters, FLUSH_EVERY};
use crate::ws::frame::{FrameTracker, Policy, Violation};
use crate::ws::rate::Clock;

/// The inactivity limits of one tunnel; `None` is infinite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelTimeouts {
    /// While both directions are open.
    pub idle: Option<Duration>,
    /// After the client has shut its sending side (`timeout client-fin`).
    pub client_fin: Option<Duration>,
    /// After the server has shut its sending side (`timeout server-fin`).
    pub server_fin: Option<Duration>,
}

/// [`TunnelTimeouts`] as a running tunnel keeps them: milliseconds, as
/// HAProxy stores its timeouts, in 12 bytes instead of 48 (an idle tunnel's
/// memory is mostly its task: docs/performance.md, "Idle memory"). A
/// timeout over `u32::MAX - 1` ms (49 days) is held at that.
#[derive(Debug, Clone, Copy)]
struct Inactivity {
    idle: u32,
    client_fin: u32,
    server_fin: u32,
}

impl Inactivity {
    /// No timeout.
    const NONE: u32 = u32::MAX;

    fn new(t: TunnelTimeouts) -> Inactivity {
        let ms = |d: Option<Duration>| {
            d.map_or(Self::NONE, |d| {
                u32::try_from(d.as_millis()).map_or(Self::NONE - 1, |ms| ms.min(Self::NONE - 1))
            })
        };
        Inactivity {
            idle: ms(t.idle),
            client_fin: ms(t.client_fin),
            server_fin: ms(t.server_fin),
        }
    }

    /// The limit in force: the `-fin` timeouts once a side has shut its
    /// sending direction (when set), the tunnel's idle limit otherwise.
    fn current(&self, client_done: bool, server_done: bool) -> Option<Duration> {
        let fin = match (client_done, server_done) {
            (true, false) => self.client_fin,
            (false, true) => self.server_fin,
            _ => Self::NONE,
        };
        let ms = if fin == Self::NONE { self.idle } else { fin };
        (ms != Self::NONE).then(|| Duration::from_millis(u64::from(ms)))
    }
}

/// How a tunnel ended.
#[derive(Debug)]
pub enum TunnelEnd {
    /// Both sides closed their sending direction.
    Closed,
    /// No traffic for the applicable timeout.
    Timeout,
    /// wsgate closed it (stop, or its server removed by a reload): close
    /// frames were exchanged with both peers.
    Stopped,
    /// A peer broke the WebSocket policy (`websocket ...` settings).
    Policy(Violation),
    ClientError(io::Error),
    ServerError(io::Error),
}

impl std::fmt::Display for TunnelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelEnd::Closed => f.write_str("both sides closed"),
            TunnelEnd::Timeout => f.write_str("inactivity timeout"),
            TunnelEnd::Stopped => f.write_str("closed by wsgate (stop or reload)"),
            TunnelEnd::Policy(v) => write!(f, "closed by wsgate: {v}"),
            TunnelEnd::ClientError(e) => write!(f, "client side error: {e}"),
            TunnelEnd::ServerError(e) => write!(f, "server side error: {e}"),
        }
    }
}

#[derive(Debug)]
pub struct TunnelOutcome {
    pub end: TunnelEnd,
    /// Bytes from the client to the server.
    pub bytes_up: u64,
    /// Bytes from the server to the client.
    pub bytes_down: u64,
    /// Whether the tunnel's server was gone when it ended, and why (the
    /// proxy was not stopping): removed by a reload, or its sessions shut
    /// down.
    pub server_gone: Option<ServerGone>,
}

/// Why a tunnel's server was gone (see [`TunnelSignals::server_gone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerGone {
    Removed,
    SessionsShutDown,
}

/// One end of a tunnel, as the copy loop sees it.
pub trait TunnelIo {
    /// Reads what is there into a buffer borrowed from the pool only once
    /// data (or EOF) is there, so an idle end waits without one. Returns
    /// the buffer and the length read; 0 is EOF.
    fn poll_read_pooled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(PooledBuf, usize)>>;
    fn poll_write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the sending direction (half-close).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A plain TCP socket driven by readiness, with the drained-on-short-read
/// rule (see the module header). It stays registered with tokio's reactor
/// as the session had it: no second registration (two `epoll_ctl` calls per
/// socket, which every short-lived WebSocket paid).
pub struct PlainSocket(TcpStream);

impl PlainSocket {
    pub fn new(stream: TcpStream) -> io::Result<PlainSocket> {
        Ok(PlainSocket(stream))
    }
}

impl TunnelIo for PlainSocket {
    fn poll_read_pooled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(PooledBuf, usize)>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            let mut buf = PooledBuf::take();
            match self.0.try_read(buf.as_mut()) {
                Ok(n) => {
                    if n > 0 && n < buf.as_ref().len() {
                        // Drained: the kernel gave less than asked, so the
                        // next read would only say EAGAIN. Clear the
                        // readiness (a closure answering WouldBlock does
                        // that, without a system call) and wait for an
                        // edge. A FIN stays visible: tokio keeps "read
                        // closed".
                        let _ = self.0.try_io(Interest::READABLE, || {
                            Err::<(), _>(io::ErrorKind::WouldBlock.into())
                        });
                    }
                    return Poll::Ready(Ok((buf, n)));
                }
                // EAGAIN after all: try_read cleared the readiness.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A client or server connection that can become a tunnel end once its
/// HTTP part is over.
pub trait IntoTunnel {
    type End: TunnelIo + Parkable + Send + Unpin + 'static;
    fn into_tunnel(self) -> io::Result<Self::End>;
}

impl IntoTunnel for TcpStream {
    type End = PlainSocket;
    fn into_tunnel(self) -> io::Result<PlainSocket> {
        PlainSocket::new(self)
    }
}

impl IntoTunnel for tokio_rustls::server::TlsStream<TcpStream> {
    type End = Stream<Self>;
    fn into_tunnel(self) -> io::Result<Stream<Self>> {
        Ok(Stream(self))
    }
}

/// A tunnel end that can leave tokio's reactor while its tunnel is idle
/// (see [`super::park`]): parked, it is only its socket, watched by the
/// worker's own epoll set, and costs no registration, task or timer.
pub trait Parkable: Sized {
    /// The end while parked.
    type Parked: AsRawFd + Send + 'static;
    /// Whether this end is of a kind that can be parked (a plain socket;
    /// a TLS session keeps its state in tokio-rustls's stream).
    fn parkable(&self) -> bool;
    /// Leaves the reactor. `Err(self)`, unchanged, when it cannot (not
    /// [`parkable`](Parkable::parkable), or no descriptor left).
    fn park(self) -> Result<Self::Parked, Self>;
    /// Back into the reactor of the current runtime.
    fn unpark(parked: Self::Parked) -> io::Result<Self>;
}

impl Parkable for PlainSocket {
    type Parked = std::net::TcpStream;

    fn parkable(&self) -> bool {
        true
    }

    /// The socket is duplicated and tokio's stream dropped, which
    /// deregisters it (tokio offers no deregistration that keeps the
    /// stream; `into_std` would lose the socket if deregistering failed).
    /// The duplicate shares the open file (O_NONBLOCK included), so
    /// nothing reaches the peer.
    fn park(self) -> Result<std::net::TcpStream, PlainSocket> {
        match self.0.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                drop(self);
                Ok(std::net::TcpStream::from(fd))
            }
            Err(_) => Err(self),
        }
    }

    fn unpark(parked: std::net::TcpStream) -> io::Result<PlainSocket> {
        TcpStream::from_std(parked).map(PlainSocket)
    }
}

/// An end that is never parked has no parked form.
pub enum NeverParked {}

impl AsRawFd for NeverParked {
    fn as_raw_fd(&self) -> RawFd {
        match *self {}
    }
}

impl<T> Parkable for Stream<T> {
    type Parked = NeverParked;

    fn parkable(&self) -> bool {
        false
    }

    fn park(self) -> Result<NeverParked, Self> {
        Err(self)
    }

    fn unpark(parked: NeverParked) -> io::Result<Self> {
        match parked {}
    }
}

/// Any async stream (a TLS session, a test pipe) as a tunnel end. Reads
/// borrow the buffer only for the poll: a stream that is not ready writes
/// nothing into it, and it goes back to the pool at once.
pub struct Stream<T>(pub T);

impl<T: AsyncRead + AsyncWrite + Unpin> TunnelIo for Stream<T> {
    fn poll_read_pooled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(PooledBuf, usize)>> {
        let mut buf = PooledBuf::take();
        let mut read_buf = ReadBuf::new(buf.as_mut());
        match Pin::new(&mut self.0).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                Poll::Ready(Ok((buf, n)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// What one direction is doing. Kept to 24 bytes (offsets in a 16 KiB
/// buffer fit in `u32`; wsgate's own frames are boxed slices of what is
/// left to write): two live in every tunnel's task and parked tunnel.
enum Direction {
    Reading,
    Writing {
        buf: PooledBuf,
        pos: u32,
        len: u32,
    },
    Flushing,
    /// Writing a keepalive ping to this direction's writer, between two
    /// messages; copying resumes after it.
    Pinging(Box<[u8]>),
    /// Writing wsgate's own close frame to this direction's writer.
    Injecting(Box<[u8]>),
    /// Our close frame went out: read and drop what the reader still sends
    /// until its own close frame (the reply) or EOF.
    Discarding,
    ShuttingDown,
    Done,
}

/// A close that wsgate wants to send in one direction, at the next message
/// boundary.
struct CloseRequest {
    frame: Vec<u8>,
    /// After the frame: wait for the reader's reply (stop), or just send
    /// FIN (idle timeout: nobody is talking).
    then_discard: bool,
}

struct Half {
    state: Direction,
    bytes: u64,
    /// Frame boundaries of this direction, for WebSocket tunnels.
    tracker: Option<FrameTracker>,
    /// Boxed: rare, and every idle WebSocket would carry its room.
    close: Option<Box<CloseRequest>>,
    /// The reader sent a close frame of its own.
    saw_close: bool,
    /// Who this direction writes to (decides close frame masking).
    writer: Peer,
    /// Send the requested close at once, without waiting for a message
    /// boundary (the stream was cut at a frame boundary).
    close_now: bool,
    /// The reader broke the WebSocket policy; the tunnel tells it.
    /// Boxed, as `close`: rare.
    violation: Option<Box<Violation>>,
}

impl Half {
    fn new(policy: Option<Policy>, writer: Peer) -> Half {
        Half {
            state: Direction::Reading,
            bytes: 0,
            tracker: policy.map(FrameTracker::with_policy),
            close: None,
            saw_close: false,
            writer,
            close_now: false,
            violation: None,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.state, Direction::Done)
    }

    /// Waiting for data, with nothing of wsgate's own to send.
    fn quiet(&self) -> bool {
        matches!(self.state, Direction::Reading)
            && self.close.is_none()
            && self.violation.is_none()
            && !self.saw_close
            && !self.close_now
    }

    /// Whether a close can be placed in this direction: it is a WebSocket
    /// whose framing is understood, and the peers are not closing already.
    fn can_close(&self) -> bool {
        self.tracker.as_ref().is_some_and(|t| t.error().is_none())
            && !self.saw_close
            && matches!(
                self.state,
                Direction::Reading | Direction::Writing { .. } | Direction::Flushing
            )
    }

    /// Asks for `frame` to be sent at the next message boundary.
    fn request_close(&mut self, frame: Vec<u8>, then_discard: bool) {
        if self.can_close() && self.close.is_none() {
            self.close = Some(Box::new(CloseRequest {
                frame,
                then_discard,
            }));
        }
    }

    /// Whether this direction is idle between messages, so a close could
    /// go out now.
    fn idle_at_boundary(&self) -> bool {
        matches!(self.state, Direction::Reading)
            && self.tracker.as_ref().is_some_and(FrameTracker::at_boundary)
    }

    /// Sends a ping now if this direction is idle between messages and not
    /// closing. Returns whether it did.
    fn start_ping(&mut self, frame: Vec<u8>) -> bool {
        if self.close.is_some() || !self.idle_at_boundary() {
            return false;
        }
        self.state = Direction::Pinging(frame.into_boxed_slice());
        true
    }

    /// Starts writing the requested close frame if the stream is between
    /// messages. Returns whether it did.
    fn start_close_if_at_boundary(&mut self) -> bool {
        let at_boundary =
            self.close_now || self.tracker.as_ref().is_some_and(FrameTracker::at_boundary);
        if !at_boundary {
            return false;
        }
        match self.close.as_mut() {
            Some(req) => {
                let frame = std::mem::take(&mut req.frame).into_boxed_slice();
                self.state = Direction::Injecting(frame);
                true
            }
            None => false,
        }
    }

    /// Moves bytes from `r` to `w` until nothing is ready. Ready(Ok) means
    /// this direction is finished (EOF read and propagated, or wsgate's
    /// close sent and answered).
    fn poll_copy<R: TunnelIo, W: TunnelIo>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        bytes_read: &mut u64,
        clock: &mut Clock,
        early: &mut Vec<u8>,
    ) -> Poll<Result<(), Side>> {
        loop {
            match &mut self.state {
                Direction::Reading => {
                    if self.close.is_some() && self.start_close_if_at_boundary() {
                        continue;
                    }
                    let read = if early.is_empty() {
                        r.poll_read_pooled(cx)
                    } else {
                        Poll::Ready(Ok(replay(early)))
                    };
                    match read {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Read(e))),
                        Poll::Ready(Ok((_, 0))) => self.state = Direction::ShuttingDown,
                        Poll::Ready(Ok((mut buf, len))) => {
                            *bytes_read += len as u64;
                            let mut forward = len;
                            if let Some(tracker) = self.tracker.as_mut() {
                                let fed = tracker.feed_at(&mut buf.as_mut()[..len], clock);
                                // Removed frames (dropped messages, pongs to
                                // wsgate's pings) are cut out.
                                forward = fed.kept;
                                if let Some((start, violation)) = fed.violation {
                                    // Nothing of the refused frame goes on.
                                    // The reader gets its close (1009/1002)
                                    // from the other direction; the writer
                                    // gets 1001 right after the last good
                                    // frame, or a plain FIN when the frame
                                    // began in an earlier read.
                                    self.violation = Some(Box::new(violation));
                                    match start {
                                        Some(start) => {
                                            forward = start;
                                            self.close = Some(Box::new(CloseRequest {
                                                frame: close_frame(
                                                    CloseCode::GoingAway,
                                                    "peer violated the WebSocket policy",
                                                    self.writer,
                                                ),
                                                // The reader's framing can no
                                                // longer be followed: no reply
                                                // to wait for from it.
                                                then_discard: false,
                                            }));
                                            self.close_now = true;
                                        }
                                        None => {
                                            self.state = Direction::ShuttingDown;
                                            continue;
                                        }
                                    }
                                } else if fed.saw_close {
                                    // The peers are closing on their own:
                                    // let their handshake through untouched.
                                    self.saw_close = true;
                                    self.close = None;
                                } else if self.close.is_some() {
                                    // Deliver up to the end of the current
                                    // message; what follows is dropped.
                                    if let Some(boundary) = fed.first_boundary {
                                        forward = boundary;
                                    }
                                }
                            }
                            self.state = Direction::Writing {
                                buf,
                                pos: 0,
                                // At most one buffer: fits.
                                len: forward as u32,
                            };
                        }
                    }
                }
                Direction::Writing { buf, pos, len } => {
                    if *pos == *len {
                        self.state = Direction::Flushing;
                        continue;
                    }
                    match w.poll_write_some(cx, &buf.as_ref()[*pos as usize..*len as usize]) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Write(e))),
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(Side::Write(io::ErrorKind::WriteZero.into())))
                        }
                        Poll::Ready(Ok(n)) => {
                            // At most what was asked for: fits.
                            *pos += n as u32;
                            self.bytes += n as u64;
                        }
                    }
                }
                Direction::Flushing => match w.poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Write(e))),
                    Poll::Ready(Ok(())) => self.state = Direction::Reading,
                },
                Direction::Pinging(frame) => {
                    std::task::ready!(write_own_frame(w, cx, frame))?;
                    self.state = Direction::Flushing;
                }
                Direction::Injecting(frame) => {
                    std::task::ready!(write_own_frame(w, cx, frame))?;
                    let then_discard = self.close.take().is_some_and(|c| c.then_discard);
                    self.state = if then_discard {
                        Direction::Discarding
                    } else {
                        Direction::ShuttingDown
                    };
                }
                Direction::Discarding => match r.poll_read_pooled(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Read(e))),
                    Poll::Ready(Ok((_, 0))) => self.state = Direction::Done,
                    Poll::Ready(Ok((mut buf, len))) => {
                        let replied = self
                            .tracker
                            .as_mut()
                            .is_some_and(|t| t.feed_at(&mut buf.as_mut()[..len], clock).saw_close);
                        if replied {
                            self.state = Direction::Done;
                        }
                    }
                },
                Direction::ShuttingDown => match w.poll_shutdown(cx) {
                    Poll::Pending => return Poll::Pending,
                    // The peer may already be gone; the direction is over
                    // either way.
                    Poll::Ready(_) => self.state = Direction::Done,
                },
                Direction::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Writes what is left of one of wsgate's own frames (a ping, a close)
/// to `w`. A short write keeps the rest as the frame: these frames are at
/// most 139 bytes, so short writes are rare, and a copy then is cheaper
/// than an offset in every tunnel's state.
fn write_own_frame<W: TunnelIo>(
    w: &mut W,
    cx: &mut Context<'_>,
    frame: &mut Box<[u8]>,
) -> Poll<Result<(), Side>> {
    while !frame.is_empty() {
        match std::task::ready!(w.poll_write_some(cx, frame)) {
            Err(e) => return Poll::Ready(Err(Side::Write(e))),
            Ok(0) => return Poll::Ready(Err(Side::Write(io::ErrorKind::WriteZero.into()))),
            Ok(n) => *frame = frame[n..].into(),
        }
    }
    Poll::Ready(Ok(()))
}

/// Which stream of a direction failed.
enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// Bytes that a peer sent before the tunnel began: pipelined after the
/// upgrade request, or arriving with the server's `101`. The tunnel reads
/// them first, as if they had just arrived, so they pass through the same
/// frame tracking, limits and counts as what follows. (Relayed on the
/// side, a frame begun there would leave the tracker mid-frame, and the
/// rest of the connection would be copied blindly, past every limit.)
#[derive(Debug, Default)]
pub struct Early {
    pub from_client: Vec<u8>,
    pub from_server: Vec<u8>,
}

impl Early {
    /// `None` when neither peer sent anything early (the usual case: the
    /// tunnel then carries no room for it).
    pub fn new(from_client: Vec<u8>, from_server: Vec<u8>) -> Option<Box<Early>> {
        (!from_client.is_empty() || !from_server.is_empty()).then(|| {
            Box::new(Early {
                from_client,
                from_server,
            })
        })
    }
}

/// Takes up to one buffer's worth of early bytes, as a read would give.
fn replay(early: &mut Vec<u8>) -> (PooledBuf, usize) {
    let mut buf = PooledBuf::take();
    let n = early.len().min(buf.as_ref().len());
    buf.as_mut()[..n].copy_from_slice(&early[..n]);
    early.drain(..n);
    (buf, n)
}

/// What a tunnel carries and how it may be ended besides by its peers.
pub struct TunnelOptions {
    pub timeouts: TunnelTimeouts,
    /// Why wsgate may end the tunnel on its own: stop, reload, shutdown of
    /// its server's sessions. `None` when no server is known.
    pub signals: Option<TunnelSignals>,
    /// `Some` when the connection speaks WebSocket (the upgrade was to
    /// `websocket`): frame boundaries are tracked so wsgate can close it
    /// cleanly, with a close frame at a message boundary. Other tunnels are
    /// closed without one by a shutdown of their server's sessions, and
    /// otherwise carry on until their peers end them or the stop grace
    /// runs out.
    pub websocket: Option<WsPolicy>,
    /// What the peers sent before the tunnel began, read first.
    pub early: Option<Box<Early>>,
    /// `tune.idle-park`: how long the tunnel must be idle before it
    /// reports [`Flow::Idle`] (its task then parks it); `None` never.
    pub park_after: Option<Duration>,
}

/// Why wsgate may close a tunnel on its own. WebSockets: on a stop both
/// peers get 1001, when the server is gone the client gets 1012 and the
/// server 1001, each at the next message boundary, and the close handshake
/// is awaited.
pub struct TunnelSignals {
    /// The stop, the server's removal and the shutdown of its sessions,
    /// shared by the tunnels of one server.
    pub server: Arc<ServerSignals>,
    /// The connection's `show sess` entry: `shutdown session <id>` ends
    /// this one tunnel as if its server were gone, and the tunnel adds
    /// the bytes it reads to it (once per wake-up and direction).
    pub live: Option<Arc<Live>>,
}

impl TunnelSignals {
    /// The server is gone, or this tunnel was shut down on its own.
    fn server_gone(&self) -> bool {
        self.server.server_gone.is_cancelled() || self.live.as_ref().is_some_and(|l| l.killed())
    }
}

/// How wsgate follows a WebSocket tunnel: what each side may send (a peer
/// that breaks the policy gets 1009 for size, 1008 for rate or 1002 for
/// protocol, and the other side 1001), and keepalive pings.
pub struct WsPolicy {
    /// What the client may send.
    pub client_policy: Policy,
    /// What the server may send.
    pub server_policy: Policy,
    /// `websocket keepalive`: ping a peer after this much silence.
    pub keepalive: Option<Keepalive>,
    /// Where the message counts go (the frontend's and the backend's).
    pub counters: [Option<Arc<WsCounters>>; 2],
}

/// Keepalive pings (`websocket keepalive <interval> [timeout <time>]
/// [server]`): after `interval` without a word from the client (and, with
/// `server`, from the server) wsgate sends it a ping, between two
/// messages; its pong — or anything else it sends — within `timeout`
/// proves it is alive, and counts as traffic, so a quiet but living
/// WebSocket survives `timeout tunnel` and NAT idle timers. The pong is
/// taken out of the stream (the other peer never saw the ping). A peer
/// that stays silent: close 1001 "ping timeout" to both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
    /// Ping the server too.
    pub server: bool,
}

/// Copies between `client` and `server` until both directions have ended,
/// an error occurs, or the applicable inactivity timeout fires.
///
/// A struct rather than an `async fn`: an idle WebSocket costs its task,
/// and an `async fn` would keep its arguments besides the state built from
/// them.
pub fn run<C: TunnelIo + Parkable + Unpin, S: TunnelIo + Parkable + Unpin>(
    client: C,
    server: S,
    options: TunnelOptions,
) -> Tunnel<C, S> {
    let TunnelOptions {
        timeouts,
        signals,
        mut websocket,
        early,
        park_after,
    } = options;
    // Milliseconds, as the timeouts: 0 never parks.
    let park_after_ms = park_after
        .filter(|_| client.parkable() && server.parkable())
        .map_or(0, |d| {
            u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
        });
    Tunnel {
        client,
        server,
        st: State {
            up: Half::new(websocket.as_ref().map(|w| w.client_policy), Peer::Server),
            down: Half::new(websocket.as_ref().map(|w| w.server_policy), Peer::Client),
            violated: None,
            last_activity: Instant::now(),
            timer: None,
            stop_signal: stop_signal(signals.as_ref()),
            stop_registered: false,
            stopping: false,
            close_due: None,
            idle_closing: false,
            pings: websocket
                .as_ref()
                .and_then(|w| w.keepalive)
                .map(|k| Box::new(Pings::new(k, Instant::now()))),
            flush: Flush {
                counters: websocket
                    .as_mut()
                    .map_or([None, None], |w| std::mem::take(&mut w.counters)),
            },
            websocket: websocket.is_some(),
            timeouts: Inactivity::new(timeouts),
            signals,
            early,
            park_after_ms,
            park_refusals: 0,
            unparked: false,
        },
    }
}

/// The registration through which a stop, a reload that removed the
/// server, or a shutdown of its sessions wakes a running tunnel's task.
type StopSignal = Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>;

fn stop_signal(signals: Option<&TunnelSignals>) -> Option<StopSignal> {
    signals.map(|s| Box::pin(s.server.server_gone.clone().cancelled_owned()))
}

/// A running tunnel (see [`run`]): its two ends, and the rest, which
/// stays as it is when the ends are parked ([`Tunnel::park`]).
pub struct Tunnel<C, S> {
    client: C,
    server: S,
    st: State,
}

/// Everything of a tunnel but its ends.
struct State {
    /// Client to server, and server to client.
    up: Half,
    down: Half,
    violated: Option<Box<Violation>>,
    last_activity: Instant,
    /// One timer for the tunnel, re-armed lazily: activity only records a
    /// time stamp, and the timer is moved forward when it fires early.
    timer: Option<Pin<Box<Sleep>>>,
    /// Polled once to register this task's waker; afterwards a flag check
    /// per poll is enough, since cancellation wakes the task through it.
    /// `None` while parked.
    stop_signal: Option<StopSignal>,
    stop_registered: bool,
    stopping: bool,
    /// On stop: when this tunnel's close is due (`close-spread-time`),
    /// drawn once; `Some(None)` is never (`infinite`).
    close_due: Option<Option<Instant>>,
    idle_closing: bool,
    /// `websocket keepalive` and the pings in flight, per peer. Boxed:
    /// most WebSockets run without, and an idle tunnel's memory is mostly
    /// its task (docs/performance.md, "Idle memory").
    pings: Option<Box<Pings>>,
    /// Message counts on their way to the shared counters.
    flush: Flush,
    /// Frame tracking is on (the upgrade was to `websocket`).
    websocket: bool,
    timeouts: Inactivity,
    signals: Option<TunnelSignals>,
    /// Bytes sent before the tunnel began, until they are read.
    early: Option<Box<Early>>,
    /// How long the tunnel must be idle before it may be parked, in
    /// milliseconds; 0 never (`tune.idle-park 0`, a TLS end).
    park_after_ms: u32,
    /// Times in a row it was idle long enough to park but could not be
    /// (a close on its way, a peer mid-write): each doubles the wait.
    park_refusals: u8,
    /// Woken from the parked set, and nothing happened since: it does not
    /// park again before what woke it (a peer's bytes, which tokio reports
    /// only after the new registration's first turn of the reactor, or a
    /// deadline) has been seen.
    unparked: bool,
}

/// What a wake-up of a tunnel came to.
pub enum Flow {
    /// The tunnel is over.
    End(TunnelOutcome),
    /// It has been idle for its `park_after` ([`TunnelOptions`]) with
    /// nothing in flight, and may be parked ([`Tunnel::park`]); polling it
    /// again carries on.
    Idle,
}

/// Tests run tunnels as plain futures, which never park.
#[cfg(test)]
impl<C: TunnelIo + Unpin, S: TunnelIo + Unpin> Future for Tunnel<C, S> {
    type Output = TunnelOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TunnelOutcome> {
        match std::task::ready!(self.get_mut().poll_tunnel(cx)) {
            Flow::End(outcome) => Poll::Ready(outcome),
            Flow::Idle => unreachable!("parking is never allowed here"),
        }
    }
}

impl<C: TunnelIo + Unpin, S: TunnelIo + Unpin> Tunnel<C, S> {
    /// Runs the tunnel until it ends or, when parking is allowed, until it
    /// is idle.
    pub fn poll_tunnel(&mut self, cx: &mut Context<'_>) -> Poll<Flow> {
        let end = match std::task::ready!(self.step(cx)) {
            Step::End(end) => end,
            Step::Idle => return Poll::Ready(Flow::Idle),
        };
        let st = &mut self.st;
        if let (Some(u), Some(d)) = (&mut st.up.tracker, &mut st.down.tracker) {
            st.flush.flush(u, d);
            if let TunnelEnd::Policy(v) = &end {
                for c in st.flush.counters.iter().flatten() {
                    c.policy_close(v);
                }
            }
        }
        let server_gone = st
            .signals
            .as_ref()
            .filter(|s| !s.server.stop.is_cancelled() && s.server_gone())
            .map(|s| {
                if s.server.removed.is_cancelled() {
                    ServerGone::Removed
                } else {
                    ServerGone::SessionsShutDown
                }
            });
        Poll::Ready(Flow::End(TunnelOutcome {
            end,
            bytes_up: st.up.bytes,
            bytes_down: st.down.bytes,
            server_gone,
        }))
    }
}

/// Why a tunnel was not parked.
pub enum NotParked<T> {
    /// It cannot be now (or ever: TLS); it carries on as it was.
    Kept(T),
    /// A socket could not be put back into the reactor: the tunnel is
    /// over, with this outcome.
    Broken(TunnelOutcome),
}

impl<C: Parkable, S: Parkable> Tunnel<C, S> {
    /// Takes both ends out of the reactor; the state stays, minus what a
    /// task needs only while it runs: the timer (re-armed on the next
    /// wake-up) and the counts not yet added to the shared counters (added
    /// now, so that an idle tunnel's messages show).
    // The error is the tunnel itself, handed back to the task that holds
    // it (moved once per try, every few seconds at most): boxing it would
    // cost an allocation for nothing.
    #[allow(clippy::result_large_err)]
    pub fn park(self) -> Result<Tunnel<C::Parked, S::Parked>, NotParked<Self>> {
        let Tunnel {
            client,
            server,
            mut st,
        } = self;
        let client = match client.park() {
            Ok(c) => c,
            Err(client) => return Err(NotParked::Kept(Tunnel { client, server, st })),
        };
        let server = match server.park() {
            Ok(s) => s,
            Err(server) => {
                return match C::unpark(client) {
                    Ok(client) => Err(NotParked::Kept(Tunnel { client, server, st })),
                    Err(e) => Err(NotParked::Broken(st.broken(TunnelEnd::ClientError(e)))),
                }
            }
        };
        st.park_refusals = 0;
        st.timer = None;
        // The set watches every token at once (`watch_signals`); the next
        // task registers a waker of its own.
        st.stop_signal = None;
        st.stop_registered = false;
        if let (Some(u), Some(d)) = (&mut st.up.tracker, &mut st.down.tracker) {
            st.flush.flush(u, d);
        }
        Ok(Tunnel { client, server, st })
    }

    /// The tunnel reported [`Flow::Idle`] but could not be parked (no
    /// parked set on this thread, no descriptor left): it waits twice as
    /// long before the next try instead of asking again at once.
    pub fn park_refused(&mut self) {
        self.st.park_refusals = self.st.park_refusals.saturating_add(1);
    }

    /// Puts a parked tunnel's ends back into the reactor of the current
    /// runtime.
    pub fn unpark(parked: Tunnel<C::Parked, S::Parked>) -> Result<Self, TunnelOutcome> {
        let Tunnel {
            client,
            server,
            mut st,
        } = parked;
        st.unparked = true;
        st.stop_signal = stop_signal(st.signals.as_ref());
        let client = match C::unpark(client) {
            Ok(c) => c,
            Err(e) => return Err(st.broken(TunnelEnd::ClientError(e))),
        };
        match S::unpark(server) {
            Ok(server) => Ok(Tunnel { client, server, st }),
            Err(e) => Err(st.broken(TunnelEnd::ServerError(e))),
        }
    }
}

impl<C, S> Tunnel<C, S> {
    /// Its two ends, client first.
    pub fn ends(&self) -> (&C, &S) {
        (&self.client, &self.server)
    }
}

/// A parked tunnel, as its parked set sees it.
impl<C: AsRawFd, S: AsRawFd> Tunnel<C, S> {
    /// Its two sockets, client first.
    pub fn sockets(&self) -> [RawFd; 2] {
        [self.client.as_raw_fd(), self.server.as_raw_fd()]
    }

    /// When it must be woken even if nobody speaks: its inactivity
    /// timeout, or its next keepalive ping.
    pub fn wake_at(&self) -> Option<Instant> {
        let st = &self.st;
        let idle = st
            .timeouts
            .current(st.up.is_done(), st.down.is_done())
            .map(|l| st.last_activity + l);
        let ping = st.pings.as_ref().map(|p| p.deadline());
        idle.into_iter().chain(ping).min()
    }

    /// Whether wsgate wants it closed: a stop, a reload that removed its
    /// server, a shutdown of its server's sessions or of this session.
    pub fn signalled(&self) -> bool {
        self.st.signals.as_ref().is_some_and(|s| s.server_gone())
    }

    /// Registers `waker` to be woken by `shutdown session`. (The stop and
    /// server signals ring every parked set's waker: backend/sessions.rs.)
    pub fn watch_signals(&mut self, waker: &Waker) {
        if let Some(live) = self.st.signals.as_ref().and_then(|s| s.live.as_ref()) {
            live.register_tunnel(waker);
        }
    }
}

impl State {
    /// The outcome of a tunnel that broke while being parked or woken.
    fn broken(self, end: TunnelEnd) -> TunnelOutcome {
        TunnelOutcome {
            end,
            bytes_up: self.up.bytes,
            bytes_down: self.down.bytes,
            server_gone: None,
        }
    }
}

/// What one wake-up of [`Tunnel::step`] came to.
enum Step {
    End(TunnelEnd),
    Idle,
}

impl<C: TunnelIo + Unpin, S: TunnelIo + Unpin> Tunnel<C, S> {
    /// One wake-up: move bytes both ways, act on signals and timers.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let Tunnel { client, server, st } = self;
        let State {
            up,
            down,
            violated,
            last_activity,
            timer,
            stop_signal,
            stop_registered,
            stopping,
            close_due,
            idle_closing,
            pings,
            flush,
            websocket,
            timeouts,
            signals,
            early,
            park_after_ms,
            park_refusals,
            unparked,
        } = st;
        if !*stop_registered {
            // First poll: register this task for the wake-up. The future
            // is kept (dropping it would unregister) but not polled again.
            if let Some(signal) = stop_signal.as_mut() {
                let _ = signal.as_mut().poll(cx);
            }
            if let Some(live) = signals.as_ref().and_then(|s| s.live.as_ref()) {
                live.register_tunnel(cx.waker());
            }
            *stop_registered = true;
        }
        if let Some(signals) = signals.as_ref().filter(|_| !*stopping && !*websocket) {
            // Not a WebSocket: no close frame to send. A shutdown of the
            // server's sessions closes it now; on a stop or a reload it
            // carries on (until `hard-stop-after`).
            if signals.server_gone()
                && !signals.server.stop.is_cancelled()
                && !signals.server.removed.is_cancelled()
            {
                return Poll::Ready(Step::End(TunnelEnd::Stopped));
            }
        }
        if let Some(signals) = signals.as_ref().filter(|_| !*stopping && *websocket) {
            let due = signals.server_gone().then(|| {
                let now = Instant::now();
                if signals.server.stop.is_cancelled() {
                    *close_due.get_or_insert_with(|| spread_due(signals.server.spread, now))
                } else {
                    // A reload removed the server: close at once.
                    Some(now)
                }
            });
            if due.flatten().is_some_and(|d| Instant::now() >= d) {
                *stopping = true;
                let (to_client, reason) = if signals.server.stop.is_cancelled() {
                    (CloseCode::GoingAway, "server stopping")
                } else if signals.server.removed.is_cancelled() {
                    (CloseCode::ServiceRestart, "service restart")
                } else {
                    (CloseCode::ServiceRestart, "server unavailable")
                };
                up.request_close(
                    close_frame(CloseCode::GoingAway, reason, Peer::Server),
                    true,
                );
                down.request_close(close_frame(to_client, reason, Peer::Client), true);
            }
        }
        // Bytes read from each peer in this wake-up.
        let (mut from_client, mut from_server) = (0, 0);
        let mut clock = Clock::default();
        let (mut none_up, mut none_down) = (Vec::new(), Vec::new());
        let (early_up, early_down) = match early.as_deref_mut() {
            Some(e) => (&mut e.from_client, &mut e.from_server),
            None => (&mut none_up, &mut none_down),
        };
        if !up.is_done() {
            match up.poll_copy(cx, client, server, &mut from_client, &mut clock, early_up) {
                Poll::Ready(Err(Side::Read(e))) => {
                    return Poll::Ready(Step::End(TunnelEnd::ClientError(e)))
                }
                Poll::Ready(Err(Side::Write(e))) => {
                    return Poll::Ready(Step::End(TunnelEnd::ServerError(e)))
                }
                _ => {}
            }
        }
        if !down.is_done() {
            match down.poll_copy(cx, server, client, &mut from_server, &mut clock, early_down) {
                Poll::Ready(Err(Side::Read(e))) => {
                    return Poll::Ready(Step::End(TunnelEnd::ServerError(e)))
                }
                Poll::Ready(Err(Side::Write(e))) => {
                    return Poll::Ready(Step::End(TunnelEnd::ClientError(e)))
                }
                _ => {}
            }
        }
        // For `show sess`, whatever happens next (early bytes count: they
        // were read from the peer, before the tunnel began).
        if let Some(live) = signals.as_ref().and_then(|s| s.live.as_deref()) {
            live.tunnel_read(from_client, from_server);
        }
        if early
            .as_ref()
            .is_some_and(|e| e.from_client.is_empty() && e.from_server.is_empty())
        {
            *early = None;
        }
        // A broken policy: the offender gets told why, through the other
        // direction, as soon as that one is between messages.
        let broken = relay_violation(up, down, Peer::Client)
            .or_else(|| relay_violation(down, up, Peer::Server));
        if let Some(v) = broken {
            *violated = Some(Box::new(v));
            *stopping = true;
            cx.waker().wake_by_ref();
        }
        if up.is_done() && down.is_done() {
            if let Some(v) = violated.as_deref() {
                return Poll::Ready(Step::End(TunnelEnd::Policy(*v)));
            }
            return Poll::Ready(Step::End(if *idle_closing {
                TunnelEnd::Timeout
            } else if *stopping {
                TunnelEnd::Stopped
            } else {
                TunnelEnd::Closed
            }));
        }
        if *idle_closing {
            // Close frames and FINs are on their way to idle peers.
            return Poll::Pending;
        }
        let (client_spoke, server_spoke) = (from_client > 0, from_server > 0);
        let activity = client_spoke || server_spoke;
        if activity {
            flush.every_so_often(up, down);
        }
        let now_if_active = activity.then(|| clock.now());
        if let Some(now) = now_if_active {
            *last_activity = now;
            *park_refusals = 0;
            *unparked = false;
            // A peer that spoke is alive: no pong is awaited from it.
            if let Some(pings) = pings.as_mut() {
                if client_spoke {
                    pings.client.heard(now);
                }
                if server_spoke {
                    pings.server.heard(now);
                }
            }
        }
        let idle_deadline = timeouts
            .current(up.is_done(), down.is_done())
            .map(|l| *last_activity + l);
        let ping_deadline = pings.as_ref().map(|p| p.deadline());
        let stop_deadline = close_due.flatten().filter(|_| !*stopping);
        // Refused parks wait twice as long each time, up to 64 times.
        let park_deadline = (*park_after_ms > 0 && !*stopping && !*unparked).then(|| {
            *last_activity
                + Duration::from_millis(u64::from(*park_after_ms) << (*park_refusals).min(6))
        });
        let Some(deadline) = [idle_deadline, ping_deadline, stop_deadline, park_deadline]
            .into_iter()
            .flatten()
            .min()
        else {
            return Poll::Pending;
        };
        let sleep = match timer {
            Some(sleep) => {
                // Traffic only moves the deadline later, and the armed timer
                // is then early: leave it, and re-arm when it fires. This
                // keeps the timer wheel out of the per-message path. It must
                // still be polled when it may have fired, or it would never
                // wake this task again.
                if let Some(now) = now_if_active {
                    if sleep.deadline() > now && sleep.deadline() <= deadline {
                        return Poll::Pending;
                    }
                }
                sleep
            }
            None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        loop {
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => {
                    let now = Instant::now();
                    *unparked = false;
                    if stop_deadline.is_some_and(|d| now >= d) {
                        // This tunnel's turn to close (see the top).
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    let pong_overdue = pings.as_ref().is_some_and(|p| p.overdue(now));
                    let (ping_client, ping_server) =
                        pings.as_ref().map_or((false, false), |p| p.due(now));
                    let idle_over = idle_deadline.is_some_and(|d| now >= d);
                    let ping_due = (ping_client || ping_server) && !idle_over && !pong_overdue;
                    let park_due = park_deadline.is_some_and(|d| now >= d);
                    if park_due && !ping_due && !idle_over && !pong_overdue {
                        // Nothing in flight: both directions wait for
                        // data, no close is on its way, no early bytes
                        // are left, and wsgate is not closing the tunnel.
                        // (The frame trackers may be mid-message: their
                        // state is kept.)
                        let quiet = up.quiet()
                            && down.quiet()
                            && violated.is_none()
                            && close_due.is_none()
                            && early.is_none()
                            && !signals.as_ref().is_some_and(TunnelSignals::server_gone);
                        if quiet {
                            return Poll::Ready(Step::Idle);
                        }
                        *park_refusals = park_refusals.saturating_add(1);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if let Some(pings) = pings.as_mut().filter(|_| ping_due && !*stopping) {
                        if ping_client {
                            pings.client.ping(down, up, Peer::Client, now);
                        }
                        if ping_server {
                            pings.server.ping(up, down, Peer::Server, now);
                        }
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    // Idle WebSockets between messages get close 1001
                    // ("idle timeout", or "ping timeout" when a keepalive
                    // ping went unanswered) and a FIN instead of a bare close.
                    if up.idle_at_boundary() && down.idle_at_boundary() && !*stopping {
                        let reason = if pong_overdue {
                            "ping timeout"
                        } else {
                            "idle timeout"
                        };
                        up.request_close(
                            close_frame(CloseCode::GoingAway, reason, Peer::Server),
                            false,
                        );
                        down.request_close(
                            close_frame(CloseCode::GoingAway, reason, Peer::Client),
                            false,
                        );
                        *idle_closing = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return Poll::Ready(Step::End(TunnelEnd::Timeout));
                }
                Poll::Ready(()) => sleep.as_mut().reset(deadline),
            }
        }
    }
}

/// Where the tunnel's message counts go: added every [`FLUSH_EVERY`]
/// messages and at the end, never per message. The trackers count what
/// was not added yet.
struct Flush {
    counters: [Option<Arc<WsCounters>>; 2],
}

impl Flush {
    fn every_so_often(&mut self, up: &mut Half, down: &mut Half) {
        let (Some(u), Some(d)) = (&mut up.tracker, &mut down.tracker) else {
            return;
        };
        if u.stats().messages + d.stats().messages >= FLUSH_EVERY {
            self.flush(u, d);
        }
    }

    fn flush(&mut self, up: &mut FrameTracker, down: &mut FrameTracker) {
        let counted = [up.take_stats(), down.take_stats()];
        for c in self.counters.iter().flatten() {
            c.add(&counted);
        }
    }
}

/// Keepalive state of both peers (`websocket keepalive`).
struct Pings {
    keepalive: Keepalive,
    client: PeerPing,
    server: PeerPing,
}

/// When a peer was last heard from, and the ping awaiting its pong.
#[derive(Clone, Copy)]
struct PeerPing {
    heard: Instant,
    sent: Option<Instant>,
}

impl PeerPing {
    fn heard(&mut self, now: Instant) {
        self.heard = now;
        self.sent = None;
    }

    /// Pings the peer through `to_peer` (the direction that writes to it)
    /// if that direction is between messages; its pong, read by
    /// `from_peer`, will be taken out. Otherwise the other peer is
    /// talking to it: that will do for now, ping later.
    fn ping(&mut self, to_peer: &mut Half, from_peer: &mut Half, peer: Peer, now: Instant) {
        if to_peer.start_ping(ping_frame(peer)) {
            self.sent = Some(now);
            if let Some(t) = from_peer.tracker.as_mut() {
                t.expect_pong();
            }
        } else {
            self.heard = now;
        }
    }

    fn deadline(&self, k: &Keepalive) -> Instant {
        match self.sent {
            None => self.heard + k.interval,
            Some(sent) => sent + k.timeout,
        }
    }
}

impl Pings {
    fn new(keepalive: Keepalive, now: Instant) -> Pings {
        let peer = PeerPing {
            heard: now,
            sent: None,
        };
        Pings {
            keepalive,
            client: peer,
            server: peer,
        }
    }

    /// The next ping or pong deadline.
    fn deadline(&self) -> Instant {
        let k = &self.keepalive;
        let client = self.client.deadline(k);
        if k.server {
            client.min(self.server.deadline(k))
        } else {
            client
        }
    }

    /// A ping went unanswered past the timeout.
    fn overdue(&self, now: Instant) -> bool {
        let k = &self.keepalive;
        let late = |p: &PeerPing| p.sent.is_some_and(|sent| now >= sent + k.timeout);
        late(&self.client) || (k.server && late(&self.server))
    }

    /// Which peers are due a ping.
    fn due(&self, now: Instant) -> (bool, bool) {
        let k = &self.keepalive;
        let due = |p: &PeerPing| p.sent.is_none() && now >= p.heard + k.interval;
        (due(&self.client), k.server && due(&self.server))
    }
}

/// When a stopping proxy closes one WebSocket (`close-spread-time`): at
/// once, at a uniformly random moment of the window, or never.
fn spread_due(spread: CloseSpread, now: Instant) -> Option<Instant> {
    match spread {
        CloseSpread::AtOnce => Some(now),
        CloseSpread::Over(window) => Some(now + window.mul_f64(fastrand::f64())),
        CloseSpread::Never => None,
    }
}

/// When `offender`'s reader broke the policy, asks `other` to send it the
/// close code that says why (`to` is the offender).
fn relay_violation(offender: &mut Half, other: &mut Half, to: Peer) -> Option<Violation> {
    let v = *offender.violation.take()?;
    let (code, reason) = CloseCode::for_violation(&v);
    other.request_close(close_frame(code, reason, to), true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    fn blind(timeouts: TunnelTimeouts) -> TunnelOptions {
        TunnelOptions {
            timeouts,
            signals: None,
            websocket: None,
            early: None,
            park_after: None,
        }
    }

    /// A masked client frame or an unmasked server frame (zero payload
    /// under a zero mask key, which is valid framing).
    fn ws_frame(fin: bool, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        f.push((u8::from(masked) << 7) | payload.len() as u8);
        if masked {
            f.extend_from_slice(&[0, 0, 0, 0]);
        }
        f.extend_from_slice(payload);
        f
    }

    /// Reads one frame (≤125 bytes of payload) and returns (opcode, masked, payload unmasked).
    async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> (u8, bool, Vec<u8>) {
        let mut h = [0u8; 2];
        r.read_exact(&mut h).await.unwrap();
        let masked = h[1] & 0x80 != 0;
        let len = usize::from(h[1] & 0x7f);
        let mut key = [0u8; 4];
        if masked {
            r.read_exact(&mut key).await.unwrap();
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await.unwrap();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        (h[0] & 0x0f, masked, payload)
    }

    /// A WebSocket tunnel's options: default policies, no keepalive, no
    /// shared counters, ended by `signals`.
    fn ws_options(signals: ServerSignals) -> TunnelOptions {
        TunnelOptions {
            timeouts: TunnelTimeouts::default(),
            signals: Some(TunnelSignals {
                server: Arc::new(signals),
                live: None,
            }),
            websocket: Some(WsPolicy {
                client_policy: Policy::default(),
                server_policy: Policy::default(),
                keepalive: None,
                counters: [None, None],
            }),
            early: None,
            park_after: None,
        }
    }

    /// Both peers answer wsgate's close frame with a 1001 of their own;
    /// then the tunnel's outcome.
    async fn both_answer(
        client: &mut tokio::io::DuplexStream,
        server: &mut tokio::io::DuplexStream,
        task: tokio::task::JoinHandle<TunnelOutcome>,
    ) -> TunnelOutcome {
        let code = 1001u16.to_be_bytes();
        client
            .write_all(&ws_frame(true, 8, true, &code))
            .await
            .unwrap();
        server
            .write_all(&ws_frame(true, 8, false, &code))
            .await
            .unwrap();
        task.await.unwrap()
    }

    #[tokio::test]
    async fn stop_closes_websockets_at_a_message_boundary() {
        let (mut client, proxy_client) = duplex(1024);
        let (proxy_server, mut server) = duplex(1024);
        let stop = CancellationToken::new();
        let options = ws_options(ServerSignals::stop_only(&stop, CloseSpread::AtOnce));
        let task = tokio::spawn(run(Stream(proxy_client), Stream(proxy_server), options));
        // A whole message, then the first fragment of another.
        client
            .write_all(&ws_frame(true, 1, true, b"whole"))
            .await
            .unwrap();
        client
            .write_all(&ws_frame(false, 1, true, b"part"))
            .await
            .unwrap();
        assert_eq!(read_frame(&mut server).await, (1, true, b"whole".to_vec()));
        assert_eq!(read_frame(&mut server).await, (1, true, b"part".to_vec()));
        stop.cancel();
        // Server to client is between messages: the client's close comes now.
        let (op, masked, payload) = read_frame(&mut client).await;
        assert_eq!((op, masked), (8, false));
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        assert_eq!(&payload[2..], b"server stopping");
        // The client finishes its message; only then does the server get
        // its (masked) close.
        client
            .write_all(&ws_frame(true, 0, true, b"end"))
            .await
            .unwrap();
        assert_eq!(read_frame(&mut server).await, (0, true, b"end".to_vec()));
        let (op, masked, payload) = read_frame(&mut server).await;
        assert_eq!((op, masked), (8, true));
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        // Both answer the close; the tunnel ends.
        let outcome = both_answer(&mut client, &mut server, task).await;
        assert!(matches!(outcome.end, TunnelEnd::Stopped), "{}", outcome.end);
    }

    /// wsgate's own frames survive short writes: a peer whose socket
    /// takes three bytes at a time still gets the whole close frame.
    #[tokio::test]
    async fn a_close_frame_written_in_pieces_arrives_whole() {
        let (mut client, proxy_client) = duplex(3);
        let (proxy_server, mut server) = duplex(3);
        let stop = CancellationToken::new();
        let options = ws_options(ServerSignals::stop_only(&stop, CloseSpread::AtOnce));
        let task = tokio::spawn(run(Stream(proxy_client), Stream(proxy_server), options));
        stop.cancel();
        let (op, masked, payload) = read_frame(&mut client).await;
        assert_eq!((op, masked), (8, false));
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        assert_eq!(&payload[2..], b"server stopping");
        let (op, masked, payload) = read_frame(&mut server).await;
        assert_eq!((op, masked), (8, true));
        assert_eq!(&payload[2..], b"server stopping");
        let outcome = both_answer(&mut client, &mut server, task).await;
        assert!(matches!(outcome.end, TunnelEnd::Stopped), "{}", outcome.end);
    }

    #[tokio::test]
    async fn a_removed_server_means_1012_to_the_client_and_1001_to_the_server() {
        let (mut client, proxy_client) = duplex(1024);
        let (proxy_server, mut server) = duplex(1024);
        let stop = CancellationToken::new();
        let gone = stop.child_token();
        let options = ws_options(ServerSignals {
            stop,
            server_gone: gone.clone(),
            removed: gone.clone(),
            spread: CloseSpread::AtOnce,
        });
        let task = tokio::spawn(run(Stream(proxy_client), Stream(proxy_server), options));
        gone.cancel();
        let (op, masked, payload) = read_frame(&mut client).await;
        assert_eq!((op, masked), (8, false));
        assert_eq!(&payload[..2], &1012u16.to_be_bytes());
        assert_eq!(&payload[2..], b"service restart");
        let (op, masked, payload) = read_frame(&mut server).await;
        assert_eq!((op, masked), (8, true));
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        drop(client);
        drop(server);
        assert!(matches!(
            task.await.unwrap().end,
            TunnelEnd::Stopped | TunnelEnd::ClientError(_) | TunnelEnd::ServerError(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_pings_an_idle_client_and_closes_a_silent_one() {
        let (mut client, proxy_client) = duplex(1024);
        let (proxy_server, mut server) = duplex(1024);
        let options = TunnelOptions {
            timeouts: TunnelTimeouts {
                idle: Some(Duration::from_secs(60)),
                ..Default::default()
            },
            signals: Some(TunnelSignals {
                server: Arc::new(ServerSignals {
                    stop: CancellationToken::new(),
                    server_gone: CancellationToken::new(),
                    removed: CancellationToken::new(),
                    spread: CloseSpread::AtOnce,
                }),
                live: None,
            }),
            websocket: Some(WsPolicy {
                client_policy: Policy::default(),
                server_policy: Policy::default(),
                keepalive: Some(Keepalive {
                    interval: Duration::from_secs(5),
                    timeout: Duration::from_secs(2),
                    server: false,
                }),
                counters: [None, None],
            }),
            early: None,
            park_after: None,
        };
        let start = Instant::now();
        let task = tokio::spawn(run(Stream(proxy_client), Stream(proxy_server), options));
        // A ping after 5 s of silence; the client answers.
        let (op, masked, payload) = read_frame(&mut client).await;
        assert_eq!((op, masked), (9, false));
        assert_eq!(payload, crate::ws::close::PING_PAYLOAD);
        assert!(start.elapsed() >= Duration::from_secs(5));
        client
            .write_all(&ws_frame(true, 10, true, &payload))
            .await
            .unwrap();
        // The pong answered wsgate: the server gets only what follows it.
        client
            .write_all(&ws_frame(true, 1, true, b"after"))
            .await
            .unwrap();
        assert_eq!(read_frame(&mut server).await, (1, true, b"after".to_vec()));
        let start = Instant::now();
        // Silence again: another ping, unanswered this time.
        assert_eq!(read_frame(&mut client).await.0, 9);
        let (op, _, payload) = read_frame(&mut client).await;
        assert_eq!(op, 8);
        assert_eq!(&payload[2..], b"ping timeout");
        // Silence since "after": a ping 5 s later, plus the 2 s answer time.
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(task.await.unwrap().end, TunnelEnd::Timeout));
    }

    #[tokio::test]
    async fn message_counts_reach_the_shared_counters_before_the_end() {
        let (mut client, proxy_client) = duplex(1 << 16);
        let (proxy_server, mut server) = duplex(1 << 16);
        let counters = Arc::new(WsCounters::default());
        let options = TunnelOptions {
            timeouts: TunnelTimeouts::default(),
            signals: None,
            websocket: Some(WsPolicy {
                client_policy: Policy::default(),
                server_policy: Policy::default(),
                keepalive: None,
                counters: [Some(counters.clone()), None],
            }),
            early: None,
            park_after: None,
        };
        let task = tokio::spawn(run(Stream(proxy_client), Stream(proxy_server), options));
        let frame = ws_frame(true, 2, true, b"12345");
        let n = FLUSH_EVERY as usize + 10;
        let writer = tokio::spawn(async move {
            for _ in 0..n {
                client.write_all(&frame).await.unwrap();
            }
            client
        });
        let mut got = vec![0u8; n * 11];
        server.read_exact(&mut got).await.unwrap();
        // The tunnel is still open: at least one batch was added.
        let messages = || counters.messages[0].load(std::sync::atomic::Ordering::Relaxed);
        assert!(messages() >= FLUSH_EVERY, "{}", messages());
        let mut client = writer.await.unwrap();
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
        task.await.unwrap();
        assert_eq!(messages(), n as u64);
        let bytes = counters.payload_bytes[0].load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(bytes, 5 * n as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_websockets_get_a_close_frame_on_timeout() {
        let (mut client, proxy_client) = duplex(1024);
        let (proxy_server, mut server) = duplex(1024);
        let mut options = ws_options(ServerSignals::stop_only(
            &CancellationToken::new(),
            CloseSpread::AtOnce,
        ));
        options.timeouts.idle = Some(Duration::from_secs(5));
        let task = tokio::spawn(run(Stream(proxy_client), Stream(proxy_server), options));
        let (op, _, payload) = read_frame(&mut client).await;
        assert_eq!(op, 8);
        assert_eq!(&payload[2..], b"idle timeout");
        let (op, masked, _) = read_frame(&mut server).await;
        assert_eq!((op, masked), (8, true));
        // Then a FIN each way.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert!(matches!(task.await.unwrap().end, TunnelEnd::Timeout));
    }

    /// Drives a tunnel from its two outer ends: data both ways, then a
    /// half-close from each side in turn.
    async fn exchange<A, B>(
        mut client: A,
        mut server: B,
        task: tokio::task::JoinHandle<TunnelOutcome>,
    ) where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        server.write_all(b"pong!").await.unwrap();
        let mut got = [0u8; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong!");
        client.shutdown().await.unwrap();
        // The half-close reaches the server, which can still answer.
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        server.write_all(b"bye").await.unwrap();
        server.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
        let outcome = task.await.unwrap();
        assert!(matches!(outcome.end, TunnelEnd::Closed), "{}", outcome.end);
        assert_eq!((outcome.bytes_up, outcome.bytes_down), (4, 8));
    }

    #[tokio::test]
    async fn streams_copy_both_ways_and_end_when_both_close() {
        let (client, proxy_client) = duplex(64);
        let (proxy_server, server) = duplex(64);
        let task = tokio::spawn(async move {
            run(
                Stream(proxy_client),
                Stream(proxy_server),
                blind(TunnelTimeouts::default()),
            )
            .await
        });
        exchange(client, server, task).await;
    }

    /// A connected pair of loopback TCP sockets.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (inner, _) = listener.accept().await.unwrap();
        (outer, inner)
    }

    #[tokio::test]
    async fn plain_sockets_copy_both_ways_and_end_when_both_close() {
        let (client, proxy_client) = tcp_pair().await;
        let (server, proxy_server) = tcp_pair().await;
        let task = tokio::spawn(async move {
            let c = PlainSocket::new(proxy_client).unwrap();
            let s = PlainSocket::new(proxy_server).unwrap();
            run(c, s, blind(TunnelTimeouts::default())).await
        });
        exchange(client, server, task).await;
    }

    #[tokio::test]
    async fn plain_sockets_carry_large_and_back_to_back_writes() {
        // Short reads are treated as "drained": data that arrives in many
        // pieces, and more than one buffer at once, must all come through.
        let (mut client, proxy_client) = tcp_pair().await;
        let (mut server, proxy_server) = tcp_pair().await;
        let task = tokio::spawn(async move {
            let c = PlainSocket::new(proxy_client).unwrap();
            let s = PlainSocket::new(proxy_server).unwrap();
            run(c, s, blind(TunnelTimeouts::default())).await
        });
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(7919) {
                client.write_all(piece).await.unwrap();
            }
            client.shutdown().await.unwrap();
            client
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), payload.len());
        assert!(got == payload);
        server.shutdown().await.unwrap();
        drop(writer.await.unwrap());
        assert!(matches!(task.await.unwrap().end, TunnelEnd::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnel_times_out_and_traffic_defers_it() {
        let (mut client, proxy_client) = duplex(64);
        let (proxy_server, mut server) = duplex(64);
        let timeouts = TunnelTimeouts {
            idle: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let start = Instant::now();
        let task = tokio::spawn(async move {
            run(Stream(proxy_client), Stream(proxy_server), blind(timeouts)).await
        });
        tokio::time::sleep(Duration::from_secs(7)).await;
        client.write_all(b"x").await.unwrap();
        let mut got = [0u8; 1];
        server.read_exact(&mut got).await.unwrap();
        let outcome = task.await.unwrap();
        assert!(matches!(outcome.end, TunnelEnd::Timeout));
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(17), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(18), "{elapsed:?}");
    }

    #[test]
    fn fin_timeouts_take_over_after_half_close() {
        let t = TunnelTimeouts {
            idle: Some(Duration::from_secs(60)),
            client_fin: Some(Duration::from_secs(1)),
            server_fin: None,
        };
        let t = Inactivity::new(t);
        assert_eq!(t.current(false, false), Some(Duration::from_secs(60)));
        assert_eq!(t.current(true, false), Some(Duration::from_secs(1)));
        assert_eq!(t.current(false, true), Some(Duration::from_secs(60)));
        assert_eq!(t.current(true, true), Some(Duration::from_secs(60)));
    }

    #[test]
    fn timeouts_are_kept_in_milliseconds_up_to_49_days() {
        let t = Inactivity::new(TunnelTimeouts {
            idle: Some(Duration::from_secs(100 * 86_400)),
            client_fin: Some(Duration::ZERO),
            server_fin: None,
        });
        let max = Duration::from_millis(u64::from(u32::MAX - 1));
        assert_eq!(t.current(false, false), Some(max));
        assert_eq!(t.current(true, false), Some(Duration::ZERO));
        assert_eq!(t.current(false, true), Some(max));
    }
}
