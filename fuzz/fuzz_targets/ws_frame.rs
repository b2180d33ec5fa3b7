//! The WebSocket frame tracker (ws/frame.rs) on arbitrary bytes, in either
//! direction, under any policy, cut into reads where the fuzzer says.
//!
//! Input: a policy byte (below), a byte `n` (modulo 16), `n` bytes of read
//! lengths (each 1–256, cycled), then the stream. The policy byte picks
//! the direction (bit 0: client to server, whose frames must be masked),
//! the settings (bits 1–2: none; size limits and strict checks; rate limit
//! dropping; rate limit closing), RSV1 allowed (bit 3) and keepalive pongs
//! expected (bits 4–5).
//!
//! Properties (those of the proptest in ws/frame.rs): no panic; the bytes
//! kept, the first message boundary, the violation, the counts and the
//! final state are the same whether the stream comes in one read or in
//! the fuzzer's pieces, apart from the two documented cases where a frame
//! header split across reads had its first bytes go out (or be cut out)
//! with the earlier read; and with nothing to remove (no rate limit, no
//! pong expected) every byte before a violation is kept, unchanged.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wsgate::fuzzing::{FrameError, FrameTracker, Policy, RateAction, RateLimit, Strict, Violation};

/// Longest frame header (2 + 8 + 4 bytes).
const MAX_HEADER: usize = 14;

fuzz_target!(|data: &[u8]| {
    let [setup, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, stream) = rest.split_at(n);
    let cuts: Vec<usize> = cuts.iter().map(|&c| usize::from(c) + 1).collect();
    let (policy, pongs) = policy(*setup);
    let fresh = || {
        let mut t = FrameTracker::with_policy(policy);
        for _ in 0..pongs {
            t.expect_pong();
        }
        t
    };

    let whole = feed_split(fresh(), stream, &[usize::MAX]);
    let split = feed_split(fresh(), stream, if cuts.is_empty() { &[1] } else { &cuts });
    assert_eq!(whole.boundary, split.boundary);
    match split.violation {
        // The refused frame began in an earlier read: its first bytes went
        // on with it. That is part of its header or, with `strict`, of a
        // close frame refused for its payload (code or reason: up to its
        // 6-byte masked header and 125-byte payload).
        Some((None, v)) => {
            assert_eq!(whole.violation.map(|(_, v)| v), Some(v));
            assert!(split.kept.starts_with(&whole.kept));
            let close = matches!(
                v,
                Violation::Protocol(FrameError::CloseCode | FrameError::CloseReason)
            );
            let most = if close { 6 + 125 } else { MAX_HEADER - 1 };
            assert!(split.kept.len() - whole.kept.len() <= most);
        }
        // Framing broke inside the header of a frame being removed: its
        // first bytes, cut out with the earlier read, are gone.
        None if whole.tracker.error().is_some() && whole.kept != split.kept => {
            assert!(whole.violation.is_none());
            let same = whole
                .kept
                .iter()
                .zip(&split.kept)
                .take_while(|(a, b)| a == b)
                .count();
            let lost = whole.kept.len() - split.kept.len();
            assert!(lost < MAX_HEADER);
            assert_eq!(&whole.kept[same + lost..], &split.kept[same..]);
        }
        _ => {
            assert_eq!(whole.kept, split.kept);
            assert_eq!(whole.violation, split.violation);
        }
    }
    assert_eq!(whole.tracker.error(), split.tracker.error());
    assert_eq!(whole.tracker.at_boundary(), split.tracker.at_boundary());
    assert_eq!(whole.tracker.stats(), split.tracker.stats());
    assert!(whole.kept.len() <= stream.len());
    if policy.rate.is_none() && pongs == 0 {
        assert!(stream.starts_with(&whole.kept));
        if whole.violation.is_none() {
            assert_eq!(whole.kept.len(), stream.len());
        }
    }
});

fn policy(setup: u8) -> (Policy, u8) {
    let client = setup & 1 != 0;
    let rsv1_allowed = setup & 8 != 0;
    let pongs = (setup >> 4) & 3;
    // An hour per message: no token comes back while an input runs, so
    // the whole and the split feed see the same bucket.
    let rate = |action| RateLimit {
        messages: 1,
        period: Duration::from_secs(3600),
        burst: 2,
        action,
    };
    let policy = match (setup >> 1) & 3 {
        0 => Policy::default(),
        1 => Policy {
            max_frame: Some(150),
            max_message: Some(300),
            strict: Some(Strict {
                masked: client,
                rsv1_allowed,
            }),
            rate: None,
        },
        2 => Policy {
            rate: Some(rate(RateAction::Drop)),
            ..Policy::default()
        },
        _ => Policy {
            rate: Some(rate(RateAction::Close)),
            ..Policy::default()
        },
    };
    (policy, pongs)
}

/// What one way of feeding the stream gave.
struct Fed {
    /// The bytes that went on (up to the violation, if any).
    kept: Vec<u8>,
    /// Offset in `kept` just after the first message boundary.
    boundary: Option<usize>,
    /// The refused frame's offset in `kept` (`None`: it began in an earlier
    /// read) and the violation.
    violation: Option<(Option<usize>, Violation)>,
    tracker: FrameTracker,
}

/// Feeds `stream` in pieces of the `cuts` lengths (cycled), as the tunnel
/// does: what goes on is each piece's kept bytes, up to a violation.
fn feed_split(mut tracker: FrameTracker, stream: &[u8], cuts: &[usize]) -> Fed {
    let mut kept = Vec::new();
    let (mut boundary, mut violation) = (None, None);
    let mut pos = 0;
    for cut in cuts.iter().cycle() {
        if pos >= stream.len() || violation.is_some() {
            break;
        }
        let end = pos.saturating_add(*cut).min(stream.len());
        let mut piece = stream[pos..end].to_vec();
        let fed = tracker.feed(&mut piece);
        assert!(fed.kept <= piece.len());
        if boundary.is_none() {
            boundary = fed.first_boundary.map(|b| kept.len() + b);
        }
        if let Some((start, v)) = fed.violation {
            violation = Some((start.map(|s| kept.len() + s), v));
            kept.extend_from_slice(&piece[..start.unwrap_or(0)]);
        } else {
            kept.extend_from_slice(&piece[..fed.kept]);
        }
        pos = end;
    }
    Fed {
        kept,
        boundary,
        violation,
        tracker,
    }
}
