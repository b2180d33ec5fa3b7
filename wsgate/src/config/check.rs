//! Check: parsed sections → the typed [`Config`], with names resolved and
//! cross-section rules applied.
//!
//! Stage: last pass, after the `parser`; its output is what the runtime is
//! built from. This is where HAProxy's `check_config_validity()` rules
//! live: proxy names unique per side (a frontend and a backend may share a
//! name, two frontends may not), `default_backend` resolved to an index,
//! frontend and backend modes agreeing, and the startup warnings HAProxy
//! prints for missing timeouts, plus one of ours for WebSockets without
//! `timeout tunnel`.

use std::collections::HashMap;
use std::time::Duration;

use super::acl::{ConditionDraft, TermDraft};
use super::diag::Diagnostic;
use super::keywords;
use super::model::{
    Acl, AclFetch, Backend, BackendHttp, BackendId, CondTerm, Condition, Config, Frontend,
    FrontendLog, Global, HttpAfterAction, HttpAfterRule, HttpRequestAction, HttpRequestRule,
    HttpResponseAction, HttpResponseRule, Location, LogStyle, Mode, Server, ServiceRule,
    UseBackend,
};
use super::parser::{Parsed, ProxyDecl, SectionKind, UseBackendDraft};

/// Builds the model; problems go to `diags` (the caller discards the model
/// when any of them is an error).
pub fn check(parsed: Parsed, diags: &mut Vec<Diagnostic>) -> Config {
    let Parsed {
        global,
        mut proxies,
        userlists,
    } = parsed;
    upgrade_tcp_frontends(&mut proxies, diags);
    let userlists = super::userlist::resolve(&userlists, diags);

    // Unique names per side, as HAProxy: frontends (and listens) among
    // themselves, backends (and listens) among themselves.
    let mut fe_seen: HashMap<&str, &ProxyDecl> = HashMap::new();
    let mut be_seen: HashMap<&str, &ProxyDecl> = HashMap::new();
    let mut keep = vec![true; proxies.len()];
    for (i, p) in proxies.iter().enumerate() {
        let sides = [
            (has_frontend(p), &mut fe_seen),
            (has_backend(p), &mut be_seen),
        ];
        for (has, seen) in sides {
            if !has {
                continue;
            }
            if let Some(prev) = seen.get(p.name.as_str()) {
                keep[i] = false;
                diags.push(Diagnostic::error(
                    p.location.clone(),
                    format!(
                        "{} '{}' has the same name as {} '{}' declared at {}",
                        p.kind.name(),
                        p.name,
                        prev.kind.name(),
                        prev.name,
                        short_location(&prev.location, &p.location),
                    ),
                ).with_hint("rename one of them (a frontend and a backend may share a name; two frontends or two backends may not)"));
                break;
            }
        }
        if keep[i] {
            if has_frontend(p) {
                fe_seen.insert(&p.name, p);
            }
            if has_backend(p) {
                be_seen.insert(&p.name, p);
            }
        }
    }

    for p in proxies.iter().filter(|p| p.draft.mode == Mode::Tcp) {
        tcp_mode_rules(p, diags);
    }

    let mut backends = Vec::new();
    let mut backend_ids: HashMap<String, (BackendId, usize)> = HashMap::new();
    for (i, p) in proxies.iter().enumerate() {
        if !keep[i] || !has_backend(p) {
            continue;
        }
        let d = &p.draft;
        passive_health(d, diags);
        if d.hash_balance_factor > 0 && !bounded_loads_apply(&d.balance, d.hash_type.consistent) {
            diags.push(
                Diagnostic::warning(
                    p.location.clone(),
                    format!(
                        "backend '{}': `hash-balance-factor` has no effect with this `balance`",
                        p.name
                    ),
                )
                .with_hint("it bounds consistent hashing: `hash-type consistent` with a hash-based `balance` (source, uri, url_param, hdr), or `balance random`"),
            );
        }
        backend_ids.insert(p.name.clone(), (BackendId(backends.len()), i));
        backends.push(Backend {
            name: p.name.clone(),
            location: p.location.clone(),
            mode: d.mode,
            balance: d.balance.clone(),
            servers: assign_server_ids(&d.servers, diags),
            hash_type: d.hash_type,
            hash_balance_factor: d.hash_balance_factor,
            tcp_check: super::tcp_check::resolve(d, &p.name, diags),
            allbackups: d.allbackups,
            httpchk: d.httpchk.clone().map(|mut c| {
                c.expect = d.http_expect.clone();
                if let Some(send) = &d.http_send {
                    c.method = send.method.clone().unwrap_or(c.method);
                    c.uri = send.uri.clone().unwrap_or(c.uri);
                    c.version = send.version.clone().unwrap_or(c.version);
                    c.headers.extend(send.headers.iter().cloned());
                    c.body = send.body.clone().unwrap_or(c.body);
                }
                c
            }),
            timeouts: d.backend_timeouts.clone(),
            retries: d.retries,
            redispatch: d.redispatch,
            http_conn_mode: d.http_conn_mode,
            http: backend_http(p, &userlists, diags),
            stats: d.stats.clone(),
            websocket: d.websocket.clone(),
            sticky: Default::default(),
        });
    }
    // After every backend is known: `stick ... table <backend>` may name
    // a later one.
    let mut order: Vec<(usize, usize)> = backend_ids.values().map(|(id, i)| (id.0, *i)).collect();
    order.sort_unstable();
    for (id, i) in order {
        backends[id].sticky = super::persist::resolve(&proxies[i], &proxies, &backend_ids, diags);
        super::persist::dynamic_cookies(&proxies[i], &mut backends[id].servers, diags);
        super::userlist::bind_acls(
            &mut backends[id].sticky.acls,
            &userlists,
            &proxies[i],
            diags,
        );
    }

    let mut frontends = Vec::new();
    for (i, p) in proxies.iter().enumerate() {
        if !keep[i] || !has_frontend(p) {
            continue;
        }
        let d = &p.draft;
        let default_backend = match (&d.default_backend, p.kind) {
            (Some((name, loc)), _) => match backend_ids.get(name) {
                Some((id, decl)) => {
                    check_modes(p, &proxies[*decl], loc, diags);
                    Some(*id)
                }
                None => {
                    let mut e = Diagnostic::error(
                        loc.clone(),
                        format!(
                            "{} '{}' uses backend '{name}', which does not exist",
                            p.kind.name(),
                            p.name
                        ),
                    );
                    let names = backend_ids.keys().map(String::as_str);
                    e = match keywords::closest(name, names) {
                        Some(s) => e.with_hint(format!("did you mean '{s}'?")),
                        None => e.with_hint(format!(
                            "declare it with `backend {name}` and its `server` lines"
                        )),
                    };
                    diags.push(e);
                    None
                }
            },
            (None, SectionKind::Listen) => backend_ids.get(&p.name).map(|(id, _)| *id),
            (None, _) => {
                if d.bind_lines > 0 {
                    diags.push(Diagnostic::warning(
                        p.location.clone(),
                        format!("frontend '{}' has no `default_backend`: every request gets 503 Service Unavailable", p.name),
                    ).with_hint("add `default_backend <backend>`"));
                }
                None
            }
        };
        if d.bind_lines == 0 {
            diags.push(
                Diagnostic::warning(
                    p.location.clone(),
                    format!(
                        "{} '{}' has no `bind` line, so it accepts no connections",
                        p.kind.name(),
                        p.name
                    ),
                )
                .with_hint("add e.g. `bind *:80`, or make it a `backend` if that was the intent"),
            );
        }
        if d.frontend_timeouts.client.is_none() {
            diags.push(
                Diagnostic::warning(
                    p.location.clone(),
                    format!(
                        "{} '{}' has no `timeout client`: idle or vanished clients keep their connections open forever",
                        p.kind.name(),
                        p.name
                    ),
                )
                .with_hint("add `timeout client 30s` here or to a `defaults` section (HAProxy warns about this too)"),
            );
        }
        let (mut acls, use_backends) = resolve_rules(p, &proxies, &backend_ids, diags);
        let prometheus = d.prometheus.as_ref().and_then(|rule| {
            let condition = match &rule.condition {
                None => None,
                Some(c) => Some(resolve_condition(p, rule, c, &mut acls, diags)?),
            };
            Some(ServiceRule {
                location: rule.location.clone(),
                condition,
            })
        });
        let stats_admin = d.stats_admin.as_ref().and_then(|rule| {
            let condition = match &rule.condition {
                None => None,
                Some(c) => Some(resolve_condition(p, rule, c, &mut acls, diags)?),
            };
            Some(ServiceRule {
                location: rule.location.clone(),
                condition,
            })
        });
        let tcp_connection = super::tcp_rules::resolve(p, &d.tcp_connection, &mut acls, diags);
        let tcp_content = super::tcp_rules::resolve(p, &d.tcp_content, &mut acls, diags);
        let http_request = request_rules(p, &d.http_request, &mut acls, diags);
        let redirects = request_rules(p, &redirect_rules(p), &mut acls, diags);
        let http_response = response_rules(p, &d.http_response, &mut acls, diags);
        let http_after_response = after_rules(p, &d.http_after_response, &mut acls, diags);
        let monitor_fail = d
            .monitor_fail
            .iter()
            .filter_map(|rule| {
                let c = rule.condition.as_ref()?;
                resolve_condition(p, rule, c, &mut acls, diags)
            })
            .collect();
        let mut log_targets = d.logs.clone();
        if d.log_global {
            log_targets.extend(global.logs.iter().cloned());
        }
        if d.log_style != LogStyle::None && log_targets.is_empty() {
            diags.push(
                Diagnostic::warning(
                    p.location.clone(),
                    format!(
                        "{} '{}' asks for access logs (option httplog/tcplog) but has no `log` line, so nothing is logged",
                        p.kind.name(),
                        p.name
                    ),
                )
                .with_hint("add `log global` here (with a `log` line in `global`) or e.g. `log stdout format raw local0`"),
            );
        }
        if d.mode == Mode::Tcp {
            http_fetch_warnings(p, &acls, &use_backends, diags);
        }
        super::userlist::bind_acls(&mut acls, &userlists, p, diags);
        let inspection = super::tcp_rules::inspection(p, tcp_content, &acls, &use_backends, diags);
        frontends.push(Frontend {
            acls,
            use_backends,
            stats: d.stats.clone(),
            prometheus,
            stats_admin,
            http_request,
            tcp_connection,
            inspection,
            // A `listen` section's table is its backend half's.
            table: (p.kind == SectionKind::Frontend)
                .then(|| d.sticky.table.clone())
                .flatten(),
            redirects,
            http_response,
            http_after_response,
            errorfiles: d.errorfiles.clone(),
            monitor_uri: d.monitor_uri.clone(),
            monitor_fail,
            log: FrontendLog {
                targets: log_targets,
                style: d.log_style,
                format: d.log_format.clone(),
                dontlognull: d.dontlognull,
            },
            name: p.name.clone(),
            location: p.location.clone(),
            mode: d.mode,
            binds: d.binds.clone(),
            default_backend,
            maxconn: d.maxconn,
            timeouts: d.frontend_timeouts.clone(),
            http_conn_mode: d.http_conn_mode,
            forwardfor: d.forwardfor.clone(),
            websocket: d.websocket.clone(),
        });
    }

    for (id, b) in backends.iter().enumerate() {
        let mut missing = Vec::new();
        if b.timeouts.connect.is_none() {
            missing.push("`timeout connect`");
        }
        if b.timeouts.server.is_none() {
            missing.push("`timeout server`");
        }
        if !missing.is_empty() {
            let consequence = match (b.timeouts.connect.is_none(), b.timeouts.server.is_none()) {
                (true, true) => "a server that does not answer holds the connection forever",
                (true, false) => "a connection attempt to an unreachable server waits forever",
                _ => "an idle or silent server keeps its connection open forever",
            };
            diags.push(
                Diagnostic::warning(
                    b.location.clone(),
                    format!("{} '{}' has no {}: {consequence}", kind_of(&proxies, &b.name), b.name, missing.join(" or ")),
                )
                .with_hint("set e.g. `timeout connect 5s` and `timeout server 30s` here or in a `defaults` section (HAProxy warns about this too)"),
            );
        }
        if b.mode == Mode::Http && b.timeouts.tunnel.is_none() {
            let users: Vec<&Frontend> = frontends
                .iter()
                .filter(|f| f.default_backend == Some(BackendId(id)))
                .collect();
            diags.push(tunnel_warning(b, &users, kind_of(&proxies, &b.name)));
        }
    }

    let config = Config {
        global: Global {
            maxconn: global.maxconn,
            tune_bufsize: global.tune_bufsize,
            stats_sockets: global.stats_sockets.clone(),
            stats_timeout: global.stats_timeout,
            logs: global.logs.clone(),
            hard_stop_after: global.hard_stop_after,
            nbthread: global.nbthread,
            process: global.process.clone(),
        },
        frontends,
        backends,
    };
    super::track::check_tables(&config, diags);
    config
}

