//! Parser: lexed lines → sections and drafts of proxies, driven by the one
//! keyword table in [`super::keywords`].
//!
//! Stage: after the `lexer`, before `check`. The parser knows sections
//! (`global`, `defaults [<name>] [from <name>]`, `frontend|backend|listen
//! <name> [from <defaults>]`) and applies HAProxy's `defaults` rules: each
//! `defaults` section starts from the documented built-in values (or from
//! its `from` parent), and a proxy starts as a copy of the last `defaults`
//! section before it (or of the one named with `from`). Keyword lines are
//! looked up in the table and handed to the entry's handler, which fills a
//! [`ProxyDraft`] or [`GlobalDraft`]. Names that point elsewhere
//! (`default_backend`) are kept as text and resolved by `check`, once every
//! section is known.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::acl::ConditionDraft;
use super::diag::Diagnostic;
use super::keywords::{self, Handler, Lookup, Sections, Status};
use super::lexer::{EnvLookup, Line, Token};
use super::model::{
    AclTerm, BackendTimeouts, Balance, Bind, FrontendTimeouts, HashType, HttpCheck, HttpConnMode,
    HttpExpect, Location, LogStyle, LogTarget, Mode, Server, StatsPage, StatsSocket,
    WebSocketSettings,
};

/// The kind of section a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl SectionKind {
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Defaults => "defaults",
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            SectionKind::Listen => "listen",
        }
    }

    pub fn flag(self) -> Sections {
        match self {
            SectionKind::Global => Sections::GLOBAL,
            SectionKind::Defaults => Sections::DEFAULTS,
            SectionKind::Frontend => Sections::FRONTEND,
            SectionKind::Backend => Sections::BACKEND,
            SectionKind::Listen => Sections::LISTEN,
        }
    }
}

/// Sections wsgate recognises but does not implement: their lines are
/// skipped after one error at the section line.
const UNSUPPORTED_SECTIONS: &[(&str, &str)] = &[
    ("peers", "stick-table replication is not supported"),
    ("http-errors", "custom error pages are not supported yet"),
    ("mailers", "email alerts are not supported"),
    ("program", "wsgate does not start external programs"),
    ("ring", "log rings are not supported"),
    ("log-forward", "log forwarding is not supported"),
    ("fcgi-app", "FastCGI is not supported"),
    (
        "crt-store",
        "certificate stores are not supported yet; use `crt` on the `bind` line",
    ),
    ("acme", "ACME is not configurable this way yet"),
    ("traces", "traces are not supported"),
];

/// Sections wsgate reads past with one warning: what they configure has a
/// safe stand-in (their lines are skipped).
const IGNORED_SECTIONS: &[(&str, &str)] = &[
    (
        "resolvers",
        "server host names are resolved once, at startup, with the system resolver (not these nameservers); address changes are not followed while running",
    ),
    (
        "cache",
        "wsgate does not cache responses: every request reaches a server, which answers it as it would without a cache (slower, not different)",
    ),
];

/// Whether `word` opens a section (for `wsgate migrate`, which reads the
/// text without parsing it).
pub fn opens_section(word: &str) -> bool {
    matches!(
        word,
        "global" | "defaults" | "frontend" | "backend" | "listen" | "userlist"
    ) || UNSUPPORTED_SECTIONS
        .iter()
        .chain(IGNORED_SECTIONS)
        .any(|(name, _)| *name == word)
}

/// Process-wide settings being collected from `global` sections.
#[derive(Debug, Clone)]
pub struct GlobalDraft {
    pub maxconn: Option<u32>,
    pub tune_bufsize: usize,
    pub hard_stop_after: Option<std::time::Duration>,
    pub nbthread: Option<u32>,
    /// `crt-base`: where relative `crt` paths are resolved from.
    pub crt_base: Option<PathBuf>,
    /// `default-path`: the directory relative paths (including a relative
    /// `crt-base`) are resolved from; `None` is the working directory.
    pub default_path: Option<PathBuf>,
    /// `stats socket` lines.
    pub stats_sockets: Vec<StatsSocket>,
    /// `stats timeout`.
    pub stats_timeout: std::time::Duration,
    /// `log` lines.
    pub logs: Vec<LogTarget>,
    /// `ssl-default-bind-options|ciphers|ciphersuites|curves`: the
    /// starting point of every later `bind ... ssl`.
    pub ssl_bind: crate::config::model::TlsSettings,
    /// `user`/`uid`, `group`/`gid`, `pidfile`.
    pub process: crate::config::process::ProcessSettings,
}

impl GlobalDraft {
    /// The directory a relative `crt` is resolved from, or `None` for the
    /// working directory.
    pub fn crt_dir(&self) -> Option<PathBuf> {
        match (&self.crt_base, &self.default_path) {
            (Some(c), _) if c.is_absolute() => Some(c.clone()),
            (Some(c), Some(d)) => Some(d.join(c)),
            (Some(c), None) => Some(c.clone()),
            (None, d) => d.clone(),
        }
    }
}

