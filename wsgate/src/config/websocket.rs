//! `websocket <setting> ...`: wsgate's own WebSocket settings.
//!
//! Not HAProxy syntax — HAProxy treats an upgraded connection as opaque
//! bytes — so every line warns that the configuration no longer loads in
//! HAProxy. The settings read like HAProxy's (`<keyword> <value>`, sizes in
//! HAProxy units) and are accepted wherever `timeout` is: `defaults`,
//! `frontend`, `listen`, `backend`. Enforcement lives in the tunnel (frame
//! sizes and RFC 6455 checks, from frame headers only) and the session
//! (handshake and Origin checks, before any server is contacted).

use std::time::Duration;

use super::model::{OriginPattern, WebSocketSettings};
use super::parser::{Cx, ProxyDraft};
use super::units::{parse_size, parse_time};

/// Largest size accepted for the limits: frame lengths are 63-bit.
const MAX_LIMIT: u64 = 1 << 62;

fn portability_note(cx: &mut Cx<'_>) {
    let kw = cx.kw;
    cx.warn(
        kw,
        "`websocket` settings are a wsgate extension: HAProxy will not load this configuration",
    );
}

fn size_setting(cx: &mut Cx<'_>) -> Option<u64> {
    let usage = format!("{} <size>", cx.keyword);
    let t = cx.one_arg(&usage)?;
    match parse_size(&t.text) {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
        Ok(_) => {
            let kw = cx.keyword.clone();
            cx.error(t, format!("'{kw}' must be at least 1 byte"));
            None
        }
        Err(e) => {
            let kw = cx.keyword.clone();
            cx.error(t, format!("invalid size for '{kw}': {e}")).hint =
                Some("sizes are bytes, or with a k, m or g suffix (64k, 1m)".into());
            None
        }
    }
}

/// `websocket max-message-size <size>`: a client message (all its
/// fragments) over the size gets close 1009, its server 1001.
pub fn max_message_size(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    portability_note(cx);
    if let Some(n) = size_setting(cx) {
        p.websocket.max_message_size = Some(n);
    }
}

/// `websocket max-frame-size <size>`: the same for a single frame.
pub fn max_frame_size(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    portability_note(cx);
    if let Some(n) = size_setting(cx) {
        p.websocket.max_frame_size = Some(n);
    }
}

/// `websocket strict`: handshakes are checked (400, or 426 for a version
/// other than 13) and frames must follow RFC 6455 (masking, reserved bits,
/// opcodes, control frames), else close 1002.
pub fn strict(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    portability_note(cx);
    if let Some(extra) = cx.args.first() {
        cx.error(extra, "'websocket strict' takes no argument");
        return;
    }
    p.websocket.strict = !cx.negated;
}

/// `websocket allow-origin <origin> ...`: the handshake's Origin must match
/// one of them (exact, `https://*.example.com` for any subdomain, or `*`),
/// else 403. Several lines add up.
pub fn allow_origin(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    portability_note(cx);
    if cx.args.is_empty() {
        let kw = cx.kw;
        cx.error(kw, "'websocket allow-origin' needs at least one origin")
            .hint = Some(
            "usage: websocket allow-origin https://app.example.com https://*.example.com".into(),
        );
        return;
    }
    for t in cx.args {
        match OriginPattern::parse(&t.text) {
            Ok(pattern) => p.websocket.allow_origins.push(pattern),
            Err(why) => {
                cx.error(t, format!("invalid origin '{}': {why}", t.text))
                    .hint =
                    Some("an origin is scheme://host[:port], e.g. https://app.example.com".into());
            }
        }
    }
}

