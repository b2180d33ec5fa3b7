//! Running `http-request`, `redirect` and `http-response` rules, and
//! `option forwardfor`, on one exchange.
//!
//! Stage: the session calls [`apply_request`] on the parsed request (the
//! frontend's rules, then its `redirect` lines, then the chosen backend's
//! rules) and [`apply_response`] on the server's response head before it is
//! written to the client (the backend's rules, then the frontend's), as
//! HAProxy does. Each rule's condition is evaluated on the request as the
//! earlier rules left it. Log-format values are evaluated here
//! ([`evaluate`]) so `log-format` can reuse it later.

use std::net::{IpAddr, SocketAddr};

use regex::bytes::Captures;

use super::errors;
use super::http1::head::{Header, RequestHead, ResponseHead};
use super::route::{self, RequestFacts};
use super::track::{self, Scope};
use crate::config::http_rules;
use crate::config::logformat::{Fetch, Format, Part};
use crate::config::model::{
    Acl, ForwardFor, HeaderAction, HttpAfterAction, HttpAfterRule, HttpRequestAction,
    HttpRequestRule, HttpResponseAction, HttpResponseRule, NameMatch, Redirect, RedirectKind,
    Reply, ReplyBody,
};

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'a> {
    pub peer: SocketAddr,
    /// The address the client connected to (`dst`, `%fp`).
    pub local: Option<SocketAddr>,
    pub tls: bool,
    /// What the client's TLS handshake said: the server name
    /// (`ssl_fc_sni`), the client certificate (`ssl_c_*`).
    pub handshake: Option<&'a crate::tls::Handshake>,
}

/// What the request rules decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// On to the next list, or to the server (`allow`, or no final rule).
    Continue,
    /// `deny`, or a rewrite that produced an invalid request (500): the
    /// error page for this status.
    Deny(u16),
    /// `return`: this response (the connection may stay open).
    Answer { status: u16, response: Vec<u8> },
    /// `redirect`: this response, then the connection is closed.
    Redirect { code: u16, response: Vec<u8> },
}

/// What the values of a format are taken from.
struct Sources<'a> {
    req: &'a RequestHead,
    res: Option<&'a ResponseHead>,
    conn: &'a Conn<'a>,
}

/// Runs `rules` (with `acls` for their conditions) on `req`; `scope`:
/// the stick counters and the proxy the rules belong to.
pub fn apply_request(
    rules: &[HttpRequestRule],
    acls: &[Acl],
    req: &mut RequestHead,
    conn: &Conn<'_>,
    scope: &Scope<'_>,
) -> Outcome {
    for rule in rules {
        let facts = || {
            RequestFacts::http(req, conn.peer, conn.tls)
                .with_conn(conn)
                .with_scope(*scope)
        };
        let holds = rule
            .condition
            .as_ref()
            .is_none_or(|c| route::condition_holds(c, acls, &facts()));
        if !holds {
            continue;
        }
        if let HttpRequestAction::TrackSc(t) = &rule.action {
            track::track(t, scope, &facts(), true);
            continue;
        }
        let src = Sources {
            req,
            res: None,
            conn,
        };
        let target = match &rule.action {
            HttpRequestAction::Header(action) => {
                let edit = plan_header(action, &req.headers, &src);
                apply_edit(edit, &mut req.headers);
                continue;
            }
            HttpRequestAction::Allow => return Outcome::Continue,
            HttpRequestAction::Deny { status } => return Outcome::Deny(*status),
            HttpRequestAction::Return(reply) => {
                return Outcome::Answer {
                    status: reply.status,
                    response: reply_bytes(reply, &src),
                }
            }
            HttpRequestAction::Auth { realm } => {
                return Outcome::Answer {
                    status: 401,
                    response: errors::unauthorized(realm.as_deref().unwrap_or_default()),
                }
            }
            HttpRequestAction::Redirect(r) => {
                return Outcome::Redirect {
                    code: r.code,
                    response: errors::redirect(r.code, &location(r, &src)),
                }
            }
            HttpRequestAction::SetUri(f) => Some(evaluate(f, &src, None)),
            HttpRequestAction::SetPath(f) => {
                let (prefix, _, query) = split_target(&req.target);
                let mut t = prefix.as_bytes().to_vec();
                t.extend(evaluate(f, &src, None));
                if let Some(q) = query {
                    t.push(b'?');
                    t.extend_from_slice(q.as_bytes());
                }
                Some(t)
            }
            HttpRequestAction::SetQuery(f) => {
                let (prefix, path, _) = split_target(&req.target);
                let mut t = format!("{prefix}{path}").into_bytes();
                let q = evaluate(f, &src, None);
                if !q.is_empty() {
                    t.push(b'?');
                    t.extend(q);
                }
                Some(t)
            }
            HttpRequestAction::ReplacePath { pattern, value } => {
                let (prefix, path, query) = split_target(&req.target);
                pattern.regex.captures(path.as_bytes()).map(|caps| {
                    let mut t = prefix.as_bytes().to_vec();
                    t.extend(evaluate(value, &src, Some(&caps)));
                    if let Some(q) = query {
                        t.push(b'?');
                        t.extend_from_slice(q.as_bytes());
                    }
                    t
                })
            }
            HttpRequestAction::ReplaceUri { pattern, value } => pattern
                .regex
                .captures(req.target.as_bytes())
                .map(|caps| evaluate(value, &src, Some(&caps))),
            HttpRequestAction::TrackSc(_) => None,
        };
        if let Some(t) = target {
            match valid_target(t) {
                Some(t) => req.target = t,
                None => {
                    tracing::warn!(rule = %rule.location, "a rewrite produced an invalid request target: 500");
                    return Outcome::Deny(500);
                }
            }
        }
    }
    Outcome::Continue
}

