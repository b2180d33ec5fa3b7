//! Stick tables (`stick-table`): keys (client addresses, header or cookie
//! values...) → the server that served them, for `stick on|match|
//! store-request` rules.
//!
//! One table per declaring backend, shared by the rules of every backend
//! that names it (`table <backend>`); entries hold the server's numeric
//! `id`, which each backend looks up among its own servers, as HAProxy
//! does. An entry expires `expire` after it was last matched or stored;
//! when the table is full the least recently used entry makes room (the
//! same order as HAProxy's oldest-expiry purge, since every entry has the
//! same `expire`), or, with `nopurge`, the new key is not stored.
//!
//! Samples are converted to the table's key type as HAProxy's casts do:
//! an IPv6 address fits `type ip` only when IPv4-mapped, text is parsed as
//! an address for `ip`/`ipv6`, as its leading digits for `integer` (`abc`
//! is 0), strings are cut at `len` bytes. A sample that does not convert
//! gives no key, and the rule does nothing.
//!
//! Entries also keep the counters of the table's `store` list, updated by
//! `track-sc` rules (proxy/track.rs). Rates follow HAProxy's `freq_ctr`:
//! the count of the current period plus the previous period's count
//! weighted by how much of the sliding window still overlaps it. An entry
//! a request tracks (`use` in `show table`) does not expire until the
//! request, or the WebSocket tunnel it became, ends.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::persist::{KeyType, StickTable as Definition};
use crate::config::track::{Counter, DataType};

/// A key of one of the table types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Ip(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Integer(i64),
    String(Vec<u8>),
}

/// A sample as a fetch produced it, before conversion to the key type.
#[derive(Debug, Clone, Copy)]
pub enum Sample<'a> {
    Addr(IpAddr),
    Text(&'a [u8]),
}

impl Key {
    /// Converts `sample` to a key of type `ty`; `None` when it does not
    /// convert.
    pub fn from_sample(ty: KeyType, sample: Sample<'_>) -> Option<Key> {
        let addr = |s: Sample<'_>| match s {
            Sample::Addr(a) => Some(a),
            Sample::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        };
        match ty {
            KeyType::Ip => match addr(sample)? {
                IpAddr::V4(v4) => Some(Key::Ip(v4)),
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(Key::Ip),
            },
            KeyType::Ipv6 => Some(Key::Ipv6(match addr(sample)? {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            })),
            KeyType::Integer => match sample {
                Sample::Addr(IpAddr::V4(v4)) => Some(Key::Integer(i64::from(u32::from(v4)))),
                Sample::Addr(IpAddr::V6(_)) => None,
                Sample::Text([]) => None,
                Sample::Text(t) => Some(Key::Integer(leading_int(t))),
            },
            KeyType::String { len } => {
                let mut bytes = match sample {
                    Sample::Addr(a) => a.to_string().into_bytes(),
                    Sample::Text(t) => t.to_vec(),
                };
                bytes.truncate(len);
                Some(Key::String(bytes))
            }
        }
    }
}

