//! Access logs: HAProxy's `option httplog` and `option tcplog` lines,
//! written to `log` targets (stdout, stderr, UDP syslog, a Unix datagram
//! socket such as `/dev/log`) in `raw`, `local`, `rfc3164` or `rfc5424` framing.
//!
//! Stage: the session (or the tunnel task, when a tunnel closes) fills an
//! [`Entry`] with raw facts (addresses, instants, names, status, byte
//! counts, termination state) and hands it to [`Logger::send`], which
//! never blocks: the entry goes into a bounded channel to one writer
//! thread, and when the channel is full it is dropped and counted
//! ([`Logger::dropped`]). Formatting (dates, fields) happens on the writer
//! thread, so the data path pays for one allocation and one channel push.
//!
//! Formats, field for field as HAProxy's defaults (configuration manual
//! 8.2.2 and 8.2.3):
//!
//! ```text
//! tcplog:  %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
//! httplog: %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r
//! ```
//!
//! (`%hr %hs` print nothing without `capture` lines, which wsgate does not
//! support.) A WebSocket's line is written when its tunnel closes: status
//! 101, `Ta` its whole lifetime, `B` every byte sent to the client, and the
//! termination state as HAProxy writes it (`----`, `CD`, `cD`, `K-`, ...).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::logformat::Fetch;
use crate::config::logline::{Flags, LogLine, Node, Var};
use crate::config::model::{LogFormat, LogSink, LogTarget, ServerAddr};

/// Entries waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 4096;
/// HAProxy's traffic logs use level `info`.
const LEVEL_INFO: u8 = 6;

/// One access log line's facts.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The frontend's line: `log-format`, or `option httplog|tcplog`.
    pub line: Arc<LogLine>,
    /// Where to send it (the frontend's `log` lines).
    pub targets: Arc<[LogTarget]>,
    pub client: SocketAddr,
    /// `%fi:%fp`: the address the client connected to, when known.
    pub local: Option<SocketAddr>,
    /// `%si:%sp`: the server's address, once one was chosen.
    /// The server's address (`-` for both %si and %sp while it has none).
    pub server_addr: Option<ServerAddr>,
    /// `%tr` / `%t`: when the request (or connection) started.
    pub date: SystemTime,
    /// Frontend name; `%ft` appends `~` for TLS as HAProxy does.
    pub frontend: String,
    pub tls: bool,
    pub backend: String,
    /// Server name, or `<NOSRV>`, `<STATS>`, `<PROMEX>`.
    pub server: String,
    /// Times in ms; `None` prints -1 (the step was not reached).
    pub t_request: Option<u64>,
    pub t_queue: Option<u64>,
    pub t_connect: Option<u64>,
    pub t_response: Option<u64>,
    /// `Ta` (http) or `Tt` (tcp).
    pub t_total: u64,
    /// The status sent to the client; `None` prints -1, as HAProxy does
    /// when there was none.
    pub status: Option<u16>,
    /// `%B`: bytes sent to the client.
    pub bytes: u64,
    /// `%U`: bytes received from the client.
    pub bytes_up: u64,
    /// Termination state: the two first characters (the last two, cookie
    /// related, are always `--`).
    pub term: [u8; 2],
    /// `%ac/%fc/%bc/%sc/%rc`.
    pub conns: [u64; 4],
    pub retries: u32,
    pub redispatched: bool,
    /// `%sq/%bq`.
    pub queues: [u64; 2],
    /// `METHOD target VERSION` (http only).
    pub request_line: String,
    /// The values of the line's header samples
    /// ([`LogLine::header_fetches`]), in order.
    pub samples: Vec<Option<String>>,
}

impl Entry {
    /// The line, without syslog framing: the format's nodes evaluated as
    /// HAProxy's `sess_build_logline` does (a separator is written only
    /// after something that printed).
    pub fn format(&self) -> String {
        let mut s = String::with_capacity(160 + self.request_line.len());
        let mut last_space = true;
        let mut samples = self.samples.iter();
        for node in &self.line.nodes {
            match node {
                Node::Separator => {
                    if !last_space {
                        s.push(' ');
                        last_space = true;
                    }
                }
                Node::Text(t) => {
                    s.push_str(t);
                    last_space = false;
                }
                Node::Var(v, flags) => {
                    if self.var(*v, *flags, &mut s) {
                        last_space = false;
                    }
                }
                Node::Sample(f, flags) => {
                    let value = match f {
                        Fetch::Hdr(_) | Fetch::ReqHdr(_) => samples.next().cloned().flatten(),
                        f => self.sample(f),
                    };
                    text(&mut s, value.as_deref(), *flags);
                    last_space = false;
                }
            }
        }
        s
    }

