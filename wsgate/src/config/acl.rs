//! ACLs and `use_backend` conditions: parsing into typed values.
//!
//! Stage: the `acl` and `use_backend` handlers call [`parse_acl`] and
//! [`parse_condition`]; `check` resolves ACL and backend names; the
//! session evaluates with `proxy::route`. HAProxy's rules: `acl <name>
//! <fetch> [flags] [values...]`, several lines with one name are OR-ed;
//! a condition (`if`/`unless`) is a list of ACL names AND-ed, `||` (or
//! `or`) between groups, `!` negates, `{ <fetch> [flags] [values] }` is an
//! anonymous ACL. Each fetch has HAProxy's default match method (`path`
//! exact, `path_beg` prefix, `hdr_dom` domain, `src` address/network, ...);
//! `-m` overrides it and `-i` ignores case.

use std::net::IpAddr;

use super::lexer::Token;
use super::model::{AclFetch, AclTerm, MatchMethod, Network};

/// A problem at one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclError {
    pub at: usize,
    pub message: String,
    pub hint: Option<String>,
}

fn err(at: usize, message: impl Into<String>) -> AclError {
    AclError {
        at,
        message: message.into(),
        hint: None,
    }
}

const FETCHES: &[&str] = &[
    "path",
    "path_beg",
    "path_end",
    "path_sub",
    "path_reg",
    "path_dir",
    "path_dom",
    "path_len",
    "url",
    "url_beg",
    "url_end",
    "url_sub",
    "url_reg",
    "url_dir",
    "url_dom",
    "url_len",
    "url_param",
    "urlp",
    "urlp_beg",
    "urlp_end",
    "urlp_sub",
    "urlp_reg",
    "urlp_dir",
    "urlp_dom",
    "urlp_len",
    "urlp_val",
    "hdr",
    "hdr_beg",
    "hdr_end",
    "hdr_sub",
    "hdr_dom",
    "hdr_reg",
    "hdr_dir",
    "hdr_cnt",
    "hdr_len",
    "nbsrv",
    "method",
    "capture.req.uri",
    "capture.req.method",
    "src",
    "dst_port",
    "ssl_fc",
    "ssl_fc_sni",
    "ssl_fc_protocol",
    "req.ssl_sni",
    "req.ssl_hello_type",
    "req.ssl_ver",
    "req.len",
    "wait_end",
    "ssl_c_used",
    "ssl_c_verify",
    "ssl_c_s_dn",
    "ssl_c_i_dn",
    "ssl_c_serial",
    "ssl_c_sha1",
    "ssl_c_notbefore",
    "ssl_c_notafter",
    "ssl_c_version",
    "always_true",
    "http_auth",
    "http_auth_group",
    "rand",
    "sc_http_req_rate",
    "sc_conn_cur",
    "sc_conn_rate",
    "sc_http_err_rate",
    "src_conn_rate",
    "src_conn_cur",
    "src_http_req_rate",
];

/// A compiled `-m reg` pattern. HAProxy uses PCRE; the `regex` crate reads
/// the same syntax except backreferences and look-around, which are
/// refused when the line is read.
#[derive(Debug, Clone)]
pub struct AclRegex(pub regex::bytes::Regex);

impl PartialEq for AclRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for AclRegex {}

/// An integer pattern as an inclusive range: `5`, `eq 5`, `lt 5`, `le 5`,
/// `gt 5`, `ge 5`, `1:5`, `:5`, `5:` (HAProxy's `-m int`). `Err` names
/// what is wrong. `op` is the operator word when one was given.
pub(super) fn int_range(op: Option<&str>, v: &str) -> Result<(i64, i64), String> {
    let num = |t: &str| {
        t.parse::<i64>()
            .map_err(|_| format!("'{t}' is not an integer"))
    };
    Ok(match op {
        Some("eq") => (num(v)?, num(v)?),
        Some("lt") => (i64::MIN, num(v)?.saturating_sub(1)),
        Some("le") => (i64::MIN, num(v)?),
        Some("gt") => (num(v)?.saturating_add(1), i64::MAX),
        Some("ge") => (num(v)?, i64::MAX),
        Some(other) => return Err(format!("unknown integer operator '{other}'")),
        None => match v.split_once(':') {
            Some((lo, hi)) => (
                if lo.is_empty() { i64::MIN } else { num(lo)? },
                if hi.is_empty() { i64::MAX } else { num(hi)? },
            ),
            None => (num(v)?, num(v)?),
        },
    })
}

