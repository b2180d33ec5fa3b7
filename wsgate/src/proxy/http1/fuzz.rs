//! Property-based fuzzing of the HTTP/1 parsers (proptest, inside `cargo
//! test`; the coverage-guided targets in `fuzz/` check the same properties).
//! Run longer with `PROPTEST_CASES=200000 cargo test --lib http1::fuzz`
//! (docs/architecture.md, "Fuzzing"; docs/security.md).
//!
//! Inputs are arbitrary bytes and mutated plausible heads: methods,
//! versions and the framing headers a smuggler plays with (Content-Length,
//! Transfer-Encoding, Connection, Upgrade, TE), then bytes replaced,
//! inserted or removed. Properties: no panic; an accepted head's every
//! prefix asks for more bytes (the session reads incrementally, so a
//! verdict must not depend on where a read ended); what wsgate forwards
//! parses again, with the same framing, and serialises to the same bytes;
//! the chunked scanner agrees with itself however the body is cut.

use proptest::prelude::*;

use super::body::ChunkedScanner;
use super::head::{parse_request, parse_response};

const LIMIT: usize = 16384;

fn cases() -> ProptestConfig {
    ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(512),
    )
}

fn header_line() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "Host",
        "Content-Length",
        "content-length",
        "Transfer-Encoding",
        "Connection",
        "Upgrade",
        "TE",
        "Sec-WebSocket-Key",
        "X-Forwarded-For",
        "X-Any",
    ]);
    let values = prop::sample::select(vec![
        "a.example",
        "0",
        "5",
        "5, 5",
        "5, 6",
        "chunked",
        "chunked, identity",
        "identity, chunked",
        "xchunked",
        "gzip, chunked",
        "upgrade",
        "keep-alive, Upgrade",
        "close",
        "websocket",
        "h2c",
        "trailers",
        "18446744073709551616",
        "",
    ]);
    (names, values).prop_map(|(n, v)| format!("{n}: {v}\r\n"))
}

fn plausible_head(response: bool) -> impl Strategy<Value = Vec<u8>> {
    let first = if response {
        prop::sample::select(vec![
            "HTTP/1.1 200 OK",
            "HTTP/1.1 101 Switching Protocols",
            "HTTP/1.0 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 500 Oops",
        ])
        .boxed()
    } else {
        prop::sample::select(vec![
            "GET / HTTP/1.1",
            "POST /x?y=1 HTTP/1.1",
            "GET /ws HTTP/1.0",
            "HEAD / HTTP/1.1",
            "CONNECT a:443 HTTP/1.1",
            "PRI * HTTP/2.0",
            "GET /",
        ])
        .boxed()
    };
    let mutations = prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4);
    (
        first,
        prop::collection::vec(header_line(), 0..8),
        mutations,
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(first, headers, mutations, body)| {
            let mut bytes = format!("{first}\r\n{}\r\n", headers.concat()).into_bytes();
            for (at, byte, op) in mutations {
                let i = at % bytes.len();
                match op {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            bytes.extend(body);
            bytes
        })
}

fn inputs(response: bool) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        plausible_head(response),
    ]
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn requests_accepted_are_forwarded_as_they_were_read(input in inputs(false)) {
        let Ok(Some((head, len))) = parse_request(&input, LIMIT) else {
            return Ok(());
        };
        prop_assert!(len <= input.len());
        for cut in 0..len {
            prop_assert!(matches!(parse_request(&input[..cut], LIMIT), Ok(None)), "prefix {cut}");
        }
        let mut out = Vec::new();
        head.write_for_server(None, &mut out);
        let again = parse_request(&out, LIMIT);
        let Ok(Some((again, again_len))) = again else {
            return Err(TestCaseError::fail(format!(
                "forwarded head refused: {again:?}\n{}",
                String::from_utf8_lossy(&out)
            )));
        };
        prop_assert_eq!(again_len, out.len());
        prop_assert_eq!(&again.method, &head.method);
        prop_assert_eq!(&again.target, &head.target);
        prop_assert_eq!(again.body, head.body);
        prop_assert_eq!(&again.upgrade, &head.upgrade);
        let mut out2 = Vec::new();
        again.write_for_server(None, &mut out2);
        prop_assert_eq!(out, out2);
    }

    #[test]
    fn responses_accepted_are_forwarded_as_they_were_read(
        input in inputs(true),
        head_request in any::<bool>(),
        close in any::<bool>(),
    ) {
        let Ok(Some((head, len))) = parse_response(&input, LIMIT, head_request) else {
            return Ok(());
        };
        for cut in 0..len {
            prop_assert!(matches!(parse_response(&input[..cut], LIMIT, head_request), Ok(None)), "prefix {cut}");
        }
        let mut out = Vec::new();
        head.write_for_client(close, &mut out);
        let again = parse_response(&out, LIMIT, head_request);
        let Ok(Some((again, again_len))) = again else {
            return Err(TestCaseError::fail(format!("forwarded head refused: {again:?}")));
        };
        prop_assert_eq!(again_len, out.len());
        prop_assert_eq!(again.status, head.status);
        prop_assert_eq!(again.body, head.body);
        let mut out2 = Vec::new();
        again.write_for_client(close, &mut out2);
        prop_assert_eq!(out, out2);
    }

    /// The chunked scanner: the same verdict and end however the body is
    /// cut into reads.
    #[test]
    fn chunked_bodies_split_anywhere_agree(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            prop::collection::vec(
                prop::sample::select(vec!["0\r\n\r\n", "5\r\nhello\r\n", "3;x=y\r\nabc\r\n", "A\r\n0123456789\r\n", "T: v\r\n", "\r\n", "ffffffffffffffffff\r\n", "1 \r\nx\r\n"]),
                0..6,
            ).prop_map(|p| p.concat().into_bytes()),
        ],
        cuts in prop::collection::vec(1usize..16, 1..20),
    ) {
        let whole = ChunkedScanner::default().scan(&input);
        let mut s = ChunkedScanner::default();
        let mut pos = 0;
        let mut split = Ok(0);
        for cut in cuts.iter().cycle() {
            if pos >= input.len() {
                break;
            }
            let end = (pos + cut).min(input.len());
            match s.scan(&input[pos..end]) {
                Ok(n) => {
                    split = Ok(pos + n);
                    if s.is_done() {
                        break;
                    }
                }
                Err(e) => {
                    split = Err(e);
                    break;
                }
            }
            pos = end;
        }
        prop_assert_eq!(whole, split);
    }
}
