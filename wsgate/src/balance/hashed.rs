//! `balance source`, `uri`, `url_param` and `hdr()`: a key taken from the
//! connection or the request, hashed (`hash`) and mapped to a server by the
//! static map or the consistent ring, as `hash-type` says.
//!
//! Key extraction follows HAProxy 2.6's `backend.c` byte for byte: the
//! source address folded into 32 bits (IPv6 words XOR-ed, no hash
//! function, only the avalanche modifier), the URI up to `?` (or whole)
//! cut at `len` bytes and `depth` slashes, the first `url_param` value up
//! to `&`, the header's first value (or the middle label of a domain with
//! `use_domain_only`). With one usable server no key is needed; without a
//! key HAProxy falls back to round robin, and so do we.

use std::net::IpAddr;

use super::chash::Ring;
use super::hash::{full_hash, gen_hash};
use super::map::{Map, MapRr};
use super::{Algorithm, Candidate, Fetch, ServerSet};
use crate::config::model::{Balance, HashType};

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Source,
    Uri {
        len: u32,
        depth: u32,
        whole: bool,
        path_only: bool,
    },
    UrlParam(String),
    Hdr {
        name: String,
        use_domain_only: bool,
    },
}

impl KeySource {
    pub fn from_balance(b: &Balance) -> KeySource {
        match b {
            Balance::Uri {
                len,
                depth,
                whole,
                path_only,
            } => KeySource::Uri {
                len: *len,
                depth: *depth,
                whole: *whole,
                path_only: *path_only,
            },
            Balance::UrlParam(p) => KeySource::UrlParam(p.clone()),
            Balance::Hdr {
                name,
                use_domain_only,
            } => KeySource::Hdr {
                name: name.clone(),
                use_domain_only: *use_domain_only,
            },
            _ => KeySource::Source,
        }
    }

    /// The 32-bit hash of the request's key, or `None` when it has none.
    pub fn hash(&self, ty: &HashType, req: &dyn Fetch) -> Option<u32> {
        match self {
            KeySource::Source => {
                let h = match req.src()? {
                    IpAddr::V4(a) => u32::from(a),
                    IpAddr::V6(a) => a
                        .octets()
                        .chunks_exact(4)
                        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                        .fold(0, |h, w| h ^ w),
                };
                Some(if ty.avalanche { full_hash(h) } else { h })
            }
            KeySource::Uri {
                len,
                depth,
                whole,
                path_only,
            } => {
                let mut uri = req.uri()?.as_bytes();
                if *path_only {
                    uri = path_of(uri);
                }
                if *len > 0 {
                    uri = &uri[..uri.len().min(*len as usize)];
                }
                let mut end = 0;
                let mut slashes = 0u32;
                for &c in uri {
                    if c == b'/' {
                        slashes += 1;
                        // HAProxy stores depth + 1: the leading slash counts.
                        if *depth > 0 && slashes == depth + 1 {
                            break;
                        }
                    } else if c == b'?' && !whole {
                        break;
                    }
                    end += 1;
                }
                Some(gen_hash(ty, &uri[..end]))
            }
            KeySource::UrlParam(name) => {
                let uri = req.uri()?.as_bytes();
                let q = uri.iter().position(|&c| c == b'?')?;
                let query = &uri[q + 1..];
                let name = name.as_bytes();
                // HAProxy only looks at parameters with a value (`name=`).
                for param in query.split(|&c| c == b'&') {
                    if param.len() > name.len()
                        && param.starts_with(name)
                        && param[name.len()] == b'='
                    {
                        return Some(gen_hash(ty, &param[name.len() + 1..]));
                    }
                }
                None
            }
            KeySource::Hdr {
                name,
                use_domain_only,
            } => {
                let v = req.header(name).filter(|v| !v.is_empty())?;
                Some(if *use_domain_only {
                    gen_hash(ty, domain_only(v))
                } else {
                    gen_hash(ty, v)
                })
            }
        }
    }
}

/// The path of a request target: from the first `/` after any scheme and
/// authority (`path-only`).
fn path_of(uri: &[u8]) -> &[u8] {
    if uri.first() == Some(&b'/') {
        return uri;
    }
    let after_scheme = uri
        .windows(3)
        .position(|w| w == b"://")
        .map_or(0, |i| i + 3);
    match uri[after_scheme..].iter().position(|&c| c == b'/') {
        Some(i) => &uri[after_scheme + i..],
        None => b"",
    }
}

