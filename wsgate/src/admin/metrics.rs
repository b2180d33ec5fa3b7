//! The Prometheus exporter (`http-request use-service prometheus-exporter
//! if { path /metrics }`), with HAProxy's metric names and labels so that
//! existing dashboards work, plus `wsgate_*` metrics for what HAProxy
//! cannot see (open WebSocket tunnels per server, tunnels closed by
//! reason, dropped log lines).
//!
//! The exposition (text format 0.0.4) is written by hand: it is a few
//! `write!`s over the same counters the stats page reads, needs no
//! registry mirroring our atomics (which the `prometheus-client` crate
//! would require, doubling every update or copying at scrape time), and
//! keeps the scrape to one pass and one allocation growing a `String`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::server_status;
use crate::backend::counters::TUNNEL_BUCKETS;
use crate::backend::{CheckStatus, CloseReason, Counters};
use crate::config::model::Mode;
use crate::proxy::Runtime;
use crate::ws::counters::{close_code_labels, WsCounters, FROM, POLICY_REASONS, SIZE_BOUNDS};

/// Picks one counter for a metric line.
type Pick = fn(&Counters) -> u64;

/// The counters that backends and servers both expose, with HAProxy's
/// exporter names (after `haproxy_backend_` / `haproxy_server_`), types and
/// help texts. Their current sessions are reported apart: a backend's come
/// from its counters, a server's from its live connection count.
const SHARED_METRICS: [(&str, &str, &str, Pick); 9] = [
    (
        "max_sessions",
        "gauge",
        "Maximum observed number of active sessions",
        |c| Counters::get(&c.max_sessions),
    ),
    (
        "sessions_total",
        "counter",
        "Total number of sessions",
        |c| Counters::get(&c.total_sessions),
    ),
    (
        "bytes_in_total",
        "counter",
        "Current total of incoming bytes",
        |c| Counters::get(&c.bytes_in),
    ),
    (
        "bytes_out_total",
        "counter",
        "Current total of outgoing bytes",
        |c| Counters::get(&c.bytes_out),
    ),
    (
        "max_queue",
        "gauge",
        "Maximum observed number of queued requests",
        |c| Counters::get(&c.max_queue),
    ),
    (
        "connection_errors_total",
        "counter",
        "Total number of connection errors",
        |c| Counters::get(&c.connection_errors),
    ),
    (
        "response_errors_total",
        "counter",
        "Total number of response errors",
        |c| Counters::get(&c.response_errors),
    ),
    (
        "retry_warnings_total",
        "counter",
        "Total number of retry warnings",
        |c| Counters::get(&c.retries),
    ),
    (
        "redispatch_warnings_total",
        "counter",
        "Total number of redispatch warnings",
        |c| Counters::get(&c.redispatches),
    ),
];

/// Room left before the body for the response head, which is written
/// there once the body's length is known (the longest head is 123 bytes).
const HEAD_ROOM: usize = 128;

/// A scrape's whole HTTP/1.1 response, head and body in one buffer.
pub struct Scrape {
    buf: Vec<u8>,
    start: usize,
}

impl Scrape {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Renders the response to a scrape. The body is written once, after room
/// kept for the head, so that the head goes in front of it without
/// copying the body (18 MB for 10,000 servers). It reads atomics only,
/// but takes tens of milliseconds for large configurations: callers on a
/// proxy worker run it on the blocking pool.
pub fn response(rt: &Runtime) -> Scrape {
    // About 2.5 KB per server and 1.5 KB per backend: one allocation for
    // a large scrape instead of a dozen doublings.
    let servers: usize = rt.backends.iter().map(|b| b.config.servers.len()).sum();
    let mut out =
        String::with_capacity(HEAD_ROOM + 16 * 1024 + servers * 2500 + rt.backends.len() * 1500);
    out.extend(std::iter::repeat_n(' ', HEAD_ROOM));
    render(rt, &mut out);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/plain; version=0.0.4\r\n\r\n",
        out.len() - HEAD_ROOM
    );
    let mut buf = out.into_bytes();
    match HEAD_ROOM.checked_sub(head.len()) {
        Some(start) => {
            buf[start..HEAD_ROOM].copy_from_slice(head.as_bytes());
            Scrape { buf, start }
        }
        // Cannot happen (the head is at most 123 bytes); kept correct.
        None => Scrape {
            buf: [head.as_bytes(), &buf[HEAD_ROOM..]].concat(),
            start: 0,
        },
    }
}

