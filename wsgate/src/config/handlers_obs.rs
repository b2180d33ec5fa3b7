//! Handlers of the observability keywords: `stats ...` (page and runtime
//! socket), `log`, `log-format`, `option httplog|tcplog|dontlognull`, and the one
//! `http-request` form wsgate implements, `http-request use-service
//! prometheus-exporter [if|unless <cond>]`.
//!
//! Stage: called by the `parser` like the other handlers (kept apart from
//! `handlers` so the table rows for logs and stats read as one feature).
//! HAProxy's rules are kept: any `stats` proxy keyword enables the page;
//! `stats uri` defaults to `/haproxy?stats`; `log global` refers to the
//! global `log` lines and `no log` drops inherited ones; a `log` target
//! needs a facility; the runtime socket's level defaults to `operator`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use super::logline;
use super::model::{
    CliLevel, LogFormat, LogSink, LogStyle, LogTarget, SocketAddress, StatsPage, StatsSocket,
};
use super::parser::{Cx, GlobalDraft, ProxyDraft, SectionKind};
use super::units::parse_time;

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn stats_page(p: &mut ProxyDraft) -> &mut StatsPage {
    p.stats.get_or_insert_with(StatsPage::default)
}

/// `stats admin { if | unless } <cond>`: the page offers server actions
/// to the requests the condition accepts (`admin/stats_admin.rs`).
pub fn stats_admin(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if cx.section == SectionKind::Backend {
        // The page a backend serves stays read-only: a warning, not an
        // error, since the rest of the page works as HAProxy's.
        let kw = cx.kw;
        cx.warn(
            kw,
            "'stats admin' in a backend is ignored: wsgate offers admin actions on the stats pages of frontend and listen sections",
        )
        .hint = Some("put the `stats` lines in the frontend that serves the page".into());
        return;
    }
    let args = cx.args;
    if !matches!(args.first().map(|t| t.text.as_str()), Some("if" | "unless")) {
        let at = args.first().unwrap_or(cx.kw);
        cx.error(
            at,
            "'stats admin' needs a condition: `stats admin if <cond>`",
        )
        .hint = Some(
            "e.g. `stats admin if LOCALHOST`, or `stats admin if TRUE` with `stats auth`".into(),
        );
        return;
    }
    let location = cx.kw_loc();
    if let Some(rule) = cx.rule(String::new(), location, args) {
        stats_page(p);
        p.stats_admin = Some(rule);
    }
}

pub fn stats_enable(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    no_args(cx);
    stats_page(p);
}

pub fn stats_uri(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("stats uri <prefix>") else {
        return;
    };
    if !t.text.starts_with('/') {
        cx.error(t, format!("stats uri '{}' must start with '/'", t.text));
        return;
    }
    stats_page(p).uri = t.text.clone();
}

pub fn stats_auth(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("stats auth <user>:<password>") else {
        return;
    };
    match t.text.split_once(':') {
        Some((user, pass)) if !user.is_empty() => {
            stats_page(p).users.push((user.to_owned(), pass.to_owned()));
        }
        _ => {
            cx.error(t, "'stats auth' needs <user>:<password>").hint =
                Some("e.g. `stats auth admin:s3cret`".into());
        }
    }
}

pub fn stats_realm(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    // HAProxy reads the first word and ignores the rest (an unescaped
    // space in `Haproxy\\ Statistics` splits the realm): so does wsgate,
    // saying so, as the realm is only the name a browser shows.
    let t = match args {
        [t, extra, ..] => {
            cx.warn(
                extra,
                format!(
                    "the realm is the first word, '{}'; the rest is ignored, as HAProxy does",
                    t.text
                ),
            )
            .hint = Some("quote a realm with spaces: `stats realm \"My Stats\"`".into());
            t
        }
        _ => {
            let Some(t) = cx.one_arg("stats realm <realm>") else {
                return;
            };
            t
        }
    };
    if t.text.contains('"') {
        cx.error(t, "the realm cannot contain '\"'");
        return;
    }
    stats_page(p).realm = t.text.clone();
}

