//! Message rate limits (`websocket rate-limit`): a token bucket per
//! connection and direction.
//!
//! No timer and no allocation: the bucket is refilled lazily, from the time
//! elapsed since the last refill, when a message starts. Tokens are kept in
//! integer units where one message costs `period` microseconds' worth and
//! each microsecond refills `messages` units, so no rate loses precision.

use std::time::{Duration, Instant};

pub use crate::config::model::{RateAction, RateLimit};

/// The bucket of one direction of one connection.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Units in the bucket (a message costs `cost`).
    tokens: u64,
    cost: u64,
    capacity: u64,
    refill_per_us: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: a new connection may send its burst at once.
    pub fn new(limit: &RateLimit, now: Instant) -> TokenBucket {
        // At least 1 µs, so that a message always costs something.
        let cost = u64::try_from(limit.period.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let capacity = cost.saturating_mul(u64::from(limit.burst.max(1)));
        TokenBucket {
            tokens: capacity,
            cost,
            capacity,
            refill_per_us: u64::from(limit.messages.max(1)),
            last: now,
        }
    }

    /// Takes one message's token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        // Refilled at every message, not only when short: time spent full
        // must not be claimed later.
        let elapsed = now.saturating_duration_since(self.last).as_micros();
        let refill = elapsed.saturating_mul(u128::from(self.refill_per_us));
        let room = u128::from(self.capacity - self.tokens);
        if refill >= room {
            self.tokens = self.capacity;
            self.last = now;
        } else {
            // < room ≤ capacity: fits. The clock moves by whole
            // microseconds only, so no fraction is lost between messages.
            self.tokens += refill as u64;
            self.last += Duration::from_micros(elapsed as u64);
        }
        if self.tokens >= self.cost {
            self.tokens -= self.cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(messages: u32, period_ms: u64, burst: u32) -> RateLimit {
        RateLimit {
            messages,
            period: Duration::from_millis(period_ms),
            burst,
            action: RateAction::Close,
        }
    }

    #[test]
    fn burst_then_the_long_run_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit(10, 1000, 3), t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        // 10 per second: one token every 100 ms.
        assert!(!b.take(t0 + Duration::from_millis(99)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(150)));
        // A long pause refills to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn taking_while_tokens_remain_does_not_overfill_later() {
        // A bucket that was full for a long time and then emptied cannot
        // claim that time again.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit(1, 1000, 2), t0);
        let t1 = t0 + Duration::from_secs(100);
        assert!(b.take(t1) && b.take(t1));
        assert!(!b.take(t1 + Duration::from_millis(10)));
        assert!(b.take(t1 + Duration::from_millis(1010)));
    }

    #[test]
    fn slow_rates_keep_their_precision() {
        let t0 = Instant::now();
        // 3 per minute: one every 20 s.
        let mut b = TokenBucket::new(&limit(3, 60_000, 1), t0);
        assert!(b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(19_999)));
        assert!(b.take(t0 + Duration::from_millis(20_000)));
    }
}
