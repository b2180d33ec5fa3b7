//! Access log transport through the real binary: the syslog headers of
//! every `format` (default, `local`, `rfc3164`, `rfc5424`) on UDP targets,
//! side by side with Debian's HAProxy 2.6 on the same configuration, and
//! `log stderr`; and a log pipe nobody reads, which costs dropped lines
//! (counted in `show info` and Prometheus), never a request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use balance_support::{haproxy_bin, Haproxy};
use common::http::{Reader, Script, ScriptedBackend};
use common::{accepts, cli, free_port, poll_until, ChildGuard, TempDir, Wsgate, START_DEADLINE};

const DEADLINE: Duration = Duration::from_secs(20);

/// The `format` words of the four syslog targets, in order.
const FORMATS: [&str; 4] = ["", "format local ", "format rfc3164 ", "format rfc5424 "];

fn syslog_config(port: u16, targets: &[SocketAddr]) -> String {
    let mut logs = String::new();
    for (addr, format) in targets.iter().zip(FORMATS) {
        logs.push_str(&format!(
            "    log {addr} {format}local{}\n",
            logs.lines().count()
        ));
    }
    format!(
        "global\n{logs}    log stderr format raw local0\n\
         defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    http-request deny if {{ path /denied }}\n"
    )
}

/// One datagram per target for the request that was denied (the line of
/// the start-up probe's empty connection, if any, is skipped).
fn denied_lines(socks: &[UdpSocket]) -> Vec<String> {
    socks
        .iter()
        .map(|s| {
            let end = Instant::now() + DEADLINE;
            let mut buf = [0u8; 8192];
            loop {
                assert!(Instant::now() < end, "no log line for the request");
                if let Ok(n) = s.recv(&mut buf) {
                    let line = String::from_utf8(buf[..n].to_vec()).unwrap();
                    if line.contains("GET /denied") {
                        return line;
                    }
                }
            }
        })
        .collect()
}

/// A header with its time, tag and pid replaced, after checking their
/// shape; the message after it.
fn masked_header(datagram: &str) -> (String, String) {
    let (pri, rest) = datagram.split_once('>').unwrap();
    if let Some(rest) = rest.strip_prefix("1 ") {
        // RFC 5424: `1 TIMESTAMP HOST APP PID MSGID SD MSG`.
        let f: Vec<&str> = rest.splitn(7, ' ').collect();
        let ts = f[0].as_bytes();
        assert_eq!(ts.len(), 32, "{datagram}");
        assert!(
            ts[10] == b'T' && ts[19] == b'.' && matches!(ts[26], b'+' | b'-') && ts[29] == b':',
            "{datagram}"
        );
        assert!(f[2] == "wsgate" || f[2] == "haproxy", "{datagram}");
        assert!(f[3].parse::<u32>().is_ok(), "{datagram}");
        let header = format!(
            "{pri}>1 TIME{} {} APP PID {} {} ",
            &f[0][26..],
            f[1],
            f[4],
            f[5]
        );
        return (header, f[6].to_owned());
    }
    // RFC 3164 and `local`: `Mmm dd HH:MM:SS [HOST ]TAG[PID]: MSG`.
    let (time, rest) = rest.split_at(16);
    let t = time.as_bytes();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(MONTHS.contains(&&time[..3]), "{datagram}");
    assert!(t[3] == b' ' && t[6] == b' ' && t[9] == b':' && t[12] == b':' && t[15] == b' ');
    assert!(
        (t[4] == b' ' || t[4].is_ascii_digit()) && t[5].is_ascii_digit(),
        "day %2d"
    );
    let (head, msg) = rest.split_once(": ").unwrap();
    let (host, tag) = match head.rsplit_once(' ') {
        Some((host, tag)) => (format!("{host} "), tag),
        None => (String::new(), head),
    };
    let (name, pid) = tag.trim_end_matches(']').split_once('[').unwrap();
    assert!(name == "wsgate" || name == "haproxy", "{datagram}");
    assert!(pid.parse::<u32>().is_ok(), "{datagram}");
    (format!("{pri}>TIME {host}APP[PID]: "), msg.to_owned())
}

struct Syslogs {
    socks: Vec<UdpSocket>,
    addrs: Vec<SocketAddr>,
}

fn syslogs() -> Syslogs {
    let socks: Vec<UdpSocket> = (0..FORMATS.len())
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s
        })
        .collect();
    let addrs = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    Syslogs { socks, addrs }
}

fn deny(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"GET /denied HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
}

#[test]
fn syslog_headers_match_haproxy() {
    let ours = syslogs();
    let port = free_port();
    let gate = Wsgate::start(&syslog_config(port, &ours.addrs));
    deny(port);
    let mine = denied_lines(&ours.socks);

    // Every target gets the same line with its own header, ending with
    // a newline as HAProxy's datagrams do.
    let masked: Vec<(String, String)> = mine.iter().map(|d| masked_header(d)).collect();
    for (d, (_, msg)) in mine.iter().zip(&masked) {
        assert!(d.ends_with("\"GET /denied HTTP/1.1\"\n"), "{d:?}");
        assert_eq!(msg, &masked[0].1);
    }
    let pid = gate.guard.pid();
    assert!(
        mine[0].contains(&format!(" wsgate[{pid}]: ")),
        "{}",
        mine[0]
    );
    assert!(
        mine[3].contains(&format!(" - wsgate {pid} - - ")),
        "{}",
        mine[3]
    );
    // `local0` → `<134>` (16 * 8 + 6, level info), `local1` → `<142>`, ...
    let headers: Vec<&str> = masked.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        headers[..3],
        [
            "<134>TIME APP[PID]: ",
            "<142>TIME APP[PID]: ",
            "<150>TIME localhost APP[PID]: "
        ]
    );
    assert!(headers[3].starts_with("<158>1 TIME") && headers[3].ends_with(" - APP PID - - "));

    // `log stderr format raw`: the bare line on standard error.
    let raw = masked[0].1.trim_end();
    poll_until(DEADLINE, "the line on stderr", || {
        gate.log().contains(raw).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));

    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let theirs = syslogs();
    let hport = free_port();
    let _h = Haproxy::start(
        &bin,
        &syslog_config(hport, &theirs.addrs),
        &[SocketAddr::from(([127, 0, 0, 1], hport))],
    );
    deny(hport);
    let their_lines = denied_lines(&theirs.socks);
    for ((format, mine), theirs) in FORMATS.iter().zip(&mine).zip(&their_lines) {
        assert_eq!(
            masked_header(mine).0,
            masked_header(theirs).0,
            "{format:?}\nwsgate:  {mine:?}\nhaproxy: {theirs:?}"
        );
        assert!(theirs.ends_with('\n'));
    }
}

