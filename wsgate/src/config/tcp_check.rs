//! `option tcp-check` and its `tcp-check` script: `connect [port <n>]
//! [ssl] [send-proxy]`, `send <string>`, `send-binary <hex>`, `expect [!]
//! string|rstring|binary <pattern>`, `comment <text>`.
//!
//! Stage: the `tcp-check` lines of a section are read here into the draft
//! (in order; a proxy's own lines replace those it inherited from its
//! `defaults`, as in HAProxy), and `check` hands them to the backend when
//! `option tcp-check` is set; `backend::tcp_check` runs them. Directives
//! wsgate does not run (`send-lf`, `set-var`, `expect ... rbinary`, the
//! status options...) are errors at their line: a check that silently did
//! less than written would mark servers up that the user meant to test.

use regex::bytes::Regex;

use super::diag::Diagnostic;
use super::lexer::Token;
use super::model::Location;
use super::parser::{Cx, ProxyDraft};

/// The script of a backend with `option tcp-check` (empty: connect only).
#[derive(Debug, Clone, Default)]
pub struct TcpCheck {
    pub rules: Vec<TcpCheckRule>,
}

impl TcpCheck {
    /// Whether a step asks for TLS (the servers need their `ssl`
    /// settings).
    pub fn wants_ssl(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.step, Step::Connect { ssl: true, .. }))
    }
}

