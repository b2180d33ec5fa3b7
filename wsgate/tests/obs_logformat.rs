//! `log-format` through the real binary, with the log lines caught on a
//! UDP syslog socket the test owns: `option httplog` and the explicit
//! httplog format string write the same line; a custom line with most of
//! HAProxy's variables gives the same fields as Debian's HAProxy 2.6 on
//! the same request (timings and dates aside, whose shape is checked);
//! unknown variables are configuration errors with their line; a
//! WebSocket's custom line is written when its tunnel closes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use balance_support::{haproxy_bin, Haproxy};
use common::http::{exchange, Script, ScriptedBackend};
use common::{free_port, run_wsgate, TempDir, Wsgate};

const DEADLINE: Duration = Duration::from_secs(10);

/// A syslog listener: the lines sent to it, in order.
struct Syslog {
    sock: UdpSocket,
}

impl Syslog {
    fn start() -> Syslog {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Syslog { sock }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// The next line, waiting up to the deadline.
    fn next(&self, context: &str) -> String {
        let until = Instant::now() + DEADLINE;
        let mut buf = [0u8; 8192];
        while Instant::now() < until {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                return String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
            }
        }
        panic!("{context}: no log line within {DEADLINE:?}");
    }
}

/// A configuration logging `fe`'s lines raw to `syslog`.
fn config(port: u16, syslog: SocketAddr, server: SocketAddr, log_line: &str) -> String {
    format!(
        "global\n    log {syslog} format raw local0\n\
         defaults\n    mode http\n    log global\n    option dontlognull\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 5s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    {log_line}\n    default_backend be\n\
         backend be\n    server s1 {server}\n"
    )
}

const REQUEST: &[u8] =
    b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Tag: t1\r\nConnection: close\r\n\r\n";

/// Sends `REQUEST` through a fresh wsgate logging with `log_line`; returns
/// the line.
fn wsgate_line(log_line: &str) -> String {
    let syslog = Syslog::start();
    let backend = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ));
    let port = free_port();
    let gate = Wsgate::start(&config(port, syslog.addr(), backend.addr, log_line));
    let resp = exchange(SocketAddr::from(([127, 0, 0, 1], port)), REQUEST).unwrap();
    assert_eq!(resp.status(), 200, "{}", gate.log());
    without_probe(&syslog.next(log_line))
}

