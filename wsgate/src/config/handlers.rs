//! Keyword handlers: the arguments of one supported keyword → values in a
//! [`ProxyDraft`] or [`GlobalDraft`], with HAProxy's units and limits.
//!
//! Stage: called by the `parser` for table entries marked supported in
//! `keywords`. A handler validates its own arguments and reports problems at
//! the argument that is wrong; it never looks at other sections (names are
//! resolved later by `check`). Addresses are parsed here too: `bind`
//! accepts HAProxy's forms (`*:80`, `:80`, `[::]:443`, `:::443`,
//! `ipv6@::1:80`, port ranges), and `server` host names are resolved once,
//! now, with the system resolver, as HAProxy does by default at startup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keywords::{self, LineOption, OptionStatus, BIND_OPTIONS, SERVER_OPTIONS};
use super::lexer::Token;
use super::model::{
    Balance, Bind, BindSsl, CertSource, CipherSuite, ClientAuth, HashFunction, HashType, HttpCheck,
    HttpConnMode, HttpExpect, Mode, Observe, OnError, SendProxy, Server, ServerAddr, ServerCheck,
    ServerSsl, SniExpr, TlsSettings, TlsVersion,
};
use super::parser::{Cx, GlobalDraft, ProxyDraft, ServerDefaults};
use super::tls;
use super::units::{parse_size, parse_time};

/// HAProxy's largest timer: 2^31-1 ms (about 24.8 days).
const MAX_TIMEOUT: Duration = Duration::from_millis(2_147_483_647);

const TIME_HINT: &str =
    "times are in milliseconds unless suffixed: us, ms, s, m, h, d (e.g. `30s`)";

fn no_extra_args(cx: &mut Cx<'_>, from: usize) {
    if let Some(extra) = cx.args.get(from) {
        let kw = cx.keyword.clone();
        cx.error(extra, format!("unexpected '{}' after '{kw}'", extra.text));
    }
}

fn parse_u32(cx: &mut Cx<'_>, t: &Token, what: &str) -> Option<u32> {
    match t.text.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            cx.error(
                t,
                format!("{what} must be a non-negative integer, not '{}'", t.text),
            );
            None
        }
    }
}

// ---------------------------------------------------------------- global

pub fn maxconn_global(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("maxconn <number>") else {
        return;
    };
    if let Some(n) = parse_u32(cx, t, "maxconn") {
        if n == 0 {
            cx.error(t, "global maxconn must be at least 1");
        } else {
            g.maxconn = Some(n);
        }
    }
}

pub fn tune_bufsize(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("tune.bufsize <size>") else {
        return;
    };
    match parse_size(&t.text) {
        Ok(n) if (1024..=(1 << 30)).contains(&n) => {
            g.tune_bufsize = usize::try_from(n).unwrap_or(16384);
        }
        Ok(_) => {
            cx.error(
                t,
                format!("tune.bufsize '{}' is out of range (1k to 1g)", t.text),
            )
            .hint = Some("the default, 16384, suits almost every setup".into());
        }
        Err(e) => {
            cx.error(t, format!("invalid size for tune.bufsize: {e}"));
        }
    }
}

pub fn nbthread(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("nbthread <number>") else {
        return;
    };
    match t.text.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => g.nbthread = Some(n),
        _ => {
            cx.error(
                t,
                format!("nbthread '{}' is not a number from 1 to 1024", t.text),
            );
        }
    }
}

pub fn hard_stop_after(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if let Some(t) = time_arg(cx) {
        g.hard_stop_after = t;
    }
}

pub fn crt_base(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("crt-base <directory>") else {
        return;
    };
    g.crt_base = Some(PathBuf::from(&t.text));
}

/// `default-path current|config|parent|origin <dir>`: the base of relative
/// paths that follow.
pub fn default_path(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(mode) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'default-path' needs a mode").hint =
            Some("usage: default-path current|config|parent|origin <dir>".into());
        return;
    };
    let config_dir = Path::new(&**cx.file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    g.default_path = match mode.text.as_str() {
        "current" => None,
        "config" => Some(config_dir),
        "parent" => Some(config_dir.join("..")),
        "origin" => match args.get(1) {
            Some(dir) => Some(PathBuf::from(&dir.text)),
            None => {
                cx.error(mode, "'default-path origin' needs a directory");
                return;
            }
        },
        other => {
            cx.error(mode, format!("unknown default-path mode '{other}' (expected current, config, parent or origin)"));
            return;
        }
    };
    no_extra_args(cx, if mode.text == "origin" { 2 } else { 1 });
}

// ---------------------------------------------------------------- proxies

pub fn mode(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("mode http|tcp") else {
        return;
    };
    p.mode = match t.text.as_str() {
        "http" => Mode::Http,
        "tcp" => Mode::Tcp,
        "health" => {
            cx.error(t, "'mode health' was removed from HAProxy (2.4)")
                .hint = Some("use `monitor-uri` in HAProxy, or a plain TCP connect check".into());
            return;
        }
        other => {
            cx.error(t, format!("unknown mode '{other}' (expected http or tcp)"));
            return;
        }
    };
    p.mode_location = Some(cx.kw_loc());
}

pub fn default_backend(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("default_backend <backend>") else {
        return;
    };
    p.default_backend = Some((t.text.clone(), cx.kw_loc()));
}

/// `acl <name> <fetch> [flags] [values...]`.
pub fn acl(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(name) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'acl' needs a name, a fetch and values").hint =
            Some("e.g. `acl is_ws hdr(Upgrade) -i WebSocket`".into());
        return;
    };
    if name.text.is_empty()
        || !name
            .text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        cx.error(name, format!("invalid ACL name '{}'", name.text))
            .hint = Some("ACL names may contain letters, digits, '-', '_', '.' and ':'".into());
        return;
    }
    let words = &args[1..];
    if words.is_empty() {
        cx.error(name, format!("ACL '{}' needs a fetch", name.text))
            .hint = Some("e.g. `acl is_api path_beg /api`".into());
        return;
    }
    match super::acl::parse_acl(words) {
        Ok(mut term) => {
            let files = super::acl_file::files(words);
            if super::acl_file::load(cx, &files, &mut term) {
                p.acls.push((name.text.clone(), term, cx.loc(name)));
            } else {
                p.broken_acls.push(name.text.clone());
            }
        }
        Err(e) => {
            let at = words.get(e.at).unwrap_or(&words[0]);
            cx.error(at, e.message).hint = e.hint;
            p.broken_acls.push(name.text.clone());
        }
    }
}

/// `use_backend <backend> [if|unless <condition>]`.
pub fn use_backend(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(name) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'use_backend' needs a backend name").hint =
            Some("usage: use_backend <backend> [if|unless <condition>]".into());
        return;
    };
    if name.text.contains('%') {
        cx.error(name, "dynamic backend names (log-format) are not supported")
            .hint = Some("write one `use_backend <name> if <condition>` per backend".into());
        return;
    }
    let location = cx.loc(name);
    if let Some(rule) = cx.rule(name.text.clone(), location, &args[1..]) {
        p.use_backends.push(rule);
    }
}

pub fn maxconn_proxy(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("maxconn <number>") else {
        return;
    };
    if let Some(n) = parse_u32(cx, t, "maxconn") {
        // 0 means "use the global value", as in HAProxy.
        p.maxconn = (n != 0).then_some(n);
    }
}

pub fn retries(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("retries <number>") else {
        return;
    };
    if let Some(n) = parse_u32(cx, t, "retries") {
        p.retries = n;
    }
}

const BALANCE_ALGORITHMS: [&str; 13] = [
    "roundrobin",
    "static-rr",
    "leastconn",
    "first",
    "source",
    "uri",
    "url_param",
    "hdr",
    "random",
    "rdp-cookie",
    "hash",
    "log-hash",
    "sticky",
];

/// A `(<arg>)` suffix of an algorithm word: `hdr(X-User)` → `X-User`.
fn paren_arg<'t>(word: &'t str, algo: &str) -> Option<&'t str> {
    word.strip_prefix(algo)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