/// HAProxy's predefined ACLs (configuration manual, 7.4) that wsgate can
/// evaluate, as the `acl` line each stands for.
const PREDEFINED: &[(&str, &str)] = &[
    ("TRUE", "always_true"),
    ("HTTP", "always_true"),
    ("LOCALHOST", "src 127.0.0.1/8 ::1"),
    ("METH_CONNECT", "method CONNECT"),
    ("METH_DELETE", "method DELETE"),
    ("METH_GET", "method GET HEAD"),
    ("METH_HEAD", "method HEAD"),
    ("METH_OPTIONS", "method OPTIONS"),
    ("METH_POST", "method POST"),
    ("METH_PUT", "method PUT"),
    ("METH_TRACE", "method TRACE"),
    ("HTTP_URL_ABS", "url_reg ^[^/:]*://"),
    ("HTTP_URL_SLASH", "url_beg /"),
    ("HTTP_URL_STAR", "url *"),
    ("REQ_CONTENT", "req.len gt 0"),
    ("WAIT_END", "wait_end"),
];

/// The predefined ACL `name` (`METH_GET`, `LOCALHOST`, ...), when it is one
/// wsgate evaluates; a name declared with `acl` takes precedence.
pub fn predefined(name: &str) -> Option<AclTerm> {
    let (_, line) = PREDEFINED.iter().find(|(n, _)| *n == name)?;
    let words: Vec<Token> = line
        .split(' ')
        .map(|w| Token {
            text: w.to_owned(),
            line: 0,
            col: 0,
        })
        .collect();
    parse_acl(&words).ok()
}

