//! Stick counters in a session: the entries a request tracks
//! (`http-request track-sc0|1|2`), the counters it updates, and the
//! `sc_*`/`src_*` fetches its conditions read.
//!
//! Stage: the session makes one [`Trackers`] per request and passes it,
//! with the proxy whose rules run, as a [`Scope`] to the rules and ACLs;
//! after the response it reports the status ([`Trackers::response`]). The
//! trackers are released (`conn_cur` drops, the entry's expiry restarts)
//! when the request ends, or, for a WebSocket, when its tunnel closes: so
//! `sc_conn_cur(0)` counts a client's open WebSockets, and
//! `http-request deny if { sc_conn_cur(0) gt 10 }` at the upgrade caps them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::persist::fetch as stick_fetch;
use super::route::{condition_holds, RequestFacts};
use super::rules::Outcome;
use super::Runtime;
use crate::backend::stick::{Key, Reading, Sample, StickTable};
use crate::config::model::Frontend;
use crate::config::tcp_rules::TcpAction;
use crate::config::track::{Counter, CounterFetch, Source, Track};

/// One tracked entry.
struct Tracked {
    table: Arc<StickTable>,
    key: Key,
}

/// The stick counters tracked by one request, by slot (sc0, sc1, sc2),
/// or by a connection (`tcp-request connection track-sc<n>`).
#[derive(Default)]
pub struct Trackers {
    /// A mutex only because facts are `Sync`: one task uses it.
    slots: Mutex<[Option<Tracked>; 3]>,
    /// The connection's trackers, for a request's: fetches of a slot the
    /// request did not track read the connection's, as in HAProxy.
    session: Option<Arc<Trackers>>,
}

/// What the rules and ACLs of one proxy see.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub trackers: &'a Trackers,
    pub runtime: &'a Runtime,
    /// The proxy whose rules run: its table is the default one.
    pub own: &'a str,
}

impl Trackers {
    fn slots(&self) -> MutexGuard<'_, [Option<Tracked>; 3]> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any slot is tracked (here or by the connection).
    pub fn is_empty(&self) -> bool {
        self.slots().iter().all(Option::is_none) && self.session.is_none()
    }

    /// A request's trackers on a connection that `session` tracks: the
    /// request counts on the connection's entries (`http_req_*`).
    pub fn for_request(session: Option<&Arc<Trackers>>) -> Trackers {
        if let Some(s) = session {
            let now = Instant::now();
            for t in s.slots().iter().flatten() {
                t.table
                    .count(&t.key, &[Counter::HttpReqCnt, Counter::HttpReqRate], now);
            }
        }
        Trackers {
            slots: Mutex::default(),
            session: session.cloned(),
        }
    }

    /// The connection's counters as a mode tcp connection's conditions
    /// see them (nothing counted).
    pub fn of_connection(session: Option<&Arc<Trackers>>) -> Trackers {
        Trackers {
            slots: Mutex::default(),
            session: session.cloned(),
        }
    }

    /// Trackers that only keep the connection's (a mode tcp tunnel).
    pub fn holding(session: Option<&Arc<Trackers>>) -> Option<Box<Trackers>> {
        session.map(|s| {
            Box::new(Trackers {
                slots: Mutex::default(),
                session: Some(s.clone()),
            })
        })
    }

    /// Runs on every tracked entry of each slot: the request's, else the
    /// connection's.
    fn each_entry(&self, mut f: impl FnMut(&Tracked)) {
        let own = self.slots();
        let session = self.session.as_ref().map(|s| s.slots());
        for (i, slot) in own.iter().enumerate() {
            match (slot, &session) {
                (Some(t), _) => f(t),
                (None, Some(s)) => {
                    if let Some(t) = &s[i] {
                        f(t)
                    }
                }
                (None, None) => {}
            }
        }
    }

    /// The response's status: 4xx (401 and 407 included) counts as an
    /// HTTP error (`http_err_cnt`, `http_err_rate`) on every tracked
    /// entry, as in HAProxy 2.6.
    pub fn response(&self, status: u16) {
        if !(400..500).contains(&status) {
            return;
        }
        let now = Instant::now();
        self.each_entry(|t| {
            t.table
                .count(&t.key, &[Counter::HttpErrCnt, Counter::HttpErrRate], now)
        });
    }
}

impl Trackers {
    /// The rules answered the request, which ends here: a `deny` counts
    /// as an HTTP error when 4xx, a `return` or `redirect` does not
    /// (HAProxy 2.6, checked side by side); then the entries are released,
    /// before the answer is written, so a client that has it sees them
    /// released.
    pub fn answered(self, outcome: &Outcome) {
        if let Outcome::Deny(status) = outcome {
            self.response(*status);
        }
    }
}

impl Drop for Trackers {
    fn drop(&mut self) {
        let now = Instant::now();
        let slots = self.slots.get_mut().unwrap_or_else(|p| p.into_inner());
        for t in slots.iter().flatten() {
            t.table.release(&t.key, now);
        }
    }
}