pub fn balance(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(t) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'balance' needs an algorithm").hint =
            Some("usage: balance roundrobin|static-rr|leastconn|first|source|uri|url_param <name>|hdr(<name>)|random[(<draws>)]".into());
        return;
    };
    let algo = t.text.split('(').next().unwrap_or("");
    let has_paren = t.text.len() > algo.len();
    if has_paren && !matches!(algo, "hdr" | "random" | "rdp-cookie") {
        cx.error(
            t,
            format!("'balance {algo}' takes no argument in parentheses"),
        );
        return;
    }
    let balance = match algo {
        "roundrobin" => Balance::RoundRobin,
        "static-rr" => Balance::StaticRr,
        "leastconn" => Balance::LeastConn,
        "first" => Balance::First,
        "source" => Balance::Source,
        "uri" => {
            let (mut len, mut depth, mut whole, mut path_only) = (0, 0, false, false);
            let mut i = 1;
            while let Some(a) = args.get(i) {
                match a.text.as_str() {
                    "whole" => whole = true,
                    "path-only" => path_only = true,
                    "len" | "depth" => {
                        let Some(v) = args.get(i + 1) else {
                            cx.error(a, format!("'balance uri {}' needs a number", a.text));
                            return;
                        };
                        let Some(n) = parse_u32(cx, v, &format!("balance uri {}", a.text)) else {
                            return;
                        };
                        if a.text == "len" {
                            len = n;
                        } else {
                            depth = n;
                        }
                        i += 1;
                    }
                    other => {
                        cx.error(a, format!("unknown argument '{other}' for 'balance uri'"))
                            .hint = Some(
                            "usage: balance uri [len <n>] [depth <n>] [whole] [path-only]".into(),
                        );
                        return;
                    }
                }
                i += 1;
            }
            p.balance = Balance::Uri {
                len,
                depth,
                whole,
                path_only,
            };
            return;
        }
        "url_param" => {
            let Some(name) = args.get(1) else {
                cx.error(t, "'balance url_param' needs a parameter name")
                    .hint = Some("usage: balance url_param <name>".into());
                return;
            };
            if let Some(extra) = args.get(2) {
                if extra.text == "check_post" {
                    cx.error(extra, "'balance url_param ... check_post' is not supported: request bodies are streamed, never searched for parameters")
                        .hint = Some("pass the parameter in the query string, or use `balance hdr(<name>)`".into());
                    return;
                }
                cx.warn(extra, format!("'{}' after 'balance url_param <name>' is ignored (HAProxy ignores the old <max_wait> too)", extra.text));
            }
            p.balance = Balance::UrlParam(name.text.clone());
            return;
        }
        "hdr" => {
            let Some(name) = paren_arg(&t.text, "hdr").filter(|n| !n.is_empty()) else {
                cx.error(t, "'balance hdr' needs a header name in parentheses")
                    .hint = Some("e.g. `balance hdr(X-User)`".into());
                return;
            };
            let mut use_domain_only = false;
            if let Some(a) = args.get(1) {
                if a.text == "use_domain_only" {
                    use_domain_only = true;
                } else {
                    cx.error(
                        a,
                        format!("unknown argument '{}' for 'balance hdr'", a.text),
                    );
                    return;
                }
            }
            no_extra_args(cx, 2);
            p.balance = Balance::Hdr {
                name: name.to_owned(),
                use_domain_only,
            };
            return;
        }
        "random" => {
            let draws = match paren_arg(&t.text, "random") {
                None if has_paren => {
                    cx.error(t, "malformed 'random(<draws>)'");
                    return;
                }
                None => 2,
                Some(n) => match n.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        cx.error(t, format!("'random({n})': the number of draws must be an integer of 1 or more"));
                        return;
                    }
                },
            };
            Balance::Random { draws }
        }
        "rdp-cookie" | "hash" | "log-hash" | "sticky" => {
            cx.error(t, format!("'balance {algo}' is not supported"))
                .hint = Some(match algo {
                    "hash" => "sample expressions are not supported; use `balance hdr(<name>)`, `uri`, `url_param` or `source`".into(),
                    "rdp-cookie" => "RDP is not a WebSocket use case; use `balance source` for TCP stickiness".into(),
                    _ => "it only applies to log backends, which wsgate does not have".into(),
                });
            return;
        }
        other => {
            let hint = keywords::closest(other, BALANCE_ALGORITHMS.into_iter())
                .map(|s| format!("did you mean '{s}'?"))
                .unwrap_or_else(|| "usage: balance roundrobin|static-rr|leastconn|first|source|uri|url_param <name>|hdr(<name>)|random".into());
            cx.error(t, format!("unknown balance algorithm '{other}'"))
                .hint = Some(hint);
            return;
        }
    };
    no_extra_args(cx, 1);
    p.balance = balance;
}

/// `hash-type map-based|consistent [sdbm|djb2|wt6|crc32] [avalanche]`.
/// Consistent hashing without a function means sdbm with avalanche, as
/// HAProxy documents.
pub fn hash_type(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let usage = "usage: hash-type map-based|consistent [sdbm|djb2|wt6|crc32] [avalanche]";
    let Some(method) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'hash-type' needs a method").hint = Some(usage.into());
        return;
    };
    let consistent = match method.text.as_str() {
        "map-based" => false,
        "consistent" => true,
        other => {
            cx.error(
                method,
                format!("unknown hash-type method '{other}' (expected map-based or consistent)"),
            )
            .hint = Some(usage.into());
            return;
        }
    };
    let mut ty = HashType {
        consistent,
        function: HashFunction::Sdbm,
        avalanche: false,
    };
    let mut i = 1;
    match args.get(1).map(|t| t.text.as_str()) {
        Some("sdbm") => ty.function = HashFunction::Sdbm,
        Some("djb2") => ty.function = HashFunction::Djb2,
        Some("wt6") => ty.function = HashFunction::Wt6,
        Some("crc32") => ty.function = HashFunction::Crc32,
        Some("none") => {
            if let Some(t) = args.get(1) {
                cx.error(t, "hash function 'none' is not supported (it only makes sense with `balance hash`)");
            }
            return;
        }
        _ => {
            i = 0;
            ty.avalanche = consistent;
        }
    }
    if i == 1 {
        i = 2;
    } else {
        i = 1;
    }
    if let Some(m) = args.get(i) {
        if m.text == "avalanche" {
            ty.avalanche = true;
            i += 1;
        } else {
            cx.error(m, format!("unknown hash-type argument '{}'", m.text))
                .hint = Some(usage.into());
            return;
        }
    }
    no_extra_args(cx, i);
    p.hash_type = ty;
}

/// `hash-balance-factor <n>`: 0 (off) or above 100, as HAProxy requires.
pub fn hash_balance_factor(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(v) = cx.args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'hash-balance-factor' needs a percentage")
            .hint = Some(
            "e.g. `hash-balance-factor 150`: no server above 1.5 times the average load".into(),
        );
        return;
    };
    match v.text.parse::<u32>() {
        Ok(n) if n == 0 || n > 100 => p.hash_balance_factor = n,
        _ => {
            cx.error(
                v,
                format!("'hash-balance-factor' must be 0 or greater than 100, not '{}'", v.text),
            )
            .hint = Some("it is the highest load allowed, as a percentage of the average (125 to 200 are usual); 0 turns it off".into());
            return;
        }
    }
    no_extra_args(cx, 1);
}

pub fn option_allbackups(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    no_extra_args(cx, 0);
    p.allbackups = !cx.negated;
}

/// `option httpchk [<method> <uri> [<version>]]` (the 1-argument form is
/// the URI alone, as HAProxy accepts it).
pub fn option_httpchk(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if cx.negated {
        p.httpchk = None;
        return;
    }
    p.tcp_check_on = false;
    let args = cx.args;
    let mut c = HttpCheck::default();
    match args {
        [] => {}
        [uri] => c.uri = uri.text.clone(),
        [m, uri] => {
            c.method = m.text.clone();
            c.uri = uri.text.clone();
        }
        [m, uri, v] => {
            c.method = m.text.clone();
            c.uri = uri.text.clone();
            match super::handlers_health::version_with_headers(&v.text) {
                Ok((version, headers)) => {
                    c.version = version;
                    c.headers = headers;
                }
                Err(e) => {
                    cx.error(v, e);
                    return;
                }
            }
        }
        [_, _, _, host, ..] => {
            cx.error(
                host,
                "a Host header in 'option httpchk' is not supported yet",
            )
            .hint = Some("write `option httpchk <method> <uri> <version>`".into());
            return;
        }
    }
    if c.version != "HTTP/1.0" && c.version != "HTTP/1.1" {
        if let Some(v) = args.get(2) {
            cx.error(
                v,
                format!(
                    "unsupported check version '{}' (expected HTTP/1.0 or HTTP/1.1)",
                    c.version
                ),
            );
        }
        return;
    }
    p.httpchk = Some(c);
}

/// `http-check expect [!] status <codes> | rstatus <regex> | string
/// <text>`; other `http-check` directives are rejected with a reason.
pub fn http_check(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let usage = "usage: http-check expect [!] status <code>[-<code>][,...] | rstatus <regex> | string <text>";
    let Some(first) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'http-check' needs a directive").hint = Some(usage.into());
        return;
    };
    match first.text.as_str() {
        "send" => return super::handlers_health::send(p, cx, &args[1..]),
        "disable-on-404" => return super::handlers_health::disable_on_404(cx, first),
        _ => {}
    }
    if first.text != "expect" {
        cx.error(
            first,
            format!(
                "'http-check {}' is not supported yet; only `http-check send`, `expect status|rstatus|string` and `disable-on-404` are",
                first.text
            ),
        )
        .hint =
            Some("the check request comes from `option httpchk <method> <uri> <version>`".into());
        return;
    }
    let mut i = 1;
    let negate = args.get(1).is_some_and(|t| t.text == "!");
    if negate {
        i += 1;
    }
    let (Some(kind), Some(value)) = (args.get(i), args.get(i + 1)) else {
        cx.error(first, "'http-check expect' needs a match and a value")
            .hint = Some(usage.into());
        return;
    };
    let expect = match kind.text.as_str() {
        "status" => match super::handlers_health::status_codes(&value.text) {
            Ok(codes) => HttpExpect::Status { codes, negate },
            Err(message) => {
                cx.error(value, message).hint = Some(
                    "e.g. `http-check expect status 200`, `status 200-399` or `status 200,204`"
                        .into(),
                );
                return;
            }
        },
        "rstatus" => match regex::bytes::Regex::new(&value.text) {
            Ok(r) => HttpExpect::RStatus {
                regex: super::acl::AclRegex(r),
                negate,
            },
            Err(e) => {
                let text = e.to_string();
                let last = text.lines().last().unwrap_or("").trim();
                let last = last.strip_prefix("error: ").unwrap_or(last);
                cx.error(
                    value,
                    format!("invalid regular expression '{}': {last}", value.text),
                )
                .hint = Some("the code is matched as three digits, e.g. `rstatus ^2` or `rstatus ^(200|204)$`".into());
                return;
            }
        },
        "string" => HttpExpect::String {
            text: value.text.clone(),
            negate,
        },
        other => {
            cx.error(
                kind,
                format!("'http-check expect {other}' is not supported yet"),
            )
            .hint = Some(usage.into());
            return;
        }
    };
    no_extra_args(cx, i + 2);
    p.http_expect = Some(expect);
}

