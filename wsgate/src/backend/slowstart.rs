//! `slowstart <time>`: a server that comes back takes load gradually.
//!
//! Stage: started by the health checks (`health`) when they bring a server
//! back UP, and by the runtime API when it leaves maintenance; read by the
//! backend (`BackendRuntime::candidates`) each time it lists the servers
//! the balancer may choose, and by the queue while it waits.
//!
//! HAProxy's arithmetic (`server_recalc_eweight`, `srv_dynamic_maxconn`):
//! the period is kept in whole seconds (rounded up at parse time), and the
//! time since the server came back counts in whole seconds too, so the ramp
//! moves in steps of one second. The effective weight is the configured
//! weight times `w` sixteenths, `w = (16 * elapsed + period) / period`:
//! 1/16 at once, full when the period is over. Only the dynamic algorithms
//! see it (roundrobin, leastconn, first, random, consistent hashing); the
//! static ones (`static-rr`, map-based hashing) keep their weights, as in
//! HAProxy. `maxconn` ramps for every algorithm, from 1 to full:
//! `max(1, maxconn * (100 * elapsed / period) / 100)`. It never applies at
//! start-up: a server that was never seen failing is at full speed.

use std::time::Duration;

use tokio::time::Instant;

/// HAProxy's `BE_WEIGHT_SCALE`: effective weights are user weights times
/// this at full speed, which leaves 16 steps for a ramp even at weight 1.
pub const WEIGHT_SCALE: u32 = 16;

/// A ramp under way: since when, over how many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    pub since: Instant,
    pub period_s: u32,
}

impl Ramp {
    /// Whole seconds since the server came back, or `None` once the period
    /// is over (the server is at full speed).
    fn elapsed_s(&self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.since).as_secs();
        (self.period_s > 0 && elapsed < u64::from(self.period_s)).then_some(elapsed)
    }

    /// The weight step out of [`WEIGHT_SCALE`] at `now` (16: full speed).
    pub fn step(&self, now: Instant) -> u32 {
        match self.elapsed_s(now) {
            Some(e) => {
                let p = u64::from(self.period_s);
                let w = (u64::from(WEIGHT_SCALE) * e + p) / p;
                u32::try_from(w).unwrap_or(WEIGHT_SCALE).min(WEIGHT_SCALE)
            }
            None => WEIGHT_SCALE,
        }
    }

    /// The connection limit in force at `now` for a configured `maxconn`
    /// (0, no limit, stays 0).
    pub fn maxconn(&self, maxconn: u32, now: Instant) -> u32 {
        match self.elapsed_s(now) {
            Some(e) if maxconn > 0 => {
                let ratio = 100 * e / u64::from(self.period_s);
                let max = u64::from(maxconn) * ratio / 100;
                u32::try_from(max.max(1)).unwrap_or(maxconn)
            }
            _ => maxconn,
        }
    }

    /// Whether the ramp is over at `now`.
    pub fn done(&self, now: Instant) -> bool {
        self.elapsed_s(now).is_none()
    }

    /// When the next step is due (for waiters that a higher limit may let
    /// through): the next whole second since the start.
    pub fn next_step(&self, now: Instant) -> Option<Instant> {
        let e = self.elapsed_s(now)?;
        Some(self.since + Duration::from_secs(e + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(r: &Ramp, ms: u64) -> Instant {
        r.since + Duration::from_millis(ms)
    }

    #[test]
    fn weight_steps_follow_haproxy() {
        let r = Ramp {
            since: Instant::now(),
            period_s: 3,
        };
        // (16 * e + 3) / 3 for e = 0, 1, 2; full from 3 s.
        let steps: Vec<u32> = [0, 999, 1000, 2500, 2999, 3000, 60_000]
            .iter()
            .map(|&ms| r.step(at(&r, ms)))
            .collect();
        assert_eq!(steps, vec![1, 1, 6, 11, 11, 16, 16]);
        assert!(!r.done(at(&r, 2999)));
        assert!(r.done(at(&r, 3000)));
        assert_eq!(r.next_step(at(&r, 1200)), Some(at(&r, 2000)));
        assert_eq!(r.next_step(at(&r, 3000)), None);
    }

    #[test]
    fn maxconn_grows_from_one() {
        let r = Ramp {
            since: Instant::now(),
            period_s: 10,
        };
        assert_eq!(r.maxconn(50, at(&r, 0)), 1);
        assert_eq!(r.maxconn(50, at(&r, 1000)), 5);
        assert_eq!(r.maxconn(50, at(&r, 4500)), 20);
        assert_eq!(r.maxconn(50, at(&r, 10_000)), 50);
        assert_eq!(r.maxconn(3, at(&r, 2000)), 1);
        assert_eq!(r.maxconn(0, at(&r, 0)), 0);
    }

    #[test]
    fn a_long_period_starts_at_one_sixteenth() {
        let r = Ramp {
            since: Instant::now(),
            period_s: 100,
        };
        assert_eq!(r.step(at(&r, 0)), 1);
        assert_eq!(r.step(at(&r, 50_000)), 9);
        assert_eq!(r.step(at(&r, 99_000)), 16);
    }
}
