//! Backends at run time: their servers' live state and the balancer that
//! picks among them.
//!
//! Stage: built from `config::model::Backend` when the proxy starts; used
//! by `proxy::connect` for every new server connection, and by the health
//! checks (`health`) that mark servers up and down. Which servers may be
//! chosen is decided here, as HAProxy does: servers that are up, not
//! `disabled` and of non-zero weight; the `backup` ones only when no active
//! server is left (the first backup, or all of them with `option
//! allbackups`). The algorithm (`balance`) then chooses among those.
//!
//! Every chosen server comes with a [`ConnGuard`], which the session keeps
//! for as long as the exchange or the WebSocket tunnel lasts: `leastconn`,
//! `maxconn` and the queue (`queue`) all see open tunnels, not just
//! requests in flight.
//!
//! Health comes from the checks (`health`, `tcp_check`) and from live
//! traffic (`observe`); a server that comes back takes load gradually with
//! `slowstart`, which lowers the effective weight the dynamic algorithms
//! see and the `maxconn` in force.
//!
//! The runtime API steers servers here too: a server in `drain` or `maint`
//! ([`AdminState`]) is not a candidate, and `set server ... weight` changes
//! the weight the balancer sees (the weights' common divisor is
//! recomputed, so the static algorithms keep HAProxy's proportions).

mod carry;
pub mod counters;
pub mod health;
pub mod observe;
pub mod persist;
pub mod queue;
pub mod server;
pub mod sessions;
pub mod slowstart;
pub mod stick;
pub mod tcp_check;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::balance::{self, Algorithm, Candidate, Fetch, ServerSet};
use crate::config::model::{Backend, ServerAddr};
use sessions::ServerSessions;
use slowstart::WEIGHT_SCALE;
use stick::StickTable;

pub use counters::{CloseReason, Counters, SessionGuard};
pub use queue::{acquire, AcquireError};
pub use server::{AdminState, CheckStatus, ConnGuard, ServerState};

pub struct BackendRuntime {
    pub config: Backend,
    /// Live state, one per `config.servers` entry.
    pub servers: Vec<Arc<ServerState>>,
    balancer: Mutex<Box<dyn Algorithm>>,
    weight_gcd: AtomicU32,
    /// The backend's own counters (the servers have theirs).
    pub counters: Arc<Counters>,
    /// Woken whenever a connection slot is released or a server comes up,
    /// so queued requests try again.
    pub(crate) slot_freed: Arc<Notify>,
    /// Requests waiting for any server (every one at its `maxconn`, no
    /// hash pinning them to one): HAProxy's backend queue.
    queued: queue::QueueLen,
    /// Per server, the signal that ends its tunnels (`shutdown-sessions`,
    /// reload, stop); filled by the proxy, which owns the stop token.
    pub sessions: Vec<Arc<ServerSessions>>,
    /// This backend's `stick-table`, shared with the rules of backends
    /// that name it (and kept across reloads while unchanged).
    pub table: Option<Arc<StickTable>>,
}

/// What one attempt to choose a server gave.
pub enum Pick {
    /// A server, with its connection slot already taken.
    Server(ConnGuard),
    /// Servers are usable but at their `maxconn`; `Some` when the algorithm
    /// is pinned to one server (hash-based) that is full.
    Saturated(Option<usize>),
    /// No server is usable (none, all down, disabled or of weight 0).
    NoServer,
}

impl BackendRuntime {
    pub fn new(config: Backend) -> BackendRuntime {
        let servers = config
            .servers
            .iter()
            .map(|s| Arc::new(ServerState::new(s)))
            .collect();
        let balancer = Mutex::new(balance::build(&config));
        let weight_gcd = balance::weight_gcd(config.servers.iter().map(|s| s.weight));
        let table = config
            .sticky
            .table
            .clone()
            .map(|def| Arc::new(StickTable::new(def)));
        BackendRuntime {
            table,
            config,
            servers,
            balancer,
            weight_gcd: AtomicU32::new(weight_gcd),
            counters: Counters::new(),
            slot_freed: Arc::new(Notify::new()),
            queued: queue::QueueLen::default(),
            sessions: Vec::new(),
        }
    }

