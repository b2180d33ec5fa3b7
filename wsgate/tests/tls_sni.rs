//! End-to-end TLS termination through the real binary: certificate
//! directories (skipping `.key .issuer .ocsp .sctl`) and SNI selection
//! (exact, wildcard, default, strict-sni), crt-list filters, several `crt`
//! on one bind, side by side with HAProxy on the same certificates, curl
//! `--resolve`, wss with Python `websockets` on each listener, start-up
//! checks (`wsgate -c`), and bad input on a TLS port.
//!
//! Needs `openssl` (s_client), and for the comparison `/usr/sbin/haproxy`
//! and `python3` with `websockets`; without them the tests are skipped,
//! except in CI (`CI` set) where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, run_wsgate, skip_unless_ci, TempDir, Wsgate};
use tls_support::{have, served_cn, Ca, Haproxy};

/// A directory `certs/` with, in lexical order: the default certificate,
/// one exact name, a wildcard with its key in `<file>.key`, and files a
/// directory must not load as certificates.
fn cert_dir(ca: &Ca, dir: &TempDir) {
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    dir.write("certs/00-default.pem", ca.leaf("default.test", &[]));
    dir.write("certs/10-a.pem", ca.leaf("a.example.com", &[]));
    let (c, k) = ca.leaf_dated("*.example.com", &[], (2020, 1, 1), (2090, 1, 1));
    dir.write("certs/20-wild.pem", c);
    dir.write("certs/20-wild.pem.key", k);
    // HAProxy reads `.issuer` as the issuer (for OCSP); wsgate must not
    // load it as a certificate of its own.
    dir.write("certs/20-wild.pem.issuer", &ca.pem);
    // OCSP responses and SCT lists, named for no certificate here: loaded
    // as certificates they would fail (a certificate without its key).
    dir.write("certs/30-stray.ocsp", &ca.pem);
    dir.write("certs/30-stray.sctl", &ca.pem);
    dir.write("ca.pem", &ca.pem);
    // crt-list: the default kept out of SNI matching (fallback only), the
    // wildcard minus one name, the exact name by its own CN.
    let p = |n: &str| dir.path().join("certs").join(n).display().to_string();
    dir.write(
        "list.txt",
        format!(
            "# comment\n{} !*\n\n{} *.example.com !skip.example.com\n{}\n",
            p("00-default.pem"),
            p("20-wild.pem"),
            p("10-a.pem")
        ),
    );
}

fn peers_present() -> bool {
    if !have("openssl") {
        skip_unless_ci("openssl is not installed");
        return false;
    }
    true
}

/// SNI → expected CN on each listener: dir, strict-sni, crt-list, and
/// two `crt` files on one bind (the first one the default).
const CASES: &[(Option<&str>, [Option<&str>; 4])] = &[
    (Some("a.example.com"), [A, A, A, A]),
    (Some("A.Example.COM"), [A, A, A, A]),
    (Some("b.example.com"), [WILD, WILD, WILD, WILD]),
    // A wildcard covers one label only.
    (Some("x.b.example.com"), [DEFAULT, None, DEFAULT, A]),
    (Some("example.com"), [DEFAULT, None, DEFAULT, A]),
    (Some("skip.example.com"), [WILD, WILD, DEFAULT, WILD]),
    (Some("default.test"), [DEFAULT, DEFAULT, DEFAULT, A]),
    (None, [DEFAULT, None, DEFAULT, A]),
];

const A: Option<&str> = Some("a.example.com");
const WILD: Option<&str> = Some("*.example.com");
const DEFAULT: Option<&str> = Some("default.test");

fn config(ports: [u16; 4]) -> String {
    format!(
        "defaults\n mode http\n timeout client 2s\n timeout connect 2s\n timeout server 5s\n timeout tunnel 1h\n\
         frontend fe\n bind 127.0.0.1:{} ssl crt certs\n bind 127.0.0.1:{} ssl crt certs strict-sni\n\
         bind 127.0.0.1:{} ssl crt-list list.txt\n bind 127.0.0.1:{} ssl crt certs/10-a.pem crt certs/20-wild.pem\n",
        ports[0], ports[1], ports[2], ports[3]
    )
}