impl Default for GlobalDraft {
    fn default() -> Self {
        GlobalDraft {
            maxconn: None,
            tune_bufsize: 16384,
            hard_stop_after: None,
            nbthread: None,
            crt_base: None,
            default_path: None,
            stats_sockets: Vec::new(),
            stats_timeout: std::time::Duration::from_secs(10),
            logs: Vec::new(),
            ssl_bind: crate::config::model::TlsSettings::default(),
            process: crate::config::process::ProcessSettings::default(),
        }
    }
}

impl ProxyDraft {
    /// A copy for a section that inherits from this `defaults` (its
    /// `tcp-check` lines are replaced by the section's own, if any). The
    /// `acl` lines stay behind: a `defaults` section's ACLs are seen only
    /// by its own rules, which carry them (config/defaults_rules.rs).
    fn inherit(&self) -> ProxyDraft {
        ProxyDraft {
            tcp_check: self.tcp_check.inherit(),
            acls: Vec::new(),
            broken_acls: Vec::new(),
            ..self.clone()
        }
    }
}

/// `default-server` settings, inherited by later `server` lines.
#[derive(Debug, Clone, Default)]
pub struct ServerDefaults {
    /// `ssl` / `no-ssl`.
    pub ssl: bool,
    /// `verify none|required` (`None`: required, HAProxy's default).
    pub verify: Option<bool>,
    pub ca_file: Option<PathBuf>,
    /// `crt`: the client certificate presented to a TLS server.
    pub crt: Option<PathBuf>,
    pub sni: Option<crate::config::model::SniExpr>,
    pub weight: Option<u32>,
    pub disabled: bool,
    /// `id` (on `server` lines only; ids are unique).
    pub id: Option<(u32, Location)>,
    pub backup: bool,
    /// `on-marked-down shutdown-sessions`.
    pub shutdown_on_down: bool,
    /// `on-marked-up shutdown-backup-sessions`.
    pub shutdown_backups_on_up: bool,
    pub maxconn: u32,
    pub maxqueue: u32,
    pub check: bool,
    pub inter: Option<std::time::Duration>,
    pub fastinter: Option<std::time::Duration>,
    pub downinter: Option<std::time::Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub port: Option<u16>,
    pub addr: Option<std::net::IpAddr>,
    /// `redir <prefix>`.
    pub redir: Option<String>,
    /// `send-proxy`.
    pub proxy_v1: bool,
    /// `send-proxy-v2*` and `proxy-v2-options`.
    pub proxy: crate::config::model::SendProxy,
    /// `check-send-proxy`.
    pub check_send_proxy: bool,
    /// `check-ssl` / `no-check-ssl`.
    pub check_ssl: Option<bool>,
    /// `alpn` (without `h2`).
    pub alpn: Option<Vec<String>>,
    /// `cookie <value>`: the persistence cookie value naming the server.
    pub cookie: Option<String>,
    /// `non-stick`: never stored in stick tables.
    pub non_stick: bool,
    /// `slowstart`, whole seconds.
    pub slowstart: u32,
    /// `observe`, `error-limit`, `on-error`.
    pub passive: crate::config::model::Passive,
    /// `init-addr`: how a host name gets its address (`None`: HAProxy's
    /// default, `last,libc`).
    pub init_addr: Option<Vec<super::handlers::InitAddr>>,
}

