//! The tunnel: an upgraded connection (after `101 Switching Protocols`) or
//! a `mode tcp` session, copied blindly in both directions.
//!
//! Stage: the session hands over both streams once the HTTP exchange is
//! over; this module knows nothing of HTTP (sozu's `Pipe`).
//!
//! Memory: a direction waiting for data holds no buffer. Each poll borrows
//! a [`PooledBuf`] for the read and gives it back at once when the read is
//! not ready, so an idle tunnel costs two streams and a timer. This is the
//! basis of the memory-per-idle-WebSocket target (DESIGN.md principle 3).
//!
//! Timeouts, as HAProxy applies them to tunnels: `timeout tunnel`
//! (inactivity in both directions) when set, otherwise the frontend's
//! `timeout client` and the backend's `timeout server` (the shorter one,
//! since either side's inactivity ends a HAProxy tunnel); once one side
//! has shut its sending direction, `timeout client-fin` / `server-fin`
//! take over when set.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::buffers::PooledBuf;

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

/// How a tunnel ended.
#[derive(Debug)]
pub enum TunnelEnd {
    /// Both sides closed their sending direction.
    Closed,
    /// No traffic for the applicable timeout.
    Timeout,
    ClientError(io::Error),
    ServerError(io::Error),
}

impl std::fmt::Display for TunnelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelEnd::Closed => f.write_str("both sides closed"),
            TunnelEnd::Timeout => f.write_str("inactivity timeout"),
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
}

enum Direction {
    Reading,
    Writing {
        buf: PooledBuf,
        pos: usize,
        len: usize,
    },
    Flushing,
    ShuttingDown,
    Done,
}

struct Half {
    state: Direction,
    bytes: u64,
}

impl Half {
    fn new() -> Half {
        Half {
            state: Direction::Reading,
            bytes: 0,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.state, Direction::Done)
    }

    /// Moves bytes from `r` to `w` until nothing is ready. Ready(Ok) means
    /// this direction is finished (EOF read and propagated).
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        activity: &mut bool,
    ) -> Poll<Result<(), Side>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            match &mut self.state {
                Direction::Reading => {
                    // The buffer goes back to the pool on Pending: an idle
                    // direction holds none.
                    let mut buf = PooledBuf::take();
                    let mut read_buf = ReadBuf::new(buf.as_mut());
                    match Pin::new(&mut *r).poll_read(cx, &mut read_buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Read(e))),
                        Poll::Ready(Ok(())) => {
                            let len = read_buf.filled().len();
                            self.state = if len == 0 {
                                Direction::ShuttingDown
                            } else {
                                *activity = true;
                                Direction::Writing { buf, pos: 0, len }
                            };
                        }
                    }
                }
                Direction::Writing { buf, pos, len } => {
                    match Pin::new(&mut *w).poll_write(cx, &buf.as_ref()[*pos..*len]) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Write(e))),
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(Side::Write(io::ErrorKind::WriteZero.into())))
                        }
                        Poll::Ready(Ok(n)) => {
                            *pos += n;
                            self.bytes += n as u64;
                            *activity = true;
                            if *pos == *len {
                                self.state = Direction::Flushing;
                            }
                        }
                    }
                }
                Direction::Flushing => match Pin::new(&mut *w).poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Side::Write(e))),
                    Poll::Ready(Ok(())) => self.state = Direction::Reading,
                },
                Direction::ShuttingDown => match Pin::new(&mut *w).poll_shutdown(cx) {
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

/// Which stream of a direction failed.
enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// Copies between `client` and `server` until both directions have ended,
/// an error occurs, or the applicable inactivity timeout fires.
pub async fn run<C, S>(client: &mut C, server: &mut S, timeouts: TunnelTimeouts) -> TunnelOutcome
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = Half::new();
    let mut down = Half::new();
    let mut last_activity = Instant::now();
    // One timer for the tunnel, re-armed lazily: activity only records a
    // time stamp, and the timer is moved forward when it fires early.
    let mut timer: Option<Pin<Box<Sleep>>> = None;

    let end = poll_fn(|cx| {
        let mut activity = false;
        if !up.is_done() {
            match up.poll_copy(cx, client, server, &mut activity) {
                Poll::Ready(Err(Side::Read(e))) => return Poll::Ready(TunnelEnd::ClientError(e)),
                Poll::Ready(Err(Side::Write(e))) => return Poll::Ready(TunnelEnd::ServerError(e)),
                _ => {}
            }
        }
        if !down.is_done() {
            match down.poll_copy(cx, server, client, &mut activity) {
                Poll::Ready(Err(Side::Read(e))) => return Poll::Ready(TunnelEnd::ServerError(e)),
                Poll::Ready(Err(Side::Write(e))) => return Poll::Ready(TunnelEnd::ClientError(e)),
                _ => {}
            }
        }
        if up.is_done() && down.is_done() {
            return Poll::Ready(TunnelEnd::Closed);
        }
        if activity {
            last_activity = Instant::now();
        }
        let Some(limit) = current_limit(&timeouts, up.is_done(), down.is_done()) else {
            return Poll::Pending;
        };
        let deadline = last_activity + limit;
        let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => {
                    return Poll::Ready(TunnelEnd::Timeout)
                }
                Poll::Ready(()) => sleep.as_mut().reset(deadline),
            }
        }
    })
    .await;
    TunnelOutcome {
        end,
        bytes_up: up.bytes,
        bytes_down: down.bytes,
    }
}

/// The inactivity limit in force: the `-fin` timeouts once a side has shut
/// its sending direction (when set), the tunnel's idle limit otherwise.
fn current_limit(t: &TunnelTimeouts, client_done: bool, server_done: bool) -> Option<Duration> {
    let fin = match (client_done, server_done) {
        (true, false) => t.client_fin,
        (false, true) => t.server_fin,
        _ => None,
    };
    fin.or(t.idle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_and_ends_when_both_close() {
        let (mut client, mut proxy_client) = duplex(64);
        let (mut proxy_server, mut server) = duplex(64);
        let task = tokio::spawn(async move {
            run(
                &mut proxy_client,
                &mut proxy_server,
                TunnelTimeouts::default(),
            )
            .await
        });
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
        assert!(matches!(outcome.end, TunnelEnd::Closed));
        assert_eq!((outcome.bytes_up, outcome.bytes_down), (4, 8));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnel_times_out_and_traffic_defers_it() {
        let (mut client, mut proxy_client) = duplex(64);
        let (mut proxy_server, mut server) = duplex(64);
        let timeouts = TunnelTimeouts {
            idle: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let start = Instant::now();
        let task =
            tokio::spawn(async move { run(&mut proxy_client, &mut proxy_server, timeouts).await });
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
        assert_eq!(
            current_limit(&t, false, false),
            Some(Duration::from_secs(60))
        );
        assert_eq!(current_limit(&t, true, false), Some(Duration::from_secs(1)));
        assert_eq!(
            current_limit(&t, false, true),
            Some(Duration::from_secs(60))
        );
    }
}
