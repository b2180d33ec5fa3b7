//! The PROXY protocol end to end, through the real binary: `bind ...
//! accept-proxy` fed raw bytes (v1, v2 over IPv4 and IPv6, LOCAL,
//! UNKNOWN, garbage, truncated and slow headers), the announced client
//! seen by `src` ACLs and `option forwardfor`; `server ... send-proxy*`
//! and `check-send-proxy` compared byte for byte (field by field where a
//! port differs) with what Debian's HAProxy 2.6 sends on the same
//! configuration text, to a raw listener that records the bytes; and a
//! WebSocket echo (tokio-tungstenite) through HAProxy `send-proxy[-v2]` in
//! front of wsgate `accept-proxy`, and through wsgate `send-proxy-v2` in
//! front of HAProxy `accept-proxy`.
//!
//! Needs `/usr/sbin/haproxy` and `curl` for the comparisons; without them
//! those tests are skipped, except in CI (`CI` set) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use balance_support::{haproxy_bin, Haproxy};
use common::http::{Script, ScriptedBackend};
use common::{free_port, poll_until, skip_unless_ci, DemoBackend, TempDir, Wsgate};

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

// ---------------------------------------------------------------- a recording server

/// A raw TCP server that keeps every byte of every connection. When a
/// connection's bytes, after a PROXY header if any, hold a complete HTTP
/// request head, it answers `200 ok` and closes; health checks (a header
/// and nothing else) are recorded until they close.
struct Recorder {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let c = conns.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let index = {
                    let mut all = c.lock().unwrap();
                    all.push(Vec::new());
                    all.len() - 1
                };
                let c = c.clone();
                std::thread::spawn(move || record(conn, &c, index));
            }
        });
        Recorder { addr, conns }
    }

    fn connections(&self) -> Vec<Vec<u8>> {
        self.conns.lock().unwrap().clone()
    }

    /// Waits for `n` connections that carried an HTTP request.
    fn requests(&self, n: usize) -> Vec<Vec<u8>> {
        poll_until(Duration::from_secs(15), "requests at the recorder", || {
            let with_request: Vec<Vec<u8>> = self
                .connections()
                .into_iter()
                .filter(|c| find(&c[header_len(c)..], b"\r\n\r\n").is_some())
                .collect();
            (with_request.len() >= n).then_some(with_request)
        })
        .unwrap()
    }

    /// Waits for `n` health-check connections (a header, no request).
    fn checks(&self, n: usize) -> Vec<Vec<u8>> {
        poll_until(
            Duration::from_secs(15),
            "health checks at the recorder",
            || {
                let checks: Vec<Vec<u8>> = self
                    .connections()
                    .into_iter()
                    .filter(|c| !c.is_empty() && header_len(c) == c.len())
                    .collect();
                (checks.len() >= n).then_some(checks)
            },
        )
        .unwrap()
    }
}