fn has_frontend(p: &ProxyDecl) -> bool {
    matches!(p.kind, SectionKind::Frontend | SectionKind::Listen)
}

fn has_backend(p: &ProxyDecl) -> bool {
    matches!(p.kind, SectionKind::Backend | SectionKind::Listen)
}

/// "backend" or "listen", for messages about the server half.
fn kind_of(proxies: &[ProxyDecl], name: &str) -> &'static str {
    proxies
        .iter()
        .find(|p| p.name == name && has_backend(p))
        .map(|p| p.kind.name())
        .unwrap_or("backend")
}

/// "line 10" when in the same file as `from`, else "file:10".
fn short_location(loc: &Location, from: &Location) -> String {
    if loc.file == from.file {
        format!("line {}", loc.line)
    } else {
        format!("{}:{}", loc.file, loc.line)
    }
}

/// HAProxy refuses an HTTP frontend with a TCP backend. It would upgrade a
/// TCP frontend to HTTP for an HTTP backend; wsgate does not do that yet,
/// so both directions are errors, located at the reference.
/// A mode tcp frontend that routes to a mode http backend: HAProxy (2.0
/// and later) upgrades the connection to HTTP when it reaches the backend,
/// so the stream is HTTP from its first byte. wsgate reads such a frontend
/// as mode http, which is the same thing, and says so.
fn upgrade_tcp_frontends(proxies: &mut [ProxyDecl], diags: &mut Vec<Diagnostic>) {
    let http_backends: Vec<String> = proxies
        .iter()
        .filter(|p| has_backend(p) && p.draft.mode == Mode::Http)
        .map(|p| p.name.clone())
        .collect();
    for p in proxies.iter_mut() {
        if p.kind != SectionKind::Frontend || p.draft.mode != Mode::Tcp {
            continue;
        }
        let d = &p.draft;
        let targets = d
            .default_backend
            .iter()
            .map(|(name, loc)| (name, loc))
            .chain(d.use_backends.iter().map(|u| (&u.backend, &u.location)));
        let Some((name, loc)) = targets
            .into_iter()
            .find(|(name, _)| http_backends.contains(name))
            .map(|(n, l)| (n.clone(), l.clone()))
        else {
            continue;
        };
        diags.push(
            Diagnostic::warning(
                loc,
                format!(
                    "frontend '{}' is mode tcp and uses mode http backend '{name}': read as mode http, as HAProxy upgrades such connections to HTTP",
                    p.name
                ),
            )
            .with_hint("write `mode http` in this frontend to say so"),
        );
        p.draft.mode = Mode::Http;
    }
}