pub fn stats_refresh(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("stats refresh <time>") else {
        return;
    };
    match parse_time(&t.text) {
        Ok(d) if d.as_secs() >= 1 => stats_page(p).refresh = Some(d),
        // HAProxy counts the refresh in whole seconds: below 1s is 0,
        // no refresh at all.
        Ok(d) if !d.is_zero() => {
            let d = cx.warn(t, format!("stats refresh '{}' is {}ms (times default to milliseconds): below one second, the page does not refresh, as in HAProxy", t.text, d.as_millis()));
            if t.text.bytes().all(|b| b.is_ascii_digit()) {
                d.hint = Some(format!("write `stats refresh {}s` for seconds", t.text));
            }
        }
        Ok(_) => {
            cx.error(t, "stats refresh must be at least 1s");
        }
        Err(e) => {
            cx.error(t, format!("invalid time for stats refresh: {e}"));
        }
    }
}

pub fn stats_hide_version(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    no_args(cx);
    stats_page(p).hide_version = true;
}

fn no_args(cx: &mut Cx<'_>) {
    if let Some(extra) = cx.args.first() {
        let kw = cx.keyword.clone();
        cx.error(extra, format!("'{kw}' takes no argument"));
    }
}

/// `stats socket <path|[ipv4@|ipv6@]addr:port> [mode <octal>] [level
/// user|operator|admin] [...]`.
pub fn stats_socket(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(addr_tok) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'stats socket' needs a path or an address")
            .hint = Some("e.g. `stats socket /run/wsgate/admin.sock mode 660 level admin`".into());
        return;
    };
    let text = addr_tok.text.as_str();
    let addr = if let Some(rest) = text.strip_prefix("unix@") {
        SocketAddress::Unix(PathBuf::from(rest))
    } else if text.starts_with('/') || text.starts_with('.') {
        SocketAddress::Unix(PathBuf::from(text))
    } else {
        let rest = text
            .strip_prefix("ipv4@")
            .or_else(|| text.strip_prefix("ipv6@"))
            .or_else(|| text.strip_prefix("tcp@"))
            .unwrap_or(text);
        match parse_host_port(rest) {
            Some(a) => SocketAddress::Tcp(a),
            None => {
                cx.error(
                    addr_tok,
                    format!("cannot read '{text}' as a socket path or <ip>:<port>"),
                )
                .hint = Some(
                    "a Unix socket path starts with '/', e.g. /run/wsgate.sock; a TCP one is ipv4@127.0.0.1:9999"
                        .into(),
                );
                return;
            }
        }
    };
    let mut socket = StatsSocket {
        location: cx.loc(addr_tok),
        addr,
        mode: None,
        level: CliLevel::Operator,
    };
    let mut i = 1;
    while i < args.len() {
        let opt = &args[i];
        let value = args.get(i + 1);
        match opt.text.as_str() {
            "mode" | "level" | "user" | "group" | "uid" | "gid" | "process" | "thread"
            | "maxconn" | "name" | "severity-output" => {
                let Some(v) = value else {
                    cx.error(opt, format!("'{}' needs a value", opt.text));
                    return;
                };
                match opt.text.as_str() {
                    "mode" => match u32::from_str_radix(&v.text, 8) {
                        Ok(m) if m <= 0o7777 => socket.mode = Some(m),
                        _ => {
                            cx.error(v, format!("'{}' is not an octal mode such as 660", v.text));
                        }
                    },
                    "level" => {
                        match v.text.as_str() {
                            "user" => socket.level = CliLevel::User,
                            "operator" => socket.level = CliLevel::Operator,
                            "admin" => socket.level = CliLevel::Admin,
                            other => {
                                cx.error(v, format!("unknown level '{other}' (expected user, operator or admin)"));
                            }
                        }
                    }
                    other => {
                        let other = other.to_owned();
                        cx.warn(opt, format!("'stats socket' option '{other}' is ignored"));
                    }
                }
                i += 2;
            }
            "expose-fd" => {
                cx.warn(opt, "'expose-fd listeners' is ignored: wsgate reloads in process, no socket hand-over is needed");
                i += 2;
            }
            other => {
                let other = other.to_owned();
                cx.error(opt, format!("unknown 'stats socket' option '{other}'"))
                    .hint = Some("supported: mode <octal>, level user|operator|admin".into());
                return;
            }
        }
    }
    g.stats_sockets.push(socket);
}