    /// Writes one variable; false when it printed nothing.
    fn var(&self, v: Var, flags: Flags, s: &mut String) -> bool {
        use std::fmt::Write as _;
        let ms = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let num = |s: &mut String, n: i64| {
            let _ = write!(s, "{n}");
        };
        // `+X` changes only addresses, ports, `%Ts`, `%ms` and `%pid`, as
        // in HAProxy 2.6.
        let hex = |s: &mut String, n: i64, width: usize| {
            if flags.hex {
                let _ = write!(s, "{n:0width$X}");
            } else {
                let _ = write!(s, "{n}");
            }
        };
        let ip = |s: &mut String, a: Option<SocketAddr>| match a {
            Some(a) if flags.hex => {
                let octets: Vec<u8> = match a.ip() {
                    std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                    std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                };
                let h: String = octets.iter().map(|o| format!("{o:02X}")).collect();
                text(s, Some(&h), flags);
            }
            a => text(s, a.map(|a| a.ip().to_string()).as_deref(), flags),
        };
        let u = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let (_, target, version) = split_request(&self.request_line);
        let (path, query) = match target {
            Some(t) => match t.split_once('?') {
                Some((p, q)) => (Some(p), Some(q)),
                None => (Some(t), None),
            },
            None => (None, None),
        };
        match v {
            Var::ClientIp => ip(s, Some(self.client)),
            Var::ClientPort => hex(s, i64::from(self.client.port()), 4),
            Var::FrontendIp => ip(s, self.local),
            Var::FrontendPort => match self.local {
                Some(a) => hex(s, i64::from(a.port()), 4),
                None => text(s, None, flags),
            },
            Var::ServerIp => ip(s, self.server_addr.and_then(ServerAddr::known)),
            Var::ServerPort => match self.server_addr.and_then(ServerAddr::known) {
                Some(a) => hex(s, i64::from(a.port()), 4),
                None => text(s, None, flags),
            },
            Var::Frontend => text(s, Some(&self.frontend), flags),
            Var::FrontendTransport => {
                let name = format!("{}{}", self.frontend, if self.tls { "~" } else { "" });
                text(s, Some(&name), flags);
            }
            Var::Backend => text(s, Some(&self.backend), flags),
            Var::Server => text(s, Some(&self.server), flags),
            Var::Status => num(s, self.status.map_or(-1, i64::from)),
            Var::BytesRead => num(s, u(self.bytes)),
            Var::BytesUploaded => num(s, u(self.bytes_up)),
            Var::Tq | Var::TR => num(s, ms(self.t_request)),
            Var::Ti | Var::Th => num(s, 0),
            Var::Tw => num(s, ms(self.t_queue)),
            Var::Tc => num(s, ms(self.t_connect)),
            Var::Tr => num(s, ms(self.t_response)),
            Var::Ta | Var::Tt => num(s, u(self.t_total)),
            Var::Td => {
                let parts = [
                    self.t_request,
                    self.t_queue,
                    self.t_connect,
                    self.t_response,
                ];
                let td = match parts.iter().copied().collect::<Option<Vec<u64>>>() {
                    Some(p) => u(self.t_total).saturating_sub(u(p.iter().sum())),
                    None => -1,
                };
                num(s, td);
            }
            Var::TermState => text(s, Some(&String::from_utf8_lossy(&self.term)), flags),
            Var::TermStateCookie => {
                let t = format!("{}--", String::from_utf8_lossy(&self.term));
                text(s, Some(&t), flags);
            }
            Var::ActConn => num(s, u(self.conns[0])),
            Var::FeConn => num(s, u(self.conns[1])),
            Var::BeConn => num(s, u(self.conns[2])),
            Var::SrvConn => num(s, u(self.conns[3])),
            Var::Retries => {
                if self.redispatched {
                    s.push('+');
                }
                num(s, i64::from(self.retries));
            }
            Var::SrvQueue => num(s, u(self.queues[0])),
            Var::BackendQueue => num(s, u(self.queues[1])),
            Var::Request => {
                let r = (!self.request_line.is_empty()).then_some(self.request_line.as_str());
                text(s, r, flags);
            }
            Var::Method => {
                let m = split_request(&self.request_line).0;
                text(s, m, flags);
            }
            Var::Uri => text(s, target, flags),
            Var::Path => text(s, path, flags),
            Var::PathOnly => text(s, path.map(path_only), flags),
            Var::Query => text(s, query.map(|q| format!("?{q}")).as_deref(), flags),
            Var::Version => text(s, version, flags),
            Var::Date => s.push_str(&accept_date(self.date)),
            Var::GmtDate => s.push_str(&gmt_date(self.date)),
            Var::LocalDate => s.push_str(&local_date(self.date)),
            Var::Timestamp => hex(s, unix_secs(self.date), 4),
            Var::Millis => {
                let millis = local_time(self.date).micros / 1000;
                if flags.hex {
                    let _ = write!(s, "{millis:02X}");
                } else {
                    let _ = write!(s, "{millis:03}");
                }
            }
            Var::Pid => hex(s, i64::from(std::process::id()), 4),
            Var::Hostname => text(s, Some(hostname()), flags),
            Var::UniqueId | Var::Cookie => text(s, None, flags),
            Var::Captures => return false,
        }
        true
    }