pub(super) fn time_arg(cx: &mut Cx<'_>) -> Option<Option<Duration>> {
    let usage = format!("{} <time>", cx.keyword);
    let t = cx.one_arg(&usage)?;
    match parse_time(&t.text) {
        Ok(d) if d > MAX_TIMEOUT => {
            cx.error(
                t,
                format!(
                    "'{}' is too long: HAProxy's timers stop at 2147483647ms (about 24.8 days)",
                    t.text
                ),
            );
            None
        }
        // 0 disables the timeout, as in HAProxy.
        Ok(d) => Some((!d.is_zero()).then_some(d)),
        Err(e) => {
            let kw = cx.keyword.clone();
            if let Some((d, read)) = super::units::parse_time_prefix(&t.text) {
                if d <= MAX_TIMEOUT {
                    cx.warn(t, format!("'{}' read as '{read}', as HAProxy 2.6 does (it warns too; later versions refuse it)", t.text))
                        .hint = Some(format!("write `{kw} {read}`"));
                    return Some((!d.is_zero()).then_some(d));
                }
            }
            cx.error(t, format!("invalid time for '{kw}': {e}")).hint = Some(TIME_HINT.into());
            None
        }
    }
}

macro_rules! timeout_handler {
    ($name:ident, $($field:ident).+) => {
        pub fn $name(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
            if let Some(d) = time_arg(cx) {
                p.$($field).+ = d;
            }
        }
    };
}

timeout_handler!(timeout_client, frontend_timeouts.client);
timeout_handler!(timeout_client_fin, frontend_timeouts.client_fin);
timeout_handler!(timeout_http_request, frontend_timeouts.http_request);
timeout_handler!(timeout_connect, backend_timeouts.connect);
timeout_handler!(timeout_server, backend_timeouts.server);
timeout_handler!(timeout_server_fin, backend_timeouts.server_fin);
timeout_handler!(timeout_tunnel, backend_timeouts.tunnel);
timeout_handler!(timeout_queue, backend_timeouts.queue);
timeout_handler!(timeout_check, backend_timeouts.check);

/// `timeout http-keep-alive` applies to both sides (HAProxy accepts it in
/// frontends and backends; the frontend's value wins at run time).
pub fn timeout_http_keep_alive(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if let Some(d) = time_arg(cx) {
        p.frontend_timeouts.http_keep_alive = d;
        p.backend_timeouts.http_keep_alive = d;
    }
}

/// `option forwardfor [except <network>] [header <name>] [if-none]`.
pub fn option_forwardfor(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if cx.negated {
        no_extra_args(cx, 0);
        p.forwardfor = None;
        return;
    }
    let mut ff = crate::config::model::ForwardFor::default();
    let args = cx.args;
    let mut i = 0;
    while let Some(t) = args.get(i) {
        let value = args.get(i + 1);
        match (t.text.as_str(), value) {
            ("except", Some(v)) => match super::acl::parse_network(&v.text) {
                Some(n) => ff.except = Some(n),
                None => {
                    cx.error(v, format!("'{}' is not an address or network", v.text))
                        .hint = Some("e.g. `option forwardfor except 127.0.0.0/8`".into());
                    return;
                }
            },
            ("header", Some(v)) => ff.header = Some(v.text.clone()),
            ("except" | "header", None) => {
                cx.error(t, format!("'{}' needs a value", t.text));
                return;
            }
            ("if-none", _) => {
                ff.if_none = true;
                i += 1;
                continue;
            }
            (other, _) => {
                cx.error(
                    t,
                    format!("unknown argument '{other}' for 'option forwardfor'"),
                )
                .hint = Some(
                    "usage: option forwardfor [except <network>] [header <name>] [if-none]".into(),
                );
                return;
            }
        }
        i += 2;
    }
    p.forwardfor = Some(ff);
}

fn set_conn_mode(p: &mut ProxyDraft, cx: &mut Cx<'_>, mode: HttpConnMode) {
    no_extra_args(cx, 0);
    if cx.negated {
        if p.http_conn_mode == mode {
            p.http_conn_mode = HttpConnMode::KeepAlive;
        }
    } else {
        p.http_conn_mode = mode;
    }
}

pub fn option_http_keep_alive(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    set_conn_mode(p, cx, HttpConnMode::KeepAlive);
}

pub fn option_http_server_close(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    set_conn_mode(p, cx, HttpConnMode::ServerClose);
}

pub fn option_httpclose(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    set_conn_mode(p, cx, HttpConnMode::Close);
}

pub fn option_redispatch(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    p.redispatch = !cx.negated;
    if let Some(t) = cx.args.first() {
        cx.warn(
            t,
            "the redispatch interval is ignored: the last retry goes to another server (HAProxy's default)",
        );
    }
    no_extra_args(cx, 1);
}

// ---------------------------------------------------------------- bind

pub fn bind(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    p.bind_lines += 1;
    let args = cx.args;
    let Some(addr_tok) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'bind' needs an address").hint =
            Some("usage: bind <addr>:<port> [ssl crt <pem>], e.g. `bind *:80`".into());
        return;
    };
    let mut addrs = Vec::new();
    let mut bad = false;
    let addr_text = super::lexer::expand_address(&addr_tok.text, cx.env);
    for part in addr_text.split(',') {
        match parse_bind_addr(part, cx.syntax_only) {
            Ok(mut list) => {
                if list.iter().any(|a| a.port() == 0) {
                    cx.warn(addr_tok, "port 0: the system picks a free port at startup (useful for tests, not for clients)");
                }
                addrs.append(&mut list);
            }
            Err(e) => {
                bad = true;
                e.report(cx, addr_tok);
            }
        }
    }
    let mut ssl: Option<&Token> = None;
    let mut crts: Vec<(&Token, PathBuf)> = Vec::new();
    let mut sources: Vec<CertSource> = Vec::new();
    let mut strict_sni = false;
    let mut accept_proxy = false;
    let mut ca_file: Option<(&Token, PathBuf)> = None;
    let mut verify: Option<(&Token, &str)> = None;
    let mut verify_invalid = false;
    let mut crl_file: Option<(&Token, PathBuf)> = None;
    let mut settings = cx.ssl_bind.clone();
    let options = scan_options(cx, &args[1..], BIND_OPTIONS, "bind");
    for (o, t, value) in options {
        match o.name {
            "ssl" => ssl = Some(t),
            "accept-proxy" => accept_proxy = true,
            "ca-file" => {
                if let Some(v) = value {
                    ca_file = Some((v, resolve_crt(None, &v.text)));
                }
            }
            "crl-file" => {
                if let Some(v) = value {
                    crl_file = Some((v, resolve_crt(None, &v.text)));
                }
            }
            "verify" => {
                if let Some(v) = value {
                    match v.text.as_str() {
                        "none" | "optional" | "required" => verify = Some((v, v.text.as_str())),
                        other => {
                            cx.error(
                                v,
                                format!("verify '{other}': expected none, optional or required"),
                            );
                            bad = true;
                            verify_invalid = true;
                        }
                    }
                }
            }
            "crt" => {
                if let Some(v) = value {
                    let path = resolve_crt(cx.crt_base, &v.text);
                    sources.push(CertSource::Crt(path.clone()));
                    crts.push((v, path));
                }
            }
            "crt-list" => {
                if let Some(v) = value {
                    let path = resolve_crt(cx.crt_base, &v.text);
                    sources.push(CertSource::CrtList(path.clone()));
                    crts.push((v, path));
                }
            }
            "strict-sni" => strict_sni = true,
            _ => {
                if !tls_option(cx, &mut settings, o.name, t, value) {
                    bad = true;
                }
            }
        }
    }
    if let (Some(min), Some(max)) = (settings.min_ver, settings.max_ver) {
        if min > max {
            let kw = cx.kw;
            cx.error(
                kw,
                "the TLS versions allowed on this bind are empty (minimum above maximum)",
            )
            .hint = Some(
                "check ssl-min-ver/ssl-max-ver/no-tlsv1x here and in `ssl-default-bind-options`"
                    .into(),
            );
            bad = true;
        }
    }
    if let Some(ssl_tok) = ssl {
        if crts.is_empty() {
            cx.error(ssl_tok, "'ssl' needs a certificate: add `crt <file.pem|dir>` or `crt-list <file>` to this bind line")
                .hint = Some("e.g. `bind *:443 ssl crt /etc/wsgate/site.pem` (certificate, chain and key in one PEM file)".into());
            bad = true;
        }
    } else if let Some((crt_tok, _)) = crts.first() {
        cx.warn(
            crt_tok,
            "'crt' without 'ssl': this listener serves plain TCP and the certificate is not used",
        )
        .hint = Some("add `ssl` before `crt` to terminate TLS here".into());
    }
    // Whether the files exist is a question for the machine, not the text.
    let check_files = !cx.syntax_only;
    for (tok, path) in &crts {
        if check_files && !path.exists() {
            bad = true;
            let where_ = match cx.crt_base {
                Some(base) if Path::new(&tok.text).is_relative() => {
                    format!("crt-base '{}'", base.display())
                }
                _ if Path::new(&tok.text).is_relative() => "the working directory".to_owned(),
                _ => String::new(),
            };
            let msg = if where_.is_empty() {
                format!("certificate file '{}' does not exist", tok.text)
            } else {
                format!(
                    "certificate file '{}' does not exist (looked in {where_})",
                    tok.text
                )
            };
            cx.env_error(tok, msg).hint = Some(
                "create it (certificate, chain and private key in one PEM file) or fix the path; relative paths are resolved against the directory wsgate starts in, or `crt-base` in global".into(),
            );
        }
    }
    if verify_invalid {
        return;
    }
    let client_auth = match bind_client_auth(cx, ssl.is_some(), ca_file, crl_file, verify) {
        Ok(c) => c,
        Err(()) => return,
    };
    if bad {
        return;
    }
    let tls = ssl.map(|_| BindSsl {
        crt: sources
            .iter()
            .filter_map(|s| match s {
                CertSource::Crt(p) => Some(p.clone()),
                CertSource::CrtList(_) => None,
            })
            .collect(),
        sources,
        strict_sni,
        settings,
        client_auth,
    });
    let location = cx.kw_loc();
    for addr in addrs {
        p.binds.push(Bind {
            location: location.clone(),
            addr,
            ssl: tls.clone(),
            accept_proxy,
        });
    }
}

