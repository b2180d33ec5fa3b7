//! The typed, validated configuration: what the runtime is built from.
//!
//! Stage: produced by `parser` + `check` from the lexed text, consumed by
//! `proxy::runtime`. Every value here already has HAProxy's defaults and
//! precedence applied (`defaults` inheritance, `listen` split into a frontend
//! and a backend of the same name), so the runtime never needs to know how a
//! value was spelled. Unset timeouts are `None`, meaning infinite, as in
//! HAProxy. Names are resolved to indexes, so a frontend can never point at a
//! backend that does not exist.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use super::tls::{CertFetch, CipherSuite, DnQuery, KxGroup, TlsVersion};

/// Where a configuration item was written: for diagnostics raised after
/// parsing (a certificate that does not load, a port already in use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    /// `frontend` sections and the listening half of `listen` sections.
    pub frontends: Vec<Frontend>,
    /// `backend` sections and the server half of `listen` sections.
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone)]
pub struct Global {
    /// `maxconn` in `global`: process-wide cap on concurrent client
    /// connections. `None` when unset (HAProxy derives it from the fd limit;
    /// the runtime does the same).
    pub maxconn: Option<u32>,
    /// `tune.bufsize`: the largest request or response head accepted
    /// (HAProxy default 16384). A head that does not fit gets 431 (request)
    /// or 502 (response).
    pub tune_bufsize: usize,
    /// `stats socket` lines: the runtime API's listening sockets.
    pub stats_sockets: Vec<StatsSocket>,
    /// `stats timeout`: how long an idle runtime API connection stays open
    /// (HAProxy default 10s).
    pub stats_timeout: Duration,
    /// `log` lines of `global` (what `log global` in a proxy refers to).
    pub logs: Vec<LogTarget>,
    /// `hard-stop-after`: how long a stop waits for open connections
    /// (after WebSockets were sent close 1001) before the process exits.
    /// `None` when unset; wsgate then waits [`DEFAULT_HARD_STOP_AFTER`].
    pub hard_stop_after: Option<Duration>,
    /// `nbthread`: worker threads; `None` is one per CPU the process may
    /// run on (its affinity mask), as HAProxy does.
    pub nbthread: Option<u32>,
    /// `user`/`group`/`pidfile`: what the process becomes once bound.
    pub process: crate::config::process::ProcessSettings,
}

/// The stop grace when `hard-stop-after` is unset. HAProxy waits forever,
/// which is how old processes pile up; wsgate bounds it and says so at
/// start.
pub const DEFAULT_HARD_STOP_AFTER: Duration = Duration::from_secs(30);

impl Global {
    /// How long a stop waits for open connections.
    pub fn hard_stop_after(&self) -> Duration {
        self.hard_stop_after.unwrap_or(DEFAULT_HARD_STOP_AFTER)
    }

    /// `close-spread-time`, within `hard-stop-after`: a close drawn later
    /// than that would never be sent.
    pub fn close_spread(&self) -> crate::config::process::CloseSpread {
        use crate::config::process::CloseSpread;
        match self.process.close_spread {
            CloseSpread::Over(d) => CloseSpread::Over(d.min(self.hard_stop_after())),
            other => other,
        }
    }
}

impl Default for Global {
    fn default() -> Self {
        Global {
            maxconn: None,
            tune_bufsize: 16384,
            stats_sockets: Vec::new(),
            stats_timeout: Duration::from_secs(10),
            logs: Vec::new(),
            hard_stop_after: None,
            nbthread: None,
            process: crate::config::process::ProcessSettings::default(),
        }
    }
}

/// `stats socket <path|[ipv4@]addr:port> [mode <octal>] [level <level>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    pub location: Location,
    pub addr: SocketAddress,
    /// `mode`: permissions of a Unix socket (octal, e.g. 660).
    pub mode: Option<u32>,
    /// `level` (HAProxy default `operator`).
    pub level: CliLevel,
}

/// Where a stats socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// Runtime API levels, `user` < `operator` < `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum CliLevel {
    User,
    #[default]
    Operator,
    Admin,
}

impl std::fmt::Display for CliLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CliLevel::User => "user",
            CliLevel::Operator => "operator",
            CliLevel::Admin => "admin",
        })
    }
}

/// The stats page of one proxy (`stats enable`, `stats uri`, `stats
/// auth`, `stats realm`, `stats refresh`, `stats hide-version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsPage {
    /// `stats uri` (default `/haproxy?stats`): a request whose target
    /// starts with it gets the page.
    pub uri: String,
    /// `stats auth user:password` lines; empty means no authentication.
    pub users: Vec<(String, String)>,
    /// `stats realm` (default "HAProxy Statistics").
    pub realm: String,
    /// `stats refresh`: the page reloads itself this often.
    pub refresh: Option<Duration>,
    /// `stats hide-version`.
    pub hide_version: bool,
}