/// Runs `rules` on the response head; `Some(status)` when one denies it.
pub fn apply_response(
    rules: &[HttpResponseRule],
    acls: &[Acl],
    req: &RequestHead,
    res: &mut ResponseHead,
    conn: &Conn<'_>,
) -> Option<u16> {
    let facts = RequestFacts::http(req, conn.peer, conn.tls).with_conn(conn);
    for rule in rules {
        let holds = rule
            .condition
            .as_ref()
            .is_none_or(|c| route::condition_holds(c, acls, &facts));
        if !holds {
            continue;
        }
        match &rule.action {
            HttpResponseAction::Header(action) => {
                let src = Sources {
                    req,
                    res: Some(res),
                    conn,
                };
                let edit = plan_header(action, &res.headers, &src);
                apply_edit(edit, &mut res.headers);
            }
            HttpResponseAction::Allow => return None,
            HttpResponseAction::Deny { status } => return Some(*status),
        }
    }
    None
}

/// Runs `http-after-response` rules on a response head (the server's, or
/// one wsgate made, parsed back).
pub fn apply_after(
    rules: &[HttpAfterRule],
    acls: &[Acl],
    req: &RequestHead,
    res: &mut ResponseHead,
    conn: &Conn<'_>,
) {
    let facts = RequestFacts::http(req, conn.peer, conn.tls).with_conn(conn);
    for rule in rules {
        let holds = rule
            .condition
            .as_ref()
            .is_none_or(|c| route::condition_holds(c, acls, &facts));
        if !holds {
            continue;
        }
        match &rule.action {
            HttpAfterAction::Header(action) => {
                let src = Sources {
                    req,
                    res: Some(res),
                    conn,
                };
                let edit = plan_header(action, &res.headers, &src);
                apply_edit(edit, &mut res.headers);
            }
            HttpAfterAction::SetStatus { status, reason } => {
                res.status = *status;
                res.reason = reason
                    .clone()
                    .unwrap_or_else(|| errors::standard_reason(*status).to_owned());
            }
            HttpAfterAction::Allow => return,
        }
    }
}