/// Parses `<fetch> [flags] [values...]` from `words` (the words after the
/// ACL name, or inside `{ }`). Errors carry the index of the bad word.
pub fn parse_acl(words: &[Token]) -> Result<AclTerm, AclError> {
    let Some(f) = words.first() else {
        return Err(err(0, "missing fetch"));
    };
    let (base, arg) = match f.text.split_once('(') {
        Some((b, rest)) => match rest.strip_suffix(')') {
            Some(a) => (b, Some(a.to_owned())),
            None => return Err(err(0, format!("missing ')' in '{}'", f.text))),
        },
        None => (f.text.as_str(), None),
    };
    let raw = base;
    let base = base.strip_prefix("req.").unwrap_or(base);
    let backend_name = |arg: Option<String>| -> Result<String, AclError> {
        match arg {
            Some(a) if !a.is_empty() => Ok(a),
            _ => Err(AclError {
                at: 0,
                message: format!("'{base}' needs a backend name in parentheses"),
                hint: Some(format!("e.g. `{base}(app)`")),
            }),
        }
    };
    // `hdr` without a name is accepted, as in HAProxy (see `AclFetch::Hdr`).
    let any_header = || arg.clone().unwrap_or_default();
    let (fetch, default) = match base {
        "path" => (AclFetch::Path, MatchMethod::Str),
        "path_beg" => (AclFetch::Path, MatchMethod::Beg),
        "path_end" => (AclFetch::Path, MatchMethod::End),
        "path_sub" => (AclFetch::Path, MatchMethod::Sub),
        "path_reg" => (AclFetch::Path, MatchMethod::Reg),
        "path_dir" => (AclFetch::Path, MatchMethod::Dir),
        "path_dom" => (AclFetch::Path, MatchMethod::Dom),
        "path_len" => (AclFetch::Path, MatchMethod::Len),
        "url" | "capture.req.uri" => (AclFetch::Url, MatchMethod::Str),
        "url_beg" => (AclFetch::Url, MatchMethod::Beg),
        "url_end" => (AclFetch::Url, MatchMethod::End),
        "url_sub" => (AclFetch::Url, MatchMethod::Sub),
        "url_reg" => (AclFetch::Url, MatchMethod::Reg),
        "url_dir" => (AclFetch::Url, MatchMethod::Dir),
        "url_dom" => (AclFetch::Url, MatchMethod::Dom),
        "url_len" => (AclFetch::Url, MatchMethod::Len),
        "url_param" | "urlp" => (url_param(arg.as_deref())?, MatchMethod::Str),
        "urlp_beg" => (url_param(arg.as_deref())?, MatchMethod::Beg),
        "urlp_end" => (url_param(arg.as_deref())?, MatchMethod::End),
        "urlp_sub" => (url_param(arg.as_deref())?, MatchMethod::Sub),
        "urlp_reg" => (url_param(arg.as_deref())?, MatchMethod::Reg),
        "urlp_dir" => (url_param(arg.as_deref())?, MatchMethod::Dir),
        "urlp_dom" => (url_param(arg.as_deref())?, MatchMethod::Dom),
        "urlp_len" => (url_param(arg.as_deref())?, MatchMethod::Len),
        // The value read as an integer.
        "urlp_val" => (url_param(arg.as_deref())?, MatchMethod::Int),
        "hdr" => (AclFetch::Hdr(any_header()), MatchMethod::Str),
        "hdr_beg" => (AclFetch::Hdr(any_header()), MatchMethod::Beg),
        "hdr_end" => (AclFetch::Hdr(any_header()), MatchMethod::End),
        "hdr_sub" => (AclFetch::Hdr(any_header()), MatchMethod::Sub),
        "hdr_dom" => (AclFetch::Hdr(any_header()), MatchMethod::Dom),
        "hdr_reg" => (AclFetch::Hdr(any_header()), MatchMethod::Reg),
        "hdr_dir" => (AclFetch::Hdr(any_header()), MatchMethod::Dir),
        "hdr_len" => (AclFetch::Hdr(any_header()), MatchMethod::Len),
        "hdr_cnt" => (AclFetch::HdrCnt(any_header()), MatchMethod::Int),
        "nbsrv" => (
            AclFetch::Nbsrv(backend_name(arg.clone())?),
            MatchMethod::Int,
        ),
        "method" | "capture.req.method" => (AclFetch::Method, MatchMethod::Str),
        "src" => (AclFetch::Src, MatchMethod::Ip),
        "dst_port" => (AclFetch::DstPort, MatchMethod::Int),
        "ssl_fc" => (AclFetch::SslFc, MatchMethod::Bool),
        "ssl_fc_sni" => (AclFetch::SslFcSni, MatchMethod::Str),
        "ssl_fc_protocol" => (AclFetch::SslFcProtocol, MatchMethod::Str),
        "ssl_sni" | "req_ssl_sni" if content_name(raw) => (AclFetch::ReqSslSni, MatchMethod::Str),
        "ssl_hello_type" | "req_ssl_hello_type" if content_name(raw) => {
            (AclFetch::ReqSslHelloType, MatchMethod::Int)
        }
        "ssl_ver" | "req_ssl_ver" if content_name(raw) => (AclFetch::ReqSslVer, MatchMethod::Int),
        "len" | "req_len" if content_name(raw) => (AclFetch::ReqLen, MatchMethod::Int),
        "wait_end" => (AclFetch::WaitEnd, MatchMethod::Bool),
        name if name.starts_with("ssl_c_") => client_cert_fetch(name, arg.as_deref())?,
        "always_true" => (AclFetch::AlwaysTrue, MatchMethod::Bool),
        "http_auth" | "http_auth_group" => {
            let Some(list) = arg.clone().filter(|a| !a.is_empty()) else {
                return Err(AclError {
                    at: 0,
                    message: format!("'{base}' needs a userlist name in parentheses"),
                    hint: Some(format!("e.g. `{base}(users)`")),
                });
            };
            let r = super::userlist::UserlistRef::new(list);
            match base {
                "http_auth" => (AclFetch::HttpAuth(r), MatchMethod::Bool),
                _ => (AclFetch::HttpAuthGroup(r), MatchMethod::Str),
            }
        }
        "rand" => {
            let n = match arg.as_deref() {
                None => 1 << 32,
                Some(a) => match a.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n <= 1 << 32 => n,
                    _ => {
                        return Err(err(
                            0,
                            format!("'rand' needs a positive integer range, not '{a}'"),
                        ))
                    }
                },
            };
            (AclFetch::Rand(n), MatchMethod::Int)
        }
        other => match super::track::parse_counter_fetch(other, arg.as_deref()) {
            Ok(Some(c)) => (AclFetch::Counter(c), MatchMethod::Int),
            Err(message) => {
                let mut e = err(0, message);
                e.hint = Some("stick counters need `track-sc0|1|2` rules and a `stick-table ... store <counter>`".into());
                return Err(e);
            }
            Ok(None) => {
                let mut e = err(0, format!("unknown fetch '{other}' in ACL"));
                e.hint = Some(
                    match super::keywords::closest(other, FETCHES.iter().copied()) {
                        Some(s) => {
                            format!("did you mean '{s}'? wsgate knows: {}", FETCHES.join(", "))
                        }
                        None => format!("wsgate knows: {}", FETCHES.join(", ")),
                    },
                );
                return Err(e);
            }
        },
    };
    if arg.is_some()
        && !matches!(
            fetch,
            AclFetch::Hdr(_)
                | AclFetch::HdrCnt(_)
                | AclFetch::UrlParam(_)
                | AclFetch::Nbsrv(_)
                | AclFetch::HttpAuth(_)
                | AclFetch::HttpAuthGroup(_)
                | AclFetch::Counter(_)
                | AclFetch::Rand(_)
                | AclFetch::ClientCert(_)
        )
    {
        return Err(err(0, format!("'{base}' takes no argument")));
    }
    let mut method = default;
    let mut ignore_case = false;
    let mut has_files = false;
    let mut i = 1;
    while let Some(w) = words.get(i) {
        match w.text.as_str() {
            "-i" => ignore_case = true,
            "-m" => {
                let Some(m) = words.get(i + 1) else {
                    return Err(err(i, "'-m' needs a match method"));
                };
                method = match m.text.as_str() {
                    "str" => MatchMethod::Str,
                    "beg" => MatchMethod::Beg,
                    "end" => MatchMethod::End,
                    "sub" => MatchMethod::Sub,
                    "dom" => MatchMethod::Dom,
                    "found" => MatchMethod::Found,
                    "ip" => MatchMethod::Ip,
                    "bool" => MatchMethod::Bool,
                    "reg" => MatchMethod::Reg,
                    "dir" => MatchMethod::Dir,
                    "int" => MatchMethod::Int,
                    "bin" => MatchMethod::Bin,
                    "len" => MatchMethod::Len,
                    other => {
                        let mut e =
                            err(i + 1, format!("match method '-m {other}' is not supported"));
                        e.hint =
                            Some("wsgate knows -m str, beg, end, sub, dom, dir, reg, int, len, bin, found, ip, bool".into());
                        return Err(e);
                    }
                };
                i += 1;
            }
            "--" => {
                i += 1;
                break;
            }
            // The files are read by the `acl` handler (`acl_file`).
            "-f" => {
                if words.get(i + 1).is_none() {
                    return Err(err(i, "'-f' needs a file name"));
                }
                has_files = true;
                i += 1;
            }
            "-n" | "-u" | "-M" => {
                return Err(err(i, format!("ACL flag '{}' is not supported", w.text)));
            }
            _ => break,
        }
        i += 1;
    }
    let values: Vec<String> = words[i..].iter().map(|t| t.text.clone()).collect();
    let values = match fetch {
        AclFetch::ReqSslVer => dotted_versions(values).map_err(|(k, m)| err(i + k, m))?,
        // As HAProxy: a binary sample has no default match.
        AclFetch::ClientCert(ref c)
            if c.is_binary() && !words[1..i].iter().any(|w| w.text == "-m") =>
        {
            let mut e = err(
                0,
                format!("'{}' is binary: it needs a match method", f.text),
            );
            e.hint = Some(format!("e.g. `{} -m bin 01AF` (hexadecimal bytes)", f.text));
            return Err(e);
        }
        _ if method == MatchMethod::Bin => hex_patterns(values).map_err(|(k, m)| err(i + k, m))?,
        _ => values,
    };
    let needs_values = !matches!(method, MatchMethod::Found | MatchMethod::Bool);
    if needs_values && values.is_empty() && !has_files {
        return Err(AclError {
            at: 0,
            message: format!("ACL on '{}' has no value to match", f.text),
            hint: Some("add one or more values, or `-m found` to test presence".into()),
        });
    }
    if !needs_values && !values.is_empty() {
        return Err(err(
            i,
            format!("unexpected value '{}' (this match takes none)", values[0]),
        ));
    }
    let mut networks = Vec::new();
    if method == MatchMethod::Ip {
        for (k, v) in values.iter().enumerate() {
            match parse_network(v) {
                Some(n) => networks.push(n),
                None => return Err(err(i + k, format!("'{v}' is not an IP address or network"))),
            }
        }
    }
    let mut regexes = Vec::new();
    if method == MatchMethod::Reg {
        for (k, v) in values.iter().enumerate() {
            match regex::bytes::RegexBuilder::new(v)
                .case_insensitive(ignore_case)
                .build()
            {
                Ok(r) => regexes.push(AclRegex(r)),
                Err(e) => {
                    let first = e.to_string();
                    let first = first.lines().last().unwrap_or("").trim();
                    let first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
                    let mut e = err(i + k, format!("invalid regular expression '{v}': {first}"));
                    e.hint =
                        Some("backreferences and look-around (PCRE only) are not supported".into());
                    return Err(e);
                }
            }
        }
    }
    let mut ints = Vec::new();
    if matches!(method, MatchMethod::Int | MatchMethod::Len) {
        let mut k = 0;
        while k < values.len() {
            let op = ["eq", "lt", "le", "gt", "ge"]
                .contains(&values[k].as_str())
                .then(|| values[k].as_str());
            let v = if op.is_some() { k + 1 } else { k };
            let Some(text) = values.get(v) else {
                return Err(err(
                    i + k,
                    format!("'{}' needs a number after it", values[k]),
                ));
            };
            ints.push(int_range(op, text).map_err(|m| err(i + v, m))?);
            k = v + 1;
        }
    }
    Ok(AclTerm {
        fetch,
        method,
        ignore_case,
        values,
        networks,
        regexes,
        ints,
    })
}

