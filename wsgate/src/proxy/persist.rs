//! Persistence in a session: the server a request's cookie or stick-table
//! entry names, the request as the server gets it, the stick-table stores
//! once the server is known, and the response's `Set-Cookie` handling.
//!
//! Stage: the session asks [`Sticky::for_request`] before `connect` (its
//! [`Sticky::prefer`] bypasses the balancer), calls [`Sticky::connected`]
//! with the server it got, writes [`Sticky::request`] to it, and passes
//! the final response head (a `101` included: socket.io's polling
//! requests and the upgrade that follows must agree) through
//! [`Sticky::response`]. Order as in HAProxy: the cookie first; stick
//! `match` rules only when no cookie chose a server; stores always, at
//! most one per table, with the server that actually answered (so a
//! redispatched client is stored again on its new server).

use std::borrow::Cow;

use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::http1::head::{Header, RequestHead, ResponseHead};
use super::route::{condition_holds, RequestFacts};
use super::Runtime;
use crate::backend::persist::{self as cookie, RequestCookie, SetCookie};
use crate::backend::stick::{Key, Sample};
use crate::backend::BackendRuntime;
use crate::config::persist::{StickAction, StickFetch};

/// Persistence state of one request.
#[derive(Default)]
pub struct Sticky {
    /// What the `Cookie` headers said (cookie persistence on).
    cookie: Option<RequestCookie>,
    /// The server persistence chose (cookie, else a stick match).
    prefer: Option<usize>,
    /// Keys to store once the server is known: (table's backend, key).
    stores: Vec<(usize, Key)>,
}

impl Sticky {
    /// Reads the request's persistence cookie and runs the stick rules.
    pub fn for_request(
        runtime: &Runtime,
        backend: &BackendRuntime,
        facts: &RequestFacts<'_>,
    ) -> Sticky {
        let sticky = &backend.config.sticky;
        let mut out = Sticky::default();
        if let (Some(cfg), Some(head)) = (&sticky.cookie, facts.head) {
            let values: Vec<Option<&str>> = backend
                .config
                .servers
                .iter()
                .map(|s| s.cookie.as_deref())
                .collect();
            let headers: Vec<&[u8]> = head
                .headers
                .iter()
                .filter(|h| h.is("cookie"))
                .map(|h| h.value.as_slice())
                .collect();
            let c = cookie::request(
                cfg,
                &values,
                &headers,
                |i| backend.accepts_persistent(i),
                unix_now(),
            );
            out.prefer = c.server;
            out.cookie = Some(c);
        }
        let now = Instant::now();
        for rule in &sticky.rules {
            if let Some(c) = &rule.condition {
                if !condition_holds(c, &sticky.acls, facts) {
                    continue;
                }
            }
            let Some(table) = runtime
                .backends
                .get(rule.table)
                .and_then(|b| b.table.as_ref())
            else {
                continue;
            };
            let Some(key) =
                fetch(&rule.fetch, facts).and_then(|s| Key::from_sample(table.def.key, s))
            else {
                continue;
            };
            if rule.action != StickAction::StoreRequest && out.prefer.is_none() {
                if let Some(id) = table.lookup(&key, now) {
                    out.prefer = backend
                        .server_by_id(id)
                        .filter(|&i| backend.accepts_persistent(i));
                }
            }
            let stored = out.stores.iter().any(|(t, _)| *t == rule.table);
            if rule.action != StickAction::Match && !stored {
                out.stores.push((rule.table, key));
            }
        }
        out
    }

    /// The server persistence sends the request to, if any.
    pub fn prefer(&self) -> Option<usize> {
        self.prefer
    }

    /// The request connected to `server`: record it in the stick tables
    /// (not for `non-stick` servers).
    pub fn connected(&self, runtime: &Runtime, backend: &BackendRuntime, server: usize) {
        let s = &backend.config.servers[server];
        if s.non_stick {
            return;
        }
        let now = Instant::now();
        for (table, key) in &self.stores {
            if let Some(t) = runtime.backends.get(*table).and_then(|b| b.table.as_ref()) {
                t.store(key.clone(), s.id, now);
            }
        }
    }