/// wsgate logging to a pipe whose reader never reads: once the pipe and
/// the writer's queue are full, lines are dropped and counted, and every
/// request is still served.
#[test]
fn a_stuck_log_pipe_drops_lines_not_requests() {
    const REQUESTS: usize = 6000;
    const CLIENTS: usize = 4;
    let dir = TempDir::new("log-pipe");
    let sock = dir.path().join("admin.sock");
    let backend = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let cfg = dir.write(
        "wsgate.cfg",
        format!(
            "global\n    log stdout format raw local0\n    stats socket {} level admin\n\
             defaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n    default_backend app\n\
             backend app\n    server s1 {}\n",
            sock.display(),
            backend.addr
        ),
    );
    let stderr = dir.path().join("stderr.log");
    let mut cmd = Command::new(common::wsgate_bin());
    cmd.arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut guard = ChildGuard {
        child: cmd.spawn().unwrap(),
        log: stderr,
    };
    // Held, never read: the pipe fills after a few hundred lines.
    let _stdout = guard.child.stdout.take().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    poll_until(START_DEADLINE, "wsgate to listen", || {
        accepts(addr).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", guard.output()));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                let mut reader = Reader::new(stream, Duration::from_secs(60));
                for _ in 0..REQUESTS / CLIENTS {
                    reader
                        .stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let resp = reader.read_response().unwrap();
                    assert_eq!(resp.status(), 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(backend.seen().len(), REQUESTS, "every request served");

    let info = cli(&sock, "show info");
    let dropped: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("LogLinesDropped: "))
        .unwrap_or_else(|| panic!("{info}"))
        .parse()
        .unwrap();
    // 6000 lines of ~130 bytes against a 64 KiB pipe and a 4096-line
    // queue: at least ~1400 must go.
    assert!(dropped > 1000, "LogLinesDropped: {dropped}\n{info}");
    let metrics = common::metrics::metrics(port);
    let counted = metrics["wsgate_log_dropped_total"];
    assert!(counted >= dropped, "{counted} < {dropped}");
    assert!(
        guard.child.try_wait().unwrap().is_none(),
        "wsgate still runs"
    );
}

/// Lines logged, other than the one of `GET /denied`, for a connection
/// that sent nothing and then that request: read until the request's line
/// has come and the socket has then been quiet for a read timeout, so a
/// null connection's line is caught in whichever order the two come.
fn null_then_denied(port: u16, syslog: &UdpSocket) -> Vec<String> {
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    deny(port);
    let mut others = Vec::new();
    let mut denied = false;
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 8192];
    loop {
        assert!(Instant::now() < end, "no line for the request: {others:?}");
        match syslog.recv(&mut buf) {
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
                if line.contains("GET /denied") {
                    denied = true;
                } else {
                    others.push(line);
                }
            }
            Err(_) if denied => return others,
            Err(_) => {}
        }
    }
}

/// `option dontlognull`: a connection that sent nothing is logged without
/// it (`<BADREQ>`, `CR--`) and not with it, by wsgate as by HAProxy.
#[test]
fn dontlognull_beside_haproxy() {
    let haproxy = haproxy_bin();
    if haproxy.is_none() {
        common::skip_unless_ci("haproxy is not installed: wsgate alone");
    }
    for dontlognull in [false, true] {
        let mut outcomes = Vec::new();
        for on_haproxy in [false, true] {
            let syslog = UdpSocket::bind("127.0.0.1:0").unwrap();
            syslog
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let port = free_port();
            let option = if dontlognull {
                "    option dontlognull\n"
            } else {
                ""
            };
            let cfg = format!(
                "global\n    log {} format raw local0\n\
                 defaults\n    mode http\n    log global\n    option httplog\n{option}    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
                 frontend fe\n    bind 127.0.0.1:{port}\n    http-request deny if {{ path /denied }}\n",
                syslog.local_addr().unwrap()
            );
            let _proxy: Box<dyn std::any::Any> = match (&haproxy, on_haproxy) {
                (_, false) => Box::new(Wsgate::start(&cfg)),
                (Some(bin), true) => Box::new(Haproxy::start(
                    bin,
                    &cfg,
                    &[SocketAddr::from(([127, 0, 0, 1], port))],
                )),
                (None, true) => continue,
            };
            let null_lines = null_then_denied(port, &syslog);
            if !dontlognull {
                assert!(
                    null_lines
                        .iter()
                        .any(|l| l.contains(" fe/<NOSRV> ") && l.contains(" CR-- ")),
                    "haproxy: {on_haproxy}: {null_lines:?}"
                );
            }
            outcomes.push(null_lines.is_empty());
        }
        assert!(
            outcomes.iter().all(|&none| none == dontlognull),
            "{outcomes:?}"
        );
    }
}
