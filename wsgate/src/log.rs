//! Access logs: HAProxy's `option httplog` and `option tcplog` lines,
//! written to `log` targets (stdout, stderr, UDP syslog, a Unix datagram
//! socket such as `/dev/log`) in `raw`, `rfc3164` or `rfc5424` framing.
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
//! termination state saying who ended it (`CD`, `SD`, `cD`, ...).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::model::{LogFormat, LogSink, LogStyle, LogTarget};

/// Entries waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 4096;
/// HAProxy's traffic logs use level `info`.
const LEVEL_INFO: u8 = 6;

/// One access log line's facts.
#[derive(Debug, Clone)]
pub struct Entry {
    pub style: LogStyle,
    /// Where to send it (the frontend's `log` lines).
    pub targets: Arc<[LogTarget]>,
    pub client: SocketAddr,
    /// `%tr` / `%t`: when the request (or connection) started.
    pub date: SystemTime,
    /// Frontend name; `~` is appended for TLS as HAProxy does.
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
    /// Bytes sent to the client.
    pub bytes: u64,
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
}

impl Entry {
    /// The line, without syslog framing.
    pub fn format(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(160 + self.request_line.len());
        let ms = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let _ = write!(
            s,
            "{}:{} [{}] {}{} {}/{} ",
            self.client.ip(),
            self.client.port(),
            accept_date(self.date),
            self.frontend,
            if self.tls { "~" } else { "" },
            self.backend,
            self.server
        );
        let term = String::from_utf8_lossy(&self.term);
        let conns = format!(
            "{}/{}/{}/{}/{}{}",
            self.conns[0],
            self.conns[1],
            self.conns[2],
            self.conns[3],
            if self.redispatched { "+" } else { "" },
            self.retries
        );
        let status = self.status.map_or(-1, i64::from);
        match self.style {
            LogStyle::Http => {
                let _ = write!(
                    s,
                    "{}/{}/{}/{}/{} {} {} - - {}-- {} {}/{} \"{}\"",
                    ms(self.t_request),
                    ms(self.t_queue),
                    ms(self.t_connect),
                    ms(self.t_response),
                    self.t_total,
                    status,
                    self.bytes,
                    term,
                    conns,
                    self.queues[0],
                    self.queues[1],
                    self.request_line
                );
            }
            LogStyle::Tcp | LogStyle::None => {
                let _ = write!(
                    s,
                    "{}/{}/{} {} {} {} {}/{}",
                    ms(self.t_queue),
                    ms(self.t_connect),
                    self.t_total,
                    self.bytes,
                    term,
                    conns,
                    self.queues[0],
                    self.queues[1]
                );
            }
        }
        s
    }
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
            let framed = frame(t, &line, entry.date, pid);
            match &t.sink {
                LogSink::Stdout => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(framed.as_bytes());
                    let _ = out.write_all(b"\n");
                    let _ = out.flush();
                }
                LogSink::Stderr => {
                    let mut out = std::io::stderr().lock();
                    let _ = out.write_all(framed.as_bytes());
                    let _ = out.write_all(b"\n");
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

/// Syslog framing of one line.
fn frame(t: &LogTarget, line: &str, date: SystemTime, pid: u32) -> String {
    let pri = u32::from(t.facility) * 8 + u32::from(LEVEL_INFO);
    match t.format {
        LogFormat::Raw => line.to_owned(),
        LogFormat::Rfc3164 => {
            let tm = local_time(date);
            format!(
                "<{pri}>{} {:2} {:02}:{:02}:{:02} wsgate[{pid}]: {line}",
                MONTHS[tm.month0 as usize % 12],
                tm.day,
                tm.hour,
                tm.min,
                tm.sec
            )
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(style: LogStyle) -> Entry {
        Entry {
            style,
            targets: Arc::from(Vec::new()),
            client: "10.0.1.2:33317".parse().unwrap(),
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
            term: *b"--",
            conns: [1, 1, 1, 1],
            retries: 0,
            redispatched: false,
            queues: [0, 0],
            request_line: "GET /index.html HTTP/1.1".into(),
        }
    }

    #[test]
    fn httplog_fields_in_haproxy_order() {
        let line = entry(LogStyle::Http).format();
        let date = accept_date(SystemTime::UNIX_EPOCH + Duration::from_millis(1_234_567_890_655));
        assert_eq!(
            line,
            format!("10.0.1.2:33317 [{date}] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 \"GET /index.html HTTP/1.1\"")
        );
        assert!(date.ends_with(".655"), "{date}");
    }

    #[test]
    fn tcplog_fields_in_haproxy_order() {
        let mut e = entry(LogStyle::Tcp);
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
    fn full_queue_drops_and_counts() {
        let (tx, _rx) = sync_channel::<Entry>(1);
        let logger = Logger {
            tx: Some(tx),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        };
        logger.send(entry(LogStyle::Http));
        logger.send(entry(LogStyle::Http));
        assert_eq!((logger.sent(), logger.dropped()), (1, 1));
    }
}