impl Runtime {
    /// The stick table of the frontend, else the backend, called `name`.
    pub fn table_named(&self, name: &str) -> Option<&Arc<StickTable>> {
        self.frontends
            .iter()
            .zip(&self.frontend_tables)
            .find(|(f, t)| f.name == name && t.is_some())
            .and_then(|(_, t)| t.as_ref())
            .or_else(|| {
                self.backends
                    .iter()
                    .find(|b| b.config.name == name && b.table.is_some())
                    .and_then(|b| b.table.as_ref())
            })
    }
}

/// The frontends' tables (`None` where a frontend has none); one that
/// `previous` had with the same name and definition is kept, entries and
/// counters included, as backends' tables are.
pub(super) fn frontend_tables(
    frontends: &[Frontend],
    previous: Option<&Runtime>,
) -> Vec<Option<Arc<StickTable>>> {
    frontends
        .iter()
        .map(|f| {
            let def = f.table.as_ref()?;
            let kept = previous.and_then(|p| {
                p.frontends
                    .iter()
                    .zip(&p.frontend_tables)
                    .find(|(o, t)| {
                        o.name == f.name && t.as_ref().is_some_and(|t| t.def.same_as(def))
                    })
                    .and_then(|(_, t)| t.clone())
            });
            Some(kept.unwrap_or_else(|| Arc::new(StickTable::new(def.clone()))))
        })
        .collect()
}

/// `tcp-request connection` rules on a new connection from `peer`:
/// `Err` when one rejects it; else the connection's trackers, if any.
#[allow(clippy::result_unit_err)]
pub fn connection(
    frontend: &Frontend,
    runtime: &Runtime,
    peer: std::net::SocketAddr,
) -> Result<Option<Arc<Trackers>>, ()> {
    if frontend.tcp_connection.is_empty() {
        return Ok(None);
    }
    let trackers = Trackers::default();
    let scope = Scope {
        trackers: &trackers,
        runtime,
        own: &frontend.name,
    };
    for rule in &frontend.tcp_connection {
        let facts = RequestFacts::tcp(peer, false).with_scope(scope);
        let holds = rule
            .condition
            .as_ref()
            .is_none_or(|c| condition_holds(c, &frontend.acls, &facts));
        if !holds {
            continue;
        }
        match &rule.action {
            TcpAction::Accept => break,
            TcpAction::Reject => return Err(()),
            TcpAction::TrackSc(t) => track(t, &scope, &facts, false),
        }
    }
    Ok((!trackers.is_empty()).then(|| Arc::new(trackers)))
}

/// `track-sc<n>`: tracks the key in the slot, unless the slot is taken;
/// counts the connection and, for `http-request`, the request (HAProxy
/// counts the request at the first tracking of it).
pub fn track(t: &Track, scope: &Scope<'_>, facts: &RequestFacts<'_>, request: bool) {
    let slot = usize::from(t.slot);
    if scope.trackers.slots()[slot].is_some() {
        return;
    }
    let name = t.table.as_deref().unwrap_or(scope.own);
    let Some(table) = scope.runtime.table_named(name) else {
        return;
    };
    let Some(key) = stick_fetch(&t.fetch, facts).and_then(|s| Key::from_sample(table.def.key, s))
    else {
        return;
    };
    let now = Instant::now();
    if !table.track(&key, now) {
        return;
    }
    if request {
        table.count(&key, &[Counter::HttpReqCnt, Counter::HttpReqRate], now);
    }
    scope.trackers.slots()[slot] = Some(Tracked {
        table: table.clone(),
        key,
    });
}

/// A counter fetch's value: `None` (no sample, the ACL does not match)
/// for an untracked slot or a counter the table does not store; 0 for a
/// key without an entry.
pub fn counter(f: &CounterFetch, facts: &RequestFacts<'_>) -> Option<i64> {
    let scope = facts.scope?;
    let now = Instant::now();
    let (table, key) = match f.source {
        Source::Slot(n) => {
            let own = scope.trackers.slots();
            let session = scope.trackers.session.as_ref().map(|s| s.slots());
            let n = usize::from(n);
            let tracked = own[n]
                .as_ref()
                .or_else(|| session.as_ref().and_then(|s| s[n].as_ref()))?;
            match &f.table {
                Some(name) => {
                    let table = scope.runtime.table_named(name)?.clone();
                    let key = Key::from_sample(table.def.key, key_sample(&tracked.key)?)?;
                    (table, key)
                }
                None => (tracked.table.clone(), tracked.key.clone()),
            }
        }
        Source::Src => {
            let name = f.table.as_deref().unwrap_or(scope.own);
            let table = scope.runtime.table_named(name)?.clone();
            let key = Key::from_sample(table.def.key, Sample::Addr(facts.peer.ip()))?;
            (table, key)
        }
    };
    if f.inc {
        table.count(&key, &[Counter::Gpc0, Counter::Gpc0Rate], now);
    }
    match table.read(&key, f.counter, now) {
        Reading::NoEntry => Some(0),
        Reading::NotStored => None,
        Reading::Value(v) => Some(i64::try_from(v).unwrap_or(i64::MAX)),
    }
}

/// A tracked key as a sample, to look it up in another table.
fn key_sample(key: &Key) -> Option<Sample<'_>> {
    Some(match key {
        Key::Ip(a) => Sample::Addr((*a).into()),
        Key::Ipv6(a) => Sample::Addr((*a).into()),
        Key::String(s) => Sample::Text(s),
        Key::Integer(_) => return None,
    })
}
