//! The one keyword table: every keyword wsgate knows, per section, with its
//! status (supported, ignored with a warning, rejected with a reason).
//!
//! Principle 1 of DESIGN.md: compatibility is a table, not a hope. The
//! parser looks every line up here, `wsgate --list-keywords` prints the
//! table, and `docs/config.md` is generated from it, so the three can never
//! disagree. Supported entries carry the handler (in `handlers`) that turns
//! the arguments into model values; ignored entries only warn, and only when
//! ignoring them cannot change what a client or server sees in a way the
//! user relies on; everything else is rejected with the reason and, where
//! one exists, the wsgate way to get the same effect. `bind` and `server`
//! options have their own small tables below, with the same statuses.
//!
//! Sections follow HAProxy's keyword matrix (manual §4.1).

use super::handlers as h;
use super::handlers_health as hh;
use super::handlers_obs as o;
use super::http_rules as r;
use super::parser::{Cx, GlobalDraft, ProxyDraft};
use super::process;

/// A set of sections, as in the manual's keyword matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections(u8);

impl Sections {
    pub const GLOBAL: Sections = Sections(1);
    pub const DEFAULTS: Sections = Sections(2);
    pub const FRONTEND: Sections = Sections(4);
    pub const LISTEN: Sections = Sections(8);
    pub const BACKEND: Sections = Sections(16);

    pub fn contains(self, other: Sections) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: Sections) -> bool {
        self.0 & other.0 != 0
    }

    /// "the global section" / "defaults, frontend or listen sections".
    pub fn describe(self) -> String {
        if self == G {
            return "the global section".into();
        }
        let names: Vec<&str> = [
            (Sections::DEFAULTS, "defaults"),
            (Sections::FRONTEND, "frontend"),
            (Sections::LISTEN, "listen"),
            (Sections::BACKEND, "backend"),
        ]
        .iter()
        .filter(|(s, _)| self.contains(*s))
        .map(|(_, n)| *n)
        .collect();
        match names.as_slice() {
            [one] => format!("a {one} section"),
            [init @ .., last] => format!("{} or {last} sections", init.join(", ")),
            [] => "no section".into(),
        }
    }

    fn cell(self, s: Sections) -> &'static str {
        if self.contains(s) {
            "x"
        } else {
            ""
        }
    }
}

impl std::ops::BitOr for Sections {
    type Output = Sections;
    fn bitor(self, rhs: Sections) -> Sections {
        Sections(self.0 | rhs.0)
    }
}

const G: Sections = Sections::GLOBAL;
/// defaults, frontend, listen, backend.
const DFLB: Sections = Sections(2 | 4 | 8 | 16);
/// defaults, frontend, listen: the client side.
const DFL: Sections = Sections(2 | 4 | 8);
/// defaults, listen, backend: the server side.
const DLB: Sections = Sections(2 | 8 | 16);
/// frontend, listen.
const FL: Sections = Sections(4 | 8);
/// listen, backend.
const LB: Sections = Sections(8 | 16);
/// frontend, listen, backend.
const FLB: Sections = Sections(4 | 8 | 16);
/// Everywhere (`log`).
const ALL: Sections = Sections(1 | 2 | 4 | 8 | 16);