/// The header `option forwardfor` adds, if any: its name and the
/// client's address. Either proxy's option enables it; the backend's
/// header name wins; a client in either `except` network gets none;
/// `if-none` (only when neither proxy omits it) skips requests that
/// already carry the header, as HAProxy.
pub fn forwarded_for<'a>(
    frontend: Option<&'a ForwardFor>,
    backend: Option<&'a ForwardFor>,
    req: &RequestHead,
    peer: IpAddr,
) -> Option<(&'a str, IpAddr)> {
    if frontend.is_none() && backend.is_none() {
        return None;
    }
    let name = backend
        .and_then(|b| b.header.as_deref())
        .or_else(|| frontend.and_then(|f| f.header.as_deref()))
        .unwrap_or("X-Forwarded-For");
    let always = [frontend, backend]
        .into_iter()
        .flatten()
        .any(|f| !f.if_none);
    if !always && req.headers.iter().any(|h| h.is(name)) {
        return None;
    }
    let excepted = [frontend, backend]
        .into_iter()
        .flatten()
        .filter_map(|f| f.except.as_ref())
        .any(|n| route::in_network(peer, n));
    (!excepted).then_some((name, peer))
}

/// A change to a header list, computed before the list is changed (the
/// values may read the same message).
enum Edit {
    /// Remove these lines, then add one (`set-header`, `add-header`).
    Replace {
        remove: Vec<usize>,
        add: Option<Header>,
    },
    /// New values for these lines.
    Values(Vec<(usize, Vec<u8>)>),
}

fn plan_header(action: &HeaderAction, headers: &[Header], src: &Sources<'_>) -> Edit {
    let name = match action {
        HeaderAction::Set { name, .. }
        | HeaderAction::Add { name, .. }
        | HeaderAction::Del { name, .. }
        | HeaderAction::Replace { name, .. }
        | HeaderAction::ReplaceValue { name, .. } => name,
    };
    if reserved(name) {
        // Warned about at load: the rule changes nothing.
        return Edit::Values(Vec::new());
    }
    let lines = |name: &str| -> Vec<usize> {
        headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is(name))
            .map(|(i, _)| i)
            .collect()
    };
    match action {
        HeaderAction::Set { name, value } => Edit::Replace {
            remove: lines(name),
            add: Some(Header {
                name: name.clone(),
                value: evaluate(value, src, None),
            }),
        },
        HeaderAction::Add { name, value } => Edit::Replace {
            remove: Vec::new(),
            add: Some(Header {
                name: name.clone(),
                value: evaluate(value, src, None),
            }),
        },
        // `-m beg Content-` must not remove the framing headers the body
        // is forwarded by, nor `-m beg Up` the 101's `Upgrade`.
        HeaderAction::Del { name, method } => Edit::Replace {
            remove: headers
                .iter()
                .enumerate()
                .filter(|(_, h)| name_matches(&h.name, name, method) && !reserved(&h.name))
                .map(|(i, _)| i)
                .collect(),
            add: None,
        },
        HeaderAction::Replace {
            name,
            pattern,
            value,
        } => Edit::Values(
            lines(name)
                .into_iter()
                .filter_map(|i| {
                    let caps = pattern.regex.captures(&headers[i].value)?;
                    Some((i, evaluate(value, src, Some(&caps))))
                })
                .collect(),
        ),
        HeaderAction::ReplaceValue {
            name,
            pattern,
            value,
        } => Edit::Values(
            lines(name)
                .into_iter()
                .filter_map(|i| {
                    // Each value is replaced in place; the commas and the
                    // spaces around them stay as they were.
                    let mut changed = false;
                    let parts: Vec<Vec<u8>> = headers[i]
                        .value
                        .split(|&b| b == b',')
                        .map(|part| {
                            let v = part.trim_ascii();
                            let caps = (!v.is_empty()).then(|| pattern.regex.captures(v));
                            let Some(Some(caps)) = caps else {
                                return part.to_vec();
                            };
                            changed = true;
                            let lead = part.len() - part.trim_ascii_start().len();
                            let tail = part.len() - part.trim_ascii_end().len();
                            let mut out = part[..lead].to_vec();
                            out.extend(evaluate(value, src, Some(&caps)));
                            out.extend_from_slice(&part[part.len() - tail..]);
                            out
                        })
                        .collect();
                    changed.then(|| (i, parts.join(&b","[..])))
                })
                .collect(),
        ),
    }
}