#[derive(Debug, Clone)]
pub struct TcpCheckRule {
    pub step: Step,
    /// `comment <text>` on the line, or the last `tcp-check comment`
    /// above it: reported with this step's failure.
    pub comment: Option<String>,
    /// HAProxy's step number: the line's place among the section's
    /// `tcp-check` lines, `comment` lines included, from 1.
    pub step_no: usize,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub enum Step {
    /// `connect [default] [port <n>] [ssl] [send-proxy]`: a new
    /// connection to the check address (or `port`); `default` adds the
    /// server's own check options (`check-ssl`, `check-send-proxy`).
    Connect {
        port: Option<u16>,
        ssl: bool,
        send_proxy: bool,
        default: bool,
    },
    /// `send <string>` / `send-binary <hex>`.
    Send(Vec<u8>),
    /// `expect [min-recv <n>] [!] string|rstring|binary <pattern>`.
    Expect {
        negate: bool,
        pattern: Pattern,
        /// `min-recv`: judge once this many bytes are in (a mismatch is
        /// then final instead of waiting for more).
        min_recv: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub enum Pattern {
    /// Found anywhere in what was received since the last send.
    Bytes {
        text: Vec<u8>,
        binary: bool,
    },
    Regex(Regex),
}

impl Pattern {
    pub fn matches(&self, data: &[u8]) -> bool {
        match self {
            Pattern::Bytes { text, .. } => {
                !text.is_empty() && data.windows(text.len()).any(|w| w == text.as_slice())
            }
            Pattern::Regex(re) => re.is_match(data),
        }
    }

    /// The fewest bytes that can match.
    pub fn min_len(&self) -> usize {
        match self {
            Pattern::Bytes { text, .. } => text.len(),
            Pattern::Regex(_) => 0,
        }
    }

    /// As written: `string '+PONG'`, `binary '2b504f4e47'`, `rstring '^\+'`.
    pub fn syntax(&self) -> String {
        match self {
            Pattern::Bytes {
                text,
                binary: false,
            } => format!("string '{}'", String::from_utf8_lossy(text)),
            Pattern::Bytes { text, binary: true } => format!("binary '{}'", hex(text)),
            Pattern::Regex(re) => format!("rstring '{}'", re.as_str()),
        }
    }

    /// How HAProxy names it in a failure: `content 'PONG'`, `binary
    /// '2b504f4e47'`, `regex '^\+'`.
    pub fn describe(&self) -> String {
        match self {
            Pattern::Bytes {
                text,
                binary: false,
            } => format!("content '{}'", String::from_utf8_lossy(text)),
            Pattern::Bytes { text, binary: true } => format!("binary '{}'", hex(text)),
            Pattern::Regex(re) => format!("regex '{}'", re.as_str()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `tcp-check` lines of one section so far.
#[derive(Debug, Clone, Default)]
pub struct TcpCheckDraft {
    pub rules: Vec<TcpCheckRule>,
    /// The rules came from a `defaults` section: the first line of the
    /// proxy's own replaces them.
    pub inherited: bool,
    /// The last `tcp-check comment`, which applies to the steps after it.
    pending_comment: Option<String>,
    /// `tcp-check` lines so far, comments included (for step numbers).
    lines: usize,
    /// Where the first line was (for the warning when `option tcp-check`
    /// is missing).
    pub first: Option<Location>,
}

impl TcpCheckDraft {
    /// The same rules, as a proxy inherits them from its `defaults`.
    pub fn inherit(&self) -> TcpCheckDraft {
        TcpCheckDraft {
            inherited: true,
            ..self.clone()
        }
    }
}

/// The backend's script when `option tcp-check` is set. Lines without the
/// option are ignored with a warning (as in HAProxy); a `connect ssl` step
/// needs TLS settings on every checked server.
pub fn resolve(d: &ProxyDraft, proxy: &str, diags: &mut Vec<Diagnostic>) -> Option<TcpCheck> {
    if !d.tcp_check_on {
        if let (Some(at), false) = (&d.tcp_check.first, d.tcp_check.inherited) {
            diags.push(
                Diagnostic::warning(
                    at.clone(),
                    format!(
                        "'tcp-check' lines in '{proxy}' are ignored without `option tcp-check`"
                    ),
                )
                .with_hint("add `option tcp-check` to run them as the health check"),
            );
        }
        return None;
    }
    let script = TcpCheck {
        rules: d.tcp_check.rules.clone(),
    };
    if script.wants_ssl() {
        let without_tls = |s: &&super::model::Server| {
            s.ssl.is_none() && s.check.as_ref().is_some_and(|c| c.ssl.is_none())
        };
        for s in d.servers.iter().filter(without_tls) {
            diags.push(
                Diagnostic::error(
                    s.location.clone(),
                    format!("server '{}' has no TLS settings for `tcp-check connect ssl`", s.name),
                )
                .with_hint("add `ssl verify required ca-file <file>` (or `ssl verify none`) to the server, or `check-ssl` with them"),
            );
        }
    }
    Some(script)
}

const USAGE: &str = "tcp-check connect [port <n>] [ssl] [send-proxy] | send <string> | send-binary <hex> | expect [!] string|rstring|binary <pattern> | comment <text>";

/// `option tcp-check` (`no option tcp-check` turns it off).
pub fn option_tcp_check(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if let Some(extra) = cx.args.first() {
        cx.error(extra, "'option tcp-check' takes no argument").hint = Some(format!(
            "the script is written with `tcp-check` lines: {USAGE}"
        ));
        return;
    }
    p.tcp_check_on = !cx.negated;
    if p.tcp_check_on {
        p.httpchk = None;
    }
}

/// `tcp-check <directive> ...`.
pub fn tcp_check(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(first) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'tcp-check' needs a directive").hint = Some(format!("usage: {USAGE}"));
        return;
    };
    let draft = &mut p.tcp_check;
    if std::mem::take(&mut draft.inherited) {
        *draft = TcpCheckDraft::default();
    }
    draft.lines += 1;
    if draft.first.is_none() {
        draft.first = Some(cx.kw_loc());
    }
    let rest = &args[1..];
    // `set-var(<name>)` carries its argument in the word.
    let directive = first.text.split('(').next().unwrap_or("");
    let parsed = match directive {
        "comment" => {
            match rest {
                [text] => draft.pending_comment = Some(text.text.clone()),
                _ => {
                    cx.error(first, "'tcp-check comment' needs one word (quote it)")
                        .hint = Some("e.g. `tcp-check comment \"PING check\"`".into());
                }
            }
            return;
        }
        "connect" => connect(cx, rest),
        "send" | "send-binary" => send(cx, first, rest),
        "expect" => expect(cx, rest),
        "send-lf" | "send-binary-lf" | "set-var" | "unset-var" => {
            cx.error(first, format!("'tcp-check {directive}' is not supported"))
                .hint = Some(match directive {
                "send-lf" | "send-binary-lf" => "log-format check data is not evaluated; write the bytes with `send` or `send-binary`".into(),
                _ => "check variables are not implemented".into(),
            });
            None
        }
        other => {
            cx.error(first, format!("unknown 'tcp-check' directive '{other}'"))
                .hint = Some(format!("usage: {USAGE}"));
            None
        }
    };
    let Some((step, comment)) = parsed else {
        return;
    };
    let draft = &mut p.tcp_check;
    // HAProxy reports the nearest `tcp-check comment` above a failed step.
    let comment = comment.or(draft.pending_comment.clone());
    draft.rules.push(TcpCheckRule {
        step,
        comment,
        step_no: draft.lines,
        location: cx.kw_loc(),
    });
}

/// `comment <text>` at the end of a line, shared by every directive.
fn trailing_comment(cx: &mut Cx<'_>, words: &[Token], i: &mut usize) -> Option<Option<String>> {
    if words.get(*i).is_some_and(|w| w.text == "comment") {
        let Some(text) = words.get(*i + 1) else {
            cx.error(&words[*i], "'comment' needs a text");
            return None;
        };
        *i += 2;
        return Some(Some(text.text.clone()));
    }
    Some(None)
}

fn connect(cx: &mut Cx<'_>, words: &[Token]) -> Option<(Step, Option<String>)> {
    let (mut port, mut ssl, mut send_proxy, mut comment) = (None, false, false, None);
    let mut default = false;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match w.text.as_str() {
            "port" => {
                let v = words.get(i + 1);
                match v.map(|v| v.text.parse::<u16>()) {
                    Some(Ok(n)) if n > 0 => port = Some(n),
                    _ => {
                        let at = v.unwrap_or(w);
                        cx.error(at, "'port' needs a port number (1-65535)");
                        return None;
                    }
                }
                i += 2;
            }
            "ssl" => {
                ssl = true;
                i += 1;
            }
            "send-proxy" => {
                send_proxy = true;
                i += 1;
            }
            "default" => {
                default = true;
                i += 1;
            }
            // A lingering close is what wsgate does anyway.
            "linger" => i += 1,
            "comment" => comment = trailing_comment(cx, words, &mut i)?,
            "addr" | "sni" | "alpn" | "proto" | "via-socks4" => {
                cx.error(w, format!("'tcp-check connect {}' is not supported", w.text))
                    .hint = Some("`tcp-check connect` takes `port <n>`, `ssl` and `send-proxy`; the address is the server's (or its `addr`), TLS uses the server's `ssl` settings".into());
                return None;
            }
            other => {
                cx.error(w, format!("unknown 'tcp-check connect' option '{other}'"))
                    .hint = Some(
                    "usage: tcp-check connect [port <n>] [ssl] [send-proxy] [comment <text>]"
                        .into(),
                );
                return None;
            }
        }
    }
    Some((
        Step::Connect {
            port,
            ssl,
            send_proxy,
            default,
        },
        comment,
    ))
}

fn send(cx: &mut Cx<'_>, kw: &Token, words: &[Token]) -> Option<(Step, Option<String>)> {
    let Some(data) = words.first() else {
        cx.error(
            kw,
            format!("'tcp-check {}' needs the data to send", kw.text),
        );
        return None;
    };
    let bytes = if kw.text == "send" {
        data.text.clone().into_bytes()
    } else {
        parse_hex(cx, data)?
    };
    let mut i = 1;
    let comment = trailing_comment(cx, words, &mut i)?;
    if let Some(extra) = words.get(i) {
        cx.error(extra, format!("unexpected '{}' after the data", extra.text))
            .hint = Some("quote data that has spaces, or escape them with `\\ `".into());
        return None;
    }
    Some((Step::Send(bytes), comment))
}

fn parse_hex(cx: &mut Cx<'_>, t: &Token) -> Option<Vec<u8>> {
    let s = t.text.as_bytes();
    let digit = |c: u8| (c as char).to_digit(16);
    if s.is_empty() || s.len() % 2 != 0 || s.iter().any(|&c| digit(c).is_none()) {
        cx.error(
            t,
            format!("'{}' is not an even number of hexadecimal digits", t.text),
        )
        .hint = Some("e.g. `send-binary 50494e470d0a` for \"PING\\r\\n\"".into());
        return None;
    }
    Some(
        s.chunks(2)
            .map(|p| {
                let v = digit(p[0]).unwrap_or(0) * 16 + digit(p[1]).unwrap_or(0);
                u8::try_from(v).unwrap_or(0)
            })
            .collect(),
    )
}

fn expect(cx: &mut Cx<'_>, words: &[Token]) -> Option<(Step, Option<String>)> {
    let usage = "usage: tcp-check expect [min-recv <n>] [comment <text>] [!] string|rstring|binary <pattern>";
    let mut i = 0;
    let mut comment = None;
    let mut negate = false;
    let mut min_recv = None;
    // Options come before the match, as in HAProxy.
    while let Some(w) = words.get(i) {
        match w.text.as_str() {
            "comment" => comment = trailing_comment(cx, words, &mut i)?,
            "min-recv" => {
                let v = words.get(i + 1);
                match v.map(|v| v.text.parse::<usize>()) {
                    Some(Ok(n)) => min_recv = Some(n),
                    _ => {
                        cx.error(v.unwrap_or(w), "'min-recv' needs a number of bytes");
                        return None;
                    }
                }
                i += 2;
            }
            "!" => {
                negate = true;
                i += 1;
            }
            "ok-status" | "error-status" | "tout-status" | "on-success" | "on-error"
            | "status-code" => {
                cx.error(w, format!("'tcp-check expect {}' is not supported", w.text))
                    .hint = Some("a check passes when every expect matches; a failed expect marks the check failed (L7RSP)".into());
                return None;
            }
            _ => break,
        }
    }
    let (Some(kind), Some(value)) = (words.get(i), words.get(i + 1)) else {
        let at = words.get(i).unwrap_or(cx.kw);
        cx.error(at, "'tcp-check expect' needs a match and a pattern")
            .hint = Some(usage.into());
        return None;
    };
    let pattern = match kind.text.as_str() {
        "string" => Pattern::Bytes {
            text: value.text.clone().into_bytes(),
            binary: false,
        },
        "binary" => Pattern::Bytes {
            text: parse_hex(cx, value)?,
            binary: true,
        },
        "rstring" => match Regex::new(&value.text) {
            Ok(re) => Pattern::Regex(re),
            Err(e) => {
                // The last line of the regex crate's report says what is wrong.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or("").trim();
                let why = why.strip_prefix("error: ").unwrap_or(why);
                cx.error(value, format!("invalid regex '{}': {why}", value.text))
                    .hint =
                    Some("wsgate's regexes are RE2-like: no back-references or look-around".into());
                return None;
            }
        },
        "rbinary" | "string-lf" | "binary-lf" => {
            cx.error(
                kind,
                format!("'tcp-check expect {}' is not supported", kind.text),
            )
            .hint = Some("use `string`, `rstring` or `binary`".into());
            return None;
        }
        other => {
            cx.error(kind, format!("unknown 'tcp-check expect' match '{other}'"))
                .hint = Some(usage.into());
            return None;
        }
    };
    if value.text.is_empty() {
        cx.error(value, "an empty pattern matches nothing");
        return None;
    }
    i += 2;
    if let Some(c) = trailing_comment(cx, words, &mut i)? {
        comment = Some(c);
    }
    if let Some(extra) = words.get(i) {
        cx.error(
            extra,
            format!("unexpected '{}' after the pattern", extra.text),
        )
        .hint = Some("quote a pattern that has spaces".into());
        return None;
    }
    Some((
        Step::Expect {
            negate,
            pattern,
            min_recv,
        },
        comment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_sources, Source};

    fn script(text: &str, backend: &str) -> Option<TcpCheck> {
        let loaded = load_sources(&[Source {
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
        let config = loaded.config.unwrap();
        let be = config.backends.iter().find(|b| b.name == backend).unwrap();
        be.tcp_check.clone()
    }

    const DEFAULTS: &str = "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n    option tcp-check\n    tcp-check send PING\\r\\n\n    tcp-check expect string +PONG\n";

    #[test]
    fn own_lines_replace_the_inherited_ones() {
        let text = format!(
            "{DEFAULTS}\nbackend inherits\n    server a 127.0.0.1:1 check\n\n\
             backend own\n    tcp-check comment \"hello\"\n    tcp-check connect port 26379\n    \
             tcp-check send-binary 0d0a\n    server a 127.0.0.1:1 check\n\n\
             backend http\n    option httpchk\n    server a 127.0.0.1:1 check\n"
        );
        let inherited = script(&text, "inherits").unwrap();
        assert_eq!(inherited.rules.len(), 2);
        assert!(matches!(&inherited.rules[0].step, Step::Send(b) if b == b"PING\r\n"));
        let own = script(&text, "own").unwrap();
        assert_eq!(own.rules.len(), 2);
        assert!(matches!(
            own.rules[0].step,
            Step::Connect {
                port: Some(26379),
                ssl: false,
                send_proxy: false,
                default: false,
            }
        ));
        // Step numbers count the comment line; the comment carries on.
        assert_eq!((own.rules[0].step_no, own.rules[1].step_no), (2, 3));
        assert_eq!(own.rules[1].comment.as_deref(), Some("hello"));
        assert!(matches!(&own.rules[1].step, Step::Send(b) if b == b"\r\n"));
        // `option httpchk` after the inherited `option tcp-check` wins.
        assert!(script(&text, "http").is_none());
    }

    #[test]
    fn patterns() {
        let re = Pattern::Regex(Regex::new("^role:ma").unwrap());
        assert!(re.matches(b"role:master\r\n"));
        assert_eq!(re.syntax(), "rstring '^role:ma'");
        let bin = Pattern::Bytes {
            text: b"+OK".to_vec(),
            binary: true,
        };
        assert!(bin.matches(b"x+OK\r\n"));
        assert!(!bin.matches(b"+O"));
        assert_eq!(bin.describe(), "binary '2b4f4b'");
        assert_eq!(bin.min_len(), 3);
    }
}
