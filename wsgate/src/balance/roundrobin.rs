//! `balance roundrobin`: HAProxy's "fast weighted round robin", so the
//! order of servers is HAProxy 2.6's, request by request (weights 3:1 give
//! `a a a b`, 5:3:2 give `a b a c a b a b a c`; checked side by side in
//! `tests/balance_rr.rs`), and a weight changed at run time moves a server
//! the way HAProxy moves it.
//!
//! The model: each usable server has a next position `npos` on a line of
//! `curr_weight` slots (the sum of effective weights, ×16 as HAProxy
//! scales them); a pick takes the server with the lowest position that is
//! due (`npos <= curr_pos`), advances it by `total / weight` (carrying the
//! remainder in `rweight`), and moves `curr_pos` on. Servers new to a
//! window wait in an "init" set sorted by weight (heaviest first), which is
//! how a window starts; those whose next position falls past the window
//! wait in a "next" set that becomes the init set when the window ends.
//! HAProxy keeps these sets in ebtrees; here a few servers are scanned
//! linearly, ties going to the earliest queued, as in an ebtree.
//!
//! The algorithm is told the usable servers at each pick; a server that
//! appears, disappears or changes effective weight since the last pick is
//! handled as HAProxy handles the server coming up, going down or getting
//! a new weight. A set with no server in common with the last one (the
//! backups taking over, or the active servers coming back) starts afresh,
//! as a group HAProxy had not used yet would.

use super::{Algorithm, Fetch, ServerSet};

/// HAProxy's largest effective weight (`SRV_EWGHT_MAX`: 256 × 16).
const EWEIGHT_MAX: i64 = 4096;
/// Positions are keyed in units of this (`SRV_UWGHT_RANGE`).
const UWEIGHT_RANGE: i64 = 256;
/// Effective weight per unit of user weight (`BE_WEIGHT_SCALE`).
const WEIGHT_SCALE: i64 = 16;

/// Which set a server was last queued in. `T0` and `T1` take turns as the
/// "init" and "next" sets (the group says which is which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Off,
    Current,
    T0,
    T1,
}

#[derive(Debug, Clone)]
struct Slot {
    /// The set it was last queued in; it stays when the server is taken
    /// out for a pick, as HAProxy's `lb_tree` does, because where it came
    /// from decides how it is put back.
    set: Set,
    /// Whether it is in `set` now.
    queued: bool,
    key: i64,
    /// Queueing order, so equal keys come out oldest first.
    seq: u64,
    npos: i64,
    lpos: i64,
    rweight: i64,
    /// Effective weight now (0: not usable).
    eweight: i64,
}

impl Slot {
    fn off() -> Slot {
        Slot {
            set: Set::Off,
            queued: false,
            key: 0,
            seq: 0,
            npos: 0,
            lpos: 0,
            rweight: 0,
            eweight: 0,
        }
    }
}

/// Selection state for one backend.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    slots: Vec<Slot>,
    curr_pos: i64,
    curr_weight: i64,
    next_weight: i64,
    /// Whether `T0` is the init set (else `T1` is).
    init_is_t0: bool,
    seq: u64,
    /// Whether any pick happened (the first one builds the sets).
    started: bool,
}

impl RoundRobin {
    pub fn new(servers: usize) -> RoundRobin {
        RoundRobin {
            slots: vec![Slot::off(); servers],
            curr_pos: 0,
            curr_weight: 0,
            next_weight: 0,
            init_is_t0: true,
            seq: 0,
            started: false,
        }
    }

    fn init_set(&self) -> Set {
        if self.init_is_t0 {
            Set::T0
        } else {
            Set::T1
        }
    }

    fn next_set(&self) -> Set {
        if self.init_is_t0 {
            Set::T1
        } else {
            Set::T0
        }
    }

    /// Queues server `i` in `set` under `key`, after any equal key.
    fn insert(&mut self, i: usize, set: Set, key: i64) {
        self.seq += 1;
        let s = &mut self.slots[i];
        (s.set, s.queued, s.key, s.seq) = (set, true, key, self.seq);
    }

    /// Into the init (or next) set: heaviest first.
    fn queue_by_weight(&mut self, i: usize, set: Set) {
        let key = EWEIGHT_MAX - self.slots[i].eweight;
        self.insert(i, set, key);
    }

    /// Back into the current window at its next position, or into the
    /// next set when that position is past this window or the next one.
    fn queue(&mut self, i: usize) {
        let s = &self.slots[i];
        if s.eweight <= 0 {
            let s = &mut self.slots[i];
            (s.set, s.queued) = (Set::Off, false);
        } else if s.npos >= 2 * self.curr_weight || s.npos >= self.curr_weight + self.next_weight {
            self.slots[i].npos -= self.curr_weight;
            self.queue_by_weight(i, self.next_set());
        } else {
            // Lighter servers first among equal positions.
            let key = UWEIGHT_RANGE * s.npos + (EWEIGHT_MAX + s.rweight - s.eweight) / WEIGHT_SCALE;
            self.insert(i, Set::Current, key);
        }
    }