pub fn stats_timeout(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("stats timeout <time>") else {
        return;
    };
    match parse_time(&t.text) {
        Ok(d) if !d.is_zero() => g.stats_timeout = d,
        Ok(_) => {
            cx.error(t, "stats timeout must be above 0");
        }
        Err(e) => {
            cx.error(t, format!("invalid time for stats timeout: {e}"));
        }
    }
}

fn parse_host_port(text: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip: IpAddr = match host {
        "" | "*" => IpAddr::from([0, 0, 0, 0]),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// `name` or `name:port` with a DNS-style name and a valid port.
fn is_host_name(text: &str) -> bool {
    let host = match text.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        Some(_) => return false,
        None => text,
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        && host.chars().any(|c| c.is_ascii_alphabetic())
}

/// `log <target> [len <n>] [format <fmt>] [sample <r>:<n>] <facility>
/// [<level> [<minlevel>]]`, or `log global`. Parsed into a target or
/// `None` after an error.
fn parse_log(cx: &mut Cx<'_>) -> Option<LogTarget> {
    let args = cx.args;
    let target = args.first()?;
    let sink = match target.text.as_str() {
        "stdout" => LogSink::Stdout,
        "stderr" => LogSink::Stderr,
        t if t.starts_with('/') => LogSink::Unix(PathBuf::from(t)),
        t => {
            let rest = t
                .strip_prefix("udp@")
                .or_else(|| t.strip_prefix("udp4@"))
                .or_else(|| t.strip_prefix("ipv4@"))
                .unwrap_or(t);
            if rest.contains('@') || t.starts_with("ring@") {
                cx.error(target, format!("log target '{t}' is not supported"))
                    .hint = Some(
                    "use stdout, stderr, a Unix datagram path or <ip>[:<port>] (UDP syslog)".into(),
                );
                return None;
            }
            let addr = parse_host_port(rest).or_else(|| {
                rest.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 514))
            });
            match addr {
                Some(a) => LogSink::Udp(a),
                None if is_host_name(rest) => {
                    // A syslog host by name (`log localhost local0`),
                    // resolved once, as HAProxy does at startup.
                    let (host, port) = match rest.rsplit_once(':') {
                        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(514)),
                        None => (rest, 514),
                    };
                    if cx.syntax_only {
                        LogSink::Udp(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port))
                    } else {
                        match std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                            .ok()
                            .and_then(|mut a| a.next())
                        {
                            Some(a) => LogSink::Udp(a),
                            None => {
                                cx.env_error(target, format!("cannot resolve log host '{host}'"))
                                    .hint = Some("use an IP address, or make sure the name resolves here; `wsgate -c --syntax-only` skips name resolution".into());
                                return None;
                            }
                        }
                    }
                }
                None => {
                    cx.error(target, format!("cannot read log target '{t}'"))
                        .hint =
                        Some("use stdout, stderr, a Unix datagram path or <ip>[:<port>]".into());
                    return None;
                }
            }
        }
    };
    let mut format = LogFormat::Local;
    let mut i = 1;
    let mut rest = Vec::new();
    while i < args.len() {
        match args[i].text.as_str() {
            "format" => {
                let Some(v) = args.get(i + 1) else {
                    cx.error(&args[i], "'format' needs raw, rfc3164 or rfc5424");
                    return None;
                };
                format = match v.text.as_str() {
                    "raw" => LogFormat::Raw,
                    "local" => LogFormat::Local,
                    "rfc3164" => LogFormat::Rfc3164,
                    "rfc5424" => LogFormat::Rfc5424,
                    "short" | "priority" | "timed" | "iso" => {
                        cx.warn(v, format!("log format '{}' is written as raw", v.text));
                        LogFormat::Raw
                    }
                    other => {
                        cx.error(v, format!("unknown log format '{other}'")).hint =
                            Some("use raw, rfc3164 or rfc5424".into());
                        return None;
                    }
                };
                i += 2;
            }
            "len" | "sample" => {
                if let Some(v) = args.get(i + 1) {
                    let what = args[i].text.clone();
                    cx.warn(v, format!("'{what}' on a log line is ignored"));
                }
                i += 2;
            }
            _ => {
                rest.push(&args[i]);
                i += 1;
            }
        }
    }
    let Some(fac) = rest.first() else {
        let kw = cx.kw;
        cx.error(kw, "'log' needs a facility").hint =
            Some("e.g. `log stdout format raw local0`".into());
        return None;
    };
    let Some(facility) = FACILITIES.iter().position(|f| *f == fac.text) else {
        cx.error(fac, format!("unknown log facility '{}'", fac.text))
            .hint = Some("e.g. local0 .. local7, daemon, user".into());
        return None;
    };
    let mut level = 7u8;
    if let Some(l) = rest.get(1) {
        match LEVELS.iter().position(|x| *x == l.text) {
            Some(n) => level = u8::try_from(n).unwrap_or(7),
            None => {
                cx.error(l, format!("unknown log level '{}'", l.text)).hint =
                    Some(format!("one of {}", LEVELS.join(", ")));
                return None;
            }
        }
    }
    if let Some(extra) = rest.get(3) {
        cx.error(
            extra,
            format!("unexpected '{}' on the log line", extra.text),
        );
        return None;
    }
    Some(LogTarget {
        location: cx.kw_loc(),
        sink,
        format,
        facility: u8::try_from(facility).unwrap_or(16),
        level,
    })
}