impl Default for StatsPage {
    fn default() -> Self {
        StatsPage {
            uri: "/haproxy?stats".into(),
            users: Vec::new(),
            realm: "HAProxy Statistics".into(),
            refresh: None,
            hide_version: false,
        }
    }
}

/// `http-request use-service prometheus-exporter [if|unless <cond>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRule {
    pub location: Location,
    pub condition: Option<Condition>,
}

pub use super::errorfile::ErrorFiles;
pub use super::http_rules::{
    HeaderAction, HttpAfterAction, HttpRequestAction, HttpResponseAction, NameMatch, Pattern,
    Redirect, RedirectKind, Reply, ReplyBody,
};

/// An `http-request` rule, or a `redirect` line (its action is then
/// `Redirect`), with its optional condition.
#[derive(Debug, Clone)]
pub struct HttpRequestRule {
    pub location: Location,
    pub action: HttpRequestAction,
    pub condition: Option<Condition>,
}

/// An `http-response` rule with its optional condition (evaluated with
/// the request's ACLs).
#[derive(Debug, Clone)]
pub struct HttpResponseRule {
    pub location: Location,
    pub action: HttpResponseAction,
    pub condition: Option<Condition>,
}

/// An `http-after-response` rule with its optional condition (evaluated
/// with the request's ACLs, as `http-response` ones).
#[derive(Debug, Clone)]
pub struct HttpAfterRule {
    pub location: Location,
    pub action: HttpAfterAction,
    pub condition: Option<Condition>,
}

/// `option forwardfor [except <network>] [header <name>] [if-none]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardFor {
    /// Clients in this network get no header.
    pub except: Option<Network>,
    /// `header <name>`; `None` is `X-Forwarded-For`.
    pub header: Option<String>,
    /// `if-none`: only when the request has no such header already.
    pub if_none: bool,
}

/// The HTTP rules of a `backend` section (a `listen` section's rules run
/// once, as its frontend's).
#[derive(Debug, Clone, Default)]
pub struct BackendHttp {
    /// The backend's own ACLs, which its rules' conditions refer to.
    pub acls: Vec<Acl>,
    /// Run after the backend was chosen, before a server is.
    pub http_request: Vec<HttpRequestRule>,
    /// `redirect` lines, after `http_request`.
    pub redirects: Vec<HttpRequestRule>,
    /// Run on the server's response before the frontend's.
    pub http_response: Vec<HttpResponseRule>,
    /// `http-after-response`: on every response, before the frontend's.
    pub http_after_response: Vec<HttpAfterRule>,
    /// `errorfile` pages; they win over the frontend's for errors tied to
    /// this backend.
    pub errorfiles: ErrorFiles,
    /// `option forwardfor` with its options.
    pub forwardfor: Option<ForwardFor>,
}

/// One `log` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub location: Location,
    pub sink: LogSink,
    pub format: LogFormat,
    /// Syslog facility number (local0 = 16).
    pub facility: u8,
    /// Most verbose level sent (syslog numbering; info = 6).
    pub level: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSink {
    Stdout,
    Stderr,
    /// UDP syslog (`<ip>[:<port>]`, port 514 by default).
    Udp(SocketAddr),
    /// A Unix datagram socket such as `/dev/log`.
    Unix(PathBuf),
}

/// `format raw|local|rfc3164|rfc5424`. The default is HAProxy 2.6's:
/// `local` (an RFC 3164 header without the host name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    Raw,
    #[default]
    Local,
    Rfc3164,
    Rfc5424,
}

/// Which access log line a proxy writes: none, `option tcplog` or
/// `option httplog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogStyle {
    #[default]
    None,
    Tcp,
    Http,
}

/// Access logging of one frontend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrontendLog {
    /// Its `log` lines, with `log global` expanded.
    pub targets: Vec<LogTarget>,
    pub style: LogStyle,
    /// `log-format`: the line written instead of the style's default.
    pub format: Option<std::sync::Arc<super::logline::LogLine>>,
    /// `option dontlognull`: no line for connections that sent nothing.
    pub dontlognull: bool,
}

/// `mode tcp|http`. HAProxy's default is `tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tcp,
    Http,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
        })
    }
}

