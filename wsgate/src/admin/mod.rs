//! Seeing and steering a running wsgate: the stats page (`stats`), the
//! Prometheus exporter (`metrics`) and the runtime API (`cli`).
//!
//! Stage: reads the counters that `backend/` and `proxy::counters` keep
//! (never a session), and changes server state only through
//! `BackendRuntime` (`set_admin`, `set_weight`). Everything here works from
//! one snapshot, [`rows`], in HAProxy's CSV layout (management guide 9.1):
//! the page, `;csv`, `;json` and `show stat [typed|json]` all show the same figures, so
//! scripts written for HAProxy's CSV keep working.

pub mod cli;
mod fields;
mod inspect;
pub mod metrics;
pub mod stats;
pub mod stats_admin;

use std::fmt::Write as _;

use crate::backend::counters::unix_now;
use crate::backend::{AdminState, BackendRuntime, Counters};
use crate::proxy::Runtime;
use crate::ws::counters::{close_code_labels, WsCounters, SIZE_BUCKETS};

/// The CSV columns, in order: HAProxy 2.6's, as Debian's build writes
/// them (the static columns 0..=102, `-`, then its `ssl`, `h2` and `h1`
/// modules' columns), so that scripts reading HAProxy's CSV by position
/// or by name keep working; columns wsgate has no figure for stay empty,
/// as HAProxy leaves inapplicable ones. wsgate's own columns come after
/// HAProxy's last one, from [`FIRST_WSGATE_COLUMN`] on.
pub const COLUMNS: [&str; 193] = [
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
    "agg_server_status",
    "agg_server_check_status",
    "agg_check_status",
    "-",
    "ssl_sess",
    "ssl_reused_sess",
    "ssl_failed_handshake",
    "h2_headers_rcvd",
    "h2_data_rcvd",
    "h2_settings_rcvd",
    "h2_rst_stream_rcvd",
    "h2_goaway_rcvd",
    "h2_detected_conn_protocol_errors",
    "h2_detected_strm_protocol_errors",
    "h2_rst_stream_resp",
    "h2_goaway_resp",
    "h2_open_connections",
    "h2_backend_open_streams",
    "h2_total_connections",
    "h2_backend_total_streams",
    "h1_open_connections",
    "h1_open_streams",
    "h1_total_connections",
    "h1_total_streams",
    "h1_bytes_in",
    "h1_bytes_out",
    "h1_spliced_bytes_in",
    "h1_spliced_bytes_out",
    // wsgate's columns (docs/observability.md). Tunnels: WebSockets after
    // their 101 (connections in `mode tcp`); `_in` is what the client
    // sent, `_out` what the server sent; the message figures are the
    // frame tracker's, for frontends and backends.
    "tunnel_cur",
    "tunnel_tot",
    "ws_msg_in",
    "ws_msg_out",
    "ws_bytes_in",
    "ws_bytes_out",
    "ws_dropped_in",
    "ws_dropped_out",
    "ws_policy_closes",
    "ws_size_in_le64",
    "ws_size_in_le256",
    "ws_size_in_le1k",
    "ws_size_in_le4k",
    "ws_size_in_le16k",
    "ws_size_in_le64k",
    "ws_size_in_le1m",
    "ws_size_in_le16m",
    "ws_size_out_le64",
    "ws_size_out_le256",
    "ws_size_out_le1k",
    "ws_size_out_le4k",
    "ws_size_out_le16k",
    "ws_size_out_le64k",
    "ws_size_out_le1m",
    "ws_size_out_le16m",
    // Close frames seen, by sender (`in`: the client's, `out`: the
    // server's) and code, as `wsgate_*_ws_close_codes_total`.
    "ws_close_in_1000",
    "ws_close_in_1001",
    "ws_close_in_1002",
    "ws_close_in_1003",
    "ws_close_in_1004",
    "ws_close_in_1005",
    "ws_close_in_1006",
    "ws_close_in_1007",
    "ws_close_in_1008",
    "ws_close_in_1009",
    "ws_close_in_1010",
    "ws_close_in_1011",
    "ws_close_in_1012",
    "ws_close_in_1013",
    "ws_close_in_1014",
    "ws_close_in_1015",
    "ws_close_in_none",
    "ws_close_in_3xxx",
    "ws_close_in_4xxx",
    "ws_close_in_invalid",
    "ws_close_out_1000",
    "ws_close_out_1001",
    "ws_close_out_1002",
    "ws_close_out_1003",
    "ws_close_out_1004",
    "ws_close_out_1005",
    "ws_close_out_1006",
    "ws_close_out_1007",
    "ws_close_out_1008",
    "ws_close_out_1009",
    "ws_close_out_1010",
    "ws_close_out_1011",
    "ws_close_out_1012",
    "ws_close_out_1013",
    "ws_close_out_1014",
    "ws_close_out_1015",
    "ws_close_out_none",
    "ws_close_out_3xxx",
    "ws_close_out_4xxx",
    "ws_close_out_invalid",
];