pub fn log_global(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if cx.negated {
        g.logs.clear();
        return;
    }
    if cx.args.is_empty() {
        let kw = cx.kw;
        cx.error(kw, "'log' needs a target").hint =
            Some("e.g. `log stdout format raw local0`".into());
        return;
    }
    if let Some(t) = parse_log(cx) {
        g.logs.push(t);
    }
}

pub fn log_proxy(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if cx.negated {
        p.logs.clear();
        p.log_global = false;
        return;
    }
    match cx.args.first().map(|t| t.text.as_str()) {
        None => {
            let kw = cx.kw;
            cx.error(kw, "'log' needs a target or `global`").hint =
                Some("e.g. `log global`".into());
        }
        Some("global") => {
            p.log_global = true;
            if let Some(extra) = cx.args.get(1) {
                cx.error(
                    extra,
                    format!("unexpected '{}' after 'log global'", extra.text),
                );
            }
        }
        Some(_) => {
            if let Some(t) = parse_log(cx) {
                p.logs.push(t);
            }
        }
    }
}

pub fn option_httplog(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if let Some(a) = cx.args.first() {
        if a.text == "clf" {
            cx.warn(
                a,
                "'option httplog clf' is written in HAProxy's default httplog format",
            );
        } else {
            cx.error(a, format!("unexpected '{}' after 'option httplog'", a.text));
        }
    }
    p.log_style = if cx.negated {
        LogStyle::None
    } else {
        LogStyle::Http
    };
    p.log_format = None;
}

/// `log-format <fmt>`: the access log line of this proxy; the last of
/// `log-format`, `option httplog` and `option tcplog` wins, as in HAProxy.
pub fn log_format(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if cx.section == SectionKind::Backend {
        cx.warn(
            cx.kw,
            "'log-format' is ignored in backends (the frontend's line is written)",
        );
        return;
    }
    let [fmt] = cx.args else {
        let at = cx.args.get(1).unwrap_or(cx.kw);
        cx.error(at, "log-format expects exactly one argument").hint =
            Some("put the format between double quotes, or escape its spaces with '\\'".into());
        return;
    };
    match logline::parse(&fmt.text) {
        Ok(line) => {
            p.log_format = Some(Arc::new(line));
            p.log_style = LogStyle::Http;
        }
        Err(e) => cx.error(fmt, e.message).hint = e.hint,
    }
}

pub fn option_tcplog(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    no_args(cx);
    p.log_style = if cx.negated {
        LogStyle::None
    } else {
        LogStyle::Tcp
    };
    p.log_format = None;
}

pub fn option_dontlognull(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    no_args(cx);
    p.dontlognull = !cx.negated;
}
