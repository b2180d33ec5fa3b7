//! `tcp-request` rules.
//!
//! `tcp-request connection` rules accept, reject or track a connection as
//! soon as it is accepted, before any byte is read (so only `src` and the
//! stick counters are known). `tcp-request content accept|reject` rules
//! run next, in a mode tcp frontend, on the client's first bytes (content
//! inspection): with `tcp-request inspect-delay` they wait for a TLS
//! ClientHello so that `use_backend ... if { req.ssl_sni -i a.example.com }`
//! routes `wss://` without terminating TLS (HAProxy's SNI passthrough).
//!
//! Stage: the `tcp-request` handler ([`tcp_request`]) reads the rules into
//! the draft; `check` resolves their conditions ([`resolve`]) and bundles
//! the content rules with the delay ([`inspection`]); the listener runs
//! the connection rules (`proxy::track::connection`), the mode tcp session
//! the content rules (`proxy::inspect`). HAProxy 2.6 semantics: the first
//! `accept` or `reject` that applies ends the list, and no rule applying
//! means accept; `reject` closes the connection without a word; a
//! `track-sc<n>` connection rule tracks for the whole connection
//! (session), so every request on it counts (`http_req_*`), and
//! `conn_cur` counts open connections. Content rules are re-run as bytes
//! arrive while a fetch they read could still change (an incomplete
//! ClientHello), until the delay is over; then once more on what is
//! there, as definitive.

use super::diag::Diagnostic;
use super::model::{Acl, AclFetch, Condition, Location, Mode, UseBackend};
use super::parser::{Cx, ProxyDecl, ProxyDraft, SectionKind, UseBackendDraft};
use super::track::{track_slot, Track};

/// What a `tcp-request connection` rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpAction {
    Accept,
    Reject,
    TrackSc(Track),
}

/// One `tcp-request connection` or `tcp-request content` rule, resolved.
#[derive(Debug, Clone)]
pub struct TcpRule {
    pub location: Location,
    pub action: TcpAction,
    pub condition: Option<Condition>,
}

const USAGE: &str = "tcp-request connection accept|reject|track-sc0|track-sc1|track-sc2 <fetch> [table <name>] [if|unless <condition>]";
const CONTENT_USAGE: &str =
    "tcp-request content accept|reject [if|unless <condition>] (with `tcp-request inspect-delay <time>`)";

/// Content inspection of a mode tcp frontend: its `tcp-request content`
/// rules and how long they may wait for the client's bytes.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// `tcp-request inspect-delay`; `None`: no waiting, one look at what
    /// has arrived.
    pub delay: Option<std::time::Duration>,
    pub rules: Vec<TcpRule>,
}

/// `tcp-request connection|content <action> [if|unless <condition>]`,
/// `tcp-request inspect-delay <time>`.
pub fn tcp_request(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let kw = cx.kw;
    let Some(kind) = args.first() else {
        cx.error(
            kw,
            "'tcp-request' expects 'connection', 'session', 'content' or 'inspect-delay'",
        )
        .hint = Some(format!("usage: {USAGE}"));
        return;
    };
    match kind.text.as_str() {
        "connection" => {}
        "inspect-delay" => {
            inspect_delay(p, cx);
            return;
        }
        "content" => {
            content(p, cx);
            return;
        }
        "session" => {
            cx.error(kind, "'tcp-request session' is not supported: wsgate has no session rules")
                .hint = Some(format!("`tcp-request connection` rules run at the same point for a plain connection: {USAGE}"));
            return;
        }
        other => {
            cx.error(kind, format!("'tcp-request {other}': unknown rule type (expected 'connection', 'session', 'content' or 'inspect-delay')"))
                .hint = Some(format!("usage: {USAGE}"));
            return;
        }
    }
    if cx.section == SectionKind::Backend {
        cx.error(kind, "'tcp-request connection' is not allowed in a backend (it runs when a frontend accepts a connection)")
            .hint = Some("move the rule to the frontend".into());
        return;
    }
    let Some(action_tok) = args.get(1) else {
        cx.error(kind, "'tcp-request connection' needs an action")
            .hint = Some(format!("usage: {USAGE}"));
        return;
    };
    let mut rest = &args[2..];
    let action = match action_tok.text.as_str() {
        "accept" => TcpAction::Accept,
        "reject" => TcpAction::Reject,
        word if track_slot(word).is_some() => {
            let slot = track_slot(word).unwrap_or(0);
            let Some(f) = rest
                .first()
                .filter(|t| t.text != "if" && t.text != "unless")
            else {
                cx.error(
                    action_tok,
                    format!("'{word}' needs a sample fetch (e.g. `src`)"),
                );
                return;
            };
            if f.text != "src" {
                cx.error(f, format!("'tcp-request connection {word}': only `src` is known when a connection is accepted, not '{}'", f.text))
                    .hint = Some("track request data with `http-request track-sc<n>`".into());
                return;
            }
            rest = &rest[1..];
            let mut table = None;
            if rest.first().is_some_and(|t| t.text == "table") {
                let Some(name) = rest.get(1) else {
                    cx.error(&rest[0], "'table' needs a table name");
                    return;
                };
                table = Some(name.text.clone());
                rest = &rest[2..];
            }
            TcpAction::TrackSc(Track {
                slot,
                fetch: super::persist::StickFetch::Src,
                table,
            })
        }
        other => {
            cx.error(
                action_tok,
                format!("'tcp-request connection {other}' is not supported"),
            )
            .hint = Some(format!("usage: {USAGE}"));
            return;
        }
    };
    if let Some(first) = rest.first() {
        if first.text != "if" && first.text != "unless" {
            cx.error(
                first,
                format!("'tcp-request connection': unexpected '{}'", first.text),
            )
            .hint = Some(format!("usage: {USAGE}"));
            return;
        }
    }
    let location = cx.kw_loc();
    if let Some(rule) = cx.rule(String::new(), location, rest) {
        p.tcp_connection.push((action, rule));
    }
}

