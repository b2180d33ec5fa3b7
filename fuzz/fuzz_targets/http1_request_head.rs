//! The request head parser (proxy/http1/head.rs) on arbitrary bytes.
//!
//! Besides "never panics", the properties of proxy/http1/fuzz.rs, because
//! the session depends on them: a verdict never depends on where a read
//! ended (every prefix of an accepted head asks for more bytes); the limit
//! (`tune.bufsize`) is exact; and the head wsgate forwards parses again
//! with the same meaning and serialises to the same bytes (a server must
//! read what wsgate read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::fuzzing::{parse_request, RequestError};

/// `tune.bufsize`'s default.
const LIMIT: usize = 16384;

/// wsgate's limit on header lines (`tune.http.maxhdr`, 101). A head
/// that has that many comes out with one or two more (wsgate's
/// `Connection`, `X-Forwarded-For`), which wsgate's own parser would then
/// count as too many: known and accepted (the other hop's limit is its
/// own), so the re-parse below lets only that through.
const MAX_HEADERS: usize = 101;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, len))) = parse_request(data, LIMIT) else {
        return;
    };
    assert!(len <= data.len() && len <= LIMIT);
    for cut in prefix_cuts(len) {
        let verdict = parse_request(&data[..cut], LIMIT);
        assert!(
            matches!(verdict, Ok(None)),
            "prefix {cut} of {len}: {verdict:?}"
        );
    }
    // The limit is the head's length, to the byte.
    assert!(matches!(parse_request(data, len), Ok(Some((_, l))) if l == len));
    if let Some(under) = len.checked_sub(1) {
        let over = parse_request(data, under);
        assert!(
            matches!(
                over,
                Err(RequestError::HeadTooLarge | RequestError::UriTooLong)
            ),
            "one byte over the limit: {over:?}"
        );
    }

    let mut out = Vec::new();
    head.write_for_server(None, &mut out);
    let again = parse_request(&out, usize::MAX);
    if matches!(again, Err(RequestError::HeadTooLarge)) && head.headers.len() + 2 > MAX_HEADERS {
        return;
    }
    let Ok(Some((again, again_len))) = again else {
        panic!(
            "forwarded head refused: {again:?}\n{}",
            String::from_utf8_lossy(&out)
        );
    };
    assert_eq!(again_len, out.len());
    assert_eq!(again.method, head.method);
    assert_eq!(again.target, head.target);
    assert_eq!(again.version, head.version);
    assert_eq!(again.body, head.body);
    assert_eq!(again.upgrade, head.upgrade);
    let mut out2 = Vec::new();
    again.write_for_server(None, &mut out2);
    assert_eq!(out, out2);
});

/// Every cut of a short head; a spread of 256 cuts and the last 16 bytes
/// of a long one (every cut of a 4 kB head would be 4,000 parses an input).
fn prefix_cuts(len: usize) -> impl Iterator<Item = usize> {
    let step = (len / 256).max(1);
    (0..len).step_by(step).chain(len.saturating_sub(16)..len)
}
