//! Persistence settings: `cookie` (backend), `stick-table` and `stick`
//! rules, `option persist`, and their model.
//!
//! Stage: handlers called by the `parser` (keyword rows in `keywords`);
//! `check` resolves `table <name>` and the rules' conditions and fills
//! [`Persistence`] in the backend model. The run-time side is
//! `backend::persist` (cookies) and `backend::stick` (tables).
//!
//! HAProxy 2.6 semantics and messages (checked against Debian's 2.6.12):
//! the three cookie modes exclude each other, `rewrite` excludes
//! `indirect`, `preserve` needs `insert` or `indirect`; `maxidle` and
//! `maxlife` are in seconds unless suffixed; a table needs a type and a
//! size; `expire` is at most 2^31-1 ms. What wsgate does not implement is
//! refused with the reason: table replication (`peers`) and `binary`
//! keys. `store` is read by `track` (stick counters). `cookie ... dynamic`
//! values are HAProxy's `srv_set_dyncookie` (see [`dynamic_value`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::acl::ConditionDraft;
use super::diag::Diagnostic;
use super::lexer::Token;
use super::model::{Acl, BackendId, Condition, Location, Mode, Server};
use super::parser::{Cx, ProxyDecl, ProxyDraft, SectionKind, UseBackendDraft};
use super::units::{parse_size, parse_time};

/// HAProxy's largest timer: 2^31-1 ms (about 24.8 days).
const MAX_EXPIRE: Duration = Duration::from_millis(2_147_483_647);

/// Everything about persistence in one backend (the model's part).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persistence {
    /// `cookie <name> ...`; `None` when the backend has no cookie
    /// persistence (or is in `mode tcp`, where it is ignored).
    pub cookie: Option<Cookie>,
    /// `option persist`: a cookie or table entry naming a DOWN server
    /// still sends the request there (and `option redispatch` then decides).
    pub persist: bool,
    /// `stick-table ...` declared in this backend.
    pub table: Option<StickTable>,
    /// `stick on|match|store-request` rules, in order.
    pub rules: Vec<StickRule>,
    /// The backend's ACLs, referenced by the rules' conditions.
    pub acls: Vec<Acl>,
    /// `tcp-request inspect-delay`: how long a mode tcp connection waits
    /// for the first bytes a `req.payload` stick rule reads (`None`: only
    /// those already received).
    pub inspect_delay: Option<Duration>,
}

/// `cookie <name> [rewrite|insert|prefix] [indirect] [nocache] [postonly]
/// [preserve] [httponly] [secure] [domain <d>]* [maxidle <t>] [maxlife <t>]
/// [attr <a>]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub mode: CookieMode,
    /// `indirect`: in insert mode the cookie is removed from requests
    /// before they reach the server (and a server's own one from
    /// responses when the client came with a valid cookie).
    pub indirect: bool,
    /// `nocache`: add `Cache-control: private` to cacheable responses that
    /// get a `Set-Cookie`.
    pub nocache: bool,
    /// `postonly`: insert only in responses to POST requests.
    pub postonly: bool,
    /// `preserve`: leave a cookie the server set itself alone (and insert
    /// none then).
    pub preserve: bool,
    pub httponly: bool,
    pub secure: bool,
    /// `domain` values, each emitted as `; domain=<d>`.
    pub domains: Vec<String>,
    /// `attr` values, each emitted as `; <attr>` (e.g. `SameSite=None`).
    pub attrs: Vec<String>,
    /// `maxidle` (seconds): a cookie whose last-seen date is older is
    /// ignored; inserted cookies carry the date (`<value>|<date>`).
    pub maxidle: Option<u32>,
    /// `maxlife` (seconds): a cookie first set longer ago is ignored.
    pub maxlife: Option<u32>,
    /// `dynamic`: servers without a `cookie` value get one derived from
    /// `dynamic-cookie-key`, their address and port (filled in by
    /// [`dynamic_cookies`] at check time).
    pub dynamic: bool,
}

/// How the persistence cookie is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieMode {
    /// No mode given: the server sets the cookie itself, with a server's
    /// `cookie` value; the proxy only reads it.
    Passive,
    /// The server sets the cookie; its value is replaced by the server's
    /// `cookie` value.
    Rewrite,
    /// The proxy sets its own cookie (`Set-Cookie: <name>=<value>; path=/`).
    #[default]
    Insert,
    /// The server's own cookie of that name gets `<value>~` in front; the
    /// prefix is stripped from requests.
    Prefix,
}

