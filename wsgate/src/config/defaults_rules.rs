//! Rules and ACLs in `defaults` sections, with HAProxy 2.5+'s semantics
//! (checked against HAProxy 2.6 and its manual, `http-request` et al.):
//!
//! - `acl`, `http-request`, `http-response`, `http-after-response` and
//!   `tcp-request` are taken only in a *named* `defaults` section;
//! - its rules run before the inheriting proxy's own (they are the first
//!   entries of the proxy's lists, which start as a copy of the defaults);
//! - its ACLs are seen by its own rules only, never by a proxy using it:
//!   a rule's ACL names are resolved at the rule's line against the `acl`
//!   lines above it, as HAProxy does, and the proxy gets the terms, not
//!   the names;
//! - a `defaults` section with rules may not be used by both a proxy with a
//!   client side (frontend) and one with a server side (backend), nor by a
//!   `listen` section (which has both), nor be the `from` of another
//!   `defaults` section: otherwise a rule would run twice per request.

use super::acl::{ConditionDraft, TermDraft};
use super::diag::Diagnostic;
use super::model::{AclTerm, Location};
use super::parser::{ProxyDraft, SectionKind, UseBackendDraft};

/// Keywords HAProxy 2.6 takes in a `defaults` section only when it is named.
const NAMED_ONLY: &[&str] = &[
    "acl",
    "http-request",
    "http-response",
    "http-after-response",
    "tcp-request",
];

/// Whether `keyword` (a table entry's name) needs a named `defaults`.
pub fn named_only(keyword: &str) -> bool {
    NAMED_ONLY.contains(&keyword)
}

/// The error for such a keyword in `defaults` without a name.
pub fn anonymous(keyword: &str, at: Location) -> Diagnostic {
    Diagnostic::error(
        at,
        format!("'{keyword}' is not allowed in an anonymous defaults section"),
    )
    .with_hint(
        "name the section (`defaults <name>`), as HAProxy 2.5+ requires, and use it for \
         frontends only or backends only (its rules run before each one's own); or move the \
         line into the proxies",
    )
}

/// Whether a `defaults` section defines rules (its ACLs alone do not
/// count, as in HAProxy: they are only seen by its rules).
pub fn has_rules(d: &ProxyDraft) -> bool {
    !d.http_request.is_empty()
        || !d.http_response.is_empty()
        || !d.http_after_response.is_empty()
        || !d.tcp_connection.is_empty()
        || !d.tcp_content.is_empty()
        || d.prometheus.is_some()
}

/// Resolves the ACL names in the rules of a `defaults` section against its
/// `acl` lines, once each rule is read: the names become the ACLs' terms
/// ([`TermDraft::Defaults`]), so that a proxy inheriting the rules runs
/// them without seeing the names. A name not declared above the rule is an
/// error there (the rule is dropped); HAProxy's predefined ACLs (`TRUE`,
/// `HTTP`...) stay names, resolved as anywhere.
pub fn resolve_acls(d: &mut ProxyDraft, diags: &mut Vec<Diagnostic>) {
    let acls = std::mem::take(&mut d.acls);
    let broken = std::mem::take(&mut d.broken_acls);
    let scope = Scope {
        acls: &acls,
        broken: &broken,
    };
    retain_resolved(&mut d.http_request, &scope, diags);
    retain_resolved(&mut d.http_response, &scope, diags);
    retain_resolved(&mut d.http_after_response, &scope, diags);
    retain_resolved(&mut d.tcp_connection, &scope, diags);
    retain_resolved(&mut d.tcp_content, &scope, diags);
    if let Some(rule) = &mut d.prometheus {
        if !scope.resolve(rule, diags) {
            d.prometheus = None;
        }
    }
    d.acls = acls;
    d.broken_acls = broken;
}

fn retain_resolved<A>(
    rules: &mut Vec<(A, UseBackendDraft)>,
    scope: &Scope<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    rules.retain_mut(|(_, rule)| scope.resolve(rule, diags));
}