fn apply_edit(edit: Edit, headers: &mut Vec<Header>) {
    match edit {
        Edit::Replace { remove, add } => {
            let mut index = 0;
            headers.retain(|_| {
                index += 1;
                !remove.contains(&(index - 1))
            });
            headers.extend(add);
        }
        Edit::Values(values) => {
            for (i, v) in values {
                if let Some(h) = headers.get_mut(i) {
                    h.value = v;
                }
            }
        }
    }
}

/// Headers rules leave alone: those that frame the body and the
/// hop-by-hop ones wsgate writes itself (see `config::http_rules`).
fn reserved(name: &str) -> bool {
    http_rules::is_framing(name) || http_rules::is_hop_by_hop(name)
}

fn name_matches(have: &str, want: &str, method: &NameMatch) -> bool {
    let (h, w) = (have.to_ascii_lowercase(), want.to_ascii_lowercase());
    match method {
        NameMatch::Str => h == w,
        NameMatch::Beg => h.starts_with(&w),
        NameMatch::End => h.ends_with(&w),
        NameMatch::Sub => h.contains(&w),
        NameMatch::Reg(p) => p.regex.is_match(have.as_bytes()),
    }
}

/// A format's value. A sample that yields nothing adds nothing, as in
/// HAProxy's header values (its log lines write `-` instead).
fn evaluate(format: &Format, src: &Sources<'_>, groups: Option<&Captures<'_>>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in &format.parts {
        match part {
            Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
            Part::Group(n) => {
                if let Some(m) = groups.and_then(|c| c.get(*n)) {
                    out.extend_from_slice(m.as_bytes());
                }
            }
            Part::Fetch(f) => out.extend(fetch(f, src).unwrap_or_default()),
        }
    }
    out
}

fn fetch(f: &Fetch, src: &Sources<'_>) -> Option<Vec<u8>> {
    let text = |s: String| Some(s.into_bytes());
    let (_, path, query) = split_target(&src.req.target);
    match f {
        Fetch::Src => text(src.conn.peer.ip().to_string()),
        Fetch::SrcPort => text(src.conn.peer.port().to_string()),
        Fetch::Dst => text(src.conn.local?.ip().to_string()),
        Fetch::DstPort => text(src.conn.local?.port().to_string()),
        Fetch::Hdr(name) => match src.res {
            Some(res) => last_value(&res.headers, name),
            None => last_value(&src.req.headers, name),
        },
        Fetch::ReqHdr(name) => last_value(&src.req.headers, name),
        Fetch::ResHdr(name) => last_value(&src.res?.headers, name),
        Fetch::Path => Some(path.as_bytes().to_vec()),
        Fetch::Url => Some(src.req.target.as_bytes().to_vec()),
        Fetch::Query => query.map(|q| q.as_bytes().to_vec()),
        Fetch::Method => Some(src.req.method.as_bytes().to_vec()),
        Fetch::SslFc => Some(if src.conn.tls {
            b"1".to_vec()
        } else {
            b"0".to_vec()
        }),
        Fetch::SslFcProtocol => Some(src.conn.handshake?.version.as_bytes().to_vec()),
        Fetch::SslFcSni => Some(src.conn.handshake?.sni.as_deref()?.as_bytes().to_vec()),
        Fetch::Status => src.res.map(|r| r.status.to_string().into_bytes()),
        Fetch::ClientCert(c) => {
            let leaf = src.conn.handshake?.client_leaf.as_ref().map(|c| c.as_ref());
            let v = crate::tls::client_cert::value(c, leaf)?;
            Some(crate::tls::client_cert::text(v, c.is_binary()))
        }
    }
}

/// `hdr(<name>)` as a log-format sample (`log-format` lines).
pub(crate) fn header_value(headers: &[Header], name: &str) -> Option<String> {
    last_value(headers, name).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The last comma-separated value of the last line of `name`, trimmed:
/// HAProxy's `hdr()` outside ACLs.
fn last_value(headers: &[Header], name: &str) -> Option<Vec<u8>> {
    let h = headers.iter().rev().find(|h| h.is(name))?;
    let v = h.value.rsplit(|&b| b == b',').next().unwrap_or(&[]);
    Some(v.trim_ascii().to_vec())
}

/// A request target as (scheme and authority of an absolute form, path,
/// query).
fn split_target(target: &str) -> (&str, &str, Option<&str>) {
    let start = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or(target.len(), |j| i + 3 + j),
        None => 0,
    };
    let (prefix, rest) = target.split_at(start);
    match rest.split_once('?') {
        Some((path, query)) => (prefix, path, Some(query)),
        None => (prefix, rest, None),
    }
}