/// `stick-table type <type> [len <n>] size <n> [expire <t>] [nopurge]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    pub key: KeyType,
    /// Maximum entries.
    pub size: usize,
    /// Entries not matched or stored for this long are dropped; `None`:
    /// never (only the size limit purges).
    pub expire: Option<Duration>,
    /// `nopurge`: when full, new keys are not stored (instead of the
    /// least recently used entry being dropped).
    pub nopurge: bool,
    /// `store <data>,...`: the counters each entry keeps (config/track.rs).
    pub store: Vec<super::track::DataType>,
    pub location: Location,
}

/// A table's key type; samples are converted to it as HAProxy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// IPv4 addresses (IPv4-mapped IPv6 ones converted).
    Ip,
    /// IPv6 addresses (IPv4 ones mapped into `::ffff:0:0/96`).
    Ipv6,
    /// 64-bit signed integers (the leading digits of a string).
    Integer,
    /// Strings, truncated to `len` bytes (default 32).
    String { len: usize },
}

/// What a stick rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickAction {
    /// `stick on`: match, then store.
    On,
    /// `stick match`: only look the key up.
    Match,
    /// `stick store-request`: only record the server the request went to.
    StoreRequest,
}

/// The sample a stick rule takes its key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickFetch {
    /// `src`: the client address.
    Src,
    /// `req.hdr(<name>[,<occ>])` / `hdr(...)`: a comma-separated header
    /// value; the last one by default, `occ` from the first (1..) or from
    /// the last (-1..).
    Hdr { name: String, occ: i32 },
    /// `req.cook(<name>)` / `cook(<name>)`: a request cookie's value (the
    /// last occurrence, as HAProxy outside ACLs).
    Cook(String),
    /// `url_param(<name>)` / `urlp(<name>)`: a query-string parameter.
    UrlParam(String),
    /// `req.payload(<offset>,<length>)` (mode tcp): the client's first
    /// bytes (`length` 0: all those buffered), optionally through
    /// `mqtt_field_value(connect,client_identifier)`: the MQTT client id.
    Payload {
        offset: usize,
        len: usize,
        mqtt_client_id: bool,
    },
}

/// One `stick ...` rule, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StickRule {
    pub action: StickAction,
    pub fetch: StickFetch,
    /// The backend whose table this rule uses (its own by default).
    pub table: usize,
    pub condition: Option<Condition>,
    pub location: Location,
}

/// Parser-stage persistence settings of one section.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub cookie: Option<(Cookie, Location)>,
    /// `dynamic-cookie-key <key>` (inherited from `defaults`).
    pub dynamic_key: Option<String>,
    pub persist: bool,
    pub table: Option<StickTable>,
    pub rules: Vec<RuleDraft>,
}

/// A `stick` rule before `table` and the condition are resolved.
#[derive(Debug, Clone)]
pub struct RuleDraft {
    pub action: StickAction,
    pub fetch: StickFetch,
    pub table: Option<(String, Location)>,
    /// The condition, in the shape of a `use_backend` rule.
    pub rule: Option<UseBackendDraft>,
    pub location: Location,
}

impl RuleDraft {
    pub fn condition(&self) -> Option<&ConditionDraft> {
        self.rule.as_ref().and_then(|r| r.condition.as_ref())
    }
}

const COOKIE_USAGE: &str = "cookie <name> [rewrite|insert|prefix] [indirect] [nocache] [postonly] [preserve] [httponly] [secure] [domain <domain>]* [maxidle <time>] [maxlife <time>] [attr <value>]* [dynamic]";