    /// A `%[...]` sample the entry itself holds.
    fn sample(&self, f: &Fetch) -> Option<String> {
        let (method, target, _) = split_request(&self.request_line);
        let (path, query) = match target.map(|t| t.split_once('?')) {
            Some(Some((p, q))) => (Some(p), Some(q)),
            Some(None) => (target, None),
            None => (None, None),
        };
        match f {
            Fetch::Src => Some(self.client.ip().to_string()),
            Fetch::SrcPort => Some(self.client.port().to_string()),
            Fetch::Dst => self.local.map(|a| a.ip().to_string()),
            Fetch::DstPort => self.local.map(|a| a.port().to_string()),
            Fetch::Path => path.map(path_only).map(str::to_owned),
            Fetch::Url => target.map(str::to_owned),
            Fetch::Query => query.map(str::to_owned),
            Fetch::Method => method.map(str::to_owned),
            Fetch::SslFc => Some(if self.tls { "1" } else { "0" }.to_owned()),
            Fetch::Status => self.status.map(|c| c.to_string()),
            // Refused in log-format lines (config::logline).
            Fetch::Hdr(_)
            | Fetch::ReqHdr(_)
            | Fetch::ResHdr(_)
            | Fetch::ClientCert(_)
            | Fetch::SslFcProtocol
            | Fetch::SslFcSni => None,
        }
    }
}

/// A string field: `-` when empty (`""` with `+Q`), quoted with `+Q`,
/// `"`, `\` and `]` escaped with `+E`, as HAProxy's `lf_text_len`.
fn text(s: &mut String, value: Option<&str>, flags: Flags) {
    if flags.quote {
        s.push('"');
    }
    match value.filter(|v| !v.is_empty()) {
        Some(v) if flags.escape => {
            for c in v.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    s.push('\\');
                }
                s.push(c);
            }
        }
        Some(v) => s.push_str(v),
        None if !flags.quote => s.push('-'),
        None => {}
    }
    if flags.quote {
        s.push('"');
    }
}

/// `METHOD target VERSION` into its three words (none for `<BADREQ>`).
fn split_request(line: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let mut words = line.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(m), Some(t), v) => (Some(m), Some(t), v),
        _ => (None, None, None),
    }
}

/// The path of a target without the scheme and authority of an absolute
/// form (`%HPO`, `path`).
fn path_only(target: &str) -> &str {
    match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |j| &target[i + 3 + j..]),
        None => target,
    }
}

fn unix_secs(date: SystemTime) -> i64 {
    date.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The host name, read once (`%H`).
fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is ours and its length is passed.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    })
}

/// Hands entries to the writer thread; never blocks.
#[derive(Debug)]
pub struct Logger {
    tx: Option<SyncSender<Entry>>,
    /// Entries dropped because the writer was behind.
    dropped: AtomicU64,
    /// Entries queued.
    sent: AtomicU64,
}