    /// The first server queued in `set`.
    fn first(&self, set: Set) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].queued && self.slots[i].set == set)
            .min_by_key(|&i| (self.slots[i].key, self.slots[i].seq))
    }

    /// Position bookkeeping when a server leaves the set it is in.
    fn prepare(&mut self, i: usize) {
        let (init, next) = (self.init_set(), self.next_set());
        let s = &mut self.slots[i];
        if s.set == init {
            (s.npos, s.rweight) = (0, 0);
        } else if s.set == next {
            s.npos += self.curr_weight;
        } else if s.set == Set::Off {
            s.npos = self.curr_pos;
        }
    }

    /// The server due now: the first of the window if its turn has come,
    /// else one from the init set, else the first of the window anyway.
    fn due(&mut self) -> Option<usize> {
        let current = self.first(Set::Current);
        if let Some(i) = current {
            if self.slots[i].npos <= self.curr_pos {
                return Some(i);
            }
        }
        if let Some(i) = self.first(self.init_set()) {
            (self.slots[i].npos, self.slots[i].rweight) = (0, 0);
            return Some(i);
        }
        current
    }

    /// A new window: the next set becomes the init set.
    fn switch_sets(&mut self) {
        self.init_is_t0 = !self.init_is_t0;
        self.curr_weight = self.next_weight;
        self.curr_pos = self.curr_weight;
    }

    /// Moves server `i`'s next position on by its share of the window.
    fn advance(&mut self, i: usize) {
        let (curr_pos, total) = (self.curr_pos, self.next_weight);
        let s = &mut self.slots[i];
        if s.eweight == 0 {
            return;
        }
        if s.npos == 0 {
            s.npos = curr_pos;
        }
        s.lpos = s.npos;
        s.npos += total / s.eweight;
        s.rweight += total % s.eweight;
        if s.rweight >= s.eweight {
            s.rweight -= s.eweight;
            s.npos += 1;
        }
    }

    /// Starts afresh with `weights` (index, effective weight).
    fn rebuild(&mut self, weights: &[(usize, i64)]) {
        let need = weights.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        self.slots = vec![Slot::off(); self.slots.len().max(need)];
        self.next_weight = weights.iter().map(|(_, w)| w).sum();
        (self.curr_pos, self.curr_weight) = (self.next_weight, self.next_weight);
        self.init_is_t0 = true;
        for &(i, w) in weights {
            self.slots[i].eweight = w;
            self.queue_by_weight(i, self.init_set());
        }
        self.started = true;
    }

    /// Server `i` became usable with effective weight `w`.
    fn came_up(&mut self, i: usize, w: i64) {
        self.next_weight += w;
        self.prepare(i);
        self.slots[i].npos =
            self.curr_pos + (self.next_weight + self.curr_weight - self.curr_pos) / w;
        self.slots[i].eweight = w;
        self.queue(i);
    }

    /// Server `i` is no longer usable.
    fn went_down(&mut self, i: usize) {
        self.next_weight -= self.slots[i].eweight;
        let s = &mut self.slots[i];
        (s.set, s.queued, s.eweight) = (Set::Off, false, 0);
    }

    /// Server `i`, still usable, has effective weight `w` now: it keeps
    /// its place in the window unless the new weight brings it closer.
    fn reweighted(&mut self, i: usize, w: i64) {
        self.next_weight += w - self.slots[i].eweight;
        if self.slots[i].set == self.init_set() {
            self.slots[i].eweight = w;
            self.queue_by_weight(i, self.init_set());
            return;
        }
        self.prepare(i);
        let step = self.next_weight / w;
        let (curr_pos, s) = (self.curr_pos, &mut self.slots[i]);
        let before = s.npos;
        s.npos = (s.lpos + step).min(before);
        s.rweight = 0;
        if s.npos < curr_pos + 2 {
            s.npos = curr_pos + step;
        }
        s.eweight = w;
        s.queued = false;
        self.queue(i);
    }

    /// Applies what changed in the usable servers since the last pick.
    fn follow(&mut self, set: &ServerSet<'_>) {
        let weights: Vec<(usize, i64)> = set
            .servers
            .iter()
            .map(|c| (c.index, i64::from(c.eweight)))
            .collect();
        let need = weights.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        if self.slots.len() < need {
            self.slots.resize(need, Slot::off());
        }
        let overlap = weights.iter().any(|&(i, _)| self.slots[i].eweight > 0);
        if !self.started || !overlap {
            self.rebuild(&weights);
            return;
        }
        let mut now_of = vec![0; self.slots.len()];
        for &(i, w) in &weights {
            now_of[i] = w;
        }
        for (i, now) in now_of.into_iter().enumerate() {
            match (self.slots[i].eweight, now) {
                (before, now) if before == now => {}
                (0, now) => self.came_up(i, now),
                (_, 0) => self.went_down(i),
                (_, now) => self.reweighted(i, now),
            }
        }
    }

    /// One pick among the servers `full(i)` says may take a connection
    /// (others are passed over, keeping their turn), avoiding `avoid`
    /// unless it is the only choice.
    fn next(&mut self, full: impl Fn(usize) -> bool, avoid: Option<usize>) -> Option<usize> {
        let mut switched = false;
        let mut avoided = None;
        let mut passed_over = Vec::new();
        let chosen = 'pick: loop {
            if self.curr_weight == 0 {
                (self.curr_pos, self.curr_weight) = (self.next_weight, self.next_weight);
            }
            let i = loop {
                if let Some(i) = self.due() {
                    break i;
                }
                if switched {
                    break 'pick avoided;
                }
                switched = true;
                self.switch_sets();
            };
            self.advance(i);
            self.slots[i].queued = false;
            self.curr_pos += 1;
            if !full(i) {
                if Some(i) != avoid || avoided.is_some() {
                    break Some(i);
                }
                avoided = Some(i);
            }
            passed_over.push(i);
        };
        if let Some(i) = chosen {
            self.queue(i);
        }
        // The last passed over goes back first, as HAProxy's list does.
        for &i in passed_over.iter().rev().filter(|&&i| Some(i) != chosen) {
            if switched {
                self.queue_by_weight(i, self.init_set());
            } else {
                self.queue(i);
            }
        }
        chosen
    }
}