/// Everything a `defaults`, `frontend`, `backend` or `listen` section can
/// set, with HAProxy's built-in defaults. A `defaults` section is one of
/// these; a proxy starts as a copy of its `defaults`.
#[derive(Debug, Clone)]
pub struct ProxyDraft {
    pub mode: Mode,
    /// Where `mode` was set (in the proxy or in its `defaults`), if at all.
    pub mode_location: Option<Location>,
    pub binds: Vec<Bind>,
    /// A `bind` line was written, even if it had errors (so that "no bind"
    /// is not reported on top of the error).
    pub bind_lines: usize,
    pub default_backend: Option<(String, Location)>,
    pub maxconn: Option<u32>,
    pub frontend_timeouts: FrontendTimeouts,
    pub backend_timeouts: BackendTimeouts,
    pub retries: u32,
    pub redispatch: bool,
    pub http_conn_mode: HttpConnMode,
    /// `option forwardfor` and its options.
    pub forwardfor: Option<crate::config::model::ForwardFor>,
    pub websocket: WebSocketSettings,
    pub balance: Balance,
    pub hash_type: HashType,
    /// `hash-balance-factor` (0: off).
    pub hash_balance_factor: u32,
    /// `option tcp-check`.
    pub tcp_check_on: bool,
    /// `tcp-check` lines.
    pub tcp_check: super::tcp_check::TcpCheckDraft,
    pub allbackups: bool,
    pub httpchk: Option<HttpCheck>,
    /// `http-check expect`, kept apart so that it applies whether it is
    /// written before or after `option httpchk`.
    pub http_expect: Option<HttpExpect>,
    /// `http-check send`, merged into `httpchk` by `check`.
    pub http_send: Option<super::handlers_health::CheckSend>,
    pub servers: Vec<Server>,
    pub default_server: ServerDefaults,
    /// `acl` lines: name, term, where.
    pub acls: Vec<(String, AclTerm, Location)>,
    /// Names of `acl` lines that did not parse (reported there): conditions
    /// naming them are not reported again, one error per cause.
    pub broken_acls: Vec<String>,
    /// `use_backend` lines: backend name, condition, where (the name's
    /// position, and each condition word's position for messages).
    pub use_backends: Vec<UseBackendDraft>,
    /// `stats` keywords (any of them enables the page).
    pub stats: Option<StatsPage>,
    /// `log` lines of this section (or inherited from `defaults`).
    pub logs: Vec<LogTarget>,
    /// `log global`.
    pub log_global: bool,
    /// `option httplog` / `option tcplog` (`Http` with `log-format`).
    pub log_style: LogStyle,
    /// `log-format`, unless an `option httplog|tcplog` came after it.
    pub log_format: Option<std::sync::Arc<super::logline::LogLine>>,
    /// `option dontlognull`.
    pub dontlognull: bool,
    /// `stats admin if <cond>`: its condition, as `prometheus`'s.
    pub stats_admin: Option<UseBackendDraft>,
    /// `http-request use-service prometheus-exporter`: its condition, in
    /// the shape of a `use_backend` rule (with no backend).
    pub prometheus: Option<UseBackendDraft>,
    /// `http-request` lines: their action and condition, in order.
    pub http_request: Vec<(super::model::HttpRequestAction, UseBackendDraft)>,
    /// `tcp-request inspect-delay` (config/tcp_rules.rs).
    pub tcp_inspect_delay: Option<std::time::Duration>,
    /// `tcp-request connection` rules (config/tcp_rules.rs).
    pub tcp_connection: Vec<(super::tcp_rules::TcpAction, UseBackendDraft)>,
    /// `tcp-request content` rules (config/tcp_rules.rs).
    pub tcp_content: Vec<(super::tcp_rules::TcpAction, UseBackendDraft)>,
    /// `http-response` lines.
    pub http_response: Vec<(super::model::HttpResponseAction, UseBackendDraft)>,
    /// `http-after-response` lines.
    pub http_after_response: Vec<(super::http_rules::HttpAfterAction, UseBackendDraft)>,
    /// `redirect` lines.
    pub redirects: Vec<(super::model::Redirect, UseBackendDraft)>,
    /// `errorfile` pages (inherited from `defaults`, replaced per status).
    pub errorfiles: super::model::ErrorFiles,
    /// `monitor-uri` and the `monitor fail` conditions (as rules without a
    /// backend).
    pub monitor_uri: Option<String>,
    pub monitor_fail: Vec<UseBackendDraft>,
    /// `cookie`, `option persist`, `stick-table`, `stick` (config/persist.rs).
    pub sticky: super::persist::Draft,
}

#[derive(Debug, Clone)]
pub struct UseBackendDraft {
    pub backend: String,
    pub location: Location,
    pub condition: Option<ConditionDraft>,
    /// Locations of the condition's words (for unknown-ACL errors).
    pub word_locations: Vec<Location>,
}

impl Default for ProxyDraft {
    fn default() -> Self {
        ProxyDraft {
            mode: Mode::Tcp,
            mode_location: None,
            binds: Vec::new(),
            bind_lines: 0,
            default_backend: None,
            maxconn: None,
            frontend_timeouts: FrontendTimeouts::default(),
            backend_timeouts: BackendTimeouts::default(),
            retries: 3,
            redispatch: false,
            http_conn_mode: HttpConnMode::KeepAlive,
            forwardfor: None,
            websocket: WebSocketSettings::default(),
            balance: Balance::RoundRobin,
            hash_type: HashType::default(),
            hash_balance_factor: 0,
            tcp_check_on: false,
            tcp_check: Default::default(),
            allbackups: false,
            httpchk: None,
            http_expect: None,
            http_send: None,
            monitor_uri: None,
            monitor_fail: Vec::new(),
            servers: Vec::new(),
            default_server: ServerDefaults::default(),
            acls: Vec::new(),
            broken_acls: Vec::new(),
            use_backends: Vec::new(),
            stats: None,
            logs: Vec::new(),
            log_global: false,
            log_style: LogStyle::None,
            log_format: None,
            dontlognull: false,
            prometheus: None,
            stats_admin: None,
            http_request: Vec::new(),
            tcp_connection: Vec::new(),
            tcp_content: Vec::new(),
            tcp_inspect_delay: None,
            http_response: Vec::new(),
            http_after_response: Vec::new(),
            redirects: Vec::new(),
            errorfiles: super::model::ErrorFiles::default(),
            sticky: Default::default(),
        }
    }
}

