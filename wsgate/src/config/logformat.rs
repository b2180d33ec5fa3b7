//! HAProxy log-format strings (`<fmt>` of `http-request set-header`,
//! `http-response add-header`, `return lf-string`, ...): text → a list of
//! literal parts, sample fetches and regex back-references.
//!
//! Stage: the rule handlers parse each `<fmt>` here at configuration time,
//! so an expression wsgate cannot evaluate is an error at its line rather
//! than text sent literally; `proxy::rules` evaluates the parts for each
//! request. Kept apart from the rules so `log-format` (issue #5) can reuse
//! it. HAProxy's syntax: `%[<fetch>]` is a sample expression, `%ci`-style
//! aliases name common fields, `%%` is a literal `%`, anything else is
//! literal text; in the `replace-*` actions `\1`..`\9` refer to the
//! regex's groups.

/// One piece of a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Fetch(Fetch),
    /// `\N` in a `replace-*` format: the regex's group N (0 = the match).
    Group(usize),
}

/// The sample fetches a format may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// `src`, `%ci`: the client's address.
    Src,
    /// `src_port`, `%cp`.
    SrcPort,
    /// `dst`, `%fi`: the address the client connected to.
    Dst,
    /// `dst_port`, `%fp`.
    DstPort,
    /// `hdr(<name>)`: the last value of the header in the message the rule
    /// runs on (the request for `http-request`, the response for
    /// `http-response`), as HAProxy's `hdr()` outside ACLs.
    Hdr(String),
    /// `req.hdr(<name>)`: the request's header (requests only, as in
    /// HAProxy 2.6, like `path`, `url`, `query` and `method`).
    ReqHdr(String),
    /// `res.hdr(<name>)` (responses only).
    ResHdr(String),
    /// `path`: the request path, without the query string.
    Path,
    /// `url`: the request target as received.
    Url,
    /// `query`: what follows `?` in the target.
    Query,
    /// `method`.
    Method,
    /// `ssl_fc`: `1` on a TLS connection, else `0`.
    SslFc,
    /// `ssl_fc_protocol`: the TLS version of the client connection
    /// (`TLSv1.3`), empty on a plain one.
    SslFcProtocol,
    /// `ssl_fc_sni`: the server name the client's TLS handshake asked
    /// for, empty without one (or on a plain connection).
    SslFcSni,
    /// `status` (responses only).
    Status,
    /// `ssl_c_s_dn(cn)`, `ssl_c_serial,hex`...: the client certificate
    /// (binary fetches only with `,hex`).
    ClientCert(super::tls::CertFetch),
}

/// A parsed `<fmt>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Format {
    pub parts: Vec<Part>,
}

impl Format {
    /// A format that is only this text (the old `redirect` keyword's
    /// location, `reqadd` values).
    pub fn literal(text: &str) -> Format {
        Format {
            parts: vec![Part::Literal(text.to_owned())],
        }
    }
}

/// Where a format is used: what it may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    /// `\1`.. are groups of the rule's regex (`replace-*`).
    pub groups: bool,
    /// The rule runs on a response (`status`, `res.hdr()`).
    pub response: bool,
}

/// A problem in a format string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormatError {
    pub message: String,
    pub hint: Option<String>,
}

const KNOWN: &str = "src, src_port, dst, dst_port, hdr(<name>), req.hdr(<name>), res.hdr(<name>), path, url, query, method, ssl_fc, ssl_fc_protocol, ssl_fc_sni, status, ssl_c_* (client certificate; ssl_c_serial,hex and ssl_c_sha1,hex); aliases %ci %cp %fi %fp";

pub(crate) fn error(message: String) -> FormatError {
    FormatError {
        message,
        hint: Some(format!("wsgate evaluates {KNOWN}")),
    }
}

