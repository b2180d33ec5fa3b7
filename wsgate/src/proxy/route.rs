//! Routing: ACL evaluation and `use_backend`, and the request facts that
//! ACLs and hash-based `balance` algorithms read (path, headers, method,
//! client address, TLS).
//!
//! Stage: the session has parsed a request head; it wraps it here with the
//! peer address and hands it to the backend selection (`use_backend`
//! rules, then `default_backend`) and to `connect` (the balancer's key).

use std::net::{IpAddr, SocketAddr};

use super::http1::head::RequestHead;
use crate::balance::Fetch;
#[cfg(test)]
use crate::config::model::CondTerm;
use crate::config::model::{
    Acl, AclFetch, AclTerm, BackendId, Condition, Frontend, MatchMethod, Network,
};

/// One request as routing and balancing see it.
pub struct RequestFacts<'a> {
    pub head: Option<&'a RequestHead>,
    pub peer: SocketAddr,
    /// The address the client connected to (`dst_port`).
    pub local: Option<SocketAddr>,
    pub tls: bool,
    /// Backend state, for `nbsrv(<backend>)`; without it `nbsrv` is 0.
    pub runtime: Option<&'a super::Runtime>,
    /// Stick counters (`sc_*`, `src_*`); without them those give nothing.
    pub scope: Option<super::track::Scope<'a>>,
    /// Mode tcp: the client's first bytes (`req.payload`).
    pub payload: Option<&'a [u8]>,
    /// What the client's TLS handshake with wsgate said: the server name
    /// (`ssl_fc_sni`), the client certificate (`ssl_c_*`).
    pub handshake: Option<&'a crate::tls::Handshake>,
    /// Mode tcp content inspection: what the client's first bytes said
    /// (`req.ssl_sni`, `req.ssl_hello_type`, `req.ssl_ver`, `req.len`).
    pub inspected: Option<&'a super::inspect::Inspected>,
}

impl<'a> RequestFacts<'a> {
    pub fn http(head: &'a RequestHead, peer: SocketAddr, tls: bool) -> RequestFacts<'a> {
        RequestFacts {
            head: Some(head),
            peer,
            local: None,
            tls,
            runtime: None,
            scope: None,
            payload: None,
            handshake: None,
            inspected: None,
        }
    }

    pub fn tcp(peer: SocketAddr, tls: bool) -> RequestFacts<'a> {
        RequestFacts {
            head: None,
            peer,
            local: None,
            tls,
            runtime: None,
            scope: None,
            payload: None,
            handshake: None,
            inspected: None,
        }
    }