/// `url_param([<name>[,<delim>]])`: as in HAProxy 2.6, the name may be
/// empty and the delimiter is the first character of the second argument
/// (`?` when absent); a third argument is refused, as HAProxy 2.6 does.
fn url_param(arg: Option<&str>) -> Result<AclFetch, AclError> {
    let arg = arg.unwrap_or("");
    let mut parts = arg.splitn(3, ',');
    let name = parts.next().unwrap_or("").to_owned();
    let delim = parts.next().and_then(|d| d.bytes().next()).unwrap_or(b'?');
    if parts.next().is_some() {
        let mut e = err(
            0,
            format!("url_param takes at most two arguments, not '{arg}'"),
        );
        e.hint = Some(
            "usage: url_param(<name>[,<delimiter>]), e.g. `url_param(id)` or `url_param(id,;)`"
                .into(),
        );
        return Err(e);
    }
    Ok(AclFetch::UrlParam(super::model::UrlParam { name, delim }))
}

/// `ssl_c_*` with HAProxy's default match: a boolean, integers (the
/// verification errors, the version), strings (names, dates); binary
/// values have none (`-m bin` is required, checked by the caller).
fn client_cert_fetch(name: &str, arg: Option<&str>) -> Result<(AclFetch, MatchMethod), AclError> {
    use super::model::CertFetch;
    let fetch = match super::tls::parse_cert_fetch(name, arg) {
        Some(Ok(f)) => f,
        Some(Err(message)) => return Err(err(0, message)),
        None => return Err(err(0, format!("unknown fetch '{name}' in ACL"))),
    };
    let method = match fetch {
        CertFetch::Used => MatchMethod::Bool,
        CertFetch::VerifyError | CertFetch::Version => MatchMethod::Int,
        CertFetch::Serial | CertFetch::Sha1 => MatchMethod::Bin,
        _ => MatchMethod::Str,
    };
    Ok((AclFetch::ClientCert(fetch), method))
}

