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
//! HAProxy keeps these sets in ebtrees; here each is a `BTreeSet` ordered
//! by key, then by queueing order (ties go to the earliest queued, as in an
//! ebtree), so the first server of a set is found in O(log n) and a server
//! at its `maxconn` is passed over without rescanning the others.
//!
//! The algorithm is told the usable servers at each pick; a server that
//! appears, disappears or changes effective weight since the last pick is
//! handled as HAProxy handles the server coming up, going down or getting
//! a new weight. A set with no server in common with the last one (the
//! backups taking over, or the active servers coming back) starts afresh,
//! as a group HAProxy had not used yet would.
//!
//! Cost: picks run under the backend's balancer lock, and every freed slot
//! at `maxconn` wakes all queued requests, so a pick allocates nothing (the
//! scratch buffers live here) and, when the usable set is unchanged, makes
//! one pass over the candidates (to note which are full) and O(log n) work
//! per server it takes out.

use std::collections::BTreeSet;

use super::{Algorithm, Fetch, ServerSet};

/// HAProxy's largest effective weight (`SRV_EWGHT_MAX`: 256 × 16).
const EWEIGHT_MAX: i64 = 4096;
/// Positions are keyed in units of this (`SRV_UWGHT_RANGE`).
const UWEIGHT_RANGE: i64 = 256;
/// Effective weight per unit of user weight (`BE_WEIGHT_SCALE`).
const WEIGHT_SCALE: i64 = 16;

/// A queued server in its set's tree: key, queueing order, index.
type Entry = (i64, u64, usize);

/// Which set a server was last queued in. `T0` and `T1` take turns as the
/// "init" and "next" sets (the group says which is which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Off,
    Current,
    T0,
    T1,
}