/// `ca-file`, `crl-file` and `verify` of a `bind` line: client
/// certificates. As HAProxy, `verify` defaults to `none` (no certificate
/// asked for), and `optional`/`required` need a `ca-file` to verify
/// against. `Err` after reporting an error.
fn bind_client_auth(
    cx: &mut Cx<'_>,
    ssl: bool,
    ca_file: Option<(&Token, PathBuf)>,
    crl_file: Option<(&Token, PathBuf)>,
    verify: Option<(&Token, &str)>,
) -> Result<Option<ClientAuth>, ()> {
    if let Some((tok, path)) = &crl_file {
        if !path.exists() {
            cx.error(tok, format!("crl-file '{}' does not exist", tok.text))
                .hint = Some("give the PEM file of the revocation lists of the CA(s) that sign client certificates".into());
            return Err(());
        }
    }
    if let Some((tok, path)) = &ca_file {
        if !path.exists() {
            let written = tok.text.clone();
            let where_ = if Path::new(&written).is_relative() {
                " (looked in the working directory)"
            } else {
                ""
            };
            cx.error(tok, format!("ca-file '{written}' does not exist{where_}"))
                .hint = Some("give the PEM file of the CA(s) that sign client certificates; relative paths are resolved against the directory wsgate starts in".into());
            return Err(());
        }
    }
    if !ssl {
        if let Some((tok, _)) = verify
            .filter(|(_, m)| *m != "none")
            .or(ca_file.as_ref().map(|(t, _)| (*t, "")))
        {
            cx.warn(tok, "client certificate options without 'ssl': this listener serves plain TCP and they are not used");
        }
        return Ok(None);
    }
    if let (Some((tok, _)), None | Some((_, "none"))) = (&crl_file, verify) {
        cx.warn(tok, "'crl-file' without `verify optional|required`: client certificates are not requested, so it is not used");
    }
    match (verify.filter(|(_, m)| *m != "none"), ca_file) {
        (None, None) => Ok(None),
        (None, Some((tok, _))) => {
            cx.warn(
                tok,
                "'ca-file' with `verify none` (the default): client certificates are not requested",
            )
            .hint = Some(
                "add `verify required` (or `verify optional`) to ask clients for a certificate"
                    .into(),
            );
            Ok(None)
        }
        (Some((tok, mode)), None) => {
            cx.error(
                tok,
                format!("`verify {mode}` needs a `ca-file` to verify client certificates against"),
            )
            .hint = Some("add `ca-file <pem>` with the CA(s) that sign client certificates".into());
            Err(())
        }
        (Some((_, mode)), Some((_, path))) => Ok(Some(ClientAuth {
            ca_file: path,
            required: mode == "required",
            crl_file: crl_file.map(|(_, p)| p),
        })),
    }
}