/// `tcp-request content accept|reject [if|unless <condition>]` in a
/// frontend or listen section (mode tcp, checked later: the mode may come
/// after the rule).
fn content(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let kind = &args[0];
    if cx.section == SectionKind::Backend {
        cx.error(kind, "'tcp-request content' in a backend is not supported: wsgate runs content rules in the frontend, before `use_backend`")
            .hint = Some("move the rule to the frontend (or listen section) that routes here".into());
        return;
    }
    let Some(action_tok) = args.get(1) else {
        cx.error(kind, "'tcp-request content' needs an action").hint =
            Some(format!("usage: {CONTENT_USAGE}"));
        return;
    };
    let action = match action_tok.text.as_str() {
        "accept" => TcpAction::Accept,
        "reject" => TcpAction::Reject,
        word if track_slot(word).is_some() => {
            cx.error(action_tok, format!("'tcp-request content {word}' is not supported"))
                .hint = Some(format!("track the client with `tcp-request connection {word} src`: in mode tcp it counts the same connection"));
            return;
        }
        other => {
            cx.error(action_tok, format!("'tcp-request content {other}' is not supported (wsgate knows accept and reject)"))
                .hint = Some(format!("usage: {CONTENT_USAGE}"));
            return;
        }
    };
    let rest = &args[2..];
    if let Some(first) = rest.first() {
        if first.text != "if" && first.text != "unless" {
            cx.error(
                first,
                format!("'tcp-request content': unexpected '{}'", first.text),
            )
            .hint = Some(format!("usage: {CONTENT_USAGE}"));
            return;
        }
    }
    let location = cx.kw_loc();
    if let Some(rule) = cx.rule(String::new(), location, rest) {
        p.tcp_content.push((action, rule));
    }
}

/// `tcp-request inspect-delay <time>`: the longest wait for the client's
/// bytes, for the frontend's `tcp-request content` rules and a mode tcp
/// backend's `stick ... req.payload(...)` rule.
fn inspect_delay(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(v) = cx.args.get(1) else {
        let kw = cx.kw;
        cx.error(kw, "'tcp-request inspect-delay' expects a time (e.g. `5s`)");
        return;
    };
    let d = match super::units::parse_time(&v.text) {
        Ok(d) => d,
        Err(e) => {
            cx.error(v, format!("'tcp-request inspect-delay': invalid time: {e}"));
            return;
        }
    };
    p.tcp_inspect_delay = Some(d);
}