/// `cookie <name> [options]` (backend side).
pub fn cookie(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let Some(name) = args.first() else {
        let kw = cx.kw;
        cx.error(kw, "'cookie' expects <cookie_name> as argument")
            .hint = Some(format!("usage: {COOKIE_USAGE}"));
        return;
    };
    let mut c = Cookie {
        name: name.text.clone(),
        mode: CookieMode::Passive,
        indirect: false,
        nocache: false,
        postonly: false,
        preserve: false,
        httponly: false,
        secure: false,
        domains: Vec::new(),
        attrs: Vec::new(),
        maxidle: None,
        maxlife: None,
        dynamic: false,
    };
    let mut mode: Option<(CookieMode, &Token)> = None;
    let mut i = 1;
    while let Some(t) = args.get(i) {
        let value = args.get(i + 1);
        match t.text.as_str() {
            "rewrite" | "insert" | "prefix" => {
                let m = match t.text.as_str() {
                    "rewrite" => CookieMode::Rewrite,
                    "insert" => CookieMode::Insert,
                    _ => CookieMode::Prefix,
                };
                if mode.is_some_and(|(prev, _)| prev != m) {
                    cx.error(t, "cookie 'rewrite', 'insert' and 'prefix' modes are incompatible")
                        .hint = Some("keep one mode: `insert` (the proxy sets the cookie), `prefix` or `rewrite` (the server's own cookie carries the server)".into());
                    return;
                }
                mode = Some((m, t));
            }
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "postonly" => c.postonly = true,
            "preserve" => c.preserve = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "domain" | "attr" => {
                let Some(v) = value else {
                    let what = t.text.clone();
                    cx.error(t, format!("'{what}' expects a value"));
                    return;
                };
                if t.text == "domain" {
                    if !v.text.contains('.') {
                        // HAProxy 2.6 accepts it with this warning.
                        cx.warn(v, format!("domain '{}' contains no embedded dot, this configuration may not work properly (see RFC6265#5.2.3)", v.text));
                    }
                    c.domains.push(v.text.clone());
                } else {
                    if v.text.bytes().any(|b| b.is_ascii_control() || b == b';') {
                        cx.error(v, "character ';' (or a control character) is not permitted in attribute value");
                        return;
                    }
                    c.attrs.push(v.text.clone());
                }
                i += 1;
            }
            "maxidle" | "maxlife" => {
                let what = t.text.clone();
                let Some(v) = value else {
                    let arg = if what == "maxidle" {
                        "<idletime>"
                    } else {
                        "<lifetime>"
                    };
                    cx.error(t, format!("'{what}' expects {arg} in seconds as argument"));
                    return;
                };
                // Seconds unless suffixed, as HAProxy; 0 turns it off.
                let secs = match v.text.bytes().all(|b| b.is_ascii_digit()) {
                    true => parse_time(&format!("{}s", v.text)),
                    false => parse_time(&v.text),
                };
                let secs = match secs {
                    Ok(d) if d.as_secs() <= i32::MAX as u64 => d.as_secs() as u32,
                    Ok(_) => {
                        cx.error(
                            v,
                            format!("'{what}' is too large (at most 2147483647 seconds)"),
                        );
                        return;
                    }
                    Err(e) => {
                        cx.error(v, format!("invalid time for '{what}': {e}")).hint =
                            Some("seconds unless suffixed: s, m, h, d (e.g. `30m`)".into());
                        return;
                    }
                };
                let slot = if what == "maxidle" {
                    &mut c.maxidle
                } else {
                    &mut c.maxlife
                };
                *slot = (secs > 0).then_some(secs);
                i += 1;
            }
            "dynamic" => c.dynamic = true,
            other => {
                cx.error(t, format!("unknown cookie option '{other}'; 'cookie' supports 'rewrite', 'insert', 'prefix', 'indirect', 'nocache', 'postonly', 'preserve', 'httponly', 'secure', 'domain', 'maxidle', 'maxlife', 'dynamic' and 'attr'"))
                    .hint = Some(format!("usage: {COOKIE_USAGE}"));
                return;
            }
        }
        i += 1;
    }
    c.mode = mode.map_or(CookieMode::Passive, |(m, _)| m);
    if let (Some((CookieMode::Rewrite, at)), true) = (mode, c.indirect) {
        cx.error(at, "cookie 'rewrite' and 'indirect' modes are incompatible");
        return;
    }
    if c.preserve && c.mode != CookieMode::Insert && !c.indirect {
        let at = args.iter().find(|t| t.text == "preserve").unwrap_or(name);
        cx.error(
            at,
            "cookie 'preserve' requires at least 'insert' or 'indirect'",
        );
        return;
    }
    p.sticky.cookie = Some((c, cx.kw_loc()));
}

