//! `balance leastconn`: the server with the fewest open connections per
//! unit of weight; round robin among equals.
//!
//! Open connections include WebSocket tunnels (the session holds its slot
//! until the tunnel ends) and requests queued for the server, as HAProxy
//! counts them. So after a scale-out, or when a server comes back, new
//! WebSockets go to the new server until it is level with the others —
//! the property long-lived connections need and round robin lacks.

use std::cmp::Ordering;

use super::{Algorithm, Candidate, Fetch, ServerSet};

#[derive(Debug, Default)]
pub struct LeastConn {
    /// Index of the last server chosen, for round robin among equals.
    last: Option<usize>,
}

/// Compares the load of two servers: (conns + 1) / weight, exactly, by
/// cross-multiplying (HAProxy's key also counts the connection to come).
fn load_cmp(a: &Candidate, b: &Candidate) -> Ordering {
    let la = u64::from(a.conns + 1) * u64::from(b.eweight);
    let lb = u64::from(b.conns + 1) * u64::from(a.eweight);
    la.cmp(&lb)
}

impl Algorithm for LeastConn {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        let usable = |c: &&Candidate| !c.full && c.eweight > 0;
        let choose = |skip_avoid: bool, last: Option<usize>| -> Option<usize> {
            let pool: Vec<&Candidate> = set
                .servers
                .iter()
                .filter(usable)
                .filter(|c| !(skip_avoid && Some(c.index) == avoid))
                .collect();
            let best = pool.iter().copied().min_by(|a, b| load_cmp(a, b))?;
            let ties: Vec<usize> = pool
                .iter()
                .filter(|c| load_cmp(c, best) == Ordering::Equal)
                .map(|c| c.index)
                .collect();
            // Next tied server after the last one chosen, wrapping round.
            Some(match last {
                Some(l) => ties.iter().copied().find(|&i| i > l).unwrap_or(ties[0]),
                None => ties[0],
            })
        };
        let chosen = choose(true, self.last).or_else(|| choose(false, self.last))?;
        self.last = Some(chosen);
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};

    #[test]
    fn fewest_connections_then_round_robin() {
        let mut s = servers(&[1, 1, 1]);
        let mut a = LeastConn::default();
        let mut picks = Vec::new();
        for _ in 0..6 {
            let set = ServerSet {
                servers: &s,
                weight_gcd: 1,
                served: 0,
            };
            let i = a.pick(&set, &Req::none(), None).unwrap();
            s[i].conns += 1;
            picks.push(i);
        }
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn new_server_gets_connections_until_level() {
        // s1 and s2 hold 5 WebSockets each; s3 just came up.
        let mut s = servers(&[1, 1, 1]);
        s[0].conns = 5;
        s[1].conns = 5;
        let mut a = LeastConn::default();
        let mut picks = Vec::new();
        for _ in 0..7 {
            let set = ServerSet {
                servers: &s,
                weight_gcd: 1,
                served: 0,
            };
            let i = a.pick(&set, &Req::none(), None).unwrap();
            s[i].conns += 1;
            picks.push(i);
        }
        assert_eq!(picks[..5], [2, 2, 2, 2, 2]);
        // Level at 5 each after five picks; then round robin among equals.
        assert_eq!(picks[5..], [0, 1]);
        assert_eq!(s.iter().map(|c| c.conns).collect::<Vec<_>>(), vec![6, 6, 5]);
    }

    #[test]
    fn weights_and_full_servers() {
        let mut s = servers(&[2, 1]);
        s[0].conns = 2; // load 3/2
        s[1].conns = 1; // load 2/1
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let mut a = LeastConn::default();
        assert_eq!(a.pick(&set, &Req::none(), None), Some(0));
        assert_eq!(a.pick(&set, &Req::none(), Some(0)), Some(1));
        s[0].full = true;
        s[1].full = true;
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(a.pick(&set, &Req::none(), None), None);
    }
}
