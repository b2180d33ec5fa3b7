//! HAProxy's static weighted map (`lb_map.c`), used by `static-rr` and by
//! map-based hashing (`hash-type map-based`, the default).
//!
//! The map has one slot per unit of weight (weights divided by their
//! greatest common divisor). Slots are filled by a weighted score in which
//! the first declared server wins ties, exactly as HAProxy fills it, so
//! that `hash % total_weight` lands on the same server as in HAProxy.

use super::ServerSet;

/// The map over a set of candidates: slot → position in the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Map {
    pub slots: Vec<usize>,
}

impl Map {
    pub fn build(set: &ServerSet<'_>) -> Map {
        let gcd = i64::from(set.weight_gcd.max(1));
        let eweights: Vec<i64> = set
            .servers
            .iter()
            .map(|c| (i64::from(c.weight) + gcd - 1) / gcd)
            .collect();
        let tot: i64 = eweights.iter().sum();
        let mut scores = vec![0i64; eweights.len()];
        let mut slots = Vec::with_capacity(usize::try_from(tot).unwrap_or(0));
        for _ in 0..tot {
            let mut best: Option<usize> = None;
            let mut max = 0i64;
            for (pos, &w) in eweights.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                if tot == 1 {
                    best = Some(pos);
                    break;
                }
                scores[pos] += w;
                // Integer division truncating toward zero, as C does.
                let v = (scores[pos] + tot) / tot;
                if best.is_none() || v > max {
                    max = v;
                    best = Some(pos);
                }
            }
            if let Some(b) = best {
                slots.push(b);
                scores[b] -= tot;
            }
        }
        Map { slots }
    }

    /// The position for a hash (HAProxy's `map_get_server_hash()`).
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let i = (hash as usize) % self.slots.len();
        self.slots.get(i).copied()
    }
}

/// Walks a map in turn, skipping full servers and `avoid` (HAProxy's
/// `map_get_server_rr()`): `static-rr`, and the round robin that hash
/// algorithms fall back to when the request has no key.
#[derive(Debug, Clone, Default)]
pub struct MapRr {
    next: usize,
}

impl MapRr {
    pub fn pick(&mut self, map: &Map, set: &ServerSet<'_>, avoid: Option<usize>) -> Option<usize> {
        let n = map.slots.len();
        if n == 0 {
            return None;
        }
        if self.next >= n {
            self.next = 0;
        }
        let start = self.next;
        let mut idx = start;
        let mut avoided = None;
        loop {
            let pos = map.slots[idx];
            idx = (idx + 1) % n;
            let c = &set.servers[pos];
            if !c.full {
                if Some(c.index) != avoid {
                    self.next = idx;
                    return Some(c.index);
                }
                avoided = Some((c.index, idx));
            }
            if idx == start {
                break;
            }
        }
        let (server, next) = avoided?;
        self.next = next;
        Some(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::servers;

    fn map_of(weights: &[u32]) -> Vec<usize> {
        let s = servers(weights);
        let gcd = crate::balance::weight_gcd(weights.iter().copied());
        Map::build(&ServerSet {
            servers: &s,
            weight_gcd: gcd,
            served: 0,
        })
        .slots
    }

    #[test]
    fn equal_weights_in_declaration_order() {
        assert_eq!(map_of(&[1, 1, 1]), vec![0, 1, 2]);
        // Common factors are divided out.
        assert_eq!(map_of(&[2, 2, 2]), vec![0, 1, 2]);
    }

    #[test]
    fn weighted_map_is_spread() {
        let m = map_of(&[3, 1]);
        assert_eq!(m.len(), 4);
        assert_eq!(m.iter().filter(|&&p| p == 0).count(), 3);
        assert_eq!(m[0], 0, "the first declared server comes first");
    }

    #[test]
    fn rr_skips_full_and_avoided() {
        let mut s = servers(&[1, 1, 1]);
        s[1].full = true;
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let map = Map::build(&set);
        let mut rr = MapRr::default();
        let seq: Vec<_> = (0..4).map(|_| rr.pick(&map, &set, None)).collect();
        assert_eq!(seq, vec![Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(rr.pick(&map, &set, Some(0)), Some(2));
    }
}