/// Appends the metrics page body to `out`.
fn render(rt: &Runtime, out: &mut String) {
    let m = &mut Metrics { out };
    let p = &rt.obs.process;
    let g = Counters::get;

    m.head("haproxy_process_build_info", "gauge", "Build info");
    m.line(
        "haproxy_process_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    m.one(
        "haproxy_process_start_time_seconds",
        "gauge",
        "Start time in seconds",
        rt.obs
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    m.one(
        "haproxy_process_uptime_seconds",
        "gauge",
        "How long ago this worker process was started (seconds)",
        rt.obs.started_at.elapsed().as_secs(),
    );
    m.one(
        "haproxy_process_nbthread",
        "gauge",
        "Number of started threads",
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
    );
    if let Some(max) = super::global_maxconn(rt) {
        m.one(
            "haproxy_process_max_connections",
            "gauge",
            "Maximum number of concurrent connections",
            max,
        );
    }
    m.one(
        "haproxy_process_current_connections",
        "gauge",
        "Number of active sessions",
        g(&p.cur_sessions),
    );
    m.one(
        "haproxy_process_connections_total",
        "counter",
        "Total number of created sessions",
        g(&p.total_sessions),
    );
    m.one(
        "haproxy_process_requests_total",
        "counter",
        "Total number of requests (TCP or HTTP)",
        g(&p.requests),
    );

    // Frontends.
    // Current sessions, then the four session and byte counters backends
    // and servers share (same names, order and help), then the frontend's
    // own.
    let fe_current: (&str, &str, &str, Pick) = (
        "current_sessions",
        "gauge",
        "Number of current sessions",
        |c| Counters::get(&c.cur_sessions),
    );
    let fe_own: [(&str, &str, &str, Pick); 3] = [
        (
            "requests_denied_total",
            "counter",
            "Total number of denied requests",
            |c| Counters::get(&c.denied),
        ),
        (
            "request_errors_total",
            "counter",
            "Total number of request errors",
            |c| Counters::get(&c.request_errors),
        ),
        (
            "intercepted_requests_total",
            "counter",
            "Total number of intercepted HTTP requests",
            |c| Counters::get(&c.intercepted),
        ),
    ];
    let fe_metrics = std::iter::once(fe_current)
        .chain(SHARED_METRICS[..4].iter().copied())
        .chain(fe_own);
    for (name, ty, help, pick) in fe_metrics {
        let full = format!("haproxy_frontend_{name}");
        m.head(&full, ty, help);
        for (i, fe) in rt.frontends.iter().enumerate() {
            if let Some(c) = rt.obs.frontends.get(i) {
                m.line(&full, &[("proxy", &fe.name)], pick(c));
            }
        }
    }
    m.head(
        "haproxy_frontend_limit_sessions",
        "gauge",
        "Configured session limit",
    );
    for (fi, fe) in rt.frontends.iter().enumerate() {
        if let Some(l) = super::frontend_maxconn(rt, fi) {
            m.line("haproxy_frontend_limit_sessions", &[("proxy", &fe.name)], l);
        }
    }
    m.head(
        "haproxy_frontend_http_requests_total",
        "counter",
        "Total number of HTTP requests received",
    );
    for (i, fe) in rt.frontends.iter().enumerate() {
        if fe.mode == Mode::Http {
            if let Some(c) = rt.obs.frontends.get(i) {
                m.line(
                    "haproxy_frontend_http_requests_total",
                    &[("proxy", &fe.name)],
                    g(&c.requests),
                );
            }
        }
    }
    m.head(
        "haproxy_frontend_http_responses_total",
        "counter",
        "Total number of HTTP responses",
    );
    for (i, fe) in rt.frontends.iter().enumerate() {
        if fe.mode == Mode::Http {
            if let Some(c) = rt.obs.frontends.get(i) {
                m.codes(
                    "haproxy_frontend_http_responses_total",
                    &[("proxy", &fe.name)],
                    c,
                );
            }
        }
    }

    // Backends.
    let current: (&str, &str, &str, Pick) = (
        "current_sessions",
        "gauge",
        "Number of current sessions",
        |c| Counters::get(&c.cur_sessions),
    );
    let be_metrics = std::iter::once(current).chain(SHARED_METRICS);
    for (name, ty, help, pick) in be_metrics {
        let full = format!("haproxy_backend_{name}");
        m.head(&full, ty, help);
        for be in &rt.backends {
            m.line(&full, &[("proxy", &be.config.name)], pick(&be.counters));
        }
    }
    m.head(
        "haproxy_backend_current_queue",
        "gauge",
        "Number of current queued requests",
    );
    for be in &rt.backends {
        let q = u64::from(be.queued());
        m.line(
            "haproxy_backend_current_queue",
            &[("proxy", &be.config.name)],
            q,
        );
    }
    m.head(
        "haproxy_backend_status",
        "gauge",
        "Current status of the service",
    );
    for be in &rt.backends {
        let up = (0..be.servers.len()).any(|i| be.is_usable(i));
        for state in ["DOWN", "UP"] {
            m.line(
                "haproxy_backend_status",
                &[("proxy", &be.config.name), ("state", state)],
                u64::from((state == "UP") == up),
            );
        }
    }
    m.head(
        "haproxy_backend_active_servers",
        "gauge",
        "Current number of active servers",
    );
    for be in &rt.backends {
        let n = (0..be.servers.len())
            .filter(|&i| be.is_usable(i) && !be.config.servers[i].backup)
            .count();
        m.line(
            "haproxy_backend_active_servers",
            &[("proxy", &be.config.name)],
            n as u64,
        );
    }
    m.head("haproxy_backend_weight", "gauge", "Service weight");
    for be in &rt.backends {
        let w: u64 = (0..be.servers.len())
            .filter(|&i| be.is_usable(i))
            .map(|i| u64::from(be.effective_weight(i)))
            .sum();
        m.line("haproxy_backend_weight", &[("proxy", &be.config.name)], w);
    }
    m.head(
        "haproxy_backend_http_requests_total",
        "counter",
        "Total number of HTTP requests received",
    );
    for be in rt.backends.iter().filter(|b| b.config.mode == Mode::Http) {
        m.line(
            "haproxy_backend_http_requests_total",
            &[("proxy", &be.config.name)],
            g(&be.counters.requests),
        );
    }
    m.head(
        "haproxy_backend_http_responses_total",
        "counter",
        "Total number of HTTP responses",
    );
    for be in rt.backends.iter().filter(|b| b.config.mode == Mode::Http) {
        m.codes(
            "haproxy_backend_http_responses_total",
            &[("proxy", &be.config.name)],
            &be.counters,
        );
    }

    // Servers.
    m.head(
        "haproxy_server_current_sessions",
        "gauge",
        "Number of current sessions",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            m.line(
                "haproxy_server_current_sessions",
                &[("proxy", &be.config.name), ("server", &s.name)],
                u64::from(be.servers[i].served()),
            );
        }
    }
    for (name, ty, help, pick) in SHARED_METRICS {
        let full = format!("haproxy_server_{name}");
        m.head(&full, ty, help);
        for be in &rt.backends {
            for (i, s) in be.config.servers.iter().enumerate() {
                m.line(
                    &full,
                    &[("proxy", &be.config.name), ("server", &s.name)],
                    pick(&be.servers[i].counters),
                );
            }
        }
    }
    m.head(
        "haproxy_server_current_queue",
        "gauge",
        "Number of current queued requests",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            m.line(
                "haproxy_server_current_queue",
                &[("proxy", &be.config.name), ("server", &s.name)],
                u64::from(be.servers[i].queued()),
            );
        }
    }
    m.head(
        "haproxy_server_status",
        "gauge",
        "Current status of the service",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            let now = match server_status(be, i) {
                "no check" => "UP",
                other => other,
            };
            for state in ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"] {
                m.line(
                    "haproxy_server_status",
                    &[
                        ("proxy", &be.config.name),
                        ("server", &s.name),
                        ("state", state),
                    ],
                    u64::from(state == now),
                );
            }
        }
    }
    m.head("haproxy_server_weight", "gauge", "Service weight");
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            m.line(
                "haproxy_server_weight",
                &[("proxy", &be.config.name), ("server", &s.name)],
                u64::from(be.effective_weight(i)),
            );
        }
    }
    m.head(
        "haproxy_server_check_status",
        "gauge",
        "Status of last health check",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            if s.check.is_none() {
                continue;
            }
            let now = be.servers[i].check_status();
            for st in CheckStatus::ALL {
                m.line(
                    "haproxy_server_check_status",
                    &[
                        ("proxy", &be.config.name),
                        ("server", &s.name),
                        ("state", st.code()),
                    ],
                    u64::from(st == now),
                );
            }
        }
    }
    m.head(
        "haproxy_server_check_failures_total",
        "counter",
        "Total number of failed individual health checks",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            if s.check.is_some() {
                m.line(
                    "haproxy_server_check_failures_total",
                    &[("proxy", &be.config.name), ("server", &s.name)],
                    g(&be.servers[i].check_failures),
                );
            }
        }
    }
    m.head(
        "haproxy_server_check_up_down_total",
        "counter",
        "Total number of failed checks causing UP to DOWN server transitions",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            if s.check.is_some() {
                m.line(
                    "haproxy_server_check_up_down_total",
                    &[("proxy", &be.config.name), ("server", &s.name)],
                    g(&be.servers[i].check_downs),
                );
            }
        }
    }
    m.head(
        "haproxy_server_http_responses_total",
        "counter",
        "Total number of HTTP responses",
    );
    for be in rt.backends.iter().filter(|b| b.config.mode == Mode::Http) {
        for (i, s) in be.config.servers.iter().enumerate() {
            m.codes(
                "haproxy_server_http_responses_total",
                &[("proxy", &be.config.name), ("server", &s.name)],
                &be.servers[i].counters,
            );
        }
    }

    // What HAProxy lacks.
    m.head(
        "wsgate_server_open_tunnels",
        "gauge",
        "Open WebSocket (and mode tcp) tunnels on the server",
    );
    for be in &rt.backends {
        for (i, s) in be.config.servers.iter().enumerate() {
            m.line(
                "wsgate_server_open_tunnels",
                &[("proxy", &be.config.name), ("server", &s.name)],
                g(&be.servers[i].counters.cur_tunnels),
            );
        }
    }
    m.head(
        "wsgate_tunnels_total",
        "counter",
        "Tunnels opened since start, per backend",
    );
    for be in &rt.backends {
        m.line(
            "wsgate_tunnels_total",
            &[("proxy", &be.config.name)],
            g(&be.counters.total_tunnels),
        );
    }
    m.head(
        "wsgate_tunnels_closed_total",
        "counter",
        "Tunnels closed, per backend and reason",
    );
    for be in &rt.backends {
        for reason in CloseReason::ALL {
            m.line(
                "wsgate_tunnels_closed_total",
                &[("proxy", &be.config.name), ("reason", reason.label())],
                be.counters.closed(reason),
            );
        }
    }
    tunnel_lifetimes(m, rt);
    m.one(
        "wsgate_tunnels_parked",
        "gauge",
        "Idle tunnels parked outside their tasks now (tune.idle-park)",
        crate::proxy::parked_tunnels(),
    );
    m.one(
        "wsgate_log_dropped_total",
        "counter",
        "Access log lines dropped because the log writer was behind",
        rt.obs.logger.dropped(),
    );
    websocket_messages(m, rt);
    message_sizes(m, rt);
}