fn record(mut conn: TcpStream, conns: &Mutex<Vec<Vec<u8>>>, index: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < end {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                conns.lock().unwrap()[index] = buf.clone();
                if find(&buf[header_len(&buf)..], b"\r\n\r\n").is_some() {
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the PROXY header at the start of `b` (0 if none), read
/// independently of wsgate's parser: a v1 line up to its CRLF, or 16
/// bytes and the v2 length.
fn header_len(b: &[u8]) -> usize {
    if b.starts_with(V2_SIG) && b.len() >= 16 {
        (16 + usize::from(u16::from_be_bytes([b[14], b[15]]))).min(b.len())
    } else if b.starts_with(b"PROXY ") {
        find(b, b"\r\n").map_or(b.len(), |i| i + 2)
    } else {
        0
    }
}

fn header(b: &[u8]) -> Vec<u8> {
    b[..header_len(b)].to_vec()
}

/// A v2 header taken apart: command, family, addresses, TLVs.
#[derive(Debug, PartialEq, Eq)]
struct V2 {
    ver_cmd: u8,
    family: u8,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    tlvs: Vec<(u8, Vec<u8>)>,
}

fn v2_fields(h: &[u8]) -> V2 {
    assert!(h.starts_with(V2_SIG), "not a v2 header: {h:?}");
    let (ver_cmd, family) = (h[12], h[13]);
    let body = &h[16..];
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let (src, dst, mut at) = match family {
        0x11 => {
            let ip = |at: usize| IpAddr::from([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            (
                Some(SocketAddr::new(ip(0), port(8))),
                Some(SocketAddr::new(ip(4), port(10))),
                12,
            )
        }
        0x21 => {
            let ip = |at: usize| {
                let o: [u8; 16] = body[at..at + 16].try_into().unwrap();
                IpAddr::from(o)
            };
            (
                Some(SocketAddr::new(ip(0), port(32))),
                Some(SocketAddr::new(ip(16), port(34))),
                36,
            )
        }
        _ => (None, None, 0),
    };
    let mut tlvs = Vec::new();
    while at + 3 <= body.len() {
        let len = usize::from(u16::from_be_bytes([body[at + 1], body[at + 2]]));
        tlvs.push((body[at], body[at + 3..at + 3 + len].to_vec()));
        at += 3 + len;
    }
    assert_eq!(at, body.len(), "TLVs must fill the header: {h:?}");
    V2 {
        ver_cmd,
        family,
        src,
        dst,
        tlvs,
    }
}

fn v1_line(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let proto = if src.contains(':') { "TCP6" } else { "TCP4" };
    format!("PROXY {proto} {src} {dst} {sport} {dport}\r\n").into_bytes()
}

/// A v2 PROXY header over TCP/IPv4 or TCP/IPv6, built by hand.
fn v2_header(src: SocketAddr, dst: SocketAddr, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    let mut body = Vec::new();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.extend_from_slice(&[0x21, 0x11]);
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.extend_from_slice(&[0x21, 0x21]);
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    for (t, v) in tlvs {
        body.push(*t);
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
    }
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// Sends `bytes` on a new connection and reads until the peer closes:
/// what came back and how long the peer took to close.
fn send_raw(addr: SocketAddr, bytes: &[u8], shut_write: bool) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    s.write_all(bytes).unwrap();
    if shut_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            // A reset (unread bytes at close) is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading from {addr}: {e} (got {got:?} so far)"),
        }
    }
    (got, started.elapsed())
}

const GET: &[u8] = b"GET /who HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

// ---------------------------------------------------------------- accept-proxy, raw bytes

#[test]
fn accept_proxy_gives_the_announced_client_to_acls_and_forwardfor() {
    let backend = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ));
    let port = free_port();
    let config = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 1500ms\n    timeout server 5s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port} accept-proxy\n    option forwardfor\n    acl banned src 192.0.2.66 2001:db8::66\n    http-request deny if banned\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        backend.addr
    );
    let wsgate = Wsgate::start(&config);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let status = |got: &[u8]| -> String {
        String::from_utf8_lossy(got)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };

    // (what is sent before the request, the status, X-Forwarded-For)
    let v4 = |a: &str| -> SocketAddr { format!("{a}:40000").parse().unwrap() };
    let v6 = |a: &str| -> SocketAddr { format!("[{a}]:40000").parse().unwrap() };
    let dst4: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let dst6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        (
            "v1 TCP4",
            v1_line("203.0.113.7", "198.51.100.1", 40000, 443),
            "HTTP/1.1 200 OK",
            Some("203.0.113.7"),
        ),
        (
            "v1 TCP6",
            v1_line("2001:db8::7", "2001:db8::1", 40000, 443),
            "HTTP/1.1 200 OK",
            Some("2001:db8::7"),
        ),
        (
            "v1 UNKNOWN",
            b"PROXY UNKNOWN\r\n".to_vec(),
            "HTTP/1.1 200 OK",
            Some("127.0.0.1"),
        ),
        (
            "v1 banned",
            v1_line("192.0.2.66", "198.51.100.1", 40000, 443),
            "HTTP/1.1 403 Forbidden",
            None,
        ),
        (
            "v2 TCP4",
            v2_header(v4("203.0.113.8"), dst4, &[]),
            "HTTP/1.1 200 OK",
            Some("203.0.113.8"),
        ),
        (
            "v2 TCP6 with TLVs",
            v2_header(
                v6("2001:db8::8"),
                dst6,
                &[(0x02, b"example.com"), (0xe0, b"x")],
            ),
            "HTTP/1.1 200 OK",
            Some("2001:db8::8"),
        ),
        (
            "v2 banned IPv6",
            v2_header(v6("2001:db8::66"), dst6, &[]),
            "HTTP/1.1 403 Forbidden",
            None,
        ),
        (
            "v2 LOCAL",
            [&V2_SIG[..], &[0x20, 0x00, 0, 0]].concat(),
            "HTTP/1.1 200 OK",
            Some("127.0.0.1"),
        ),
    ];
    let mut expected_xff = Vec::new();
    for (name, head, want_status, xff) in &cases {
        let (got, _) = send_raw(addr, &[head.as_slice(), GET].concat(), false);
        assert_eq!(
            status(&got),
            *want_status,
            "{name}: {}\n{}",
            String::from_utf8_lossy(&got),
            wsgate.log()
        );
        if let Some(x) = xff {
            expected_xff.push(*x);
        }
    }
    let seen: Vec<String> = backend
        .seen()
        .iter()
        .map(|r| r.header("x-forwarded-for").unwrap_or("<none>").to_owned())
        .collect();
    assert_eq!(seen, expected_xff, "X-Forwarded-For at the server");

    // Refused: closed without a byte, and nothing reaches the server.
    let bad_crc = {
        let mut h = v2_header(v4("203.0.113.9"), dst4, &[(0x03, &[0, 0, 0, 0])]);
        let n = h.len();
        h[n - 1] = 1;
        h
    };
    let refused: Vec<(&str, Vec<u8>, bool)> = vec![
        ("no header", GET.to_vec(), false),
        (
            "TLS without header",
            b"\x16\x03\x01\x00\x05hello".to_vec(),
            false,
        ),
        (
            "v1 bad protocol",
            [b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".as_slice(), GET].concat(),
            false,
        ),
        (
            "v1 IPv6 in TCP4",
            [b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n".as_slice(), GET].concat(),
            false,
        ),
        (
            "v1 port out of range",
            [b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n".as_slice(), GET].concat(),
            false,
        ),
        (
            "v1 too long",
            [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat(),
            false,
        ),
        ("v2 bad CRC32C", [bad_crc.as_slice(), GET].concat(), false),
        (
            "v2 bad command",
            [&V2_SIG[..], &[0x23, 0x11, 0, 0]].concat(),
            false,
        ),
        (
            "truncated v1, then EOF",
            b"PROXY TCP4 203.0.113.7 198.5".to_vec(),
            true,
        ),
        (
            "truncated v2, then EOF",
            v2_header(v4("203.0.113.8"), dst4, &[])[..20].to_vec(),
            true,
        ),
    ];
    let before = backend.seen().len();
    let connections_before = backend.connection_count();
    for (name, bytes, shut) in &refused {
        let (got, took) = send_raw(addr, bytes, *shut);
        assert!(
            got.is_empty(),
            "{name}: got {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            took < Duration::from_secs(1),
            "{name}: closed after {took:?}, not at once"
        );
    }
    // A header that never completes: closed after `timeout client`.
    let (got, took) = send_raw(addr, b"PROXY TCP4 203.0.113.7 ", false);
    assert!(got.is_empty(), "slow header: got {got:?}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(6),
        "slow header closed after {took:?}, expected `timeout client` 1.5s"
    );
    assert_eq!(
        backend.seen().len(),
        before,
        "a refused connection reached the server"
    );
    assert_eq!(backend.connection_count(), connections_before);
    let log = wsgate.log();
    assert!(
        log.contains("PROXY protocol: no PROXY protocol header"),
        "{log}"
    );
    assert!(
        log.contains("no complete header within `timeout client`"),
        "{log}"
    );
}

// ---------------------------------------------------------------- send-proxy vs HAProxy

/// Both proxies, stopped on drop.
struct Pair {
    _haproxy: Haproxy,
    wsgate: Wsgate,
}

/// The same configuration text (frontends on `ports`) run by HAProxy and
/// by wsgate; `cfg(ports)` is called twice, with different ports.
fn side_by_side(
    nports: usize,
    cfg: impl Fn(&[u16]) -> String,
) -> Option<(Pair, Vec<u16>, Vec<u16>)> {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return None;
    };
    let hp: Vec<u16> = (0..nports).map(|_| free_port()).collect();
    let wp: Vec<u16> = (0..nports).map(|_| free_port()).collect();
    let addrs = |ports: &[u16]| -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    };
    let haproxy = Haproxy::start(&bin, &cfg(&hp), &addrs(&hp));
    let wsgate = Wsgate::start(&cfg(&wp));
    Some((
        Pair {
            _haproxy: haproxy,
            wsgate,
        },
        hp,
        wp,
    ))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const DEFAULTS: &str = "defaults\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 1h\n";

#[test]
fn send_proxy_headers_are_byte_identical_to_haproxy() {
    let rec: [Recorder; 4] = std::array::from_fn(|_| Recorder::start());
    let r = |i: usize| rec[i].addr;
    let cfg = |p: &[u16]| {
        format!(
            "{DEFAULTS}\
             frontend f1\n    mode http\n    bind 127.0.0.1:{} accept-proxy\n    default_backend b1\n\
             backend b1\n    mode http\n    server s {} send-proxy\n\
             frontend f2\n    mode http\n    bind 127.0.0.1:{} accept-proxy\n    default_backend b2\n\
             backend b2\n    mode http\n    server s {} send-proxy-v2\n\
             frontend f3\n    mode tcp\n    bind 127.0.0.1:{} accept-proxy\n    default_backend b3\n\
             backend b3\n    mode tcp\n    server s {} send-proxy-v2 proxy-v2-options crc32c,ssl\n\
             frontend f4\n    mode tcp\n    bind 127.0.0.1:{} accept-proxy\n    default_backend b4\n\
             backend b4\n    mode tcp\n    server s {} send-proxy\n",
            p[0], r(0), p[1], r(1), p[2], r(2), p[3], r(3)
        )
    };
    let Some((pair, hp, wp)) = side_by_side(4, cfg) else {
        return;
    };
    // Announced addresses: the same header text whichever proxy is asked.
    let inputs: Vec<Vec<u8>> = vec![
        v1_line("203.0.113.7", "198.51.100.1", 40000, 443),
        v1_line("2001:db8::7", "2001:db8::1", 40001, 8443),
        v2_header(
            "203.0.113.8:40002".parse().unwrap(),
            "198.51.100.2:80".parse().unwrap(),
            &[],
        ),
        v2_header(
            "[2001:db8::9]:40003".parse().unwrap(),
            "[2001:db8::2]:80".parse().unwrap(),
            &[(0xe0, b"ignored")],
        ),
        // The real addresses stay: the header names the client's socket.
        b"PROXY UNKNOWN\r\n".to_vec(),
    ];
    for (i, input) in inputs.iter().enumerate() {
        for ports in [&hp, &wp] {
            for p in ports.iter() {
                let (got, _) = send_raw(addr(*p), &[input.as_slice(), GET].concat(), false);
                assert!(
                    got.starts_with(b"HTTP/1.1 200"),
                    "input {i} on port {p}: {:?}\n{}",
                    String::from_utf8_lossy(&got),
                    pair.wsgate.log()
                );
            }
        }
    }
    for (ri, recorder) in rec.iter().enumerate() {
        let got = recorder.requests(2 * inputs.len());
        // Requests arrive in order: HAProxy's first for each input.
        for (i, input) in inputs.iter().enumerate() {
            let (ha, ws) = (header(&got[2 * i]), header(&got[2 * i + 1]));
            if input.starts_with(b"PROXY UNKNOWN") {
                // The client's own socket: 127.0.0.1 to each proxy's port.
                if ri == 0 || ri == 3 {
                    let (ha, ws) = (
                        String::from_utf8(ha).unwrap(),
                        String::from_utf8(ws).unwrap(),
                    );
                    let strip = |s: &str, port: u16| {
                        let f: Vec<&str> = s.trim_end().split(' ').collect();
                        assert_eq!(f[5], port.to_string(), "{s}");
                        format!("{} {} {} {}", f[0], f[1], f[2], f[3])
                    };
                    assert_eq!(strip(&ha, hp[ri]), strip(&ws, wp[ri]));
                } else {
                    let (mut a, mut b) = (v2_fields(&ha), v2_fields(&ws));
                    assert_eq!(a.dst.map(|d| d.port()), Some(hp[ri]));
                    assert_eq!(b.dst.map(|d| d.port()), Some(wp[ri]));
                    a.src = None;
                    a.dst = None;
                    b.src = None;
                    b.dst = None;
                    // The CRC covers the ports: compare the rest.
                    a.tlvs.retain(|t| t.0 != 0x03);
                    b.tlvs.retain(|t| t.0 != 0x03);
                    assert_eq!(a, b, "backend {ri}, PROXY UNKNOWN");
                }
                continue;
            }
            assert_eq!(
                ha,
                ws,
                "backend {ri}, input {i}: HAProxy sent {:?}, wsgate {:?}",
                String::from_utf8_lossy(&ha),
                String::from_utf8_lossy(&ws)
            );
        }
    }
    // The v1 line is the announced one, verbatim.
    let got = rec[0].requests(2);
    assert_eq!(header(&got[1]), inputs[0]);
    drop(pair);
}

#[test]
fn send_proxy_v2_tls_fields_match_haproxy() {
    if !tls_support::have("curl") {
        skip_unless_ci("curl is not installed");
        return;
    }
    let ca = tls_support::Ca::new();
    let dir = TempDir::new("pp-tls");
    let site = dir.write("site.pem", ca.leaf("localhost", &["127.0.0.1"]));
    let ca_path = dir.write("ca.pem", &ca.pem);
    let (cert, key) = ca.leaf_dated("alice", &[], (2020, 1, 1), (2090, 1, 1));
    let client_cert = dir.write("alice.crt", cert);
    let client_key = dir.write("alice.key", key);
    let rec = Recorder::start();
    let cfg = |p: &[u16]| {
        format!(
            "{DEFAULTS}\
             frontend f1\n    mode http\n    bind 127.0.0.1:{} ssl crt {} ca-file {} verify optional alpn http/1.1\n    default_backend b1\n\
             backend b1\n    mode http\n    server s {} send-proxy-v2-ssl-cn proxy-v2-options authority,crc32c,ssl-cipher\n",
            p[0],
            site.display(),
            ca_path.display(),
            rec.addr
        )
    };
    let Some((pair, hp, wp)) = side_by_side(1, cfg) else {
        return;
    };
    let curl = |port: u16, with_cert: bool| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca_path)
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg("--tlsv1.3");
        if with_cert {
            cmd.arg("--cert")
                .arg(&client_cert)
                .arg("--key")
                .arg(&client_key);
        }
        let out = cmd
            .arg(format!("https://localhost:{port}/"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok",
            "curl to {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for with_cert in [true, false] {
        curl(hp[0], with_cert);
        curl(wp[0], with_cert);
    }
    let got = rec.requests(4);
    for (i, what) in ["with a client certificate", "without"].iter().enumerate() {
        let (mut ha, mut ws) = (
            v2_fields(&header(&got[2 * i])),
            v2_fields(&header(&got[2 * i + 1])),
        );
        assert_eq!(ha.dst, Some(addr(hp[0])), "{what}");
        assert_eq!(ws.dst, Some(addr(wp[0])), "{what}");
        assert_eq!(ha.src.unwrap().ip(), ws.src.unwrap().ip());
        for f in [&mut ha, &mut ws] {
            (f.src, f.dst) = (None, None);
            // The checksum covers the ports; wsgate's is checked by its
            // own parser's tests and by HAProxy in the test below.
            f.tlvs.retain(|t| t.0 != 0x03);
        }
        assert_eq!(ha, ws, "{what}");
        let ssl = ws.tlvs.iter().find(|t| t.0 == 0x20).expect("SSL TLV");
        // The cipher sub-TLV (0x23) names the suite as OpenSSL does.
        assert!(
            find(&ssl.1, b"\x23\x00\x16TLS_AES_256_GCM_SHA384").is_some(),
            "{:?}",
            ssl.1
        );
        let cn = find(&ssl.1, b"alice").is_some();
        assert_eq!(cn, i == 0, "{what}: {:?}", ssl.1);
        assert!(
            ws.tlvs.contains(&(0x02, b"localhost".to_vec())),
            "authority: {:?}",
            ws.tlvs
        );
        assert!(
            ws.tlvs.contains(&(0x01, b"http/1.1".to_vec())),
            "ALPN: {:?}",
            ws.tlvs
        );
    }
    drop(pair);
}

#[test]
fn health_checks_send_the_header_as_haproxy_does() {
    let rec: [Recorder; 4] = std::array::from_fn(|_| Recorder::start());
    let r = |i: usize| rec[i].addr;
    let cfg = |p: &[u16]| {
        format!(
            "{DEFAULTS}\
             frontend f\n    mode http\n    bind 127.0.0.1:{}\n    default_backend b\n\
             backend b\n    mode http\n    balance first\n\
             \x20   server v1 {} send-proxy check inter 300\n\
             \x20   server v2 {} send-proxy-v2-ssl-cn proxy-v2-options crc32c check inter 300\n\
             \x20   server forced {} check-send-proxy check inter 300\n\
             \x20   server elsewhere {} send-proxy check inter 300 port {}\n",
            p[0],
            r(0),
            r(1),
            r(2),
            r(3),
            rec[3].addr.port()
        )
    };
    let Some((pair, _, _)) = side_by_side(1, cfg) else {
        return;
    };
    let v1_fields = |b: &[u8]| -> Vec<String> {
        let s = String::from_utf8(header(b)).unwrap();
        assert!(s.ends_with("\r\n"), "{s:?}");
        let f: Vec<String> = s.trim_end().split(' ').map(str::to_owned).collect();
        assert_eq!(f.len(), 6, "{s:?}");
        f
    };
    for (i, recorder) in rec[..3].iter().enumerate() {
        // Both proxies check every server; at least two checks each.
        let checks = recorder.checks(4);
        for c in &checks {
            match i {
                0 | 2 => {
                    // v1 with the check connection's own addresses.
                    let f = v1_fields(c);
                    assert_eq!(&f[..4], ["PROXY", "TCP4", "127.0.0.1", "127.0.0.1"]);
                    assert_eq!(f[5], recorder.addr.port().to_string());
                }
                1 => {
                    // LOCAL with the SSL TLV saying "no client TLS".
                    let f = v2_fields(c);
                    assert_eq!((f.ver_cmd, f.family), (0x20, 0x00));
                    assert_eq!(f.tlvs.len(), 2, "{:?}", f.tlvs);
                    assert_eq!(f.tlvs[1], (0x20, vec![0; 5]));
                }
                _ => {}
            }
        }
        if i == 1 {
            // Byte-identical (no port inside): HAProxy's and wsgate's.
            let distinct: std::collections::HashSet<Vec<u8>> = checks.iter().cloned().collect();
            assert_eq!(distinct.len(), 1, "{distinct:?}");
        }
    }
    // `port` elsewhere: checks are plain TCP connects, no header.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        rec[3].connections().iter().all(Vec::is_empty),
        "checks to a `port` got a header: {:?}",
        rec[3].connections()
    );
    drop(pair);
}

// ---------------------------------------------------------------- WebSockets through both

/// A WebSocket to `target` from a socket bound to `source`, so that the
/// client's address is known and differs from the proxies' 127.0.0.1.
async fn ws_from(source: [u8; 4], target: SocketAddr) -> common::ws::Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let stream = socket.connect(target).await.unwrap();
    let (ws, resp) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::client_async(
            format!("ws://{target}/"),
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        ),
    )
    .await
    .expect("WebSocket handshake in time")
    .unwrap_or_else(|e| panic!("WebSocket handshake to {target}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn websocket_echo_through_haproxy_send_proxy_and_wsgate_accept_proxy() {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    };
    let backend = DemoBackend::start("pp1", "1h");
    let (w1, w2, w3) = (free_port(), free_port(), free_port());
    let dir = TempDir::new("pp-ws");
    let ca = tls_support::Ca::new();
    let site = dir.write("site.pem", ca.leaf("localhost", &["127.0.0.1"]));
    let log = "    mode http\n    option httplog\n    log stderr format raw local0\n";
    let wsgate = Wsgate::start_in(
        dir,
        &format!(
            "{DEFAULTS}\
             frontend v1\n{log}    bind 127.0.0.1:{w1} accept-proxy\n    default_backend be\n\
             frontend v2\n{log}    bind 127.0.0.1:{w2} accept-proxy\n    default_backend be\n\
             frontend v3\n{log}    bind 127.0.0.1:{w3} accept-proxy ssl crt {}\n    default_backend be\n\
             backend be\n    mode http\n    server s1 {}\n",
            site.display(),
            backend.addr
        ),
    );
    let (h1, h2, h3) = (free_port(), free_port(), free_port());
    // The third: the header, then TLS from HAProxy to wsgate.
    let _haproxy = Haproxy::start(
        &bin,
        &format!(
            "{DEFAULTS}\
             listen l1\n    mode tcp\n    bind 127.0.0.2:{h1}\n    server w 127.0.0.1:{w1} send-proxy\n\
             listen l2\n    mode http\n    bind 127.0.0.2:{h2}\n    server w 127.0.0.1:{w2} send-proxy-v2\n\
             listen l3\n    mode http\n    bind 127.0.0.2:{h3}\n    server w 127.0.0.1:{w3} send-proxy-v2-ssl ssl verify none\n"
        ),
        &[
            SocketAddr::from(([127, 0, 0, 2], h1)),
            SocketAddr::from(([127, 0, 0, 2], h2)),
            SocketAddr::from(([127, 0, 0, 2], h3)),
        ],
    );
    runtime().block_on(async {
        for port in [h1, h2, h3] {
            let mut ws = ws_from([127, 0, 0, 3], SocketAddr::from(([127, 0, 0, 2], port))).await;
            let text = format!("through haproxy {port}");
            let (echo, _) = common::ws::echo(&mut ws, &text, "haproxy → wsgate").await;
            assert_eq!(echo, common::ws::expected_echo(&text, "pp1"));
        }
    });
    // wsgate logged the client HAProxy announced (the test's own socket,
    // bound to 127.0.0.3), not HAProxy (127.0.0.1).
    let log = poll_until(Duration::from_secs(5), "access log lines", || {
        let log = wsgate.log();
        (log.matches("\"GET / HTTP/1.1\"").count() >= 3).then_some(log)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", wsgate.log()));
    for line in log.lines().filter(|l| l.contains("\"GET / HTTP/1.1\"")) {
        assert!(line.starts_with("127.0.0.3:"), "{line}");
    }
}

#[test]
fn websocket_echo_through_wsgate_send_proxy_v2_and_haproxy_accept_proxy() {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    };
    let backend = DemoBackend::start("pp2", "1h");
    let h = free_port();
    let _haproxy = Haproxy::start(
        &bin,
        &format!(
            "{DEFAULTS}\
             frontend fe\n    mode http\n    bind 127.0.0.1:{h} accept-proxy\n    http-request deny if !{{ src 127.0.0.2 }}\n    default_backend be\n\
             backend be\n    mode http\n    server s1 {}\n",
            backend.addr
        ),
        &[addr(h)],
    );
    let w = free_port();
    let _wsgate = Wsgate::start(&format!(
        "{DEFAULTS}\
         frontend fe\n    mode http\n    bind 127.0.0.1:{w}\n    default_backend be\n\
         backend be\n    mode http\n    server h 127.0.0.1:{h} send-proxy-v2 check inter 300\n"
    ));
    // HAProxy denies anyone but 127.0.0.2: the WebSocket only opens if
    // wsgate announced the client's real address (the test binds its
    // socket to 127.0.0.2).
    runtime().block_on(async {
        let mut ws = ws_from([127, 0, 0, 2], addr(w)).await;
        let text = "through wsgate, then haproxy";
        let (echo, _) = common::ws::echo(&mut ws, text, "wsgate → haproxy").await;
        assert_eq!(echo, common::ws::expected_echo(text, "pp2"));
    });
    // And from 127.0.0.1, HAProxy refuses: the address is the client's.
    let (got, _) = send_raw(addr(w), GET, false);
    assert!(
        got.starts_with(b"HTTP/1.1 403"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}