/// HTTP connection handling, from `option http-keep-alive` (the default),
/// `option http-server-close` and `option httpclose`. The effective mode of a
/// request is the stronger of its frontend's and its backend's
/// (KeepAlive < ServerClose < Close), as in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum HttpConnMode {
    #[default]
    KeepAlive,
    ServerClose,
    Close,
}

/// wsgate's own WebSocket settings (`websocket <setting> ...`; not HAProxy
/// syntax). Empty by default: the tunnel is then a transparent pipe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketSettings {
    /// `websocket max-message-size`: close 1009 for a bigger client message.
    pub max_message_size: Option<u64>,
    /// `websocket max-frame-size`: close 1009 for a bigger client frame.
    pub max_frame_size: Option<u64>,
    /// `websocket strict`: handshake validation (400/426) and RFC 6455 frame
    /// checks (close 1002).
    pub strict: bool,
    /// `websocket allow-origin`: the Origins a handshake may come from
    /// (empty: any); others get 403 before any server is contacted.
    pub allow_origins: Vec<OriginPattern>,
    /// `websocket keepalive <interval> [timeout <time>]`: ping an idle
    /// client; (interval, timeout).
    pub keepalive: Option<(Duration, Duration)>,
    /// `websocket keepalive ... server`: ping the server too.
    pub keepalive_server: bool,
    /// `websocket rate-limit ...`: messages the client may send.
    pub rate_limit: Option<RateLimit>,
    /// `websocket rate-limit ... from server`: messages the server may send.
    pub server_rate_limit: Option<RateLimit>,
}

pub use super::websocket::{RateAction, RateLimit};

/// One `websocket allow-origin` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`
    Any,
    /// `https://app.example.com` (lowercased).
    Exact(String),
    /// `https://*.example.com`: any subdomain, not the domain itself.
    Subdomains { scheme: String, domain: String },
}

/// Index into [`Config::backends`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(pub usize);

#[derive(Debug, Clone)]
pub struct Frontend {
    pub name: String,
    pub location: Location,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    /// `default_backend`, resolved. `None` is valid: requests get 503.
    pub default_backend: Option<BackendId>,
    /// `maxconn` in the frontend; `None` (or 0 in the file) means the
    /// global value.
    pub maxconn: Option<u32>,
    pub timeouts: FrontendTimeouts,
    pub http_conn_mode: HttpConnMode,
    /// `option forwardfor` set on the frontend, with its options.
    pub forwardfor: Option<ForwardFor>,
    pub websocket: WebSocketSettings,
    /// ACLs, named and anonymous (`{ ... }`), referenced by index from
    /// the `use_backend` conditions.
    pub acls: Vec<Acl>,
    /// `use_backend` rules in order: the first whose condition holds
    /// chooses the backend, else `default_backend`.
    pub use_backends: Vec<UseBackend>,
    /// The stats page, when `stats` keywords enable it here.
    pub stats: Option<StatsPage>,
    /// `http-request use-service prometheus-exporter`.
    pub prometheus: Option<ServiceRule>,
    /// `stats admin if <cond>`: who may act on servers from the page.
    pub stats_admin: Option<ServiceRule>,
    /// `http-request` rules, in order.
    pub http_request: Vec<HttpRequestRule>,
    /// `tcp-request connection` rules, run when a connection is accepted.
    pub tcp_connection: Vec<super::tcp_rules::TcpRule>,
    /// Mode tcp content inspection (`tcp-request content` rules, fetches
    /// of the client's first bytes such as `req.ssl_sni`); `None` when
    /// nothing reads those bytes.
    pub inspection: Option<super::tcp_rules::Inspection>,
    /// `stick-table` declared in a frontend (`track-sc` rules use it).
    pub table: Option<super::persist::StickTable>,
    /// `redirect` lines, in order: run after the `http-request` rules.
    pub redirects: Vec<HttpRequestRule>,
    /// `http-response` rules, run after the backend's.
    pub http_response: Vec<HttpResponseRule>,
    /// `http-after-response` rules, run after the backend's.
    pub http_after_response: Vec<HttpAfterRule>,
    /// `errorfile` pages.
    pub errorfiles: ErrorFiles,
    /// `monitor-uri <uri>`: answered 200 by wsgate (503 when a `monitor
    /// fail` condition holds), as HAProxy does; `None` when not set.
    pub monitor_uri: Option<String>,
    /// `monitor fail if|unless <condition>` lines (any holding means 503).
    pub monitor_fail: Vec<Condition>,
    /// Access logs.
    pub log: FrontendLog,
}

/// One ACL: the `acl` lines of one name, OR-ed.
#[derive(Debug, Clone, PartialEq)]
pub struct Acl {
    /// The name (`{ ... }` for an anonymous ACL).
    pub name: String,
    pub terms: Vec<AclTerm>,
}