/// HAProxy's `read_int64`: an optional sign and the leading digits
/// (saturating), 0 when there are none.
fn leading_int(t: &[u8]) -> i64 {
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

struct Entry {
    /// The server stick rules stored; `None` for an entry only tracked.
    server_id: Option<u32>,
    touched: Instant,
    /// Position in `Inner::order` (larger: more recent).
    seq: u64,
    /// Requests (or tunnels) tracking the entry now.
    refs: u32,
    /// One value per `store` data type, in the definition's order.
    data: Vec<Value>,
}

/// A stored counter.
#[derive(Debug, Clone, Copy)]
enum Value {
    Count(u64),
    Rate(FreqCtr),
}

/// HAProxy's `freq_ctr` over a period: events of the current period, of
/// the previous one, and when the current one started (ms since the
/// table's epoch).
#[derive(Debug, Clone, Copy, Default)]
struct FreqCtr {
    tick: u64,
    curr: u64,
    prev: u64,
}

impl FreqCtr {
    /// `update_freq_ctr_period`: a period over moves the current count to
    /// the previous one; two or more over restart from zero at `now`.
    fn add(&mut self, now: u64, period: u64, inc: u64) {
        if now.saturating_sub(self.tick) >= period {
            self.prev = self.curr;
            self.curr = 0;
            self.tick += period;
            if now.saturating_sub(self.tick) >= period {
                self.prev = 0;
                self.tick = now;
            }
        }
        self.curr += inc;
    }

    /// `read_freq_ctr_period`: the current count plus the previous one
    /// times the part of the window it still covers.
    fn read(&self, now: u64, period: u64) -> u64 {
        let (mut curr, mut past) = (self.curr, self.prev);
        let end = self.tick + period;
        let remain = if now <= end {
            end - now
        } else if now - end <= period {
            past = curr;
            curr = 0;
            period - (now - end)
        } else {
            return 0;
        };
        curr + past * remain / period
    }
}

/// What a counter fetch finds in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// No entry for the key.
    NoEntry,
    /// The entry exists but the table does not store this counter.
    NotStored,
    Value(u64),
}

/// One entry as `show table` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryView {
    pub serial: u64,
    pub key: Key,
    pub server_id: Option<u32>,
    /// Time left before expiry (`None`: the table has no `expire`).
    pub left: Option<Duration>,
    pub refs: u32,
    /// The stored counters, in HAProxy's data type order.
    pub data: Vec<(DataType, u64)>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Least recently used first.
    order: BTreeMap<u64, Key>,
    next: u64,
}

impl Inner {
    fn touch(&mut self, key: &Key, now: Instant) {
        let seq = self.next;
        self.next += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.order.remove(&e.seq);
            e.seq = seq;
            e.touched = now;
            self.order.insert(seq, key.clone());
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.seq);
        }
    }

    /// Drops expired entries, oldest first; one in use is refreshed
    /// instead (it expires `expire` after its last user is gone).
    fn purge(&mut self, def: &Definition, now: Instant) {
        let Some(expire) = def.expire else { return };
        let mut budget = self.entries.len();
        while let Some((_, key)) = self.order.first_key_value() {
            let entry = self.entries.get(key);
            let expired = entry.is_none_or(|e| now.saturating_duration_since(e.touched) >= expire);
            if !expired || budget == 0 {
                break;
            }
            budget -= 1;
            let key = key.clone();
            if entry.is_some_and(|e| e.refs > 0) {
                self.touch(&key, now);
            } else {
                self.remove(&key);
            }
        }
    }
}

/// One `stick-table`.
pub struct StickTable {
    pub def: Definition,
    inner: Mutex<Inner>,
    /// Origin of the rates' millisecond ticks.
    epoch: Instant,
}