/// A `frontend`, `backend` or `listen` section, parsed.
#[derive(Debug, Clone)]
pub struct ProxyDecl {
    pub kind: SectionKind,
    pub name: String,
    pub location: Location,
    pub draft: ProxyDraft,
}

#[derive(Debug, Clone)]
struct DefaultsDecl {
    draft: ProxyDraft,
    /// `defaults <name>`: HAProxy 2.5+ takes rules and ACLs only there
    /// (wsgate places those of an anonymous one: `anonymous`).
    named: bool,
    location: Location,
    /// Who inherits its rules, if it has any (a named section).
    users: super::defaults_rules::Users,
    /// Its rule lines and users, when it has no name.
    anonymous: super::defaults_rules::Anonymous,
    /// The first proxy naming it with `from`, and the first using it
    /// without (as the last defaults section before it).
    explicit_use: Option<Location>,
    implicit_use: Option<Location>,
}

/// What a handler gets: the words of its line and a place for diagnostics.
pub struct Cx<'a> {
    pub file: &'a Arc<str>,
    /// The keyword as written (`timeout client`), for messages.
    pub keyword: String,
    /// The first word of the line (its position is the keyword's).
    pub kw: &'a Token,
    pub args: &'a [Token],
    /// `no option ...`.
    pub negated: bool,
    pub section: SectionKind,
    pub crt_base: Option<&'a Path>,
    /// The global `ssl-default-bind-*` settings so far.
    pub ssl_bind: crate::config::model::TlsSettings,
    /// `--syntax-only`: handlers look at no file and resolve no name.
    pub syntax_only: bool,
    /// The environment, for `$VAR` in addresses (see
    /// [`super::lexer::expand_address`]).
    pub env: EnvLookup<'a>,
    pub diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Cx<'a> {
    pub fn loc(&self, t: &Token) -> Location {
        Location {
            file: self.file.clone(),
            line: t.line,
            col: t.col,
        }
    }

    pub fn kw_loc(&self) -> Location {
        self.loc(self.kw)
    }

    pub fn error(&mut self, t: &Token, msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(self.loc(t), msg);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// An error about the machine (a missing file, a name that does not
    /// resolve), not the language: see [`super::diag::Kind`]. Handlers
    /// only look at the machine when `!self.syntax_only`.
    pub fn env_error(&mut self, t: &Token, msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(self.loc(t), msg).environment();
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    pub fn warn(&mut self, t: &Token, msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::warning(self.loc(t), msg);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// A rule with an optional `if|unless <condition>` in `words` (for
    /// `use_backend`, `http-request ...`): `None` after reporting a
    /// condition that does not parse.
    pub fn rule(
        &mut self,
        backend: String,
        location: Location,
        words: &[Token],
    ) -> Option<UseBackendDraft> {
        let condition = if words.is_empty() {
            None
        } else {
            match super::acl::parse_condition(words) {
                Ok(mut c) => {
                    if !super::acl_file::load_anonymous(self, words, &mut c) {
                        return None;
                    }
                    Some(c)
                }
                Err(e) => {
                    let at = words.get(e.at).unwrap_or(&words[0]);
                    self.error(at, e.message).hint = e.hint;
                    return None;
                }
            }
        };
        Some(UseBackendDraft {
            backend,
            location,
            condition,
            word_locations: words.iter().map(|t| self.loc(t)).collect(),
        })
    }

    /// The single argument of a one-argument keyword, or an error naming
    /// the expected syntax.
    pub fn one_arg(&mut self, usage: &str) -> Option<&'a Token> {
        let args = self.args;
        match args {
            [a] => Some(a),
            [] => {
                let kw = self.kw;
                let keyword = self.keyword.clone();
                self.error(kw, format!("'{keyword}' needs an argument"))
                    .hint = Some(format!("usage: {usage}"));
                None
            }
            [_, extra, ..] => {
                let keyword = self.keyword.clone();
                self.error(
                    extra,
                    format!(
                        "'{keyword}' takes one argument; unexpected '{}'",
                        extra.text
                    ),
                )
                .hint = Some(format!("usage: {usage}"));
                None
            }
        }
    }
}

/// The result of parsing every file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub global: GlobalDraft,
    pub proxies: Vec<ProxyDecl>,
    /// `userlist` sections (config/userlist.rs).
    pub userlists: Vec<super::userlist::Draft>,
}

enum Current {
    None,
    Global,
    Defaults(usize),
    Proxy(usize),
    /// A `userlist` section: its lines go to config/userlist.rs.
    Userlist(usize),
    /// Inside a section wsgate does not implement: lines are skipped.
    Skip,
}

/// Parses lexed files in order into one [`Parsed`].
pub struct Parser {
    parsed: Parsed,
    defaults: Vec<DefaultsDecl>,
    named_defaults: HashMap<String, usize>,
    options: super::Options,
}

impl Parser {
    pub fn new(options: super::Options) -> Self {
        Parser {
            parsed: Parsed::default(),
            defaults: Vec::new(),
            named_defaults: HashMap::new(),
            options,
        }
    }