/// Where wsgate's own columns begin: just after HAProxy's last.
pub const FIRST_WSGATE_COLUMN: usize = 128;

fn col(name: &str) -> usize {
    COLUMNS.iter().position(|c| *c == name).unwrap_or(0)
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    U64(u64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::U64(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Frontend,
    Backend,
    Server,
}

/// One CSV line: a frontend, a backend or a server.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: RowKind,
    /// Position of the proxy (`iid`).
    pub proxy_id: u64,
    /// Server id (`sid`, 0 for frontends and backends).
    pub sid: u64,
    pub fields: Vec<Option<Value>>,
}

impl Row {
    fn new(kind: RowKind, proxy_id: u64, sid: u64, px: &str, sv: &str) -> Row {
        let mut r = Row {
            kind,
            proxy_id,
            sid,
            fields: vec![None; COLUMNS.len()],
        };
        r.set("pxname", Value::Str(px.to_owned()));
        r.set("svname", Value::Str(sv.to_owned()));
        r.num("pid", 1);
        r.num("iid", proxy_id);
        r.num("sid", sid);
        r.num(
            "type",
            match kind {
                RowKind::Frontend => 0,
                RowKind::Backend => 1,
                RowKind::Server => 2,
            },
        );
        r
    }

    fn set(&mut self, name: &str, v: Value) {
        let i = col(name);
        self.fields[i] = Some(v);
    }

    fn num(&mut self, name: &str, v: u64) {
        self.set(name, Value::U64(v));
    }

    fn text(&mut self, name: &str, v: impl Into<String>) {
        self.set(name, Value::Str(v.into()));
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields[col(name)].as_ref()
    }

    /// A numeric field, 0 when empty.
    pub fn n(&self, name: &str) -> u64 {
        match self.get(name) {
            Some(Value::U64(n)) => *n,
            _ => 0,
        }
    }

    /// A text field, "" when empty.
    pub fn s(&self, name: &str) -> String {
        self.get(name).map(ToString::to_string).unwrap_or_default()
    }

    /// The traffic columns common to every kind.
    fn traffic(&mut self, c: &Counters, http: bool) {
        let g = Counters::get;
        self.num("scur", g(&c.cur_sessions));
        self.num("smax", g(&c.max_sessions));
        self.num("stot", g(&c.total_sessions));
        self.num("bin", g(&c.bytes_in));
        self.num("bout", g(&c.bytes_out));
        if http {
            for (i, name) in [
                "hrsp_1xx",
                "hrsp_2xx",
                "hrsp_3xx",
                "hrsp_4xx",
                "hrsp_5xx",
                "hrsp_other",
            ]
            .iter()
            .enumerate()
            {
                self.num(name, g(&c.responses[i]));
            }
        }
        self.num("tunnel_cur", g(&c.cur_tunnels));
        self.num("tunnel_tot", g(&c.total_tunnels));
    }

    /// The `ws_*` columns: a frontend's or backend's per-message figures.
    fn websocket(&mut self, ws: &WsCounters) {
        let g = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        for (i, dir) in ["in", "out"].iter().enumerate() {
            self.num(&format!("ws_msg_{dir}"), g(&ws.messages[i]));
            self.num(&format!("ws_bytes_{dir}"), g(&ws.payload_bytes[i]));
            self.num(&format!("ws_dropped_{dir}"), g(&ws.dropped[i]));
            let first = col(&format!("ws_size_{dir}_le64"));
            let mut cumulative = 0;
            for (b, count) in ws.sizes[i][..SIZE_BUCKETS].iter().enumerate() {
                cumulative += g(count);
                self.fields[first + b] = Some(Value::U64(cumulative));
            }
        }
        self.num("ws_policy_closes", ws.policy_closes.iter().map(g).sum());
        for (i, dir) in ["in", "out"].iter().enumerate() {
            for (slot, code) in close_code_labels() {
                let v = g(&ws.close_codes[i][slot]);
                self.num(&format!("ws_close_{dir}_{code}"), v);
            }
        }
    }
}

/// Which server state HAProxy's stats would print.
pub fn server_status(be: &BackendRuntime, i: usize) -> &'static str {
    let st = &be.servers[i];
    match st.admin() {
        AdminState::Maint => "MAINT",
        AdminState::Drain if st.is_up() => "DRAIN",
        _ if !st.is_up() => "DOWN",
        AdminState::Drain => "DRAIN",
        AdminState::Ready if be.config.servers[i].check.is_none() => "no check",
        AdminState::Ready => "UP",
    }
}

