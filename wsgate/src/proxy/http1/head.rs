//! HTTP/1.1 message heads (RFC 9112): strict parsing and re-serialisation.
//!
//! Stage: the session reads bytes until a head is complete, parses it here,
//! and writes the rewritten head to the other side. Parsing is strict on
//! purpose (DESIGN.md principle 5): a proxy that disagrees with its backend
//! about where a message ends is a request-smuggling hole, so anything
//! ambiguous is refused rather than repaired. `httparse` does the
//! tokenising (it rejects obs-fold, bare CR, whitespace before the colon and
//! control characters in values); this module adds the framing rules on top.

use super::body::BodyKind;

/// Upper bound on header lines, as HAProxy's `tune.http.maxhdr` (101).
const MAX_HEADERS: usize = 101;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn from_minor(minor: Option<u8>) -> Option<Version> {
        match minor {
            Some(0) => Some(Version::Http10),
            Some(1) => Some(Version::Http11),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

impl Header {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// What the `Connection` header lists, plus the header names it nominates
/// as hop-by-hop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Other tokens: header names the sender wants removed at this hop.
    pub others: Vec<String>,
}

impl ConnectionTokens {
    fn from_headers(headers: &[Header]) -> ConnectionTokens {
        let mut tokens = ConnectionTokens::default();
        for h in headers.iter().filter(|h| h.is("connection")) {
            for token in String::from_utf8_lossy(&h.value).split(',') {
                let token = token.trim().to_ascii_lowercase();
                match token.as_str() {
                    "" => {}
                    "close" => tokens.close = true,
                    "keep-alive" => tokens.keep_alive = true,
                    "upgrade" => tokens.upgrade = true,
                    _ => tokens.others.push(token),
                }
            }
        }
        tokens
    }

    /// Whether `Connection` names a header that every hop needs as if it
    /// were this hop's alone. Removing it, as RFC 9110 §7.6.1 asks of a
    /// proxy, would drop the Host or change the framing of a body that is
    /// forwarded as it is (`Connection: content-length`: the server would
    /// read the body as the next request). Such messages are refused
    /// (found by fuzz/ `http1_request_head`).
    fn names_end_to_end(&self) -> bool {
        self.others
            .iter()
            .any(|o| matches!(o.as_str(), "host" | "content-length" | "transfer-encoding"))
    }

    /// Whether `name` must not be forwarded to the next hop (RFC 9110
    /// §7.6.1): the fixed hop-by-hop set plus whatever `Connection` names.
    fn is_hop_by_hop(&self, name: &str) -> bool {
        const FIXED: [&str; 6] = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
            "proxy-authenticate",
        ];
        FIXED.iter().any(|f| name.eq_ignore_ascii_case(f))
            || self.others.iter().any(|o| name.eq_ignore_ascii_case(o))
    }
}

/// Why a request head was refused; each maps to one status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request head larger than tune.bufsize")]
    HeadTooLarge,
    #[error("request line larger than tune.bufsize")]
    UriTooLong,
    #[error("HTTP version not supported")]
    Version,
    #[error("method {0} is not supported")]
    Method(String),
    #[error("transfer coding {0} is not supported in requests")]
    Coding(String),
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::Malformed(_) => 400,
            RequestError::HeadTooLarge => 431,
            RequestError::UriTooLong => 414,
            RequestError::Version => 505,
            RequestError::Method(_) | RequestError::Coding(_) => 501,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<Header>,
    pub body: BodyKind,
    pub connection: ConnectionTokens,
    /// The `Upgrade` header value when the request asks for a protocol
    /// switch (`Connection: upgrade` plus `Upgrade`), e.g. `websocket`.
    pub upgrade: Option<String>,
}

