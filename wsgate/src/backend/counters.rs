//! Traffic counters of one proxy (frontend or backend) or one server: what
//! the stats page, the Prometheus exporter and `show stat` report.
//!
//! Every figure is an atomic updated once per session, exchange or tunnel
//! (never per WebSocket message or per read), with relaxed ordering: the
//! readers only need eventually consistent numbers, and the data path pays
//! one uncontended `fetch_add` per event (DESIGN.md principle 3). `max`
//! values use `fetch_max`. `clear counters` (runtime API) resets the
//! maxima, as HAProxy's does; `clear counters all` resets everything.

use super::observe::Observer;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::ws::counters::WsCounters;

/// Why a tunnel ended, for `wsgate_tunnels_closed_total{reason}` and the
/// access log's termination state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClose,
    ServerClose,
    /// `timeout tunnel` (or client/server) expired.
    Timeout,
    /// The proxy stopped (SIGTERM, SIGINT, SIGUSR1).
    Stop,
    /// A reload removed the tunnel's server.
    Reload,
    /// `shutdown sessions server`, `on-marked-down shutdown-sessions`,
    /// `on-marked-up shutdown-backup-sessions`.
    Shutdown,
    Error,
    /// A WebSocket limit or policy (`websocket ...` settings) was broken.
    Limit,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::ClientClose,
        CloseReason::ServerClose,
        CloseReason::Timeout,
        CloseReason::Stop,
        CloseReason::Reload,
        CloseReason::Shutdown,
        CloseReason::Error,
        CloseReason::Limit,
    ];

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::ServerClose => "server_close",
            CloseReason::Timeout => "timeout",
            CloseReason::Stop => "stop",
            CloseReason::Reload => "reload",
            CloseReason::Shutdown => "shutdown_sessions",
            CloseReason::Error => "error",
            CloseReason::Limit => "limit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds (seconds) of the tunnel lifetime histogram's buckets
/// (`wsgate_tunnel_duration_seconds`): WebSockets live from a second to
/// days, so the buckets grow roughly tenfold.
pub const TUNNEL_BUCKETS: [f64; 10] = [
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14_400.0, 43_200.0, 86_400.0,
];

/// One proxy's or server's counters. Which fields a kind of object fills
/// follows HAProxy's CSV letters (F, B, S).
#[derive(Debug, Default)]
pub struct Counters {
    /// Current sessions (`scur`).
    pub cur_sessions: AtomicU64,
    /// Highest `cur_sessions` seen (`smax`).
    pub max_sessions: AtomicU64,
    /// Sessions since start (`stot`).
    pub total_sessions: AtomicU64,
    /// Bytes received from clients (`bin`).
    pub bytes_in: AtomicU64,
    /// Bytes sent to clients (`bout`).
    pub bytes_out: AtomicU64,
    /// HTTP requests (`req_tot`).
    pub requests: AtomicU64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other (`hrsp_*`).
    pub responses: [AtomicU64; 6],
    /// Requests denied (`dreq`).
    pub denied: AtomicU64,
    /// Request errors (`ereq`, frontends).
    pub request_errors: AtomicU64,
    /// Failed connection attempts (`econ`).
    pub connection_errors: AtomicU64,
    /// Response errors (`eresp`).
    pub response_errors: AtomicU64,
    /// Connection retries (`wretr`).
    pub retries: AtomicU64,
    /// Redispatches to another server (`wredis`).
    pub redispatches: AtomicU64,
    /// Times this server was chosen (`lbtot`).
    pub selected: AtomicU64,
    /// Requests answered by wsgate itself: stats, metrics (`intercepted`).
    pub intercepted: AtomicU64,
    /// Open tunnels (WebSocket after `101`, or `mode tcp`).
    pub cur_tunnels: AtomicU64,
    /// Tunnels since start.
    pub total_tunnels: AtomicU64,
    /// Closed tunnels by [`CloseReason`].
    pub tunnels_closed: [AtomicU64; CloseReason::ALL.len()],
    /// Closed tunnels by lifetime: one count per [`TUNNEL_BUCKETS`] bound
    /// (not cumulative), then the ones above the last.
    pub tunnel_lifetimes: [AtomicU64; TUNNEL_BUCKETS.len() + 1],
    /// Sum of the closed tunnels' lifetimes, in milliseconds.
    pub tunnel_lifetime_ms: AtomicU64,
    /// Highest queue length seen (`qmax`).
    pub max_queue: AtomicU64,
    /// Unix time (s) of the last session (`lastsess`); 0 = never.
    pub last_session: AtomicU64,
    /// WebSocket messages, close codes, policy closes (frontends and
    /// backends; shared with the tunnels, which flush into it).
    pub ws: Arc<WsCounters>,
    /// A server's passive health (`observe`), which sees the statuses
    /// counted here; `None` for frontends and backends.
    pub observer: Option<Arc<Observer>>,
}