impl Logger {
    /// Whether a writer thread runs (something logs).
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// A logger with a writer thread, or an inert one when nothing logs.
    pub fn start(enabled: bool) -> Logger {
        let tx = if enabled {
            let (tx, rx) = sync_channel::<Entry>(QUEUE);
            match std::thread::Builder::new()
                .name("wsgate-log".into())
                .spawn(move || writer(rx))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!("cannot start the log writer: {e}; access logs are off");
                    None
                }
            }
        } else {
            None
        };
        Logger {
            tx,
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }

    pub fn send(&self, entry: Entry) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(entry) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// The writer thread: formats and sends each entry to its targets.
fn writer(rx: Receiver<Entry>) {
    let udp = UdpSocket::bind("0.0.0.0:0").ok();
    let udp6 = UdpSocket::bind("[::]:0").ok();
    let unix = UnixDatagram::unbound().ok();
    let pid = std::process::id();
    while let Ok(entry) = rx.recv() {
        let line = entry.format();
        for t in entry.targets.iter() {
            if t.level < LEVEL_INFO {
                continue;
            }
            let mut framed = frame(t, &line, entry.date, pid);
            // Every line ends with a newline, datagrams too (as HAProxy's).
            framed.push('\n');
            match &t.sink {
                LogSink::Stdout => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(framed.as_bytes());
                    let _ = out.flush();
                }
                LogSink::Stderr => {
                    let mut out = std::io::stderr().lock();
                    let _ = out.write_all(framed.as_bytes());
                }
                LogSink::Udp(addr) => {
                    let sock = if addr.is_ipv4() { &udp } else { &udp6 };
                    if let Some(s) = sock {
                        let _ = s.send_to(framed.as_bytes(), addr);
                    }
                }
                LogSink::Unix(path) => {
                    if let Some(s) = &unix {
                        let _ = s.send_to(framed.as_bytes(), path);
                    }
                }
            }
        }
    }
}

/// Syslog framing of one line, byte for byte as HAProxy 2.6 frames it
/// (compared side by side in `tests/obs_logging.rs`), with `wsgate` as
/// the tag. Without `log-send-hostname` HAProxy writes `localhost` as the
/// RFC 3164 host name and `-` (nil) as the RFC 5424 one; so does wsgate.
fn frame(t: &LogTarget, line: &str, date: SystemTime, pid: u32) -> String {
    let pri = u32::from(t.facility) * 8 + u32::from(LEVEL_INFO);
    let legacy = |host: &str| {
        let tm = local_time(date);
        format!(
            "<{pri}>{} {:2} {:02}:{:02}:{:02} {host}wsgate[{pid}]: {line}",
            MONTHS[tm.month0 as usize % 12],
            tm.day,
            tm.hour,
            tm.min,
            tm.sec
        )
    };
    match t.format {
        LogFormat::Raw => line.to_owned(),
        LogFormat::Local => legacy(""),
        LogFormat::Rfc3164 => legacy("localhost "),
        LogFormat::Rfc5424 => {
            let tm = local_time(date);
            let off = tm.gmtoff / 60;
            let sign = if off < 0 { '-' } else { '+' };
            format!(
                "<{pri}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02} - wsgate {pid} - - {line}",
                tm.year,
                tm.month0 + 1,
                tm.day,
                tm.hour,
                tm.min,
                tm.sec,
                tm.micros,
                off.abs() / 60,
                off.abs() % 60
            )
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i64,
    pub month0: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub micros: u32,
    /// Offset from UTC in seconds.
    pub gmtoff: i64,
}

/// `date` in the local time zone (as HAProxy's logs are).
pub fn local_time(date: SystemTime) -> LocalTime {
    let since = date
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = libc::time_t::try_from(since.as_secs()).unwrap_or(0);
    // SAFETY: an all-zero `tm` is a valid value; `localtime_r` only writes
    // into the struct we own and reads `secs`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return LocalTime {
            year: 1970,
            month0: 0,
            day: 1,
            hour: 0,
            min: 0,
            sec: 0,
            micros: 0,
            gmtoff: 0,
        };
    }
    let n = |v: libc::c_int| u32::try_from(v).unwrap_or(0);
    LocalTime {
        year: i64::from(tm.tm_year) + 1900,
        month0: n(tm.tm_mon),
        day: n(tm.tm_mday),
        hour: n(tm.tm_hour),
        min: n(tm.tm_min),
        sec: n(tm.tm_sec),
        micros: since.subsec_micros(),
        gmtoff: tm.tm_gmtoff,
    }
}

/// `06/Feb/2009:12:14:14.655`: HAProxy's accept date.
pub fn accept_date(date: SystemTime) -> String {
    let tm = local_time(date);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02}.{:03}",
        tm.day,
        MONTHS[tm.month0 as usize % 12],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec,
        tm.micros / 1000
    )
}