/// In mode tcp wsgate connects at once and reads no HTTP, so a rule that
/// needs an HTTP fetch never holds. HAProxy may match such a fetch when the
/// request is already in its buffer (`tcp-request inspect-delay`); say so
/// once per rule rather than route differently in silence.
fn http_fetch_warnings(
    p: &ProxyDecl,
    acls: &[Acl],
    rules: &[UseBackend],
    diags: &mut Vec<Diagnostic>,
) {
    let is_http = |f: &AclFetch| {
        matches!(
            f,
            AclFetch::Path
                | AclFetch::Url
                | AclFetch::Hdr(_)
                | AclFetch::HdrCnt(_)
                | AclFetch::UrlParam(_)
                | AclFetch::Method
                | AclFetch::HttpAuth(_)
                | AclFetch::HttpAuthGroup(_)
        )
    };
    for rule in rules {
        let Some(c) = &rule.condition else { continue };
        let needs_http = c.groups.iter().flatten().any(|t| {
            acls.get(t.acl)
                .is_some_and(|a| a.terms.iter().any(|term| is_http(&term.fetch)))
        });
        if needs_http {
            diags.push(
                Diagnostic::warning(
                    rule.location.clone(),
                    format!(
                        "{} '{}' is mode tcp: this rule's HTTP fetches (path, url, url_param, hdr, method, http_auth) find nothing, so they never match",
                        p.kind.name(),
                        p.name
                    ),
                )
                .with_hint("route HTTP with `mode http`; in mode tcp use `src`, `dst_port`, `nbsrv` or `ssl_fc` (HAProxy can read HTTP here with `tcp-request inspect-delay`; wsgate inspects only TLS ClientHellos: `req.ssl_sni`)"),
            );
        }
    }
}