impl Counters {
    pub fn new() -> Arc<Counters> {
        Arc::new(Counters::default())
    }

    /// A server's counters, with its passive-health [`Observer`].
    pub fn for_server() -> Arc<Counters> {
        Arc::new(Counters {
            observer: Some(Arc::default()),
            ..Counters::default()
        })
    }

    /// A session starts: current, max, total.
    pub fn session_start(&self) {
        let now = self.cur_sessions.fetch_add(1, Relaxed) + 1;
        self.max_sessions.fetch_max(now, Relaxed);
        self.total_sessions.fetch_add(1, Relaxed);
    }

    pub fn session_end(&self) {
        self.cur_sessions.fetch_sub(1, Relaxed);
    }

    /// Counts one response status in its class.
    pub fn response(&self, status: u16) {
        let class = match status {
            100..=599 => usize::from(status / 100) - 1,
            _ => 5,
        };
        self.responses[class].fetch_add(1, Relaxed);
        if let Some(o) = &self.observer {
            o.response(status);
        }
    }

    pub fn bytes(&self, bytes_in: u64, bytes_out: u64) {
        if bytes_in > 0 {
            self.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Relaxed);
        }
    }

    pub fn tunnel_open(&self) {
        self.cur_tunnels.fetch_add(1, Relaxed);
        self.total_tunnels.fetch_add(1, Relaxed);
    }

    pub fn tunnel_closed(&self, reason: CloseReason) {
        self.cur_tunnels.fetch_sub(1, Relaxed);
        self.tunnels_closed[reason.index()].fetch_add(1, Relaxed);
    }

    /// A tunnel that lived `d` closed (the histogram; one `fetch_add` per
    /// bucket and sum, once per tunnel).
    pub fn tunnel_lifetime(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let bucket = TUNNEL_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(TUNNEL_BUCKETS.len());
        self.tunnel_lifetimes[bucket].fetch_add(1, Relaxed);
        self.tunnel_lifetime_ms
            .fetch_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.tunnels_closed[reason.index()].load(Relaxed)
    }

    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Relaxed)
    }

    pub fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Relaxed);
    }

    /// `clear counters`: the maxima only (HAProxy's operator-level clear).
    pub fn clear_max(&self) {
        self.max_sessions
            .store(self.cur_sessions.load(Relaxed), Relaxed);
        self.max_queue.store(0, Relaxed);
    }

    /// `clear counters all`: every cumulative figure too (current values,
    /// which describe open connections, stay).
    pub fn clear_all(&self) {
        self.clear_max();
        for a in [
            &self.total_sessions,
            &self.bytes_in,
            &self.bytes_out,
            &self.requests,
            &self.denied,
            &self.request_errors,
            &self.connection_errors,
            &self.response_errors,
            &self.retries,
            &self.redispatches,
            &self.selected,
            &self.intercepted,
            &self.total_tunnels,
            &self.tunnel_lifetime_ms,
        ] {
            a.store(0, Relaxed);
        }
        for a in self
            .responses
            .iter()
            .chain(&self.tunnels_closed)
            .chain(&self.tunnel_lifetimes)
        {
            a.store(0, Relaxed);
        }
        self.ws.clear();
    }
}

/// Holds one session in a [`Counters`]' current count until dropped.
#[derive(Debug)]
pub struct SessionGuard(Arc<Counters>);

impl SessionGuard {
    pub fn new(counters: Arc<Counters>) -> SessionGuard {
        counters.session_start();
        SessionGuard(counters)
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.0
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.session_end();
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_classes() {
        let c = Counters::new();
        let a = SessionGuard::new(c.clone());
        let b = SessionGuard::new(c.clone());
        drop(a);
        assert_eq!(Counters::get(&c.cur_sessions), 1);
        assert_eq!(Counters::get(&c.max_sessions), 2);
        drop(b);
        c.response(101);
        c.response(503);
        c.response(700);
        assert_eq!(Counters::get(&c.responses[0]), 1);
        assert_eq!(Counters::get(&c.responses[4]), 1);
        assert_eq!(Counters::get(&c.responses[5]), 1);
        c.clear_max();
        assert_eq!(Counters::get(&c.max_sessions), 0);
        assert_eq!(Counters::get(&c.total_sessions), 2);
        c.clear_all();
        assert_eq!(Counters::get(&c.total_sessions), 0);
    }

    #[test]
    fn tunnel_lifetimes_fall_in_their_bucket() {
        let c = Counters::new();
        for ms in [0, 1000, 1001, 59_000, 100_000_000] {
            c.tunnel_lifetime(std::time::Duration::from_millis(ms));
        }
        let counts: Vec<u64> = c.tunnel_lifetimes.iter().map(Counters::get).collect();
        assert_eq!(counts, vec![2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(Counters::get(&c.tunnel_lifetime_ms), 100_061_001);
    }
}
