//! `http-request`, `http-response`, `http-after-response` and `redirect`
//! rules: their actions as typed values, and the handlers that read them.
//!
//! Stage: called by the `parser` through the keyword table; `check`
//! resolves the conditions' ACL names; `proxy::rules` runs them. HAProxy
//! 2.6's semantics: rules run in order; header actions apply and go on;
//! `allow`, `deny`, `return` and `redirect` are final and stop the list.
//! Values are log-format strings ([`super::logformat`]); regexes are read
//! once here, so a bad one is an error at its line. The headers that frame
//! a message (`Content-Length`, `Transfer-Encoding`) cannot be changed by a
//! rule: a proxy and its server disagreeing about where a message ends is
//! how requests are smuggled. Hop-by-hop headers (`Connection`, `Upgrade`,
//! ...) are managed by wsgate itself, so rules on them only warn.

use std::sync::Arc;

use super::lexer::Token;
use super::logformat::{self, Format, Use};
use super::parser::{Cx, ProxyDraft, SectionKind, UseBackendDraft};

/// A compiled regex with the text it came from (kept for messages and
/// equality).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::bytes::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// How `del-header -m <method>` compares header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    Str,
    Beg,
    End,
    Sub,
    Reg(Pattern),
}

/// The header actions both rule lists have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderAction {
    /// `set-header <name> <fmt>`: every line of `name` removed, one added.
    Set { name: String, value: Format },
    /// `add-header <name> <fmt>`: one line added at the end.
    Add { name: String, value: Format },
    /// `del-header <name> [-m str|beg|end|sub|reg]`.
    Del { name: String, method: NameMatch },
    /// `replace-header <name> <regex> <fmt>`: each line whose whole value
    /// matches somewhere becomes `<fmt>` with `\N` filled in.
    Replace {
        name: String,
        pattern: Pattern,
        value: Format,
    },
    /// `replace-value <name> <regex> <fmt>`: the same, per comma-separated
    /// value.
    ReplaceValue {
        name: String,
        pattern: Pattern,
        value: Format,
    },
}

/// What `redirect location|prefix|scheme` builds the `Location` from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// The value as it is.
    Location,
    /// The value, then the request's path (and query).
    Prefix,
    /// `<scheme>://<Host><path>`.
    Scheme,
}

/// `redirect location|prefix|scheme <x> [code <n>] [drop-query]
/// [append-slash]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub target: Format,
    pub code: u16,
    pub drop_query: bool,
    pub append_slash: bool,
}

/// The body of `http-request return`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    None,
    /// `string <text>` or `file <path>` (read at start).
    Bytes(Arc<[u8]>),
    /// `lf-string <fmt>`.
    Format(Format),
}

/// `http-request return [status <code>] [content-type <type>] [string
/// <text> | lf-string <fmt> | file <path>] [hdr <name> <fmt>]...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: ReplyBody,
    pub headers: Vec<(String, Format)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpRequestAction {
    Header(HeaderAction),
    /// `set-path <fmt>`: the path, the query kept.
    SetPath(Format),
    /// `set-query <fmt>`: what follows `?` (an empty result removes it).
    SetQuery(Format),
    /// `set-uri <fmt>`: the whole target.
    SetUri(Format),
    /// `replace-path <regex> <fmt>`.
    ReplacePath {
        pattern: Pattern,
        value: Format,
    },
    /// `replace-uri <regex> <fmt>`.
    ReplaceUri {
        pattern: Pattern,
        value: Format,
    },
    /// `allow`: stops the list, the request goes on.
    Allow,
    /// `deny [deny_status <code>]` (default 403).
    Deny {
        status: u16,
    },
    /// `return ...`: answered by wsgate.
    Return(Reply),
    Redirect(Redirect),
    /// `auth [realm <realm>]`: 401 with `WWW-Authenticate: Basic
    /// realm="<realm>"` (the proxy's name by default, filled in by `check`).
    Auth {
        realm: Option<String>,
    },
    /// `track-sc0|1|2 <fetch> [table <name>]` (config/track.rs).
    TrackSc(super::track::Track),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResponseAction {
    Header(HeaderAction),
    /// `allow`: stops the list.
    Allow,
    /// `deny [deny_status <code>]` (default 502): the server's response is
    /// dropped and an error sent instead.
    Deny {
        status: u16,
    },
}

/// `http-after-response` actions: they run on every response the client
/// gets, the server's and those wsgate makes itself (errors, redirects,
/// `return`, the stats page), after the `http-response` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAfterAction {
    Header(HeaderAction),
    /// `set-status <code> [reason <text>]`: the reason defaults to the
    /// code's standard one.
    SetStatus {
        status: u16,
        reason: Option<String>,
    },
    /// `allow`: stops the list.
    Allow,
}