/// One TLS protocol option of a `bind` line or of `ssl-default-bind-*`
/// (`ssl-min-ver`, `ciphers`, `curves`, `no-tlsv12`, ...) into `settings`.
/// Returns false after reporting an error.
fn tls_option(
    cx: &mut Cx<'_>,
    settings: &mut TlsSettings,
    name: &str,
    t: &Token,
    value: Option<&Token>,
) -> bool {
    let text = value.map_or("", |v| v.text.as_str());
    let at = value.unwrap_or(t);
    match name {
        "ssl-min-ver" | "ssl-max-ver" => match tls::parse_version(text) {
            Ok(v) if name == "ssl-min-ver" => settings.min_ver = Some(v),
            Ok(v) => settings.max_ver = Some(v),
            Err(e) => {
                cx.error(at, e);
                return false;
            }
        },
        "no-sslv3" | "no-tlsv10" | "no-tlsv11" => {} // never offered anyway
        "no-tlsv12" => settings.min_ver = Some(TlsVersion::Tls13),
        "no-tlsv13" => settings.max_ver = Some(TlsVersion::Tls12),
        "force-tlsv12" => {
            settings.min_ver = Some(TlsVersion::Tls12);
            settings.max_ver = Some(TlsVersion::Tls12);
        }
        "force-tlsv13" => {
            settings.min_ver = Some(TlsVersion::Tls13);
            settings.max_ver = Some(TlsVersion::Tls13);
        }
        "no-tls-tickets" => settings.no_tls_tickets = true,
        "prefer-client-ciphers" => settings.prefer_client_ciphers = true,
        "ciphers" => {
            let list = tls::parse_cipher_list(text);
            if !list.refused.is_empty() {
                // As OpenSSL: what cannot be used is left out; the list is
                // refused below only when nothing usable remains.
                cx.warn(
                    at,
                    format!(
                        "cipher(s) {} left out: {}",
                        quoted(&list.refused),
                        tls::refusal_reason(&list.refused)
                    ),
                )
                .hint = Some(format!(
                    "remove them, or use the suites wsgate offers: {}",
                    CipherSuite::all_tls12()
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(":")
                ));
            }
            if !list.skipped_dhe.is_empty() {
                cx.warn(
                    at,
                    format!(
                        "{} not offered: wsgate has ECDHE key exchange only (rustls implements no finite-field DHE); clients that support these also support ECDHE",
                        quoted(&list.skipped_dhe)
                    ),
                );
            }
            if list.suites.is_empty() {
                cx.error(
                    at,
                    "this cipher list leaves no TLS 1.2 cipher wsgate can offer",
                )
                .hint = Some("to allow TLS 1.3 only, write `ssl-min-ver TLSv1.3` instead".into());
                return false;
            }
            settings.ciphers = Some(list.suites);
        }
        "ciphersuites" => {
            let list = tls::parse_ciphersuites(text);
            if !list.refused.is_empty() {
                cx.error(
                    at,
                    format!(
                        "TLS 1.3 cipher suite(s) {} not available: wsgate (rustls) offers TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 and TLS_AES_128_GCM_SHA256",
                        quoted(&list.refused)
                    ),
                );
                return false;
            }
            if list.suites.is_empty() {
                cx.error(at, "empty TLS 1.3 cipher suite list");
                return false;
            }
            settings.ciphersuites = Some(list.suites);
        }
        "curves" | "ecdhe" => match tls::parse_curves(text) {
            Ok(groups) if !groups.is_empty() => settings.curves = Some(groups),
            Ok(_) => {
                cx.error(at, format!("empty '{name}' list"));
                return false;
            }
            Err(bad) => {
                cx.error(
                    at,
                    format!(
                        "curve(s) {} not available: wsgate (rustls) offers X25519, P-256 and P-384",
                        quoted(&bad)
                    ),
                );
                return false;
            }
        },
        "alpn" => {
            let (_, dropped) = tls::parse_alpn(text);
            if dropped.iter().any(|p| p == "h2") {
                cx.warn(
                    at,
                    "HTTP/2 is not supported yet: wsgate offers only http/1.1 over ALPN (WebSockets work the same way over it)",
                );
            }
            let others: Vec<String> = dropped.into_iter().filter(|p| p != "h2").collect();
            if !others.is_empty() {
                cx.warn(
                    at,
                    format!(
                        "ALPN protocol(s) {} not offered: wsgate speaks http/1.1",
                        quoted(&others)
                    ),
                );
            }
        }
        _ => {}
    }
    true
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sni` sample expressions: `str(<name>)`, `req.hdr(<name>)`,
/// `hdr(<name>)`.
fn parse_sni(text: &str) -> Option<SniExpr> {
    let (fetch, rest) = text.split_once('(')?;
    let arg = rest.strip_suffix(')')?.trim();
    if arg.is_empty() {
        return None;
    }
    match fetch {
        "str" => Some(SniExpr::Str(arg.to_owned())),
        "req.hdr" | "hdr" => Some(SniExpr::ReqHdr(arg.to_ascii_lowercase())),
        _ => None,
    }
}

/// `ssl-default-bind-options <option>...`: bind options every later
/// `bind ... ssl` starts from.
pub fn ssl_default_bind_options(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let mut i = 0;
    while let Some(t) = args.get(i) {
        let takes_value = matches!(t.text.as_str(), "ssl-min-ver" | "ssl-max-ver");
        let value = if takes_value { args.get(i + 1) } else { None };
        i += 1 + usize::from(takes_value);
        match t.text.as_str() {
            "ssl-min-ver" | "ssl-max-ver" if value.is_none() => {
                cx.error(
                    t,
                    format!("'{}' needs a version (TLSv1.2 or TLSv1.3)", t.text),
                );
            }
            "ssl-min-ver"
            | "ssl-max-ver"
            | "no-sslv3"
            | "no-tlsv10"
            | "no-tlsv11"
            | "no-tlsv12"
            | "no-tlsv13"
            | "force-tlsv12"
            | "force-tlsv13"
            | "no-tls-tickets"
            | "prefer-client-ciphers" => {
                let name = t.text.clone();
                tls_option(cx, &mut g.ssl_bind, &name, t, value);
            }
            "force-sslv3" | "force-tlsv10" | "force-tlsv11" => {
                cx.error(t, format!("'{}': {}", t.text, tls::OLD_VERSIONS));
            }
            other => {
                cx.error(t, format!("'{other}' is not an option wsgate takes in ssl-default-bind-options"))
                    .hint = Some("supported: ssl-min-ver, ssl-max-ver, no-tlsv12, no-tlsv13, force-tlsv12, force-tlsv13, no-tls-tickets, prefer-client-ciphers (no-sslv3, no-tlsv10, no-tlsv11 are always true)".into());
            }
        }
    }
}

pub fn ssl_default_bind_ciphers(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    global_tls_value(g, cx, "ciphers");
}

pub fn ssl_default_bind_ciphersuites(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    global_tls_value(g, cx, "ciphersuites");
}

pub fn ssl_default_bind_curves(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    global_tls_value(g, cx, "curves");
}

fn global_tls_value(g: &mut GlobalDraft, cx: &mut Cx<'_>, option: &str) {
    let keyword = cx.keyword.clone();
    let Some(t) = cx.one_arg(&format!("{keyword} <list>")) else {
        return;
    };
    tls_option(cx, &mut g.ssl_bind, option, t, Some(t));
}

/// Relative `crt` paths: against `crt-base` when set, else the working
/// directory (made absolute now, so a later `chdir` cannot change them).
fn resolve_crt(base: Option<&Path>, text: &str) -> PathBuf {
    let path = Path::new(text);
    if path.is_absolute() {
        return path.to_owned();
    }
    let joined = match base {
        Some(b) => b.join(path),
        None => path.to_owned(),
    };
    if joined.is_absolute() {
        return joined;
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(joined),
        Err(_) => joined,
    }
}

/// Walks `bind`/`server` options with their table: reports unknown,
/// ignored (one warning per reason) and rejected ones, and returns the
/// supported ones with their token and value.
fn scan_options<'t>(
    cx: &mut Cx<'_>,
    args: &'t [Token],
    table: &'static [LineOption],
    line_kind: &str,
) -> Vec<(&'static LineOption, &'t Token, Option<&'t Token>)> {
    let mut found = Vec::new();
    let mut ignored: Vec<(&'static str, Vec<&'static str>, &'t Token)> = Vec::new();
    let mut i = 0;
    while let Some(t) = args.get(i) {
        let Some(o) = table.iter().find(|o| o.name == t.text) else {
            let guess = keywords::closest(&t.text, table.iter().map(|o| o.name))
                .and_then(|s| table.iter().find(|o| o.name == s));
            let hint = guess
                .map(|o| format!("did you mean '{}'?", o.name))
                .unwrap_or_else(|| {
                    "`wsgate --list-keywords` lists the options wsgate knows".into()
                });
            cx.error(t, format!("unknown {line_kind} option '{}'", t.text))
                .hint = Some(hint);
            // Skip what is probably the typo's value, to avoid a second error.
            i += 1 + guess.map_or(0, |o| o.args);
            continue;
        };
        let value = if o.args > 0 { args.get(i + 1) } else { None };
        if o.args > 0 && value.is_none() {
            cx.error(t, format!("{line_kind} option '{}' needs a value", o.name));
            break;
        }
        i += 1 + o.args;
        match o.status {
            OptionStatus::Supported(_) => found.push((o, t, value)),
            OptionStatus::Ignored(reason) => {
                match ignored.iter_mut().find(|(r, _, _)| *r == reason) {
                    Some((_, names, _)) => names.push(o.name),
                    None => ignored.push((reason, vec![o.name], t)),
                }
            }
            OptionStatus::Rejected(reason) => {
                cx.error(
                    t,
                    format!("{line_kind} option '{}' is not supported: {reason}", o.name),
                );
            }
        }
    }
    for (reason, names, t) in ignored {
        let list = names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let what = if names.len() == 1 {
            "option"
        } else {
            "options"
        };
        cx.warn(
            t,
            format!("{line_kind} {what} {list} accepted but not enforced: {reason}"),
        );
    }
    found
}

/// An address problem, with an optional hint.
struct AddrError {
    message: String,
    hint: Option<String>,
    /// A name that does not resolve here (not a language error).
    environment: bool,
}

fn addr_err(message: impl Into<String>) -> AddrError {
    AddrError {
        message: message.into(),
        hint: None,
        environment: false,
    }
}

impl AddrError {
    fn report(self, cx: &mut Cx<'_>, at: &Token) {
        let d = if self.environment {
            cx.env_error(at, self.message)
        } else {
            cx.error(at, self.message)
        };
        d.hint = self.hint;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Family {
    Any,
    V4,
    V6,
}

/// Takes an optional `ipv4@`/`ipv6@`/`tcp@` prefix off.
fn split_family(s: &str) -> Result<(Family, &str), AddrError> {
    if s.starts_with('/') {
        return Err(addr_err(format!(
            "'{s}': UNIX socket paths are not supported; use <ip>:<port>"
        )));
    }
    let Some((prefix, rest)) = s.split_once('@') else {
        return Ok((Family::Any, s));
    };
    match prefix {
        "ipv4" | "tcp4" => Ok((Family::V4, rest)),
        "ipv6" | "tcp6" => Ok((Family::V6, rest)),
        "tcp" => Ok((Family::Any, rest)),
        other => Err(addr_err(format!(
            "address family '{other}@' is not supported; use <ip>:<port>, optionally with ipv4@ or ipv6@"
        ))),
    }
}

/// Splits `host:port`, `[v6]:port` or `v6:port` (last colon).
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), AddrError> {
    if let Some(inner) = s.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(addr_err(format!("missing ']' in '{s}'")));
        };
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(addr_err(format!("unexpected '{after}' after ']' in '{s}'"))),
        };
    }
    match s.rfind(':') {
        Some(i) => Ok((&s[..i], Some(&s[i + 1..]))),
        None => Ok((s, None)),
    }
}

fn parse_port(s: &str) -> Result<u16, AddrError> {
    let n: u32 = s.parse().map_err(|_| {
        if s.is_empty() {
            addr_err("missing port number after ':'")
        } else {
            addr_err(format!("port '{s}' is not a number"))
        }
    })?;
    u16::try_from(n).map_err(|_| addr_err(format!("port {n} is out of range (1-65535)")))
}

fn parse_ip(host: &str, family: Family) -> Option<IpAddr> {
    let ip: IpAddr = host.parse().ok()?;
    match (family, ip) {
        (Family::V4, IpAddr::V6(_)) | (Family::V6, IpAddr::V4(_)) => None,
        _ => Some(ip),
    }
}

/// Resolves a host name with the system resolver, keeping the family.
/// With `syntax_only`, resolves nothing: the unspecified address of the
/// family stands in (the configuration is only checked, not run).
fn resolve(
    host: &str,
    port: u16,
    family: Family,
    syntax_only: bool,
) -> Result<SocketAddr, AddrError> {
    if syntax_only {
        let ip = match family {
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        return Ok(SocketAddr::new(ip, port));
    }
    let found = (host, port).to_socket_addrs().map_err(|e| AddrError {
        message: format!("cannot resolve host name '{host}': {e}"),
        hint: Some("use an IP address, or make sure the name resolves where wsgate starts (it is resolved once, at startup), or add `init-addr last,libc,none` to start the server in maintenance without one; `wsgate -c --syntax-only` skips name resolution".into()),
        environment: true,
    })?;
    found
        .into_iter()
        .find(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .ok_or_else(|| AddrError {
            environment: true,
            ..addr_err(format!(
                "host name '{host}' has no address of the requested family"
            ))
        })
}

/// One `bind` address (a comma-separated part): wildcards, IPv6 and port
/// ranges.
fn parse_bind_addr(s: &str, syntax_only: bool) -> Result<Vec<SocketAddr>, AddrError> {
    let (family, rest) = split_family(s)?;
    let (host, port) = split_host_port(rest)?;
    let Some(port) = port else {
        return Err(AddrError {
            message: format!("missing port in bind address '{s}'"),
            hint: Some("write `bind *:80` (all IPv4 addresses) or `bind [::]:80` (IPv6)".into()),
            environment: false,
        });
    };
    let ports: Vec<u16> = match port.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
            if lo > hi {
                return Err(addr_err(format!("port range {lo}-{hi} is empty")));
            }
            (lo..=hi).collect()
        }
        None => vec![parse_port(port)?],
    };
    let ip = match host {
        "" | "*" => match family {
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        },
        h => match parse_ip(h, family) {
            Some(ip) => ip,
            None => resolve(h, ports[0], family, syntax_only)?.ip(),
        },
    };
    Ok(ports.into_iter().map(|p| SocketAddr::new(ip, p)).collect())
}

/// One method of `init-addr`, tried in order until one gives the server
/// an address (HAProxy's default is `last,libc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitAddr {
    /// The address in the `server-state-file`: wsgate reads none at
    /// startup, so this never gives one (as HAProxy without the file).
    Last,
    /// The system resolver, once, at startup.
    Libc,
    /// No address: the server starts in maintenance.
    None,
    /// This address.
    Ip(IpAddr),
}

/// `init-addr <method>[,<method>...]`; `Err` names the bad method.
fn parse_init_addr(text: &str) -> Result<Vec<InitAddr>, String> {
    text.split(',')
        .map(|m| match m {
            "last" => Ok(InitAddr::Last),
            "libc" => Ok(InitAddr::Libc),
            "none" => Ok(InitAddr::None),
            other => other.parse::<IpAddr>().map(InitAddr::Ip).map_err(|_| {
                format!("init-addr method '{other}' is not last, libc, none or an IP address")
            }),
        })
        .collect()
}

/// What `init-addr` found for a server.
enum Found {
    Addr(SocketAddr),
    /// The resolver failed; `init-addr` named this address to use then.
    Fallback(SocketAddr),
    /// No address, and `none` lets the server start without one (on
    /// this port once it gets one).
    Nothing {
        port: u16,
    },
}

/// A `server` address, a host name resolved as `init-addr` says.
fn server_addr(
    s: &str,
    init_addr: Option<&[InitAddr]>,
    syntax_only: bool,
) -> Result<Found, AddrError> {
    let (family, host, port) = split_server_addr(s)?;
    if let Some(ip) = parse_ip(host, family) {
        return Ok(Found::Addr(SocketAddr::new(ip, port)));
    }
    if syntax_only {
        return resolve(host, port, family, true).map(Found::Addr);
    }
    let mut failed = None;
    for method in init_addr.unwrap_or(&[InitAddr::Last, InitAddr::Libc]) {
        match method {
            InitAddr::Last => {}
            InitAddr::Libc => match resolve(host, port, family, false) {
                Ok(a) => return Ok(Found::Addr(a)),
                Err(e) => failed = Some(e),
            },
            InitAddr::None => return Ok(Found::Nothing { port }),
            InitAddr::Ip(ip) => return Ok(Found::Fallback(SocketAddr::new(*ip, port))),
        }
    }
    Err(failed.unwrap_or_else(|| AddrError {
        message: format!("no `init-addr` method gives '{host}' an address (`last` needs a server-state-file, which wsgate does not read at startup)"),
        hint: Some("add `libc` (resolve at startup), an IP address, or `none` (start in maintenance) to `init-addr`".into()),
        environment: true,
    }))
}

/// The family, host and port of a `server` address.
fn split_server_addr(s: &str) -> Result<(Family, &str, u16), AddrError> {
    let (family, rest) = split_family(s)?;
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None => {
            return Err(AddrError {
                message: format!("missing port in server address '{s}'"),
                hint: Some(format!(
                    "write `{s}:<port>`, e.g. `{s}:8080` (wsgate does not reuse the client's port)"
                )),
                environment: false,
            })
        }
        Some(p) if p.starts_with('+') || p.starts_with('-') => {
            return Err(addr_err(format!(
                "port offsets ('{p}') are not supported; give the server's port"
            )))
        }
        Some(p) if p.contains('-') => {
            return Err(addr_err(format!(
                "port ranges ('{p}') are not allowed on a server"
            )))
        }
        Some(p) => parse_port(p)?,
    };
    if port == 0 {
        return Err(addr_err("port 0 is not a valid server port (1-65535)"));
    }
    if host.is_empty() || host == "*" {
        return Err(addr_err(format!("missing host in server address '{s}'")));
    }
    Ok((family, host, port))
}

