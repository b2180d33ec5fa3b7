//! One server's live state: up or down (from health checks), open
//! connections and queued requests, all atomics so the data path takes no
//! lock to read them.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::model::Server;

#[derive(Debug)]
pub struct ServerState {
    up: AtomicBool,
    /// Open connections, WebSocket tunnels included.
    served: AtomicU32,
    /// Requests waiting in the queue for this server.
    queued: AtomicU32,
}

impl ServerState {
    /// Servers start up, as in HAProxy: a checked server goes down only
    /// after `fall` failed checks.
    pub fn new(_: &Server) -> ServerState {
        ServerState {
            up: AtomicBool::new(true),
            served: AtomicU32::new(0),
            queued: AtomicU32::new(0),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    pub fn served(&self) -> u32 {
        self.served.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Acquire)
    }

    /// What `leastconn` compares: open connections plus queued requests.
    pub fn load(&self) -> u32 {
        self.served().saturating_add(self.queued())
    }

    pub(crate) fn enqueue(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn dequeue(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection slot on one server, held by the session for the life of
/// the exchange, then by the tunnel task until the tunnel ends; releasing
/// it wakes the queue. It owns what it needs (no borrow of the backend),
/// so it can travel into the tunnel's own task.
pub struct ConnGuard {
    server: usize,
    state: Arc<ServerState>,
    slot_freed: Arc<Notify>,
}

impl ConnGuard {
    /// Takes a slot (the caller holds the balancer lock).
    pub(crate) fn new(
        server: usize,
        state: Arc<ServerState>,
        slot_freed: Arc<Notify>,
    ) -> ConnGuard {
        state.served.fetch_add(1, Ordering::AcqRel);
        ConnGuard {
            server,
            state,
            slot_freed,
        }
    }

    /// The server's index in its backend.
    pub fn server(&self) -> usize {
        self.server
    }
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnGuard(server {})", self.server)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.state.served.fetch_sub(1, Ordering::AcqRel);
        self.slot_freed.notify_waiters();
    }
}
