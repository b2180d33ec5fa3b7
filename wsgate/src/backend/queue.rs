//! Waiting for a server slot (`maxconn`, `maxqueue`, `timeout queue`).
//!
//! When every usable server is at its `maxconn` (or the one a hash pins
//! the request to is), the request waits, as in HAProxy, in the backend's
//! queue (or that server's, where `maxqueue` applies) until a slot is
//! released or a server comes up, for at most `timeout queue` (falling
//! back to `timeout connect`; unset means forever). Then, or when the
//! server's `maxqueue` is already reached, the client gets 503.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::counters::Counters;
use super::{BackendRuntime, ConnGuard, Pick};
use crate::balance::Fetch;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcquireError {
    #[error("no server is available")]
    NoServer,
    #[error("server {0} has its queue full (maxqueue)")]
    QueueFull(String),
    #[error("no server slot became free within timeout queue")]
    QueueTimeout,
}

/// A queue's length (`qcur`), a server's or the backend's own; entering
/// raises the owner's high-water mark (`qmax`).
#[derive(Debug, Default)]
pub struct QueueLen(AtomicU32);

impl QueueLen {
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn enter(&self, counters: &Counters) {
        let now = self.0.fetch_add(1, Ordering::AcqRel) + 1;
        counters
            .max_queue
            .fetch_max(u64::from(now), Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a waiting request is counted: the queue of the server a hash
/// pins it to, or the backend's (any server will do), as in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Server(usize),
    Backend,
}

/// Counts a request in a queue while it waits.
struct Queued<'a>(&'a BackendRuntime, Place);

impl<'a> Queued<'a> {
    fn enter(backend: &'a BackendRuntime, place: Place) -> Queued<'a> {
        match place {
            Place::Server(i) => backend.servers[i].enqueue(),
            Place::Backend => backend.enqueue(),
        }
        Queued(backend, place)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        match self.1 {
            Place::Server(i) => self.0.servers[i].dequeue(),
            Place::Backend => self.0.dequeue(),
        }
    }
}

/// Chooses a server for `req` (`prefer`: the one persistence named) and
/// takes a connection slot on it, waiting in the queue when needed.
pub async fn acquire<'a>(
    backend: &'a BackendRuntime,
    req: &dyn Fetch,
    avoid: Option<usize>,
    prefer: Option<usize>,
) -> Result<ConnGuard, AcquireError> {
    let t = &backend.config.timeouts;
    let wait: Option<Duration> = t.queue.or(t.connect);
    let deadline = wait.map(|w| Instant::now() + w);
    let mut queued: Option<Queued<'a>> = None;
    loop {
        // Register for wake-ups before looking, so a slot released between
        // the look and the wait is not missed.
        let notified = backend.slot_freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match backend.try_pick(req, avoid, prefer) {
            Pick::Server(guard) => return Ok(guard),
            Pick::NoServer => return Err(AcquireError::NoServer),
            Pick::Saturated(pinned) => {
                let place = pinned.map_or(Place::Backend, Place::Server);
                if queued.as_ref().is_none_or(|q| q.1 != place) {
                    // `maxqueue` bounds a server's queue; the backend's
                    // has no bound (HAProxy's).
                    if let Place::Server(i) = place {
                        let s = &backend.config.servers[i];
                        if s.maxqueue > 0 && backend.servers[i].queued() >= s.maxqueue {
                            return Err(AcquireError::QueueFull(s.name.clone()));
                        }
                    }
                    drop(queued.take());
                    queued = Some(Queued::enter(backend, place));
                }
            }
        }
        // A `slowstart` ramp raises `maxconn` a step each second without
        // any slot being freed: look again at the next step too.
        let step = backend.next_ramp_step();
        let wake = match (deadline, step) {
            (Some(d), Some(s)) => Some(d.min(s)),
            (d, s) => d.or(s),
        };
        match wake {
            Some(w) => {
                if tokio::time::timeout_at(w, notified).await.is_err()
                    && deadline.is_some_and(|d| Instant::now() >= d)
                {
                    return Err(AcquireError::QueueTimeout);
                }
            }
            None => notified.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tests::backend;
    use crate::balance::SourceOnly;
    use crate::config::model::Balance;

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_slot_then_times_out() {
        let mut be = backend(&[("a", 1, false)], Balance::RoundRobin);
        be.servers[0].set_maxconn(1);
        be.config.timeouts.queue = Some(Duration::from_secs(2));
        let req = SourceOnly("127.0.0.1".parse().unwrap());
        let first = acquire(&be, &req, None, None).await.unwrap();
        // The second waits; freeing the slot lets it through.
        let second = async { acquire(&be, &req, None, None).await.map(|g| g.server()) };
        let release = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(first);
        };
        let watch = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            (be.queued(), be.servers[0].queued())
        };
        let (got, (), waiting) = tokio::join!(second, release, watch);
        assert_eq!(got, Ok(0));
        assert_eq!(waiting, (1, 0), "counted in the backend's queue");
        assert_eq!(be.queued(), 0, "and no more once served");
        assert_eq!(
            crate::backend::counters::Counters::get(&be.counters.max_queue),
            1
        );
        // With the slot held, a waiter gets QueueTimeout after 2 s.
        let held = acquire(&be, &req, None, None).await.unwrap();
        let started = Instant::now();
        assert_eq!(
            acquire(&be, &req, None, None).await.err(),
            Some(AcquireError::QueueTimeout)
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(held);
    }
}
