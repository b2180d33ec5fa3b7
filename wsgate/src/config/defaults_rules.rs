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
//!
//! Rules in an *anonymous* `defaults` section, which every HAProxy version
//! refuses, are read as what their authors meant (issue #10): wsgate
//! applies them at the top of each proxy that takes requests from clients
//! and uses the section, with a warning per line saying where
//! ([`Anonymous`]).

use super::acl::{ConditionDraft, TermDraft};
use super::diag::Diagnostic;
use super::model::{AclTerm, Location};
use super::parser::{ProxyDecl, ProxyDraft, SectionKind, UseBackendDraft};

/// Keywords HAProxy 2.6 takes in a `defaults` section only when it is named.
const NAMED_ONLY: &[&str] = &[
    "acl",
    "http-request",
    "http-response",
    "http-after-response",
    "tcp-request",
];

/// Whether `keyword` (a table entry's name, or a line's first word) needs
/// a named `defaults`.
pub fn named_only(keyword: &str) -> bool {
    NAMED_ONLY.contains(&keyword)
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

/// The rule lines of an anonymous `defaults` section and the proxies using
/// it. HAProxy refuses such lines (before 2.5 in any `defaults`; since, in
/// one without a name); wsgate applies them as if written at the top of
/// each `frontend` and `listen` section using the section, or, when only
/// backends use it, at the top of each backend. Each request passes
/// exactly one frontend or listen section (or one backend), so the rules
/// run exactly once per request, before the proxy's own: what rules in a
/// named `defaults` section do in HAProxy 2.5+. Their ACLs are resolved at
/// the section's lines ([`resolve_acls`]), as in a named section, so a
/// proxy's own ACL of the same name neither sees nor changes them.
#[derive(Debug, Clone, Default)]
pub struct Anonymous {
    /// Each rule line read without error: the keyword as written, where.
    lines: Vec<(String, Location)>,
    /// The proxies using the section, as indices into the parsed proxies.
    users: Vec<usize>,
}

impl Anonymous {
    pub fn line(&mut self, keyword: String, at: Location) {
        self.lines.push((keyword, at));
    }

    pub fn used_by(&mut self, proxy: usize) {
        self.users.push(proxy);
    }

    /// Takes the section's rules (`section`, which every user inherited as
    /// the first entries of its lists) out of the users that do not run
    /// them, and reports each line.
    pub fn apply(
        &self,
        section: &ProxyDraft,
        proxies: &mut [ProxyDecl],
        diags: &mut Vec<Diagnostic>,
    ) {
        if self.lines.is_empty() {
            return;
        }
        let (backends, clients): (Vec<usize>, Vec<usize>) = self
            .users
            .iter()
            .partition(|i| proxies[**i].kind == SectionKind::Backend);
        let backends_only = clients.is_empty();
        let receivers = if backends_only {
            backends
        } else {
            for i in &backends {
                strip(&mut proxies[*i].draft, section);
            }
            clients
        };
        let kinds: Vec<SectionKind> = receivers.iter().map(|i| proxies[*i].kind).collect();
        let names = names(
            receivers
                .iter()
                .map(|i| (proxies[*i].kind.name(), proxies[*i].name.as_str())),
        );
        let refused: Vec<&Location> = section
            .tcp_connection
            .iter()
            .chain(&section.tcp_content)
            .map(|(_, r)| &r.location)
            .filter(|_| backends_only)
            .collect();
        for (keyword, at) in &self.lines {
            diags.push(if receivers.is_empty() {
                unused(keyword, at.clone())
            } else if refused.contains(&at) {
                tcp_in_backends(at.clone(), &names)
            } else {
                Diagnostic::warning(
                    at.clone(),
                    format!(
                        "HAProxy refuses '{keyword}' in an anonymous defaults section; wsgate \
                         applies it at the top of {names}"
                    ),
                )
                .with_hint(naming_hint(&kinds))
            });
        }
    }
}

/// Removes the rules a proxy inherited from `section`: the first entries
/// of each of its lists (a `use-service` it set itself stays).
fn strip(p: &mut ProxyDraft, section: &ProxyDraft) {
    p.http_request.drain(..section.http_request.len());
    p.http_response.drain(..section.http_response.len());
    p.http_after_response
        .drain(..section.http_after_response.len());
    p.tcp_connection.drain(..section.tcp_connection.len());
    p.tcp_content.drain(..section.tcp_content.len());
    let at = |r: &Option<UseBackendDraft>| r.as_ref().map(|r| r.location.clone());
    if section.prometheus.is_some() && at(&p.prometheus) == at(&section.prometheus) {
        p.prometheus = None;
    }
}

/// `frontend 'a', frontend 'b' and listen 'c'` from kinds and names (the
/// first three, then how many more).
pub fn names<'a>(proxies: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let all: Vec<String> = proxies
        .map(|(kind, name)| format!("{kind} '{name}'"))
        .collect();
    match all.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first @ .., last] if all.len() <= 3 => format!("{} and {last}", first.join(", ")),
        _ => format!("{} and {} more", all[..3].join(", "), all.len() - 3),
    }
}

/// What to write today: naming the section is enough when HAProxy 2.5+
/// takes a named section with rules used by these proxies (no `listen`,
/// not both frontends and backends); else the line goes into each.
fn naming_hint(kinds: &[SectionKind]) -> String {
    let move_it = "move the line into each of them (`wsgate migrate -f <file>` rewrites the file)";
    let why = if kinds.contains(&SectionKind::Listen) {
        "a listen section uses it"
    } else if kinds.iter().any(|k| *k != kinds[0]) {
        "frontends and backends use it"
    } else {
        return format!(
            "name the section (`defaults <name>`), as HAProxy 2.5+ requires, or {move_it}"
        );
    };
    format!("{move_it}; naming the section is not enough: {why}")
}

/// A line of an anonymous `defaults` section no proxy uses.
fn unused(keyword: &str, at: Location) -> Diagnostic {
    Diagnostic::warning(
        at,
        format!(
            "HAProxy refuses '{keyword}' in an anonymous defaults section, and no proxy uses this \
             one: the line does nothing"
        ),
    )
    .with_hint("remove it, or move it into the proxies it was meant for")
}

/// A `tcp-request` rule of an anonymous `defaults` section used by
/// backends only, where wsgate cannot run it.
fn tcp_in_backends(at: Location, names: &str) -> Diagnostic {
    Diagnostic::error(
        at,
        format!(
            "HAProxy refuses 'tcp-request' in an anonymous defaults section, and only backends \
             use this one ({names}): wsgate runs `tcp-request` rules in frontends, before \
             `use_backend`"
        ),
    )
    .with_hint("move the line into the frontends or listen sections that route to them")
}