impl RequestHead {
    /// Whether the client wants the connection kept open after this
    /// exchange (HTTP/1.1 default, or HTTP/1.0 with `keep-alive`).
    pub fn wants_keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        }
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Serialises the head for the server, in the client's HTTP version:
    /// hop-by-hop headers removed, the
    /// upgrade request kept when there is one, `X-Forwarded-For` appended
    /// when asked (under the header name given, `option forwardfor
    /// header`), and `Connection: close` unless the request is an upgrade
    /// (server connections are not reused yet).
    pub fn write_for_server(
        &self,
        forwarded_for: Option<(&str, std::net::IpAddr)>,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        // The client's version: an HTTP/1.0 request may lack Host, which
        // would make it an invalid HTTP/1.1 one (found by http1/fuzz.rs).
        out.extend_from_slice(match self.version {
            Version::Http10 => b" HTTP/1.0\r\n",
            Version::Http11 => b" HTTP/1.1\r\n",
        });
        for h in &self.headers {
            if self.connection.is_hop_by_hop(&h.name) && !h.is("te") {
                continue;
            }
            if h.is("te") && !te_is_trailers_only(&h.value) {
                continue;
            }
            write_header(out, &h.name, &h.value);
        }
        if let Some((name, ip)) = forwarded_for {
            write_header(out, name, ip.to_string().as_bytes());
        }
        match &self.upgrade {
            Some(protocol) => {
                write_header(out, "Connection", b"upgrade");
                write_header(out, "Upgrade", protocol.as_bytes());
            }
            None => write_header(out, "Connection", b"close"),
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `TE: trailers` is the one TE value that may be forwarded (RFC 9110
/// §10.1.4); any transfer-coding preference is this hop's business only.
fn te_is_trailers_only(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"trailers")
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a request head at the start of `buf`. `Ok(None)` means more
/// bytes are needed; `limit` is `tune.bufsize`.
pub fn parse_request(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let parsed = match req.parse(buf) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(httparse::Error::Version) => return Err(RequestError::Version),
        Err(e) => return Err(RequestError::Malformed(httparse_reason(e))),
    };
    let len = match parsed {
        httparse::Status::Complete(len) if len <= limit => len,
        httparse::Status::Complete(_) => return Err(too_large(buf)),
        httparse::Status::Partial if buf.len() >= limit => return Err(too_large(buf)),
        httparse::Status::Partial => return Ok(None),
    };
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let version = Version::from_minor(req.version).ok_or(RequestError::Version)?;
    let headers = collect_headers(req.headers);
    if method == "CONNECT" {
        return Err(RequestError::Method(method));
    }
    let hosts = headers.iter().filter(|h| h.is("host")).count();
    if hosts > 1 || (version == Version::Http11 && hosts == 0) {
        return Err(RequestError::Malformed(
            "a request needs exactly one Host header",
        ));
    }
    let body = request_body(&headers, version)?;
    let connection = ConnectionTokens::from_headers(&headers);
    if connection.names_end_to_end() {
        return Err(RequestError::Malformed(
            "Connection names Host, Content-Length or Transfer-Encoding",
        ));
    }
    let upgrade = if connection.upgrade && version == Version::Http11 {
        headers
            .iter()
            .find(|h| h.is("upgrade"))
            .map(|h| String::from_utf8_lossy(&h.value).trim().to_owned())
            // h2c is a different protocol on this very connection; the
            // server must not be asked to switch to it through us.
            .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("h2c"))
    } else {
        None
    };
    Ok(Some((
        RequestHead {
            method,
            target,
            version,
            headers,
            body,
            connection,
            upgrade,
        },
        len,
    )))
}

fn too_large(buf: &[u8]) -> RequestError {
    if buf.contains(&b'\n') {
        RequestError::HeadTooLarge
    } else {
        RequestError::UriTooLong
    }
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name (space before colon, or a folded line)",
        httparse::Error::HeaderValue => "invalid character in a header value",
        httparse::Error::NewLine => "bare CR or invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid token in the request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

fn collect_headers(raw: &[httparse::Header<'_>]) -> Vec<Header> {
    raw.iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect()
}

/// Message body framing of a request (RFC 9112 §6.3): Transfer-Encoding
/// chunked, or one Content-Length, or none. Both at once, a
/// Transfer-Encoding that does not end in chunked, and conflicting
/// Content-Length values are refused.
fn request_body(headers: &[Header], version: Version) -> Result<BodyKind, RequestError> {
    let te = transfer_encoding(headers).map_err(RequestError::Malformed)?;
    let cl = content_length(headers).map_err(RequestError::Malformed)?;
    match (te, cl) {
        (Some(_), Some(_)) => Err(RequestError::Malformed(
            "both Transfer-Encoding and Content-Length",
        )),
        (Some(_), None) if version == Version::Http10 => Err(RequestError::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request",
        )),
        (Some(true), None) => match other_coding(headers) {
            // wsgate forwards the body as it is: a server that knows the
            // coding and one that ignores it would read different bodies.
            // HAProxy 2.6 refuses these too (422); RFC 9112 §6.1 says 501.
            Some(coding) => Err(RequestError::Coding(coding)),
            None => Ok(BodyKind::Chunked),
        },
        (Some(false), None) => Err(RequestError::Malformed(
            "Transfer-Encoding does not end with chunked",
        )),
        (None, Some(0)) | (None, None) => Ok(BodyKind::None),
        (None, Some(n)) => Ok(BodyKind::Length(n)),
    }
}

/// `Some(true)` when Transfer-Encoding is present and its last coding is
/// `chunked`; `Some(false)` when present otherwise.
fn transfer_encoding(headers: &[Header]) -> Result<Option<bool>, &'static str> {
    let mut last: Option<String> = None;
    let mut chunked_seen = 0;
    for h in headers.iter().filter(|h| h.is("transfer-encoding")) {
        for coding in String::from_utf8_lossy(&h.value).split(',') {
            let coding = coding.trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            if coding == "chunked" {
                chunked_seen += 1;
            }
            last = Some(coding);
        }
        if last.is_none() {
            return Err("empty Transfer-Encoding");
        }
    }
    if chunked_seen > 1 {
        return Err("chunked applied more than once");
    }
    Ok(last.map(|l| l == "chunked"))
}

/// A transfer coding other than `chunked` in Transfer-Encoding, if any.
fn other_coding(headers: &[Header]) -> Option<String> {
    headers
        .iter()
        .filter(|h| h.is("transfer-encoding"))
        .flat_map(|h| {
            String::from_utf8_lossy(&h.value)
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .find(|c| !c.is_empty() && c != "chunked")
}

/// The Content-Length, if any. Repeated identical values (in one header
/// or several) are accepted as RFC 9112 §6.3 allows; differing ones are not.
fn content_length(headers: &[Header]) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    for h in headers.iter().filter(|h| h.is("content-length")) {
        for part in h.value.split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            match found {
                Some(prev) if prev != n => return Err("conflicting Content-Length values"),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Why a response head was refused: always a 502 to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("response head larger than tune.bufsize")]
    TooLarge,
}

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub version: Version,
    pub headers: Vec<Header>,
    pub body: BodyKind,
    pub connection: ConnectionTokens,
}

impl ResponseHead {
    /// Serialises the head for the client. Hop-by-hop headers are dropped
    /// except on a `101`, whose `Connection`/`Upgrade` belong to the switch
    /// the client asked for; `Connection: close` is added when the client
    /// connection will end after this response.
    pub fn write_for_client(&self, close: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let switching = self.status == 101;
        for h in &self.headers {
            if !switching && self.connection.is_hop_by_hop(&h.name) {
                continue;
            }
            write_header(out, &h.name, &h.value);
        }
        if close && !switching {
            write_header(out, "Connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses a response head. `request_was_head` matters for framing: a
/// response to HEAD never has a body whatever its headers say.
pub fn parse_response(
    buf: &[u8],
    limit: usize,
    request_was_head: bool,
) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let parsed = match resp.parse(buf) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooLarge),
        Err(e) => return Err(ResponseError::Malformed(httparse_reason(e))),
    };
    let len = match parsed {
        httparse::Status::Complete(len) if len <= limit => len,
        httparse::Status::Partial if buf.len() < limit => return Ok(None),
        _ => return Err(ResponseError::TooLarge),
    };
    let status = resp.code.unwrap_or_default();
    if status < 100 {
        // "000" or "099" would be written back as "0" or "99": not a
        // status line any client reads (found by http1/fuzz.rs).
        return Err(ResponseError::Malformed("status code below 100"));
    }
    let version =
        Version::from_minor(resp.version).ok_or(ResponseError::Malformed("unsupported version"))?;
    let reason = resp.reason.unwrap_or_default().to_owned();
    let headers = collect_headers(resp.headers);
    let connection = ConnectionTokens::from_headers(&headers);
    if connection.names_end_to_end() {
        return Err(ResponseError::Malformed(
            "Connection names Content-Length or Transfer-Encoding",
        ));
    }
    let te = transfer_encoding(&headers).map_err(ResponseError::Malformed)?;
    let cl = content_length(&headers).map_err(ResponseError::Malformed)?;
    let body = if request_was_head || (100..200).contains(&status) || status == 204 || status == 304
    {
        BodyKind::None
    } else {
        match (te, cl) {
            (Some(_), Some(_)) => {
                return Err(ResponseError::Malformed(
                    "both Transfer-Encoding and Content-Length",
                ))
            }
            (Some(true), None) => BodyKind::Chunked,
            // A response whose last coding is not chunked ends at close.
            (Some(false), None) | (None, None) => BodyKind::UntilClose,
            (None, Some(0)) => BodyKind::None,
            (None, Some(n)) => BodyKind::Length(n),
        }
    };
    Ok(Some((
        ResponseHead {
            status,
            reason,
            version,
            headers,
            body,
            connection,
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse_request(text.as_bytes(), 16384)
    }

    #[test]
    fn websocket_upgrade_is_recognised() {
        let text = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nxx";
        let (head, len) = req(text).unwrap().unwrap();
        assert_eq!(len, text.len() - 2);
        assert_eq!(head.upgrade.as_deref(), Some("websocket"));
        let mut out = Vec::new();
        head.write_for_server(None, &mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
            "{out}"
        );
        assert!(!out.contains("keep-alive"));
    }

    /// Found by fuzz/ `http1_request_head` (Host) and then by looking
    /// around it: a header every hop needs, named in `Connection`, would
    /// have been removed before forwarding.
    #[test]
    fn connection_naming_end_to_end_headers_is_refused() {
        for named in ["Host", "content-length", "Transfer-Encoding"] {
            let text = format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close, {named}\r\n\r\nhello"
            );
            assert_eq!(
                req(&text).unwrap_err(),
                RequestError::Malformed(
                    "Connection names Host, Content-Length or Transfer-Encoding"
                ),
                "{named}"
            );
        }
        let fuzzed = b"BGET / HTTP/1.1\r\nHost:~\xd1k\r\nConnection:\xc2\x96,,/,,Host,,`a\r\n\r\n";
        assert_eq!(parse_request(fuzzed, 16384).unwrap_err().status(), 400);
        let response =
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello";
        assert!(parse_response(response.as_bytes(), 16384, false).is_err());
        // Other names are still this hop's, removed as before.
        let (head, _) = req("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        head.write_for_server(None, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("X-Hop"));
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(req("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
    }

    #[test]
    fn framing_violations_are_400() {
        let cases = [
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for case in cases {
            let err = req(case).unwrap_err();
            assert_eq!(err.status(), 400, "{case:?}: {err}");
        }
    }

    #[test]
    fn same_content_length_twice_is_accepted() {
        let (head, _) =
            req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(head.body, BodyKind::Length(3));
    }

    #[test]
    fn oversized_heads_are_431_or_414() {
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(200)
        );
        assert_eq!(
            parse_request(big.as_bytes(), 100).unwrap_err().status(),
            431
        );
        let long_uri = format!("GET /{} HTTP/1.1", "a".repeat(200));
        assert_eq!(
            parse_request(long_uri.as_bytes(), 100)
                .unwrap_err()
                .status(),
            414
        );
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let (head, _) = req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: gzip\r\nX-Ok: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        head.write_for_server(
            Some(("X-Forwarded-For", "10.0.0.1".parse().unwrap())),
            &mut out,
        );
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("X-Secret") && !out.contains("Keep-Alive") && !out.contains("TE:"));
        assert!(out.contains("X-Ok: 2\r\n"));
        assert!(out.contains("X-Forwarded-For: 10.0.0.1\r\n"));
        assert!(out.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn response_framing() {
        let r = |t: &str, head| {
            parse_response(t.as_bytes(), 16384, head)
                .unwrap()
                .unwrap()
                .0
                .body
        };
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            BodyKind::Length(5)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            BodyKind::None
        );
        assert_eq!(
            r(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            BodyKind::Chunked
        );
        assert_eq!(r("HTTP/1.1 200 OK\r\n\r\n", false), BodyKind::UntilClose);
        assert_eq!(
            r(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            BodyKind::None
        );
        assert!(parse_response(b"garbage\r\n\r\n", 16384, false).is_err());
    }

    #[test]
    fn status_codes_below_100_and_unknown_request_codings_are_refused() {
        for line in ["HTTP/1.1 000 Zero\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n"] {
            assert!(
                parse_response(line.as_bytes(), 16384, false).is_err(),
                "{line}"
            );
        }
        let gzip = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let e = req(gzip).unwrap_err();
        assert_eq!((e.status(), e), (501, RequestError::Coding("gzip".into())));
        let http10 = "GET / HTTP/1.0\r\n\r\n";
        let (head, _) = req(http10).unwrap().unwrap();
        let mut out = Vec::new();
        head.write_for_server(None, &mut out);
        assert!(out.starts_with(b"GET / HTTP/1.0\r\n"));
    }
}