/// Parses a log-format string.
pub fn parse(text: &str, usage: Use) -> Result<Format, FormatError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '%' => match chars.peek().map(|(_, c)| *c) {
                Some('%') => {
                    chars.next();
                    lit.push('%');
                }
                Some('[') => {
                    let rest = &text[i + 2..];
                    let Some(end) = rest.find(']') else {
                        return Err(FormatError {
                            message: format!("missing ']' after '%[' in '{text}'"),
                            hint: Some("a sample expression is written %[<fetch>]".into()),
                        });
                    };
                    let expr = &rest[..end];
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Fetch(fetch(expr, usage)?));
                    for _ in 0..end + 2 {
                        chars.next();
                    }
                }
                Some('{') => {
                    return Err(error(format!(
                        "log-format flags ('%{{...}}') in '{text}' are not supported"
                    )))
                }
                Some(_) => {
                    let rest = &text[i + 1..];
                    let alias: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    let f = match alias.as_str() {
                        "ci" => Fetch::Src,
                        "cp" => Fetch::SrcPort,
                        "fi" => Fetch::Dst,
                        "fp" => Fetch::DstPort,
                        _ => {
                            return Err(error(format!(
                                "log-format variable '%{alias}' is not supported"
                            )))
                        }
                    };
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Fetch(f));
                    for _ in 0..alias.len() {
                        chars.next();
                    }
                }
                None => {
                    return Err(FormatError {
                        message: format!("'%' at the end of '{text}'"),
                        hint: Some("write %% for a literal '%'".into()),
                    })
                }
            },
            '\\' if usage.groups => match chars.peek().map(|(_, c)| *c) {
                Some(d @ '0'..='9') => {
                    chars.next();
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Group(d as usize - '0' as usize));
                }
                _ => lit.push('\\'),
            },
            c => lit.push(c),
        }
    }
    flush(&mut lit, &mut parts);
    Ok(Format { parts })
}

fn flush(lit: &mut String, parts: &mut Vec<Part>) {
    if !lit.is_empty() {
        parts.push(Part::Literal(std::mem::take(lit)));
    }
}

/// One `%[...]` expression: a fetch with no converter (also read by
/// `log-format` lines, `config::logline`).
pub(crate) fn fetch(expr: &str, usage: Use) -> Result<Fetch, FormatError> {
    let expr = expr.trim();
    if let Some(cert) = client_cert(expr) {
        return cert.map(Fetch::ClientCert);
    }
    let mut depth = 0u32;
    let converter = expr.chars().any(|c| {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        c == ',' && depth == 0
    });
    if converter {
        return Err(error(format!(
            "converters are not supported in '%[{expr}]'"
        )));
    }
    let (name, arg) = match expr.split_once('(') {
        Some((n, rest)) => match rest.strip_suffix(')') {
            Some(a) => (n, Some(a)),
            None => return Err(error(format!("cannot read '%[{expr}]'"))),
        },
        None => (expr, None),
    };
    let header = |arg: Option<&str>| -> Result<String, FormatError> {
        match arg {
            Some(a) if !a.is_empty() && !a.contains(',') => Ok(a.to_owned()),
            Some(a) if a.contains(',') => Err(error(format!(
                "header occurrences ('{name}({a})') are not supported"
            ))),
            _ => Err(FormatError {
                message: format!("'%[{name}]' needs a header name"),
                hint: Some(format!("e.g. %[{name}(host)]")),
            }),
        }
    };
    let f = match name {
        "src" => Fetch::Src,
        "src_port" => Fetch::SrcPort,
        "dst" => Fetch::Dst,
        "dst_port" => Fetch::DstPort,
        "hdr" => Fetch::Hdr(header(arg)?),
        "req.hdr" => Fetch::ReqHdr(header(arg)?),
        "res.hdr" => Fetch::ResHdr(header(arg)?),
        "path" => Fetch::Path,
        "url" => Fetch::Url,
        "query" => Fetch::Query,
        "method" => Fetch::Method,
        "ssl_fc" => Fetch::SslFc,
        "ssl_fc_protocol" => Fetch::SslFcProtocol,
        "ssl_fc_sni" => Fetch::SslFcSni,
        "status" => Fetch::Status,
        other => {
            return Err(error(format!(
                "sample fetch '{other}' in '%[{expr}]' is not supported"
            )))
        }
    };
    if arg.is_some() && !matches!(f, Fetch::Hdr(_) | Fetch::ReqHdr(_) | Fetch::ResHdr(_)) {
        return Err(error(format!("'{name}' takes no argument in '%[{expr}]'")));
    }
    if usage.response
        && matches!(
            f,
            Fetch::ReqHdr(_) | Fetch::Path | Fetch::Url | Fetch::Query | Fetch::Method
        )
    {
        return Err(FormatError {
            message: format!("'%[{expr}]' is not available on responses"),
            hint: Some(
                "HAProxy no longer has the request there; copy what you need into a response header from the server".into(),
            ),
        });
    }
    if !usage.response && matches!(f, Fetch::Status | Fetch::ResHdr(_)) {
        return Err(FormatError {
            message: format!("'%[{expr}]' is only available on responses"),
            hint: Some("use it in an `http-response` rule".into()),
        });
    }
    Ok(f)
}