    /// Requests in the backend's own queue (not those of its servers):
    /// the backend's `qcur`, as in HAProxy.
    pub fn queued(&self) -> u32 {
        self.queued.get()
    }

    pub(crate) fn enqueue(&self) {
        self.queued.enter(&self.counters);
    }

    pub(crate) fn dequeue(&self) {
        self.queued.leave();
    }

    /// Whether server `i` may take new traffic: up, `ready` (neither
    /// `drain` nor `maint`, which `disabled` starts in) and of non-zero
    /// weight.
    pub fn is_usable(&self, i: usize) -> bool {
        let st = &self.servers[i];
        st.admin() == AdminState::Ready && st.weight() > 0 && st.is_up()
    }

    /// Takes over `previous`'s stick table when it is the same table (same
    /// backend name, type, size, expiry and purge policy), so a reload
    /// keeps every client on its server.
    pub fn keep_table(&mut self, previous: &BackendRuntime) {
        if let (Some(new), Some(old)) = (&self.table, &previous.table) {
            if previous.config.name == self.config.name && new.def.same_as(&old.def) {
                self.table = Some(old.clone());
            }
        }
    }

    /// Whether server `i` may take a request that a persistence cookie or
    /// stick-table entry sends to it: not in maintenance, and up (or down
    /// with `option persist`). Unlike the balancer, a `drain` server or
    /// one of weight 0 still serves its persistent clients, as in HAProxy.
    pub fn accepts_persistent(&self, i: usize) -> bool {
        let st = &self.servers[i];
        st.admin() != AdminState::Maint && (st.is_up() || self.config.sticky.persist)
    }

    /// Index of the server with numeric id `id` (stick-table entries).
    pub fn server_by_id(&self, id: u32) -> Option<usize> {
        self.config.servers.iter().position(|s| s.id == id)
    }

    /// Index of the server called `name`.
    pub fn server_index(&self, name: &str) -> Option<usize> {
        self.config.servers.iter().position(|s| s.name == name)
    }

    /// `set server <be>/<srv> weight <w>` (0..=256).
    pub fn set_weight(&self, i: usize, weight: u32) {
        self.servers[i].set_weight(weight.min(256));
        let gcd = balance::weight_gcd(self.servers.iter().map(|s| s.weight()));
        self.weight_gcd.store(gcd, Ordering::Release);
        self.wake_queue();
    }

    /// Ends the tunnels open on server `i` now (`shutdown-sessions`): each
    /// WebSocket gets a close frame at its next message boundary.
    pub fn shutdown_sessions(&self, i: usize) {
        if let Some(s) = self.sessions.get(i) {
            s.shutdown();
        }
    }

    /// `set server <be>/<srv> state ready|drain|maint`. Leaving
    /// maintenance starts the `slowstart` ramp, as in HAProxy.
    pub fn set_admin(&self, i: usize, state: AdminState) {
        let was = self.servers[i].admin();
        self.servers[i].set_admin(state);
        // Maintenance takes an up server down: with `on-marked-down
        // shutdown-sessions` its sessions end, as in HAProxy 2.6.
        let going_down = state == AdminState::Maint && was != AdminState::Maint;
        if going_down && self.config.servers[i].shutdown_on_down && self.servers[i].is_up() {
            self.shutdown_sessions(i);
        }
        if state == AdminState::Ready {
            if was == AdminState::Maint {
                self.servers[i].start_ramp(self.config.servers[i].slowstart);
            }
            self.wake_queue();
        }
    }

    /// `set server <be>/<srv> addr`: new connections go to `addr`. A
    /// server that had none leaves resolution maintenance, into the
    /// administrative state it was given meanwhile (ready unless
    /// `disabled`, `disable server` or `state maint|drain`).
    pub fn set_addr(&self, i: usize, addr: std::net::SocketAddr) -> ServerAddr {
        let st = &self.servers[i];
        let was = st.admin();
        let old = st.set_addr(addr);
        if was == AdminState::Maint && st.admin() != AdminState::Maint {
            st.start_ramp(self.config.servers[i].slowstart);
            self.wake_queue();
        }
        old
    }