/// What a supported keyword's handler fills in.
#[derive(Clone, Copy)]
pub enum Handler {
    Global(fn(&mut GlobalDraft, &mut Cx<'_>)),
    Proxy(fn(&mut ProxyDraft, &mut Cx<'_>)),
    /// Keywords valid in `global` and in proxies, with different meanings.
    Either {
        global: fn(&mut GlobalDraft, &mut Cx<'_>),
        proxy: fn(&mut ProxyDraft, &mut Cx<'_>),
    },
}

/// What wsgate does with a keyword.
#[derive(Clone, Copy)]
pub enum Status {
    /// Implemented with HAProxy's meaning.
    Supported(Handler),
    /// Accepted with a warning giving the reason; ignoring it does not
    /// change behaviour a configuration relies on.
    Ignored(&'static str),
    /// Refused with an error: the reason, and the way to get the same
    /// effect in wsgate where there is one.
    Rejected {
        reason: &'static str,
        alternative: Option<&'static str>,
    },
    /// An option asking for a lenient mode wsgate does not have: refused as
    /// [`Status::Rejected`], while its `no option` form, which asks for what
    /// wsgate always does, is accepted without a word (configurations write
    /// it to undo the option set in a `defaults` section).
    Lenient {
        reason: &'static str,
        alternative: &'static str,
    },
}

/// One row of the table.
pub struct Keyword {
    /// One or two words (`timeout client`, `option forwardfor`).
    pub name: &'static str,
    pub sections: Sections,
    pub status: Status,
    /// One line for `--list-keywords`: syntax and default.
    pub summary: &'static str,
}

impl Keyword {
    /// `no option X` is HAProxy syntax for options and `log`.
    pub fn negatable(&self) -> bool {
        self.name.starts_with("option ") || self.name == "log"
    }
}

const fn sup(
    name: &'static str,
    sections: Sections,
    handler: Handler,
    summary: &'static str,
) -> Keyword {
    Keyword {
        name,
        sections,
        status: Status::Supported(handler),
        summary,
    }
}

const fn ign(name: &'static str, sections: Sections, reason: &'static str) -> Keyword {
    Keyword {
        name,
        sections,
        status: Status::Ignored(reason),
        summary: "",
    }
}

const fn rej(
    name: &'static str,
    sections: Sections,
    reason: &'static str,
    alternative: Option<&'static str>,
) -> Keyword {
    Keyword {
        name,
        sections,
        status: Status::Rejected {
            reason,
            alternative,
        },
        summary: "",
    }
}

const fn lenient(
    name: &'static str,
    sections: Sections,
    reason: &'static str,
    alternative: &'static str,
) -> Keyword {
    Keyword {
        name,
        sections,
        status: Status::Lenient {
            reason,
            alternative,
        },
        summary: "",
    }
}

const LOGGING_LATER: &str = "of the logging options, `option httplog`, `option tcplog`, `option dontlognull` and `log-format` are implemented; this one is not yet";
const NO_AGENT: &str =
    "agent checks are not implemented; the server's state comes from `check` only";
const DHE: &str = "wsgate offers ECDHE key exchange only (rustls has no finite-field DHE), which every current client supports and is faster and safer than DHE, so no DH parameters are needed";
pub const NO_CHROOT: &str = "wsgate reloads in process and re-reads the configuration, certificates and error files from their paths, which a chroot would hide; confine it with the service manager instead (systemd `ProtectSystem=strict`, `RootDirectory=`)";

/// Every keyword wsgate knows (the docs list them sorted by name).
pub static KEYWORDS: &[Keyword] = &[
    sup("acl", DFLB, Handler::Proxy(h::acl), "`acl <name> <fetch> [-i] [-m str|beg|end|sub|dom|dir|reg|int|len|bin|found|ip|bool] [-f <file>]... [--] [values...]`; `-f`: patterns from a file, one per line (leading blanks dropped, `#` in the first column for comments, empty lines skipped; a relative path is taken from the working directory; a missing file is an environment error, not read by `-c --syntax-only`; anonymous `{ src -f <file> }` too); fetches (each with HAProxy's default match) path, path_beg, path_end, path_sub, path_reg, path_dir, path_dom, path_len, url, url_beg, url_end, url_sub, url_reg, url_dir, url_dom, url_len, capture.req.uri, url_param([<name>[,<delim>]]) (`urlp`; as HAProxy 2.6: parameters after the first `?` or <delim>, separated by `&`, `;` or <delim>, only those with a `=`, every occurrence) and urlp_beg|end|sub|reg|dir|dom|len|val, hdr() (req.hdr()), hdr_beg|end|sub|dom|reg|dir|len(), hdr_cnt(), method, src, dst_port, nbsrv(<backend>), ssl_fc, ssl_fc_sni, ssl_fc_protocol (`TLSv1.2`, `TLSv1.3`), ssl_c_*, req.ssl_sni, req.ssl_hello_type, req.ssl_ver, req.len, wait_end, rand(), stick counters (sc_*, src_*), always_true, http_auth(<userlist>), http_auth_group(<userlist>) <group>...; HAProxy's predefined ACLs (TRUE, LOCALHOST, METH_*, HTTP_URL_*, REQ_CONTENT, WAIT_END); `-m int` takes `eq|lt|le|gt|ge <n>` and `<lo>:<hi>` ranges, as does `-m len` for the sample's length; lines with one name are OR-ed; in a named `defaults` section (HAProxy 2.5+) an ACL is seen only by that section's own rules, declared above them, never by the proxies using it; HAProxy refuses it in an anonymous one, where wsgate applies it, with its section's rules, at the top of each frontend and listen section using the section (each backend when only backends do), with a warning (`wsgate migrate` moves the lines there)"),
    ign("backlog", DFL, "the listen backlog uses the system default"),
    sup("balance", DLB, Handler::Proxy(h::balance), "`balance roundrobin|static-rr|leastconn|first|source|uri [len N] [depth N] [whole] [path-only]|url_param <name>|hdr(<name>) [use_domain_only]|random[(<draws>)]` (default roundrobin, as HAProxy up to 3.2); roundrobin and static-rr choose servers in HAProxy 2.6's exact order (roundrobin is HAProxy's fast weighted round robin, weight changes at run time included: 3:1 gives a a a b), and hash-based choices are the same as HAProxy 2.6's"),
    sup("bind", FL, Handler::Proxy(h::bind), "`bind <addr>:<port>[,...] [ssl crt <pem|dir> ... | crt-list <file>] [strict-sni] [ssl-min-ver ..] [ciphers ..] [alpn ..]`; `*:80`, `:80`, `[::]:443`, `ipv6@::1:80`, port ranges `8000-8010`"),
    ign("ca-base", G, "CA files are only used by options wsgate does not support yet"),
    ign("capture", FL, "header captures are not implemented: `%hr` and `%hs` in access logs print nothing"),
    sup("chroot", G, Handler::Global(process::chroot), "`chroot <dir>`: ignored with a warning (wsgate reloads in process and re-reads its files from their paths; confine it with the service manager); a directory missing on this machine is reported as an environment warning, since HAProxy would not start"),
    ign("compression", DFLB, "response compression is not implemented: responses go out as the server sent them (uncompressed responses are still correct HTTP; WebSocket frames are never compressed by HAProxy either)"),
    sup("cookie", DLB, Handler::Proxy(super::persist::cookie), "`cookie <name> [rewrite|insert|prefix] [indirect] [nocache] [postonly] [preserve] [httponly] [secure] [domain <d>]* [maxidle <time>] [maxlife <time>] [attr <a>]* [dynamic]` with `server ... cookie <value>`: a client's cookie sends it back to its server (mode http; times in seconds unless suffixed); `dynamic`: servers without a value get HAProxy's value derived from `dynamic-cookie-key`, their address and port"),
    ign("cpu-map", G, "threads are not pinned to CPUs"),
    sup("close-spread-time", G, Handler::Global(process::close_spread_time), "`close-spread-time <time|infinite>`: on stop, each WebSocket gets its close 1001 at a random moment within this window instead of all at once (`infinite`: wsgate closes none; `hard-stop-after` still ends the process)"),
    sup("crt-base", G, Handler::Global(h::crt_base), "`crt-base <dir>`: where relative `crt` paths are resolved (default: the working directory)"),
    ign("daemon", G, "wsgate stays in the foreground; run it under your service manager"),
    ign("debug", G, "use WSGATE_LOG=debug for debug output"),
    sup("default-path", G, Handler::Global(h::default_path), "`default-path current|config|parent|origin <dir>`: base of relative paths (default current)"),
    ign("declare", FL, "`declare capture` only feeds captures, which are not implemented: `%hr` and `%hs` in access logs print nothing"),
    sup("default-server", DLB, Handler::Proxy(h::default_server), "`default-server [weight N] [disabled] ...`: defaults for later `server` lines"),
    sup("default_backend", DFL, Handler::Proxy(h::default_backend), "`default_backend <backend>`"),
    sup("errorfile", DFLB, Handler::Proxy(super::errorfile::errorfile), "`errorfile <code> <file>`: the file (a full raw HTTP response, read at start) is sent instead of the built-in page for 200 400 401 403 404 405 407 408 410 413 421 422 425 429 500 501 502 503 504; a backend's page wins for errors tied to it"),
    rej("errorfiles", DFLB, "`errorfiles` refers to `http-errors` sections, which are not supported", Some("write one `errorfile <code> <file>` line per status")),
    sup("dynamic-cookie-key", DLB, Handler::Proxy(super::persist::dynamic_cookie_key), "`dynamic-cookie-key <key>`: the secret of `cookie ... dynamic` values (HAProxy's: the same key gives a server the same value in every HAProxy and wsgate)"),
    ign("fullconn", DLB, "only matters with dynamic server maxconn, which is not implemented"),
    sup("grace", ALL, Handler::Either { global: process::grace, proxy: process::grace_proxy }, "`grace <time>` (global): after a stop signal wsgate keeps serving as usual for this long, then stops; after a reload, WebSockets on removed servers get their 1012 this long later; in a proxy section it is ignored with a warning"),
    sup("gid", G, Handler::Global(process::gid), "`gid <number>`: the group wsgate switches to once its sockets are bound (supplementary groups cleared)"),
    sup("group", G, Handler::Global(process::group), "`group <name>`: like `gid`, by name"),
    sup("hard-stop-after", G, Handler::Global(h::hard_stop_after), "`hard-stop-after <time>`: on stop, how long open connections get (WebSockets are closed with 1001 first) before the process exits; wsgate's default is 30s"),
    sup("hash-balance-factor", DLB, Handler::Proxy(h::hash_balance_factor), "`hash-balance-factor <n>` (0, the default: off; else above 100): consistent hashing with bounded loads for `hash-type consistent` and `balance random`: a server with more than n% of the average open connections per unit of weight is passed over for the next one on the ring, with HAProxy's slot arithmetic"),
    sup("hash-type", DLB, Handler::Proxy(h::hash_type), "`hash-type map-based|consistent [sdbm|djb2|wt6|crc32] [avalanche]` (default map-based sdbm; consistent alone means sdbm avalanche)"),
    sup("http-after-response", DFLB, Handler::Proxy(r::http_after_response), "`http-after-response set-header|add-header|del-header|replace-header|replace-value ...|set-status <code> [reason <text>]|allow [if|unless <condition>]`: on every response the client gets, the server's (after `http-response` rules) and wsgate's own (errors, redirects, `return`, `auth`, stats, metrics, `monitor-uri`; as in HAProxy, not the 400/408 for a request that could not be read); the backend's rules run before the frontend's; conditions and `<fmt>` as in `http-response`; in a named `defaults` section (HAProxy 2.5+) the rules run before those of each proxy using it, which may then be frontends or backends but not both, nor `listen` sections; HAProxy refuses them in an anonymous one, where wsgate applies them at the top of each frontend and listen section using the section (each backend when only backends do: once per request either way), with a warning (`wsgate migrate` moves the lines there)"),
    sup("http-check", DLB, Handler::Proxy(h::http_check), "`http-check expect [!] status <codes>|rstatus <regex>|string <text>` (default: any 2xx or 3xx is healthy; `<codes>`: codes and `lo-hi` ranges, comma-separated; `rstatus` matches the three-digit code; `string` looks in the body whatever the status; the failures are logged in HAProxy 2.6's words: `Layer7 wrong status`, `Layer7 invalid response`); the request of a bare `option httpchk` is `OPTIONS / HTTP/1.0`; `http-check send [meth <m>] [uri <u>] [ver <v>] [hdr <name> <value>]... [body <s>]`; `http-check disable-on-404` (read as a failed check, with a warning)"),
    sup("http-request", DFLB, Handler::Proxy(r::http_request), "`http-request <action> [if|unless <condition>]`, in order, the first of allow/deny/return/redirect stopping the list: `set-header|add-header <name> <fmt>`, `del-header <name> [-m str|beg|end|sub|reg]`, `replace-header|replace-value <name> <regex> <fmt>`, `set-path|set-query|set-uri <fmt>`, `replace-path|replace-uri <regex> <fmt>`, `allow`, `deny [deny_status <code>]`, `return [status <code>] [content-type <type>] [string <text>|lf-string <fmt>|file <path>] [hdr <name> <fmt>]...`, `redirect location|prefix|scheme <x> [code <n>] [drop-query] [append-slash]`, `auth [realm <realm>]` (401 with `WWW-Authenticate: Basic`, realm the proxy's name by default), `use-service prometheus-exporter`; `<fmt>` is text with %[src], %[src_port], %[dst], %[dst_port], %[hdr(<name>)], %[req.hdr(<name>)], %[path], %[url], %[query], %[method], %[ssl_fc], %[ssl_fc_protocol], %[ssl_fc_sni], %ci %cp %fi %fp, and `\\1`.. in replace-*; backend rules run after the frontend's; Content-Length and Transfer-Encoding cannot be changed; `capture` is ignored with a warning; other actions are errors; in a named `defaults` section (HAProxy 2.5+) the rules run before those of each proxy using it, which may then be frontends or backends but not both, nor `listen` sections; HAProxy refuses them in an anonymous one, where wsgate applies them at the top of each frontend and listen section using the section (each backend when only backends do: once per request either way), with a warning (`wsgate migrate` moves the lines there)"),
    sup("http-response", DFLB, Handler::Proxy(r::http_response), "`http-response set-header|add-header|del-header|replace-header|replace-value ...|allow|deny [deny_status <code>] [if|unless <condition>]` (default deny status 502), on the response head before the client gets it (101 included); conditions are evaluated on the request (HAProxy never matches request fetches there); `<fmt>` may use %[status], %[hdr(<name>)] and %[res.hdr(<name>)] (the response's), not the request's fetches; the backend's rules run before the frontend's; in a named `defaults` section (HAProxy 2.5+) the rules run before those of each proxy using it, which may then be frontends or backends but not both, nor `listen` sections; HAProxy refuses them in an anonymous one, where wsgate applies them at the top of each frontend and listen section using the section (each backend when only backends do: once per request either way), with a warning (`wsgate migrate` moves the lines there)"),
    ign("http-reuse", DLB, "idle server connections are not shared between clients yet"),
    sup("log", ALL, Handler::Either { global: o::log_global, proxy: o::log_proxy }, "`log stdout|stderr|<ip>[:<port>]|<path> [format raw|local|rfc3164|rfc5424] <facility> [<level>]`, `log global`, `no log`; access lines need `option httplog` or `option tcplog`"),
    sup("log-format", DFLB, Handler::Proxy(o::log_format), "`log-format <fmt>`: the access log line from HAProxy's log variables (`%ci %cp %fi %fp %si %sp %f %ft %b %s %ST %B %U %Tq %TR %Tw %Tc %Tr %Ta %Tt %Td %ts %tsc %ac %fc %bc %sc %rc %sq %bq %r %HM %HU %HP %HPO %HQ %HV %t %tr %T %Tl %Ts %ms %pid %H`, `%{+Q,+X,+E}` options) and `%[<sample>]`; unknown variables are errors; ignored in backends, as in HAProxy"),
    ign("log-send-hostname", G, LOGGING_LATER),
    ign("log-tag", G, LOGGING_LATER),
    rej("lua-load", G, "Lua scripts are not supported", None),
    rej("lua-load-per-thread", G, "Lua scripts are not supported", None),
    ign("master-worker", G, "wsgate is a single process that reloads in place"),
    ign("bind-process", DFLB, "processes were removed in HAProxy 2.5 (`bind-process` has had no effect since); wsgate is one multi-threaded process"),
    ign("stats bind-process", G, "processes were removed in HAProxy 2.5; wsgate is one multi-threaded process"),
    ign("option independent-streams", DFLB, "inside a tunnel wsgate's inactivity timeouts count traffic in either direction, and `timeout client-fin`/`server-fin` apply after a half-close; this option changes nothing"),
    sup("maxconn", Sections(1 | 2 | 4 | 8), Handler::Either { global: h::maxconn_global, proxy: h::maxconn_proxy }, "`maxconn <n>`: global cap, or per frontend (0 = the global value)"),
    sup("mode", DFLB, Handler::Proxy(h::mode), "`mode http|tcp` (default tcp)"),
    sup("monitor", FL, Handler::Proxy(hh::monitor), "`monitor fail if|unless <condition>`: the monitor URI answers 503 when it holds"),
    sup("monitor-uri", DFL, Handler::Proxy(hh::monitor_uri), "`monitor-uri <uri>`: wsgate answers 200 to this exact request target (a health probe for the proxy itself), not logged; mode http"),
    ign("nbproc", G, "removed in HAProxy 2.5; wsgate is one multi-threaded process"),
    sup("nbthread", G, Handler::Global(h::nbthread), "`nbthread <n>`: worker threads (default: one per CPU the process may run on)"),
    ign("option abortonclose", DLB, "a request whose client has gone is still forwarded; its response is discarded"),
    lenient("option accept-invalid-http-request", DFL, "wsgate parses HTTP/1.1 strictly (RFC 9112) and has no lenient mode: ambiguous requests are how requests get smuggled", "fix the client, or remove the line to get 400 for invalid requests"),
    lenient("option accept-invalid-http-response", DLB, "wsgate parses HTTP/1.1 strictly (RFC 9112) and has no lenient mode", "fix the server, or remove the line to get 502 for invalid responses"),
    sup("option allbackups", DLB, Handler::Proxy(h::option_allbackups), "when all active servers are down, use every backup server, not only the first"),
    ign("option clitcpka", DFL, "TCP keepalive is not configurable yet"),
    ign("option contstats", DFL, "byte counters are updated when an exchange or tunnel ends (long tunnels report their bytes when they close)"),
    sup("option dontlognull", DFL, Handler::Proxy(o::option_dontlognull), "no log line for connections that sent no request"),
    ign("option dontlog-normal", DFL, LOGGING_LATER),
    sup("option forwardfor", DFLB, Handler::Proxy(h::option_forwardfor), "`option forwardfor [except <network>] [header <name>] [if-none]`: add the client's address in X-Forwarded-For (or `<name>`; the backend's name wins), except for clients in either proxy's `except` network, and with `if-none` only when the request has none"),
    sup("option http-keep-alive", DFLB, Handler::Proxy(h::option_http_keep_alive), "keep-alive on both sides (the default)"),
    ign("option http-buffer-request", DFLB, "requests are streamed to the server"),
    ign("option http-ignore-probes", DFL, LOGGING_LATER),
    ign("option http-pretend-keepalive", DLB, "only mattered with `http-server-close` against old servers"),
    sup("option http-server-close", DFLB, Handler::Proxy(h::option_http_server_close), "close the server connection after each response"),
    sup("option httpchk", DLB, Handler::Proxy(h::option_httpchk), "`option httpchk [<method> <uri> [<version>]]` (default `OPTIONS / HTTP/1.0`; headers after `\\r\\n` in the version, the pre-2.2 idiom, are sent); 2xx/3xx is healthy"),
    sup("option tcp-check", DLB, Handler::Proxy(super::tcp_check::option_tcp_check), "health checks of servers with `check` run the section's `tcp-check` script (connect only when it has none); the last of `option httpchk` and `option tcp-check` wins"),
    sup("option httpclose", DFLB, Handler::Proxy(h::option_httpclose), "close both connections after each response"),
    sup("option httplog", DFLB, Handler::Proxy(o::option_httplog), "access log lines in HAProxy's default HTTP format (WebSocket tunnels logged when they close)"),
    ign("option log-health-checks", DLB, LOGGING_LATER),
    ign("option log-separate-errors", DFL, LOGGING_LATER),
    ign("option logasap", DFL, LOGGING_LATER),
    ign("option prefer-last-server", DLB, "servers are chosen by the balancer on every new connection"),
    sup("websocket max-message-size", DFLB, Handler::Proxy(super::websocket::max_message_size), "`websocket max-message-size <size>` (wsgate): close 1009 for a bigger client message (all its fragments), 1001 to its server. The size is the wire size: with permessage-deflate, compressed bytes (a message that inflates past the limit passes)"),
    sup("websocket max-frame-size", DFLB, Handler::Proxy(super::websocket::max_frame_size), "`websocket max-frame-size <size>` (wsgate): close 1009 for a bigger client frame, 1001 to its server. The size is the wire size: with permessage-deflate, compressed bytes"),
    sup("websocket strict", DFLB, Handler::Proxy(super::websocket::strict), "`websocket strict` (wsgate): 400/426 for bad handshakes; close 1002 \"protocol error\" to the sender (1001 \"peer violated the WebSocket policy\" to the other side) for RFC 6455 violations in either direction: masking, RSV bits (RSV1 only on a message's first frame, only when the server's 101 accepted permessage-deflate), reserved opcodes, bad control frames, fragmentation, close frames with a 1-byte payload, a code that may not be sent or a non-UTF-8 reason"),
    sup("websocket keepalive", DFLB, Handler::Proxy(super::websocket::keepalive), "`websocket keepalive <interval> [timeout <time>] [server]` (wsgate): ping idle clients (and servers with `server`), pongs taken out; close 1001 when a ping goes unanswered. Parked tunnels (`tune.idle-park`) are pinged and reaped on time too"),
    sup("websocket rate-limit", DFLB, Handler::Proxy(super::websocket::rate_limit), "`websocket rate-limit <n> per <time> [burst <m>] [action close|drop] [from client|server]` (wsgate): messages per connection; over it close 1008 (1001 to the other side) or drop the message"),
    sup("websocket allow-origin", DFLB, Handler::Proxy(super::websocket::allow_origin), "`websocket allow-origin <origin>...` (wsgate): 403 for handshakes from other Origins"),
    sup("option persist", DLB, Handler::Proxy(super::persist::option_persist), "a persistence cookie or stick-table entry naming a DOWN server still sends the request there (`option redispatch` may then move it)"),
    sup("option redispatch", DLB, Handler::Proxy(h::option_redispatch), "`option redispatch`: a retry may pick another server"),
    ign("option socket-stats", DFL, "the stats page has no per-listener rows"),
    ign("option splice-auto", DFLB, "wsgate decides itself when to splice"),
    ign("option srvtcpka", DLB, "TCP keepalive is not configurable yet"),
    ign("option tcp-smart-accept", DFL, "a TCP tuning hint with no visible effect"),
    ign("option tcp-smart-connect", DLB, "a TCP tuning hint with no visible effect"),
    sup("option tcplog", DFLB, Handler::Proxy(o::option_tcplog), "access log lines in HAProxy's TCP format, one per connection when it closes"),
    sup("pidfile", G, Handler::Global(process::pidfile), "`pidfile <path>`: the process id is written there at start, before the switch of user (`-p <path>` wins)"),
    ign("quiet", G, "wsgate prints only warnings and errors at startup"),
    sup("redirect", FLB, Handler::Proxy(r::redirect), "`redirect location|prefix|scheme <x> [code 301|302|303|307|308] [drop-query] [append-slash] [if|unless <condition>]` (the value is literal text), after the section's `http-request` rules: e.g. `redirect scheme https unless { ssl_fc }`"),
    sup("retries", DLB, Handler::Proxy(h::retries), "`retries <n>`: connection attempts after a failure (default 3)"),
    sup("server", LB, Handler::Proxy(h::server), "`server <name> <addr>:<port> [weight N] [disabled]`; host names resolved at startup"),
    sup("server-template", LB, Handler::Proxy(super::server_template::server_template), "`server-template <prefix> <num>|<first>-<last> <fqdn>:<port> [params]`: the name is resolved once, at startup; slot k gets the k-th address, slots without one have no address, in maintenance until `set server ... addr` (a warning says so)"),
    rej("setenv", G, "changing the environment from the configuration is not supported", Some("set the variable in the environment wsgate starts in")),
    ign("spread-checks", G, "each server's first check is already spread over its interval"),
    sup("ssl-default-bind-ciphers", G, Handler::Global(h::ssl_default_bind_ciphers), "`ssl-default-bind-ciphers <openssl cipher string>`: `ciphers` of every later `bind ... ssl`"),
    sup("ssl-default-bind-ciphersuites", G, Handler::Global(h::ssl_default_bind_ciphersuites), "`ssl-default-bind-ciphersuites <list>`: `ciphersuites` of every later `bind ... ssl`"),
    sup("ssl-default-bind-curves", G, Handler::Global(h::ssl_default_bind_curves), "`ssl-default-bind-curves <list>`: `curves` of every later `bind ... ssl`"),
    sup("ssl-default-bind-options", G, Handler::Global(h::ssl_default_bind_options), "`ssl-default-bind-options [ssl-min-ver V] [ssl-max-ver V] [no-tlsv12] [no-tlsv13] [force-tlsv12] [force-tlsv13] [no-tls-tickets] [prefer-client-ciphers]`"),
    ign("ssl-default-server-ciphers", G, "server TLS settings use rustls' safe defaults (TLS 1.2 and 1.3, AEAD suites)"),
    ign("ssl-default-server-ciphersuites", G, "server TLS settings use rustls' safe defaults (TLS 1.2 and 1.3, AEAD suites)"),
    ign("ssl-default-server-options", G, "server TLS settings use rustls' safe defaults (TLS 1.2 and 1.3, AEAD suites)"),
    ign("ssl-dh-param-file", G, DHE),
    ign("ssl-server-verify", G, "verification is set per server (`verify`, default required)"),
    sup("stats admin", FLB, Handler::Proxy(o::stats_admin), "`stats admin if|unless <cond>`: the stats page offers per-server actions (ready, drain, maint, kill sessions, weight) to requests the condition accepts, posted as HAProxy's form (`s=<server>&action=<action>&b=<backend>`) with a per-process token and a same-origin check; `stats auth` applies; without it a POST gets 403; frontend and listen sections"),
    sup("stats auth", DFLB, Handler::Proxy(o::stats_auth), "`stats auth <user>:<password>`: HTTP Basic authentication for the stats page (repeatable)"),
    sup("stats enable", DFLB, Handler::Proxy(o::stats_enable), "serve the stats page (HTML, `;csv`, `;json`) at `stats uri`"),
    sup("stats hide-version", DFLB, Handler::Proxy(o::stats_hide_version), "leave the version out of the stats page"),
    sup("stats realm", DFLB, Handler::Proxy(o::stats_realm), "`stats realm <realm>` (default \"HAProxy Statistics\")"),
    sup("stats refresh", DFLB, Handler::Proxy(o::stats_refresh), "`stats refresh <time>`: the page fetches `;json` each period and updates its cells in place (without JavaScript: a `<noscript>` meta refresh reloads it)"),
    ign("stats show-legends", DFLB, "the stats page has no legends section"),
    ign("stats show-modules", DFLB, "the stats page has no modules section"),
    ign("stats show-node", DFLB, "the stats page does not show a node name"),
    sup("stats socket", G, Handler::Global(o::stats_socket), "`stats socket <path>|ipv4@<ip>:<port> [mode <octal>] [level user|operator|admin]`: the runtime API (HAProxy's CLI commands)"),
    sup("stats timeout", G, Handler::Global(o::stats_timeout), "`stats timeout <time>`: idle runtime API connections are closed after it (default 10s)"),
    sup("stats uri", DFLB, Handler::Proxy(o::stats_uri), "`stats uri <prefix>` (default `/haproxy?stats`); enables the page"),
    sup("stick", FLB, Handler::Proxy(super::persist::stick), "`stick on|match|store-request <fetch> [table <backend>] [if|unless <condition>]` (backend, listen; ignored with a warning in a frontend, as HAProxy); fetches src, req.hdr(<name>[,<occ>]), hdr(), req.cook(<name>), cook(), url_param(<name>), urlp(), and in mode tcp req.payload(<offset>,<length>) optionally followed by `,mqtt_field_value(connect,client_identifier)` (MQTT client ids; wsgate waits for those bytes at most `tcp-request inspect-delay`); a DOWN server's entry is ignored (unless `option persist`)"),
    sup("stick-table", FLB, Handler::Proxy(super::persist::stick_table), "`stick-table type ip|ipv6|integer|string [len <n>] size <n>[k|m|g] [expire <time>] [nopurge] [store <data>,...]` (kept across reloads while unchanged); `store` keeps `conn_cnt`, `conn_cur`, `conn_rate(<period>)`, `http_req_cnt`, `http_req_rate(<period>)`, `http_err_cnt`, `http_err_rate(<period>)`, `gpc0`, `gpc0_rate(<period>)` for `track-sc` rules and the `sc_*`/`src_*` fetches (read in `http-request`, `use_backend` and `tcp-request connection` conditions; in `http-response` and `stick` conditions they give nothing, with a warning); an open WebSocket holds its entry (`conn_cur`) until it closes; in a frontend only tracking uses it; `peers` and `binary` are refused"),
    sup("tcp-request", DFLB, Handler::Proxy(super::tcp_rules::tcp_request), "`tcp-request connection accept|reject|track-sc0|1|2 src [table <name>] [if|unless <condition>]` (frontend, listen), run when a connection is accepted: the first accept/reject that applies ends the list, `reject` closes the connection; conditions may use `src` and stick counters (`src_conn_rate(<table>)`, `sc0_conn_cur`...); `tcp-request content accept|reject [if|unless <condition>]` (mode tcp frontend, listen) run next on the client's first bytes, peeked and left for the server: TLS passthrough by SNI with `req.ssl_sni`, `req.ssl_hello_type`, `req.ssl_ver`, `req.len`, `WAIT_END` (also in `use_backend`), re-run as bytes arrive until `tcp-request inspect-delay <time>` is over, then on what is there; a rejected connection is closed and logged `PR`; the delay also bounds a mode tcp backend's wait for the bytes of a `stick ... req.payload(...)` rule; content rules in mode http or in a backend, their other actions and `tcp-request session` are refused; in a named `defaults` section (HAProxy 2.5+) the rules run before those of each proxy using it, which may then be frontends or backends but not both, nor `listen` sections; HAProxy refuses them in an anonymous one, where wsgate applies them at the top of each frontend and listen section using the section (each backend when only backends do: once per request either way), with a warning (`wsgate migrate` moves the lines there); a backend cannot inherit `tcp-request` rules"),
    sup("tcp-check", DLB, Handler::Proxy(super::tcp_check::tcp_check), "with `option tcp-check`, in order: `tcp-check connect [default] [port <n>] [ssl] [send-proxy]` (a connection to the check address; `default` adds the server's `check-ssl`/`check-send-proxy`; one such is made first when the script does not start with a connect), `tcp-check send <string>` / `send-binary <hex>`, `tcp-check expect [min-recv <n>] [!] string|rstring|binary <pattern>` (searched in what arrived since the last send; a mismatch waits for more data, so a server that keeps the connection open ends the check as a Layer7 timeout, as in HAProxy, unless `min-recv` bytes make it final), `tcp-check comment <text>` (reported with the next step's failure), `comment <text>` at the end of a step; a section's own lines replace those of its `defaults`; `send-lf`, `set-var`, `expect` status options and `connect addr|sni|alpn` are errors"),
    rej("tcp-response", LB, "tcp-response rules are not implemented yet", None),
    sup("timeout check", DLB, Handler::Proxy(h::timeout_check), "extra read time for a health check once connected (default: `inter` bounds the whole check)"),
    sup("timeout client", DFL, Handler::Proxy(h::timeout_client), "client-side inactivity (default: none, i.e. never)"),
    sup("timeout client-fin", DFL, Handler::Proxy(h::timeout_client_fin), "client-side inactivity once one direction is shut"),
    sup("timeout connect", DLB, Handler::Proxy(h::timeout_connect), "TCP connect to a server (default: none)"),
    sup("timeout http-keep-alive", DFLB, Handler::Proxy(h::timeout_http_keep_alive), "idle time between requests (falls back to http-request, then client)"),
    sup("timeout http-request", DFLB, Handler::Proxy(h::timeout_http_request), "time to receive a request head, 408 after (falls back to client)"),
    sup("timeout queue", DLB, Handler::Proxy(h::timeout_queue), "time a request may wait for a server slot (`maxconn`), 503 after (default: `timeout connect`)"),
    sup("timeout server", DLB, Handler::Proxy(h::timeout_server), "server-side inactivity (default: none, i.e. never)"),
    sup("timeout server-fin", DLB, Handler::Proxy(h::timeout_server_fin), "server-side inactivity once one direction is shut"),
    ign("timeout tarpit", DFLB, "there are no tarpit rules"),
    sup("timeout tunnel", DLB, Handler::Proxy(h::timeout_tunnel), "inactivity after `101 Switching Protocols` (WebSockets); replaces client and server"),
    sup("tune.bufsize", G, Handler::Global(h::tune_bufsize), "`tune.bufsize <size>`: largest request/response head (default 16384)"),
    ign("tune.buffers.limit", G, "buffers are pooled and sized by wsgate"),
    ign("tune.h2.initial-window-size", G, "HTTP/2 tuning does not apply yet"),
    ign("tune.h2.max-concurrent-streams", G, "HTTP/2 tuning does not apply yet"),
    sup("tune.idle-park", G, Handler::Global(process::idle_park), "`tune.idle-park <time>` (wsgate): a tunnel silent this long with nothing in flight leaves its task for its worker's parked set, where an idle WebSocket costs about half the memory; woken by its first byte, its deadline or a stop (default 2s; 0 never parks)"),
    ign("tune.maxrewrite", G, "headers are not rewritten in place"),
    ign("tune.ssl.cachesize", G, "rustls manages its session cache"),
    ign("tune.ssl.default-dh-param", G, DHE),
    ign("tune.ssl.lifetime", G, "rustls manages its session cache"),
    sup("uid", G, Handler::Global(process::uid), "`uid <number>`: the user wsgate switches to once its sockets are bound and certificates read (as HAProxy, the group stays unless `group`/`gid` is set)"),
    sup("use_backend", FL, Handler::Proxy(h::use_backend), "`use_backend <backend> [if|unless <condition>]`: first match wins, then `default_backend`; conditions AND ACL names, `||` for OR, `!` to negate, `{ ... }` for an anonymous ACL"),
    sup("user", G, Handler::Global(process::user), "`user <name>`: like `uid`, by name (an unknown user is an error)"),
    ign("zero-warning", G, "warnings never stop wsgate; read them with `wsgate -c`"),
];

/// The result of looking a line's first words up.
pub enum Lookup {
    /// The entry and how many words its name used.
    Found(&'static Keyword, usize),
    Unknown {
        keyword: String,
        suggestion: Option<&'static str>,
    },
}

/// Families whose second word selects the keyword (`timeout client`).
const FAMILIES: &[&str] = &["option", "timeout", "stats", "websocket"];

/// Looks up a line's words (after `no` was taken off for options).
pub fn lookup(words: &[super::lexer::Token]) -> Lookup {
    let first = words.first().map(|t| t.text.as_str()).unwrap_or("");
    if let Some(second) = words.get(1) {
        let two = format!("{first} {}", second.text);
        if let Some(k) = KEYWORDS.iter().find(|k| k.name == two) {
            return Lookup::Found(k, 2);
        }
    }
    if !FAMILIES.contains(&first) {
        if let Some(k) = KEYWORDS.iter().find(|k| k.name == first) {
            return Lookup::Found(k, 1);
        }
    }
    let two = words
        .get(1)
        .map(|second| format!("{first} {}", second.text));
    let names = || KEYWORDS.iter().map(|k| k.name);
    // The typo may be in either word: try the one-word and two-word forms.
    let by_one = closest(first, names());
    let by_two = two.as_deref().and_then(|t| closest(t, names()));
    let keyword = match (
        &two,
        FAMILIES.contains(&first) || (by_one.is_none() && by_two.is_some()),
    ) {
        (Some(t), true) => t.clone(),
        _ => first.to_owned(),
    };
    let suggestion = if keyword == first { by_one } else { by_two };
    Lookup::Unknown {
        keyword,
        suggestion,
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be
/// a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over characters, counting a swap of two neighbours as one
/// edit (optimal string alignment), since that is the commonest typo.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// An option on a `bind` or `server` line.
pub struct LineOption {
    pub name: &'static str,
    /// How many arguments follow the option word.
    pub args: usize,
    pub status: OptionStatus,
}

#[derive(Clone, Copy)]
pub enum OptionStatus {
    /// Handled by the `bind`/`server` handler itself.
    Supported(&'static str),
    Ignored(&'static str),
    Rejected(&'static str),
}

const fn opt(name: &'static str, args: usize, status: OptionStatus) -> LineOption {
    LineOption { name, args, status }
}

use OptionStatus::{Ignored as OI, Rejected as OR, Supported as OS};

/// Options of the `bind` line.
pub static BIND_OPTIONS: &[LineOption] = &[
    opt(
        "accept-proxy",
        0,
        OS("connections start with a PROXY protocol header (v1 or v2, detected) from a trusted load balancer; its client address is the session's (logs, `src`, `balance source`, X-Forwarded-For); a connection without a valid one is closed"),
    ),
    opt("allow-0rtt", 0, OI("TLS 0-RTT (early data) is not offered: clients resume with a full 1-RTT handshake, which is slower by one round trip and never replayable")),
    opt("alpn", 1, OS("ALPN list; wsgate offers http/1.1 (`h2` is accepted with a warning until HTTP/2 is supported)")),
    opt(
        "backlog",
        1,
        OI("the listen backlog uses the system default"),
    ),
    opt(
        "ca-file",
        1,
        OS("CA certificates (PEM) client certificates must chain to, with `verify optional|required`"),
    ),
    opt("ciphers", 1, OS("TLS 1.2 suites as an OpenSSL cipher string; mapped to rustls' AEAD+ECDHE suites, weak or unknown names are errors, DHE names are skipped with a warning")),
    opt("ciphersuites", 1, OS("TLS 1.3 suites: TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256")),
    opt(
        "crl-file",
        1,
        OS("certificate revocation lists (PEM) for client certificates, with `verify optional|required`; every CA of the client's chain needs one, as in HAProxy"),
    ),
    opt(
        "crt",
        1,
        OS("a PEM file (certificate, chain and key, or the key in `<file>.key`) or a directory of them (lexical order, skipping .key .issuer .ocsp .sctl); repeatable; certificates are chosen by SNI, the first loaded is the default"),
    ),
    opt(
        "crt-list",
        1,
        OS("a file of `<crtfile> [[options]] [[!]<snifilter> ...]` lines (`*.example.com`, `!skip.example.com`, `!*`); per-line options: ssl-min-ver, ssl-max-ver, ciphers, ciphersuites, curves, alpn, verify, ca-file, crl-file (applied when the SNI selects the certificate)"),
    ),
    opt("curves", 1, OS("key-exchange groups, e.g. `X25519:P-256` (X25519, P-256, P-384)")),
    opt(
        "defer-accept",
        0,
        OI("a TCP tuning hint with no visible effect"),
    ),
    opt("ecdhe", 1, OS("one key-exchange group (like `curves`)")),
    opt("force-sslv3", 0, OR("SSLv3 is broken (RFC 7568) and never offered; wsgate offers TLS 1.2 and 1.3")),
    opt("force-tlsv10", 0, OR("TLS 1.0 is deprecated (RFC 8996) and never offered; wsgate offers TLS 1.2 and 1.3")),
    opt("force-tlsv11", 0, OR("TLS 1.1 is deprecated (RFC 8996) and never offered; wsgate offers TLS 1.2 and 1.3")),
    opt("force-tlsv12", 0, OS("TLS 1.2 only")),
    opt("force-tlsv13", 0, OS("TLS 1.3 only")),
    opt("id", 1, OI("listener ids are only used by statistics")),
    opt(
        "interface",
        1,
        OR("binding to an interface is not supported"),
    ),
    opt(
        "maxconn",
        1,
        OR("per-listener maxconn is not enforced; use `maxconn` in the frontend"),
    ),
    opt("name", 1, OI("listener names are only used by statistics")),
    opt("namespace", 1, OR("network namespaces are not supported")),
    opt("no-sslv3", 0, OS("always true: SSLv3 is never offered")),
    opt("no-tls-tickets", 0, OS("resume TLS sessions by session id only (tickets are on by default)")),
    opt("no-tlsv10", 0, OS("always true: TLS 1.0 is never offered")),
    opt("no-tlsv11", 0, OS("always true: TLS 1.1 is never offered")),
    opt("no-tlsv12", 0, OS("TLS 1.3 only")),
    opt("no-tlsv13", 0, OS("TLS 1.2 only")),
    opt("npn", 1, OI("NPN is obsolete; wsgate negotiates HTTP/1.1")),
    opt("prefer-client-ciphers", 0, OS("follow the client's cipher order (default: the server's)")),
    opt("process", 1, OI("wsgate is one process")),
    opt("ssl", 0, OS("terminate TLS on this listener; needs `crt`")),
    opt("ssl-max-ver", 1, OS("TLSv1.2 or TLSv1.3 (default TLSv1.3); older versions are refused with the reason")),
    opt("ssl-min-ver", 1, OS("TLSv1.2 (the default) or TLSv1.3; older versions are refused with the reason")),
    opt("strict-sni", 0, OS("refuse handshakes without SNI or whose SNI matches no certificate")),
    opt("tfo", 0, OI("TCP Fast Open is not enabled")),
    opt("thread", 1, OI("connections are spread over all threads")),
    opt(
        "transparent",
        0,
        OR("transparent proxying is not supported"),
    ),
    opt(
        "v4v6",
        0,
        OI("an IPv6 wildcard bind accepts IPv4 too, as the system default"),
    ),
    opt("v6only", 0, OR("IPv6-only binds are not supported yet")),
    opt(
        "verify",
        1,
        OS("client certificates: `none` (default, not requested), `optional` (checked when given), `required` (handshake refused without one); needs `ca-file`"),
    ),
];

/// Options of `server` and `default-server` lines.
pub static SERVER_OPTIONS: &[LineOption] = &[
    opt("addr", 1, OS("address health checks connect to (default: the server's)")),
    opt("agent-check", 0, OI(NO_AGENT)),
    opt("agent-inter", 1, OI(NO_AGENT)),
    opt("agent-port", 1, OI(NO_AGENT)),
    opt("alpn", 1, OS("ALPN offered with `ssl` (default http/1.1); `h2` is left out with a warning, as wsgate speaks HTTP/1.1 to servers")),
    opt("backup", 0, OS("used only when no active server is usable (the first one, or all with `option allbackups`)")),
    opt("ca-file", 1, OS("CA certificates (PEM) the server's certificate must chain to, with `ssl`")),
    opt("check", 0, OS("health checks: TCP connect, or `option httpchk`; DOWN after `fall` failures, UP after `rise` successes")),
    opt("check-alpn", 1, OI("checks offer the server's ALPN (http/1.1)")),
    opt("check-send-proxy", 0, OS("health checks start with a PROXY header too (the default with `send-proxy*` when no `port`/`addr` is set): v1 with the check connection's addresses, v2 LOCAL")),
    opt("check-ssl", 0, OS("health checks over TLS with the server's `verify`/`ca-file`/`sni` (the default with `ssl` when no `port`/`addr` is set)")),
    opt("cookie", 1, OS("the value of the backend's persistence cookie that designates this server (none by default: then the server gets no cookie, and insert mode clears the client's)")),
    opt("crt", 1, OS("with `ssl`: the client certificate presented to the server when it asks for one (mutual TLS); a PEM with the certificate, its chain and the key, or the key in `<file>.key`; relative to `crt-base`; checked at start-up like a bind's (key mismatch, expiry)")),
    opt("disabled", 0, OS("the server starts in maintenance and gets no traffic")),
    opt("downinter", 1, OS("check interval while the server is down (default `inter`)")),
    opt("enabled", 0, OS("the server gets traffic (the default)")),
    opt("error-limit", 1, OS("with `observe`: consecutive errors in live traffic that trigger `on-error` (default 10)")),
    opt("fall", 1, OS("consecutive failed checks to mark the server DOWN (default 3)")),
    opt("fastinter", 1, OS("check interval while the state is changing (default `inter`)")),
    opt("id", 1, OS("numeric server id (default: lowest free, in order); places the server on the consistent-hash ring and orders `balance first`")),
    opt("init-addr", 1, OS("`init-addr <method>[,...]`, tried in order (default `last,libc`, as HAProxy): `libc` resolves the name once, at startup, keeping the first address the system resolver gives (HAProxy 2.6's choice: `::1` for a `localhost` with both), `none` starts the server in maintenance with no address (a warning), `<ip>` uses that address, `last` gives nothing (wsgate reads no server-state-file at startup, as HAProxy without one); when no method gives an address: an error at the line; in `server-template`, `none` lets slots start without an address. A server without one stays in maintenance (HAProxy's \"MAINT (resolution)\"), whatever `enable server` asks, until `set server ... addr` gives it one")),
    opt("inter", 1, OS("check interval (default 2s); also the check timeout unless `timeout check` is set")),
    opt("maxconn", 1, OS("concurrent connections, WebSockets included (0 = unlimited); excess requests queue up to `timeout queue`, then 503: in the backend's queue (any server will do), or in the server's when a hash or persistence picked it, as HAProxy; `qcur`/`qmax` of the stats show each queue on its own row (BACKEND, server), as HAProxy's")),
    opt("maxqueue", 1, OS("requests allowed to wait in this server's queue, i.e. those a hash or persistence sends to it (0 = unlimited); beyond, 503 at once; the backend's queue has no bound, as in HAProxy")),
    opt("minconn", 1, OI("dynamic server limits are not implemented")),
    opt("no-check", 0, OS("no health checks for this server (undoes `check` from default-server)")),
    opt("no-check-send-proxy", 0, OS("undoes `check-send-proxy` from default-server")),
    opt("no-check-ssl", 0, OS("plain health checks even with `ssl`")),
    opt("no-send-proxy", 0, OS("undoes `send-proxy` from default-server")),
    opt("no-send-proxy-v2", 0, OS("undoes `send-proxy-v2` from default-server")),
    opt("no-send-proxy-v2-ssl", 0, OS("undoes the SSL TLV of `send-proxy-v2-ssl` from default-server")),
    opt("no-send-proxy-v2-ssl-cn", 0, OS("undoes the CN of `send-proxy-v2-ssl-cn` from default-server")),
    opt("non-stick", 0, OS("requests this server serves are not stored in stick tables")),
    opt("observe", 1, OS("`layer4`: failed connections to the server count as errors, an established one clears the count; `layer7` (mode http): responses too, 100-499, 501 and 505 clear it, other 5xx (wsgate's 502 and 504 included) count; needs `check`")),
    opt("on-error", 1, OS("what `error-limit` consecutive errors do: `fastinter` (check sooner), `fail-check` (a failed check, the default), `sudden-death` (one check from DOWN, then a failed check), `mark-down` (DOWN at once); all check again after `fastinter`")),
    opt("on-marked-down", 1, OS("`shutdown-sessions`: when checks mark the server down, or it is put in maintenance, its tunnels are closed (WebSockets get 1012 at a message boundary, plain TCP tunnels are closed)")),
    opt("on-marked-up", 1, OS("`shutdown-backup-sessions`: when this server comes up, the tunnels on the backend's backup servers are closed (WebSockets get 1012)")),
    opt("pool-max-conn", 1, OI("idle server connections are not pooled yet")),
    opt("pool-purge-delay", 1, OI("idle server connections are not pooled yet")),
    opt("port", 1, OS("port health checks connect to (default: the server's)")),
    opt("proto", 1, OR("only HTTP/1.1 and raw TCP to servers are implemented")),
    opt("redir", 1, OS("`redir <prefix>`: GET and HEAD requests for this server get `302 Location: <prefix><path>` instead of being forwarded (other methods are forwarded)")),
    opt("resolve-prefer", 1, OI("host names are resolved once, at startup, with the system resolver")),
    opt("resolvers", 1, OI("host names are resolved once, at startup, with the system resolver; address changes are not followed while running")),
    opt("rise", 1, OS("consecutive successful checks to mark the server UP (default 2)")),
    opt("proxy-v2-options", 1, OS("TLVs of the v2 header: `ssl`, `cert-cn`, `ssl-cipher`, `authority` (the client's SNI), `crc32c`; `unique-id`, `cert-sig`, `cert-key` are refused")),
    opt("send-proxy", 0, OS("PROXY protocol v1 line before the first byte to the server (before TLS): the client's address and the one it connected to")),
    opt("send-proxy-v2", 0, OS("PROXY protocol v2 header before the first byte to the server (before TLS); an ALPN TLV when the client negotiated one")),
    opt("send-proxy-v2-ssl", 0, OS("`send-proxy-v2` with the SSL TLV: whether the client came over TLS, its version, whether it gave a certificate")),
    opt("send-proxy-v2-ssl-cn", 0, OS("`send-proxy-v2-ssl` with the client certificate's CN")),
    opt("slowstart", 1, OS("`slowstart <time>` (whole seconds, rounded up): when checks bring the server back UP, or it leaves maintenance (never at start-up), its weight grows from 1/16 to full over the period, one step a second, as HAProxy's (roundrobin, leastconn, first, random, consistent hashing; the static algorithms keep their weights), and its `maxconn` from 1 to full")),
    opt("sni", 1, OS("name sent to the server with `ssl`: `str(<name>)` or `req.hdr(host)`; verified against its certificate")),
    opt("source", 1, OR("choosing the source address is not supported")),
    opt("ssl", 0, OS("TLS to the server (wss:// backends); `verify required` (default, needs `ca-file`) or `verify none`, `sni`")),
    opt("no-ssl", 0, OS("plain connections to the server (undoes `ssl` from default-server)")),
    opt("track", 1, OR("tracking another server's state is not implemented; give this server its own `check`")),
    opt("verify", 1, OS("`required` (default, needs `ca-file`) or `none`")),
    opt("weight", 1, OS("0..=256, default 1; 0 means the balancer never picks it")),
    opt("ws", 1, OI("WebSockets go to servers over HTTP/1.1")),
];

fn status_cell(status: &Status) -> (&'static str, String) {
    match status {
        Status::Supported(_) => ("supported", String::new()),
        Status::Ignored(reason) => ("ignored (warning)", (*reason).to_owned()),
        Status::Rejected {
            reason,
            alternative,
        } => (
            "rejected (error)",
            match alternative {
                Some(a) => format!("{reason}; {a}"),
                None => (*reason).to_owned(),
            },
        ),
        Status::Lenient {
            reason,
            alternative,
        } => (
            "rejected (error); `no` form accepted",
            format!("{reason}; {alternative}; `no option ...` asks for strict parsing, which is what wsgate does, and is accepted silently"),
        ),
    }
}

fn option_cell(status: OptionStatus) -> (&'static str, &'static str) {
    match status {
        OptionStatus::Supported(s) => ("supported", s),
        OptionStatus::Ignored(s) => ("ignored (warning)", s),
        OptionStatus::Rejected(s) => ("rejected (error)", s),
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The keyword table as Markdown, for `wsgate --list-keywords` and
/// `docs/config.md`.
/// A keyword HAProxy removed that has an exact modern equivalent: it is
/// read as `new` (the arguments kept), with a warning giving the line to
/// write today; `wsgate migrate` rewrites it.
pub struct Legacy {
    pub old: &'static str,
    /// The HAProxy version that refuses it.
    pub removed_in: &'static str,
    pub new: &'static str,
}

/// Keywords HAProxy removed that have no replacement: `wsgate migrate`
/// comments such lines out (wsgate itself reads them with a warning, as
/// their `ign` rows above say). The HAProxy version that refuses each.
pub static DROPPED: &[(&str, &str)] = &[
    ("nbproc", "2.5"),
    ("bind-process", "2.5"),
    ("stats bind-process", "2.5"),
];

/// Removed keywords read in their modern form. Deprecated since HAProxy
/// 1.5 and made fatal in 2.1 (the timeouts, `redispatch`, `block`), or
/// removed in 2.0 (`option forceclose`).
pub static LEGACY: &[Legacy] = &[
    Legacy {
        old: "clitimeout",
        removed_in: "2.1",
        new: "timeout client",
    },
    Legacy {
        old: "srvtimeout",
        removed_in: "2.1",
        new: "timeout server",
    },
    Legacy {
        old: "contimeout",
        removed_in: "2.1",
        new: "timeout connect",
    },
    Legacy {
        old: "redispatch",
        removed_in: "2.1",
        new: "option redispatch",
    },
    Legacy {
        old: "block",
        removed_in: "2.1",
        new: "http-request deny",
    },
    Legacy {
        old: "option independant-streams",
        removed_in: "2.0",
        new: "option independent-streams",
    },
    Legacy {
        old: "option forceclose",
        removed_in: "2.0",
        new: "option httpclose",
    },
];

/// The removed keyword a line starts with, and how many words it spans.
pub fn legacy<'w>(words: impl IntoIterator<Item = &'w str>) -> Option<(&'static Legacy, usize)> {
    let mut words = words.into_iter();
    let first = words.next()?;
    let second = words.next();
    LEGACY.iter().find_map(|l| match l.old.split_once(' ') {
        Some((a, b)) => (a == first && Some(b) == second).then_some((l, 2)),
        None => (l.old == first).then_some((l, 1)),
    })
}

pub fn markdown_table() -> String {
    let mut out = String::new();
    out.push_str("# wsgate configuration keywords\n\n");
    out.push_str("<!-- Generated by `wsgate --list-keywords`; do not edit by hand. -->\n\n");
    out.push_str(
        "wsgate reads HAProxy's configuration language. Every keyword it knows is listed here \
         with its status: **supported** (HAProxy's meaning, defaults and units), **ignored** \
         (accepted with a warning, because ignoring it does not change what clients or servers \
         see in a way a configuration relies on) or **rejected** (an error with the reason). \
         Any other keyword is an error with a did-you-mean hint. Sections: G = global, \
         D = defaults, F = frontend, L = listen, B = backend.\n\n",
    );
    out.push_str(
        "Times are in milliseconds unless suffixed (`us ms s m h d`); sizes in bytes unless \
         suffixed (`k m g`). Unset timeouts are infinite, with a warning. Environment variables \
         are expanded inside double quotes only (`\"${VAR}\"`, `\"${VAR-default}\"`), as in \
         HAProxy. A backslash at the end of a line is an error: HAProxy has no line \
         continuation.\n\n",
    );
    out.push_str("## Keywords\n\n");
    out.push_str("| keyword | G | D | F | L | B | status | notes |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let mut sorted: Vec<&Keyword> = KEYWORDS.iter().collect();
    sorted.sort_by_key(|k| k.name);
    for k in sorted {
        let (status, reason) = status_cell(&k.status);
        let notes = if k.summary.is_empty() {
            reason
        } else {
            k.summary.to_owned()
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            k.name,
            k.sections.cell(Sections::GLOBAL),
            k.sections.cell(Sections::DEFAULTS),
            k.sections.cell(Sections::FRONTEND),
            k.sections.cell(Sections::LISTEN),
            k.sections.cell(Sections::BACKEND),
            status,
            escape(&notes),
        ));
    }
    out.push_str(CLOSE_FRAMES);
    for (title, options) in [
        ("`bind` options", BIND_OPTIONS),
        ("`server` and `default-server` options", SERVER_OPTIONS),
    ] {
        out.push_str(&format!("\n## {title}\n\n"));
        out.push_str("| option | arguments | status | notes |\n|---|---|---|---|\n");
        let mut sorted: Vec<&LineOption> = options.iter().collect();
        sorted.sort_by_key(|o| o.name);
        for o in sorted {
            let (status, notes) = option_cell(o.status);
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                o.name,
                o.args,
                status,
                escape(notes)
            ));
        }
    }
    out.push_str(
        "\n## Removed keywords, read in their modern form\n\nHAProxy refuses these; wsgate reads each \
         as its modern equivalent (arguments kept) with a warning that prints the line to write \
         today. `wsgate migrate -f <file>` prints the file rewritten.\n\n\
         | keyword | removed in HAProxy | read as |\n|---|---|---|\n",
    );
    for l in LEGACY {
        out.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            l.old, l.removed_in, l.new
        ));
    }
    for (old, new) in super::legacy_rules::TABLE {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            old.replace(", ", "`, `"),
            super::legacy_rules::removed_in(old),
            escape(new)
        ));
    }
    out.push_str(
        "\n## Sections\n\n`global`, `defaults [<name>] [from <defaults>]`, `frontend <name> [from <defaults>]`, \
         `backend <name> [from <defaults>]` and `listen <name> [from <defaults>]` are supported. \
         A `listen` section becomes a frontend and a backend of the same name. \
         Proxies use one named `defaults` section either with `from` or as the last one before \
         them, not both ways (refused, as by HAProxy 2.6). \
         `userlist <name>` sections are supported, with `user <name> [password <hash> | \
         insecure-password <pw>] [groups <g>,...]` and `group <name> [users <u>,...]` lines; \
         hashes are crypt(3) SHA-512 (`$6$`), SHA-256 (`$5$`), MD5 (`$1$`) or bcrypt (`$2a$`, \
         `$2b$`, `$2y$`), any other scheme is an error at its line; the `http_auth(<userlist>)` \
         and `http_auth_group(<userlist>)` ACL fetches read them. `resolvers` and `cache` \
         sections are ignored with a warning. Other HAProxy sections (`peers`, `http-errors`, \
         `mailers`, `program`, `ring`, `log-forward`, `fcgi-app`, `crt-store`, `acme`, `traces`) \
         are rejected. Conditional blocks (`.if`) are evaluated as HAProxy 2.6 does.\n",
    );
    out
}

/// The close frames of wsgate's own closes: a table after the keywords in
/// `docs/config.md`, beside the `websocket` rows that cause most of them.
const CLOSE_FRAMES: &str = "\n### The close frames wsgate sends\n\
\n\
The `websocket` settings, `timeout tunnel` and stops end a WebSocket with a\n\
close frame to each peer, sent between messages. Code and reason are fixed:\n\
\n\
| cause | to the peer concerned | to the other peer |\n\
|---|---|---|\n\
| `max-message-size`, `max-frame-size` | 1009 \"message too big\" (the client) | 1001 \"peer violated the WebSocket policy\" |\n\
| `rate-limit ... action close` | 1008 \"message rate limit\" (the sender) | 1001 \"peer violated the WebSocket policy\" |\n\
| `strict` | 1002 \"protocol error\" (the sender) | 1001 \"peer violated the WebSocket policy\" |\n\
| `keepalive`: ping unanswered | 1001 \"ping timeout\" | 1001 \"ping timeout\" |\n\
| `timeout tunnel` expired | 1001 \"idle timeout\" | 1001 \"idle timeout\" |\n\
| wsgate stopping (`close-spread-time`) | 1001 \"server stopping\" | 1001 \"server stopping\" |\n\
| a reload removed the server | 1012 \"service restart\" (the client) | 1001 \"service restart\" (the server) |\n\
| the server's sessions are shut down (`on-marked-down shutdown-sessions`, `shutdown sessions server`) | 1012 \"server unavailable\" (the client) | 1001 \"server unavailable\" (the server) |\n\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_unique_names() {
        let mut names: Vec<&str> = KEYWORDS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        for pair in names.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
        for table in [BIND_OPTIONS, SERVER_OPTIONS] {
            let mut names: Vec<&str> = table.iter().map(|o| o.name).collect();
            names.sort_unstable();
            for pair in names.windows(2) {
                assert_ne!(pair[0], pair[1]);
            }
        }
    }

    #[test]
    fn supported_keywords_have_a_summary() {
        for k in KEYWORDS {
            if matches!(k.status, Status::Supported(_)) {
                assert!(!k.summary.is_empty(), "{}", k.name);
            }
        }
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(
            closest("defualt_backend", KEYWORDS.iter().map(|k| k.name)),
            Some("default_backend")
        );
        assert_eq!(
            closest("timeout clinet", KEYWORDS.iter().map(|k| k.name)),
            Some("timeout client")
        );
        assert_eq!(closest("zzzzzz", KEYWORDS.iter().map(|k| k.name)), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("bsae", "base"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn markdown_mentions_every_keyword() {
        let md = markdown_table();
        for k in KEYWORDS {
            assert!(md.contains(&format!("`{}`", k.name)), "{}", k.name);
        }
    }
}
