//! One server's live state: up or down (from health checks), its
//! administrative state (`ready`, `drain`, `maint` from the runtime API or
//! `disabled`), its current weight, open connections and queued requests,
//! its traffic counters and its last check. All atomics (the check's text
//! excepted, which only the health task and the stats readers touch), so
//! the data path takes no lock to read or update them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use tokio::time::Instant;

use super::counters::{unix_now, Counters};
use super::slowstart::Ramp;
use crate::config::model::{Server, ServerAddr};

/// The administrative state set with `set server ... state` or `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Takes traffic (when up).
    Ready,
    /// No new connections except persistent ones (a cookie or stick
    /// table naming this server); open ones, WebSockets included, stay
    /// until they close.
    Drain,
    /// Maintenance: no new connections, no health checks counted.
    Maint,
}

impl AdminState {
    fn from_u8(v: u8) -> AdminState {
        match v {
            1 => AdminState::Drain,
            2 => AdminState::Maint,
            _ => AdminState::Ready,
        }
    }
}

/// HAProxy's check status codes (`check_status` in the CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// Not checked, or no check done yet.
    Unknown,
    L4Ok,
    L4Timeout,
    L4Con,
    /// `check-ssl`: the TLS handshake (without `option httpchk`).
    L6Ok,
    L6Timeout,
    L6Rsp,
    L7Ok,
    L7Timeout,
    L7Rsp,
    L7Sts,
    /// Passive health (`observe`): too many errors in live traffic.
    Hana,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 12] = [
        CheckStatus::Unknown,
        CheckStatus::L4Ok,
        CheckStatus::L4Timeout,
        CheckStatus::L4Con,
        CheckStatus::L6Ok,
        CheckStatus::L6Timeout,
        CheckStatus::L6Rsp,
        CheckStatus::L7Ok,
        CheckStatus::L7Timeout,
        CheckStatus::L7Rsp,
        CheckStatus::L7Sts,
        CheckStatus::Hana,
    ];

    pub fn code(self) -> &'static str {
        match self {
            CheckStatus::Unknown => "UNK",
            CheckStatus::L4Ok => "L4OK",
            CheckStatus::L4Timeout => "L4TOUT",
            CheckStatus::L4Con => "L4CON",
            CheckStatus::L6Ok => "L6OK",
            CheckStatus::L6Timeout => "L6TOUT",
            CheckStatus::L6Rsp => "L6RSP",
            CheckStatus::L7Ok => "L7OK",
            CheckStatus::L7Timeout => "L7TOUT",
            CheckStatus::L7Rsp => "L7RSP",
            CheckStatus::L7Sts => "L7STS",
            CheckStatus::Hana => "HANA",
        }
    }

    /// HAProxy's short description (`check_desc`).
    pub fn description(self) -> &'static str {
        match self {
            CheckStatus::Unknown => "Unknown",
            CheckStatus::L4Ok => "Layer4 check passed",
            CheckStatus::L4Timeout => "Layer4 timeout",
            CheckStatus::L4Con => "Layer4 connection problem",
            CheckStatus::L6Ok => "Layer6 check passed",
            CheckStatus::L6Timeout => "Layer6 timeout",
            CheckStatus::L6Rsp => "Layer6 invalid response",
            CheckStatus::L7Ok => "Layer7 check passed",
            CheckStatus::L7Timeout => "Layer7 timeout",
            CheckStatus::L7Rsp => "Layer7 invalid response",
            CheckStatus::L7Sts => "Layer7 wrong status",
            CheckStatus::Hana => "Health analyze",
        }
    }

    /// From a check outcome's reason (worded as HAProxy's, see `health`).
    pub fn from_reason(ok: bool, reason: &str) -> CheckStatus {
        let starts = |p: &str| reason.starts_with(p);
        match (ok, reason) {
            (true, _) if starts("Layer4") => CheckStatus::L4Ok,
            (true, _) if starts("Layer6") => CheckStatus::L6Ok,
            (true, _) => CheckStatus::L7Ok,
            _ if starts("Health analyze") => CheckStatus::Hana,
            _ if starts("Layer4 timeout") => CheckStatus::L4Timeout,
            _ if starts("Layer4") => CheckStatus::L4Con,
            _ if starts("Layer6 timeout") => CheckStatus::L6Timeout,
            _ if starts("Layer6") => CheckStatus::L6Rsp,
            _ if starts("Layer7 timeout") => CheckStatus::L7Timeout,
            _ if starts("Layer7 wrong status") => CheckStatus::L7Sts,
            _ => CheckStatus::L7Rsp,
        }
    }

    fn from_u8(v: u8) -> CheckStatus {
        CheckStatus::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(CheckStatus::Unknown)
    }
}