/// `-m bin` patterns, written in hex as HAProxy reads them: checked, and
/// upper-cased to compare with the sample's hex. `Err` holds the index of
/// the bad value.
fn hex_patterns(values: Vec<String>) -> Result<Vec<String>, (usize, String)> {
    values
        .into_iter()
        .enumerate()
        .map(|(k, v)| {
            if v.len() % 2 == 0 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(v.to_ascii_uppercase())
            } else {
                Err((
                    k,
                    format!("'{v}' is not a hexadecimal byte string (e.g. 01AF)"),
                ))
            }
        })
        .collect()
}

/// The content-inspection fetches exist under `req.` and their older
/// `req_` names only (`req.ssl_sni`, `req_ssl_sni`), not bare.
fn content_name(raw: &str) -> bool {
    raw.starts_with("req.") || raw.starts_with("req_")
}

/// `req.ssl_ver` patterns are versions written `MAJOR.MINOR` (`3.1` is
/// TLS 1.0, as in HAProxy), alone, in `lo:hi` ranges or after an integer
/// operator; each becomes the fetch's integer (`major << 16 | minor`).
/// `Err` holds the index of the bad value and the message.
fn dotted_versions(values: Vec<String>) -> Result<Vec<String>, (usize, String)> {
    let one = |k: usize, v: &str| -> Result<String, (usize, String)> {
        if v.is_empty() {
            return Ok(String::new());
        }
        let parsed = v.split_once('.').and_then(|(major, minor)| {
            Some((major.parse::<u16>().ok()?, minor.parse::<u16>().ok()?))
        });
        match parsed {
            Some((major, minor)) => Ok((u32::from(major) << 16 | u32::from(minor)).to_string()),
            None => Err((
                k,
                format!("'{v}' is not a TLS record version (MAJOR.MINOR, e.g. 3.1 for TLS 1.0, 3.3 for TLS 1.2)"),
            )),
        }
    };
    values
        .iter()
        .enumerate()
        .map(|(k, v)| match v.as_str() {
            "eq" | "lt" | "le" | "gt" | "ge" => Ok(v.clone()),
            _ => match v.split_once(':') {
                Some((lo, hi)) => Ok(format!("{}:{}", one(k, lo)?, one(k, hi)?)),
                None => one(k, v),
            },
        })
        .collect()
}