/// A rewritten target, when it can go on a request line.
fn valid_target(t: Vec<u8>) -> Option<String> {
    if t.is_empty() || t.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return None;
    }
    String::from_utf8(t).ok()
}

/// The `Location` of a redirect, as HAProxy builds it.
fn location(r: &Redirect, src: &Sources<'_>) -> String {
    let target = String::from_utf8_lossy(&evaluate(&r.target, src, None)).into_owned();
    if r.kind == RedirectKind::Location {
        return target;
    }
    let (_, path, query) = split_target(&src.req.target);
    let mut rest = path.to_owned();
    if let (Some(q), false) = (query, r.drop_query) {
        rest.push('?');
        rest.push_str(q);
    }
    if r.append_slash && !rest.ends_with('/') {
        rest.push('/');
    }
    match r.kind {
        // A prefix of exactly "/" means a relative redirect.
        RedirectKind::Prefix if target == "/" => rest,
        RedirectKind::Prefix => format!("{target}{rest}"),
        _ => {
            let host = last_value(&src.req.headers, "host").unwrap_or_default();
            format!("{target}://{}{rest}", String::from_utf8_lossy(&host))
        }
    }
}

/// The response of `http-request return`.
fn reply_bytes(reply: &Reply, src: &Sources<'_>) -> Vec<u8> {
    let body: Vec<u8> = match &reply.body {
        ReplyBody::None => Vec::new(),
        ReplyBody::Bytes(b) => b.to_vec(),
        ReplyBody::Format(f) => evaluate(f, src, None),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        errors::reason(reply.status)
    )
    .into_bytes();
    if let Some(t) = &reply.content_type {
        out.extend_from_slice(format!("content-type: {t}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    for (name, value) in &reply.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend(evaluate(value, src, None));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("/a/b?x=1"), ("", "/a/b", Some("x=1")));
        assert_eq!(split_target("/a"), ("", "/a", None));
        assert_eq!(
            split_target("http://h:1/p?q"),
            ("http://h:1", "/p", Some("q"))
        );
        assert_eq!(split_target("http://h"), ("http://h", "", None));
    }

    #[test]
    fn invalid_targets_are_refused() {
        assert!(valid_target(b"/a b".to_vec()).is_none());
        assert!(valid_target(Vec::new()).is_none());
        assert_eq!(valid_target(b"/ok".to_vec()).as_deref(), Some("/ok"));
    }

    #[test]
    fn deleting_by_prefix_keeps_framing_headers() {
        let headers = vec![
            Header {
                name: "Content-Length".into(),
                value: b"5".to_vec(),
            },
            Header {
                name: "Content-Type".into(),
                value: b"text/plain".to_vec(),
            },
        ];
        let req =
            crate::proxy::http1::head::parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1024)
                .unwrap()
                .unwrap()
                .0;
        let conn = Conn {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            local: None,
            tls: false,
            handshake: None,
        };
        let src = Sources {
            req: &req,
            res: None,
            conn: &conn,
        };
        let action = HeaderAction::Del {
            name: "content-".into(),
            method: NameMatch::Beg,
        };
        let mut h = headers.clone();
        apply_edit(plan_header(&action, &headers, &src), &mut h);
        assert_eq!(h, headers[..1].to_vec());
    }

    #[test]
    fn last_header_value() {
        let h = vec![
            Header {
                name: "X-F".into(),
                value: b"1.1.1.1, 2.2.2.2".to_vec(),
            },
            Header {
                name: "Host".into(),
                value: b"a".to_vec(),
            },
        ];
        assert_eq!(last_value(&h, "x-f").as_deref(), Some(&b"2.2.2.2"[..]));
        assert_eq!(last_value(&h, "nope"), None);
    }
}
