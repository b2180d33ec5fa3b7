//! The response head parser (proxy/http1/head.rs) on arbitrary bytes,
//! after a GET and after a HEAD.
//!
//! Properties, as for requests (proxy/http1/fuzz.rs): no panic; every
//! prefix of an accepted head asks for more bytes; the limit is exact; what
//! wsgate writes to the client parses again with the same status and
//! framing and serialises to the same bytes, with and without
//! `Connection: close`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::fuzzing::{parse_response, ResponseError};

/// `tune.bufsize`'s default.
const LIMIT: usize = 16384;

/// wsgate's limit on header lines (`tune.http.maxhdr`, 101). A head
/// that has that many comes out with one or two more (wsgate's
/// `Connection`, `X-Forwarded-For`), which wsgate's own parser would then
/// count as too many: known and accepted (the other hop's limit is its
/// own), so the re-parse below lets only that through.
const MAX_HEADERS: usize = 101;

fuzz_target!(|data: &[u8]| {
    for head_request in [false, true] {
        check(data, head_request);
    }
});

fn check(data: &[u8], head_request: bool) {
    let Ok(Some((head, len))) = parse_response(data, LIMIT, head_request) else {
        return;
    };
    assert!(len <= data.len() && len <= LIMIT);
    for cut in prefix_cuts(len) {
        let verdict = parse_response(&data[..cut], LIMIT, head_request);
        assert!(
            matches!(verdict, Ok(None)),
            "prefix {cut} of {len}: {verdict:?}"
        );
    }
    assert!(matches!(parse_response(data, len, head_request), Ok(Some((_, l))) if l == len));
    if let Some(under) = len.checked_sub(1) {
        assert!(parse_response(data, under, head_request).is_err());
    }

    for close in [false, true] {
        let mut out = Vec::new();
        head.write_for_client(close, &mut out);
        let again = parse_response(&out, usize::MAX, head_request);
        if matches!(again, Err(ResponseError::TooLarge)) && head.headers.len() + 1 > MAX_HEADERS {
            continue;
        }
        let Ok(Some((again, again_len))) = again else {
            panic!(
                "forwarded head refused: {again:?}\n{}",
                String::from_utf8_lossy(&out)
            );
        };
        assert_eq!(again_len, out.len());
        assert_eq!(again.status, head.status);
        assert_eq!(again.body, head.body);
        let mut out2 = Vec::new();
        again.write_for_client(close, &mut out2);
        assert_eq!(out, out2);
    }
}

/// Every cut of a short head; a spread of 256 cuts and the last 16 bytes
/// of a long one.
fn prefix_cuts(len: usize) -> impl Iterator<Item = usize> {
    let step = (len / 256).max(1);
    (0..len).step_by(step).chain(len.saturating_sub(16)..len)
}