impl Algorithm for RoundRobin {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        if set.servers.is_empty() {
            return None;
        }
        self.follow(set);
        let mut full = vec![false; self.slots.len()];
        for c in set.servers.iter().filter(|c| c.full) {
            full[c.index] = true;
        }
        self.next(|i| full[i], avoid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};

    fn names(seq: &[usize]) -> String {
        seq.iter().map(|&i| char::from(b'a' + i as u8)).collect()
    }

    fn sequence(rr: &mut RoundRobin, weights: &[u32], n: usize) -> String {
        let s = servers(weights);
        let usable: Vec<_> = s.into_iter().filter(|c| c.weight > 0).collect();
        let set = ServerSet {
            servers: &usable,
            weight_gcd: 1,
            served: 0,
        };
        let seq: Vec<usize> = (0..n)
            .map(|_| rr.pick(&set, &Req::none(), None).unwrap())
            .collect();
        names(&seq)
    }

    /// The sequences HAProxy 2.6 gives (run side by side).
    #[test]
    fn orders_are_haproxys() {
        let mut rr = RoundRobin::new(3);
        assert_eq!(sequence(&mut rr, &[1, 1, 1], 6), "abcabc");
        let mut rr = RoundRobin::new(2);
        assert_eq!(sequence(&mut rr, &[3, 1], 12), "aaabaaabaaab");
        let mut rr = RoundRobin::new(3);
        assert_eq!(sequence(&mut rr, &[5, 3, 2], 20), "abacababacabacababac");
        let mut rr = RoundRobin::new(2);
        assert_eq!(sequence(&mut rr, &[0, 1], 3), "bbb");
    }

    #[test]
    fn full_and_avoided_servers_keep_their_turn() {
        let mut s = servers(&[1, 1, 1]);
        s[0].full = true;
        let set = ServerSet {
            servers: &s,
            weight_gcd: 1,
            served: 0,
        };
        let mut rr = RoundRobin::new(3);
        let seq: Vec<usize> = (0..4)
            .map(|_| rr.pick(&set, &Req::none(), None).unwrap())
            .collect();
        assert!(!seq.contains(&0), "{seq:?}");
        let mut rr = RoundRobin::new(3);
        let all = servers(&[1, 1, 1]);
        let set = ServerSet {
            servers: &all,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(rr.pick(&set, &Req::none(), Some(0)), Some(1));
        let only = &all[..1];
        let set = ServerSet {
            servers: only,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(
            rr.pick(&set, &Req::none(), Some(0)),
            Some(0),
            "the only choice"
        );
        let mut every = servers(&[1, 1]);
        every.iter_mut().for_each(|c| c.full = true);
        let set = ServerSet {
            servers: &every,
            weight_gcd: 1,
            served: 0,
        };
        assert_eq!(rr.pick(&set, &Req::none(), None), None);
        assert_eq!(
            RoundRobin::new(1).pick(
                &ServerSet {
                    servers: &[],
                    weight_gcd: 1,
                    served: 0
                },
                &Req::none(),
                None
            ),
            None
        );
    }

    #[test]
    fn a_server_going_down_and_up_rejoins() {
        let mut rr = RoundRobin::new(3);
        assert_eq!(sequence(&mut rr, &[1, 1, 1], 3), "abc");
        assert_eq!(sequence(&mut rr, &[1, 0, 1], 4), "acac");
        let back = sequence(&mut rr, &[1, 1, 1], 6);
        assert_eq!(back.matches('b').count(), 2, "{back}");
    }
}