impl Set {
    /// Its tree in `RoundRobin::trees` (`Off` has none).
    fn tree(self) -> Option<usize> {
        match self {
            Set::Off => None,
            Set::Current => Some(0),
            Set::T0 => Some(1),
            Set::T1 => Some(2),
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    /// The set it was last queued in; it stays when the server is taken
    /// out for a pick, as HAProxy's `lb_tree` does, because where it came
    /// from decides how it is put back.
    set: Set,
    /// Whether it is in `set`'s tree now, as `(key, seq, index)`.
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
    /// The queued servers of `Current`, `T0` and `T1` (see `Set::tree`).
    trees: [BTreeSet<Entry>; 3],
    curr_pos: i64,
    curr_weight: i64,
    next_weight: i64,
    /// Whether `T0` is the init set (else `T1` is).
    init_is_t0: bool,
    seq: u64,
    /// Whether any pick happened (the first one builds the sets).
    started: bool,
    /// How many slots have an effective weight above 0: with every
    /// candidate's weight unchanged, an equal count means the usable set
    /// is the last pick's, so `follow` has nothing to do.
    usable: usize,
    /// Scratch kept between picks so a pick allocates nothing: whether
    /// each candidate is at its `maxconn` (by index; only candidates are
    /// read), the servers a pick passed over, and `follow`'s weights.
    full: Vec<bool>,
    passed_over: Vec<usize>,
    now: Vec<i64>,
}

impl RoundRobin {
    pub fn new(servers: usize) -> RoundRobin {
        RoundRobin {
            slots: vec![Slot::off(); servers],
            trees: Default::default(),
            curr_pos: 0,
            curr_weight: 0,
            next_weight: 0,
            init_is_t0: true,
            seq: 0,
            started: false,
            usable: 0,
            full: vec![false; servers],
            passed_over: Vec::new(),
            now: vec![0; servers],
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

    /// Takes server `i` out of its set's tree; `set` stays (see `Slot`).
    fn dequeue(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.queued {
            s.queued = false;
            if let Some(t) = s.set.tree() {
                self.trees[t].remove(&(s.key, s.seq, i));
            }
        }
    }

    /// Queues server `i` in `set` under `key`, after any equal key.
    fn insert(&mut self, i: usize, set: Set, key: i64) {
        self.dequeue(i);
        self.seq += 1;
        let s = &mut self.slots[i];
        (s.set, s.queued, s.key, s.seq) = (set, true, key, self.seq);
        if let Some(t) = set.tree() {
            self.trees[t].insert((key, self.seq, i));
        }
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
            self.dequeue(i);
            self.slots[i].set = Set::Off;
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
        let t = set.tree()?;
        self.trees[t].first().map(|&(_, _, i)| i)
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

    /// Starts afresh with the candidates of `set`.
    fn rebuild(&mut self, set: &ServerSet<'_>) {
        self.slots.iter_mut().for_each(|s| *s = Slot::off());
        self.trees.iter_mut().for_each(BTreeSet::clear);
        self.next_weight = set.servers.iter().map(|c| i64::from(c.eweight)).sum();
        (self.curr_pos, self.curr_weight) = (self.next_weight, self.next_weight);
        self.init_is_t0 = true;
        for c in set.servers {
            self.slots[c.index].eweight = i64::from(c.eweight);
            self.queue_by_weight(c.index, self.init_set());
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
        self.dequeue(i);
        let s = &mut self.slots[i];
        (s.set, s.eweight) = (Set::Off, 0);
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
        self.dequeue(i);
        let step = self.next_weight / w;
        let (curr_pos, s) = (self.curr_pos, &mut self.slots[i]);
        let before = s.npos;
        s.npos = (s.lpos + step).min(before);
        s.rweight = 0;
        if s.npos < curr_pos + 2 {
            s.npos = curr_pos + step;
        }
        s.eweight = w;
        self.queue(i);
    }

    /// Notes which candidates are full and applies what changed in the
    /// usable servers since the last pick: one pass when nothing did.
    fn follow(&mut self, set: &ServerSet<'_>) {
        let (mut same, mut usable) = (self.started, 0);
        for c in set.servers {
            if c.index >= self.slots.len() {
                self.slots.resize(c.index + 1, Slot::off());
                self.full.resize(c.index + 1, false);
            }
            self.full[c.index] = c.full;
            let w = i64::from(c.eweight);
            usable += usize::from(w > 0);
            same &= self.slots[c.index].eweight == w;
        }
        // Candidates are distinct servers: each kept its weight and as many
        // are usable as before, so no other server became usable.
        if same && usable > 0 && usable == self.usable {
            return;
        }
        let overlap = set.servers.iter().any(|c| self.slots[c.index].eweight > 0);
        if !self.started || !overlap {
            self.rebuild(set);
        } else {
            let mut now = std::mem::take(&mut self.now);
            now.clear();
            now.resize(self.slots.len(), 0);
            for c in set.servers {
                now[c.index] = i64::from(c.eweight);
            }
            for (i, &now) in now.iter().enumerate() {
                match (self.slots[i].eweight, now) {
                    (before, now) if before == now => {}
                    (0, now) => self.came_up(i, now),
                    (_, 0) => self.went_down(i),
                    (_, now) => self.reweighted(i, now),
                }
            }
            self.now = now;
        }
        self.usable = self.slots.iter().filter(|s| s.eweight > 0).count();
    }

    /// One pick among the servers that are not full (others are passed
    /// over, keeping their turn), avoiding `avoid` unless it is the only
    /// choice.
    fn next(&mut self, avoid: Option<usize>) -> Option<usize> {
        let mut switched = false;
        let mut avoided = None;
        let mut passed_over = std::mem::take(&mut self.passed_over);
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
            self.dequeue(i);
            self.curr_pos += 1;
            if !self.full[i] {
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
        passed_over.clear();
        self.passed_over = passed_over;
        chosen
    }
}

impl Algorithm for RoundRobin {
    fn pick(&mut self, set: &ServerSet<'_>, _: &dyn Fetch, avoid: Option<usize>) -> Option<usize> {
        if set.servers.is_empty() {
            return None;
        }
        self.follow(set);
        self.next(avoid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{servers, Req};
    use crate::balance::Candidate;

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

    /// 1,000 servers of weights 1..=7 (some mid-`slowstart`, so effective
    /// weights not multiples of 16), a few dozen at `maxconn` changing
    /// pick to pick (nine in ten for picks 3,600 to 3,699: long runs passed
    /// over), one pick in eleven avoiding the last server, and the
    /// set changing: 100 servers down at pick 1,000, 43 reweighted at
    /// 2,000, the 100 back at 3,000. Returns the 4,000 picks.
    fn run(rr: &mut RoundRobin, mut each: impl FnMut(&RoundRobin)) -> Vec<usize> {
        let mut all = servers(
            &(0..1000)
                .map(|i| (i * 37 % 7) as u32 + 1)
                .collect::<Vec<_>>(),
        );
        for c in all.iter_mut().filter(|c| c.index % 9 == 4) {
            c.eweight -= (c.index % 5) as u32;
        }
        let mut picks = Vec::new();
        for p in 0..4000usize {
            if p == 2000 {
                for c in all.iter_mut().skip(5).step_by(7).take(43) {
                    c.eweight = c.eweight / 2 + 3;
                }
            }
            for c in all.iter_mut() {
                c.full = if (3600..3700).contains(&p) {
                    (c.index + p) % 10 != 0
                } else {
                    (c.index + p / 3) % 50 == 0
                };
            }
            let usable: Vec<Candidate> = all
                .iter()
                .filter(|c| !(1000..3000).contains(&p) || c.index % 10 != 0)
                .copied()
                .collect();
            let set = ServerSet {
                servers: &usable,
                weight_gcd: 1,
                served: 0,
            };
            let avoid = (p % 11 == 10).then(|| picks.last().copied()).flatten();
            picks.push(rr.pick(&set, &Req::none(), avoid).unwrap_or(usize::MAX));
            each(rr);
        }
        picks
    }

    /// In a steady run every server gets its effective weight's share of
    /// a window exactly (10 servers and 1,000: what `callgrind` measures).
    fn each_server_gets_its_weight(n: usize) {
        let all = servers(&(0..n).map(|i| (i % 7) as u32 + 1).collect::<Vec<_>>());
        let set = ServerSet {
            servers: &all,
            weight_gcd: 1,
            served: 0,
        };
        let window: u32 = all.iter().map(|c| c.eweight).sum();
        let want: Vec<u32> = all.iter().map(|c| c.eweight).collect();
        let mut rr = RoundRobin::new(n);
        for _ in 0..2 {
            let mut count = vec![0u32; n];
            for _ in 0..window {
                count[rr.pick(&set, &Req::none(), None).unwrap()] += 1;
            }
            assert_eq!(count, want, "{n} servers");
        }
    }

    #[test]
    fn ten_servers_get_their_weights() {
        each_server_gets_its_weight(10);
    }

    #[test]
    fn a_thousand_servers_get_their_weights() {
        each_server_gets_its_weight(1000);
    }

    /// The trees hold exactly the queued slots, and each tree's first is
    /// what a linear scan (the implementation before the trees) finds.
    fn check_trees(rr: &RoundRobin) {
        for set in [Set::Current, Set::T0, Set::T1] {
            let queued =
                || (0..rr.slots.len()).filter(|&i| rr.slots[i].queued && rr.slots[i].set == set);
            let linear = queued().min_by_key(|&i| (rr.slots[i].key, rr.slots[i].seq));
            assert_eq!(rr.first(set), linear, "{set:?}");
            let tree = set.tree().map_or(0, |t| rr.trees[t].len());
            assert_eq!(tree, queued().count(), "{set:?}");
        }
    }

    /// The picks are the linear implementation's, recorded from it (commit
    /// 6b9827d) as FNV-1a digests of each 500 picks: 1,000 servers, weights
    /// 1..=7, full servers, avoided ones and set changes in every stretch.
    #[test]
    fn many_servers_pick_as_the_linear_implementation_did() {
        let mut rr = RoundRobin::new(1000);
        let picks = run(&mut rr, check_trees);
        assert_eq!(
            &picks[..12],
            &[3, 10, 17, 24, 38, 45, 52, 59, 66, 73, 80, 87],
            "first picks"
        );
        assert!(!picks.contains(&usize::MAX), "a pick found no server");
        let recorded: [u64; 8] = [
            0x33df_0935_239a_cf31,
            0x4af4_f34b_57d8_6fff,
            0x5c90_6d59_cdd3_42dd,
            0xa9c4_f8a7_f425_efe1,
            0xca20_624b_90f5_8803,
            0x23a4_efcd_d900_6b3c,
            0xc5da_f601_6b85_a087,
            0x48d9_7f2a_d912_91b0,
        ];
        for (k, (chunk, want)) in picks.chunks(500).zip(recorded).enumerate() {
            assert_eq!(fnv(chunk), want, "picks {} to {}", k * 500, k * 500 + 499);
        }
    }

    fn fnv(picks: &[usize]) -> u64 {
        picks.iter().fold(0xcbf2_9ce4_8422_2325, |h, &i| {
            (h ^ i as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }
}
