//! Per-message WebSocket figures of one frontend or backend, for the
//! `wsgate_*_ws_*` metrics and the stats page's `ws_*` columns.
//!
//! The data path never touches these atomics per frame or per message:
//! each tunnel counts in plain integers ([`DirStats`], with its
//! [`MessageSizes`]) and adds what it counted here every [`FLUSH_EVERY`]
//! messages and when it ends.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::frame::{DirStats, Violation};

/// A tunnel flushes its counts after this many messages (both directions
/// together), so that long-lived WebSockets show up before they close.
pub const FLUSH_EVERY: u64 = 1024;

/// Close codes counted one by one: 1000–1015 (RFC 6455 §7.4.1 and the IANA
/// registry). Others are counted by range.
const NAMED_CODES: u16 = 16;

/// Slots of [`WsCounters::close_codes`]: the named codes, then "none" (a
/// close frame without a code), "3xxx", "4xxx", "invalid".
const CODE_SLOTS: usize = NAMED_CODES as usize + 4;

/// The labels of the close code slots, in order.
pub fn close_code_labels() -> impl Iterator<Item = (usize, String)> {
    (0..CODE_SLOTS).map(|i| {
        let label = match i {
            i if i < usize::from(NAMED_CODES) => (1000 + i).to_string(),
            16 => "none".to_owned(),
            17 => "3xxx".to_owned(),
            18 => "4xxx".to_owned(),
            _ => "invalid".to_owned(),
        };
        (i, label)
    })
}

fn code_slot(code: u16) -> usize {
    match code {
        1000..=1015 => usize::from(code - 1000),
        0 => 16,
        3000..=3999 => 17,
        4000..=4999 => 18,
        _ => 19,
    }
}

/// Upper bounds (bytes, inclusive) of the message size histogram's
/// buckets: powers of 4 from 64 B to 64 KiB, where most WebSocket messages
/// are, then 1 MiB and 16 MiB. Messages above the last bound are counted
/// in one more bucket (`+Inf`). Eight bounds, not the ten powers of 4 up
/// to 16 MiB: each bucket costs 16 bytes per open WebSocket (two
/// directions, counted and flushed copies), and eight keep the idle
/// tunnel task within its budget (`an_idle_tunnel_task_stays_small`).
pub const SIZE_BOUNDS: [u64; SIZE_BUCKETS] = [
    64,
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    1 << 20,
    16 << 20,
];

/// Finite buckets of the message size histogram.
pub const SIZE_BUCKETS: usize = 8;

/// Bucket by the bit length of `len - 1` (0..=64): lengths of up to 6
/// bits are at most 64 bytes, and so on.
const BUCKET_OF_BITS: [u8; 65] = {
    let mut t = [SIZE_BUCKETS as u8; 65];
    let mut bits = 0;
    while bits <= 64 {
        let mut b = 0;
        while b < SIZE_BUCKETS && bits > SIZE_BOUNDS[b].trailing_zeros() {
            b += 1;
        }
        t[bits as usize] = b as u8;
        bits += 1;
    }
    t
};

/// The histogram bucket of a message of `len` payload bytes: 0 for at
/// most 64 bytes, [`SIZE_BUCKETS`] above 16 MiB. From the bit length of
/// `len - 1` (`leading_zeros`) and a 65-byte table: no loop, no branch.
#[inline]
pub fn size_bucket(len: u64) -> usize {
    let bits = 64 - len.saturating_sub(1).leading_zeros();
    usize::from(BUCKET_OF_BITS[bits as usize])
}

/// A tunnel's message sizes since its last flush, per finite bucket, in
/// plain integers (one direction). The count above the last bound is not
/// kept: it is the messages counted minus these. A flush follows every
/// wake-up that brought [`FLUSH_EVERY`] messages, and one wake-up reads at
/// most tokio's budget of 128 reads of 16 KiB (a million two-byte frames):
/// far below 2^32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageSizes([u32; SIZE_BUCKETS]);

impl DirStats {
    /// Nothing counted.
    pub const NONE: DirStats = DirStats {
        messages: 0,
        payload_bytes: 0,
        dropped: 0,
        close_code: None,
        sizes: MessageSizes([0; SIZE_BUCKETS]),
    };

    /// A data message of `len` payload bytes was forwarded whole: counted
    /// and put in its size bucket.
    #[inline]
    pub fn message_done(&mut self, len: u64) {
        self.messages += 1;
        if let Some(c) = self.sizes.0.get_mut(size_bucket(len)) {
            *c = c.wrapping_add(1);
        }
    }
}

/// Which peer sent something: index 0 the client, 1 the server.
pub const FROM: [&str; 2] = ["client", "server"];

/// Why wsgate closed a WebSocket for breaking the policy.
pub const POLICY_REASONS: [&str; 3] = ["size", "protocol", "rate"];

