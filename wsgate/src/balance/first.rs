//! `balance first`: the server with the lowest id that has a free
//! `maxconn` slot, so the fewest servers carry the load (the others can be
//! powered down). Weights are ignored, as in HAProxy.

use super::{Algorithm, Fetch, ServerSet};

#[derive(Debug)]
pub struct First;

impl Algorithm for First {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        let by_id = |skip: bool| {
            set.servers
                .iter()
                .filter(|c| !(c.full || (skip && Some(c.index) == avoid)))
                .min_by_key(|c| c.id)
                .map(|c| c.index)
        };
        by_id(true).or_else(|| by_id(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};

    #[test]
    fn lowest_id_with_a_free_slot() {
        let mut s = servers(&[1, 1, 1]);
        s[0].id = 10;
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(First.pick(&set, &Req::none(), None), Some(1));
        s[1].full = true;
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(First.pick(&set, &Req::none(), None), Some(2));
        assert_eq!(First.pick(&set, &Req::none(), Some(2)), Some(0));
    }
}