/// The snapshot every view is made from: per proxy, in declaration order,
/// the FRONTEND line, then its servers and the BACKEND line (a `listen`
/// section shows all three under one name, as in HAProxy).
pub fn rows(rt: &Runtime) -> Vec<Row> {
    let mut out = Vec::new();
    let mut iid = 0u64;
    let mut shown = vec![false; rt.backends.len()];
    for (fi, fe) in rt.frontends.iter().enumerate() {
        iid += 1;
        let mut r = Row::new(RowKind::Frontend, iid, 0, &fe.name, "FRONTEND");
        let http = fe.mode == crate::config::model::Mode::Http;
        if let Some(c) = rt.obs.frontends.get(fi) {
            r.traffic(c, http);
            r.num("dreq", Counters::get(&c.denied));
            r.num("ereq", Counters::get(&c.request_errors));
            if http {
                r.num("req_tot", Counters::get(&c.requests));
                r.num("intercepted", Counters::get(&c.intercepted));
            }
            r.num("conn_tot", Counters::get(&c.total_sessions));
            r.websocket(&c.ws);
        }
        if let Some(m) = frontend_maxconn(rt, fi) {
            r.num("slim", m);
        }
        r.text("status", "OPEN");
        r.text("mode", fe.mode.to_string());
        out.push(r);
        if let Some(bi) = rt.backends.iter().position(|b| b.config.name == fe.name) {
            shown[bi] = true;
            backend_rows(&rt.backends[bi], iid, &mut out);
        }
    }
    for (bi, be) in rt.backends.iter().enumerate() {
        if !shown[bi] {
            iid += 1;
            backend_rows(be, iid, &mut out);
        }
    }
    out
}

fn backend_rows(be: &BackendRuntime, iid: u64, out: &mut Vec<Row>) {
    let cfg = &be.config;
    let http = cfg.mode == crate::config::model::Mode::Http;
    let now = unix_now();
    let (mut act, mut bck) = (0u64, 0u64);
    let (mut weight, mut uweight) = (0u64, 0u64);
    for (i, s) in cfg.servers.iter().enumerate() {
        let st = &be.servers[i];
        let mut r = Row::new(RowKind::Server, iid, u64::from(s.id), &cfg.name, &s.name);
        let c = &st.counters;
        r.traffic(c, http);
        r.num("qcur", u64::from(st.queued()));
        r.num("qmax", Counters::get(&c.max_queue));
        if st.maxconn() > 0 {
            r.num("slim", u64::from(st.maxconn()));
        }
        if s.maxqueue > 0 {
            r.num("qlimit", u64::from(s.maxqueue));
        }
        r.num("econ", Counters::get(&c.connection_errors));
        r.num("eresp", Counters::get(&c.response_errors));
        r.num("wretr", Counters::get(&c.retries));
        r.num("wredis", Counters::get(&c.redispatches));
        let status = server_status(be, i);
        r.text("status", status);
        // `weight` is the effective weight (ramping during `slowstart`),
        // `uweight` the user's, as HAProxy shows them.
        r.num("weight", u64::from(be.effective_weight(i)));
        r.num("uweight", u64::from(st.weight()));
        r.num("act", u64::from(!s.backup));
        r.num("bck", u64::from(s.backup));
        r.num("lbtot", Counters::get(&c.selected));
        r.num("lastchg", st.last_change_age());
        let last = Counters::get(&c.last_session);
        if last > 0 {
            r.num("lastsess", now.saturating_sub(last));
        }
        r.text("addr", st.addr().to_string());
        r.text("mode", cfg.mode.to_string());
        r.num("used_conn_cur", u64::from(st.served()));
        if let Some(chk) = &s.check {
            r.num("chkfail", Counters::get(&st.check_failures));
            r.num("chkdown", Counters::get(&st.check_downs));
            let cs = st.check_status();
            r.text("check_status", cs.code());
            r.text("check_desc", cs.description());
            let info = st.check_info();
            if !info.reason.is_empty() {
                r.num("check_duration", info.duration_ms);
                r.text("last_chk", info.reason);
            }
            r.num("check_rise", u64::from(chk.rise));
            r.num("check_fall", u64::from(chk.fall));
            r.num(
                "check_health",
                u64::from(st.check_health.load(std::sync::atomic::Ordering::Relaxed)),
            );
        }
        if be.is_usable(i) {
            if s.backup {
                bck += 1;
            } else {
                act += 1;
            }
            weight += u64::from(be.effective_weight(i));
            uweight += u64::from(st.weight());
        }
        out.push(r);
    }
    let c = &be.counters;
    let mut r = Row::new(RowKind::Backend, iid, 0, &cfg.name, "BACKEND");
    r.traffic(c, http);
    // The backend's own queue, as HAProxy (each server row has its own).
    r.num("qcur", u64::from(be.queued()));
    r.num("qmax", Counters::get(&c.max_queue));
    r.num("dreq", Counters::get(&c.denied));
    r.num("econ", Counters::get(&c.connection_errors));
    r.num("eresp", Counters::get(&c.response_errors));
    r.num("wretr", Counters::get(&c.retries));
    r.num("wredis", Counters::get(&c.redispatches));
    r.text("status", if act + bck > 0 { "UP" } else { "DOWN" });
    r.num("weight", weight);
    r.num("uweight", uweight);
    r.num("act", act);
    r.num("bck", bck);
    r.num("lbtot", Counters::get(&c.selected));
    if http {
        r.num("req_tot", Counters::get(&c.requests));
    }
    let last = Counters::get(&c.last_session);
    if last > 0 {
        r.num("lastsess", now.saturating_sub(last));
    }
    r.text("mode", cfg.mode.to_string());
    r.text("algo", algo_name(&cfg.balance));
    r.num("intercepted", Counters::get(&c.intercepted));
    r.websocket(&c.ws);
    out.push(r);
}