    /// The request as the server gets it: the persistence cookie removed
    /// (`insert indirect`) or its prefix stripped (`prefix`).
    pub fn request<'r>(&self, request: &'r RequestHead) -> Cow<'r, RequestHead> {
        let Some(new) = self.cookie.as_ref().and_then(|c| c.rewritten.as_ref()) else {
            return Cow::Borrowed(request);
        };
        let mut r = request.clone();
        let mut values = new.iter();
        r.headers.retain_mut(|h| {
            if !h.is("cookie") {
                return true;
            }
            match values.next() {
                Some(Some(v)) => {
                    h.value.clone_from(v);
                    true
                }
                _ => false,
            }
        });
        Cow::Owned(r)
    }

    /// The server's response head, its `Set-Cookie` headers handled and
    /// the persistence cookie inserted as configured.
    pub fn response(
        &self,
        backend: &BackendRuntime,
        server: usize,
        request: &RequestHead,
        response: &mut ResponseHead,
    ) {
        let (Some(cfg), Some(came)) = (&backend.config.sticky.cookie, &self.cookie) else {
            return;
        };
        let value = backend.config.servers[server].cookie.as_deref();
        // Straight to the server persistence named (HAProxy's SF_DIRECT:
        // a cookie or a stick-table match, not redispatched elsewhere).
        let direct = self.prefer == Some(server);
        let mut server_set_it = false;
        response.headers.retain_mut(|h| {
            if !h.is("set-cookie") {
                return true;
            }
            let (ours, action) = cookie::server_set_cookie(cfg, &h.value, value, direct);
            server_set_it |= ours;
            match action {
                SetCookie::Keep => true,
                SetCookie::Remove => false,
                SetCookie::Replace(v) => {
                    h.value = v;
                    true
                }
            }
        });
        let now = unix_now();
        if !cookie::needs_insert(
            cfg,
            came,
            direct,
            server_set_it,
            request.method == "POST",
            now,
        ) {
            return;
        }
        let cacheable = cfg.nocache && {
            let headers = &response.headers;
            cookie::cacheable(&request.method, response.status, |name| {
                headers
                    .iter()
                    .filter(|h| h.is(name))
                    .map(|h| h.value.as_slice())
                    .collect()
            })
        };
        response.headers.push(Header {
            name: "Set-Cookie".into(),
            value: cookie::insert_value(cfg, value, came, now).into_bytes(),
        });
        if cacheable {
            response.headers.push(Header {
                name: "Cache-control".into(),
                value: b"private".to_vec(),
            });
        }
    }
}

/// Seconds since the UNIX epoch (dated cookie values).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The sample a stick rule's fetch gives for this request.
pub(super) fn fetch<'a>(f: &StickFetch, facts: &RequestFacts<'a>) -> Option<Sample<'a>> {
    match f {
        StickFetch::Src => Some(Sample::Addr(facts.peer.ip())),
        StickFetch::Hdr { name, occ } => {
            let values: Vec<&[u8]> = facts
                .head?
                .headers
                .iter()
                .filter(|h| h.is(name))
                .flat_map(|h| h.value.split(|&b| b == b','))
                .map(<[u8]>::trim_ascii)
                .collect();
            let i = if *occ > 0 {
                usize::try_from(*occ - 1).ok()?
            } else {
                values.len().checked_sub(usize::try_from(-*occ).ok()?)?
            };
            values.get(i).copied().map(Sample::Text)
        }
        StickFetch::Cook(name) => facts
            .head?
            .headers
            .iter()
            .filter(|h| h.is("cookie"))
            .flat_map(|h| h.value.split(|&b| b == b';'))
            .rev()
            .find_map(|p| {
                let p = p.trim_ascii();
                let eq = p.iter().position(|&b| b == b'=')?;
                (p[..eq].trim_ascii() == name.as_bytes()).then(|| p[eq + 1..].trim_ascii())
            })
            .map(Sample::Text),
        StickFetch::UrlParam(name) => {
            let target = facts.head?.target.as_bytes();
            let q = target.iter().position(|&b| b == b'?')?;
            target[q + 1..]
                .split(|&b| b == b'&')
                .find_map(|p| {
                    let eq = p.iter().position(|&b| b == b'=')?;
                    (&p[..eq] == name.as_bytes()).then(|| &p[eq + 1..])
                })
                .map(Sample::Text)
        }
        StickFetch::Payload { .. } => payload(f, facts.payload?).ok().map(Sample::Text),
    }
}