/// `line` with its `%ac/%fc/%bc/%sc/%rc` field normalised to a single
/// client connection. (Every word of five `/`-separated numbers is looked
/// at; the httplog timer word has that shape too, but callers mask it.)
///
/// The test harness finds the proxy ready by connecting to its port and
/// closing at once; that probe can still be counted in `%ac` and `%fc`
/// when the request is logged (for HAProxy as for wsgate). The two must
/// agree and be 1 or 2; anything else stays in the line and fails the
/// comparison.
fn without_probe(line: &str) -> String {
    let words: Vec<String> = line
        .split(' ')
        .map(|w| {
            let n: Vec<&str> = w.split('/').collect();
            let numeric = n.len() == 5 && n.iter().all(|x| x.parse::<u32>().is_ok());
            if numeric && n[0] == n[1] && (n[0] == "1" || n[0] == "2") {
                format!("1/1/{}/{}/{}", n[2], n[3], n[4])
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ")
}

/// An httplog line with the client port, the date and the timers masked.
fn masked_httplog(line: &str) -> Vec<String> {
    let mut f: Vec<String> = line.split(' ').map(str::to_string).collect();
    f[0] = f[0].split(':').next().unwrap().to_string();
    assert!(f[1].starts_with('[') && f[1].ends_with(']'), "{line}");
    f[1] = "[date]".into();
    assert_eq!(f[4].split('/').count(), 5, "{line}");
    f[4] = "timers".into();
    f
}

#[test]
fn option_httplog_equals_its_format_string() {
    let plain = wsgate_line("option httplog");
    let explicit = wsgate_line(
        "log-format \"%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r\"",
    );
    assert!(
        plain.ends_with(" - - ---- 1/1/0/1/0 0/0 \"GET /a/b?x=1&y=2 HTTP/1.1\""),
        "{plain}"
    );
    assert_eq!(masked_httplog(&plain), masked_httplog(&explicit));
    let tcp = wsgate_line("option tcplog");
    let tcp_explicit = wsgate_line(
        "log-format \"%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq\"",
    );
    let mask = |l: &str| -> Vec<String> {
        let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
        f[0] = f[0].split(':').next().unwrap().to_string();
        f[1] = "[date]".into();
        f[4] = "timers".into();
        f
    };
    assert_eq!(mask(&tcp), mask(&tcp_explicit), "{tcp}\n{tcp_explicit}");
}

/// Most of HAProxy's variables. The fields of the first part must be the
/// same as HAProxy's; after `|` come timers and dates (shape only).
const CUSTOM: &str = "log-format \"%ci %fi:%fp %f %ft %b %s %si:%sp %ST %HM %HU %HP %HPO %HQ %HV %{+Q}r %ts %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %[src] %[dst_port] %[ssl_fc] %{+Q,+E}HU %ID %CC %CS %hr %hs %{+X}ST %{+X}ci | %Tw/%Tc/%Tr/%Ta/%Tt/%Tq/%TR/%Td/%Th/%Ti [%t] [%tr] %T %Tl %Ts %ms %pid\"";

#[test]
fn custom_line_matches_haproxy_field_for_field() {
    let ours = wsgate_line(CUSTOM);
    let (fields, timing) = ours.split_once(" | ").unwrap();
    // %sc: wsgate counts the server's connections when it connected,
    // HAProxy when it logs (after the close: 0).
    let fields = fields.replace(" 1/1/0/1/0 ", " 1/1/0/0/0 ");
    let fields = fields.as_str();
    let be = fields.split(' ').nth(6).unwrap().to_string();
    assert!(be.starts_with("127.0.0.1:"), "{ours}");
    let port = be.rsplit(':').next().unwrap();
    let expected = format!(
        "127.0.0.1 127.0.0.1:{{PORT}} fe fe be s1 127.0.0.1:{port} 200 GET /a/b?x=1&y=2 /a/b /a/b ?x=1&y=2 HTTP/1.1 \"GET /a/b?x=1&y=2 HTTP/1.1\" -- ---- 1/1/0/0/0 0/0 127.0.0.1 {{PORT}} 0 \"/a/b?x=1&y=2\" - - - 200 7F000001",
    );
    let fe_port = fields
        .split(' ')
        .nth(1)
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(fields, expected.replace("{PORT}", fe_port), "{ours}");
    check_timing(timing, &ours);

    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let syslog = Syslog::start();
    let backend = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ));
    let hport = free_port();
    let haddr = SocketAddr::from(([127, 0, 0, 1], hport));
    let _h = Haproxy::start(
        &bin,
        &config(hport, syslog.addr(), backend.addr, CUSTOM),
        &[haddr],
    );
    let resp = exchange(haddr, REQUEST).unwrap();
    assert_eq!(resp.status(), 200);
    let theirs = without_probe(&syslog.next("haproxy"));
    let (hfields, htiming) = theirs.split_once(" | ").unwrap();
    let hport_s = hport.to_string();
    let sport = backend.addr.port().to_string();
    let norm = |f: &str, fe: &str, srv: &str| f.replace(fe, "FEPORT").replace(srv, "SRVPORT");
    assert_eq!(
        norm(fields, fe_port, port),
        norm(hfields, &hport_s, &sport),
        "\nwsgate:  {ours}\nhaproxy: {theirs}"
    );
    check_timing(htiming, &theirs);
}

/// `%Tw/.../%Ti [%t] [%tr] %T %Tl %Ts %ms %pid`: numbers, dates in
/// HAProxy's shapes.
fn check_timing(timing: &str, line: &str) {
    let f: Vec<&str> = timing.split(' ').collect();
    assert_eq!(f.len(), 10, "{line}");
    for t in f[0].split('/') {
        t.parse::<i64>()
            .unwrap_or_else(|_| panic!("timer {t} in {line}"));
    }
    // [25/Nov/2026:16:33:37.123]
    for d in [f[1], f[2]] {
        assert_eq!(d.len(), 26, "{d} in {line}");
        assert_eq!(&d[21..22], ".", "{line}");
    }
    // 25/Nov/2026:16:33:37 +0000, then %Tl
    assert_eq!(f[3].len(), 20, "{line}");
    assert_eq!(f[4], "+0000", "{line}");
    assert_eq!(f[5].len(), 20, "{line}");
    assert_eq!(f[6].len(), 5, "{line}");
    let ts: u64 = f[7].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(ts) < 60, "{line}");
    assert_eq!(f[8].len(), 3, "{line}");
    assert!(f[9].parse::<u32>().is_ok(), "{line}");
}

/// HAProxy 2.6 refuses request samples in `log-format` (the request is
/// gone by the time it logs; it wants `capture request header`) and
/// prints `-` for `%[status]`: wsgate takes the request's values when its
/// head is read. `%U` counts the bytes as received (HAProxy counts its
/// internal representation of the request, 12 bytes less here).
#[test]
fn request_samples_are_taken_from_the_request() {
    let line = wsgate_line(
        "log-format \"%[req.hdr(host)] %[hdr(x-tag)] %{+Q}[req.hdr(x-none)] %[path] %[url] %[query] %[method] %[status] %U\"",
    );
    assert_eq!(
        line,
        format!(
            "example.com t1 \"\" /a/b /a/b?x=1&y=2 x=1&y=2 GET 200 {}",
            REQUEST.len()
        )
    );
}