    /// The result, once the rules of anonymous `defaults` sections are
    /// where they apply (their users are known only at the end).
    pub fn finish(mut self, diags: &mut Vec<Diagnostic>) -> Parsed {
        for d in &self.defaults {
            d.anonymous.apply(&d.draft, &mut self.parsed.proxies, diags);
        }
        self.parsed
    }

    /// Parses one file. Sections do not continue across files, as in
    /// HAProxy.
    pub fn parse_file(
        &mut self,
        file: &Arc<str>,
        lines: &[Line],
        env: EnvLookup<'_>,
        diags: &mut Vec<Diagnostic>,
    ) {
        let mut current = Current::None;
        for line in lines {
            let Some(first) = line.words.first() else {
                continue;
            };
            let loc = Location {
                file: file.clone(),
                line: first.line,
                col: first.col,
            };
            if let Some(next) = self.section_header(file, line, env, diags) {
                current = next;
                continue;
            }
            let section = match current {
                Current::Skip => continue,
                Current::Userlist(i) => {
                    super::userlist::line(&mut self.parsed.userlists[i], file, line, diags);
                    continue;
                }
                Current::None => {
                    diags.push(
                        Diagnostic::error(loc, format!("'{}' appears before any section", first.text))
                            .with_hint("put it under `global`, or under a `defaults`, `frontend`, `backend` or `listen` line"),
                    );
                    continue;
                }
                Current::Global => SectionKind::Global,
                Current::Defaults(_) => SectionKind::Defaults,
                Current::Proxy(i) => self.parsed.proxies[i].kind,
            };
            self.keyword_line(file, line, section, &current, env, diags);
        }
    }

    /// If `line` opens a section, sets it up and returns it.
    fn section_header(
        &mut self,
        file: &Arc<str>,
        line: &Line,
        env: EnvLookup<'_>,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Current> {
        let words = &line.words;
        let first = &words[0];
        let loc_of = |t: &Token| Location {
            file: file.clone(),
            line: t.line,
            col: t.col,
        };
        let kind = match first.text.as_str() {
            "global" => SectionKind::Global,
            "defaults" => SectionKind::Defaults,
            "frontend" => SectionKind::Frontend,
            "backend" => SectionKind::Backend,
            "listen" => SectionKind::Listen,
            "userlist" => {
                let Some(name) = words.get(1) else {
                    diags.push(
                        Diagnostic::error(loc_of(first), "'userlist' needs a name")
                            .with_hint("write `userlist <name>`"),
                    );
                    return Some(Current::Skip);
                };
                let index = self.parsed.userlists.len();
                self.parsed.userlists.push(super::userlist::Draft::new(
                    name.text.clone(),
                    loc_of(first),
                ));
                return Some(Current::Userlist(index));
            }
            other if IGNORED_SECTIONS.iter().any(|(name, _)| *name == other) => {
                let (_, reason) = IGNORED_SECTIONS.iter().find(|(n, _)| *n == other)?;
                diags.push(Diagnostic::warning(
                    loc_of(first),
                    format!("'{other}' section ignored: {reason}"),
                ));
                return Some(Current::Skip);
            }
            other => {
                let (_, reason) = UNSUPPORTED_SECTIONS
                    .iter()
                    .find(|(name, _)| *name == other)?;
                diags.push(Diagnostic::error(
                    loc_of(first),
                    format!("'{other}' sections are not supported: {reason}"),
                ));
                return Some(Current::Skip);
            }
        };
        match kind {
            SectionKind::Global => {
                if let Some(extra) = words.get(1) {
                    diags.push(Diagnostic::warning(
                        loc_of(extra),
                        format!("'global' takes no argument; '{}' is ignored", extra.text),
                    ));
                }
                Some(Current::Global)
            }
            SectionKind::Defaults => {
                // defaults [<name>] [from <defaults>]
                let mut name = None;
                let mut rest = &words[1..];
                if let Some(n) = rest.first().filter(|t| t.text != "from") {
                    if check_name(n, "defaults", diags, file) {
                        name = Some(n.text.clone());
                    }
                    rest = &rest[1..];
                }
                let draft = match self.parse_from_clause(rest, file, diags) {
                    Some(Some(parent)) => {
                        self.use_defaults(parent, kind, true, loc_of(first), diags);
                        self.defaults[parent].draft.inherit()
                    }
                    _ => ProxyDraft::default(),
                };
                let index = self.defaults.len();
                if let Some(n) = &name {
                    self.named_defaults.insert(n.clone(), index);
                }
                self.defaults.push(DefaultsDecl {
                    draft,
                    named: words.get(1).is_some_and(|t| t.text != "from"),
                    location: loc_of(first),
                    users: Default::default(),
                    anonymous: Default::default(),
                    explicit_use: None,
                    implicit_use: None,
                });
                Some(Current::Defaults(index))
            }
            SectionKind::Frontend | SectionKind::Backend | SectionKind::Listen => {
                let kind_name = kind.name();
                let Some(name_tok) = words.get(1).filter(|t| t.text != "from") else {
                    diags.push(
                        Diagnostic::error(loc_of(first), format!("'{kind_name}' needs a name"))
                            .with_hint(format!("write `{kind_name} <name>`")),
                    );
                    return Some(Current::Skip);
                };
                check_name(name_tok, kind_name, diags, file);
                let mut rest = &words[2..];
                // Pre-1.5 style: `listen <name> <addr:port>` (an implicit bind).
                let mut legacy_addr = None;
                if let Some(t) = rest.first().filter(|t| t.text != "from") {
                    legacy_addr = Some(t.clone());
                    rest = &rest[1..];
                }
                // An unusable `from` (already reported) falls back to the
                // last defaults, to avoid a cascade of follow-up warnings,
                // without counting as a use of it.
                let from = self.parse_from_clause(rest, file, diags);
                let parent = match from {
                    Some(Some(parent)) => Some(parent),
                    _ => self.defaults.len().checked_sub(1),
                };
                if let (Some(parent), false) = (parent, matches!(from, Some(None))) {
                    self.use_defaults(parent, kind, from.is_some(), loc_of(first), diags);
                }
                let draft = parent
                    .map(|p| self.defaults[p].draft.inherit())
                    .unwrap_or_default();
                let index = self.parsed.proxies.len();
                self.parsed.proxies.push(ProxyDecl {
                    kind,
                    name: name_tok.text.clone(),
                    location: loc_of(first),
                    draft,
                });
                if let Some(addr) = legacy_addr {
                    if kind == SectionKind::Backend {
                        diags.push(Diagnostic::error(
                            loc_of(&addr),
                            format!("unexpected '{}' after the backend name", addr.text),
                        ));
                    } else {
                        diags.push(
                            Diagnostic::warning(
                                loc_of(&addr),
                                format!("an address on the '{kind_name}' line is a deprecated form of `bind`"),
                            )
                            .with_hint(format!("write `bind {}` inside the section", addr.text)),
                        );
                        let crt_dir = self.parsed.global.crt_dir();
                        let mut cx = Cx {
                            file,
                            keyword: "bind".into(),
                            kw: &addr,
                            args: std::slice::from_ref(&addr),
                            negated: false,
                            section: kind,
                            crt_base: crt_dir.as_deref(),
                            ssl_bind: self.parsed.global.ssl_bind.clone(),
                            syntax_only: self.options.syntax_only,
                            env,
                            diags,
                        };
                        super::handlers::bind(&mut self.parsed.proxies[index].draft, &mut cx);
                    }
                }
                Some(Current::Proxy(index))
            }
        }
    }