/// A `req.payload(...)` sample of the client's first bytes: `Err(true)`
/// while more bytes could still give it (HAProxy's "may change"),
/// `Err(false)` when they never will.
pub(super) fn payload<'a>(f: &StickFetch, buf: &'a [u8]) -> Result<&'a [u8], bool> {
    let StickFetch::Payload {
        offset,
        len,
        mqtt_client_id,
    } = f
    else {
        return Err(false);
    };
    let end = if *len == 0 { buf.len() } else { offset + len };
    let bytes = buf.get(*offset..end).ok_or(true)?;
    if *len == 0 && bytes.is_empty() {
        return Err(true);
    }
    if !mqtt_client_id {
        return Ok(bytes);
    }
    match super::mqtt::connect_client_id(bytes) {
        Ok(id) if !id.is_empty() => Ok(id),
        Ok(_) => Err(false),
        Err(e) => Err(e == super::mqtt::MqttError::Incomplete),
    }
}

/// Mode tcp: the client's first bytes, when the backend's stick rules
/// read them (`req.payload`; empty otherwise). Reads until every such
/// fetch has its bytes (or never will), `limit` bytes are buffered, the
/// client stops sending, or `tcp-request inspect-delay` is over; without
/// it, only the bytes already received. The caller sends them to the
/// server first.
pub(super) async fn first_bytes<C: AsyncRead + Unpin>(
    client: &mut C,
    backend: &BackendRuntime,
    limit: usize,
) -> Vec<u8> {
    let fetches: Vec<&StickFetch> = backend
        .config
        .sticky
        .rules
        .iter()
        .map(|r| &r.fetch)
        .filter(|f| matches!(f, StickFetch::Payload { .. }))
        .collect();
    let mut buf = Vec::new();
    if fetches.is_empty() {
        return buf;
    }
    let wait = backend.config.sticky.inspect_delay.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + wait;
    while buf.len() < limit && fetches.iter().any(|f| payload(f, &buf) == Err(true)) {
        let mut chunk = vec![0u8; limit - buf.len()];
        // Polled once even when the deadline has passed: what is already
        // there is read.
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::http1::head::parse_request;

    fn sample(f: &StickFetch, raw: &str) -> Option<String> {
        let head = parse_request(raw.as_bytes(), 16384).unwrap().unwrap().0;
        let facts = RequestFacts::http(&head, "10.0.0.1:5000".parse().unwrap(), false);
        fetch(f, &facts).map(|s| match s {
            Sample::Addr(a) => a.to_string(),
            Sample::Text(t) => String::from_utf8_lossy(t).into_owned(),
        })
    }

    #[test]
    fn fetches_pick_haproxy_occurrences() {
        let raw = "GET /x?room=7&u=1 HTTP/1.1\r\nHost: h\r\nX-U: a, b\r\nX-U: c\r\n\
                   Cookie: sid=1; t=2\r\nCookie: sid=3\r\n\r\n";
        let hdr = |occ| StickFetch::Hdr {
            name: "x-u".into(),
            occ,
        };
        assert_eq!(sample(&hdr(-1), raw).as_deref(), Some("c"));
        assert_eq!(sample(&hdr(1), raw).as_deref(), Some("a"));
        assert_eq!(sample(&hdr(-2), raw).as_deref(), Some("b"));
        assert_eq!(sample(&hdr(4), raw), None);
        assert_eq!(sample(&hdr(-4), raw), None);
        let cook = |n: &str| StickFetch::Cook(n.into());
        assert_eq!(sample(&cook("sid"), raw).as_deref(), Some("3"));
        assert_eq!(sample(&cook("t"), raw).as_deref(), Some("2"));
        assert_eq!(sample(&cook("none"), raw), None);
        let urlp = |n: &str| StickFetch::UrlParam(n.into());
        assert_eq!(sample(&urlp("room"), raw).as_deref(), Some("7"));
        assert_eq!(sample(&urlp("x"), raw), None);
        assert_eq!(sample(&StickFetch::Src, raw).as_deref(), Some("10.0.0.1"));
    }
}