/// The `acl` lines of one `defaults` section.
struct Scope<'a> {
    acls: &'a [(String, AclTerm, Location)],
    broken: &'a [String],
}

impl Scope<'_> {
    /// `false` when the rule cannot be used (reported, or its ACL line was).
    fn resolve(&self, rule: &mut UseBackendDraft, diags: &mut Vec<Diagnostic>) -> bool {
        let Some(ConditionDraft { groups, .. }) = &mut rule.condition else {
            return true;
        };
        let mut usable = true;
        for term in groups.iter_mut().flatten() {
            let TermDraft::Named { name, negate, at } = term else {
                continue;
            };
            let lines: Vec<AclTerm> = self
                .acls
                .iter()
                .filter(|(n, _, _)| n == name)
                .map(|(_, t, _)| t.clone())
                .collect();
            if !lines.is_empty() {
                *term = TermDraft::Defaults {
                    terms: lines,
                    negate: *negate,
                };
            } else if self.broken.contains(name) {
                usable = false;
            } else if super::acl::predefined(name).is_none() {
                let at = rule
                    .word_locations
                    .get(*at)
                    .cloned()
                    .unwrap_or_else(|| rule.location.clone());
                diags.push(
                    Diagnostic::error(at, format!("unknown ACL '{name}' in defaults section"))
                        .with_hint(format!(
                            "declare it above this line in the same section (`acl {name} ...`): \
                             a defaults section's rules see only its own ACLs"
                        )),
                );
                usable = false;
            }
        }
        usable
    }
}

/// A `defaults` section's rules, as far as inheriting them is concerned.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// The first proxy with a client side (frontend) using the section.
    frontend: Option<Location>,
    /// The first proxy with a server side (backend) using the section.
    backend: Option<Location>,
}

/// Checks that a proxy (or `defaults`) of `kind` declared at `at` may
/// inherit from the `defaults` section at `parent_at`, whose draft is
/// `parent`, and records the use.
pub fn check_use(
    parent: &ProxyDraft,
    parent_at: &Location,
    users: &mut Users,
    kind: SectionKind,
    at: Location,
    diags: &mut Vec<Diagnostic>,
) {
    if !has_rules(parent) {
        return;
    }
    let here = format!("(defaults section at {parent_at})");
    let refuse = |why: String| {
        Diagnostic::error(at.clone(), why).with_hint(
            "give frontends and backends separate `defaults` sections (`from <name>` picks one), \
             or move the rules into the proxies",
        )
    };
    match kind {
        SectionKind::Defaults => diags.push(
            Diagnostic::error(
                at,
                format!(
                    "a defaults section cannot inherit from a defaults section that defines \
                     rules {here}"
                ),
            )
            .with_hint("inherit from a defaults section without rules, or repeat the settings"),
        ),
        SectionKind::Listen => diags.push(refuse(format!(
            "a listen section cannot inherit from a defaults section that defines rules {here}: \
             they would run on both of its sides"
        ))),
        SectionKind::Frontend | SectionKind::Backend => {
            let frontend = kind == SectionKind::Frontend;
            let (mine, other) = if frontend {
                (&mut users.frontend, &users.backend)
            } else {
                (&mut users.backend, &users.frontend)
            };
            if let Some(other) = other {
                diags.push(refuse(format!(
                    "frontends and backends cannot inherit from the same defaults section if it \
                     defines rules {here}: the {} at line {} uses it too",
                    if frontend { "backend" } else { "frontend" },
                    other.line
                )));
            }
            mine.get_or_insert_with(|| at.clone());
            if !frontend && (!parent.tcp_connection.is_empty() || !parent.tcp_content.is_empty()) {
                let first = parent
                    .tcp_connection
                    .iter()
                    .chain(&parent.tcp_content)
                    .map(|(_, r)| r.location.line)
                    .min()
                    .unwrap_or(parent_at.line);
                diags.push(refuse(format!(
                    "a backend cannot inherit the `tcp-request` rules of a defaults section \
                     (line {first}): wsgate runs them in frontends, before `use_backend`"
                )));
            }
        }
        SectionKind::Global => {}
    }
}
