//! Server selection (`balance`): pure functions of server state.
//!
//! Stage: the session asks its backend (`backend::BackendRuntime`) for a
//! server; the backend works out which servers are usable right now (up,
//! not disabled, weight above 0; the backup servers only when no active one
//! is usable) and asks the algorithm here to choose among those
//! [`Candidate`]s. Algorithms know nothing of sockets or sessions: they see
//! plain numbers and a [`Fetch`] for the request's key, so each is tested
//! alone (pingora's `selection/`, HAProxy's `lb_*.c`). One file per
//! algorithm, named as in HAProxy's manual.
//!
//! The hash-based algorithms (`source`, `uri`, `url_param`, `hdr`) pick the
//! same server as HAProxy 2.6 for the same configuration and key: the hash
//! functions (`hash`), the weighted map (`map`) and the consistent-hash
//! ring (`chash`) reproduce HAProxy's arithmetic, so a user who migrates
//! keeps every client on the server it had.

pub mod chash;
pub mod first;
pub mod hash;
pub mod hashed;
pub mod leastconn;
pub mod map;
pub mod random;
pub mod roundrobin;
pub mod static_rr;

use std::net::IpAddr;

use crate::config::model::{Backend, Balance};

pub use roundrobin::RoundRobin;

/// A usable server as an algorithm sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index in the backend's server list (what `pick` returns).
    pub index: usize,
    /// The server's numeric id (`id`, or its position by default).
    pub id: u32,
    /// Configured weight, 1..=256 (servers of weight 0 are not candidates):
    /// what the static algorithms (`static-rr`, map-based hashing) use.
    pub weight: u32,
    /// HAProxy's effective weight, which the dynamic algorithms use: the
    /// weight times 16 (`BE_WEIGHT_SCALE`) at full speed, less while a
    /// `slowstart` ramp is under way (`backend::slowstart`).
    pub eweight: u32,
    /// Open connections (tunnels included) plus requests queued for it.
    pub conns: u32,
    /// Open connections alone (`hash-balance-factor` bounds these).
    pub served: u32,
    /// At its `maxconn`: algorithms that may choose freely skip it.
    pub full: bool,
}

/// The servers an algorithm may choose from, in declaration order.
#[derive(Debug, Clone, Copy)]
pub struct ServerSet<'a> {
    pub servers: &'a [Candidate],
    /// Greatest common divisor of every configured weight in the backend
    /// (HAProxy divides weights by it when building its static map).
    pub weight_gcd: u32,
    /// Open connections on all the backend's servers (HAProxy's
    /// `px->served`), for `hash-balance-factor`.
    pub served: u32,
}

/// What a hash-based algorithm can take its key from.
pub trait Fetch: Sync {
    /// The client's address (`balance source`).
    fn src(&self) -> Option<IpAddr>;
    /// The request target as received (`balance uri`, `url_param`);
    /// `None` in `mode tcp`.
    fn uri(&self) -> Option<&str>;
    /// The first value of a request header (`balance hdr`), trimmed, up to
    /// the first comma as HAProxy's header lookup does.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The request method (`server ... redir` applies to GET and HEAD);
    /// `None` in `mode tcp`.
    fn method(&self) -> Option<&str> {
        None
    }
}

/// A connection with no HTTP request (`mode tcp`): only the source.
pub struct SourceOnly(pub IpAddr);

impl Fetch for SourceOnly {
    fn src(&self) -> Option<IpAddr> {
        Some(self.0)
    }
    fn uri(&self) -> Option<&str> {
        None
    }
    fn header(&self, _: &str) -> Option<&[u8]> {
        None
    }
}

/// One balancing algorithm with its state for one backend.
pub trait Algorithm: Send + std::fmt::Debug {
    /// Chooses a server index among `set` for the request `req`, avoiding
    /// `avoid` (the server that just failed, on a redispatch) unless it is
    /// the only choice. `None` when no candidate can be chosen (none, or
    /// all at their `maxconn` for algorithms that skip full servers).
    fn pick(&mut self, set: &ServerSet<'_>, req: &dyn Fetch, avoid: Option<usize>)
        -> Option<usize>;
}

/// The algorithm a backend's `balance` (and `hash-type`) asks for.
pub fn build(backend: &Backend) -> Box<dyn Algorithm> {
    match &backend.balance {
        Balance::RoundRobin => Box::new(RoundRobin::new(backend.servers.len())),
        Balance::StaticRr => Box::new(static_rr::StaticRr::default()),
        Balance::LeastConn => Box::new(leastconn::LeastConn::default()),
        Balance::First => Box::new(first::First),
        Balance::Random { draws } => {
            Box::new(random::Random::new(*draws, backend.hash_balance_factor))
        }
        Balance::Source | Balance::Uri { .. } | Balance::UrlParam(_) | Balance::Hdr { .. } => {
            Box::new(hashed::Hashed::new(
                hashed::KeySource::from_balance(&backend.balance),
                backend.hash_type,
                backend.hash_balance_factor,
            ))
        }
    }
}

/// Whether the backend's algorithm is dynamic in HAProxy's sense
/// (`BE_LB_PROP_DYN`): it follows weight changes as they happen, so a
/// `slowstart` ramp applies to it. The static map (`static-rr`,
/// map-based hashing) keeps the configured weights.
pub fn is_dynamic(backend: &Backend) -> bool {
    match backend.balance {
        Balance::StaticRr => false,
        Balance::Source | Balance::Uri { .. } | Balance::UrlParam(_) | Balance::Hdr { .. } => {
            backend.hash_type.consistent
        }
        Balance::RoundRobin | Balance::LeastConn | Balance::First | Balance::Random { .. } => true,
    }
}

/// Greatest common divisor of the weights (1 when all are 0).
pub fn weight_gcd(weights: impl Iterator<Item = u32>) -> u32 {
    let mut g = 0u32;
    for w in weights.filter(|w| *w > 0) {
        let (mut a, mut b) = (g, w);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        g = a;
    }
    g.max(1)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Candidates of the given weights, ids 1.., no connections.
    pub fn servers(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Candidate {
                index: i,
                id: i as u32 + 1,
                weight: w,
                eweight: w * 16,
                conns: 0,
                served: 0,
                full: false,
            })
            .collect()
    }

    pub struct Req {
        pub src: Option<IpAddr>,
        pub uri: Option<String>,
        pub headers: Vec<(String, String)>,
    }

    impl Req {
        pub fn none() -> Req {
            Req {
                src: None,
                uri: None,
                headers: Vec::new(),
            }
        }
        pub fn uri(u: &str) -> Req {
            Req {
                uri: Some(u.into()),
                ..Req::none()
            }
        }
        pub fn header(n: &str, v: &str) -> Req {
            Req {
                headers: vec![(n.into(), v.into())],
                ..Req::none()
            }
        }
    }

    impl Fetch for Req {
        fn src(&self) -> Option<IpAddr> {
            self.src
        }
        fn uri(&self) -> Option<&str> {
            self.uri.as_deref()
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        }
    }

    #[test]
    fn gcd() {
        assert_eq!(weight_gcd([4, 6, 0, 8].into_iter()), 2);
        assert_eq!(weight_gcd([0, 0].into_iter()), 1);
        assert_eq!(weight_gcd([3].into_iter()), 3);
    }
}