/// `use_domain_only`: the label before the last dot (`haproxy.1wt.eu` →
/// `1wt`); the whole value when it has no dot.
fn domain_only(v: &[u8]) -> &[u8] {
    let Some(last_dot) = v.iter().rposition(|&c| c == b'.') else {
        return v;
    };
    let start = v[..last_dot]
        .iter()
        .rposition(|&c| c == b'.')
        .map_or(0, |i| i + 1);
    &v[start..last_dot]
}

/// State: the map or ring for the current set of usable servers, rebuilt
/// when that set changes (a server goes down or comes back).
#[derive(Debug)]
pub struct Hashed {
    key: KeySource,
    ty: HashType,
    /// `hash-balance-factor` (0: off), for consistent hashing.
    factor: u32,
    built_for: Vec<(usize, u32, u32)>,
    map: Map,
    ring: Ring,
    rr: MapRr,
}

impl Hashed {
    pub fn new(key: KeySource, ty: HashType, factor: u32) -> Hashed {
        Hashed {
            key,
            ty,
            factor,
            built_for: Vec::new(),
            map: Map::default(),
            ring: Ring::default(),
            rr: MapRr::default(),
        }
    }

    fn refresh(&mut self, set: &ServerSet<'_>) {
        let sig: Vec<(usize, u32, u32)> = set
            .servers
            .iter()
            .map(|c: &Candidate| (c.index, c.id, c.eweight))
            .collect();
        if sig != self.built_for || (self.map.slots.is_empty() && !sig.is_empty()) {
            self.map = Map::build(set);
            if self.ty.consistent {
                self.ring = Ring::build(set);
            }
            self.built_for = sig;
        }
    }
}