/// The statuses `deny deny_status` may use: HAProxy's, those it has a
/// built-in page for (and wsgate the same page).
const DENY_STATUSES: [u16; 19] = super::errorfile::ERRORFILE_CODES;

/// The codes `redirect` may use (HAProxy's list).
const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// Headers that frame a message: no rule may name them, and a rule
/// matching names (`del-header -m beg Content-`) leaves them alone.
pub fn is_framing(name: &str) -> bool {
    ["content-length", "transfer-encoding"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}

/// Hop-by-hop headers: wsgate writes its own (on a `101` they carry the
/// protocol switch), so rules leave them alone, with a warning at load.
pub fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

const REQUEST_ACTIONS: &str = "set-header, add-header, del-header, replace-header, replace-value, set-path, set-query, set-uri, replace-path, replace-uri, allow, deny, return, redirect, auth, track-sc0, track-sc1, track-sc2, use-service prometheus-exporter";
const RESPONSE_ACTIONS: &str =
    "set-header, add-header, del-header, replace-header, replace-value, allow, deny";
const AFTER_ACTIONS: &str =
    "set-header, add-header, del-header, replace-header, replace-value, set-status, allow";

/// Which list a rule is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
    /// `http-after-response`: a response, as `Response`.
    After,
}

/// Reads the arguments of one rule; `Err(())` after reporting.
struct Words<'c, 'a> {
    cx: &'c mut Cx<'a>,
    words: &'a [Token],
    at: usize,
}

impl<'a> Words<'_, 'a> {
    fn next(&mut self, what: &str) -> Result<&'a Token, ()> {
        match self.words.get(self.at) {
            Some(t) if t.text != "if" && t.text != "unless" => {
                self.at += 1;
                Ok(t)
            }
            _ => {
                let at = self
                    .words
                    .get(self.at)
                    .or(self.words.last())
                    .unwrap_or(self.cx.kw);
                let action = self
                    .words
                    .first()
                    .map_or("", |t| t.text.as_str())
                    .to_owned();
                let keyword = self.cx.keyword.clone();
                self.cx
                    .error(at, format!("'{keyword} {action}' needs {what}"));
                Err(())
            }
        }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.words.get(self.at)
    }

    fn rest(&self) -> &'a [Token] {
        &self.words[self.at.min(self.words.len())..]
    }

    fn format(&mut self, t: &Token, usage: Use) -> Result<Format, ()> {
        if t.text.contains(['\r', '\n', '\0']) {
            self.cx.error(t, "a value cannot contain CR, LF or NUL");
            return Err(());
        }
        logformat::parse(&t.text, usage).map_err(|e| {
            self.cx.error(t, e.message).hint = e.hint;
        })
    }

    fn pattern(&mut self, t: &Token) -> Result<Pattern, ()> {
        regex::bytes::Regex::new(&t.text)
            .map(|regex| Pattern {
                source: t.text.clone(),
                regex,
            })
            .map_err(|e| {
                let first = e.to_string();
                let first = first.lines().last().unwrap_or("").trim();
                let first = first.strip_prefix("error: ").unwrap_or(first).to_owned();
                self.cx
                    .error(t, format!("invalid regex '{}': {first}", t.text))
                    .hint = Some(
                    "wsgate's regexes are RE2-like: no back-references or look-around inside the pattern"
                        .into(),
                );
            })
    }

    /// A header name a rule may change.
    fn header_name(&mut self, side: Side) -> Result<String, ()> {
        let t = self.next("a header name")?;
        let valid = !t.text.is_empty()
            && t.text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            self.cx
                .error(t, format!("'{}' is not a valid header name", t.text));
            return Err(());
        }
        if is_framing(&t.text) {
            self.cx
                .error(t, format!("rules cannot change '{}'", t.text))
                .hint = Some(
                "it frames the message; wsgate sets it from the body it forwards (changing it is how requests get smuggled)".into(),
            );
            return Err(());
        }
        if is_hop_by_hop(&t.text) {
            let what = match side {
                Side::Request => "the server",
                Side::Response | Side::After => "the client",
            };
            self.cx.warn(
                t,
                format!(
                    "'{}' is a hop-by-hop header that wsgate writes itself: this rule is not applied, {what} gets wsgate's",
                    t.text
                ),
            );
        }
        Ok(t.text.clone())
    }
}

