//! Message rate limits (`websocket rate-limit`): a token bucket per
//! connection and direction.
//!
//! No timer and no allocation. The bucket is kept in virtual time (the
//! "generic cell rate algorithm", equivalent to a token bucket): one
//! instant, the theoretical arrival time of the next message, which each
//! message allowed moves one interval later. A message passes when that
//! time is at most `burst − 1` intervals ahead of now. Per message this is
//! a comparison and an addition of instants, where refilling tokens from
//! the elapsed time took a subtraction of instants and a 128-bit
//! multiplication (measured with bench/callgrind: docs/performance.md).
//! The interval is rounded up to the nanosecond, so the long-run rate is
//! never above the configured one (7 per second: 142,857,143 ns apart).

use std::time::{Duration, Instant};

pub use crate::config::model::{RateAction, RateLimit};

/// The time of one wake-up of a tunnel, read at most once and only when
/// something needs it: a rate limit at each message's start, the tunnel
/// for its idle timer when traffic moved. One clock read serves both
/// (`clock_gettime` was a third of what a rate limit cost per message).
/// tokio's clock, so that tests with paused time see it too.
#[derive(Debug, Default)]
pub struct Clock(Option<tokio::time::Instant>);

impl Clock {
    pub fn now(&mut self) -> tokio::time::Instant {
        *self.0.get_or_insert_with(tokio::time::Instant::now)
    }
}

/// The bucket of one direction of one connection.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// When the next message would arrive if messages came exactly at the
    /// rate; never before the last message allowed.
    next: Instant,
    /// Time between two messages at the rate.
    interval: Duration,
    /// How far ahead of now `next` may be for a message to pass: `burst −
    /// 1` intervals.
    tolerance: Duration,
}

impl TokenBucket {
    /// A full bucket: a new connection may send its burst at once.
    pub fn new(limit: &RateLimit, now: Instant) -> TokenBucket {
        let per = u128::from(limit.messages.max(1));
        let nanos = limit.period.as_nanos().div_ceil(per).max(1);
        let interval = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        TokenBucket {
            next: now,
            interval,
            tolerance: interval.saturating_mul(limit.burst.max(1) - 1),
        }
    }

    /// Takes one message's token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        // Time spent idle is not saved up beyond the burst: `next` never
        // lags behind now.
        let next = self.next.max(now);
        if now
            .checked_add(self.tolerance)
            .is_some_and(|latest| next > latest)
        {
            return false;
        }
        self.next = next.checked_add(self.interval).unwrap_or(next);
        true
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
    fn fast_rates_allow_their_rate_and_no_more() {
        // 1,000,000 per second: 1 µs apart; over 1 ms, 1,000 messages.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit(1_000_000, 1000, 1), t0);
        let passed = (0..10_000)
            .filter(|i| b.take(t0 + Duration::from_nanos(i * 100)))
            .count();
        assert_eq!(passed, 1000);
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