/// One `acl` line: fetch, match method, flags and values.
#[derive(Debug, Clone, PartialEq)]
pub struct AclTerm {
    pub fetch: AclFetch,
    pub method: MatchMethod,
    /// `-i`.
    pub ignore_case: bool,
    pub values: Vec<String>,
    /// The values parsed as networks, for `src` / `-m ip`.
    pub networks: Vec<Network>,
    /// The values compiled, for `-m reg` (`path_reg`, `url_reg`, ...).
    pub regexes: Vec<super::acl::AclRegex>,
    /// The values as inclusive integer ranges, for `-m int` (`eq 0`,
    /// `lt 2`, `1:5`).
    pub ints: Vec<(i64, i64)>,
}

/// What an ACL looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclFetch {
    /// `path`, `path_beg`, `path_end`, `path_sub`: the path, without query.
    Path,
    /// `hdr(<name>)` and its `_beg`/`_end`/`_sub`/`_dom` forms: every
    /// comma-separated value of every line of that header. Without a name
    /// (`hdr_beg -i ws.`), nothing: HAProxy 2.6 accepts it and never
    /// matches.
    Hdr(String),
    /// `url` and its forms, `capture.req.uri`: the request target as sent.
    Url,
    /// `hdr_cnt(<name>)`: how many comma-separated values the header has.
    HdrCnt(String),
    /// `url_param(<name>[,<delim>])` (`urlp`): every value of the query
    /// parameter (any parameter with a value when `name` is empty), as
    /// HAProxy reads them (see `proxy::route::url_params`).
    UrlParam(UrlParam),
    /// `dst_port`: the port the client connected to.
    DstPort,
    /// `nbsrv(<backend>)`: how many of its servers are usable now.
    Nbsrv(String),
    /// `sc_http_req_rate(0)`, `src_conn_cur(t)`...: a stick counter.
    Counter(super::track::CounterFetch),
    /// `rand(<n>)`: a random integer in `[0, n)` (`rand`: 32 bits).
    Rand(u64),
    Method,
    /// `src`: the client's address.
    Src,
    /// `ssl_fc`: the client connection is TLS.
    SslFc,
    /// `ssl_fc_sni`: the server name the client sent in its TLS handshake.
    SslFcSni,
    /// `ssl_fc_protocol`: the TLS version of the client connection, named
    /// as OpenSSL (and HAProxy) names it: `TLSv1.3`, `TLSv1.2`.
    SslFcProtocol,
    /// `req.ssl_sni`: the server name in a ClientHello that wsgate passes
    /// through without terminating TLS (mode tcp content inspection).
    ReqSslSni,
    /// `req.ssl_hello_type`: the type of the first TLS handshake message
    /// in the client's bytes (1: a ClientHello).
    ReqSslHelloType,
    /// `req.ssl_ver`: the version a ClientHello offers (`major << 16 |
    /// minor`; matched as `3.3`).
    ReqSslVer,
    /// `req.len`: how many bytes the client has sent so far.
    ReqLen,
    /// `wait_end`: true once content inspection stops waiting.
    WaitEnd,
    /// `ssl_c_used`, `ssl_c_s_dn(cn)`...: the client certificate of a
    /// `bind ... ssl ... verify optional|required`.
    ClientCert(CertFetch),
    AlwaysTrue,
    /// `http_auth(<userlist>)`: the request's `Authorization: Basic`
    /// credentials are a user of the list with the right password.
    HttpAuth(super::userlist::UserlistRef),
    /// `http_auth_group(<userlist>) <group>...`: the same, and the user is
    /// in one of the groups (yields the user's groups).
    HttpAuthGroup(super::userlist::UserlistRef),
}

/// `-m` match methods (each fetch has HAProxy's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMethod {
    Str,
    Beg,
    End,
    Sub,
    /// Matches a whole dot/slash-delimited part (`hdr_dom`).
    Dom,
    /// The fetch returns something.
    Found,
    Ip,
    Bool,
    /// Regular expression (`_reg`, `-m reg`).
    Reg,
    /// A whole slash-delimited part (`_dir`, `-m dir`).
    Dir,
    /// Integer ranges (`hdr_cnt`, `nbsrv`, `-m int`).
    Int,
    /// `-m bin`: the sample's bytes equal a pattern written in hex
    /// (patterns are kept upper-cased).
    Bin,
    /// `-m len`: the sample's length is in one of the integer ranges.
    Len,
}

/// The arguments of `url_param(<name>[,<delim>])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParam {
    /// Empty: every parameter that has a value, whatever its name.
    pub name: String,
    /// Where the parameters begin (`?` unless given); it also separates
    /// them, beside `&` and `;`.
    pub delim: u8,
}