/// `%[ssl_c_...]`: `None` when `expr` is no client-certificate fetch.
/// A binary one (`ssl_c_serial`, `ssl_c_sha1`) needs `,hex`, which is
/// then the only converter taken: HAProxy would put its raw bytes, cut at
/// the first zero byte, in the header.
fn client_cert(expr: &str) -> Option<Result<super::tls::CertFetch, FormatError>> {
    let (sample, converter) = match expr.rsplit_once(',') {
        Some((s, c)) if !c.contains(')') => (s, Some(c.trim())),
        _ => (expr, None),
    };
    let (name, arg) = match sample.split_once('(') {
        Some((n, rest)) => (n, Some(rest.strip_suffix(')').unwrap_or(rest))),
        None => (sample, None),
    };
    let fetch = match super::tls::parse_cert_fetch(name, arg)? {
        Ok(f) => f,
        Err(message) => return Some(Err(error(message))),
    };
    Some(match (fetch.is_binary(), converter) {
        (true, Some("hex")) | (false, None) => Ok(fetch),
        (true, _) => Err(FormatError {
            message: format!("'%[{expr}]' is binary: write '%[{sample},hex]'"),
            hint: Some("HAProxy copies a binary sample's raw bytes into a header (up to the first zero byte); `,hex` writes them in uppercase hex".into()),
        }),
        (false, Some(c)) => Err(error(format!(
            "converters are not supported in '%[{expr}]' (`{c}`)"
        ))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: Use = Use {
        groups: false,
        response: false,
    };

    #[test]
    fn literals_fetches_and_aliases() {
        let f = parse("for=%[src];port=%fp %% x", REQ).unwrap();
        assert_eq!(
            f.parts,
            vec![
                Part::Literal("for=".into()),
                Part::Fetch(Fetch::Src),
                Part::Literal(";port=".into()),
                Part::Fetch(Fetch::DstPort),
                Part::Literal(" % x".into()),
            ]
        );
        assert_eq!(
            parse("%[req.hdr(Host)]", REQ).unwrap().parts,
            vec![Part::Fetch(Fetch::ReqHdr("Host".into()))]
        );
    }

    #[test]
    fn groups_only_in_replace_formats() {
        let g = Use {
            groups: true,
            response: false,
        };
        assert_eq!(
            parse("/x\\1", g).unwrap().parts,
            vec![Part::Literal("/x".into()), Part::Group(1)]
        );
        assert_eq!(
            parse("/x\\1", REQ).unwrap().parts,
            vec![Part::Literal("/x\\1".into())]
        );
    }

    #[test]
    fn unsupported_expressions_are_named() {
        for (text, needle) in [
            ("%[lua.parseBasic]", "lua.parseBasic"),
            ("%[src,ipmask(24)]", "converters"),
            ("%[hdr(x,1)]", "occurrences"),
            ("%[status]", "only available on responses"),
            ("%{+Q}o", "flags"),
            ("%Tq", "%Tq"),
            ("%[src", "missing ']'"),
            ("50%", "end"),
        ] {
            let e = parse(text, REQ).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }
}
