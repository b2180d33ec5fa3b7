//! The live client connections, for the runtime API's `show sess`: one
//! entry per connection from accept to close, with its frontend, the
//! backend and server of its last exchange, and whether it became a
//! tunnel (WebSocket or `mode tcp`) and since when; `shutdown session`
//! ends one tunnel through it.
//!
//! Stage: a session registers when it starts (through
//! [`super::counters::Sessions::track`]) and the entry leaves the registry
//! when the session's [`Tracked`] handle is dropped — when the connection
//! or its tunnel ends. The registry is process-wide and kept across
//! reloads, like the process counters. Cost: one lock of one of 16 shards
//! at accept, close and per exchange's note; none per byte or message.
//!
//! Names are interned: every entry shares one `Arc<str>` per frontend and
//! one [`Route`] per backend and server pair instead of owning copies,
//! which would be three small allocations per idle WebSocket; the entry
//! is then 192 bytes with its `Arc` header, jemalloc's size class below
//! 224 (docs/performance.md, "Idle memory").

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

const SHARDS: usize = 16;

/// Every live connection.
#[derive(Debug)]
pub struct Registry {
    next: AtomicU64,
    shards: [Mutex<HashMap<u64, Arc<Live>>>; SHARDS],
    /// Every name and route seen, shared by the entries. Never shrink:
    /// they hold the configuration's names, old and new, a few bytes each.
    names: Mutex<HashSet<Arc<str>>>,
    routes: Mutex<HashMap<Arc<str>, ServerRoutes>>,
}

/// One backend's routes, by server name.
type ServerRoutes = HashMap<Arc<str>, Arc<Route>>;

/// A backend and one of its servers.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub backend: Arc<str>,
    pub server: Arc<str>,
}

/// One connection.
#[derive(Debug)]
pub struct Live {
    pub id: u64,
    pub frontend: Arc<str>,
    pub peer: SocketAddr,
    pub tls: bool,
    pub started: Instant,
    state: Mutex<LiveState>,
    /// Tunnel bytes read from the client and from the server so far.
    tunnel_up: AtomicU64,
    tunnel_down: AtomicU64,
    /// `shutdown session`: set, and the tunnel woken, to end its tunnel.
    killed: AtomicBool,
    /// The tunnel's waker, registered at its first wake-up. A flag and a
    /// waker rather than a cancellation token of its own: a child token
    /// is a 112-byte node per WebSocket, for a command seldom used.
    tunnel_waker: Mutex<Option<Waker>>,
}

/// What changes during a connection.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// Backend and server of the last exchange (or of the tunnel).
    pub route: Option<Arc<Route>>,
    /// Exchanges so far (HTTP requests; 1 for `mode tcp`).
    pub exchanges: u64,
    /// Set once the connection is a tunnel.
    pub tunnel: Option<Tunnel>,
}

#[derive(Debug, Clone, Copy)]
pub struct Tunnel {
    pub websocket: bool,
    pub since: Instant,
}

impl Live {
    pub fn state(&self) -> LiveState {
        lock(&self.state).clone()
    }