/// `dynamic-cookie-key <key>`: the secret mixed into `cookie ... dynamic`
/// values.
pub fn dynamic_cookie_key(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let kw = cx.kw;
    match cx.args {
        [key] => p.sticky.dynamic_key = Some(key.text.clone()),
        [] => {
            cx.error(kw, "'dynamic-cookie-key' expects <key> as argument");
        }
        [_, extra, ..] => {
            cx.error(
                extra,
                format!(
                    "unexpected '{}' after 'dynamic-cookie-key <key>'",
                    extra.text
                ),
            )
            .hint = Some("quote a key that contains spaces".into());
        }
    }
}

/// HAProxy's `srv_set_dyncookie`: XXH64 (seed 0) over the key, the
/// server's address bytes (4 for IPv4, 16 for IPv6, network order) and its
/// port as a 4-byte big-endian number, printed as 16 hex digits. Every
/// HAProxy (and wsgate) with the same key gives a server the same value,
/// so clients keep their server across load balancers.
pub fn dynamic_value(key: &str, addr: SocketAddr) -> String {
    let mut buf = key.as_bytes().to_vec();
    match addr {
        SocketAddr::V4(a) => buf.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => buf.extend_from_slice(&a.ip().octets()),
    }
    buf.extend_from_slice(&u32::from(addr.port()).to_be_bytes());
    format!("{:016x}", xxhash_rust::xxh64::xxh64(&buf, 0))
}

/// `cookie ... dynamic`: gives each server without its own `cookie` value
/// the [`dynamic_value`] of `dynamic-cookie-key`. Without a key HAProxy
/// gives them none (so clients' cookies are cleared); that is accepted
/// with a warning.
pub(super) fn dynamic_cookies(p: &ProxyDecl, servers: &mut [Server], diags: &mut Vec<Diagnostic>) {
    let Some((cookie, at)) = &p.draft.sticky.cookie else {
        return;
    };
    if !cookie.dynamic || p.draft.mode != Mode::Http {
        return;
    }
    let Some(key) = &p.draft.sticky.dynamic_key else {
        diags.push(
            Diagnostic::warning(
                at.clone(),
                format!(
                    "cookie 'dynamic' in {} '{}' without 'dynamic-cookie-key': servers without a `cookie` value get no cookie, and clients' cookies are cleared",
                    p.kind.name(),
                    p.name
                ),
            )
            .with_hint("add `dynamic-cookie-key <secret>` to this section or to `defaults`"),
        );
        return;
    };
    // A server without an address (`init-addr none`) has nothing to hash
    // yet: it gets no cookie (it is in maintenance anyway).
    for s in servers.iter_mut().filter(|s| s.cookie.is_none()) {
        s.cookie = s.addr.known().map(|a| dynamic_value(key, a));
    }
}

/// `option persist`.
pub fn option_persist(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    p.sticky.persist = !cx.negated;
    if let Some(extra) = cx.args.first() {
        cx.error(
            extra,
            format!("unexpected '{}' after 'option persist'", extra.text),
        );
    }
}

const TABLE_USAGE: &str =
    "stick-table type ip|ipv6|integer|string [len <n>] size <n>[k|m|g] [expire <time>] [nopurge] [store <data>,...]";