    /// Records that a section of `kind` at `at` inherits from defaults
    /// `parent`, named with `from` (`explicit`) or as the last one before
    /// it. Refused, as in HAProxy 2.6: proxies using one named section
    /// both ways (which one a proxy without `from` gets would depend on
    /// where it is written), and both sides of proxies running its rules.
    /// An anonymous one only records its users: where its rules go is
    /// known at the end ([`Parser::finish`]).
    fn use_defaults(
        &mut self,
        parent: usize,
        kind: SectionKind,
        explicit: bool,
        at: Location,
        diags: &mut Vec<Diagnostic>,
    ) {
        let proxy = self.parsed.proxies.len();
        let d = &mut self.defaults[parent];
        if !d.named {
            // Only a proxy can use it (`from` needs a name): the proxy
            // about to be added.
            d.anonymous.used_by(proxy);
            return;
        }
        if kind != SectionKind::Defaults {
            let (mine, other) = if explicit {
                (&mut d.explicit_use, &d.implicit_use)
            } else {
                (&mut d.implicit_use, &d.explicit_use)
            };
            if let Some(other) = other {
                let (this_way, that_way) = if explicit {
                    ("with `from`", "as the last defaults section before it")
                } else {
                    ("as the last defaults section before it", "with `from`")
                };
                diags.push(
                    Diagnostic::error(
                        at.clone(),
                        format!(
                            "this section uses defaults section at {} {this_way}, and the one at \
                             line {} uses it {that_way}: HAProxy refuses mixing both",
                            d.location, other.line
                        ),
                    )
                    .with_hint(
                        "add a last defaults section that no `from` names, or name it with \
                         `from` everywhere",
                    ),
                );
            }
            mine.get_or_insert_with(|| at.clone());
        }
        super::defaults_rules::check_use(&d.draft, &d.location, &mut d.users, kind, at, diags);
    }