/// The last health check's result.
#[derive(Debug, Clone, Default)]
pub struct CheckInfo {
    /// HAProxy-style reason text (`last_chk`).
    pub reason: String,
    pub duration_ms: u64,
}

#[derive(Debug)]
pub struct ServerState {
    up: AtomicBool,
    /// [`AdminState`] as a number.
    admin: AtomicU8,
    /// Current weight (`set server ... weight`); starts as configured.
    weight: AtomicU32,
    /// Open connections, WebSocket tunnels included.
    served: AtomicU32,
    /// Requests waiting in the queue for this server.
    queued: super::queue::QueueLen,
    pub counters: Arc<Counters>,
    /// [`CheckStatus`] of the last check.
    check_status: AtomicU8,
    /// Checks failed while up (`chkfail`), UP->DOWN transitions (`chkdown`).
    pub check_failures: AtomicU64,
    pub check_downs: AtomicU64,
    /// Unix time (s) of the last state change (`lastchg`).
    last_change: AtomicU64,
    /// Health counter (`check_health`).
    pub check_health: AtomicU32,
    check_info: Mutex<CheckInfo>,
    /// Where new connections go: the configured address until the runtime
    /// API's `set server ... addr` changes it (a reload keeps the change
    /// while the file's address for the server stays the same: carry.rs).
    addr: Mutex<ServerAddr>,
    /// No address yet (HAProxy's resolution maintenance, `SRV_ADMF_RMAINT`):
    /// the server counts as in maintenance whatever `admin` says, until
    /// `set server ... addr`. An atomic beside `addr` so the data path's
    /// [`ServerState::admin`] takes no lock.
    awaits_addr: AtomicBool,
    /// `maxconn` (0: none); starts as configured, `set maxconn server`
    /// changes it.
    maxconn: AtomicU32,
    /// `disable health`: checks are not run and the server counts as up.
    checks_paused: AtomicBool,
    /// The `slowstart` ramp under way since the server came back, if any.
    ramp: Mutex<Option<Ramp>>,
}

impl ServerState {
    /// Servers start up, as in HAProxy: a checked server goes down only
    /// after `fall` failed checks. `disabled` servers start in maintenance.
    pub fn new(s: &Server) -> ServerState {
        ServerState {
            up: AtomicBool::new(true),
            admin: AtomicU8::new(if s.disabled { 2 } else { 0 }),
            weight: AtomicU32::new(s.weight),
            served: AtomicU32::new(0),
            queued: super::queue::QueueLen::default(),
            counters: Counters::for_server(),
            check_status: AtomicU8::new(0),
            check_failures: AtomicU64::new(0),
            check_downs: AtomicU64::new(0),
            last_change: AtomicU64::new(unix_now()),
            check_health: AtomicU32::new(s.check.as_ref().map_or(0, |c| c.rise)),
            check_info: Mutex::new(CheckInfo::default()),
            addr: Mutex::new(s.addr),
            awaits_addr: AtomicBool::new(s.addr.known().is_none()),
            maxconn: AtomicU32::new(s.maxconn),
            checks_paused: AtomicBool::new(false),
            ramp: Mutex::new(None),
        }
    }