    /// Bytes read on the tunnel from the client and from the server.
    pub fn tunnel_read(&self, from_client: u64, from_server: u64) {
        for (counter, n) in [
            (&self.tunnel_up, from_client),
            (&self.tunnel_down, from_server),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// When the connection became a tunnel, if it did.
    pub fn tunnel_since(&self) -> Option<Instant> {
        lock(&self.state).tunnel.map(|t| t.since)
    }

    /// `shutdown session <id>`: ends the tunnel (WebSockets get their
    /// close frame at the next message boundary); false when the
    /// connection is not a tunnel.
    pub fn kill(&self) -> bool {
        if lock(&self.state).tunnel.is_none() {
            return false;
        }
        self.killed.store(true, Ordering::Release);
        if let Some(w) = lock(&self.tunnel_waker).take() {
            w.wake();
        }
        true
    }

    /// Whether `shutdown session` ended this connection's tunnel.
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// The tunnel's waker, for [`Live::kill`]. A kill that came first is
    /// seen by the tunnel through [`Live::killed`] when it checks.
    pub fn register_tunnel(&self, waker: &Waker) {
        *lock(&self.tunnel_waker) = Some(waker.clone());
    }

    /// Tunnel bytes (from the client, from the server) so far.
    pub fn tunnel_bytes(&self) -> (u64, u64) {
        (
            self.tunnel_up.load(Ordering::Relaxed),
            self.tunnel_down.load(Ordering::Relaxed),
        )
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            next: AtomicU64::new(1),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            names: Mutex::new(HashSet::new()),
            routes: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    /// Registers a connection until the handle is dropped.
    pub fn track(self: &Arc<Self>, frontend: &str, peer: SocketAddr, tls: bool) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let live = Arc::new(Live {
            id,
            frontend: self.intern(frontend),
            peer,
            tls,
            started: Instant::now(),
            state: Mutex::new(LiveState::default()),
            tunnel_up: AtomicU64::new(0),
            tunnel_down: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            tunnel_waker: Mutex::new(None),
        });
        lock(self.shard(id)).insert(id, live.clone());
        Tracked {
            registry: self.clone(),
            live,
        }
    }

    /// The connection with this id, if it is still open.
    pub fn find(&self, id: u64) -> Option<Arc<Live>> {
        lock(self.shard(id)).get(&id).cloned()
    }

    /// The live connections, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Live>> {
        let mut all: Vec<Arc<Live>> = self
            .shards
            .iter()
            .flat_map(|s| lock(s).values().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|l| l.id);
        all
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Arc<Live>>> {
        &self.shards[(id as usize) % SHARDS]
    }

    /// The shared copy of `name`.
    fn intern(&self, name: &str) -> Arc<str> {
        let mut names = lock(&self.names);
        if let Some(n) = names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(name);
        names.insert(n.clone());
        n
    }

    /// The shared `backend`/`server` pair.
    fn route(&self, backend: &str, server: &str) -> Arc<Route> {
        let mut routes = lock(&self.routes);
        if let Some(r) = routes.get(backend).and_then(|b| b.get(server)) {
            return r.clone();
        }
        let r = Arc::new(Route {
            backend: self.intern(backend),
            server: self.intern(server),
        });
        routes
            .entry(r.backend.clone())
            .or_default()
            .insert(r.server.clone(), r.clone());
        r
    }
}

/// A connection's place in the registry.
#[derive(Debug)]
pub struct Tracked {
    registry: Arc<Registry>,
    live: Arc<Live>,
}

impl Tracked {
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// An exchange was routed to `backend`/`server`; `tunnel` when it
    /// turned into one (`Some(true)` for a WebSocket).
    pub fn note(&self, backend: &str, server: &str, tunnel: Option<bool>) {
        let mut st = lock(&self.live.state);
        let same = st
            .route
            .as_ref()
            .is_some_and(|r| &*r.backend == backend && &*r.server == server);
        if !same {
            st.route = Some(self.registry.route(backend, server));
        }
        st.exchanges += 1;
        if let Some(websocket) = tunnel {
            st.tunnel = Some(Tunnel {
                websocket,
                since: Instant::now(),
            });
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(self.registry.shard(self.live.id)).remove(&self.live.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_as_long_as_their_handle() {
        let r = Arc::new(Registry::default());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = r.track("fe", peer, false);
        let b = r.track("fe", peer, true);
        a.note("app", "s1", None);
        b.note("app", "s2", Some(true));
        let all = r.snapshot();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].state().route.map(|r| r.server.clone()).as_deref(),
            Some("s1")
        );
        assert!(
            std::mem::size_of::<Live>() <= 176,
            "an entry fits jemalloc's 192 class"
        );
        assert!(all[1].state().tunnel.is_some_and(|t| t.websocket));
        assert!(Arc::ptr_eq(&all[0].frontend, &all[1].frontend));
        drop(a);
        assert_eq!(r.snapshot().len(), 1);
        drop(b);
        assert!(r.snapshot().is_empty());
    }
}
