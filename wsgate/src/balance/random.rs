//! `balance random[(<draws>)]`: random keys on the consistent-hash ring,
//! keeping the least loaded of `draws` picks (default 2, the "power of two
//! choices"), as HAProxy does. Weights are honoured through the ring.

use super::chash::Ring;
use super::{Algorithm, Candidate, Fetch, ServerSet};

#[derive(Debug)]
pub struct Random {
    draws: u32,
    /// `hash-balance-factor` (0: off).
    factor: u32,
    built_for: Vec<(usize, u32, u32)>,
    ring: Ring,
    rng: fastrand::Rng,
}

impl Random {
    pub fn new(draws: u32, factor: u32) -> Random {
        Random {
            draws: draws.max(1),
            factor,
            built_for: Vec::new(),
            ring: Ring::default(),
            rng: fastrand::Rng::new(),
        }
    }

    #[cfg(test)]
    fn seeded(draws: u32, seed: u64) -> Random {
        Random {
            rng: fastrand::Rng::with_seed(seed),
            ..Random::new(draws, 0)
        }
    }
}

/// Load per unit of weight, compared exactly.
fn lighter(a: &Candidate, b: &Candidate) -> bool {
    u64::from(a.conns) * u64::from(b.eweight) < u64::from(b.conns) * u64::from(a.eweight)
}

impl Algorithm for Random {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        let sig: Vec<(usize, u32, u32)> = set
            .servers
            .iter()
            .map(|c| (c.index, c.id, c.eweight))
            .collect();
        if sig != self.built_for {
            self.ring = Ring::build(set);
            self.built_for = sig;
        }
        let all_blocked = set.servers.iter().all(|c| c.full || Some(c.index) == avoid);
        let skip = |pos: usize| {
            let c = &set.servers[pos];
            c.full || (!all_blocked && Some(c.index) == avoid)
        };
        let factor = self.factor;
        let bounded = |pos: usize| skip(pos) || !super::chash::within_bound(set, pos, factor);
        let mut best: Option<usize> = None;
        for _ in 0..self.draws {
            let key = self.rng.u32(..);
            let found = self.ring.lookup_avoiding(key, bounded);
            let Some(pos) = found.or_else(|| self.ring.lookup_avoiding(key, skip)) else {
                break;
            };
            best = match best {
                Some(b) if !lighter(&set.servers[pos], &set.servers[b]) => Some(b),
                _ => Some(pos),
            };
        }
        best.map(|pos| set.servers[pos].index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};

    #[test]
    fn spreads_and_prefers_the_less_loaded() {
        let mut s = servers(&[1, 1, 1]);
        let mut a = Random::seeded(2, 7);
        let mut counts = [0u32; 3];
        for _ in 0..300 {
            let set = ServerSet {
                servers: &s,
                weight_gcd: 1,
                served: 0,
            };
            let i = a.pick(&set, &Req::none(), None).unwrap();
            counts[i] += 1;
            s[i].conns += 1;
        }
        // Two choices keep open connections close to level.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 10, "{counts:?}");
        for c in &mut s {
            c.full = true;
        }
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(a.pick(&set, &Req::none(), None), None);
    }
}