/// `wsgate_tunnel_duration_seconds`: closed tunnels' lifetimes, one
/// histogram per backend (per server would multiply the series by the
/// bucket count for every server).
fn tunnel_lifetimes(m: &mut Metrics<'_>, rt: &Runtime) {
    const NAME: &str = "wsgate_tunnel_duration_seconds";
    m.head(
        NAME,
        "histogram",
        "Lifetime of closed WebSocket (and mode tcp) tunnels, per backend",
    );
    let bucket = format!("{NAME}_bucket");
    let count_name = format!("{NAME}_count");
    let les: Vec<String> = TUNNEL_BUCKETS
        .iter()
        .map(f64::to_string)
        .chain(std::iter::once("+Inf".to_owned()))
        .collect();
    for be in &rt.backends {
        let c = &be.counters;
        let proxy = be.config.name.as_str();
        let mut cumulative = 0;
        for (count, le) in c.tunnel_lifetimes.iter().zip(les.iter()) {
            cumulative += Counters::get(count);
            m.line(&bucket, &[("proxy", proxy), ("le", le)], cumulative);
        }
        let sum_ms = Counters::get(&c.tunnel_lifetime_ms);
        m.out.push_str(NAME);
        m.out.push_str("_sum{proxy=\"");
        label_escape(m.out, proxy);
        let _ = writeln!(m.out, "\"}} {}.{:03}", sum_ms / 1000, sum_ms % 1000);
        m.line(&count_name, &[("proxy", proxy)], cumulative);
    }
}