impl Algorithm for Hashed {
    fn pick(
        &mut self,
        set: &ServerSet<'_>,
        req: &dyn Fetch,
        avoid: Option<usize>,
    ) -> Option<usize> {
        if set.servers.is_empty() {
            return None;
        }
        self.refresh(set);
        if set.servers.len() == 1 {
            return Some(set.servers[0].index);
        }
        let Some(h) = self.key.hash(&self.ty, req) else {
            return self.rr.pick(&self.map, set, avoid);
        };
        let pos = if self.ty.consistent {
            let avoided = |pos: usize| Some(set.servers[pos].index) == avoid;
            let factor = self.factor;
            self.ring
                .lookup_avoiding(h, |pos| {
                    avoided(pos) || !super::chash::within_bound(set, pos, factor)
                })
                .or_else(|| self.ring.lookup_avoiding(h, avoided))?
        } else {
            let pos = self.map.lookup(h)?;
            if Some(set.servers[pos].index) == avoid {
                return self.rr.pick(&self.map, set, avoid);
            }
            pos
        };
        Some(set.servers[pos].index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};
    use crate::config::model::HashFunction;

    fn ty() -> HashType {
        HashType::default()
    }

    fn uri_key(len: u32, depth: u32, whole: bool) -> KeySource {
        KeySource::Uri {
            len,
            depth,
            whole,
            path_only: false,
        }
    }

    #[test]
    fn uri_key_cuts() {
        let t = ty();
        let h = |k: &KeySource, u: &str| k.hash(&t, &Req::uri(u));
        let plain = uri_key(0, 0, false);
        assert_eq!(h(&plain, "/a/b?x=1"), Some(gen_hash(&t, b"/a/b")));
        assert_eq!(
            h(&uri_key(0, 0, true), "/a/b?x=1"),
            Some(gen_hash(&t, b"/a/b?x=1"))
        );
        assert_eq!(
            h(&uri_key(0, 1, false), "/a/b/c"),
            Some(gen_hash(&t, b"/a"))
        );
        assert_eq!(
            h(&uri_key(0, 2, false), "/a/b/c"),
            Some(gen_hash(&t, b"/a/b"))
        );
        assert_eq!(
            h(&uri_key(3, 0, false), "/abcdef"),
            Some(gen_hash(&t, b"/ab"))
        );
        assert_eq!(plain.hash(&t, &Req::none()), None);
    }

    #[test]
    fn url_param_and_header_keys() {
        let t = ty();
        let k = KeySource::UrlParam("user".into());
        assert_eq!(
            k.hash(&t, &Req::uri("/?a=1&user=bob&c")),
            Some(gen_hash(&t, b"bob"))
        );
        assert_eq!(k.hash(&t, &Req::uri("/?username=bob")), None);
        assert_eq!(k.hash(&t, &Req::uri("/?user")), None);
        let h = KeySource::Hdr {
            name: "host".into(),
            use_domain_only: true,
        };
        assert_eq!(
            h.hash(&t, &Req::header("Host", "haproxy.1wt.eu")),
            Some(gen_hash(&t, b"1wt"))
        );
        assert_eq!(domain_only(b"localhost"), b"localhost");
        assert_eq!(path_of(b"http://h:1/p?q"), b"/p?q");
    }

    #[test]
    fn map_based_uses_hash_modulo_weight() {
        let s = servers(&[1, 1, 1]);
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let mut a = Hashed::new(
            KeySource::Hdr {
                name: "x".into(),
                use_domain_only: false,
            },
            ty(),
            0,
        );
        for v in ["a", "b", "c", "dd", "user-17"] {
            let expect = (sdbm_of(v) % 3) as usize;
            assert_eq!(
                a.pick(&set, &Req::header("X", v), None),
                Some(expect),
                "{v}"
            );
        }
        // No key: round robin.
        let seq: Vec<_> = (0..3)
            .map(|_| a.pick(&set, &Req::none(), None).unwrap())
            .collect();
        assert_eq!(seq, vec![0, 1, 2]);
    }

    fn sdbm_of(v: &str) -> u32 {
        crate::balance::hash::sdbm(v.as_bytes())
    }

    #[test]
    fn consistent_is_stable_and_avoids() {
        let s = servers(&[1, 1, 1]);
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let t = HashType {
            consistent: true,
            function: HashFunction::Sdbm,
            avalanche: true,
        };
        let mut a = Hashed::new(
            KeySource::Hdr {
                name: "x".into(),
                use_domain_only: false,
            },
            t,
            0,
        );
        let r = Req::header("x", "alice");
        let first = a.pick(&set, &r, None).unwrap();
        assert_eq!(a.pick(&set, &r, None), Some(first));
        let other = a.pick(&set, &r, Some(first)).unwrap();
        assert_ne!(other, first);
    }

    fn bounded(factor: u32) -> Hashed {
        let t = HashType {
            consistent: true,
            function: HashFunction::Sdbm,
            avalanche: true,
        };
        let key = KeySource::Hdr {
            name: "x".into(),
            use_domain_only: false,
        };
        Hashed::new(key, t, factor)
    }

    /// Opens a connection per key in turn (none closes); returns the open
    /// connections per server, checking after each that no server is
    /// above its share of `factor`% of the load: with T the slots
    /// (`ceil(total * factor / 100)`), a server of effective weight e out
    /// of W never holds more than `floor(e * T / W) + 1`.
    fn open_all(weights: &[u32], factor: u32, keys: &[u32]) -> Vec<u32> {
        let mut s = servers(weights);
        let mut a = bounded(factor);
        let w_total: u64 = s.iter().map(|c| u64::from(c.eweight)).sum();
        for (n, k) in keys.iter().enumerate() {
            let served = s.iter().map(|c| c.served).sum();
            let set = ServerSet {
                servers: &s,
                weight_gcd: 1,
                served,
            };
            let i = a
                .pick(&set, &Req::header("x", &format!("key-{k}")), None)
                .unwrap();
            s[i].served += 1;
            s[i].conns += 1;
            if factor > 0 {
                let slots = ((n as u64 + 1) * u64::from(factor)).div_ceil(100);
                for c in &s {
                    let bound = (u64::from(c.eweight) * slots / w_total + 1).max(1);
                    assert!(
                        u64::from(c.served) <= bound,
                        "server {} holds {} of {} (bound {bound}, weights {weights:?}, factor {factor})",
                        c.index,
                        c.served,
                        n + 1
                    );
                }
            }
        }
        s.iter().map(|c| c.served).collect()
    }

    #[test]
    fn balance_factor_spreads_a_hot_key() {
        let hot = vec![7u32; 100];
        // Without the factor one key means one server.
        assert!(open_all(&[1, 1, 1, 1], 0, &hot).contains(&100));
        // With 150%: at most floor(1.5 * 100 / 4) + 1 = 38 each.
        let loads = open_all(&[1, 1, 1, 1], 150, &hot);
        assert!(loads.iter().all(|&l| l <= 38), "{loads:?}");
        assert_eq!(loads.iter().sum::<u32>(), 100);
    }

    proptest::proptest! {
        #[test]
        fn balance_factor_bounds_every_server(
            weights in proptest::collection::vec(1u32..=4, 2..6),
            factor in 101u32..300,
            keys in proptest::collection::vec(0u32..40, 1..200),
        ) {
            open_all(&weights, factor, &keys);
        }
    }
}
