//! HAProxy's consistent-hash ring (`lb_chash.c`): `hash-type consistent`
//! and `balance random`.
//!
//! Each server appears `eweight` times (its weight × 16 at full speed,
//! fewer during a `slowstart` ramp) on a 32-bit ring, at
//! `full_hash(id × 4096 + n)`; a key goes to the server whose point is
//! closest (the previous one on a tie). Placing points by server id, not
//! position, is what keeps most keys in place when a server comes or goes
//! — and why ids must match HAProxy's for the same choices.

use super::hash::full_hash;
use super::ServerSet;

/// HAProxy's `SRV_EWGHT_RANGE` (256 × `BE_WEIGHT_SCALE` 16): the id
/// stride between servers.
const EWGHT_RANGE: u32 = 256 * 16;

#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// (point, position in the set), sorted by point.
    points: Vec<(u32, usize)>,
}

impl Ring {
    pub fn build(set: &ServerSet<'_>) -> Ring {
        let mut points = Vec::new();
        for (pos, c) in set.servers.iter().enumerate() {
            let base = c.id.wrapping_mul(EWGHT_RANGE);
            for n in 0..c.eweight {
                points.push((full_hash(base.wrapping_add(n)), pos));
            }
        }
        // Stable: equal points keep insertion order, as HAProxy's tree
        // keeps duplicates in insertion order.
        points.sort_by_key(|p| p.0);
        Ring { points }
    }

    /// The position of the server closest to `hash`.
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        let n = self.points.len();
        if n == 0 {
            return None;
        }
        let next_i = self.points.partition_point(|p| p.0 < hash) % n;
        let prev_i = (next_i + n - 1) % n;
        let (next, prev) = (self.points[next_i], self.points[prev_i]);
        let dp = hash.wrapping_sub(prev.0);
        let dn = next.0.wrapping_sub(hash);
        Some(if dp <= dn { prev.1 } else { next.1 })
    }

    /// Like [`lookup`](Ring::lookup), but walks on around the ring past
    /// positions `skip` rejects (the server to avoid on a redispatch).
    pub fn lookup_avoiding(&self, hash: u32, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let first = self.lookup(hash)?;
        if !skip(first) {
            return Some(first);
        }
        let start = self.points.partition_point(|p| p.0 < hash);
        let n = self.points.len();
        (0..n)
            .map(|k| self.points[(start + k) % n].1)
            .find(|&pos| !skip(pos))
    }
}

/// `hash-balance-factor`: whether the server at position `pos` may take
/// one more connection (HAProxy's `chash_server_is_eligible`, the
/// "consistent hashing with bounded loads" of Mirrokni, Thorup and
/// Zadimoghaddam, adapted to weights). The backend's open connections plus
/// the one to come, times `factor`%, make the slots; each unit of weight
/// gets an equal whole number of them and the remainder is spread in
/// proportion to the weights, in declaration order, so that the slots add
/// up exactly; no server gets none. A key whose server is out of slots
/// goes on round the ring, which keeps most keys where they were.
pub fn within_bound(set: &ServerSet<'_>, pos: usize, factor: u32) -> bool {
    if factor == 0 {
        return true;
    }
    let weight = |c: &super::Candidate| u64::from(c.eweight);
    let total: u64 = set.servers.iter().map(weight).sum();
    let Some(c) = set.servers.get(pos).filter(|_| total > 0) else {
        return true;
    };
    let cumulative: u64 = set.servers[..pos].iter().map(weight).sum();
    let slots_total = ((u64::from(set.served) + 1) * u64::from(factor)).div_ceil(100);
    let (per_weight, remainder) = (slots_total / total, slots_total % total);
    let slots = weight(c) * per_weight + ((cumulative + weight(c)) * remainder) / total
        - (cumulative * remainder) / total;
    u64::from(c.served) < slots.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::servers;

    #[test]
    fn points_per_weight_and_removal_keeps_most_keys() {
        let s = servers(&[1, 2, 1]);
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let ring = Ring::build(&set);
        assert_eq!(ring.points.len(), 64);
        // Drop the last server: keys that were not on it stay where they were.
        let fewer = &s[..2];
        let ring2 = Ring::build(&ServerSet {
            servers: fewer,
            weight_gcd: 1,
            served: 0,
        });
        for k in 0..2000u32 {
            let h = full_hash(k);
            let before = ring.lookup(h).unwrap();
            if before != 2 {
                assert_eq!(ring2.lookup(h), Some(before));
            }
        }
        assert_eq!(Ring::default().lookup(7), None);
    }
}