fn check_modes(fe: &ProxyDecl, be: &ProxyDecl, at: &Location, diags: &mut Vec<Diagnostic>) {
    let (fm, bm) = (fe.draft.mode, be.draft.mode);
    if fm == bm || fe.kind == SectionKind::Listen && fe.name == be.name {
        return;
    }
    let message = format!(
        "{} '{}' is mode {fm} but its backend '{}' is mode {bm}",
        fe.kind.name(),
        fe.name,
        be.name
    );
    let hint = match (fm, &be.draft.mode_location) {
        (Mode::Http, None) => format!(
            "add `mode http` to {} '{}' ({}) or to a `defaults` section; a section without `mode` is tcp, as in HAProxy",
            be.kind.name(),
            be.name,
            short_location(&be.location, at)
        ),
        (Mode::Http, Some(set)) => format!(
            "change `mode tcp` ({}) to `mode http` for {} '{}'",
            short_location(set, at),
            be.kind.name(),
            be.name
        ),
        (Mode::Tcp, _) => format!(
            "add `mode http` to {} '{}' ({}) or to a `defaults` section (HAProxy would upgrade the connection to HTTP here; wsgate does not yet)",
            fe.kind.name(),
            fe.name,
            short_location(&fe.location, at)
        ),
    };
    diags.push(Diagnostic::error(at.clone(), message).with_hint(hint));
}