pub(super) fn parse_network(v: &str) -> Option<Network> {
    let (addr, bits) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match bits {
        None => max,
        Some(b) => match b.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                // A dotted mask (`/255.255.255.0`), as HAProxy accepts.
                let mask: std::net::Ipv4Addr = b.parse().ok()?;
                u32::from(mask).count_ones() as u8
            }
        },
    };
    Some(Network { ip, prefix })
}

/// One condition term before ACL names are resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum TermDraft {
    Named {
        name: String,
        negate: bool,
        at: usize,
    },
    Anonymous {
        acl: AclTerm,
        negate: bool,
    },
    /// A named ACL of a `defaults` section, resolved at its rule's line
    /// (config/defaults_rules.rs): the proxies inheriting the rule get its
    /// lines (OR-ed), not its name, which they must not see.
    Defaults {
        terms: Vec<AclTerm>,
        negate: bool,
    },
}

/// `if|unless <terms>`: OR of AND-groups, names unresolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionDraft {
    pub unless: bool,
    pub groups: Vec<Vec<TermDraft>>,
}

/// Parses `if|unless ...` (the words from `if` on).
pub fn parse_condition(words: &[Token]) -> Result<ConditionDraft, AclError> {
    let Some(first) = words.first() else {
        return Err(err(0, "missing condition"));
    };
    let unless = match first.text.as_str() {
        "if" => false,
        "unless" => true,
        other => {
            return Err(AclError {
                at: 0,
                message: format!("expected 'if' or 'unless', not '{other}'"),
                hint: Some("usage: use_backend <backend> [if|unless <condition>]".into()),
            })
        }
    };
    let mut groups = vec![Vec::new()];
    let mut i = 1;
    while let Some(w) = words.get(i) {
        let text = w.text.as_str();
        if text == "||" || text == "or" {
            if groups.last().is_some_and(Vec::is_empty) {
                return Err(err(i, "'||' without a condition before it"));
            }
            groups.push(Vec::new());
            i += 1;
            continue;
        }
        let (negate, rest) = match text.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (negate, rest, start) = if rest.is_empty() && negate {
            // `! name` with a space.
            match words.get(i + 1) {
                Some(n) => (true, n.text.as_str(), i + 1),
                None => return Err(err(i, "'!' without an ACL after it")),
            }
        } else {
            (negate, rest, i)
        };
        let current = groups.len() - 1;
        if rest == "{" {
            let close = words[start + 1..]
                .iter()
                .position(|t| t.text == "}")
                .map(|p| start + 1 + p)
                .ok_or_else(|| err(start, "'{' without a matching '}'"))?;
            let acl = parse_acl(&words[start + 1..close]).map_err(|mut e| {
                e.at += start + 1;
                e
            })?;
            groups[current].push(TermDraft::Anonymous { acl, negate });
            i = close + 1;
        } else {
            groups[current].push(TermDraft::Named {
                name: rest.to_owned(),
                negate,
                at: start,
            });
            i = start + 1;
        }
    }
    if groups.iter().any(Vec::is_empty) {
        return Err(err(words.len() - 1, "empty condition"));
    }
    Ok(ConditionDraft { unless, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Token> {
        s.split_whitespace()
            .map(|w| Token {
                text: w.to_owned(),
                line: 1,
                col: 1,
            })
            .collect()
    }

    #[test]
    fn acl_defaults_and_flags() {
        let a = parse_acl(&toks("hdr(Upgrade) -i WebSocket")).unwrap();
        assert_eq!(a.fetch, AclFetch::Hdr("Upgrade".into()));
        assert_eq!(a.method, MatchMethod::Str);
        assert!(a.ignore_case);
        assert_eq!(
            parse_acl(&toks("path_beg /api /ws")).unwrap().method,
            MatchMethod::Beg
        );
        assert_eq!(
            parse_acl(&toks("hdr(x) -m found")).unwrap().method,
            MatchMethod::Found
        );
        assert_eq!(
            parse_acl(&toks("src 10.0.0.0/8 127.0.0.1"))
                .unwrap()
                .networks
                .len(),
            2
        );
        assert!(parse_acl(&toks("ssl_fc")).is_ok());
        let e = parse_acl(&toks("path_begin /x")).unwrap_err();
        assert!(e.message.contains("unknown fetch 'path_begin'"));
        assert!(e.hint.unwrap().contains("did you mean 'path_beg'"));
        assert!(parse_acl(&toks("path")).is_err());
        assert!(parse_acl(&toks("src nope")).is_err());
    }

    #[test]
    fn url_param_len_and_ports() {
        let a = parse_acl(&toks("url_param(id,;) -m beg x")).unwrap();
        assert_eq!(
            a.fetch,
            AclFetch::UrlParam(crate::config::model::UrlParam {
                name: "id".into(),
                delim: b';'
            })
        );
        assert_eq!(a.method, MatchMethod::Beg);
        assert_eq!(parse_acl(&toks("urlp x")).unwrap().method, MatchMethod::Str);
        assert_eq!(
            parse_acl(&toks("urlp_val(n) gt 3")).unwrap().ints,
            [(4, i64::MAX)]
        );
        let e = parse_acl(&toks("url_param(a,,i) x")).unwrap_err();
        assert!(e.message.contains("at most two arguments"), "{e:?}");
        let l = parse_acl(&toks("path -m len 3 5:")).unwrap();
        assert_eq!(l.method, MatchMethod::Len);
        assert_eq!(l.ints, [(3, 3), (5, i64::MAX)]);
        assert!(parse_acl(&toks("path -m len long")).is_err());
        assert_eq!(
            parse_acl(&toks("dst_port 80:90 443")).unwrap().ints.len(),
            2
        );
        assert!(parse_acl(&toks("dst_port(1) 80")).is_err());
        assert_eq!(
            parse_acl(&toks("ssl_fc_protocol TLSv1.3")).unwrap().fetch,
            AclFetch::SslFcProtocol
        );
    }

    #[test]
    fn predefined_acls() {
        assert!(predefined("TRUE").is_some());
        assert!(predefined("LOCALHOST").is_some());
        assert!(predefined("HTTP_1.1").is_none());
    }

    #[test]
    fn conditions() {
        let c = parse_condition(&toks("if is_ws !is_api || { path_beg /x } other")).unwrap();
        assert!(!c.unless);
        assert_eq!(c.groups.len(), 2);
        assert_eq!(c.groups[0].len(), 2);
        assert!(
            matches!(&c.groups[0][1], TermDraft::Named { negate: true, name, .. } if name == "is_api")
        );
        assert!(matches!(
            &c.groups[1][0],
            TermDraft::Anonymous { negate: false, .. }
        ));
        assert!(parse_condition(&toks("unless { ssl_fc }")).unwrap().unless);
        assert!(parse_condition(&toks("when x")).is_err());
        assert!(parse_condition(&toks("if a ||")).is_err());
        assert!(parse_condition(&toks("if { path_beg /x")).is_err());
    }
}