// ---------------------------------------------------------------- server

fn apply_server_options(
    cx: &mut Cx<'_>,
    args: &[Token],
    defaults: &mut ServerDefaults,
    line_kind: &str,
) -> bool {
    let mut ok = true;
    for (o, t, value) in scan_options(cx, args, SERVER_OPTIONS, line_kind) {
        let text = value.map(|v| v.text.as_str()).unwrap_or("");
        let time = |cx: &mut Cx<'_>, ok: &mut bool| -> Option<Duration> {
            let v = value?;
            match parse_time(&v.text) {
                Ok(d) if !d.is_zero() && d <= MAX_TIMEOUT => Some(d),
                Ok(_) => {
                    cx.error(
                        v,
                        format!("'{}' must be a positive time below 24.8 days", o.name),
                    );
                    *ok = false;
                    None
                }
                Err(e) => {
                    cx.error(v, format!("invalid time for '{}': {e}", o.name))
                        .hint = Some(TIME_HINT.into());
                    *ok = false;
                    None
                }
            }
        };
        let count = |cx: &mut Cx<'_>, ok: &mut bool, min: u32| -> Option<u32> {
            let v = value?;
            match v.text.parse::<u32>() {
                Ok(n) if n >= min => Some(n),
                _ => {
                    cx.error(
                        v,
                        format!(
                            "'{}' must be an integer of at least {min}, not '{}'",
                            o.name, v.text
                        ),
                    );
                    *ok = false;
                    None
                }
            }
        };
        match o.name {
            "weight" => match text.parse::<u32>() {
                Ok(w) if w <= 256 => defaults.weight = Some(w),
                _ => {
                    if let Some(v) = value {
                        cx.error(v, format!("weight '{text}' is out of range (0-256)"));
                    }
                    ok = false;
                }
            },
            "disabled" => defaults.disabled = true,
            "init-addr" => match parse_init_addr(text) {
                Ok(methods) => defaults.init_addr = Some(methods),
                Err(message) => {
                    if let Some(v) = value {
                        cx.error(v, message).hint = Some(
                            "e.g. `init-addr last,libc,none` (HAProxy's default is last,libc)"
                                .into(),
                        );
                    }
                    ok = false;
                }
            },
            "redir" => defaults.redir = Some(text.to_owned()),
            "enabled" => defaults.disabled = false,
            "backup" => defaults.backup = true,
            "on-marked-down" if text == "shutdown-sessions" => defaults.shutdown_on_down = true,
            "on-marked-up" if text == "shutdown-backup-sessions" => {
                defaults.shutdown_backups_on_up = true
            }
            "on-marked-down" | "on-marked-up" => {
                let (only, what) = if o.name == "on-marked-down" {
                    ("shutdown-sessions", "a server marked down")
                } else {
                    ("shutdown-backup-sessions", "a server marked up")
                };
                if let Some(v) = value {
                    cx.error(
                        v,
                        format!("'{}' accepts only '{only}' (the action on {what})", o.name),
                    );
                }
                ok = false;
            }
            "check" => defaults.check = true,
            "no-check" => defaults.check = false,
            "id" => {
                if line_kind != "server" {
                    cx.error(t, "'id' is only allowed on `server` lines (ids are unique)");
                    ok = false;
                } else if let Some(n) = count(cx, &mut ok, 1) {
                    defaults.id = Some((n, cx.loc(t)));
                }
            }
            "maxconn" => {
                if let Some(n) = count(cx, &mut ok, 0) {
                    defaults.maxconn = n;
                }
            }
            "maxqueue" => {
                if let Some(n) = count(cx, &mut ok, 0) {
                    defaults.maxqueue = n;
                }
            }
            "rise" => {
                if let Some(n) = count(cx, &mut ok, 1) {
                    defaults.rise = Some(n);
                }
            }
            "fall" => {
                if let Some(n) = count(cx, &mut ok, 1) {
                    defaults.fall = Some(n);
                }
            }
            "inter" => defaults.inter = time(cx, &mut ok).or(defaults.inter),
            "fastinter" => defaults.fastinter = time(cx, &mut ok).or(defaults.fastinter),
            "downinter" => defaults.downinter = time(cx, &mut ok).or(defaults.downinter),
            "port" => match text.parse::<u16>() {
                Ok(n) if n > 0 => defaults.port = Some(n),
                _ => {
                    if let Some(v) = value {
                        cx.error(v, format!("check port '{text}' is out of range (1-65535)"));
                    }
                    ok = false;
                }
            },
            "ssl" => defaults.ssl = true,
            "no-ssl" => defaults.ssl = false,
            "verify" => match text {
                "none" => defaults.verify = Some(false),
                "required" => defaults.verify = Some(true),
                _ => {
                    if let Some(v) = value {
                        cx.error(v, format!("verify '{text}': expected none or required"));
                    }
                    ok = false;
                }
            },
            "ca-file" => defaults.ca_file = Some(resolve_crt(None, text)),
            // Relative to `crt-base`, as a bind's `crt` (HAProxy's rule).
            "crt" => defaults.crt = Some(resolve_crt(cx.crt_base, text)),
            "send-proxy" => defaults.proxy_v1 = true,
            "send-proxy-v2" => defaults.proxy.v2 = true,
            "send-proxy-v2-ssl" => {
                defaults.proxy.v2 = true;
                defaults.proxy.ssl = true;
            }
            "send-proxy-v2-ssl-cn" => {
                defaults.proxy.v2 = true;
                defaults.proxy.ssl = true;
                defaults.proxy.cert_cn = true;
            }
            "proxy-v2-options" => {
                if let Some(v) = value {
                    if !proxy_v2_options(cx, v, &mut defaults.proxy) {
                        ok = false;
                    }
                }
            }
            "no-send-proxy" => defaults.proxy_v1 = false,
            "no-send-proxy-v2" => defaults.proxy.v2 = false,
            "no-send-proxy-v2-ssl" => defaults.proxy.ssl = false,
            "no-send-proxy-v2-ssl-cn" => defaults.proxy.cert_cn = false,
            "check-send-proxy" => defaults.check_send_proxy = true,
            "no-check-send-proxy" => defaults.check_send_proxy = false,
            "check-ssl" => defaults.check_ssl = Some(true),
            "no-check-ssl" => defaults.check_ssl = Some(false),
            "alpn" => {
                if let Some(v) = value {
                    defaults.alpn = server_alpn(cx, v);
                }
            }
            "sni" => match parse_sni(text) {
                Some(e) => defaults.sni = Some(e),
                None => {
                    if let Some(v) = value {
                        cx.error(
                            v,
                            format!("sni '{text}' is not an expression wsgate evaluates"),
                        )
                        .hint = Some("use `sni str(<name>)` or `sni req.hdr(host)`".into());
                    }
                    ok = false;
                }
            },
            "cookie" => defaults.cookie = Some(text.to_owned()),
            "non-stick" => defaults.non_stick = true,
            "observe" => match text {
                "layer4" => defaults.passive.observe = Some(Observe::Layer4),
                "layer7" => defaults.passive.observe = Some(Observe::Layer7),
                _ => {
                    if let Some(v) = value {
                        cx.error(v, format!("observe '{text}': expected layer4 or layer7"));
                    }
                    ok = false;
                }
            },
            "error-limit" => {
                if let Some(n) = count(cx, &mut ok, 1) {
                    defaults.passive.error_limit = n;
                }
            }
            "on-error" => match text {
                "fastinter" => defaults.passive.on_error = OnError::FastInter,
                "fail-check" => defaults.passive.on_error = OnError::FailCheck,
                "sudden-death" => defaults.passive.on_error = OnError::SuddenDeath,
                "mark-down" => defaults.passive.on_error = OnError::MarkDown,
                _ => {
                    if let Some(v) = value {
                        cx.error(
                            v,
                            format!("on-error '{text}': expected fastinter, fail-check, sudden-death or mark-down"),
                        );
                    }
                    ok = false;
                }
            },
            "slowstart" => match value.map(|v| (v, parse_time(&v.text))) {
                // HAProxy keeps whole seconds, rounded up; 0 turns it off.
                Some((_, Ok(d))) if d <= MAX_TIMEOUT => {
                    defaults.slowstart = u32::try_from(d.as_millis().div_ceil(1000)).unwrap_or(0)
                }
                Some((v, Ok(_))) => {
                    cx.error(v, "'slowstart' must be below 24.8 days");
                    ok = false;
                }
                Some((v, Err(e))) => {
                    cx.error(v, format!("invalid time for 'slowstart': {e}"))
                        .hint = Some(TIME_HINT.into());
                    ok = false;
                }
                None => {}
            },
            "addr" => match text.parse::<IpAddr>() {
                Ok(ip) => defaults.addr = Some(ip),
                Err(_) => {
                    if let Some(v) = value {
                        cx.error(v, format!("check address '{text}' is not an IP address"));
                    }
                    ok = false;
                }
            },
            _ => {}
        }
    }
    ok
}