fn parse_header_action(
    w: &mut Words<'_, '_>,
    action: &str,
    side: Side,
) -> Result<HeaderAction, ()> {
    let usage = Use {
        groups: false,
        response: side != Side::Request,
    };
    let groups = Use {
        groups: true,
        ..usage
    };
    Ok(match action {
        "set-header" | "add-header" => {
            let name = w.header_name(side)?;
            let t = w.next("a value")?;
            let value = w.format(t, usage)?;
            if action == "set-header" {
                HeaderAction::Set { name, value }
            } else {
                HeaderAction::Add { name, value }
            }
        }
        "del-header" => {
            let name = w.header_name(side)?;
            let mut method = NameMatch::Str;
            if w.peek().is_some_and(|t| t.text == "-m") {
                w.at += 1;
                let m = w.next("a match method after '-m'")?;
                method = match m.text.as_str() {
                    "str" => NameMatch::Str,
                    "beg" => NameMatch::Beg,
                    "end" => NameMatch::End,
                    "sub" => NameMatch::Sub,
                    "reg" => {
                        let name_tok = Token {
                            text: name.clone(),
                            line: m.line,
                            col: m.col,
                        };
                        NameMatch::Reg(w.pattern(&name_tok)?)
                    }
                    other => {
                        w.cx.error(m, format!("unknown match method '-m {other}'"))
                            .hint = Some("use str, beg, end, sub or reg".into());
                        return Err(());
                    }
                };
            }
            HeaderAction::Del { name, method }
        }
        "replace-header" | "replace-value" => {
            let name = w.header_name(side)?;
            let re = w.next("a regex")?;
            let pattern = w.pattern(re)?;
            let t = w.next("a replacement")?;
            let value = w.format(t, groups)?;
            if action == "replace-header" {
                HeaderAction::Replace {
                    name,
                    pattern,
                    value,
                }
            } else {
                HeaderAction::ReplaceValue {
                    name,
                    pattern,
                    value,
                }
            }
        }
        _ => return Err(()),
    })
}

fn parse_status(w: &mut Words<'_, '_>, allowed: &[u16]) -> Result<u16, ()> {
    let t = w.next("a status code")?;
    match t.text.parse::<u16>() {
        Ok(n) if allowed.contains(&n) => Ok(n),
        _ => {
            w.cx.error(t, format!("status '{}' is not supported here", t.text))
                .hint = Some(format!("use one of {allowed:?}"));
            Err(())
        }
    }
}

fn parse_deny(w: &mut Words<'_, '_>, default: u16) -> Result<u16, ()> {
    if w.peek().is_some_and(|t| t.text == "deny_status") {
        w.at += 1;
        return parse_status(w, &DENY_STATUSES);
    }
    Ok(default)
}