#[test]
fn sni_selection_default_strict_and_crt_list() {
    if !peers_present() {
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("tls-sni");
    cert_dir(&ca, &dir);
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let gate = Wsgate::start_in(dir, &config(ports));
    let mut wrong = Vec::new();
    for (sni, expected) in CASES {
        for (i, port) in ports.iter().enumerate() {
            let got = served_cn(*port, *sni);
            if got.as_deref() != expected[i] {
                wrong.push(format!(
                    "listener {i}, SNI {sni:?}: got {got:?}, expected {:?}",
                    expected[i]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{wrong:#?}\nwsgate log:\n{}",
        gate.guard.output()
    );
}

/// The subject curl sees on `port` for `name` (resolved to 127.0.0.1 with
/// `--resolve`), verifying it against `ca`; `None` when it refused.
fn curl_subject(port: u16, name: &str, ca: &Path) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sv", "--max-time", "10", "-o", "/dev/null", "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{name}:{port}/"))
        .output()
        .unwrap();
    out.status.success().then_some(())?;
    let err = String::from_utf8_lossy(&out.stderr);
    // `*  subject: CN=a.example.com`
    err.lines()
        .find_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("subject: "))
        .map(str::to_owned)
}

#[test]
fn curl_with_resolve_gets_the_certificate_of_each_name() {
    if !peers_present() || !have("curl") {
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("tls-curl");
    cert_dir(&ca, &dir);
    let ca_path = dir.path().join("ca.pem");
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let gate = Wsgate::start_in(dir, &config(ports));
    for (name, subject) in [
        ("a.example.com", Some("CN=a.example.com")),
        ("b.example.com", Some("CN=*.example.com")),
        ("default.test", Some("CN=default.test")),
        // The default certificate does not name it: curl refuses.
        ("x.b.example.com", None),
    ] {
        assert_eq!(
            curl_subject(ports[0], name, &ca_path).as_deref(),
            subject,
            "{name}\n{}",
            gate.log()
        );
    }
}

#[test]
fn same_certificate_as_haproxy_for_each_sni() {
    if !peers_present() {
        return;
    }
    if !Path::new("/usr/sbin/haproxy").exists() {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("tls-hap");
    cert_dir(&ca, &dir);
    let wsgate_ports = [free_port(), free_port(), free_port(), free_port()];
    let hap_ports = [free_port(), free_port(), free_port(), free_port()];
    let hap_cfg = dir.write(
        "haproxy.cfg",
        format!(
            "global\n log stderr local0 emerg\n{}",
            config(hap_ports)
                .replace("crt certs", &format!("crt {}/certs", dir.path().display()))
                .replace(
                    "crt-list list.txt",
                    &format!("crt-list {}/list.txt", dir.path().display())
                )
        ),
    );
    let _hap = Haproxy::start(&hap_cfg, &hap_ports, dir.path().join("haproxy.log"));
    let gate = Wsgate::start_in(dir, &config(wsgate_ports));
    let mut differ = Vec::new();
    for (sni, _) in CASES {
        for i in 0..4 {
            let h = served_cn(hap_ports[i], *sni);
            let w = served_cn(wsgate_ports[i], *sni);
            if h != w {
                differ.push(format!(
                    "listener {i}, SNI {sni:?}: haproxy {h:?}, wsgate {w:?}"
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{differ:#?}\nwsgate log:\n{}",
        gate.guard.output()
    );
}

#[test]
fn wss_through_python_websockets_with_sni() {
    if !peers_present() {
        return;
    }
    let py_ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !py_ok {
        skip_unless_ci("python3 with `websockets` is not installed");
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("tls-wss");
    cert_dir(&ca, &dir);
    let backend_port = free_port();
    let log = dir.path().join("backend.log");
    let mut cmd = Command::new(common::wsgate_bin());
    cmd.args([
        "demo-backend",
        "--listen",
        &format!("127.0.0.1:{backend_port}"),
        "--name",
        "b1",
    ]);
    let _backend = common::ChildGuard::spawn(cmd, log);
    common::poll_until(Duration::from_secs(20), "the backend", || {
        common::accepts(format!("127.0.0.1:{backend_port}").parse().unwrap()).then_some(())
    })
    .unwrap();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let ca_path = dir.path().join("ca.pem");
    let gate = Wsgate::start_in(
        dir,
        &format!(
            "{} default_backend app\nbackend app\n server b1 127.0.0.1:{backend_port}\n",
            config(ports)
        ),
    );
    let script = r#"
import asyncio, ssl, sys
import websockets
async def main(port, ca, name):
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(f"wss://127.0.0.1:{port}/ws", ssl=ctx, server_hostname=name, open_timeout=10) as ws:
        await ws.send("hello over tls")
        for _ in range(10):
            msg = await asyncio.wait_for(ws.recv(), 10)
            if "hello over tls" in msg:
                print("ECHO", msg)
                return
    sys.exit("no echo")
asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"#;
    // Every listener: directory, strict-sni, crt-list, two `crt`.
    for (port, name) in ports
        .iter()
        .flat_map(|p| ["a.example.com", "b.example.com"].map(|n| (p, n)))
    {
        let out = Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .arg(&ca_path)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ECHO"),
            "port {port}, {name}: {}\n{}\nwsgate log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            gate.guard.output()
        );
    }
}

#[test]
fn check_mode_lists_certificates_and_refuses_expired_ones() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-check");
    cert_dir(&ca, &dir);
    let cfg = dir.write(
        "ok.cfg",
        config([free_port(), free_port(), free_port(), free_port()]),
    );
    let (status, out) = run_in(&dir, &cfg);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("note: certificate '")
            && out.contains("a.example.com; ECDSA P-256; expires 2090-01-01"),
        "{out}"
    );
    assert_eq!(
        out.matches("note: certificate").count(),
        11,
        "3 binds x 3 certificates, 1 bind x 2:\n{out}"
    );

    let (c, k) = ca.leaf_dated("old.example.com", &[], (2019, 1, 1), (2021, 3, 4));
    std::fs::create_dir_all(dir.path().join("old")).unwrap();
    dir.write("old/old.pem", format!("{c}{k}"));
    let cfg = dir.write(
        "old.cfg",
        format!(
            "frontend fe\n mode http\n timeout client 1s\n bind 127.0.0.1:{} ssl crt old/old.pem\n",
            free_port()
        ),
    );
    let (status, out) = run_in(&dir, &cfg);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("old.cfg:4:2: error: [environment] 'old/old.pem': certificate expired on 2021-03-04 (valid from 2019-01-01 to 2021-03-04)"),
        "{out}"
    );

    // Key of another certificate: an error naming the file.
    let (c1, _) = ca.leaf_dated("one.example.com", &[], (2020, 1, 1), (2090, 1, 1));
    let (_, k2) = ca.leaf_dated("two.example.com", &[], (2020, 1, 1), (2090, 1, 1));
    dir.write("old/mismatch.pem", format!("{c1}{k2}"));
    let (status, out) = check_one(&dir, "old/mismatch.pem");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("the private key does not belong to the certificate"),
        "{out}"
    );

    // Not valid yet: an error with both dates.
    let (c, k) = ca.leaf_dated("future.example.com", &[], (2080, 1, 1), (2090, 1, 1));
    dir.write("old/future.pem", format!("{c}{k}"));
    let (status, out) = check_one(&dir, "old/future.pem");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("error: [environment] 'old/future.pem': certificate is not valid yet: valid from 2080-01-01 to 2090-01-01"),
        "{out}"
    );

    // A 1024-bit RSA key (made by openssl: ring makes and signs with no
    // such key): an error naming the file and the size, with the
    // commands that make a good key.
    let weak = dir.path().join("old/weak.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "3650",
        ])
        .args(["-subj", "/CN=weak.example.com", "-keyout"])
        .arg(&weak)
        .arg("-out")
        .arg(dir.path().join("old/weak.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let key = std::fs::read_to_string(&weak).unwrap();
    let crt = std::fs::read_to_string(dir.path().join("old/weak.crt")).unwrap();
    dir.write("old/weak.pem", format!("{crt}{key}"));
    let (status, out) = check_one(&dir, "old/weak.pem");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("'old/weak.pem': 1024-bit RSA key: too weak")
            && out.contains("hint: make a P-256 key: `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256")
            && out.contains("or a 2048-bit RSA one with `-newkey rsa:2048`"),
        "{out}"
    );

    // A chain whose next certificate is not the issuer: a warning, and it
    // still starts.
    let (c, k) = ca.leaf_dated("chain.example.com", &[], (2020, 1, 1), (2090, 1, 1));
    dir.write("old/chain.pem", format!("{c}{}{k}", Ca::new().pem));
    let (status, out) = check_one(&dir, "old/chain.pem");
    assert!(status.success(), "{out}");
    assert!(
        out.contains("warning: 'old/chain.pem': the chain does not lead to the issuer: certificate 1 ('CN=chain.example.com') is issued by 'CN=wsgate test CA', but the next one in the file is 'CN=wsgate test CA' (its signature does not verify)"),
        "{out}"
    );

    // Expiring within 14 days: a warning, and it still starts.
    let soon = time_in_days(5);
    let (c, k) = ca.leaf_dated("soon.example.com", &[], (2020, 1, 1), soon);
    dir.write("old/soon.pem", format!("{c}{k}"));
    let (status, out) = check_one(&dir, "old/soon.pem");
    assert!(status.success(), "{out}");
    assert!(
        out.contains("warning: 'old/soon.pem': certificate expires on"),
        "{out}"
    );
}

/// The date `days` from now, as (y, m, d).
fn time_in_days(days: u64) -> (i32, u8, u8) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + days * 86_400;
    let d = wsgate::tls::checks::date(now as i64);
    let mut parts = d.split('-').map(|p| p.parse::<i64>().unwrap());
    (
        parts.next().unwrap() as i32,
        parts.next().unwrap() as u8,
        parts.next().unwrap() as u8,
    )
}

/// `wsgate -c` on a frontend serving `pem` alone.
fn check_one(dir: &TempDir, pem: &str) -> (std::process::ExitStatus, String) {
    let cfg = dir.write(
        "one.cfg",
        format!(
            "frontend fe\n mode http\n timeout client 1s\n bind 127.0.0.1:{} ssl crt {pem}\n",
            free_port()
        ),
    );
    run_in(dir, &cfg)
}

fn run_in(dir: &TempDir, cfg: &Path) -> (std::process::ExitStatus, String) {
    let out = Command::new(common::wsgate_bin())
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = run_wsgate;
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads until the peer closes (or fails); the time it took.
fn wait_closed(mut s: TcpStream, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Ok(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Ok(start.elapsed()),
        }
    }
    Err(format!("still open after {limit:?}"))
}

/// Polls `gate`'s log until `line` appears `count` times.
fn logged(gate: &Wsgate, line: &str, count: usize) {
    common::poll_until(Duration::from_secs(10), line, || {
        (gate.log().matches(line).count() >= count).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\nwsgate log:\n{}", gate.log()));
}

/// One bad client of a TLS port: what it sends, whether it then stops
/// sending (FIN), how long the proxy takes to close at least, and the
/// line logged for it (HAProxy's words, then wsgate's detail).
struct BadInput {
    what: &'static str,
    send: Vec<u8>,
    fin: bool,
    at_least: Duration,
    line: &'static str,
}

fn bad_inputs() -> Vec<BadInput> {
    let not_tls = "SSL handshake failure (the client does not speak TLS: not a TLS record";
    let timeout = "Timeout during SSL handshake (no complete handshake within `timeout client`)";
    let closed = "Connection closed during SSL handshake";
    // A ClientHello record announcing 512 bytes, cut after a few.
    let hello_start = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let case = |what, send, fin, at_least, line| BadInput {
        what,
        send,
        fin,
        at_least,
        line,
    };
    let second = Duration::from_millis(800);
    vec![
        case(
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
            Duration::ZERO,
            not_tls,
        ),
        case(
            "garbage",
            [0xde, 0xad, 0xbe, 0xef].repeat(300),
            false,
            Duration::ZERO,
            not_tls,
        ),
        // Closed by `timeout client` (as HAProxy 2.6: not `timeout
        // http-request`, 30s here).
        case(
            "cut ClientHello",
            hello_start.clone(),
            false,
            second,
            timeout,
        ),
        case(
            "cut ClientHello, then FIN",
            hello_start,
            true,
            Duration::ZERO,
            closed,
        ),
        case("stall", Vec::new(), false, second, timeout),
    ]
}

/// Plays each bad input against `port`, one after the other, checking it
/// is closed in time; the client address each one had.
fn play(port: u16, cases: &[BadInput], log: impl Fn() -> String) -> Vec<std::net::SocketAddr> {
    let mut clients = Vec::new();
    for c in cases {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        clients.push(s.local_addr().unwrap());
        s.write_all(&c.send).unwrap();
        if c.fin {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let took = wait_closed(s, Duration::from_secs(6))
            .unwrap_or_else(|e| panic!("port {port}, {}: {e}\n{}", c.what, log()));
        assert!(
            took >= c.at_least,
            "port {port}, {}: closed after {took:?}",
            c.what
        );
    }
    clients
}

#[test]
fn bad_input_on_the_tls_port_is_closed_and_the_proxy_stays_healthy() {
    if !peers_present() {
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("tls-bad");
    cert_dir(&ca, &dir);
    // `maxconn 1`: a connection slot a failed handshake kept would hold
    // the next case in the kernel's queue, and it would not be closed.
    let config = |port: u16, sock: &Path, certs: &str, log: &str| {
        format!(
            "global\n stats socket {}\ndefaults\n mode http\n timeout client 1s\n timeout http-request 30s\n\
             frontend fe\n maxconn 1\n{log} bind 127.0.0.1:{port} ssl crt {certs}\n",
            sock.display()
        )
    };
    let cases = bad_inputs();

    // HAProxy 2.6 beside, on the same certificates, logging as `option
    // httplog` does: the same closes, and the same words per client.
    let hap_port = free_port();
    let hap_config = config(
        hap_port,
        &dir.path().join("haproxy.sock"),
        &format!("{}/certs", dir.path().display()),
        " log stdout format raw local0\n option httplog\n",
    );
    if let Some(hap) = Haproxy::beside(dir.path(), &hap_config, hap_port) {
        let log = || std::fs::read_to_string(&hap.log).unwrap_or_default();
        let clients = play(hap_port, &cases, log);
        for (c, client) in cases.iter().zip(clients) {
            let words = c.line.split(" (").next().unwrap();
            common::poll_until(Duration::from_secs(10), c.what, || {
                log()
                    .lines()
                    .any(|l| {
                        l.starts_with(&format!("{client} ["))
                            && l.ends_with(&format!("fe/1: {words}"))
                    })
                    .then_some(())
            })
            .unwrap_or_else(|e| panic!("haproxy, {e}: no `{words}` for {client}\n{}", log()));
        }
    }

    let port = free_port();
    let sock = dir.path().join("admin.sock");
    let gate = Wsgate::start_in(dir, &config(port, &sock, "certs", ""));
    let clients = play(port, &cases, || gate.log());
    for (c, client) in cases.iter().zip(clients) {
        logged(
            &gate,
            &format!("{client} fe/127.0.0.1:{port}: {}", c.line),
            1,
        );
    }

    // Still serving, through the one slot; and no session left counted.
    assert_eq!(
        served_cn(port, Some("a.example.com")).as_deref(),
        Some("a.example.com"),
        "{}",
        gate.guard.output()
    );
    common::poll_until(Duration::from_secs(10), "CurrConns: 0", || {
        common::cli(&sock, "show info")
            .contains("\nCurrConns: 0\n")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", common::cli(&sock, "show info")));
}

#[test]
fn a_flood_of_bad_handshakes_is_logged_at_most_20_a_second_and_counted() {
    if !peers_present() {
        return;
    }
    let ca = Ca::new();
    let dir = TempDir::new("tls-flood");
    cert_dir(&ca, &dir);
    let port = free_port();
    let gate = Wsgate::start_in(
        dir,
        &format!("defaults\n mode http\n timeout client 5s\nfrontend fe\n bind 127.0.0.1:{port} ssl crt certs\n"),
    );
    let garbage = || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        wait_closed(s, Duration::from_secs(5)).unwrap();
    };
    let started = Instant::now();
    for _ in 0..100 {
        garbage();
    }
    let flood = started.elapsed();
    // The next window: this one is logged, with the count of the others.
    std::thread::sleep(Duration::from_millis(1100));
    garbage();
    let line = "more handshake failures not logged: over 20 a second]";
    logged(&gate, line, 1);
    // Every failure is either a line or in a count.
    let log = gate.log();
    let lines = log.matches("SSL handshake failure").count();
    let counted: usize = log
        .lines()
        .filter_map(|l| {
            l.split_once(" [")?
                .1
                .split_once(" more handshake failures")?
                .0
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(
        (lines + counted, lines < 101),
        (101, true),
        "{lines} lines, {counted} counted ({flood:?} for the first 100)\n{log}"
    );
}