/// `stick-table ...` (frontend, backend, listen; in a frontend only
/// `track-sc` rules and counter fetches use it).
pub fn stick_table(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let kw = cx.kw;
    if let Some(prev) = &p.sticky.table {
        let line = prev.location.line;
        cx.error(kw, format!("this section already has a stick-table (line {line})"))
            .hint = Some("a backend has one table; another backend's table is used with `stick ... table <backend>`".into());
        return;
    }
    let mut key: Option<KeyType> = None;
    let mut len: Option<(usize, &Token)> = None;
    let mut size: Option<usize> = None;
    let mut expire = None;
    let mut nopurge = false;
    let mut store = Vec::new();
    let mut i = 0;
    while let Some(t) = args.get(i) {
        let value = args.get(i + 1);
        let needs_value = matches!(
            t.text.as_str(),
            "type" | "len" | "size" | "expire" | "peers" | "store" | "srvkey" | "write-to"
        );
        if needs_value && value.is_none() {
            let what = t.text.clone();
            cx.error(t, format!("stick-table: '{what}' expects a value"))
                .hint = Some(format!("usage: {TABLE_USAGE}"));
            return;
        }
        match (t.text.as_str(), value) {
            ("type", Some(v)) => {
                key = Some(match v.text.as_str() {
                    "ip" => KeyType::Ip,
                    "ipv6" => KeyType::Ipv6,
                    "integer" => KeyType::Integer,
                    "string" => KeyType::String { len: 32 },
                    "binary" => {
                        cx.error(v, "stick-table: type 'binary' is not supported")
                            .hint = Some("binary keys come from payload fetches, which wsgate does not have; use `type string` with a header or cookie".into());
                        return;
                    }
                    other => {
                        cx.error(v, format!("stick-table: unknown type '{other}'"))
                            .hint = Some("types: ip, ipv6, integer, string [len <n>]".into());
                        return;
                    }
                });
                i += 1;
            }
            ("len", Some(v)) => {
                match v.text.parse::<usize>() {
                    Ok(n) if n > 0 => len = Some((n, t)),
                    _ => {
                        cx.error(
                            v,
                            format!(
                                "stick-table: 'len' must be a positive integer, not '{}'",
                                v.text
                            ),
                        );
                        return;
                    }
                }
                i += 1;
            }
            ("size", Some(v)) => {
                match parse_size(&v.text) {
                    Ok(n) if n > 0 && n <= u64::from(u32::MAX) => size = Some(n as usize),
                    Ok(_) => {
                        cx.error(
                            v,
                            format!(
                                "stick-table: size '{}' must be between 1 and 4294967295",
                                v.text
                            ),
                        );
                        return;
                    }
                    Err(e) => {
                        cx.error(v, format!("stick-table: invalid size: {e}")).hint = Some(
                            "a number of entries, optionally suffixed k, m or g (e.g. `100k`)"
                                .into(),
                        );
                        return;
                    }
                }
                i += 1;
            }
            ("expire", Some(v)) => {
                match parse_time(&v.text) {
                    Ok(d) if d <= MAX_EXPIRE => expire = Some(d),
                    Ok(_) => {
                        cx.error(v, format!("stick-table: timer overflow in argument <{}> to <expire>, maximum value is 2147483647 ms (~24.8 days)", v.text));
                        return;
                    }
                    Err(e) => {
                        cx.error(v, format!("stick-table: invalid expire: {e}"))
                            .hint = Some("times are in milliseconds unless suffixed: us, ms, s, m, h, d (e.g. `30m`)".into());
                        return;
                    }
                }
                i += 1;
            }
            ("nopurge", _) => nopurge = true,
            ("peers", _) => {
                cx.error(t, "stick-table: 'peers' is not supported: tables are not replicated between processes")
                    .hint = Some("remove `peers <name>`; the table then lives in this wsgate process (and is kept across reloads)".into());
                return;
            }
            ("store", Some(v)) => {
                match super::track::parse_store(&v.text) {
                    Ok(types) => {
                        for ty in types {
                            if !store
                                .iter()
                                .any(|d: &super::track::DataType| d.counter() == ty.counter())
                            {
                                store.push(ty);
                            }
                        }
                    }
                    Err((msg, hint)) => {
                        cx.error(v, msg).hint = hint;
                        return;
                    }
                }
                i += 1;
            }
            ("srvkey", Some(v)) => {
                if v.text != "name" {
                    cx.error(
                        v,
                        format!(
                            "stick-table: 'srvkey {}' is not supported; entries name servers by id",
                            v.text
                        ),
                    );
                    return;
                }
                i += 1;
            }
            (other, _) => {
                cx.error(t, format!("stick-table: unknown argument '{other}'"))
                    .hint = Some(format!("usage: {TABLE_USAGE}"));
                return;
            }
        }
        i += 1;
    }
    let Some(mut key) = key else {
        cx.error(kw, "stick-table: missing type").hint = Some(format!("usage: {TABLE_USAGE}"));
        return;
    };
    if let Some((n, at)) = len {
        match &mut key {
            KeyType::String { len } => *len = n,
            _ => {
                cx.error(at, "stick-table: 'len' only applies to `type string`");
                return;
            }
        }
    }
    let Some(size) = size else {
        cx.error(kw, "stick-table: missing size").hint = Some(format!("usage: {TABLE_USAGE}"));
        return;
    };
    p.sticky.table = Some(StickTable {
        key,
        size,
        expire,
        nopurge,
        store,
        location: cx.kw_loc(),
    });
}

const STICK_USAGE: &str = "stick on|match|store-request <fetch> [table <backend>] [if|unless <condition>], fetch: src, req.hdr(<name>[,<occ>]), req.cook(<name>), url_param(<name>), req.payload(<offset>,<length>)[,mqtt_field_value(connect,client_identifier)] (mode tcp)";