/// `wsgate_{frontend,backend}_ws_*`: WebSocket messages, bytes, rate-limit
/// drops and close codes by sender, and wsgate's policy closes by reason,
/// counted where frame tracking is on (every WebSocket tunnel).
fn websocket_messages(m: &mut Metrics<'_>, rt: &Runtime) {
    let frontends = rt
        .frontends
        .iter()
        .zip(&rt.obs.frontends)
        .map(|(fe, c)| (fe.name.as_str(), &*c.ws));
    let backends = rt
        .backends
        .iter()
        .map(|be| (be.config.name.as_str(), &*be.counters.ws));
    let proxies: [(&str, Vec<(&str, &WsCounters)>); 2] = [
        ("frontend", frontends.collect()),
        ("backend", backends.collect()),
    ];
    type PerSender = fn(&WsCounters) -> &[AtomicU64; 2];
    let per_sender: [(&str, &str, &str, PerSender); 3] = [
        (
            "messages_total",
            "counter",
            "WebSocket data messages forwarded, by sender",
            |c| &c.messages,
        ),
        (
            "message_bytes_total",
            "counter",
            "Payload bytes of forwarded WebSocket data frames (wire sizes), by sender",
            |c| &c.payload_bytes,
        ),
        (
            "rate_limit_drops_total",
            "counter",
            "WebSocket messages dropped by `websocket rate-limit ... action drop`, by sender",
            |c| &c.dropped,
        ),
    ];
    for (kind, list) in &proxies {
        for (suffix, ty, help, pick) in per_sender {
            let name = format!("wsgate_{kind}_ws_{suffix}");
            m.head(&name, ty, help);
            for (proxy, c) in list {
                for (i, from) in FROM.iter().enumerate() {
                    m.line(
                        &name,
                        &[("proxy", proxy), ("from", from)],
                        pick(c)[i].load(Relaxed),
                    );
                }
            }
        }
        let name = format!("wsgate_{kind}_ws_close_codes_total");
        m.head(
            &name,
            "counter",
            "WebSocket close frames seen, by sender and code (codes seen so far)",
        );
        for (proxy, c) in list {
            for (i, from) in FROM.iter().enumerate() {
                for (slot, code) in close_code_labels() {
                    let v = c.close_codes[i][slot].load(Relaxed);
                    if v > 0 {
                        m.line(
                            &name,
                            &[("proxy", proxy), ("from", from), ("code", &code)],
                            v,
                        );
                    }
                }
            }
        }
        let name = format!("wsgate_{kind}_ws_policy_closes_total");
        m.head(
            &name,
            "counter",
            "WebSockets closed by wsgate for breaking a `websocket` limit, by reason",
        );
        for (proxy, c) in list {
            for (i, reason) in POLICY_REASONS.iter().enumerate() {
                m.line(
                    &name,
                    &[("proxy", proxy), ("reason", reason)],
                    c.policy_closes[i].load(Relaxed),
                );
            }
        }
    }
}