/// An address with a prefix length (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub ip: std::net::IpAddr,
    pub prefix: u8,
}

/// `use_backend <backend> [if|unless <condition>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UseBackend {
    pub location: Location,
    pub backend: BackendId,
    pub condition: Option<Condition>,
}

/// `if|unless`: OR of AND-groups of (possibly negated) ACLs.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub unless: bool,
    /// Each group is AND-ed; groups are OR-ed (`||`).
    pub groups: Vec<Vec<CondTerm>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CondTerm {
    /// Index into [`Frontend::acls`].
    pub acl: usize,
    pub negate: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendTimeouts {
    /// `timeout client`: client-side inactivity.
    pub client: Option<Duration>,
    /// `timeout client-fin`: client-side inactivity once one direction is
    /// shut; overrides `client` and `tunnel`.
    pub client_fin: Option<Duration>,
    /// `timeout http-request`: time allowed to receive a complete request
    /// head (408 on expiry); falls back to `client` when unset.
    pub http_request: Option<Duration>,
    /// `timeout http-keep-alive`: idle time between two requests; falls back
    /// to `http-request`, then `client`.
    pub http_keep_alive: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub location: Location,
    pub addr: SocketAddr,
    /// `ssl crt <pem>`; `None` for plain TCP.
    pub ssl: Option<BindSsl>,
    /// `accept-proxy`: every connection starts with a PROXY protocol
    /// header (v1 or v2) whose addresses replace the connection's.
    pub accept_proxy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindSsl {
    /// Each `crt` argument, resolved relative to the working directory as
    /// HAProxy does (unless `crt-base` is set). Holds the certificate, the
    /// chain and usually the key; otherwise the key is in `<file>.key`.
    /// A directory stands for its files in lexical order.
    pub crt: Vec<PathBuf>,
    /// `crt` and `crt-list` arguments in the order written: the first
    /// certificate loaded from them is the default one (no or unknown SNI).
    /// When empty, `crt` is used (in its order).
    pub sources: Vec<CertSource>,
    /// `strict-sni`: refuse handshakes whose SNI matches no certificate.
    pub strict_sni: bool,
    /// Versions, ciphers, curves, tickets: the bind line's options over
    /// `ssl-default-bind-*` from `global`.
    pub settings: TlsSettings,
    /// `ca-file` + `verify optional|required`: client certificates.
    pub client_auth: Option<ClientAuth>,
}

/// Client certificates on a `bind ... ssl` (`ca-file`, `verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The CAs a client certificate must chain to.
    pub ca_file: PathBuf,
    /// `verify required`: a client without a certificate is refused in
    /// the handshake; `verify optional`: it may go on without one (a
    /// certificate it does present must still verify).
    pub required: bool,
    /// `crl-file`: revocation lists; with it, every certificate of the
    /// client's chain must be covered by one (OpenSSL's full-chain check,
    /// as in HAProxy).
    pub crl_file: Option<PathBuf>,
}

impl BindSsl {
    /// A bind with these `crt` and default settings.
    pub fn with_crt(crt: Vec<PathBuf>) -> BindSsl {
        BindSsl {
            crt,
            ..BindSsl::default()
        }
    }

    /// The certificate sources in order (`sources`, or else `crt`).
    pub fn cert_sources(&self) -> Vec<CertSource> {
        if self.sources.is_empty() {
            self.crt.iter().cloned().map(CertSource::Crt).collect()
        } else {
            self.sources.clone()
        }
    }
}

/// Where a bind's certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `crt <file|dir>`.
    Crt(PathBuf),
    /// `crt-list <file>`: one certificate per line with SNI filters.
    CrtList(PathBuf),
}

/// TLS protocol settings of a listener (bind options, or the global
/// `ssl-default-bind-*` defaults). `None` means wsgate's default: TLS 1.2
/// to 1.3, every suite and group in [`super::tls`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub min_ver: Option<TlsVersion>,
    pub max_ver: Option<TlsVersion>,
    /// `ciphers`: TLS 1.2 suites in preference order.
    pub ciphers: Option<Vec<CipherSuite>>,
    /// `ciphersuites`: TLS 1.3 suites in preference order.
    pub ciphersuites: Option<Vec<CipherSuite>>,
    /// `curves` (or `ecdhe`): key-exchange groups in preference order.
    pub curves: Option<Vec<KxGroup>>,
    /// `no-tls-tickets`: resumption by session id only.
    pub no_tls_tickets: bool,
    /// `prefer-client-ciphers`: the client's suite order wins (HAProxy's
    /// default is the server's).
    pub prefer_client_ciphers: bool,
}