    /// The weight server `i` has now, in the user's units (what HAProxy's
    /// stats show as `weight`, `uweight` being the configured one): lower
    /// than configured while a `slowstart` ramp is under way, for the
    /// algorithms that ramp.
    pub fn effective_weight(&self, i: usize) -> u32 {
        let st = &self.servers[i];
        self.eweight(st, Instant::now()).div_ceil(WEIGHT_SCALE)
    }

    /// HAProxy's effective weight (the user's weight times
    /// [`WEIGHT_SCALE`] at full speed) of a server at `now`.
    fn eweight(&self, st: &ServerState, now: Instant) -> u32 {
        let step = match st.ramp(now) {
            Some(r) if balance::is_dynamic(&self.config) => r.step(now),
            _ => WEIGHT_SCALE,
        };
        st.weight() * step
    }

    /// The next moment a `slowstart` ramp raises some server's `maxconn`
    /// (queued requests look again then), if any ramp is under way.
    pub fn next_ramp_step(&self) -> Option<Instant> {
        let now = Instant::now();
        self.servers
            .iter()
            .filter_map(|s| s.ramp(now).and_then(|r| r.next_step(now)))
            .min()
    }

    /// The servers the algorithm may choose from now: the usable active
    /// ones; if there are none, the first usable backup (or every usable
    /// backup with `option allbackups`).
    pub fn candidates(&self) -> Vec<Candidate> {
        let now = Instant::now();
        let make = |i: usize| {
            let s = &self.config.servers[i];
            let st = &self.servers[i];
            Candidate {
                index: i,
                id: s.id,
                weight: st.weight(),
                eweight: self.eweight(st, now),
                conns: st.load(),
                served: st.served(),
                full: st.is_full(now),
            }
        };
        let usable = |backup: bool| {
            (0..self.servers.len())
                .filter(move |&i| self.config.servers[i].backup == backup && self.is_usable(i))
        };
        let active: Vec<Candidate> = usable(false).map(make).collect();
        if !active.is_empty() {
            return active;
        }
        let backups = usable(true).map(make);
        if self.config.allbackups {
            backups.collect()
        } else {
            backups.take(1).collect()
        }
    }

    /// Counts of usable active and backup servers (for state-change logs).
    pub fn usable_counts(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for i in 0..self.servers.len() {
            if self.is_usable(i) {
                if self.config.servers[i].backup {
                    counts.1 += 1;
                } else {
                    counts.0 += 1;
                }
            }
        }
        counts
    }