/// `location|prefix|scheme <x> [code <n>] [drop-query] [append-slash]` in
/// any order, as HAProxy reads them. `formats`: the target is a
/// log-format (`http-request redirect`), else literal (`redirect`).
fn parse_redirect(w: &mut Words<'_, '_>, formats: bool) -> Result<Redirect, ()> {
    let mut target: Option<(RedirectKind, Format)> = None;
    let mut code = 302;
    let (mut drop_query, mut append_slash) = (false, false);
    while let Some(t) = w.peek() {
        let kind = match t.text.as_str() {
            "if" | "unless" => break,
            "location" => Some(RedirectKind::Location),
            "prefix" => Some(RedirectKind::Prefix),
            "scheme" => Some(RedirectKind::Scheme),
            _ => None,
        };
        w.at += 1;
        if let Some(kind) = kind {
            let v = w.next(&format!("a value after '{}'", t.text))?;
            let f = if formats {
                w.format(
                    v,
                    Use {
                        groups: false,
                        response: false,
                    },
                )?
            } else {
                Format::literal(&v.text)
            };
            if target.replace((kind, f)).is_some() {
                w.cx.error(t, "a redirect takes one of location, prefix or scheme");
                return Err(());
            }
            continue;
        }
        match t.text.as_str() {
            "code" => code = parse_status(w, &REDIRECT_CODES)?,
            "drop-query" => drop_query = true,
            "append-slash" => append_slash = true,
            "set-cookie" | "clear-cookie" => {
                w.cx.error(t, format!("redirect option '{}' is not supported", t.text))
                    .hint = Some("set the cookie from the server's response".into());
                return Err(());
            }
            other => {
                w.cx
                    .error(t, format!("unknown redirect option '{other}'"))
                    .hint = Some(
                    "usage: redirect location|prefix|scheme <x> [code 301|302|303|307|308] [drop-query] [append-slash] [if|unless <cond>]".into(),
                );
                return Err(());
            }
        }
    }
    let Some((kind, target)) = target else {
        let at = w.words.first().unwrap_or(w.cx.kw);
        w.cx.error(at, "a redirect needs `location`, `prefix` or `scheme`")
            .hint = Some("e.g. `redirect scheme https code 301 unless { ssl_fc }`".into());
        return Err(());
    };
    Ok(Redirect {
        kind,
        target,
        code,
        drop_query,
        append_slash,
    })
}

fn read_file(w: &mut Words<'_, '_>, t: &Token) -> Result<Arc<[u8]>, ()> {
    std::fs::read(&t.text).map(Arc::from).map_err(|e| {
        w.cx.error(t, format!("cannot read '{}': {e}", t.text));
    })
}