/// `websocket keepalive <interval> [timeout <time>] [server]`: after
/// `interval` without a word from the client, ping it; without an answer
/// within `timeout` (default: the interval), close with 1001 "ping
/// timeout" to both sides. With `server`, the server is pinged the same
/// way. wsgate's pings are answered to wsgate: the pongs are taken out of
/// the stream.
pub fn keepalive(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    portability_note(cx);
    let usage = "websocket keepalive <interval> [timeout <time>] [server]";
    let time = |cx: &mut Cx<'_>, t: &super::lexer::Token| match parse_time(&t.text) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            cx.error(t, "a keepalive time must be more than 0");
            None
        }
        Err(e) => {
            cx.error(t, format!("invalid time '{}': {e}", t.text)).hint = Some(usage.into());
            None
        }
    };
    let mut args = cx.args;
    let server = args.last().is_some_and(|t| t.text == "server");
    if server {
        args = &args[..args.len() - 1];
    }
    match args {
        [interval] => {
            if let Some(i) = time(cx, interval) {
                p.websocket.keepalive = Some((i, i));
                p.websocket.keepalive_server = server;
            }
        }
        [interval, kw, timeout] if kw.text == "timeout" => {
            if let (Some(i), Some(t)) = (time(cx, interval), time(cx, timeout)) {
                p.websocket.keepalive = Some((i, t));
                p.websocket.keepalive_server = server;
            }
        }
        _ => {
            let kw = cx.kw;
            cx.error(
                kw,
                "'websocket keepalive' expects an interval, an optional timeout and an optional 'server'",
            )
            .hint = Some(usage.into());
        }
    }
}

/// `websocket rate-limit <n> per <time> [burst <m>] [action close|drop]
/// [from client|server]`: a token bucket per connection over the data
/// messages one peer sends (the client's unless `from server`). Over the
/// rate, `action close` (the default) sends 1008 Policy Violation to the
/// sender and 1001 to the other side, at the message boundary; `action
/// drop` discards the whole message (control frames still pass) and counts
/// it. `burst` (default `<n>`) is how many may come at once.
pub fn rate_limit(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    portability_note(cx);
    let usage =
        "websocket rate-limit <n> per <time> [burst <m>] [action close|drop] [from client|server]";
    let count = |cx: &mut Cx<'_>, t: &super::lexer::Token, what: &str| match t.text.parse::<u32>() {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            cx.error(
                t,
                format!("'{}' is not a valid {what} (a whole number from 1)", t.text),
            )
            .hint = Some(usage.into());
            None
        }
    };
    let args = cx.args;
    let [n, per, period, rest @ ..] = args else {
        let kw = cx.kw;
        cx.error(kw, "'websocket rate-limit' expects '<n> per <time>'")
            .hint = Some(usage.into());
        return;
    };
    if per.text != "per" {
        cx.error(per, format!("expected 'per', found '{}'", per.text))
            .hint = Some(usage.into());
        return;
    }
    let Some(messages) = count(cx, n, "message count") else {
        return;
    };
    let period = match parse_time(&period.text) {
        Ok(d) if !d.is_zero() && d <= Duration::from_secs(86_400) => d,
        Ok(_) => {
            cx.error(period, "the period must be more than 0 and at most 1d");
            return;
        }
        Err(e) => {
            cx.error(period, format!("invalid time '{}': {e}", period.text))
                .hint = Some(usage.into());
            return;
        }
    };
    let mut limit = RateLimit {
        messages,
        period,
        burst: messages,
        action: RateAction::Close,
    };
    let mut from_server = false;
    let mut rest = rest;
    while let [word, value, tail @ ..] = rest {
        match (word.text.as_str(), value.text.as_str()) {
            ("burst", _) => match count(cx, value, "burst") {
                Some(b) => limit.burst = b,
                None => return,
            },
            ("action", "close") => limit.action = RateAction::Close,
            ("action", "drop") => limit.action = RateAction::Drop,
            ("from", "client") => from_server = false,
            ("from", "server") => from_server = true,
            ("action" | "from", other) => {
                cx.error(value, format!("unexpected '{other}' after '{}'", word.text))
                    .hint = Some(usage.into());
                return;
            }
            (other, _) => {
                cx.error(word, format!("unknown rate-limit option '{other}'"))
                    .hint = Some(usage.into());
                return;
            }
        }
        rest = tail;
    }
    if let [extra] = rest {
        cx.error(extra, format!("'{}' needs a value", extra.text))
            .hint = Some(usage.into());
        return;
    }
    if from_server {
        p.websocket.server_rate_limit = Some(limit);
    } else {
        p.websocket.rate_limit = Some(limit);
    }
}

/// What happens to a message over the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAction {
    /// Close 1008 (Policy Violation) to the sender, 1001 to the other peer,
    /// at the message boundary before the message.
    Close,
    /// The whole message is discarded (its frames are not forwarded;
    /// control frames in between still are) and counted.
    Drop,
}

/// `websocket rate-limit <n> per <time> [burst <m>] [action close|drop]`.
/// Counted by the tunnel (ws/rate.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages allowed per `period` in the long run (≥ 1).
    pub messages: u32,
    pub period: Duration,
    /// Messages that may come at once after a quiet spell (≥ 1; default
    /// `messages`).
    pub burst: u32,
    pub action: RateAction,
}

