//! `balance static-rr`: HAProxy's static weighted map walked in turn.
//!
//! Unlike `roundrobin` the order is fixed by the map (see `map`), which is
//! what HAProxy does; a server coming back is reinserted at once because
//! the map is rebuilt whenever the set of usable servers changes.

use super::map::{Map, MapRr};
use super::{Algorithm, Fetch, ServerSet};

#[derive(Debug, Default)]
pub struct StaticRr {
    built_for: Vec<(usize, u32)>,
    map: Map,
    rr: MapRr,
}

impl Algorithm for StaticRr {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        let sig: Vec<(usize, u32)> = set.servers.iter().map(|c| (c.index, c.weight)).collect();
        if sig != self.built_for {
            self.map = Map::build(set);
            self.built_for = sig;
        }
        self.rr.pick(&self.map, set, avoid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};

    #[test]
    fn weighted_turns() {
        let s = servers(&[3, 1]);
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let mut a = StaticRr::default();
        let seq: Vec<_> = (0..8)
            .map(|_| a.pick(&set, &Req::none(), None).unwrap())
            .collect();
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 6);
        assert_eq!(seq[..4], seq[4..]);
    }
}