    /// One attempt to choose a server for `req`, avoiding `avoid` unless it
    /// is the only choice; `prefer` (persistence) bypasses the balancer. The
    /// slot is taken under the balancer's lock, so `maxconn` is never
    /// exceeded.
    pub fn try_pick(&self, req: &dyn Fetch, avoid: Option<usize>, prefer: Option<usize>) -> Pick {
        // A poisoned lock only means another session panicked mid-pick; the
        // algorithm's state is still usable numbers, so keep balancing.
        let mut algo = self.balancer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = prefer {
            return self.take(i);
        }
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Pick::NoServer;
        }
        let set = ServerSet {
            servers: &candidates,
            weight_gcd: self.weight_gcd.load(Ordering::Acquire),
            served: self.servers.iter().map(|s| s.served()).sum(),
        };
        let Some(i) = algo.pick(&set, req, avoid) else {
            return Pick::Saturated(None);
        };
        self.take(i)
    }

    /// A slot on server `i`, or `Saturated(Some(i))` at its `maxconn`.
    fn take(&self, i: usize) -> Pick {
        if self.servers[i].is_full(Instant::now()) {
            return Pick::Saturated(Some(i));
        }
        Pick::Server(ConnGuard::new(
            i,
            self.servers[i].clone(),
            self.counters.clone(),
            self.slot_freed.clone(),
        ))
    }

    /// Wakes queued requests (a slot was freed or a server came up).
    /// `set maxconn server <be>/<srv> <n>` (0: no limit); queued requests
    /// try again at once.
    pub fn set_maxconn(&self, i: usize, n: u32) {
        self.servers[i].set_maxconn(n);
        self.wake_queue();
    }

    /// `disable health` / `enable health`: a paused server's checks are
    /// not run and it counts as up (as HAProxy's unchecked servers do);
    /// once enabled, checks go on from up.
    pub fn set_health_checks(&self, i: usize, enabled: bool) {
        self.servers[i].pause_checks(!enabled);
        if !enabled && !self.servers[i].is_up() {
            self.servers[i].set_up(true);
            self.wake_queue();
        }
    }

    pub(crate) fn wake_queue(&self) {
        self.slot_freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::balance::SourceOnly;
    use crate::config::model::{Balance, Server};

    pub(crate) fn backend(servers: &[(&str, u32, bool)], balance: Balance) -> BackendRuntime {
        let text = "global\n";
        let _ = text;
        let loc = crate::config::model::Location {
            file: "t".into(),
            line: 1,
            col: 1,
        };
        let servers = servers
            .iter()
            .enumerate()
            .map(|(i, (name, weight, backup))| Server {
                name: (*name).into(),
                location: loc.clone(),
                addr: ServerAddr::Known("127.0.0.1:1".parse().unwrap()),
                weight: *weight,
                disabled: false,
                id: i as u32 + 1,
                backup: *backup,
                shutdown_on_down: false,
                shutdown_backups_on_up: false,
                maxconn: 0,
                maxqueue: 0,
                check: None,
                ssl: None,
                redir: None,
                send_proxy: None,
                cookie: None,
                non_stick: false,
                slowstart: 0,
                passive: Default::default(),
            })
            .collect();
        BackendRuntime::new(Backend {
            name: "be".into(),
            location: loc,
            mode: Default::default(),
            balance,
            servers,
            timeouts: Default::default(),
            retries: 3,
            redispatch: false,
            http_conn_mode: Default::default(),
            http: Default::default(),
            websocket: Default::default(),
            hash_type: Default::default(),
            hash_balance_factor: 0,
            tcp_check: None,
            allbackups: false,
            httpchk: None,
            stats: None,
            sticky: Default::default(),
        })
    }

    fn pick(be: &BackendRuntime) -> Option<usize> {
        match be.try_pick(&SourceOnly("127.0.0.1".parse().unwrap()), None, None) {
            Pick::Server(g) => Some(g.server()),
            _ => None,
        }
    }

    #[test]
    fn backups_only_when_all_active_are_down() {
        let mut be = backend(
            &[("a", 1, false), ("b", 1, true), ("c", 1, true)],
            Balance::RoundRobin,
        );
        assert_eq!(pick(&be), Some(0));
        be.servers[0].set_up(false);
        // Only the first backup without `option allbackups`.
        assert_eq!(
            (0..4).map(|_| pick(&be)).collect::<Vec<_>>(),
            vec![Some(1); 4]
        );
        be.config.allbackups = true;
        let seq: Vec<_> = (0..4).map(|_| pick(&be)).collect();
        assert!(seq.contains(&Some(1)) && seq.contains(&Some(2)));
        be.servers[0].set_up(true);
        assert_eq!(pick(&be), Some(0));
        be.servers[0].set_up(false);
        be.servers[1].set_up(false);
        be.servers[2].set_up(false);
        assert_eq!(pick(&be), None);
    }

    /// With the clock at `secs` into a `slowstart 3` ramp of `s2`, how many
    /// of `n` round-robin picks go to it.
    fn share_of_s2(be: &BackendRuntime, n: usize) -> usize {
        (0..n).filter(|_| pick(be) == Some(1)).count()
    }

    fn ramping(balance: Balance, slowstart: u32) -> BackendRuntime {
        let mut cfg = backend(&[("s1", 1, false), ("s2", 1, false)], balance).config;
        cfg.servers[1].slowstart = slowstart;
        BackendRuntime::new(cfg)
    }

    #[tokio::test(start_paused = true)]
    async fn slowstart_ramps_the_weight_a_step_a_second() {
        let be = ramping(Balance::RoundRobin, 3);
        // Not at start-up: both servers at full weight.
        assert_eq!(share_of_s2(&be, 32), 16);
        be.servers[1].set_up(false);
        assert_eq!(share_of_s2(&be, 10), 0);
        be.servers[1].set_up(true);
        be.servers[1].start_ramp(be.config.servers[1].slowstart);
        assert_eq!(be.effective_weight(1), 1);
        // Effective weights 16 and 1, then 16 and 6, then 16 and 11: over
        // four windows of each, s2 gets its share (HAProxy's round robin
        // may move a share across a window's edge: one more or less).
        let shares = [(17, 1), (22, 6), (27, 11)];
        for (k, (window, share)) in shares.into_iter().enumerate() {
            if k > 0 {
                tokio::time::advance(Duration::from_secs(1)).await;
            }
            let got = share_of_s2(&be, 4 * window);
            assert!(
                got.abs_diff(4 * share) <= 1,
                "{got} of {} at weight {share}",
                4 * window
            );
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(share_of_s2(&be, 32), 16);
        assert_eq!(be.servers[1].ramp(Instant::now()), None);
        assert_eq!(be.effective_weight(1), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn slowstart_leaves_static_algorithms_alone_but_ramps_maxconn() {
        let be = ramping(Balance::StaticRr, 10);
        be.servers[1].set_maxconn(20);
        be.servers[1].start_ramp(be.config.servers[1].slowstart);
        assert_eq!(be.effective_weight(1), 1);
        assert_eq!(be.servers[1].effective_maxconn(Instant::now()), 1);
        tokio::time::advance(Duration::from_millis(4500)).await;
        assert_eq!(be.servers[1].effective_maxconn(Instant::now()), 8);
        assert!(be.next_ramp_step().is_some());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(be.servers[1].effective_maxconn(Instant::now()), 20);
        assert_eq!(be.next_ramp_step(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_maintenance_starts_the_ramp() {
        let be = ramping(Balance::LeastConn, 4);
        be.set_admin(1, AdminState::Maint);
        be.set_admin(1, AdminState::Ready);
        let c = be.candidates();
        assert_eq!((c[0].eweight, c[1].eweight), (16, 1));
        // Draining and back is no comeback.
        let be = ramping(Balance::LeastConn, 4);
        be.set_admin(1, AdminState::Drain);
        be.set_admin(1, AdminState::Ready);
        assert_eq!(be.candidates()[1].eweight, 16);
    }

    /// Two servers, the second without an address (`init-addr none`).
    fn awaiting_address() -> BackendRuntime {
        let be = backend(&[("a", 1, false), ("b", 1, false)], Balance::RoundRobin);
        let mut config = be.config.clone();
        config.servers[1].addr = ServerAddr::Unresolved { port: 1 };
        BackendRuntime::new(config)
    }

    #[test]
    fn a_server_without_an_address_is_in_maintenance_until_it_gets_one() {
        let be = awaiting_address();
        assert!(!be.is_usable(1));
        // `enable server` is taken (HAProxy answers nothing) but does not
        // bring it out: there is nowhere to connect.
        be.set_admin(1, AdminState::Ready);
        assert_eq!(be.servers[1].admin(), AdminState::Maint);
        assert!(!be.is_usable(1) && be.servers[1].awaits_addr());
        let old = be.set_addr(1, "127.0.0.2:1".parse().unwrap());
        assert_eq!(old, ServerAddr::Unresolved { port: 1 });
        assert!(be.is_usable(1));
        assert_eq!(be.servers[1].addr().to_string(), "127.0.0.2:1");
        // What was asked meanwhile holds once it has an address.
        let be = awaiting_address();
        be.set_admin(1, AdminState::Drain);
        be.set_addr(1, "127.0.0.2:1".parse().unwrap());
        assert_eq!(be.servers[1].admin(), AdminState::Drain);
    }

    #[test]
    fn guards_count_open_connections() {
        let be = backend(&[("a", 1, false), ("b", 1, false)], Balance::LeastConn);
        be.servers[0].set_maxconn(1);
        let g1 = match be.try_pick(&SourceOnly("127.0.0.1".parse().unwrap()), None, None) {
            Pick::Server(g) => g,
            _ => panic!(),
        };
        assert_eq!(be.servers[g1.server()].served(), 1);
        let second = pick(&be);
        assert_ne!(second, Some(g1.server()));
        drop(g1);
        assert_eq!(be.servers[0].served(), 0);
    }
}
