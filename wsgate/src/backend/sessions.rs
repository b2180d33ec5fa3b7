//! The signal that ends the tunnels of one server: `on-marked-down
//! shutdown-sessions`, `on-marked-up shutdown-backup-sessions`, the runtime
//! API's `shutdown sessions server`, a reload that removed the server, and
//! the proxy's stop.
//!
//! Tokens form a tree: the proxy's stop token → one `removed` token per
//! server (kept across reloads while the server stays; cancelled when a
//! reload removes it) → the server's current `sessions` token, which every
//! tunnel on that server watches. Cancelling any level wakes each tunnel
//! through its one registration; the tunnel then tells why from which
//! level is cancelled, and picks its close code (1001 stop, 1012 otherwise).
//! A shutdown replaces the `sessions` token with a fresh one, so tunnels
//! opened afterwards are not affected.
//!
//! Parked tunnels (proxy/park.rs) hold no registration of their own: each
//! would cost a waiter allocation per idle WebSocket, and tokens cannot be
//! told apart to register once per server. Their worker's set is a
//! [`watch_all`] watcher instead, rung after any cancellation in the tree
//! ([`end`], [`ServerSessions::shutdown`]); it then looks at its tunnels.

use std::sync::Mutex;
use std::task::Waker;

use tokio_util::sync::CancellationToken;

/// Wakers rung after any cancellation in the token tree, from any thread.
static WATCHERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Rings `waker` after every cancellation that may end tunnels, until
/// [`unwatch_all`].
pub fn watch_all(waker: &Waker) {
    lock(&WATCHERS).push(waker.clone());
}

/// Stops ringing `waker` (one registered with [`watch_all`]).
pub fn unwatch_all(waker: &Waker) {
    lock(&WATCHERS).retain(|w| !w.will_wake(waker));
}

/// Cancels `token` (the stop token, or a removed server's), ending the
/// tunnels under it, parked ones included.
pub fn end(token: &CancellationToken) {
    token.cancel();
    ring_watchers();
}

fn ring_watchers() {
    lock(&WATCHERS).iter().for_each(Waker::wake_by_ref);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tunnels of one server, as a group that can be closed.
#[derive(Debug)]
pub struct ServerSessions {
    removed: CancellationToken,
    current: Mutex<CancellationToken>,
}

impl ServerSessions {
    /// `removed` is cancelled when the server leaves the configuration (or
    /// the proxy stops: it is a child of the stop token).
    pub fn new(removed: CancellationToken) -> ServerSessions {
        let current = Mutex::new(removed.child_token());
        ServerSessions { removed, current }
    }

    /// The token a new tunnel on this server watches.
    pub fn token(&self) -> CancellationToken {
        lock(&self.current).clone()
    }

    /// Cancelled when the server is removed by a reload or the proxy stops.
    pub fn removed(&self) -> &CancellationToken {
        &self.removed
    }

    /// Ends every tunnel open on the server now (each gets its close frame
    /// at the next message boundary); later tunnels are not affected.
    pub fn shutdown(&self) {
        {
            let mut current = lock(&self.current);
            current.cancel();
            *current = self.removed.child_token();
        }
        ring_watchers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_ends_open_tunnels_only() {
        let stop = CancellationToken::new();
        let s = ServerSessions::new(stop.child_token());
        let before = s.token();
        s.shutdown();
        let after = s.token();
        assert!(before.is_cancelled());
        assert!(!after.is_cancelled());
        assert!(!s.removed().is_cancelled());
        stop.cancel();
        assert!(after.is_cancelled() && s.removed().is_cancelled());
    }
}