/// `server ... ssl`: TLS to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSsl {
    /// `verify required` (HAProxy's default, `ssl-server-verify`) or
    /// `verify none`.
    pub verify: bool,
    /// `ca-file`: the CAs the server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// `crt <pem>`: a certificate (and its key, in the PEM or in
    /// `<pem>.key`) presented when the server asks for one (mutual TLS).
    pub crt: Option<PathBuf>,
    /// `sni <expr>`: the name sent (and verified); `None` sends none and
    /// verifies the chain only, as HAProxy does without `verifyhost`.
    pub sni: Option<SniExpr>,
    /// `alpn`: the protocols offered (`h2` left out: wsgate speaks
    /// HTTP/1.1 to servers); empty means `http/1.1`.
    pub alpn: Vec<String>,
}

/// `send-proxy`, `send-proxy-v2`, `send-proxy-v2-ssl`,
/// `send-proxy-v2-ssl-cn`, `proxy-v2-options`: a PROXY protocol header
/// before the first byte to the server (before TLS, as HAProxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendProxy {
    /// Version 2 (binary) rather than 1 (text).
    pub v2: bool,
    /// v2 `PP2_TYPE_SSL` TLV (`send-proxy-v2-ssl`, option `ssl`).
    pub ssl: bool,
    /// Its CN sub-TLV (`send-proxy-v2-ssl-cn`, option `cert-cn`).
    pub cert_cn: bool,
    /// Its cipher sub-TLV (option `ssl-cipher`).
    pub ssl_cipher: bool,
    /// `PP2_TYPE_AUTHORITY`: the client's SNI (option `authority`).
    pub authority: bool,
    /// `PP2_TYPE_CRC32C` (option `crc32c`).
    pub crc32c: bool,
}

/// The sample expressions `sni` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniExpr {
    /// `str(<name>)`.
    Str(String),
    /// `req.hdr(<name>)` (usually `host`; a port is removed).
    ReqHdr(String),
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub location: Location,
    pub mode: Mode,
    pub balance: Balance,
    pub servers: Vec<Server>,
    pub timeouts: BackendTimeouts,
    /// `retries`: connection attempts after the first one fails (default 3).
    pub retries: u32,
    /// `option redispatch`: a retry may pick another server.
    pub redispatch: bool,
    pub http_conn_mode: HttpConnMode,
    /// `http-request`/`http-response` rules, `errorfile` pages,
    /// `option forwardfor` options.
    pub http: BackendHttp,
    pub websocket: WebSocketSettings,
    /// `hash-type`: how hash-based algorithms map a key to a server.
    pub hash_type: HashType,
    /// `option tcp-check` and its script: health checks of the servers with
    /// `check` run it instead of a bare connect.
    pub tcp_check: Option<super::tcp_check::TcpCheck>,
    /// `hash-balance-factor` (0: off, else above 100): with consistent
    /// hashing or `random`, no server takes more than this percentage of
    /// the average load (open connections per unit of weight); a key whose
    /// server is over it goes on round the ring.
    pub hash_balance_factor: u32,
    /// `option allbackups`: when every active server is down, balance over
    /// all backup servers instead of only the first one.
    pub allbackups: bool,
    /// `option httpchk` (with `http-check expect`): health checks of the
    /// servers with `check` are HTTP requests instead of TCP connects.
    pub httpchk: Option<HttpCheck>,
    /// The stats page, for requests routed to this backend.
    pub stats: Option<StatsPage>,
    /// `cookie`, `option persist`, `stick-table`, `stick` rules.
    pub sticky: super::persist::Persistence,
}

/// `balance`. Only what the runtime implements is representable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balance {
    /// Smooth weighted round robin, HAProxy's default up to 3.2.
    #[default]
    RoundRobin,
    /// `static-rr`: HAProxy's static weighted map, walked in turn.
    StaticRr,
    /// `leastconn`: fewest open connections (tunnels included) per weight.
    LeastConn,
    /// `first`: the lowest server id with a free `maxconn` slot.
    First,
    /// `source`: hash of the client address.
    Source,
    /// `uri [len N] [depth N] [whole] [path-only]`.
    Uri {
        len: u32,
        depth: u32,
        whole: bool,
        path_only: bool,
    },
    /// `url_param <name>`: hash of a query-string parameter's value.
    UrlParam(String),
    /// `hdr(<name>) [use_domain_only]`: hash of a request header's value.
    Hdr { name: String, use_domain_only: bool },
    /// `random[(<draws>)]`: random keys on the consistent-hash ring, the
    /// least loaded of `draws` picks (default 2).
    Random { draws: u32 },
}

