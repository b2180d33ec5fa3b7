//! `monitor-uri`: the proxy answers a health probe itself, as HAProxy does
//! (200 "Service ready.", or 503 when a `monitor fail` condition holds),
//! without routing, logging or touching a server.

use super::errors;
use super::route::{condition_holds, RequestFacts};
use crate::config::model::Frontend;

/// HAProxy's 200 answer to the monitor URI.
const READY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 58\r\ncache-control: no-cache\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n";

/// The response for a request to the frontend's monitor URI, or `None`
/// when the request is not for it.
pub fn reply(frontend: &Frontend, target: &str, facts: &RequestFacts<'_>) -> Option<Vec<u8>> {
    if frontend.monitor_uri.as_deref() != Some(target) {
        return None;
    }
    let failing = frontend
        .monitor_fail
        .iter()
        .any(|c| condition_holds(c, &frontend.acls, facts));
    Some(if failing {
        errors::response_with(503, None)
    } else {
        READY.to_vec()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_length_is_exact() {
        let text = std::str::from_utf8(super::READY).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(body.len(), 58);
    }
}