/// One proxy's WebSocket message counters.
#[derive(Debug, Default)]
pub struct WsCounters {
    /// Data messages forwarded, by sender.
    pub messages: [AtomicU64; 2],
    /// Their payload bytes (wire sizes), by sender.
    pub payload_bytes: [AtomicU64; 2],
    /// Messages dropped by `websocket rate-limit ... action drop`, by sender.
    pub dropped: [AtomicU64; 2],
    /// Close frames seen, by sender and code slot.
    pub close_codes: [[AtomicU64; CODE_SLOTS]; 2],
    /// Tunnels wsgate closed for a broken policy, by [`POLICY_REASONS`].
    pub policy_closes: [AtomicU64; 3],
    /// Forwarded messages by sender and size bucket ([`SIZE_BOUNDS`], then
    /// `+Inf`); not cumulative.
    pub sizes: [[AtomicU64; SIZE_BUCKETS + 1]; 2],
}

impl WsCounters {
    /// Adds what a tunnel counted since its last flush (`before`: the
    /// figures then) up to `now`.
    pub fn add(&self, counted: &[DirStats; 2]) {
        for (from, n) in counted.iter().enumerate() {
            let add = |a: &AtomicU64, v: u64| {
                if v > 0 {
                    a.fetch_add(v, Relaxed);
                }
            };
            add(&self.messages[from], n.messages);
            add(&self.payload_bytes[from], n.payload_bytes);
            add(&self.dropped[from], u64::from(n.dropped));
            let mut finite = 0u64;
            for (i, &c) in n.sizes.0.iter().enumerate() {
                finite += u64::from(c);
                add(&self.sizes[from][i], u64::from(c));
            }
            add(
                &self.sizes[from][SIZE_BUCKETS],
                n.messages.saturating_sub(finite),
            );
            if let Some(code) = n.close_code {
                self.close_codes[from][code_slot(code)].fetch_add(1, Relaxed);
            }
        }
    }

    /// A tunnel closed by wsgate for `v`.
    pub fn policy_close(&self, v: &Violation) {
        let i = match v {
            Violation::FrameTooBig(_) | Violation::MessageTooBig(_) => 0,
            Violation::Protocol(_) => 1,
            Violation::RateLimited => 2,
        };
        self.policy_closes[i].fetch_add(1, Relaxed);
    }

    /// `clear counters all`.
    pub fn clear(&self) {
        let all = self
            .messages
            .iter()
            .chain(&self.payload_bytes)
            .chain(&self.dropped)
            .chain(self.close_codes.iter().flatten())
            .chain(&self.policy_closes)
            .chain(self.sizes.iter().flatten());
        for a in all {
            a.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_add_what_was_counted() {
        let c = WsCounters::default();
        let mut first = [DirStats::default(); 2];
        first[0].messages = 3;
        first[0].payload_bytes = 30;
        c.add(&first);
        let mut second = [DirStats::default(); 2];
        second[0].messages = 2;
        second[0].payload_bytes = 1;
        second[1].close_code = Some(1000);
        second[0].close_code = Some(4001);
        c.add(&second);
        c.add(&[DirStats::default(); 2]);
        assert_eq!(c.messages[0].load(Relaxed), 5);
        assert_eq!(c.payload_bytes[0].load(Relaxed), 31);
        assert_eq!(c.close_codes[1][0].load(Relaxed), 1);
        assert_eq!(c.close_codes[0][18].load(Relaxed), 1);
        let labels: Vec<String> = close_code_labels().map(|(_, l)| l).collect();
        assert_eq!(labels[0], "1000");
        assert_eq!(labels[18], "4xxx");
        c.policy_close(&Violation::RateLimited);
        assert_eq!(c.policy_closes[2].load(Relaxed), 1);
        c.clear();
        assert_eq!(c.messages[0].load(Relaxed), 0);
    }

    #[test]
    fn size_buckets_follow_the_bounds() {
        for (i, &bound) in SIZE_BOUNDS.iter().enumerate() {
            assert_eq!(size_bucket(bound), i, "{bound}");
            assert_eq!(size_bucket(bound + 1), i + 1, "{bound}+1");
            if i > 0 {
                assert_eq!(size_bucket(SIZE_BOUNDS[i - 1] + 1), i);
            }
        }
        assert_eq!(size_bucket(0), 0);
        assert_eq!(size_bucket(1), 0);
        assert_eq!(size_bucket(u64::MAX), SIZE_BUCKETS);
        assert_eq!(size_bucket(1 << 40), SIZE_BUCKETS);
    }

    #[test]
    fn sizes_land_in_their_buckets() {
        let c = WsCounters::default();
        let mut now = [DirStats::default(); 2];
        now[0].message_done(64);
        now[0].message_done(65);
        now[0].message_done(17 << 20);
        for _ in 0..4 {
            now[1].message_done(4000);
        }
        c.add(&now);
        let got = |from: usize, i: usize| c.sizes[from][i].load(Relaxed);
        assert_eq!((got(0, 0), got(0, 1), got(0, SIZE_BUCKETS)), (1, 1, 1));
        assert_eq!(got(1, 3), 4);
        assert_eq!(got(1, SIZE_BUCKETS), 0);
        assert_eq!(c.messages[0].load(Relaxed), 3);
    }
}