/// Global `maxconn` as shown: the limit in force when the file set one or
/// the runtime API changed it (else none is shown, as before any change).
pub fn global_maxconn(rt: &Runtime) -> Option<u64> {
    let limit = rt.global_limit.limit();
    (rt.global.maxconn.is_some() || limit != rt.global_limit.initial())
        .then_some(limit)
        .flatten()
        .map(|n| n as u64)
}

/// A frontend's session limit as shown (`slim`): its `maxconn` in force,
/// else the global one.
pub fn frontend_maxconn(rt: &Runtime, fi: usize) -> Option<u64> {
    rt.frontend_limits
        .get(fi)
        .and_then(|l| l.limit())
        .map(|n| n as u64)
        .or_else(|| global_maxconn(rt))
}

fn algo_name(b: &crate::config::model::Balance) -> &'static str {
    use crate::config::model::Balance;
    match b {
        Balance::RoundRobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::LeastConn => "leastconn",
        Balance::First => "first",
        Balance::Source => "source",
        Balance::Uri { .. } => "uri",
        Balance::UrlParam(_) => "url_param",
        Balance::Hdr { .. } => "hdr",
        Balance::Random { .. } => "random",
    }
}

/// HAProxy's CSV: a `# ` header line, then one line per row, every line
/// ending with a comma.
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::with_capacity(512 + rows.len() * 256);
    s.push_str("# ");
    for c in COLUMNS {
        s.push_str(c);
        s.push(',');
    }
    s.push('\n');
    for r in rows {
        for f in &r.fields {
            if let Some(v) = f {
                csv_field(&mut s, &v.to_string());
            }
            s.push(',');
        }
        s.push('\n');
    }
    s
}

/// Quotes a field only when it needs it, doubling quotes (as HAProxy).
fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

pub fn json_string(t: &str) -> String {
    let mut s = String::with_capacity(t.len() + 2);
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `0d 0h01m02s`, as HAProxy's `show info` writes uptimes.
pub fn uptime_text(secs: u64) -> String {
    format!(
        "{}d {}h{:02}m{:02}s",
        secs / 86400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `show info`: process figures, `Name: value` lines.
pub fn info(rt: &Runtime) -> Vec<(&'static str, String)> {
    let up = rt.obs.started_at.elapsed().as_secs();
    let p = &rt.obs.process;
    let started = rt
        .obs
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    vec![
        ("Name", "wsgate".into()),
        ("Version", env!("CARGO_PKG_VERSION").into()),
        ("Pid", std::process::id().to_string()),
        ("Process_num", "1".into()),
        (
            "Nbthread",
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        ),
        ("Uptime", uptime_text(up)),
        ("Uptime_sec", up.to_string()),
        ("Start_time_sec", started.to_string()),
        (
            "Maxconn",
            global_maxconn(rt)
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ),
        (
            "Hard_maxconn",
            rt.global_limit
                .initial()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ),
        ("CurrConns", Counters::get(&p.cur_sessions).to_string()),
        ("MaxConnReached", Counters::get(&p.max_sessions).to_string()),
        ("CumConns", Counters::get(&p.total_sessions).to_string()),
        ("CumReq", Counters::get(&p.requests).to_string()),
        (
            "CurrTunnels",
            rt.backends
                .iter()
                .flat_map(|b| b.servers.iter())
                .map(|s| Counters::get(&s.counters.cur_tunnels))
                .sum::<u64>()
                .to_string(),
        ),
        ("LogLinesDropped", rt.obs.logger.dropped().to_string()),
    ]
}