impl Balance {
    /// Whether the algorithm hashes a request key (and so pins a key to a
    /// server even when that server is at its `maxconn`: the request waits
    /// in the server's queue, as in HAProxy).
    pub fn is_hash(&self) -> bool {
        matches!(
            self,
            Balance::Source | Balance::Uri { .. } | Balance::UrlParam(_) | Balance::Hdr { .. }
        )
    }
}

/// `hash-type <method> [<function>] [avalanche]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashType {
    pub consistent: bool,
    pub function: HashFunction,
    pub avalanche: bool,
}

impl Default for HashType {
    /// `map-based sdbm`, HAProxy's default.
    fn default() -> Self {
        HashType {
            consistent: false,
            function: HashFunction::Sdbm,
            avalanche: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashFunction {
    #[default]
    Sdbm,
    Djb2,
    Wt6,
    Crc32,
}

/// `option httpchk [<method> <uri> [<version>]]` and `http-check expect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub method: String,
    pub uri: String,
    pub version: String,
    /// Extra request headers (`http-check send hdr`, or after `\r\n` in
    /// `option httpchk`'s version), and a body (`http-check send body`).
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// `http-check expect`; `None` means any 2xx or 3xx status.
    pub expect: Option<HttpExpect>,
}

impl Default for HttpCheck {
    /// `OPTIONS / HTTP/1.0`, as in HAProxy.
    fn default() -> Self {
        HttpCheck {
            method: "OPTIONS".into(),
            uri: "/".into(),
            version: "HTTP/1.0".into(),
            headers: Vec::new(),
            body: String::new(),
            expect: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpExpect {
    /// `http-check expect [!] status <codes>`: a comma-separated list of
    /// codes and `lo-hi` ranges, as HAProxy 2.2+ reads it.
    Status {
        codes: Vec<(u16, u16)>,
        negate: bool,
    },
    /// `http-check expect [!] rstatus <regex>`: the three-digit code
    /// matches the regular expression (anywhere, as HAProxy's).
    RStatus {
        regex: super::acl::AclRegex,
        negate: bool,
    },
    /// `http-check expect [!] string <text>`: the body contains it.
    String { text: String, negate: bool },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendTimeouts {
    /// `timeout connect`: TCP connect to a server (503 on expiry).
    pub connect: Option<Duration>,
    /// `timeout server`: server-side inactivity (504 before the response
    /// head arrives).
    pub server: Option<Duration>,
    /// `timeout server-fin`: server-side inactivity once one direction is
    /// shut.
    pub server_fin: Option<Duration>,
    /// `timeout tunnel`: inactivity in both directions once the connection
    /// is a tunnel (after `101 Switching Protocols`, or in `mode tcp`);
    /// replaces `client` and `server`.
    pub tunnel: Option<Duration>,
    /// `timeout http-keep-alive` when set on the backend (HAProxy accepts it
    /// there too); the frontend value wins when both are set.
    pub http_keep_alive: Option<Duration>,
    /// `timeout queue`: how long a request may wait for a server slot
    /// (`maxconn`); falls back to `timeout connect`; 503 on expiry.
    pub queue: Option<Duration>,
    /// `timeout check`: extra read time for a health check once connected;
    /// unset means `inter` bounds the whole check.
    pub check: Option<Duration>,
}

/// Where a server is. `init-addr none` and an empty `server-template`
/// slot leave a server without an address: it stays in maintenance
/// (HAProxy's "MAINT (resolution)") whatever its administrative state,
/// until `set server ... addr` gives it one. A type rather than a
/// placeholder such as 0.0.0.0, which Linux would connect as 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    Known(SocketAddr),
    /// No address yet; the port from the configuration.
    Unresolved {
        port: u16,
    },
}

impl ServerAddr {
    /// The address to connect to, if there is one.
    pub fn known(self) -> Option<SocketAddr> {
        match self {
            ServerAddr::Known(a) => Some(a),
            ServerAddr::Unresolved { .. } => None,
        }
    }

    pub fn port(self) -> u16 {
        match self {
            ServerAddr::Known(a) => a.port(),
            ServerAddr::Unresolved { port } => port,
        }
    }
}

/// `127.0.0.1:80`, or `-:80` without an address (HAProxy prints `-` for
/// a server's missing address).
impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Known(a) => a.fmt(f),
            ServerAddr::Unresolved { port } => write!(f, "-:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub location: Location,
    pub addr: ServerAddr,
    /// `weight` 0..=256, default 1. 0 means "never chosen by the balancer".
    pub weight: u32,
    /// `disabled`: starts in maintenance, never chosen.
    pub disabled: bool,
    /// `id`: the server's numeric id (`puid`); assigned in declaration
    /// order from the lowest free value when not given, as HAProxy does.
    /// Consistent hashing places servers on the ring by id.
    pub id: u32,
    /// `backup`: used only when no active server is usable.
    pub backup: bool,
    /// `on-marked-down shutdown-sessions`: when checks mark the server
    /// down, its open tunnels are closed (WebSockets with 1012 at a
    /// message boundary) so clients reconnect to a live server at once.
    pub shutdown_on_down: bool,
    /// `on-marked-up shutdown-backup-sessions`: when this (non-backup)
    /// server comes up, the tunnels on the backend's backup servers are
    /// closed, so clients move back to the primaries.
    pub shutdown_backups_on_up: bool,
    /// `maxconn`: concurrent connections (0 = unlimited); excess requests
    /// wait in a queue for up to `timeout queue`.
    pub maxconn: u32,
    /// `maxqueue`: requests allowed to wait for this server (0 = unlimited).
    pub maxqueue: u32,
    /// `check` and its timings; `None` when the server is not checked (it
    /// is then always considered up).
    pub check: Option<ServerCheck>,
    /// `ssl`: connections to the server use TLS.
    pub ssl: Option<ServerSsl>,
    /// `redir <prefix>`: GET and HEAD requests for this server are answered
    /// `302` to `<prefix><path>` instead of being forwarded.
    pub redir: Option<String>,
    /// `send-proxy*`: connections start with a PROXY protocol header.
    pub send_proxy: Option<SendProxy>,
    /// `cookie <value>`: the persistence cookie value naming this server.
    pub cookie: Option<String>,
    /// `non-stick`: requests it serves are not stored in stick tables.
    pub non_stick: bool,
    /// `observe`, `error-limit`, `on-error`: passive health from the
    /// server's live traffic.
    pub passive: Passive,
    /// `slowstart`, in whole seconds (rounded up, as HAProxy stores it; 0:
    /// off): after the server comes back up its weight and `maxconn` ramp
    /// up over this period instead of taking a full share at once.
    pub slowstart: u32,
}

/// Passive health (`observe layer4|layer7`, `error-limit`, `on-error`):
/// `error-limit` consecutive errors in real traffic act like a failed
/// health check, as `on-error` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passive {
    /// `None`: not observed (the default).
    pub observe: Option<Observe>,
    /// `error-limit` (default 10).
    pub error_limit: u32,
    /// `on-error` (default `fail-check`).
    pub on_error: OnError,
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            observe: None,
            error_limit: 10,
            on_error: OnError::FailCheck,
        }
    }
}

/// `observe layer4|layer7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    /// Connections to the server: refused or timed out is an error, an
    /// established one clears the count.
    Layer4,
    /// Responses too (mode http): 100-499, 501 and 505 clear the count,
    /// other 5xx (wsgate's own 502 and 504 for a bad or missing response
    /// included) and failed connections are errors.
    Layer7,
}

/// `on-error fastinter|fail-check|sudden-death|mark-down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Only check sooner (`fastinter`), as all the others also do.
    FastInter,
    /// Count as one failed check.
    FailCheck,
    /// Leave the server one failed check from DOWN, then count one.
    SuddenDeath,
    /// Mark the server DOWN at once.
    MarkDown,
}

/// Health-check settings of one server (`check`, `inter`, `fastinter`,
/// `downinter`, `rise`, `fall`, `port`, `addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCheck {
    /// `inter` (default 2s): between checks while the server is stable.
    pub inter: Duration,
    /// `fastinter` (default `inter`): while a state change is under way.
    pub fastinter: Duration,
    /// `downinter` (default `inter`): while the server is fully down.
    pub downinter: Duration,
    /// `rise` (default 2): consecutive successes to go up.
    pub rise: u32,
    /// `fall` (default 3): consecutive failures to go down.
    pub fall: u32,
    /// Where checks connect: the server address, with `addr`/`port`
    /// applied; without a server address (and no `addr`), wherever
    /// `set server ... addr` puts the server, on this port.
    pub target: ServerAddr,
    /// Checks over TLS (`check-ssl`, or `ssl` without `port`/`addr`),
    /// with the server's TLS settings.
    pub ssl: Option<ServerSsl>,
    /// Checks start with a PROXY header (`check-send-proxy`, or
    /// `send-proxy*` without `port`/`addr`).
    pub send_proxy: Option<SendProxy>,
}