/// `%T`: `06/Feb/2009:12:14:14 +0000`, in GMT.
fn gmt_date(date: SystemTime) -> String {
    let secs = unix_secs(date);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize % 12],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `%Tl`: `06/Feb/2009:12:14:14 +0100`, in local time.
fn local_date(date: SystemTime) -> String {
    let tm = local_time(date);
    let off = tm.gmtoff / 60;
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} {}{:02}{:02}",
        tm.day,
        MONTHS[tm.month0 as usize % 12],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec,
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60
    )
}

/// Days since 1970-01-01 → (year, month 1..=12, day) in the proleptic
/// Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::logline;

    fn entry(line: Arc<LogLine>) -> Entry {
        Entry {
            line,
            targets: Arc::from(Vec::new()),
            client: "10.0.1.2:33317".parse().unwrap(),
            local: Some("10.0.3.31:8012".parse().unwrap()),
            server_addr: Some(ServerAddr::Known("192.168.1.5:8080".parse().unwrap())),
            date: SystemTime::UNIX_EPOCH + Duration::from_millis(1_234_567_890_655),
            frontend: "http-in".into(),
            tls: false,
            backend: "static".into(),
            server: "srv1".into(),
            t_request: Some(10),
            t_queue: Some(0),
            t_connect: Some(30),
            t_response: Some(69),
            t_total: 109,
            status: Some(200),
            bytes: 2750,
            bytes_up: 180,
            term: *b"--",
            conns: [1, 1, 1, 1],
            retries: 0,
            redispatched: false,
            queues: [0, 0],
            request_line: "GET /index.html?x=1 HTTP/1.1".into(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn httplog_fields_in_haproxy_order() {
        let line = entry(logline::httplog()).format();
        let date = accept_date(SystemTime::UNIX_EPOCH + Duration::from_millis(1_234_567_890_655));
        assert_eq!(
            line,
            format!("10.0.1.2:33317 [{date}] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 \"GET /index.html?x=1 HTTP/1.1\"")
        );
        assert!(date.ends_with(".655"), "{date}");
    }

    #[test]
    fn tcplog_fields_in_haproxy_order() {
        let mut e = entry(logline::tcplog());
        e.t_total = 5007;
        e.bytes = 212;
        e.term = *b"CD";
        let line = e.format();
        assert!(
            line.ends_with("http-in static/srv1 0/30/5007 212 CD 1/1/1/1/0 0/0"),
            "{line}"
        );
    }

    #[test]
    fn custom_lines_use_haproxy_variables_and_options() {
        let line = logline::parse(
            "%ci:%cp>%fi:%fp>%si:%sp %f %b/%s %ST %B %U %HM %HU %HP %HQ %HV %{+Q}r %ts %tsc %[req.hdr(host)] %{+Q}[req.hdr(x-none)] %[path] %[status] %{+X}ST %{+X}ci:%{+X}cp %T %hr %hs|",
        )
        .unwrap();
        let mut e = entry(Arc::new(line));
        e.samples = vec![Some("example.com".into()), None];
        assert_eq!(
            e.format(),
            "10.0.1.2:33317>10.0.3.31:8012>192.168.1.5:8080 http-in static/srv1 200 2750 180 GET /index.html?x=1 /index.html ?x=1 HTTP/1.1 \"GET /index.html?x=1 HTTP/1.1\" -- ---- example.com \"\" /index.html 200 200 0A000102:8225 13/Feb/2009:23:31:30 +0000 |"
        );
    }

    #[test]
    fn missing_values_print_a_dash() {
        let line = logline::parse("%si:%sp %HM %[dst] %{+E}[url]").unwrap();
        let mut e = entry(Arc::new(line));
        e.server_addr = None;
        e.local = None;
        e.request_line = "<BADREQ>".into();
        assert_eq!(e.format(), "-:- - - -");
        e.request_line = "GET /a\"] HTTP/1.1".into();
        assert!(e.format().ends_with(" /a\\\"\\]"), "{}", e.format());
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (tx, _rx) = sync_channel::<Entry>(1);
        let logger = Logger {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        };
        logger.send(entry(logline::httplog()));
        logger.send(entry(logline::httplog()));
        assert_eq!((logger.sent(), logger.dropped()), (1, 1));
    }
}