    /// Parses `from <name>`: `None` when absent, `Some(None)` when it names
    /// nothing usable (already reported), `Some(Some(i))` otherwise.
    fn parse_from_clause(
        &self,
        rest: &[Token],
        file: &Arc<str>,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Option<usize>> {
        let loc_of = |t: &Token| Location {
            file: file.clone(),
            line: t.line,
            col: t.col,
        };
        let first = rest.first()?;
        if first.text != "from" {
            diags.push(Diagnostic::error(
                loc_of(first),
                format!(
                    "unexpected '{}' (expected `from <defaults name>`)",
                    first.text
                ),
            ));
            return Some(None);
        }
        let Some(name) = rest.get(1) else {
            diags.push(Diagnostic::error(
                loc_of(first),
                "'from' needs the name of a `defaults` section",
            ));
            return Some(None);
        };
        if let Some(extra) = rest.get(2) {
            diags.push(Diagnostic::error(
                loc_of(extra),
                format!("unexpected '{}'", extra.text),
            ));
        }
        match self.named_defaults.get(&name.text) {
            Some(i) => Some(Some(*i)),
            None => {
                let names = self.named_defaults.keys().map(String::as_str);
                let mut d = Diagnostic::error(
                    loc_of(name),
                    format!(
                        "no `defaults` section named '{}' before this line",
                        name.text
                    ),
                );
                if let Some(s) = keywords::closest(&name.text, names) {
                    d = d.with_hint(format!("did you mean '{s}'?"));
                }
                diags.push(d);
                Some(None)
            }
        }
    }

    fn keyword_line(
        &mut self,
        file: &Arc<str>,
        line: &Line,
        section: SectionKind,
        current: &Current,
        env: EnvLookup<'_>,
        diags: &mut Vec<Diagnostic>,
    ) {
        let mut words = &line.words[..];
        let mut negated = false;
        if words[0].text == "no" && words.len() > 1 {
            negated = true;
            words = &words[1..];
        }
        let loc = Location {
            file: file.clone(),
            line: line.words[0].line,
            col: line.words[0].col,
        };
        // A keyword HAProxy removed is read as its modern form.
        let modern: Vec<Token>;
        let texts: Vec<&str> = words.iter().map(|t| t.text.as_str()).collect();
        if let Some(translation) = super::legacy_rules::translate(&texts) {
            let old = &words[0];
            match translation {
                Ok(new_words) => {
                    let line_text = new_words
                        .iter()
                        .map(|w| super::migrate::word(w))
                        .collect::<Vec<_>>()
                        .join(" ");
                    diags.push(
                        Diagnostic::warning(
                            loc.clone(),
                            format!(
                                "'{}' was removed in HAProxy {}; read as `{line_text}`",
                                old.text,
                                super::legacy_rules::removed_in(&old.text)
                            ),
                        )
                        .with_hint(format!(
                            "write `{line_text}` (`wsgate migrate -f <file>` rewrites the file)"
                        )),
                    );
                    modern = new_words
                        .into_iter()
                        .map(|text| Token {
                            text,
                            line: old.line,
                            col: old.col,
                        })
                        .collect();
                    words = &modern;
                }
                Err(refusal) => {
                    diags.push(
                        Diagnostic::error(
                            loc,
                            format!(
                                "'{}' was removed in HAProxy {}, and {}",
                                old.text,
                                super::legacy_rules::removed_in(&old.text),
                                refusal.reason
                            ),
                        )
                        .with_hint(format!("the closest current form: `{}`", refusal.closest)),
                    );
                    return;
                }
            }
        } else if let Some((legacy, used)) = keywords::legacy(texts.iter().copied()) {
            let at = &words[0];
            modern = legacy
                .new
                .split(' ')
                .map(|w| Token {
                    text: w.to_owned(),
                    line: at.line,
                    col: at.col,
                })
                .chain(words[used..].iter().cloned())
                .collect();
            let line_text = modern
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            diags.push(
                Diagnostic::warning(
                    loc.clone(),
                    format!(
                        "'{}' was removed in HAProxy {}; read as `{line_text}`",
                        legacy.old, legacy.removed_in
                    ),
                )
                .with_hint(format!(
                    "write `{line_text}` (`wsgate migrate -f <file>` rewrites the file)"
                )),
            );
            words = &modern;
        }
        let kw_tok = &words[0];
        let (entry, used) = match keywords::lookup(words) {
            Lookup::Found(entry, used) => (entry, used),
            Lookup::Unknown {
                keyword,
                suggestion,
            } => {
                let mut d = Diagnostic::error(
                    loc,
                    format!("unknown keyword '{keyword}' in {} section", section.name()),
                );
                d = match suggestion {
                    Some(s) => d.with_hint(format!("did you mean '{s}'?")),
                    None => {
                        d.with_hint("`wsgate --list-keywords` lists every keyword wsgate knows")
                    }
                };
                diags.push(d);
                return;
            }
        };
        let keyword = words[..used]
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if negated && !entry.negatable() {
            diags.push(Diagnostic::error(
                loc,
                format!("'no' cannot be used with '{keyword}'"),
            ));
            return;
        }
        let rejected = match entry.status {
            Status::Rejected { .. } => true,
            Status::Lenient { .. } => !negated,
            _ => false,
        };
        if !rejected && !entry.sections.contains(section.flag()) {
            section_mismatch(entry, &keyword, section, loc, diags);
            return;
        }
        match &entry.status {
            Status::Lenient { .. } if negated => {}
            Status::Lenient {
                reason,
                alternative,
            } => diags.push(
                Diagnostic::error(loc, format!("'{keyword}' is not supported: {reason}"))
                    .with_hint(*alternative),
            ),
            Status::Ignored(reason) => {
                diags.push(Diagnostic::warning(
                    loc,
                    format!("'{keyword}' is ignored: {reason}"),
                ));
            }
            Status::Rejected {
                reason,
                alternative,
            } => {
                let mut d =
                    Diagnostic::error(loc, format!("'{keyword}' is not supported: {reason}"));
                if let Some(alt) = alternative {
                    d = d.with_hint(*alt);
                }
                diags.push(d);
            }
            Status::Supported(handler) => {
                let before = diags.len();
                let crt_dir = self.parsed.global.crt_dir();
                let mut cx = Cx {
                    file,
                    keyword,
                    kw: kw_tok,
                    args: &words[used..],
                    negated,
                    section,
                    crt_base: crt_dir.as_deref(),
                    ssl_bind: self.parsed.global.ssl_bind.clone(),
                    syntax_only: self.options.syntax_only,
                    env,
                    diags,
                };
                match (handler, current) {
                    (Handler::Global(f) | Handler::Either { global: f, .. }, Current::Global) => {
                        f(&mut self.parsed.global, &mut cx)
                    }
                    (
                        Handler::Proxy(f) | Handler::Either { proxy: f, .. },
                        Current::Defaults(i),
                    ) => {
                        let decl = &mut self.defaults[*i];
                        f(&mut decl.draft, &mut cx);
                        let keyword = std::mem::take(&mut cx.keyword);
                        super::defaults_rules::resolve_acls(&mut decl.draft, diags);
                        let read = !diags[before..].iter().any(Diagnostic::is_error);
                        if !decl.named && read && super::defaults_rules::named_only(entry.name) {
                            decl.anonymous.line(keyword, loc);
                        }
                    }
                    (Handler::Proxy(f) | Handler::Either { proxy: f, .. }, Current::Proxy(i)) => {
                        let draft = &mut self.parsed.proxies[*i].draft;
                        f(draft, &mut cx);
                    }
                    // The section check above makes other pairs impossible.
                    _ => {}
                }
            }
        }
    }
}

fn section_mismatch(
    entry: &keywords::Keyword,
    keyword: &str,
    section: SectionKind,
    loc: Location,
    diags: &mut Vec<Diagnostic>,
) {
    let allowed = entry.sections.describe();
    let proxy_side = Sections::DEFAULTS | Sections::FRONTEND | Sections::BACKEND | Sections::LISTEN;
    let is_proxy_kw = entry.sections.intersects(proxy_side);
    let in_proxy = section != SectionKind::Global;
    // HAProxy only warns when a proxy setting lands on a proxy that lacks
    // the side it applies to (e.g. `timeout client` in a backend).
    let soft = is_proxy_kw
        && in_proxy
        && (keyword.starts_with("timeout ")
            || keyword.starts_with("option ")
            || matches!(
                keyword,
                "maxconn"
                    | "default_backend"
                    | "balance"
                    | "retries"
                    | "capture"
                    | "monitor-uri"
                    | "monitor"
            ));
    let side = match section {
        SectionKind::Backend => "a backend has no client side",
        SectionKind::Frontend => "a frontend has no servers",
        _ => "it does not apply there",
    };
    if soft {
        diags.push(
            Diagnostic::warning(
                loc,
                format!(
                    "'{keyword}' is ignored in a {} section: {side}",
                    section.name()
                ),
            )
            .with_hint(format!("it belongs in {allowed}")),
        );
    } else {
        diags.push(
            Diagnostic::error(
                loc,
                format!("'{keyword}' is not allowed in a {} section", section.name()),
            )
            .with_hint(format!("it belongs in {allowed}")),
        );
    }
}

/// Proxy and `defaults` names: letters, digits, `-`, `_`, `.` and `:`, as
/// in HAProxy. Returns whether the name is valid.
fn check_name(t: &Token, kind: &str, diags: &mut Vec<Diagnostic>, file: &Arc<str>) -> bool {
    let bad = t
        .text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')));
    if let Some(c) = bad {
        diags.push(
            Diagnostic::error(
                Location {
                    file: file.clone(),
                    line: t.line,
                    col: t.col,
                },
                format!("invalid character '{c}' in {kind} name '{}'", t.text),
            )
            .with_hint("names may contain letters, digits, '-', '_', '.' and ':'"),
        );
        false
    } else if t.text.is_empty() {
        diags.push(Diagnostic::error(
            Location {
                file: file.clone(),
                line: t.line,
                col: t.col,
            },
            format!("empty {kind} name"),
        ));
        false
    } else {
        true
    }
}