impl StickTable {
    pub fn new(def: Definition) -> StickTable {
        StickTable {
            def,
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn fresh_data(&self) -> Vec<Value> {
        self.def
            .store
            .iter()
            .map(|d| match d.period() {
                Some(_) => Value::Rate(FreqCtr::default()),
                None => Value::Count(0),
            })
            .collect()
    }

    /// The entry for `key`, created when missing (dropping the least
    /// recently used one when full; `false` with `nopurge` then).
    fn ensure(&self, inner: &mut Inner, key: &Key, now: Instant) -> bool {
        if inner.entries.contains_key(key) {
            inner.touch(key, now);
            return true;
        }
        if inner.entries.len() >= self.def.size {
            if self.def.nopurge {
                return false;
            }
            if let Some((_, oldest)) = inner.order.pop_first() {
                inner.entries.remove(&oldest);
            }
        }
        let seq = inner.next;
        inner.next += 1;
        inner.order.insert(seq, key.clone());
        inner.entries.insert(
            key.clone(),
            Entry {
                server_id: None,
                touched: now,
                seq,
                refs: 0,
                data: self.fresh_data(),
            },
        );
        true
    }

    /// Adds `inc` to every stored data type of `key` that counts `what`.
    fn bump(&self, e: &mut Entry, what: &[Counter], inc: u64, now: Instant) {
        let ms = self.ms(now);
        for (d, v) in self.def.store.iter().zip(e.data.iter_mut()) {
            if !what.contains(&d.counter()) {
                continue;
            }
            match (v, d.period()) {
                (Value::Count(n), _) => *n = n.saturating_add(inc),
                (Value::Rate(f), Some(p)) => f.add(ms, duration_ms(p), inc),
                (Value::Rate(_), None) => {}
            }
        }
    }

    /// `track-sc`: the entry for `key` (created if needed) is now used by
    /// one more request, which counts as a connection (`conn_cnt`,
    /// `conn_cur`, `conn_rate`). `false` when the table is full with
    /// `nopurge`: nothing is tracked.
    pub fn track(&self, key: &Key, now: Instant) -> bool {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        if !self.ensure(&mut inner, key, now) {
            return false;
        }
        let Some(e) = inner.entries.get_mut(key) else {
            return false;
        };
        e.refs += 1;
        self.bump(
            e,
            &[Counter::ConnCnt, Counter::ConnCur, Counter::ConnRate],
            1,
            now,
        );
        true
    }

    /// Counts one event on a tracked entry: a request (`http_req_*`), an
    /// error (`http_err_*`), `gpc0` (`sc_inc_gpc0`).
    pub fn count(&self, key: &Key, what: &[Counter], now: Instant) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(key) {
            self.bump(e, what, 1, now);
        }
    }

    /// The request tracking `key` ended: `conn_cur` drops, the entry's
    /// expiry starts again from now.
    pub fn release(&self, key: &Key, now: Instant) {
        let mut inner = self.lock();
        let Some(e) = inner.entries.get_mut(key) else {
            return;
        };
        e.refs = e.refs.saturating_sub(1);
        for (d, v) in self.def.store.iter().zip(e.data.iter_mut()) {
            if let (DataType::ConnCur, Value::Count(n)) = (d, v) {
                *n = n.saturating_sub(1);
            }
        }
        inner.touch(key, now);
    }

    /// A counter of `key`'s entry.
    pub fn read(&self, key: &Key, what: Counter, now: Instant) -> Reading {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        let Some(e) = inner.entries.get(key) else {
            return Reading::NoEntry;
        };
        let ms = self.ms(now);
        self.def
            .store
            .iter()
            .zip(&e.data)
            .find(|(d, _)| d.counter() == what)
            .map_or(Reading::NotStored, |(d, v)| {
                Reading::Value(value(*d, v, ms))
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps inconsistent in a way
        // that matters more than losing stickiness: keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server id stored for `key`, refreshing the entry's expiry.
    pub fn lookup(&self, key: &Key, now: Instant) -> Option<u32> {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        let id = inner.entries.get(key)?.server_id?;
        inner.touch(key, now);
        Some(id)
    }

    /// Records that `key` went to server `server_id` (new entry, or the
    /// existing one updated and refreshed).
    pub fn store(&self, key: Key, server_id: u32, now: Instant) {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        if !self.ensure(&mut inner, &key, now) {
            return;
        }
        if let Some(e) = inner.entries.get_mut(&key) {
            e.server_id = Some(server_id);
        }
    }

    /// Entries not yet expired.
    pub fn len(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        inner.entries.len()
    }

    /// The entries not yet expired, least recently used first.
    pub fn entries(&self, now: Instant) -> Vec<EntryView> {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        let ms = self.ms(now);
        inner
            .order
            .iter()
            .filter_map(|(seq, key)| {
                let e = inner.entries.get(key)?;
                let left = self
                    .def
                    .expire
                    .map(|x| x.saturating_sub(now.saturating_duration_since(e.touched)));
                let mut data: Vec<(DataType, u64)> = self
                    .def
                    .store
                    .iter()
                    .zip(&e.data)
                    .map(|(d, v)| (*d, value(*d, v, ms)))
                    .collect();
                data.sort_by_key(|(d, _)| d.rank());
                Some(EntryView {
                    serial: *seq,
                    key: key.clone(),
                    server_id: e.server_id,
                    left,
                    refs: e.refs,
                    data,
                })
            })
            .collect()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A stored value as read at `ms`.
fn value(d: DataType, v: &Value, ms: u64) -> u64 {
    match (v, d.period()) {
        (Value::Count(n), _) => *n,
        (Value::Rate(f), Some(p)) => f.read(ms, duration_ms(p)),
        (Value::Rate(_), None) => 0,
    }
}

impl std::fmt::Display for Key {
    /// As HAProxy's `show table` prints keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Ip(a) => write!(f, "{a}"),
            Key::Ipv6(a) => write!(f, "{a}"),
            Key::Integer(n) => write!(f, "{n}"),
            Key::String(s) => f.write_str(&String::from_utf8_lossy(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(size: usize, expire: Option<u64>, nopurge: bool) -> StickTable {
        StickTable::new(Definition {
            key: KeyType::Ip,
            size,
            expire: expire.map(Duration::from_secs),
            nopurge,
            store: Vec::new(),
            location: crate::config::model::Location {
                file: "t".into(),
                line: 1,
                col: 1,
            },
        })
    }

    fn ip(last: u8) -> Key {
        Key::Ip(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn stores_matches_and_expires() {
        let t = table(10, Some(10), false);
        let t0 = Instant::now();
        t.store(ip(1), 3, t0);
        assert_eq!(t.lookup(&ip(1), t0 + Duration::from_secs(9)), Some(3));
        // The match refreshed it.
        assert_eq!(t.lookup(&ip(1), t0 + Duration::from_secs(18)), Some(3));
        let e = &t.entries(t0 + Duration::from_secs(20))[0];
        assert_eq!(
            (e.serial, &e.key, e.server_id, e.left),
            (2, &ip(1), Some(3), Some(Duration::from_secs(8)))
        );
        assert_eq!(t.lookup(&ip(1), t0 + Duration::from_secs(28)), None);
        assert_eq!(t.len(t0 + Duration::from_secs(28)), 0);
        // A store updates the server.
        t.store(ip(2), 1, t0);
        t.store(ip(2), 2, t0);
        assert_eq!(t.lookup(&ip(2), t0), Some(2));
    }

    #[test]
    fn full_tables_drop_the_least_recently_used() {
        let t = table(2, None, false);
        let now = Instant::now();
        t.store(ip(1), 1, now);
        t.store(ip(2), 2, now);
        assert_eq!(t.lookup(&ip(1), now), Some(1));
        t.store(ip(3), 3, now);
        assert_eq!(t.lookup(&ip(2), now), None);
        assert_eq!(t.lookup(&ip(1), now), Some(1));
        assert_eq!(t.lookup(&ip(3), now), Some(3));
        let t = table(1, None, true);
        t.store(ip(1), 1, now);
        t.store(ip(2), 2, now);
        assert_eq!(
            (t.lookup(&ip(1), now), t.lookup(&ip(2), now)),
            (Some(1), None)
        );
    }

    #[test]
    fn rates_slide_over_the_previous_period() {
        let mut f = FreqCtr::default();
        let p = 10_000;
        for _ in 0..10 {
            f.add(100, p, 1);
        }
        assert_eq!(f.read(100, p), 10);
        assert_eq!(f.read(9_999, p), 10);
        // 2.5 s into the next period: the 10 weigh 75%.
        assert_eq!(f.read(12_600, p), 7);
        f.add(12_600, p, 1);
        assert_eq!(f.read(12_600, p), 1 + 7);
        // Two periods later nothing is left.
        assert_eq!(f.read(40_000, p), 0);
        f.add(40_000, p, 1);
        assert_eq!((f.read(40_000, p), f.prev), (1, 0));
    }

    #[test]
    fn tracking_counts_and_holds_entries() {
        let mut t = table(10, Some(10), false);
        t.def.store = vec![
            DataType::ConnCur,
            DataType::HttpReqRate(Duration::from_secs(10)),
            DataType::ConnCnt,
        ];
        let t = StickTable::new(t.def.clone());
        let t0 = Instant::now();
        assert!(t.track(&ip(1), t0));
        t.count(&ip(1), &[Counter::HttpReqCnt, Counter::HttpReqRate], t0);
        assert!(t.track(&ip(1), t0));
        assert_eq!(t.read(&ip(1), Counter::ConnCur, t0), Reading::Value(2));
        assert_eq!(t.read(&ip(1), Counter::HttpReqRate, t0), Reading::Value(1));
        assert_eq!(t.read(&ip(1), Counter::Gpc0, t0), Reading::NotStored);
        assert_eq!(t.read(&ip(2), Counter::ConnCur, t0), Reading::NoEntry);
        // In use, the entry outlives `expire`; released, it expires
        // `expire` after the last release.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(t.len(later), 1);
        t.release(&ip(1), later);
        t.release(&ip(1), later);
        let e = &t.entries(later)[0];
        assert_eq!((e.refs, e.server_id), (0, None));
        // Columns in HAProxy's order, whatever the `store` order.
        assert_eq!(
            e.data.iter().map(|(d, _)| d.counter()).collect::<Vec<_>>(),
            [Counter::ConnCnt, Counter::ConnCur, Counter::HttpReqRate]
        );
        assert_eq!(t.read(&ip(1), Counter::ConnCur, later), Reading::Value(0));
        assert_eq!(t.len(later + Duration::from_secs(10)), 0);
        // A tracked-only entry names no server for stick rules.
        assert!(t.track(&ip(3), later));
        assert_eq!(t.lookup(&ip(3), later), None);
    }

    #[test]
    fn samples_convert_as_haproxy() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let k = Key::from_sample;
        assert_eq!(
            k(KeyType::Ip, Sample::Addr(v4)),
            Some(Key::Ip([10, 1, 2, 3].into()))
        );
        assert_eq!(
            k(KeyType::Ip, Sample::Addr(mapped)),
            Some(Key::Ip([10, 1, 2, 3].into()))
        );
        assert_eq!(k(KeyType::Ip, Sample::Addr(v6)), None);
        assert_eq!(
            k(KeyType::Ip, Sample::Text(b"10.1.2.3")),
            Some(Key::Ip([10, 1, 2, 3].into()))
        );
        assert_eq!(k(KeyType::Ip, Sample::Text(b"nope")), None);
        assert_eq!(
            k(KeyType::Ipv6, Sample::Addr(v4)),
            Some(Key::Ipv6("::ffff:10.1.2.3".parse().unwrap()))
        );
        assert_eq!(
            k(KeyType::Integer, Sample::Text(b"42abc")),
            Some(Key::Integer(42))
        );
        assert_eq!(
            k(KeyType::Integer, Sample::Text(b"-7")),
            Some(Key::Integer(-7))
        );
        assert_eq!(
            k(KeyType::Integer, Sample::Text(b"abc")),
            Some(Key::Integer(0))
        );
        assert_eq!(k(KeyType::Integer, Sample::Text(b"")), None);
        assert_eq!(
            k(KeyType::Integer, Sample::Addr(v4)),
            Some(Key::Integer(0x0a01_0203))
        );
        assert_eq!(
            k(KeyType::String { len: 4 }, Sample::Text(b"abcdef")),
            Some(Key::String(b"abcd".to_vec()))
        );
        assert_eq!(
            k(KeyType::String { len: 32 }, Sample::Addr(v4)),
            Some(Key::String(b"10.1.2.3".to_vec()))
        );
    }
}