/// `wsgate_websocket_message_size_bytes`: forwarded WebSocket messages by
/// payload size (wire sizes), per frontend and per backend (`type`), by
/// sender. The sum is the payload bytes forwarded, which also holds the
/// bytes of a message a tunnel's end cut short.
fn message_sizes(m: &mut Metrics<'_>, rt: &Runtime) {
    const NAME: &str = "wsgate_websocket_message_size_bytes";
    m.head(
        NAME,
        "histogram",
        "Forwarded WebSocket messages by payload size, per frontend and backend, by sender",
    );
    let bucket = format!("{NAME}_bucket");
    let sum = format!("{NAME}_sum");
    let count = format!("{NAME}_count");
    let les: Vec<String> = SIZE_BOUNDS
        .iter()
        .map(u64::to_string)
        .chain(std::iter::once("+Inf".to_owned()))
        .collect();
    let frontends = rt
        .frontends
        .iter()
        .zip(&rt.obs.frontends)
        .map(|(fe, c)| ("frontend", fe.name.as_str(), &*c.ws));
    let backends = rt
        .backends
        .iter()
        .map(|be| ("backend", be.config.name.as_str(), &*be.counters.ws));
    for (ty, proxy, c) in frontends.chain(backends) {
        for (i, from) in FROM.iter().enumerate() {
            let labels = [("type", ty), ("proxy", proxy), ("from", from)];
            let mut cumulative = 0;
            for (n, le) in c.sizes[i].iter().zip(&les) {
                cumulative += n.load(Relaxed);
                let [t, p, f] = labels;
                m.line(&bucket, &[t, p, f, ("le", le)], cumulative);
            }
            m.line(&sum, &labels, c.payload_bytes[i].load(Relaxed));
            m.line(&count, &labels, cumulative);
        }
    }
}