#[test]
fn unknown_variables_are_config_errors_with_their_line() {
    let dir = TempDir::new("logformat");
    for (line, needle) in [
        ("log-format \"%ci %zz\"", "'%zz' is not supported"),
        ("log-format \"%{+Z}r\"", "'+Z' is not supported"),
        (
            "log-format \"%[res.hdr(x)]\"",
            "not available in a log-format line",
        ),
        ("log-format %ci %b", "exactly one argument"),
    ] {
        let cfg = config(
            free_port(),
            "127.0.0.1:514".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            line,
        );
        let path = dir.write("bad.cfg", &cfg);
        let (status, out) = run_wsgate(&["-c".as_ref(), "-f".as_ref(), path.as_os_str()], DEADLINE);
        assert!(!status.success(), "{line}: {out}");
        assert!(out.contains("bad.cfg:13:"), "{line}: {out}");
        assert!(out.contains(needle), "{line}: {out}");
    }
    // In a backend it is ignored with a warning, as in HAProxy.
    let cfg = config(
        free_port(),
        "127.0.0.1:514".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        "option httplog",
    ) + "    log-format \"%ci\"\n";
    let path = dir.write("be.cfg", &cfg);
    let (status, out) = run_wsgate(&["-c".as_ref(), "-f".as_ref(), path.as_os_str()], DEADLINE);
    assert!(status.success(), "{out}");
    assert!(out.contains("ignored in backends"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_line_is_written_when_the_tunnel_closes() {
    let syslog = Syslog::start();
    let demo = common::DemoBackend::start("s1", "1h");
    let port = free_port();
    let gate = Wsgate::start(&config(
        port,
        syslog.addr(),
        demo.addr,
        "log-format \"%b/%s %ST %tsc %HM %HU %[req.hdr(sec-websocket-version)] B=%B U=%U\"",
    ));
    let mut ws = common::ws::connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
    common::ws::echo(&mut ws, "hello", "echo").await;
    ws.close(None).await.unwrap();
    drop(ws);
    let line = tokio::task::spawn_blocking(move || syslog.next("tunnel close"))
        .await
        .unwrap();
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        &f[..6],
        &["be/s1", "101", "----", "GET", "/ws", "13"],
        "{line}\n{}",
        gate.log()
    );
    let bytes = |p: &str| -> u64 {
        f.iter()
            .find_map(|x| x.strip_prefix(p))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(bytes("B=") > 150, "{line}");
    assert!(bytes("U=") > 150, "{line}");
}

/// A WebSocket closed by the client, through wsgate and HAProxy with the
/// same `log-format`: the same fields, `%tsc` (`----`, a clean close)
/// included, except one documented difference after `|`: `%bc` is 1 in
/// wsgate (taken at the upgrade), 0 in HAProxy. (With only these fields
/// HAProxy logs the tunnel at its `101`, wsgate when it closes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_line_beside_haproxy() {
    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let line = "log-format \"%ci %f %b/%s %ST %HM %HU %HV %ac/%fc/%rc %sq/%bq | %tsc %bc\"";
    let mut lines = Vec::new();
    for haproxy in [false, true] {
        let syslog = Syslog::start();
        let demo = common::DemoBackend::start("s1", "1h");
        let port = free_port();
        let cfg = config(port, syslog.addr(), demo.addr, line);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let _w;
        let _h;
        if haproxy {
            _h = Some(Haproxy::start(&bin, &cfg, &[addr]));
        } else {
            _w = Some(Wsgate::start(&cfg));
        }
        // The start-up probe's connection must be over before the tunnel's
        // line counts the open connections (%ac/%fc); on a loaded machine
        // the proxy may see its end a moment later.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut ws = common::ws::connect(&format!("ws://{addr}/ws"), None).await;
        common::ws::echo(&mut ws, "hello", "echo").await;
        ws.close(None).await.unwrap();
        tokio::time::timeout(DEADLINE, async {
            use futures_util::StreamExt;
            while ws.next().await.is_some() {}
        })
        .await
        .unwrap();
        drop(ws);
        let got = tokio::task::spawn_blocking(move || syslog.next("tunnel close"))
            .await
            .unwrap();
        lines.push(got);
    }
    let fields = |l: &str| l.split(" | ").next().unwrap().to_string();
    let both = format!("\nwsgate:  {}\nhaproxy: {}", lines[0], lines[1]);
    assert_eq!(fields(&lines[0]), fields(&lines[1]), "{both}");
    assert!(lines[0].ends_with(" | ---- 1"), "{both}");
    assert!(lines[1].ends_with(" | ---- 0"), "{both}");
}