    /// The connection's TLS handshake, for `ssl_fc_sni` and `ssl_c_*`.
    pub fn with_handshake(
        mut self,
        handshake: Option<&'a crate::tls::Handshake>,
    ) -> RequestFacts<'a> {
        self.handshake = handshake;
        self
    }

    /// The connection's TLS handshake and the address the client reached
    /// (`dst_port`), from the session's view of the connection.
    pub fn with_conn(self, conn: &super::rules::Conn<'a>) -> RequestFacts<'a> {
        RequestFacts {
            local: conn.local,
            ..self.with_handshake(conn.handshake)
        }
    }

    /// The address the client connected to (`dst_port`).
    pub fn with_local(mut self, local: Option<SocketAddr>) -> RequestFacts<'a> {
        self.local = local;
        self
    }

    /// What content inspection found in the client's first bytes.
    pub fn with_inspected(
        mut self,
        inspected: Option<&'a super::inspect::Inspected>,
    ) -> RequestFacts<'a> {
        self.inspected = inspected;
        self
    }

    /// Lets ACLs read stick counters, and backend state (`nbsrv`).
    pub fn with_scope(mut self, scope: super::track::Scope<'a>) -> RequestFacts<'a> {
        self.runtime = Some(scope.runtime);
        self.scope = Some(scope);
        self
    }

    /// Lets ACLs read backend state (`nbsrv`).
    pub fn with_runtime(mut self, runtime: &'a super::Runtime) -> RequestFacts<'a> {
        self.runtime = Some(runtime);
        self
    }

    /// `nbsrv(<backend>)`: usable active servers, or usable backups when no
    /// active one is (HAProxy's count).
    fn usable_servers(&self, backend: &str) -> i64 {
        let Some(b) = self
            .runtime
            .and_then(|r| r.backends.iter().find(|b| b.config.name == backend))
        else {
            return 0;
        };
        let (active, backup) = b.usable_counts();
        i64::try_from(if active > 0 { active } else { backup }).unwrap_or(i64::MAX)
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

    fn method(&self) -> Option<&str> {
        self.head.map(|h| h.method.as_str())
    }
}

/// The backend for a request: the first `use_backend` rule whose condition
/// holds, else `default_backend`; `None` (503) when neither applies.
pub fn select_backend(
    frontend: &Frontend,
    facts: &RequestFacts<'_>,
    _runtime: &super::Runtime,
) -> Option<BackendId> {
    for rule in &frontend.use_backends {
        let holds = match &rule.condition {
            None => true,
            Some(c) => condition_holds(c, &frontend.acls, facts),
        };
        if holds {
            return Some(rule.backend);
        }
    }
    frontend.default_backend
}

/// `if`/`unless`: groups OR-ed, terms in a group AND-ed.
pub fn condition_holds(c: &Condition, acls: &[Acl], facts: &RequestFacts<'_>) -> bool {
    let any = c.groups.iter().any(|group| {
        group.iter().all(|t| {
            let matched = acls
                .get(t.acl)
                .is_some_and(|acl| acl.terms.iter().any(|term| term_matches(term, facts)));
            matched != t.negate
        })
    });
    any != c.unless
}

/// The samples a fetch yields for this request (several for a header
/// with several values).
fn samples<'a>(fetch: &'a AclFetch, facts: &RequestFacts<'a>) -> Vec<Sample<'a>> {
    match fetch {
        AclFetch::Path => facts
            .head
            .map(|h| Sample::Text(path_of(&h.target).as_bytes()))
            .into_iter()
            .collect(),
        // Without a name, HAProxy 2.6's string header fetches yield
        // nothing in an ACL (checked side by side): never a match.
        AclFetch::Hdr(name) if name.is_empty() => Vec::new(),
        AclFetch::Hdr(name) => header_values(facts, name).map(Sample::Text).collect(),
        AclFetch::Url => facts
            .head
            .map(|h| Sample::Text(h.target.as_bytes()))
            .into_iter()
            .collect(),
        AclFetch::HdrCnt(name) => {
            let n = header_values(facts, name).count();
            vec![Sample::Int(i64::try_from(n).unwrap_or(i64::MAX))]
        }
        AclFetch::UrlParam(p) => facts
            .head
            .map(|h| url_params(h.target.as_bytes(), p).map(Sample::Text))
            .into_iter()
            .flatten()
            .collect(),
        AclFetch::DstPort => facts
            .local
            .map(|a| Sample::Int(i64::from(a.port())))
            .into_iter()
            .collect(),
        AclFetch::Nbsrv(backend) => vec![Sample::Int(facts.usable_servers(backend))],
        AclFetch::Counter(c) => super::track::counter(c, facts)
            .map(Sample::Int)
            .into_iter()
            .collect(),
        AclFetch::Rand(range) => {
            let n = fastrand::u32(..);
            vec![Sample::Int(((u64::from(n) * range) >> 32) as i64)]
        }
        AclFetch::Method => facts
            .head
            .map(|h| Sample::Text(h.method.as_bytes()))
            .into_iter()
            .collect(),
        AclFetch::Src => vec![Sample::Ip(canonical(facts.peer.ip()))],
        AclFetch::SslFc => vec![Sample::Bool(facts.tls)],
        AclFetch::SslFcSni => facts
            .handshake
            .and_then(|h| h.sni.as_deref())
            .map(|s| Sample::Text(s.as_bytes()))
            .into_iter()
            .collect(),
        AclFetch::SslFcProtocol => facts
            .handshake
            .map(|h| Sample::Text(h.version.as_bytes()))
            .into_iter()
            .collect(),
        AclFetch::AlwaysTrue => vec![Sample::Bool(true)],
        AclFetch::ReqSslSni => facts
            .inspected
            .and_then(|i| i.sni.found())
            .map(|s| Sample::Text(s))
            .into_iter()
            .collect(),
        AclFetch::ReqSslHelloType => facts
            .inspected
            .and_then(|i| i.hello_type.found())
            .map(|t| Sample::Int(i64::from(*t)))
            .into_iter()
            .collect(),
        AclFetch::ReqSslVer => facts
            .inspected
            .and_then(|i| i.version.found())
            .map(|v| Sample::Int(i64::from(*v)))
            .into_iter()
            .collect(),
        AclFetch::ReqLen => facts
            .inspected
            .map(|i| Sample::Int(i64::try_from(i.len).unwrap_or(i64::MAX)))
            .into_iter()
            .collect(),
        AclFetch::ClientCert(c) => client_cert(c, facts).into_iter().collect(),
        // True once inspection stops waiting (always, outside it).
        AclFetch::WaitEnd => vec![Sample::Bool(facts.inspected.is_none_or(|i| i.definitive))],
        AclFetch::HttpAuth(r) => vec![Sample::Bool(
            super::auth::authenticated(r, facts.head).is_some(),
        )],
        AclFetch::HttpAuthGroup(r) => super::auth::authenticated(r, facts.head)
            .map(|u| {
                u.groups
                    .iter()
                    .map(|g| Sample::Text(g.as_bytes()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Every comma-separated value of header `name` (of every header when
/// `name` is empty), trimmed.
fn header_values<'a>(
    facts: &RequestFacts<'a>,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    facts
        .head
        .into_iter()
        .flat_map(|h| h.headers.iter())
        .filter(move |hd| name.is_empty() || hd.is(name))
        .flat_map(|hd| hd.value.split(|&c| c == b','))
        .map(<[u8]>::trim_ascii)
}

/// The values of a query parameter as HAProxy 2.6's `url_param` reads
/// them (checked side by side): the parameters begin after the first
/// `delim` of the target and are separated by `&`, `;` or `delim`; a
/// parameter counts only with a `=` (`?a` has no value, `?a=` an empty
/// one); an empty name takes every parameter that has one.
pub(crate) fn url_params<'t>(
    target: &'t [u8],
    p: &'t crate::config::model::UrlParam,
) -> impl Iterator<Item = &'t [u8]> + 't {
    let list = target
        .iter()
        .position(|&c| c == p.delim)
        .map_or(&[][..], |i| &target[i + 1..]);
    list.split(move |&c| c == b'&' || c == b';' || c == p.delim)
        .filter_map(move |param| {
            let eq = param.iter().position(|&c| c == b'=')?;
            (p.name.is_empty() || &param[..eq] == p.name.as_bytes()).then(|| &param[eq + 1..])
        })
}

/// An `ssl_c_*` sample: nothing on a plain connection.
fn client_cert<'a>(
    fetch: &crate::config::model::CertFetch,
    facts: &RequestFacts<'a>,
) -> Option<Sample<'a>> {
    use crate::tls::client_cert::{self, CertValue};
    let h = facts.handshake?;
    Some(
        match client_cert::value(fetch, h.client_leaf.as_ref().map(|c| c.as_ref()))? {
            CertValue::Bool(b) => Sample::Bool(b),
            CertValue::Int(n) => Sample::Int(n),
            CertValue::Bytes(b) => Sample::Owned(b),
        },
    )
}

enum Sample<'a> {
    Text(&'a [u8]),
    /// Text computed for the request (a client certificate's field).
    Owned(Vec<u8>),
    Ip(IpAddr),
    Bool(bool),
    Int(i64),
}

/// The path of a request target: before `?`, after any scheme and host.
fn path_of(target: &str) -> &str {
    let path = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            rest.find('/').map_or("", |j| &rest[j..])
        }
        None => target,
    };
    path.split('?').next().unwrap_or("")
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(super) fn in_network(ip: IpAddr, n: &Network) -> bool {
    match (canonical(ip), n.ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(n.prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(n.prefix))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

pub(super) fn term_matches(term: &AclTerm, facts: &RequestFacts<'_>) -> bool {
    let samples = samples(&term.fetch, facts);
    if term.method == MatchMethod::Found {
        return !samples.is_empty();
    }
    samples.iter().any(|s| sample_matches(s, term))
}

fn sample_matches(sample: &Sample<'_>, term: &AclTerm) -> bool {
    match (sample, term.method) {
        (Sample::Owned(t), _) => sample_matches(&Sample::Text(t), term),
        (Sample::Bool(b), _) => *b,
        (Sample::Int(n), MatchMethod::Len) => in_ranges(term, n.to_string().len()),
        (Sample::Int(n), _) => term.ints.iter().any(|(lo, hi)| (lo..=hi).contains(&n)),
        (Sample::Text(t), MatchMethod::Len) => in_ranges(term, t.len()),
        (Sample::Text(t), MatchMethod::Reg) => term.regexes.iter().any(|r| r.0.is_match(t)),
        (Sample::Text(t), MatchMethod::Int) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .is_some_and(|n| term.ints.iter().any(|(lo, hi)| (*lo..=*hi).contains(&n))),
        (Sample::Ip(ip), _) => term.networks.iter().any(|n| in_network(*ip, n)),
        (Sample::Text(t), MatchMethod::Ip) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_some_and(|ip| term.networks.iter().any(|n| in_network(ip, n))),
        (Sample::Text(t), MatchMethod::Bool) => !t.is_empty(),
        (Sample::Text(t), method) => term
            .values
            .iter()
            .any(|v| text_matches(t, v.as_bytes(), method, term.ignore_case)),
    }
}

/// `-m len`: the sample's length is in one of the term's ranges.
fn in_ranges(term: &AclTerm, len: usize) -> bool {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    term.ints.iter().any(|(lo, hi)| (*lo..=*hi).contains(&len))
}

fn text_matches(sample: &[u8], pattern: &[u8], method: MatchMethod, ignore_case: bool) -> bool {
    let eq = |a: &[u8], b: &[u8]| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let n = pattern.len();
    match method {
        MatchMethod::Str => eq(sample, pattern),
        MatchMethod::Beg => sample.len() >= n && eq(&sample[..n], pattern),
        MatchMethod::End => sample.len() >= n && eq(&sample[sample.len() - n..], pattern),
        MatchMethod::Sub => n == 0 || sample.windows(n).any(|w| eq(w, pattern)),
        // The pattern as whole delimited parts: `/ ? . :` for domains,
        // `/ ?` for directories (HAProxy's match_word delimiters).
        MatchMethod::Dom | MatchMethod::Dir => {
            let dom = method == MatchMethod::Dom;
            let delim = |c: u8| matches!(c, b'/' | b'?') || (dom && matches!(c, b'.' | b':'));
            (0..sample.len().saturating_sub(n.saturating_sub(1))).any(|i| {
                i + n <= sample.len()
                    && eq(&sample[i..i + n], pattern)
                    && (i == 0 || delim(sample[i - 1]))
                    && (i + n == sample.len() || delim(sample[i + n]))
            })
        }
        MatchMethod::Bin => crate::tls::client_cert::hex(sample).as_bytes() == pattern,
        MatchMethod::Found
        | MatchMethod::Ip
        | MatchMethod::Bool
        | MatchMethod::Reg
        | MatchMethod::Int
        | MatchMethod::Len => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::http1::head::parse_request;

    fn head(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes(), 16384).unwrap().unwrap().0
    }

    fn term(words: &str) -> AclTerm {
        let toks: Vec<_> = words
            .split_whitespace()
            .map(|w| crate::config::lexer::Token {
                text: w.into(),
                line: 1,
                col: 1,
            })
            .collect();
        crate::config::acl::parse_acl(&toks).unwrap()
    }

    fn matches(words: &str, h: &RequestHead, tls: bool) -> bool {
        let facts = RequestFacts::http(h, "10.1.2.3:5000".parse().unwrap(), tls);
        term_matches(&term(words), &facts)
    }

    #[test]
    fn fetches_and_methods() {
        let ws = head("GET /chat/room?x=1 HTTP/1.1\r\nHost: www.Example.com:80\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n");
        assert!(matches("hdr(Upgrade) -i WebSocket", &ws, false));
        assert!(!matches("hdr(Upgrade) WebSocket", &ws, false));
        assert!(matches("hdr(connection) -i upgrade", &ws, false));
        assert!(matches("path /chat/room", &ws, false));
        assert!(!matches("path /chat", &ws, false));
        assert!(matches("path_beg /api /chat", &ws, false));
        assert!(matches("path_end /room", &ws, false));
        assert!(matches("path_sub at/ro", &ws, false));
        assert!(matches("hdr_beg(host) www.", &ws, false));
        assert!(matches("hdr_sub(host) -i example", &ws, false));
        assert!(matches("hdr_dom(host) -i example.com", &ws, false));
        assert!(!matches("hdr_dom(host) -i ample.com", &ws, false));
        assert!(matches(
            "hdr(x-none) -m found",
            &head("GET / HTTP/1.1\r\nHost: a\r\nX-None: \r\n\r\n"),
            false
        ));
        assert!(!matches("hdr(x-none) -m found", &ws, false));
        assert!(matches("method GET POST", &ws, false));
        assert!(matches("src 10.0.0.0/8", &ws, false));
        assert!(!matches("src 192.168.0.0/16 127.0.0.1", &ws, false));
        assert!(matches("ssl_fc", &ws, true));
        assert!(!matches("ssl_fc", &ws, false));
        assert!(matches("always_true", &ws, false));
        assert!(matches("path -m beg /ch", &ws, false));
    }

    #[test]
    fn url_reg_dir_and_counts() {
        let h = head("GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: a\r\nX-Scheme: https\r\nAccept: a, b\r\nAccept: c\r\n\r\n");
        assert!(matches("url_beg /socket.io", &h, false));
        assert!(matches("capture.req.uri -m beg /socket", &h, false));
        assert!(matches("url_end EIO=4", &h, false), "url keeps the query");
        assert!(!matches("path_end EIO=4", &h, false), "path does not");
        assert!(matches("url_sub ?EIO", &h, false));
        assert!(matches("url_reg ^/socket\\.io/\\?EIO=[0-9]+$", &h, false));
        assert!(matches("path_reg -i ^/SOCKET", &h, false));
        assert!(!matches("path_reg ^/SOCKET", &h, false));
        assert!(matches("path_dir socket.io", &h, false));
        assert!(!matches("path_dir socket", &h, false));
        assert!(matches("req.hdr_cnt(X-Scheme) eq 1", &h, false));
        assert!(matches("hdr_cnt(x-missing) eq 0", &h, false));
        assert!(
            matches("hdr_cnt(accept) gt 2", &h, false),
            "values, not lines"
        );
        assert!(!matches("hdr_cnt(accept) lt 3", &h, false));
        assert!(matches("hdr_cnt(accept) 2:5", &h, false));
        assert!(
            !matches("hdr_beg -i HTTPS", &h, false),
            "no name: nothing, as HAProxy"
        );
        assert!(!matches("hdr -m found", &h, false));
        assert!(
            matches("hdr_cnt gt 3", &h, false),
            "hdr_cnt without a name: all headers"
        );
        // Without backend state (no runtime), nbsrv counts nothing.
        assert!(matches("nbsrv(app) lt 1", &h, false));
        let predefined = crate::config::acl::predefined("METH_GET").unwrap();
        assert!(term_matches(
            &predefined,
            &RequestFacts::http(&h, "10.1.2.3:5000".parse().unwrap(), false)
        ));
    }

    /// The cases checked against HAProxy 2.6 with `%[url_param(..)]`.
    #[test]
    fn url_param_reads_as_haproxy() {
        let values = |target: &str, name: &str, delim: u8| -> Vec<String> {
            let p = crate::config::model::UrlParam {
                name: name.into(),
                delim,
            };
            url_params(target.as_bytes(), &p)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        };
        assert_eq!(values("/x?a=1&b=2", "a", b'?'), ["1"]);
        assert_eq!(values("/x?b=2&a=3", "", b'?'), ["2", "3"]);
        assert!(values("/x?a", "a", b'?').is_empty(), "no '=': no value");
        assert_eq!(values("/x?a=", "a", b'?'), [""]);
        assert_eq!(values("/x?z&a=5", "", b'?'), ["5"]);
        assert_eq!(values("/x?c=1;a=7", "a", b'?'), ["7"]);
        assert_eq!(values("/x;b=9?a=1", "b", b';'), ["9?a=1"]);
        assert!(values("/x?A=1", "a", b'?').is_empty(), "names are exact");
        assert_eq!(values("/x?aa=1&a=2", "a", b'?'), ["2"]);
        assert_eq!(values("/x?q=1?a=2", "a", b'?'), ["2"]);
        assert_eq!(values("/x?=3&a=4", "", b'?'), ["3", "4"]);
        assert!(values("/x", "", b'?').is_empty());
    }

    #[test]
    fn len_dst_port_and_protocol() {
        let h = head("GET /abcde?a=abc&a=2 HTTP/1.1\r\nHost: a\r\nX: ab, cd\r\n\r\n");
        assert!(matches("url_param(a) 2", &h, false), "any occurrence");
        assert!(matches("urlp(a) -m beg ab", &h, false));
        assert!(matches("urlp_len(a) 3", &h, false));
        assert!(matches("path -m len 6", &h, false));
        assert!(!matches("path -m len 5", &h, false));
        assert!(matches("path_len ge 6", &h, false));
        assert!(matches("hdr(x) -m len 2", &h, false), "each value");
        assert!(matches("method -m len 3", &h, false));
        let t = term("dst_port 8000:8080 443");
        let at = |port: u16| {
            let facts = RequestFacts::http(&h, "10.1.2.3:5000".parse().unwrap(), false)
                .with_local(Some(SocketAddr::from(([127, 0, 0, 1], port))));
            term_matches(&t, &facts)
        };
        assert!(at(443) && at(8000) && at(8080));
        assert!(!at(80) && !at(8081));
        let facts = RequestFacts::http(&h, "10.1.2.3:5000".parse().unwrap(), false);
        assert!(!term_matches(&t, &facts), "no local address: no port");
        assert!(
            !matches("ssl_fc_protocol -m found", &h, false),
            "plain: none"
        );
    }

    #[test]
    fn conditions_and_or_not() {
        let h = head("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n");
        let facts = RequestFacts::http(&h, "127.0.0.1:1".parse().unwrap(), false);
        let acls = vec![
            Acl {
                name: "api".into(),
                terms: vec![term("path_beg /api")],
            },
            Acl {
                name: "tls".into(),
                terms: vec![term("ssl_fc")],
            },
            // Two lines, one name: OR-ed.
            Acl {
                name: "either".into(),
                terms: vec![term("path /nope"), term("path /api/x")],
            },
        ];
        let t = |acl, negate| CondTerm { acl, negate };
        let cond = |unless, groups: Vec<Vec<CondTerm>>| Condition { unless, groups };
        assert!(condition_holds(
            &cond(false, vec![vec![t(0, false)]]),
            &acls,
            &facts
        ));
        assert!(!condition_holds(
            &cond(false, vec![vec![t(0, false), t(1, false)]]),
            &acls,
            &facts
        ));
        assert!(condition_holds(
            &cond(false, vec![vec![t(1, false)], vec![t(2, false)]]),
            &acls,
            &facts
        ));
        assert!(condition_holds(
            &cond(false, vec![vec![t(0, false), t(1, true)]]),
            &acls,
            &facts
        ));
        assert!(!condition_holds(
            &cond(true, vec![vec![t(0, false)]]),
            &acls,
            &facts
        ));
    }
}