/// Without `timeout tunnel`, HAProxy keeps applying `timeout client` and
/// `timeout server` to an upgraded connection: a quiet WebSocket dies after
/// the shorter of the two. Say so in one line.
fn tunnel_warning(b: &Backend, users: &[&Frontend], kind: &str) -> Diagnostic {
    let client = users
        .iter()
        .filter_map(|f| f.timeouts.client.map(|t| (t, f.name.as_str())))
        .min_by_key(|(t, _)| *t);
    let server = b.timeouts.server;
    let mut parts = Vec::new();
    if let Some((t, name)) = client {
        parts.push(format!(
            "`timeout client` {} of frontend '{name}'",
            human(t)
        ));
    }
    if let Some(t) = server {
        parts.push(format!("`timeout server` {}", human(t)));
    }
    let shortest = [client.map(|(t, _)| t), server].into_iter().flatten().min();
    let message = match shortest {
        Some(t) => {
            let why = if parts.len() > 1 {
                format!("{}, whichever is shorter", parts.join(" or "))
            } else {
                parts.join("")
            };
            format!(
                "{kind} '{}' has no `timeout tunnel`, so idle WebSockets are closed after {} of silence ({why})",
                b.name,
                human(t),
            )
        }
        None => format!(
            "{kind} '{}' has no `timeout tunnel` (nor client/server timeouts), so idle WebSockets are never closed",
            b.name
        ),
    };
    Diagnostic::warning(b.location.clone(), message)
        .with_hint("set `timeout tunnel 1h` (or what suits you) in this backend or in `defaults` for long-lived WebSockets")
}

/// `10s`, `1m30s`, `250ms`, `1h`: the largest exact units.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}us", d.as_micros());
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 && secs >= 600 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Server ids as HAProxy assigns them: explicit `id`s are kept (and must
/// be unique in the backend); every other server gets the lowest free id
/// at or above its position in the list (1-based). Consistent hashing
/// places servers on its ring by id, so this must match HAProxy exactly.
fn assign_server_ids(servers: &[Server], diags: &mut Vec<Diagnostic>) -> Vec<Server> {
    let mut taken: HashMap<u32, &Server> = HashMap::new();
    for s in servers.iter().filter(|s| s.id != 0) {
        if let Some(prev) = taken.get(&s.id) {
            diags.push(
                Diagnostic::error(
                    s.location.clone(),
                    format!(
                        "server '{}' has id {}, already used by server '{}' (line {})",
                        s.name, s.id, prev.name, prev.location.line
                    ),
                )
                .with_hint("server ids must be unique within a backend"),
            );
        } else {
            taken.insert(s.id, s);
        }
    }
    // HAProxy's walk: the candidate id advances past every server, with or
    // without an explicit id (`s1 s2 s3(id 7) s4` gives s4 the id 4).
    let mut used: std::collections::HashSet<u32> = taken.keys().copied().collect();
    let mut next = 1u32;
    servers
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.id == 0 {
                while used.contains(&next) {
                    next += 1;
                }
                s.id = next;
                used.insert(next);
            }
            next += 1;
            s
        })
        .collect()
}