impl RateLimit {
    /// Messages per second in the long run, to compare two limits.
    pub fn per_second(&self) -> f64 {
        f64::from(self.messages) / self.period.as_secs_f64()
    }
}

impl WebSocketSettings {
    /// The settings in force for a tunnel: the frontend's and the
    /// backend's together (the smaller limit, the lower rate, strict or
    /// server keepalive if either says so).
    pub fn merged(&self, other: &WebSocketSettings) -> WebSocketSettings {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let keepalive = match (self.keepalive, other.keepalive) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        // The lower long-run rate wins.
        let rate = |a: Option<RateLimit>, b: Option<RateLimit>| match (a, b) {
            (Some(a), Some(b)) => Some(if a.per_second() <= b.per_second() {
                a
            } else {
                b
            }),
            (a, b) => a.or(b),
        };
        WebSocketSettings {
            max_message_size: min(self.max_message_size, other.max_message_size),
            max_frame_size: min(self.max_frame_size, other.max_frame_size),
            strict: self.strict || other.strict,
            allow_origins: Vec::new(),
            keepalive,
            keepalive_server: self.keepalive_server || other.keepalive_server,
            rate_limit: rate(self.rate_limit, other.rate_limit),
            server_rate_limit: rate(self.server_rate_limit, other.server_rate_limit),
        }
    }
}

impl OriginPattern {
    pub fn parse(text: &str) -> Result<OriginPattern, &'static str> {
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        let lower = text.to_ascii_lowercase();
        let Some((scheme, rest)) = lower.split_once("://") else {
            return Err("missing scheme (http:// or https://)");
        };
        if scheme.is_empty() || rest.is_empty() || rest.contains('/') {
            return Err("expected scheme://host[:port] with no path");
        }
        match rest.strip_prefix("*.") {
            Some(domain) if !domain.is_empty() && !domain.contains('*') => {
                Ok(OriginPattern::Subdomains {
                    scheme: scheme.to_owned(),
                    domain: domain.to_owned(),
                })
            }
            Some(_) => Err("a wildcard must be followed by a domain"),
            None if rest.contains('*') => Err("'*' is only allowed as the first label"),
            None => Ok(OriginPattern::Exact(lower)),
        }
    }

    /// Whether the handshake's `Origin` value matches (case-insensitive,
    /// as origins are serialised lowercase by browsers).
    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => origin == *o,
            OriginPattern::Subdomains { scheme, domain } => {
                let Some(host) = origin
                    .strip_prefix(scheme.as_str())
                    .and_then(|r| r.strip_prefix("://"))
                else {
                    return false;
                };
                host.strip_suffix(domain.as_str())
                    .and_then(|sub| sub.strip_suffix('.'))
                    .is_some_and(|sub| !sub.is_empty() && !sub.contains(['/', ':']))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let exact = OriginPattern::parse("https://App.example.com").unwrap();
        assert!(exact.matches("https://app.example.com"));
        assert!(!exact.matches("http://app.example.com"));
        assert!(!exact.matches("https://app.example.com.evil.net"));
        let sub = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(sub.matches("https://a.example.com"));
        assert!(sub.matches("https://a.b.example.com"));
        assert!(!sub.matches("https://example.com"));
        assert!(!sub.matches("https://evilexample.com"));
        assert!(!sub.matches("http://a.example.com"));
        let port = OriginPattern::parse("https://*.example.com:8443").unwrap();
        assert!(port.matches("https://a.example.com:8443"));
        assert!(!port.matches("https://a.example.com"));
        assert!(OriginPattern::parse("*").unwrap().matches("null"));
        for bad in [
            "example.com",
            "https://",
            "https://a/b",
            "https://a.*.com",
            "https://*.",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merged_settings_take_the_stricter_values() {
        let fe = WebSocketSettings {
            max_message_size: Some(100),
            strict: true,
            ..Default::default()
        };
        let be = WebSocketSettings {
            max_message_size: Some(50),
            max_frame_size: Some(10),
            ..Default::default()
        };
        let m = fe.merged(&be);
        assert_eq!(
            (m.max_message_size, m.max_frame_size, m.strict),
            (Some(50), Some(10), true)
        );
    }
}
