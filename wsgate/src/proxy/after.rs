//! `http-after-response` rules: the last word on every response the client
//! gets. Unlike `http-response` rules (server responses only), they also
//! run on the responses wsgate makes itself (error pages, redirects,
//! `return`, `auth`, `monitor-uri`, the stats page, metrics), as in HAProxy
//! 2.6, e.g. so that
//! `Strict-Transport-Security` is on every answer.
//!
//! Stage: the session builds an [`After`] with the frontend's and the
//! chosen backend's rules; [`After::head`] runs on a server's response head
//! after the `http-response` rules and persistence, [`After::raw`] on a
//! response wsgate wrote (parsed back, changed, written again). The
//! backend's rules run before the frontend's; conditions are evaluated on
//! the request, as for `http-response`. A response made before a request
//! was read (400, 408 on the head) goes out unchanged, as in HAProxy
//! (checked side by side).

use std::borrow::Cow;

use super::http1::head::{parse_response, RequestHead, ResponseHead};
use super::rules::{self, Conn};
use crate::config::model::{Acl, BackendHttp, Frontend, HttpAfterRule};

/// The `http-after-response` rules of one exchange.
#[derive(Clone, Copy)]
pub struct After<'a> {
    /// The backend's rules (with its ACLs), then the frontend's.
    lists: [(&'a [HttpAfterRule], &'a [Acl]); 2],
    conn: Conn<'a>,
    /// The request being answered; without it no rule runs.
    request: Option<&'a RequestHead>,
}

impl<'a> After<'a> {
    pub fn new(frontend: &'a Frontend, backend: Option<&'a BackendHttp>, conn: Conn<'a>) -> Self {
        let backend = backend.map_or((&[][..], &[][..]), |b| {
            (&b.http_after_response[..], &b.acls[..])
        });
        After {
            lists: [backend, (&frontend.http_after_response, &frontend.acls)],
            conn,
            request: None,
        }
    }

    /// The same rules for the answer to `request`.
    pub fn with<'b>(&self, request: &'b RequestHead) -> After<'b>
    where
        'a: 'b,
    {
        After {
            lists: self.lists,
            conn: self.conn,
            request: Some(request),
        }
    }

    /// The request, when there are rules to run.
    fn active(&self) -> Option<&'a RequestHead> {
        self.request
            .filter(|_| self.lists.iter().any(|(rules, _)| !rules.is_empty()))
    }

    /// Runs the rules on a response head.
    pub fn head(&self, res: &mut ResponseHead) {
        let Some(req) = self.active() else { return };
        for (rules, acls) in self.lists {
            rules::apply_after(rules, acls, req, res, &self.conn);
        }
    }

    /// Runs the rules on a whole response wsgate made: the head is parsed,
    /// changed and written again, the body kept. A response that does not
    /// parse (an `errorfile` is the user's text) goes out as it is.
    pub fn raw<'r>(&self, response: Cow<'r, [u8]>) -> Cow<'r, [u8]> {
        if self.active().is_none() {
            return response;
        }
        let Ok(Some((mut head, len))) = parse_response(&response, response.len(), false) else {
            return response;
        };
        self.head(&mut head);
        let mut out = Vec::with_capacity(response.len() + 128);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", head.status, head.reason).as_bytes());
        for h in &head.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&response[len..]);
        Cow::Owned(out)
    }
}

/// The status of a whole response wsgate made (after `set-status`), for
/// the logs and counters.
pub fn status_of(response: &[u8]) -> Option<u16> {
    let line = response.get(..12)?;
    std::str::from_utf8(line.strip_prefix(b"HTTP/1.1 ")?)
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_of_a_made_response() {
        assert_eq!(super::status_of(b"HTTP/1.1 418 Teapot\r\n\r\n"), Some(418));
        assert_eq!(super::status_of(b"HTTP/1.0 200 OK\r\n\r\n"), None);
        assert_eq!(super::status_of(b"HTTP/1.1 2"), None);
    }
}