/// The HTTP side of a backend: its own rules and ACLs for a `backend`
/// section; for a `listen` section only the pages and `forwardfor` (its
/// rules run once, as the frontend's).
fn backend_http(
    p: &ProxyDecl,
    userlists: &HashMap<String, std::sync::Arc<super::userlist::Userlist>>,
    diags: &mut Vec<Diagnostic>,
) -> BackendHttp {
    let d = &p.draft;
    let mut http = BackendHttp {
        errorfiles: d.errorfiles.clone(),
        forwardfor: d.forwardfor.clone(),
        ..BackendHttp::default()
    };
    if p.kind == SectionKind::Backend {
        let mut acls = named_acls(p);
        http.http_request = request_rules(p, &d.http_request, &mut acls, diags);
        http.redirects = request_rules(p, &redirect_rules(p), &mut acls, diags);
        http.http_response = response_rules(p, &d.http_response, &mut acls, diags);
        http.http_after_response = after_rules(p, &d.http_after_response, &mut acls, diags);
        super::userlist::bind_acls(&mut acls, userlists, p, diags);
        http.acls = acls;
    }
    http
}

/// HTTP rules in a `mode tcp` proxy never run: a warning at each, as
/// HAProxy gives.
fn tcp_mode_rules(p: &ProxyDecl, diags: &mut Vec<Diagnostic>) {
    let d = &p.draft;
    let rules = d
        .http_request
        .iter()
        .map(|(_, r)| ("http-request", r))
        .chain(d.http_response.iter().map(|(_, r)| ("http-response", r)))
        .chain(
            d.http_after_response
                .iter()
                .map(|(_, r)| ("http-after-response", r)),
        )
        .chain(d.redirects.iter().map(|(_, r)| ("redirect", r)));
    for (keyword, rule) in rules {
        diags.push(
            Diagnostic::warning(
                rule.location.clone(),
                format!(
                    "'{keyword}' is ignored: {} '{}' is mode tcp",
                    p.kind.name(),
                    p.name
                ),
            )
            .with_hint("HTTP rules need `mode http`"),
        );
    }
}

/// A proxy's `redirect` lines as request rules.
fn redirect_rules(p: &ProxyDecl) -> Vec<(HttpRequestAction, UseBackendDraft)> {
    p.draft
        .redirects
        .iter()
        .map(|(r, rule)| (HttpRequestAction::Redirect(r.clone()), rule.clone()))
        .collect()
}

/// Rules (`http-request`, `redirect`, `http-response`,
/// `http-after-response`) with their conditions resolved; a rule with an
/// unknown ACL is reported and left out. `response` names the keyword of a
/// rule that runs on responses, whose request-fetch conditions are warned
/// about (see [`request_fetch_warning`]).
fn resolved_rules<A, R>(
    p: &ProxyDecl,
    drafts: &[(A, UseBackendDraft)],
    acls: &mut Vec<Acl>,
    diags: &mut Vec<Diagnostic>,
    response: Option<&str>,
    make: impl Fn(Location, &A, Option<Condition>) -> R,
) -> Vec<R> {
    drafts
        .iter()
        .filter_map(|(action, rule)| {
            let condition = match &rule.condition {
                None => None,
                Some(c) => Some(resolve_condition(p, rule, c, acls, diags)?),
            };
            if let Some(keyword) = response {
                request_fetch_warning(keyword, condition.as_ref(), acls, rule, diags);
            }
            Some(make(rule.location.clone(), action, condition))
        })
        .collect()
}