/// `stick on|match|store-request <fetch> [table <name>] [if|unless ...]`.
pub fn stick(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if cx.section == SectionKind::Frontend {
        // HAProxy 2.6 accepts it with this warning.
        let kw = cx.kw;
        cx.warn(
            kw,
            "'stick' ignored because this frontend has no backend capability",
        );
        return;
    }
    let args = cx.args;
    let kw = cx.kw;
    let Some(action_tok) = args.first() else {
        cx.error(kw, "'stick' needs an action: on, match or store-request")
            .hint = Some(format!("usage: {STICK_USAGE}"));
        return;
    };
    let action = match action_tok.text.as_str() {
        "on" => StickAction::On,
        "match" => StickAction::Match,
        "store-request" => StickAction::StoreRequest,
        "store-response" => {
            cx.error(
                action_tok,
                "'stick store-response' is not supported: response fetches are not implemented",
            )
            .hint = Some("use `stick on` or `stick store-request` with a request fetch".into());
            return;
        }
        other => {
            cx.error(
                action_tok,
                format!("'stick': unknown action '{other}' (expected on, match or store-request)"),
            )
            .hint = Some(format!("usage: {STICK_USAGE}"));
            return;
        }
    };
    let Some(fetch_tok) = args.get(1) else {
        cx.error(
            action_tok,
            format!("'stick {}' needs a sample fetch", action_tok.text),
        )
        .hint = Some(format!("usage: {STICK_USAGE}"));
        return;
    };
    let fetch = match parse_fetch(&fetch_tok.text) {
        Ok(f) => f,
        Err(msg) => {
            cx.error(fetch_tok, msg).hint = Some(format!("usage: {STICK_USAGE}"));
            return;
        }
    };
    let mut rest = &args[2..];
    let mut table = None;
    if rest.first().is_some_and(|t| t.text == "table") {
        let Some(name) = rest.get(1) else {
            cx.error(
                &rest[0],
                "'table' expects the name of a backend with a stick-table",
            );
            return;
        };
        table = Some((name.text.clone(), cx.loc(name)));
        rest = &rest[2..];
    }
    if let Some(first) = rest.first() {
        if first.text != "if" && first.text != "unless" {
            cx.error(first, format!("'stick': unexpected '{}'", first.text))
                .hint = Some(format!("usage: {STICK_USAGE}"));
            return;
        }
    }
    let location = cx.kw_loc();
    let rule = if rest.is_empty() {
        None
    } else {
        match cx.rule(String::new(), location.clone(), rest) {
            Some(r) => Some(r),
            None => return,
        }
    };
    p.sticky.rules.push(RuleDraft {
        action,
        fetch,
        table,
        rule,
        location,
    });
}

/// A stick rule's fetch: `src`, `req.hdr(<name>[,<occ>])` (`hdr`),
/// `req.cook(<name>)` (`cook`), `url_param(<name>)` (`urlp`),
/// `req.payload(<off>,<len>)[,mqtt_field_value(connect,client_identifier)]`.
pub(super) fn parse_fetch(text: &str) -> Result<StickFetch, String> {
    let chain = super::track::split_top(text);
    if let [fetch, converters @ ..] = chain.as_slice() {
        if !converters.is_empty() {
            return parse_payload(fetch, converters, text);
        }
    }
    if text.starts_with("req.payload(") || text.starts_with("payload(") {
        return parse_payload(text, &[], text);
    }
    if text == "src" {
        return Ok(StickFetch::Src);
    }
    let (name, arg) = match text.split_once('(') {
        Some((n, rest)) => match rest.strip_suffix(')') {
            Some(a) => (n, a),
            None => return Err(format!("'stick': missing ')' in '{text}'")),
        },
        None => (text, ""),
    };
    let need_arg = |what: &str| {
        if arg.is_empty() {
            Err(format!("'stick': fetch method '{name}' needs {what}"))
        } else {
            Ok(arg.to_owned())
        }
    };
    match name {
        "req.hdr" | "hdr" => {
            let (h, occ) = match arg.split_once(',') {
                Some((h, o)) => match o.trim().parse::<i32>() {
                    Ok(n) if n != 0 => (h.trim(), n),
                    _ => return Err(format!("'stick': invalid occurrence '{o}' in '{text}' (a non-zero integer: 1 is the first, -1 the last)")),
                },
                None => (arg, -1),
            };
            if h.is_empty() {
                return Err(format!("'stick': fetch method '{name}' needs a header name"));
            }
            Ok(StickFetch::Hdr {
                name: h.to_owned(),
                occ,
            })
        }
        "req.cook" | "cook" => need_arg("a cookie name").map(StickFetch::Cook),
        "url_param" | "urlp" => need_arg("a parameter name").map(StickFetch::UrlParam),
        _ => Err(format!(
            "'stick': unknown or unsupported fetch method '{name}' (wsgate supports src, req.hdr(), hdr(), req.cook(), cook(), url_param(), urlp())"
        )),
    }
}

