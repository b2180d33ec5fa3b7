//! `tcp-request connection` rules: accept, reject or track a connection
//! as soon as it is accepted, before any byte is read (so only `src` and
//! the stick counters are known).
//!
//! Stage: the `tcp-request` handler ([`tcp_request`]) reads the rules into
//! the draft; `check` resolves their conditions ([`resolve`]); the session
//! runs them first (`proxy::track::connection`). HAProxy 2.6 semantics:
//! the first `accept` or `reject` that applies ends the list; `reject`
//! closes the connection without a word; a `track-sc<n>` here tracks for
//! the whole connection (session), so every request on it counts
//! (`http_req_*`), and `conn_cur` counts open connections. `tcp-request
//! content`, `session` and `inspect-delay` are refused with a message:
//! content inspection is not implemented.

use super::diag::Diagnostic;
use super::model::{Acl, Condition, Location};
use super::parser::{Cx, ProxyDecl, ProxyDraft, SectionKind, UseBackendDraft};
use super::track::{track_slot, Track};

/// What a `tcp-request connection` rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpAction {
    Accept,
    Reject,
    TrackSc(Track),
}

/// One `tcp-request connection` rule, resolved.
#[derive(Debug, Clone)]
pub struct TcpRule {
    pub location: Location,
    pub action: TcpAction,
    pub condition: Option<Condition>,
}

const USAGE: &str = "tcp-request connection accept|reject|track-sc0|track-sc1|track-sc2 <fetch> [table <name>] [if|unless <condition>]";

/// `tcp-request connection <action> [if|unless <condition>]`.
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
        "content" | "session" => {
            cx.error(kind, format!("'tcp-request {}' is not supported: wsgate has no content rules (`req.payload` is read by `stick` rules only)", kind.text))
                .hint = Some(format!("`tcp-request connection` rules are supported: {USAGE}"));
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

/// `tcp-request inspect-delay <time>`: in a mode tcp backend, the longest
/// wait for the bytes a `stick ... req.payload(...)` rule reads. wsgate has
/// no `tcp-request content` rules, so elsewhere it does nothing (warned).
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
    if cx.section == SectionKind::Frontend {
        cx.warn(v, "'tcp-request inspect-delay' in a frontend does nothing in wsgate: it has no `tcp-request content` rules")
            .hint = Some("set it in the mode tcp backend whose `stick ... req.payload(...)` rule needs the bytes".into());
        return;
    }
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