/// The rules with their conditions resolved against the section's ACLs.
pub(super) fn resolve(
    p: &ProxyDecl,
    drafts: &[(TcpAction, UseBackendDraft)],
    acls: &mut Vec<Acl>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<TcpRule> {
    drafts
        .iter()
        .filter_map(|(action, rule)| {
            let condition = match &rule.condition {
                None => None,
                Some(c) => Some(super::check::resolve_condition(p, rule, c, acls, diags)?),
            };
            Some(TcpRule {
                location: rule.location.clone(),
                action: action.clone(),
                condition,
            })
        })
        .collect()
}

/// Whether `fetch` reads the client's raw bytes (content inspection).
pub(super) fn reads_content(fetch: &AclFetch) -> bool {
    matches!(
        fetch,
        AclFetch::ReqSslSni
            | AclFetch::ReqSslHelloType
            | AclFetch::ReqSslVer
            | AclFetch::ReqLen
            | AclFetch::WaitEnd
    )
}

fn condition_reads_content(c: &Condition, acls: &[Acl]) -> bool {
    c.groups.iter().flatten().any(|t| {
        acls.get(t.acl)
            .is_some_and(|a| a.terms.iter().any(|term| reads_content(&term.fetch)))
    })
}

/// The frontend's content inspection, from its resolved content rules:
/// `None` when there is nothing to inspect (no content rule, and no
/// `use_backend` reading the client's bytes). Reports what cannot work:
/// content rules in mode http (an error: HAProxy runs them before each
/// HTTP request, wsgate does not), content fetches on a bind that
/// terminates TLS or in mode http (they find nothing), content fetches
/// without `tcp-request inspect-delay` (they see whatever arrived with
/// the connection, as HAProxy warns), a `timeout client` shorter than the
/// delay, a delay with nothing to wait for.
pub(super) fn inspection(
    p: &ProxyDecl,
    rules: Vec<TcpRule>,
    acls: &[Acl],
    use_backends: &[UseBackend],
    diags: &mut Vec<Diagnostic>,
) -> Option<Inspection> {
    let d = &p.draft;
    let reading =
        |c: &Option<Condition>| c.as_ref().is_some_and(|c| condition_reads_content(c, acls));
    let routing: Vec<&Location> = use_backends
        .iter()
        .filter(|r| reading(&r.condition))
        .map(|r| &r.location)
        .collect();
    if d.mode == Mode::Http {
        for rule in &rules {
            diags.push(
                Diagnostic::error(rule.location.clone(), format!("'tcp-request content' needs mode tcp: {} '{}' is mode http", p.kind.name(), p.name))
                    .with_hint("in mode http use `http-request deny|allow if <condition>`; `tcp-request connection accept|reject` runs before any byte in both modes"),
            );
        }
        for at in &routing {
            diags.push(
                Diagnostic::warning((*at).clone(), "req.ssl_sni, req.ssl_hello_type, req.ssl_ver and req.len read a mode tcp connection's first bytes: in mode http they find nothing")
                    .with_hint("in mode http use `ssl_fc_sni` (the name a `bind ... ssl` received) or `req.hdr(host)`"),
            );
        }
    }
    let readers: Vec<&Location> = rules
        .iter()
        .filter(|r| reading(&r.condition))
        .map(|r| &r.location)
        .chain(routing)
        .collect();
    let idle = rules.is_empty() && (readers.is_empty() || d.mode == Mode::Http);
    if idle && p.kind == SectionKind::Frontend && d.tcp_inspect_delay.is_some() {
        diags.push(
            Diagnostic::warning(p.location.clone(), format!("'tcp-request inspect-delay' in frontend '{}' does nothing: no `tcp-request content` rule or `use_backend` reads the client's bytes in mode tcp", p.name))
                .with_hint("add e.g. `tcp-request content accept if { req.ssl_hello_type 1 }` in mode tcp, or move the delay to the backend whose `stick ... req.payload(...)` rule needs it"),
        );
    }
    if idle || d.mode == Mode::Http {
        return None;
    }
    let all_tls = !d.binds.is_empty() && d.binds.iter().all(|b| b.ssl.is_some());
    if let Some(at) = readers.first().filter(|_| all_tls) {
        diags.push(
            Diagnostic::warning((*at).clone(), "req.ssl_sni, req.ssl_hello_type and req.ssl_ver read a ClientHello that passes through, but every `bind` here has `ssl`: wsgate terminates TLS, so they find nothing")
                .with_hint("use `ssl_fc_sni` to route on the name of a TLS connection wsgate terminates, or remove `ssl` from the bind to pass TLS through"),
        );
    }
    match d.tcp_inspect_delay {
        None => {
            if let Some(at) = readers.first() {
                diags.push(
                    Diagnostic::warning((*at).clone(), "this rule reads the client's first bytes but there is no `tcp-request inspect-delay`: it sees only what arrived with the connection, so it may randomly miss")
                        .with_hint("add `tcp-request inspect-delay 5s` and `tcp-request content accept if { req.ssl_hello_type 1 }` to wait for a complete ClientHello"),
                );
            }
        }
        Some(delay) => {
            if let Some(client) = d.frontend_timeouts.client.filter(|c| *c < delay) {
                diags.push(
                    Diagnostic::warning(p.location.clone(), format!("`timeout client` ({} ms) is shorter than `tcp-request inspect-delay` ({} ms): a client that is slow to send its first bytes is closed before the delay is over", client.as_millis(), delay.as_millis()))
                        .with_hint("make `timeout client` at least as long as the inspect delay"),
                );
            }
            // The delay holds the content rules only: `use_backend` runs
            // once, on what has come (HAProxy's behaviour too).
            let waiting = rules.iter().any(|r| reading(&r.condition));
            if let Some(at) = readers.first().filter(|_| !waiting) {
                diags.push(
                    Diagnostic::warning((*at).clone(), "this rule reads the client's first bytes, but no `tcp-request content` rule waits for them: `tcp-request inspect-delay` holds only those rules, so it sees only what arrived with the connection")
                        .with_hint("add `tcp-request content accept if { req.ssl_hello_type 1 }` to wait for a complete ClientHello"),
                );
            }
        }
    }
    Some(Inspection {
        delay: d.tcp_inspect_delay,
        rules,
    })
}