fn parse_return(w: &mut Words<'_, '_>) -> Result<Reply, ()> {
    let mut reply = Reply {
        status: 200,
        content_type: None,
        body: ReplyBody::None,
        headers: Vec::new(),
    };
    let lf = Use {
        groups: false,
        response: false,
    };
    while let Some(t) = w.peek() {
        if t.text == "if" || t.text == "unless" {
            break;
        }
        w.at += 1;
        match t.text.as_str() {
            "status" => {
                let v = w.next("a status code")?;
                match v.text.parse::<u16>() {
                    Ok(n) if (200..600).contains(&n) => reply.status = n,
                    _ => {
                        w.cx.error(
                            v,
                            format!("'{}' is not a status between 200 and 599", v.text),
                        );
                        return Err(());
                    }
                }
            }
            "content-type" => reply.content_type = Some(w.next("a content type")?.text.clone()),
            "string" => reply.body = ReplyBody::Bytes(Arc::from(w.next("a text")?.text.as_bytes())),
            "lf-string" => {
                let v = w.next("a format")?;
                reply.body = ReplyBody::Format(w.format(v, lf)?);
            }
            "file" => {
                let v = w.next("a file")?;
                reply.body = ReplyBody::Bytes(read_file(w, v)?);
            }
            "hdr" => {
                let name = w.header_name(Side::Response)?;
                if name.eq_ignore_ascii_case("content-type") {
                    let at = &w.words[w.at - 1];
                    w.cx.error(at, "use `content-type <type>` for the content type");
                    return Err(());
                }
                let v = w.next("a value")?;
                let value = w.format(v, lf)?;
                reply.headers.push((name, value));
            }
            "default-errorfile" | "errorfile" | "errorfiles" | "lf-file" => {
                w.cx.error(t, format!("`return {}` is not supported", t.text))
                    .hint = Some("use `string`, `lf-string` or `file`".into());
                return Err(());
            }
            other => {
                w.cx.error(t, format!("unknown 'return' option '{other}'")).hint = Some(
                    "usage: return [status <code>] [content-type <type>] [string <text> | lf-string <fmt> | file <path>] [hdr <name> <fmt>]...".into(),
                );
                return Err(());
            }
        }
    }
    let has_body = match &reply.body {
        ReplyBody::None => false,
        ReplyBody::Bytes(b) => !b.is_empty(),
        ReplyBody::Format(f) => !f.parts.is_empty(),
    };
    if has_body && reply.content_type.is_none() {
        let at = w.words.first().unwrap_or(w.cx.kw);
        w.cx.error(at, "a content type must be given with a non-empty payload")
            .hint = Some("add e.g. `content-type text/plain`".into());
        return Err(());
    }
    Ok(reply)
}

fn unsupported(cx: &mut Cx<'_>, at: &Token, side: Side) {
    let (keyword, list) = match side {
        Side::Request => ("http-request", REQUEST_ACTIONS),
        Side::Response => ("http-response", RESPONSE_ACTIONS),
        Side::After => ("http-after-response", AFTER_ACTIONS),
    };
    cx.error(at, format!("'{keyword} {}' is not supported", at.text))
        .hint = Some(format!("wsgate implements {list}"));
}

/// The condition after the action, into the rule draft.
fn finish(cx: &mut Cx<'_>, rest: &[Token]) -> Option<UseBackendDraft> {
    let location = cx.kw_loc();
    cx.rule(String::new(), location, rest)
}

/// `track-sc<n> <fetch> [table <name>]` (config/track.rs).
fn parse_track(w: &mut Words<'_, '_>, word: &str) -> Result<super::track::Track, ()> {
    let slot = super::track::track_slot(word).unwrap_or(0);
    let t = w.next("a sample fetch (e.g. `src`)")?;
    let fetch = match super::persist::parse_fetch(&t.text) {
        Ok(super::persist::StickFetch::Payload { .. }) => {
            w.cx.error(t, format!("'{word}': req.payload is read only by `stick` rules of mode tcp backends"))
                .hint = Some(format!("usage: {word} src|req.hdr(<name>)|req.cook(<name>)|url_param(<name>) [table <name>]"));
            return Err(());
        }
        Ok(f) => f,
        Err(msg) => {
            let msg = msg.replacen("'stick'", &format!("'{word}'"), 1);
            w.cx.error(t, msg).hint = Some(format!(
                "usage: {word} src|req.hdr(<name>)|req.cook(<name>)|url_param(<name>) [table <name>]"
            ));
            return Err(());
        }
    };
    let mut table = None;
    if w.peek().is_some_and(|t| t.text == "table") {
        w.at += 1;
        table = Some(w.next("a table name after 'table'")?.text.clone());
    }
    Ok(super::track::Track { slot, fetch, table })
}

