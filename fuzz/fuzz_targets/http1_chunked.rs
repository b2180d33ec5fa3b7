//! The chunked body scanner (proxy/http1/body.rs) on arbitrary bytes, cut
//! into reads where the fuzzer says.
//!
//! Input: one byte `n` (taken modulo 16), `n` bytes of read lengths (each
//! 1–256, cycled), then the body. Properties: no panic; the same verdict
//! and the same end of body however the bytes are cut (the session sees
//! them in whatever pieces the socket gives); and an accepted body ends
//! exactly where the scanner said: its bytes alone are a complete body, one
//! byte fewer is not, and whatever follows it (a pipelined request) is not
//! looked at.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::fuzzing::ChunkedScanner;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    let cuts: Vec<usize> = if cuts.is_empty() {
        vec![1]
    } else {
        cuts.iter().map(|&c| usize::from(c) + 1).collect()
    };

    let mut whole = ChunkedScanner::default();
    let whole_verdict = whole.scan(body);

    let mut split = ChunkedScanner::default();
    let mut split_verdict = Ok(0);
    let mut pos = 0;
    for cut in cuts.iter().cycle() {
        if pos >= body.len() || split.is_done() {
            break;
        }
        let end = (pos + cut).min(body.len());
        match split.scan(&body[pos..end]) {
            Ok(used) => split_verdict = Ok(pos + used),
            Err(e) => {
                split_verdict = Err(e);
                break;
            }
        }
        pos = end;
    }
    assert_eq!(whole_verdict, split_verdict, "cuts {cuts:?}");
    assert_eq!(whole.is_done(), split.is_done());

    let Ok(end) = whole_verdict else { return };
    if whole.is_done() {
        let mut exact = ChunkedScanner::default();
        assert_eq!(exact.scan(&body[..end]), Ok(end));
        assert!(exact.is_done());
        let mut short = ChunkedScanner::default();
        assert_eq!(short.scan(&body[..end - 1]), Ok(end - 1));
        assert!(!short.is_done());
    } else {
        assert_eq!(end, body.len(), "an unfinished body uses every byte");
    }
});
