//! One server's live state: up or down (from health checks), open
//! connections and queued requests, all atomics so the data path takes no
//! lock to read them.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::BackendRuntime;
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
/// the exchange or tunnel; releasing it wakes the queue.
pub struct ConnGuard<'a> {
    backend: &'a BackendRuntime,
    server: usize,
}

impl<'a> ConnGuard<'a> {
    /// Takes a slot (the caller holds the balancer lock).
    pub(crate) fn new(backend: &'a BackendRuntime, server: usize) -> ConnGuard<'a> {
        backend.servers[server]
            .served
            .fetch_add(1, Ordering::AcqRel);
        ConnGuard { backend, server }
    }

    /// The server's index in its backend.
    pub fn server(&self) -> usize {
        self.server
    }
}

impl std::fmt::Debug for ConnGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnGuard({}/{})", self.backend.config.name, self.server)
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.backend.servers[self.server]
            .served
            .fetch_sub(1, Ordering::AcqRel);
        self.backend.wake_queue();
    }
}