struct Metrics<'a> {
    out: &'a mut String,
}

impl Metrics<'_> {
    fn head(&mut self, name: &str, ty: &str, help: &str) {
        let _ = write!(self.out, "# HELP {name} {help}.\n# TYPE {name} {ty}\n");
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                label_escape(self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        let _ = write!(self.out, "{v}");
        self.out.push('\n');
    }

    fn one(&mut self, name: &str, ty: &str, help: &str, v: u64) {
        self.head(name, ty, help);
        self.line(name, &[], v);
    }

    fn codes(&mut self, name: &str, labels: &[(&str, &str)], c: &Counters) {
        for (i, code) in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
            .iter()
            .enumerate()
        {
            let v = Counters::get(&c.responses[i]);
            match labels {
                [a] => self.line(name, &[*a, ("code", code)], v),
                [a, b] => self.line(name, &[*a, *b, ("code", code)], v),
                _ => {
                    let mut l: Vec<(&str, &str)> = labels.to_vec();
                    l.push(("code", code));
                    self.line(name, &l, v);
                }
            }
        }
    }
}

/// Appends a label value, escaped as the text format wants (`\\`, `\"`,
/// `\n`); names without those characters are copied as they are.
fn label_escape(out: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        label_escape(&mut out, "plain");
        label_escape(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "plaina\\\\b\\\"c\\nd");
    }
}
