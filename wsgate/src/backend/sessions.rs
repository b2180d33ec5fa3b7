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

use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio_util::sync::CancellationToken;

use crate::config::process::CloseSpread;

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
    current: Mutex<Current>,
}

/// The signals of the tunnels opened since the last shutdown.
#[derive(Debug)]
struct Current {
    sessions: CancellationToken,
    /// Handed to those tunnels, made by the first of them.
    shared: Option<Arc<ServerSignals>>,
}

/// What a tunnel watches to know whether, and why, wsgate ends it: one
/// per server and shutdown, shared by its tunnels, so that an idle tunnel
/// carries one pointer rather than three tokens and a setting
/// (docs/performance.md, "Idle memory").
#[derive(Debug)]
pub struct ServerSignals {
    /// The proxy is stopping: 1001 "server stopping" to both peers.
    pub stop: CancellationToken,
    /// The tunnel's server is gone: removed by a reload (`removed` is then
    /// cancelled too) or its sessions shut down (`on-marked-down
    /// shutdown-sessions`, `shutdown sessions server`): 1012 to the client
    /// (reconnect now, to another server) and 1001 to the server. A
    /// descendant of `stop`, so that one registration wakes the tunnel for
    /// all three.
    pub server_gone: CancellationToken,
    /// Cancelled when a reload removed the server (or on stop).
    pub removed: CancellationToken,
    /// `close-spread-time`: when, after `stop`, the tunnel is closed.
    pub spread: CloseSpread,
}

impl ServerSignals {
    /// For a tunnel with no known server: only the stop applies.
    pub fn stop_only(stop: &CancellationToken, spread: CloseSpread) -> ServerSignals {
        ServerSignals {
            stop: stop.clone(),
            server_gone: stop.child_token(),
            removed: stop.clone(),
            spread,
        }
    }
}

impl ServerSessions {
    /// `removed` is cancelled when the server leaves the configuration (or
    /// the proxy stops: it is a child of the stop token).
    pub fn new(removed: CancellationToken) -> ServerSessions {
        let current = Mutex::new(Current {
            sessions: removed.child_token(),
            shared: None,
        });
        ServerSessions { removed, current }
    }

    /// What a new tunnel on this server watches. `stop` is the proxy's
    /// stop token (the root of the tree), `spread` the current
    /// `close-spread-time` (a reload may change it).
    pub fn signals(&self, stop: &CancellationToken, spread: CloseSpread) -> Arc<ServerSignals> {
        let mut current = lock(&self.current);
        if let Some(shared) = current.shared.as_ref().filter(|s| s.spread == spread) {
            return shared.clone();
        }
        let shared = Arc::new(ServerSignals {
            stop: stop.clone(),
            server_gone: current.sessions.clone(),
            removed: self.removed.clone(),
            spread,
        });
        current.shared = Some(shared.clone());
        shared
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
            current.sessions.cancel();
            *current = Current {
                sessions: self.removed.child_token(),
                shared: None,
            };
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
        let spread = CloseSpread::AtOnce;
        let before = s.signals(&stop, spread);
        assert!(Arc::ptr_eq(&before, &s.signals(&stop, spread)), "shared");
        s.shutdown();
        let after = s.signals(&stop, spread);
        assert!(before.server_gone.is_cancelled());
        assert!(!after.server_gone.is_cancelled());
        assert!(!s.removed().is_cancelled());
        stop.cancel();
        assert!(after.server_gone.is_cancelled() && s.removed().is_cancelled());
    }

    #[test]
    fn a_new_spread_makes_new_signals_on_the_same_tokens() {
        let stop = CancellationToken::new();
        let s = ServerSessions::new(stop.child_token());
        let old = s.signals(&stop, CloseSpread::AtOnce);
        let new = s.signals(&stop, CloseSpread::Never);
        assert!(!Arc::ptr_eq(&old, &new));
        assert_eq!(new.spread, CloseSpread::Never);
        s.shutdown();
        assert!(old.server_gone.is_cancelled() && new.server_gone.is_cancelled());
    }
}