/// `http-request <action> ... [if|unless <condition>]`.
pub fn http_request(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(action) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'http-request' needs an action").hint =
            Some(format!("wsgate implements {REQUEST_ACTIONS}"));
        return;
    };
    if action.text == "use-service" {
        prometheus(p, cx);
        return;
    }
    if action.text == "cache-use" {
        cache_ignored(cx, action);
        return;
    }
    if action.text == "capture" {
        // As the `capture` keyword: it only feeds access logs and the
        // `capture.*` fetches, neither of which wsgate has.
        cx.warn(
            action,
            "'http-request capture' is ignored: captures only feed access logs, which do not show them yet",
        );
        return;
    }
    let mut w = Words {
        cx,
        words: args,
        at: 1,
    };
    let parsed = match action.text.as_str() {
        "set-header" | "add-header" | "del-header" | "replace-header" | "replace-value" => {
            parse_header_action(&mut w, &action.text, Side::Request).map(HttpRequestAction::Header)
        }
        "set-path" | "set-query" | "set-uri" => w.next("a value").and_then(|t| {
            let f = w.format(
                t,
                Use {
                    groups: false,
                    response: false,
                },
            )?;
            Ok(match action.text.as_str() {
                "set-path" => HttpRequestAction::SetPath(f),
                "set-query" => HttpRequestAction::SetQuery(f),
                _ => HttpRequestAction::SetUri(f),
            })
        }),
        "replace-path" | "replace-uri" => (|| {
            let re = w.next("a regex")?;
            let pattern = w.pattern(re)?;
            let t = w.next("a replacement")?;
            let value = w.format(
                t,
                Use {
                    groups: true,
                    response: false,
                },
            )?;
            Ok(if action.text == "replace-path" {
                HttpRequestAction::ReplacePath { pattern, value }
            } else {
                HttpRequestAction::ReplaceUri { pattern, value }
            })
        })(),
        "allow" => Ok(HttpRequestAction::Allow),
        "deny" => parse_deny(&mut w, 403).map(|status| HttpRequestAction::Deny { status }),
        "return" => parse_return(&mut w).map(HttpRequestAction::Return),
        "redirect" => parse_redirect(&mut w, true).map(HttpRequestAction::Redirect),
        "auth" => parse_auth(&mut w),
        word if super::track::track_slot(word).is_some() => {
            parse_track(&mut w, word).map(HttpRequestAction::TrackSc)
        }
        _ => {
            unsupported(w.cx, action, Side::Request);
            Err(())
        }
    };
    let rest = w.rest();
    if let Ok(action) = parsed {
        if let Some(rule) = finish(cx, rest) {
            p.http_request.push((action, rule));
        }
    }
}

/// `http-response <action> ... [if|unless <condition>]`.
pub fn http_response(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(action) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'http-response' needs an action").hint =
            Some(format!("wsgate implements {RESPONSE_ACTIONS}"));
        return;
    };
    if action.text == "cache-store" {
        cache_ignored(cx, action);
        return;
    }
    let mut w = Words {
        cx,
        words: args,
        at: 1,
    };
    let parsed = match action.text.as_str() {
        "set-header" | "add-header" | "del-header" | "replace-header" | "replace-value" => {
            parse_header_action(&mut w, &action.text, Side::Response)
                .map(HttpResponseAction::Header)
        }
        "allow" => Ok(HttpResponseAction::Allow),
        "deny" => parse_deny(&mut w, 502).map(|status| HttpResponseAction::Deny { status }),
        _ => {
            unsupported(w.cx, action, Side::Response);
            Err(())
        }
    };
    let rest = w.rest();
    if let Ok(action) = parsed {
        if let Some(rule) = finish(cx, rest) {
            p.http_response.push((action, rule));
        }
    }
}

/// `http-request cache-use` / `http-response cache-store`: wsgate has no
/// cache (`cache` sections are read and ignored), so every response comes
/// from the server — slower, never wrong: a warning, not an error.
fn cache_ignored(cx: &mut Cx<'_>, action: &super::lexer::Token) {
    let keyword = format!("{} {}", cx.kw.text, action.text);
    cx.warn(
        action,
        format!(
            "'{keyword}' is ignored: wsgate has no cache, so every response comes from the server"
        ),
    );
}

