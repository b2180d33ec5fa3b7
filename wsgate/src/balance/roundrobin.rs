//! `balance roundrobin`: smooth weighted round robin.
//!
//! Each pick adds every usable server's weight to its running score, takes
//! the highest score and subtracts the total weight from it. Over any window
//! of `sum(weights)` picks each server is chosen `weight` times, spread out
//! rather than in bursts (weights 5,1,1 give a a b a c a a, not a a a a a b
//! c), which is the property HAProxy's roundrobin also has. With equal
//! weights it is plain rotation in declaration order: s1 s2 s3 s1 ...

use super::{Algorithm, Fetch, ServerSet};

/// Selection state for one backend.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    scores: Vec<i64>,
}

impl RoundRobin {
    pub fn new(servers: usize) -> RoundRobin {
        RoundRobin {
            scores: vec![0; servers],
        }
    }

    /// Picks among the servers for which `weight(i)` is non-zero.
    /// `None` when no server has weight.
    pub fn pick(&mut self, weight: impl Fn(usize) -> u32) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for i in 0..self.scores.len() {
            let w = i64::from(weight(i));
            if w == 0 {
                continue;
            }
            self.scores[i] += w;
            total += w;
            if best.is_none_or(|b| self.scores[i] > self.scores[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        self.scores[chosen] -= total;
        Some(chosen)
    }
}

impl Algorithm for RoundRobin {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        let need = set.servers.iter().map(|c| c.index + 1).max().unwrap_or(0);
        if self.scores.len() < need {
            self.scores.resize(need, 0);
        }
        let mut weights = vec![0u32; self.scores.len()];
        for c in set.servers.iter().filter(|c| !c.full) {
            weights[c.index] = c.eweight;
        }
        if let Some(avoid) = avoid {
            let chosen = RoundRobin::pick(self, |i| if i == avoid { 0 } else { weights[i] });
            if chosen.is_some() {
                return chosen;
            }
        }
        RoundRobin::pick(self, |i| weights[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(weights: &[u32], n: usize) -> Vec<usize> {
        let mut rr = RoundRobin::new(weights.len());
        (0..n).map(|_| rr.pick(|i| weights[i]).unwrap()).collect()
    }

    #[test]
    fn equal_weights_rotate_in_order() {
        assert_eq!(sequence(&[1, 1, 1], 6), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_are_honoured_and_spread() {
        let seq = sequence(&[5, 1, 1], 7);
        assert_eq!(seq.iter().filter(|&&s| s == 0).count(), 5);
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn zero_weight_and_no_server() {
        assert_eq!(sequence(&[0, 1], 3), vec![1, 1, 1]);
        let mut rr = RoundRobin::new(2);
        assert_eq!(rr.pick(|_| 0), None);
    }
}