/// `http-request` rules (or `redirect` lines) with their conditions
/// resolved.
fn request_rules(
    p: &ProxyDecl,
    drafts: &[(HttpRequestAction, UseBackendDraft)],
    acls: &mut Vec<Acl>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<HttpRequestRule> {
    resolved_rules(
        p,
        drafts,
        acls,
        diags,
        None,
        |location, action, condition| {
            let action = match action {
                // `http-request auth` without a realm: the proxy's name.
                HttpRequestAction::Auth { realm: None } => HttpRequestAction::Auth {
                    realm: Some(p.name.clone()),
                },
                other => other.clone(),
            };
            HttpRequestRule {
                location,
                action,
                condition,
            }
        },
    )
}

/// `http-response` rules with their conditions resolved.
fn response_rules(
    p: &ProxyDecl,
    drafts: &[(HttpResponseAction, UseBackendDraft)],
    acls: &mut Vec<Acl>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<HttpResponseRule> {
    let make = |location, action: &HttpResponseAction, condition| HttpResponseRule {
        location,
        action: action.clone(),
        condition,
    };
    resolved_rules(p, drafts, acls, diags, Some("http-response"), make)
}

/// A response rule's condition on the request's path, method or headers
/// is evaluated on the request, where HAProxy would never match (path,
/// method) or read the response's headers (`hdr`): a warning says so.
fn request_fetch_warning(
    keyword: &str,
    condition: Option<&Condition>,
    acls: &[Acl],
    rule: &UseBackendDraft,
    diags: &mut Vec<Diagnostic>,
) {
    let request_fetch = condition
        .iter()
        .flat_map(|c| c.groups.iter().flatten())
        .filter_map(|t| acls.get(t.acl))
        .flat_map(|a| a.terms.iter())
        .find_map(|t| match &t.fetch {
            AclFetch::Path => Some("path".to_owned()),
            AclFetch::Method => Some("method".to_owned()),
            AclFetch::Hdr(h) => Some(format!("hdr({h})")),
            _ => None,
        });
    if let Some(fetch) = request_fetch {
        diags.push(Diagnostic::warning(
            rule.location.clone(),
            format!("this `{keyword}` condition reads '{fetch}' from the request; HAProxy 2.6 would not (it never matches request fetches there, and `hdr` reads the response)"),
        ).with_hint("wsgate evaluates conditions of response rules on the request, so the rule applies to responses to matching requests"));
    }
}

/// `http-after-response` rules with their conditions resolved (warned
/// about as `http-response` ones).
fn after_rules(
    p: &ProxyDecl,
    drafts: &[(HttpAfterAction, UseBackendDraft)],
    acls: &mut Vec<Acl>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<HttpAfterRule> {
    let make = |location, action: &HttpAfterAction, condition| HttpAfterRule {
        location,
        action: action.clone(),
        condition,
    };
    resolved_rules(p, drafts, acls, diags, Some("http-after-response"), make)
}

/// A proxy's named ACLs: lines of one name OR-ed, in order of first
/// appearance.
pub(super) fn named_acls(p: &ProxyDecl) -> Vec<Acl> {
    let mut acls: Vec<Acl> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (name, term, _) in &p.draft.acls {
        match by_name.get(name.as_str()) {
            Some(&i) => acls[i].terms.push(term.clone()),
            None => {
                by_name.insert(name, acls.len());
                acls.push(Acl {
                    name: name.clone(),
                    terms: vec![term.clone()],
                });
            }
        }
    }
    acls
}

/// The frontend's ACLs and its `use_backend` rules with backend and ACL
/// names resolved; unknown names are errors at the word that names them.
fn resolve_rules(
    p: &ProxyDecl,
    proxies: &[ProxyDecl],
    backend_ids: &HashMap<String, (BackendId, usize)>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Acl>, Vec<UseBackend>) {
    let mut acls = named_acls(p);
    // `nbsrv(<backend>)` names a backend, checked as HAProxy does.
    for (acl, term, loc) in &p.draft.acls {
        if matches!(&term.fetch, AclFetch::Hdr(name) if name.is_empty()) {
            diags.push(
                Diagnostic::warning(
                    loc.clone(),
                    format!("ACL '{acl}' reads a header without naming it: it never matches (HAProxy 2.6 accepts this too, and never matches either)"),
                )
                .with_hint("name the header in parentheses, e.g. `hdr_beg(host) -i ws.`"),
            );
        }
        if let AclFetch::Nbsrv(name) = &term.fetch {
            if !backend_ids.contains_key(name) {
                diags.push(Diagnostic::error(
                    loc.clone(),
                    format!("nbsrv({name}): no backend named '{name}'"),
                ));
            }
        }
    }
    let mut rules = Vec::new();
    for ub in &p.draft.use_backends {
        let backend = match backend_ids.get(&ub.backend) {
            Some((id, decl)) => {
                check_modes(p, &proxies[*decl], &ub.location, diags);
                Some(*id)
            }
            None => {
                let mut e = Diagnostic::error(
                    ub.location.clone(),
                    format!(
                        "{} '{}' routes to backend '{}' (use_backend), which does not exist",
                        p.kind.name(),
                        p.name,
                        ub.backend
                    ),
                );
                e = match keywords::closest(&ub.backend, backend_ids.keys().map(String::as_str)) {
                    Some(s) => e.with_hint(format!("did you mean '{s}'?")),
                    None => e.with_hint(format!(
                        "declare it with `backend {}` and its `server` lines",
                        ub.backend
                    )),
                };
                diags.push(e);
                None
            }
        };
        let mut ok = true;
        let condition = match &ub.condition {
            None => None,
            Some(c) => {
                let resolved = resolve_condition(p, ub, c, &mut acls, diags);
                ok = resolved.is_some();
                resolved
            }
        };
        if let (Some(backend), true) = (backend, ok) {
            rules.push(UseBackend {
                location: ub.location.clone(),
                backend,
                condition,
            });
        }
    }
    (acls, rules)
}

/// Resolves a rule's condition against the proxy's ACLs (named ones by
/// name; anonymous `{ ... }` ones are appended to `acls`). `None` when a
/// name is unknown (reported).
pub(super) fn resolve_condition(
    p: &ProxyDecl,
    rule: &UseBackendDraft,
    c: &ConditionDraft,
    acls: &mut Vec<Acl>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Condition> {
    let by_name: HashMap<String, usize> = acls
        .iter()
        .enumerate()
        .filter(|(_, a)| a.name != "{ ... }")
        .map(|(i, a)| (a.name.clone(), i))
        .collect();
    let mut ok = true;
    let mut groups = Vec::with_capacity(c.groups.len());
    for g in &c.groups {
        let mut terms = Vec::with_capacity(g.len());
        for t in g {
            match t {
                TermDraft::Named { name, negate, at } => match by_name.get(name.as_str()) {
                    Some(&acl) => terms.push(CondTerm {
                        acl,
                        negate: *negate,
                    }),
                    None if p.draft.broken_acls.contains(name) => ok = false,
                    None if super::acl::predefined(name).is_some() => {
                        acls.extend(super::acl::predefined(name).map(|term| Acl {
                            name: name.clone(),
                            terms: vec![term],
                        }));
                        terms.push(CondTerm {
                            acl: acls.len() - 1,
                            negate: *negate,
                        });
                    }
                    None => {
                        ok = false;
                        let loc = rule
                            .word_locations
                            .get(*at)
                            .cloned()
                            .unwrap_or_else(|| rule.location.clone());
                        let mut e = Diagnostic::error(
                            loc,
                            format!("unknown ACL '{name}' in {} '{}'", p.kind.name(), p.name),
                        );
                        e = match keywords::closest(name, by_name.keys().map(String::as_str)) {
                            Some(s) => e.with_hint(format!("did you mean '{s}'?")),
                            None => e.with_hint(format!(
                                "declare it first, e.g. `acl {name} path_beg /`"
                            )),
                        };
                        diags.push(e);
                    }
                },
                TermDraft::Defaults {
                    terms: lines,
                    negate,
                } => {
                    // Named `{ ... }` so that no later rule finds it by name.
                    acls.push(Acl {
                        name: "{ ... }".into(),
                        terms: lines.clone(),
                    });
                    terms.push(CondTerm {
                        acl: acls.len() - 1,
                        negate: *negate,
                    });
                }
                TermDraft::Anonymous { acl, negate } => {
                    acls.push(Acl {
                        name: "{ ... }".into(),
                        terms: vec![acl.clone()],
                    });
                    terms.push(CondTerm {
                        acl: acls.len() - 1,
                        negate: *negate,
                    });
                }
            }
        }
        groups.push(terms);
    }
    ok.then_some(Condition {
        unless: c.unless,
        groups,
    })
}

/// Whether `hash-balance-factor` changes anything: it bounds the
/// consistent-hash ring, which `balance random` and consistent hashing use.
fn bounded_loads_apply(balance: &super::model::Balance, consistent: bool) -> bool {
    matches!(balance, super::model::Balance::Random { .. }) || (balance.is_hash() && consistent)
}

/// `observe` needs `check` (only checks bring a server back; HAProxy
/// ignores it too), and `observe layer7` reads HTTP responses, so it
/// needs `mode http`.
fn passive_health(d: &super::parser::ProxyDraft, diags: &mut Vec<Diagnostic>) {
    for s in &d.servers {
        let Some(mode) = s.passive.observe else {
            continue;
        };
        if mode == super::model::Observe::Layer7 && d.mode != Mode::Http {
            diags.push(
                Diagnostic::error(
                    s.location.clone(),
                    format!("server '{}': `observe layer7` needs `mode http` (it judges HTTP responses)", s.name),
                )
                .with_hint("use `observe layer4` in mode tcp: failed connections count"),
            );
        } else if s.check.is_none() {
            diags.push(
                Diagnostic::warning(
                    s.location.clone(),
                    format!("server '{}': `observe` is ignored without `check`", s.name),
                )
                .with_hint("add `check`: passive health marks the server down, and only health checks bring it back up"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(100)), "100s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