/// `http-after-response <action> ... [if|unless <condition>]`.
pub fn http_after_response(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(action) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'http-after-response' needs an action").hint =
            Some(format!("wsgate implements {AFTER_ACTIONS}"));
        return;
    };
    let mut w = Words {
        cx,
        words: args,
        at: 1,
    };
    let parsed = match action.text.as_str() {
        "set-header" | "add-header" | "del-header" | "replace-header" | "replace-value" => {
            parse_header_action(&mut w, &action.text, Side::After).map(HttpAfterAction::Header)
        }
        "set-status" => parse_set_status(&mut w),
        "allow" => Ok(HttpAfterAction::Allow),
        _ => {
            unsupported(w.cx, action, Side::After);
            Err(())
        }
    };
    let rest = w.rest();
    if let Ok(action) = parsed {
        if let Some(rule) = finish(cx, rest) {
            p.http_after_response.push((action, rule));
        }
    }
}

/// `auth [realm <realm>]`: the realm goes between quotes in a header, so
/// it may not contain one.
fn parse_auth(w: &mut Words<'_, '_>) -> Result<HttpRequestAction, ()> {
    let mut realm = None;
    if w.peek().is_some_and(|t| t.text == "realm") {
        w.at += 1;
        let r = w.next("a realm")?;
        if r.text
            .bytes()
            .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
        {
            w.cx.error(r, "a realm cannot contain '\"', '\\' or control characters");
            return Err(());
        }
        realm = Some(r.text.clone());
    }
    Ok(HttpRequestAction::Auth { realm })
}

/// `set-status <code> [reason <text>]`: HAProxy takes codes 100 to 999.
fn parse_set_status(w: &mut Words<'_, '_>) -> Result<HttpAfterAction, ()> {
    let t = w.next("a status code")?;
    let status = match t.text.parse::<u16>() {
        Ok(n) if (100..=999).contains(&n) => n,
        _ => {
            w.cx.error(
                t,
                format!(
                    "expects an integer status code between 100 and 999, not '{}'",
                    t.text
                ),
            );
            return Err(());
        }
    };
    let mut reason = None;
    if w.peek().is_some_and(|t| t.text == "reason") {
        w.at += 1;
        let r = w.next("a reason")?;
        if r.text.bytes().any(|b| b.is_ascii_control()) {
            w.cx.error(r, "a reason cannot contain control characters");
            return Err(());
        }
        reason = Some(r.text.clone());
    }
    Ok(HttpAfterAction::SetStatus { status, reason })
}

/// `redirect location|prefix|scheme <x> [code <n>] [drop-query]
/// [append-slash] [if|unless <cond>]` (the older keyword, still valid in
/// HAProxy 2.6; its value is literal text). Its rules run after the
/// `http-request` ones, as in HAProxy.
pub fn redirect(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let mut w = Words {
        cx,
        words: args,
        at: 0,
    };
    let parsed = parse_redirect(&mut w, false);
    let rest = w.rest();
    if let Ok(r) = parsed {
        if let Some(rule) = finish(cx, rest) {
            p.redirects.push((r, rule));
        }
    }
}

/// `http-request use-service prometheus-exporter [if|unless <cond>]`.
fn prometheus(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    if args.get(1).map(|t| t.text.as_str()) != Some("prometheus-exporter") {
        let at = args.get(1).unwrap_or(&args[0]);
        cx.error(at, "the only service wsgate has is `prometheus-exporter`")
            .hint =
            Some("e.g. `http-request use-service prometheus-exporter if { path /metrics }`".into());
        return;
    }
    if cx.section == SectionKind::Backend {
        let kw = cx.kw;
        cx.error(
            kw,
            "the Prometheus exporter is served by a frontend or listen section",
        )
        .hint = Some("move the line to the frontend".into());
        return;
    }
    if let Some(rule) = finish(cx, &args[2..]) {
        p.prometheus = Some(rule);
    }
}