/// `req.payload(<off>,<len>)` with at most the MQTT client id converter.
fn parse_payload(fetch: &str, converters: &[&str], text: &str) -> Result<StickFetch, String> {
    let args = fetch
        .strip_prefix("req.payload(")
        .or_else(|| fetch.strip_prefix("payload("))
        .and_then(|a| a.strip_suffix(')'))
        .ok_or_else(|| format!("'stick': converters ('{text}') are supported only after req.payload(<offset>,<length>)"))?;
    let nums: Vec<Option<usize>> = args.split(',').map(|n| n.trim().parse().ok()).collect();
    let [Some(offset), Some(len)] = nums.as_slice() else {
        return Err(format!(
            "'stick': req.payload needs <offset>,<length> (numbers), not '{args}'"
        ));
    };
    let mqtt_client_id = match converters {
        [] => false,
        ["mqtt_field_value(connect,client_identifier)" | "mqtt_field_value(connect,3)"] => true,
        [other, ..] => {
            return Err(format!("'stick': converter '{other}' is not supported (wsgate knows mqtt_field_value(connect,client_identifier))"))
        }
    };
    Ok(StickFetch::Payload {
        offset: *offset,
        len: *len,
        mqtt_client_id,
    })
}

/// The backend's [`Persistence`]: `table <name>` resolved to a backend
/// with a table, conditions to the backend's ACLs, and HAProxy's checks
/// (cookies need `mode http`), plus two warnings of wsgate's own that
/// HAProxy 2.6 does not print: server cookie values that no backend
/// `cookie` line uses, and values shared by two servers (the second then
/// gets the cookie's clients only while the first is down).
pub(super) fn resolve(
    p: &ProxyDecl,
    proxies: &[ProxyDecl],
    backend_ids: &HashMap<String, (BackendId, usize)>,
    diags: &mut Vec<Diagnostic>,
) -> Persistence {
    let d = &p.draft;
    let servers_with_cookie = || d.servers.iter().filter(|s| s.cookie.is_some());
    let mut cookie = d.sticky.cookie.as_ref().map(|(c, _)| c.clone());
    if let Some((_, at)) = &d.sticky.cookie {
        if d.mode == Mode::Tcp {
            diags.push(Diagnostic::warning(
                at.clone(),
                format!(
                    "cookie will be ignored for {} '{}' (needs 'mode http')",
                    p.kind.name(),
                    p.name
                ),
            ));
            for s in servers_with_cookie() {
                diags.push(Diagnostic::warning(
                    s.location.clone(),
                    format!(
                        "{} '{}' : ignoring cookie for server '{}' as HTTP mode is disabled",
                        p.kind.name(),
                        p.name,
                        s.name
                    ),
                ));
            }
            cookie = None;
        }
    } else if let Some(s) = servers_with_cookie().next() {
        diags.push(
            Diagnostic::warning(
                s.location.clone(),
                format!("server '{}' has a `cookie` value but {} '{}' has no `cookie` line, so the value is unused", s.name, p.kind.name(), p.name),
            )
            .with_hint("add e.g. `cookie SERVERID insert indirect nocache` to the section, or remove `cookie <value>` from the server lines"),
        );
    }
    if cookie.is_some() {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for s in &d.servers {
            let Some(v) = &s.cookie else { continue };
            if let Some(first) = seen.get(v.as_str()) {
                diags.push(Diagnostic::warning(
                    s.location.clone(),
                    format!("server '{}' has the same cookie value '{v}' as server '{first}': clients with this cookie go to '{first}', and to '{}' only while '{first}' is down", s.name, s.name),
                ).with_hint("give every server its own `cookie` value, unless this is meant as a fallback"));
            } else {
                seen.insert(v, &s.name);
            }
        }
    }

    let mut acls = super::check::named_acls(p);
    let mut rules = Vec::new();
    for r in &d.sticky.rules {
        let (table_name, at) = match &r.table {
            Some((name, at)) => (name.as_str(), at),
            None => (p.name.as_str(), &r.location),
        };
        let table = backend_ids
            .get(table_name)
            .filter(|(_, decl)| proxies[*decl].draft.sticky.table.is_some())
            .map(|(id, _)| id.0);
        let Some(table) = table else {
            let with_tables = proxies
                .iter()
                .filter(|q| q.draft.sticky.table.is_some())
                .map(|q| q.name.as_str());
            let mut e = Diagnostic::error(
                at.clone(),
                format!(
                    "{} '{}': unable to find stick-table '{table_name}'",
                    p.kind.name(),
                    p.name
                ),
            );
            e = match super::keywords::closest(table_name, with_tables) {
                Some(s) if r.table.is_some() => e.with_hint(format!("did you mean '{s}'?")),
                _ => e.with_hint(format!(
                    "declare one in this section (`{TABLE_USAGE}`), or name a backend that has one with `table <backend>`"
                )),
            };
            diags.push(e);
            continue;
        };
        let condition = match (r.condition(), &r.rule) {
            (Some(c), Some(rule)) => {
                match super::check::resolve_condition(p, rule, c, &mut acls, diags) {
                    Some(c) => Some(c),
                    None => continue,
                }
            }
            _ => None,
        };
        let payload = matches!(r.fetch, StickFetch::Payload { .. });
        if payload && d.mode == Mode::Tcp && d.tcp_inspect_delay.is_none() {
            diags.push(
                Diagnostic::warning(r.location.clone(), "'stick ... req.payload(...)' without `tcp-request inspect-delay` only sees the bytes that came with the connection: the key is often missing")
                    .with_hint("add e.g. `tcp-request inspect-delay 5s` to this backend: wsgate then waits that long at most for the bytes the rule reads"),
            );
        }
        if payload && d.mode == Mode::Http {
            diags.push(
                Diagnostic::error(r.location.clone(), "'stick ... req.payload(...)' needs `mode tcp`: in mode http the payload is the HTTP request")
                    .with_hint("use a header (`req.hdr(<name>)`) or a cookie in mode http"),
            );
            continue;
        }
        rules.push(StickRule {
            action: r.action,
            fetch: r.fetch.clone(),
            table,
            condition,
            location: r.location.clone(),
        });
    }
    Persistence {
        cookie,
        persist: d.sticky.persist,
        table: d.sticky.table.clone(),
        inspect_delay: d.tcp_inspect_delay,
        rules,
        acls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values read from the `Set-Cookie` of Debian's HAProxy 2.6.12 with
    /// `dynamic-cookie-key "mlchat-sticky-key"`.
    #[test]
    fn dynamic_values_are_haproxys() {
        let key = "mlchat-sticky-key";
        let at = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|_| unreachable!());
        assert_eq!(
            dynamic_value(key, at("127.0.0.1:18091")),
            "daf86104f4d34d77"
        );
        assert_eq!(
            dynamic_value(key, at("127.0.0.2:18092")),
            "46261455a6fbd702"
        );
        assert_eq!(dynamic_value(key, at("[::1]:18093")), "5e908a1be6276846");
    }

    #[test]
    fn fetches() {
        assert_eq!(parse_fetch("src"), Ok(StickFetch::Src));
        assert_eq!(
            parse_fetch("req.hdr(X-User)"),
            Ok(StickFetch::Hdr {
                name: "X-User".into(),
                occ: -1
            })
        );
        assert_eq!(
            parse_fetch("hdr(x,1)"),
            Ok(StickFetch::Hdr {
                name: "x".into(),
                occ: 1
            })
        );
        assert_eq!(parse_fetch("cook(sid)"), Ok(StickFetch::Cook("sid".into())));
        assert_eq!(parse_fetch("urlp(u)"), Ok(StickFetch::UrlParam("u".into())));
        assert!(parse_fetch("hdr(x,0)").is_err());
        assert!(parse_fetch("req.cook()").is_err());
        assert!(parse_fetch("payload_lv(43,1)").is_err());
        assert!(parse_fetch("hdr(x").is_err());
    }
}