    /// The server came back (checks brought it UP, or it left
    /// maintenance): with `slowstart` (`period_s` seconds, from the
    /// configuration in force: a reload keeps this state but may change
    /// it), its weight and `maxconn` ramp up from now.
    pub fn start_ramp(&self, period_s: u32) {
        if period_s > 0 {
            *self.ramp.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ramp {
                since: Instant::now(),
                period_s,
            });
        }
    }

    /// The ramp still under way at `now` (cleared once over).
    pub fn ramp(&self, now: Instant) -> Option<Ramp> {
        let mut ramp = self.ramp.lock().unwrap_or_else(|p| p.into_inner());
        if ramp.is_some_and(|r| r.done(now)) {
            *ramp = None;
        }
        *ramp
    }

    /// The connection limit in force at `now` (0: none): `maxconn`, lower
    /// while a `slowstart` ramp is under way.
    pub fn effective_maxconn(&self, now: Instant) -> u32 {
        let max = self.maxconn();
        match self.ramp(now) {
            Some(r) => r.maxconn(max, now),
            None => max,
        }
    }

    /// Whether a new connection would exceed the limit in force at `now`.
    pub fn is_full(&self, now: Instant) -> bool {
        let max = self.effective_maxconn(now);
        max > 0 && self.served() >= max
    }

    /// Whether `disable health` paused this server's checks.
    pub fn checks_paused(&self) -> bool {
        self.checks_paused.load(Ordering::Relaxed)
    }

    pub fn pause_checks(&self, paused: bool) {
        self.checks_paused.store(paused, Ordering::Relaxed);
    }

    /// The connection limit in force (0: none).
    pub fn maxconn(&self) -> u32 {
        self.maxconn.load(Ordering::Relaxed)
    }

    pub fn set_maxconn(&self, n: u32) {
        self.maxconn.store(n, Ordering::Relaxed);
    }

    /// The address new connections go to, if the server has one.
    pub fn addr(&self) -> ServerAddr {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `set server <be>/<srv> addr <ip> [port <port>]`; returns the
    /// previous address. Open connections stay where they are. A server
    /// that had no address leaves resolution maintenance: it is in the
    /// administrative state it was given meanwhile, as in HAProxy.
    pub fn set_addr(&self, addr: std::net::SocketAddr) -> ServerAddr {
        let old = std::mem::replace(
            &mut *self.addr.lock().unwrap_or_else(|p| p.into_inner()),
            ServerAddr::Known(addr),
        );
        if self.awaits_addr.swap(false, Ordering::AcqRel) {
            self.last_change.store(unix_now(), Ordering::Relaxed);
        }
        old
    }

    /// Whether the server has no address yet (so it is in maintenance).
    pub fn awaits_addr(&self) -> bool {
        self.awaits_addr.load(Ordering::Acquire)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            self.last_change.store(unix_now(), Ordering::Relaxed);
            if !up {
                self.check_downs.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The state in force: maintenance while the server has no address,
    /// whatever `enable server` or `set server ... state` asked (HAProxy
    /// keeps such a server in "MAINT (resolution)" too).
    pub fn admin(&self) -> AdminState {
        if self.awaits_addr() {
            return AdminState::Maint;
        }
        self.admin_asked()
    }

    /// The state last asked for (`disabled`, the runtime API), which
    /// [`ServerState::admin`] overrides while the server has no address.
    pub fn admin_asked(&self) -> AdminState {
        AdminState::from_u8(self.admin.load(Ordering::Acquire))
    }

    pub fn set_admin(&self, state: AdminState) {
        let v = match state {
            AdminState::Ready => 0,
            AdminState::Drain => 1,
            AdminState::Maint => 2,
        };
        if self.admin.swap(v, Ordering::AcqRel) != v {
            self.last_change.store(unix_now(), Ordering::Relaxed);
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Acquire)
    }

    pub(crate) fn set_weight(&self, w: u32) {
        self.weight.store(w, Ordering::Release);
    }

    /// Seconds since the last UP/DOWN or administrative change.
    pub fn last_change_age(&self) -> u64 {
        unix_now().saturating_sub(self.last_change.load(Ordering::Relaxed))
    }

    pub fn check_status(&self) -> CheckStatus {
        CheckStatus::from_u8(self.check_status.load(Ordering::Relaxed))
    }

    /// Records a check result (called by the health task).
    pub fn record_check(&self, ok: bool, reason: &str, duration_ms: u64, health: u32) {
        let status = CheckStatus::from_reason(ok, reason);
        let code = CheckStatus::ALL
            .iter()
            .position(|s| *s == status)
            .unwrap_or(0);
        self.check_status
            .store(u8::try_from(code).unwrap_or(0), Ordering::Relaxed);
        if !ok && self.is_up() {
            self.check_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.check_health.store(health, Ordering::Relaxed);
        let mut info = self.check_info.lock().unwrap_or_else(|p| p.into_inner());
        info.reason.clear();
        info.reason.push_str(reason);
        info.duration_ms = duration_ms;
    }

    pub fn check_info(&self) -> CheckInfo {
        self.check_info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn served(&self) -> u32 {
        self.served.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> u32 {
        self.queued.get()
    }

    /// What `leastconn` compares: open connections plus queued requests.
    pub fn load(&self) -> u32 {
        self.served().saturating_add(self.queued())
    }

    pub(crate) fn enqueue(&self) {
        self.queued.enter(&self.counters);
    }

    pub(crate) fn dequeue(&self) {
        self.queued.leave();
    }
}

/// A connection slot on one server, held by the session for the life of
/// the exchange, then by the tunnel task until the tunnel ends; releasing
/// it wakes the queue. It owns what it needs (no borrow of the backend),
/// so it can travel into the tunnel's own task. It also holds the session
/// in the server's and the backend's current-session counts.
pub struct ConnGuard {
    server: usize,
    state: Arc<ServerState>,
    backend: Arc<Counters>,
    slot_freed: Arc<Notify>,
}

impl ConnGuard {
    /// Takes a slot (the caller holds the balancer lock).
    pub(crate) fn new(
        server: usize,
        state: Arc<ServerState>,
        backend: Arc<Counters>,
        slot_freed: Arc<Notify>,
    ) -> ConnGuard {
        state.served.fetch_add(1, Ordering::AcqRel);
        state.counters.session_start();
        state.counters.selected.fetch_add(1, Ordering::Relaxed);
        let now = unix_now();
        state.counters.last_session.store(now, Ordering::Relaxed);
        backend.session_start();
        backend.selected.fetch_add(1, Ordering::Relaxed);
        backend.last_session.store(now, Ordering::Relaxed);
        ConnGuard {
            server,
            state,
            backend,
            slot_freed,
        }
    }

    /// The server's index in its backend.
    pub fn server(&self) -> usize {
        self.server
    }

    /// Whether the server takes traffic now (up and not in maintenance).
    pub fn server_usable(&self) -> bool {
        self.state.is_up() && self.state.admin() != AdminState::Maint
    }

    /// The server's counters.
    pub fn server_counters(&self) -> &Arc<Counters> {
        &self.state.counters
    }

    /// The backend's counters.
    pub fn backend_counters(&self) -> &Arc<Counters> {
        &self.backend
    }

    /// Tells the server's passive health (`observe`) whether an attempt to
    /// connect to it succeeded.
    pub fn observe_connect(&self, ok: bool) {
        if let Some(o) = &self.state.counters.observer {
            o.connect(ok);
        }
    }

    /// Connections open on the server now (for the log's `srv_conn`).
    pub fn server_conns(&self) -> u32 {
        self.state.served()
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
        self.state.counters.session_end();
        self.backend.session_end();
        self.slot_freed.notify_waiters();
    }
}