/// `proxy-v2-options <opt>[,<opt>...]`: the TLVs wsgate adds to a v2
/// header. Returns false after reporting an error.
fn proxy_v2_options(cx: &mut Cx<'_>, v: &Token, proxy: &mut SendProxy) -> bool {
    let mut refused = Vec::new();
    for option in v.text.split(',') {
        match option {
            "ssl" => proxy.ssl = true,
            "cert-cn" => {
                proxy.ssl = true;
                proxy.cert_cn = true;
            }
            "ssl-cipher" => {
                proxy.ssl = true;
                proxy.ssl_cipher = true;
            }
            "authority" => proxy.authority = true,
            "crc32c" => proxy.crc32c = true,
            other => refused.push(other),
        }
    }
    if refused.is_empty() {
        return true;
    }
    cx.error(
        v,
        format!(
            "proxy-v2-options {} not supported: wsgate sends ssl, cert-cn, ssl-cipher, authority and crc32c",
            quoted(&refused.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        ),
    )
    .hint = Some("`unique-id` needs `unique-id-format`, which wsgate does not have; `cert-sig` and `cert-key` describe the client certificate's algorithms, which are not extracted".into());
    false
}

/// `alpn <list>` on a server: what wsgate offers over TLS. It speaks
/// HTTP/1.1 to servers, so `h2` is left out with a warning (a server that
/// picked it would get HTTP/1.1 bytes); an empty result offers `http/1.1`.
fn server_alpn(cx: &mut Cx<'_>, v: &Token) -> Option<Vec<String>> {
    let (h2, rest): (Vec<&str>, Vec<&str>) = v
        .text
        .split(',')
        .filter(|p| !p.is_empty())
        .partition(|p| *p == "h2");
    if !h2.is_empty() {
        let offered = if rest.is_empty() {
            "http/1.1".to_owned()
        } else {
            rest.join(",")
        };
        cx.warn(
            v,
            format!("'h2' left out of the server ALPN list: wsgate speaks HTTP/1.1 to servers; it offers {offered}"),
        )
        .hint = Some("write `alpn http/1.1` to say so".into());
    }
    Some(rest.into_iter().map(str::to_owned).collect())
}

pub fn default_server(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let mut d = p.default_server.clone();
    apply_server_options(cx, args, &mut d, "default-server");
    d.id = None;
    p.default_server = d;
}

pub fn server(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    server_at(p, cx, false);
}

/// A `server` line; `unresolved`: a `server-template` slot its name gave
/// no address, whose address text only gives the port.
pub(super) fn server_at(p: &mut ProxyDraft, cx: &mut Cx<'_>, unresolved: bool) {
    let args = cx.args;
    let (Some(name), Some(addr_tok)) = (args.first(), args.get(1)) else {
        let kw = cx.kw;
        cx.error(kw, "'server' needs a name and an address")
            .hint = Some("usage: server <name> <addr>:<port> [weight N] [disabled], e.g. `server s1 127.0.0.1:8080`".into());
        return;
    };
    if let Some(prev) = p.servers.iter().find(|s| s.name == name.text) {
        let prev_line = prev.location.line;
        cx.error(
            name,
            format!(
                "server name '{}' is already used in this section (line {prev_line})",
                name.text
            ),
        );
        return;
    }
    let mut settings = p.default_server.clone();
    let options_ok = apply_server_options(cx, &args[2..], &mut settings, "server");
    let addr_text = super::lexer::expand_address(&addr_tok.text, cx.env);
    let found = if unresolved {
        split_server_addr(&addr_text).map(|(_, _, port)| Found::Nothing { port })
    } else {
        server_addr(&addr_text, settings.init_addr.as_deref(), cx.syntax_only)
    };
    let addr = match found {
        Ok(Found::Addr(a)) => ServerAddr::Known(a),
        Ok(Found::Fallback(a)) => {
            cx.warn(
                addr_tok,
                format!(
                    "server '{}': '{addr_text}' does not resolve: it uses {} from `init-addr`",
                    name.text,
                    a.ip()
                ),
            );
            ServerAddr::Known(a)
        }
        // The template has said which slots have no address.
        Ok(Found::Nothing { port }) if unresolved => ServerAddr::Unresolved { port },
        // `init-addr ...,none`: no address, so in maintenance until
        // `set server ... addr` (HAProxy's "MAINT (resolution)").
        Ok(Found::Nothing { port }) => {
            cx.warn(
                addr_tok,
                format!(
                    "server '{}': '{addr_text}' has no address (init-addr none): it starts in maintenance",
                    name.text
                ),
            )
            .hint = Some("wsgate resolves names once, at startup: make the name resolve and reload, or give it an address with `set server <backend>/<server> addr <ip>` (`enable server` alone gives it none)".into());
            ServerAddr::Unresolved { port }
        }
        Err(e) => {
            e.report(cx, addr_tok);
            return;
        }
    };
    if !options_ok {
        return;
    }
    let location = cx.kw_loc();
    let ssl = if settings.ssl || settings.check_ssl == Some(true) {
        let verify = settings.verify.unwrap_or(true);
        let what = if settings.ssl { "`ssl`" } else { "`check-ssl`" };
        if verify && settings.ca_file.is_none() {
            let kw = cx.kw;
            cx.error(kw, format!("server '{}' has {what} with certificate verification (the default) but no `ca-file`", name.text))
                .hint = Some("add `ca-file <pem>` with the CA that signed the server's certificate, or `verify none` if you trust the network to the server".into());
            return;
        }
        if let Some(ca) = &settings.ca_file {
            if verify && !cx.syntax_only && !ca.exists() {
                let kw = cx.kw;
                cx.env_error(kw, format!("ca-file '{}' does not exist", ca.display()));
                return;
            }
        }
        if let Some(crt) = &settings.crt {
            if !cx.syntax_only && !crt.exists() {
                let kw = cx.kw;
                cx.env_error(kw, format!("crt '{}' does not exist", crt.display()))
                    .hint = Some("`crt` on a server line is the client certificate wsgate presents to it: a PEM with the certificate, its chain and the key (or the key in <file>.key); relative paths start at `crt-base`".into());
                return;
            }
        }
        Some(ServerSsl {
            verify,
            ca_file: settings.ca_file.clone(),
            crt: settings.crt.clone(),
            sni: settings.sni.clone(),
            alpn: settings.alpn.clone().unwrap_or_default(),
        })
    } else {
        if settings.crt.is_some() {
            let kw = cx.kw;
            cx.warn(
                kw,
                format!(
                    "server '{}' has `crt` but no `ssl`: the certificate is never presented",
                    name.text
                ),
            )
            .hint = Some(
                "add `ssl` (with `ca-file` or `verify none`) to talk TLS to this server".into(),
            );
        }
        None
    };
    let send_proxy = if settings.proxy.v2 {
        Some(settings.proxy)
    } else if settings.proxy_v1 {
        Some(SendProxy::default())
    } else {
        None
    };
    // HAProxy: checks inherit `ssl` and `send-proxy` unless they go
    // elsewhere (`port`, `addr`); `check-ssl`/`check-send-proxy` force them.
    let checks_elsewhere = settings.port.is_some() || settings.addr.is_some();
    let check_ssl = settings
        .check_ssl
        .unwrap_or(settings.ssl && !checks_elsewhere);
    let check_proxy = settings.check_send_proxy || (send_proxy.is_some() && !checks_elsewhere);
    let inter = settings.inter.unwrap_or(Duration::from_secs(2));
    let check = settings.check.then(|| ServerCheck {
        inter,
        fastinter: settings.fastinter.unwrap_or(inter),
        downinter: settings.downinter.unwrap_or(inter),
        rise: settings.rise.unwrap_or(2),
        fall: settings.fall.unwrap_or(3),
        target: match (settings.addr, addr) {
            (Some(ip), _) => {
                ServerAddr::Known(SocketAddr::new(ip, settings.port.unwrap_or(addr.port())))
            }
            (None, ServerAddr::Known(a)) => {
                ServerAddr::Known(SocketAddr::new(a.ip(), settings.port.unwrap_or(a.port())))
            }
            (None, ServerAddr::Unresolved { port }) => ServerAddr::Unresolved {
                port: settings.port.unwrap_or(port),
            },
        },
        ssl: ssl.clone().filter(|_| check_ssl),
        send_proxy: if check_proxy {
            Some(send_proxy.unwrap_or_default())
        } else {
            None
        },
    });
    p.servers.push(Server {
        ssl: ssl.filter(|_| settings.ssl),
        send_proxy,
        name: name.text.clone(),
        location,
        addr,
        weight: settings.weight.unwrap_or(1),
        disabled: settings.disabled,
        id: settings.id.map_or(0, |(n, _)| n),
        backup: settings.backup,
        shutdown_on_down: settings.shutdown_on_down,
        shutdown_backups_on_up: settings.shutdown_backups_on_up,
        maxconn: settings.maxconn,
        maxqueue: settings.maxqueue,
        check,
        redir: settings.redir.clone(),
        cookie: settings.cookie.clone(),
        non_stick: settings.non_stick,
        slowstart: settings.slowstart,
        passive: settings.passive,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_addrs(s: &str) -> Vec<String> {
        match parse_bind_addr(s, false) {
            Ok(v) => v.into_iter().map(|a| a.to_string()).collect(),
            Err(e) => vec![format!("error: {}", e.message)],
        }
    }

    #[test]
    fn bind_address_forms() {
        assert_eq!(bind_addrs("*:80"), ["0.0.0.0:80"]);
        assert_eq!(bind_addrs(":80"), ["0.0.0.0:80"]);
        assert_eq!(bind_addrs("0.0.0.0:80"), ["0.0.0.0:80"]);
        assert_eq!(bind_addrs("127.0.0.1:8080"), ["127.0.0.1:8080"]);
        assert_eq!(bind_addrs("[::]:443"), ["[::]:443"]);
        assert_eq!(bind_addrs(":::443"), ["[::]:443"]);
        assert_eq!(bind_addrs("ipv6@::1:80"), ["[::1]:80"]);
        assert_eq!(bind_addrs("ipv6@:80"), ["[::]:80"]);
        assert_eq!(
            bind_addrs("127.0.0.1:8000-8002"),
            ["127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"]
        );
        assert_eq!(bind_addrs("*:http"), ["error: port 'http' is not a number"]);
        assert_eq!(
            bind_addrs("*:70000"),
            ["error: port 70000 is out of range (1-65535)"]
        );
        assert!(bind_addrs("unix@/tmp/s")[0].starts_with("error: address family"));
        assert!(bind_addrs("127.0.0.1")[0].starts_with("error: missing port"));
    }

    fn servers(text: &str) -> Vec<Server> {
        let loaded = crate::config::load_sources(&[crate::config::Source {
            name: "t.cfg".into(),
            text: text.into(),
        }]);
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        loaded.config.unwrap().backends.remove(0).servers
    }

    #[test]
    fn send_proxy_check_ssl_and_their_inheritance() {
        let s = servers(
            "backend b
 mode tcp
 timeout connect 1s
 timeout server 1s
             default-server send-proxy-v2-ssl-cn proxy-v2-options crc32c check
             server inherits 127.0.0.1:1
             server plain_v2 127.0.0.1:2 no-send-proxy-v2-ssl-cn no-send-proxy-v2-ssl
             server none 127.0.0.1:3 no-send-proxy-v2
             server elsewhere 127.0.0.1:4 port 9
             server forced 127.0.0.1:5 port 9 check-send-proxy
             server both 127.0.0.1:6 send-proxy
             server tls 127.0.0.1:7 ssl verify none alpn h2,http/1.1
             server tls_port 127.0.0.1:8 ssl verify none port 9
             server check_only 127.0.0.1:9 check-ssl verify none
",
        );
        let full = SendProxy {
            v2: true,
            ssl: true,
            cert_cn: true,
            crc32c: true,
            ..SendProxy::default()
        };
        let check = |i: usize| s[i].check.as_ref().unwrap();
        assert_eq!(s[0].send_proxy, Some(full));
        assert_eq!(check(0).send_proxy, Some(full));
        assert_eq!(
            s[1].send_proxy,
            Some(SendProxy {
                v2: true,
                crc32c: true,
                ..SendProxy::default()
            })
        );
        assert_eq!(s[2].send_proxy, None);
        assert_eq!(check(2).send_proxy, None);
        // Checks elsewhere (`port`) go without the header unless forced.
        assert_eq!(check(3).send_proxy, None);
        assert_eq!(check(4).send_proxy, Some(full));
        // v1 and v2 both set: v2, as HAProxy.
        assert_eq!(s[5].send_proxy, Some(full));
        let tls = s[6].ssl.as_ref().unwrap();
        assert_eq!(tls.alpn, ["http/1.1"]);
        assert!(check(6).ssl.is_some(), "`ssl` checks over TLS by default");
        assert!(check(7).ssl.is_none(), "unless `port` moves them");
        assert!(
            s[8].ssl.is_none() && check(8).ssl.is_some(),
            "check-ssl alone"
        );
    }

    #[test]
    fn server_address_forms() {
        let found = |s: &str, init: &[InitAddr]| {
            let init = (!init.is_empty()).then_some(init);
            match server_addr(s, init, false) {
                Ok(Found::Addr(a)) => Ok(format!("addr {a}")),
                Ok(Found::Fallback(a)) => Ok(format!("fallback {a}")),
                Ok(Found::Nothing { port }) => Ok(format!("nothing :{port}")),
                Err(e) => Err(e.message),
            }
        };
        let at = |s: &str| found(s, &[]);
        assert_eq!(at("127.0.0.1:8080").unwrap(), "addr 127.0.0.1:8080");
        assert_eq!(at("[::1]:8080").unwrap(), "addr [::1]:8080");
        assert!(at("localhost:8080").unwrap().starts_with("addr "));
        assert!(at("127.0.0.1").unwrap_err().contains("missing port"));
        assert!(at("127.0.0.1:0").is_err());
        assert!(at("127.0.0.1:+1").unwrap_err().contains("offsets"));
        assert!(at("no-such-host.invalid:80").is_err());
        // `init-addr`: an IP address wins over `none` when the name does
        // not resolve; `none` keeps the port and gives no address.
        let (none, ip) = (InitAddr::None, InitAddr::Ip([10, 0, 0, 1].into()));
        assert_eq!(
            found("no-such-host.invalid:80", &[InitAddr::Libc, none]).unwrap(),
            "nothing :80"
        );
        assert_eq!(
            found("no-such-host.invalid:80", &[ip, none]).unwrap(),
            "fallback 10.0.0.1:80"
        );
        // A literal address never needs `init-addr`.
        assert_eq!(found("127.0.0.1:81", &[none]).unwrap(), "addr 127.0.0.1:81");
    }
}
