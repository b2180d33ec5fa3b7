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

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::persist::{KeyType, StickTable as Definition};

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
    server_id: u32,
    touched: Instant,
    /// Position in `Inner::order` (larger: more recent).
    seq: u64,
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

    /// Drops expired entries, oldest first.
    fn purge(&mut self, def: &Definition, now: Instant) {
        let Some(expire) = def.expire else { return };
        while let Some((_, key)) = self.order.first_key_value() {
            let expired = self
                .entries
                .get(key)
                .is_none_or(|e| now.saturating_duration_since(e.touched) >= expire);
            if !expired {
                break;
            }
            let key = key.clone();
            self.remove(&key);
        }
    }
}

/// One `stick-table`.
pub struct StickTable {
    pub def: Definition,
    inner: Mutex<Inner>,
}

impl StickTable {
    pub fn new(def: Definition) -> StickTable {
        StickTable {
            def,
            inner: Mutex::new(Inner::default()),
        }
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
        let id = inner.entries.get(key)?.server_id;
        inner.touch(key, now);
        Some(id)
    }

    /// Records that `key` went to server `server_id` (new entry, or the
    /// existing one updated and refreshed).
    pub fn store(&self, key: Key, server_id: u32, now: Instant) {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        if let Some(e) = inner.entries.get_mut(&key) {
            e.server_id = server_id;
            inner.touch(&key, now);
            return;
        }
        if inner.entries.len() >= self.def.size {
            if self.def.nopurge {
                return;
            }
            if let Some((_, oldest)) = inner.order.pop_first() {
                inner.entries.remove(&oldest);
            }
        }
        let seq = inner.next;
        inner.next += 1;
        inner.order.insert(seq, key.clone());
        inner.entries.insert(
            key,
            Entry {
                server_id,
                touched: now,
                seq,
            },
        );
    }

    /// Entries not yet expired.
    pub fn len(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        inner.entries.len()
    }

    /// The entries not yet expired, least recently used first: (serial,
    /// key, server id, time left before expiry).
    pub fn entries(&self, now: Instant) -> Vec<(u64, Key, u32, Option<Duration>)> {
        let mut inner = self.lock();
        inner.purge(&self.def, now);
        inner
            .order
            .iter()
            .filter_map(|(seq, key)| {
                let e = inner.entries.get(key)?;
                let left = self
                    .def
                    .expire
                    .map(|x| x.saturating_sub(now.saturating_duration_since(e.touched)));
                Some((*seq, key.clone(), e.server_id, left))
            })
            .collect()
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
        assert_eq!(
            t.entries(t0 + Duration::from_secs(20)),
            vec![(2, ip(1), 3, Some(Duration::from_secs(8)))]
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
