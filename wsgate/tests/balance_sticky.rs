//! Persistence through the real binary: cookies (`cookie ... insert|prefix|
//! rewrite` with `server ... cookie`) and stick tables (`stick on src`),
//! with independent peers: curl and its cookie jar, raw HTTP/1.1 sockets,
//! tokio-tungstenite for the WebSocket upgrade, named demo backends
//! (`X-Served-By`) and scripted backends that record what they received.
//! The cookie headers are compared side by side with Debian's HAProxy 2.6
//! on the same configuration text.
//!
//! Needs `curl` and `/usr/sbin/haproxy` (installed by `.ci/run`): without
//! them the parts that use them are skipped locally and fail under `CI`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use balance_support::{demo_backend_at, haproxy_bin, served_by, Haproxy};
use common::http::{exchange, Message, Reader, Script, ScriptedBackend, IO_DEADLINE};
use common::ws::next_text;
use common::{free_port, haproxy_check, poll_until, skip_unless_ci, DemoBackend, TempDir, Wsgate};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n";

fn get(addr: SocketAddr, target: &str, cookie: Option<&str>) -> Message {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    exchange(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {target} via {addr}: {e}"))
}

fn served(m: &Message) -> String {
    m.header("x-served-by").unwrap_or("").to_owned()
}

/// `name=value` of the first `Set-Cookie`, without attributes.
fn cookie_pair(m: &Message) -> Option<String> {
    m.header("set-cookie")
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
}

fn three_demo_backends() -> Vec<DemoBackend> {
    ["s1", "s2", "s3"]
        .iter()
        .map(|n| DemoBackend::start(n, "1h"))
        .collect()
}

fn servers(backends: &[DemoBackend], extra: &str) -> String {
    backends
        .iter()
        .map(|b| format!("    server {0} {1} cookie {0} {extra}\n", b.name, b.addr))
        .collect()
}

#[test]
fn insert_cookie_round_robin_without_it_and_one_server_with_it() {
    let backends = three_demo_backends();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    cookie SRV insert indirect nocache\n{}",
        servers(&backends, "")
    ));

    // Without a cookie: round robin, and each answer sets its server's cookie.
    let seq: Vec<(String, Option<String>)> = (0..6)
        .map(|_| {
            let m = get(addr, "/health", None);
            (served(&m), cookie_pair(&m))
        })
        .collect();
    let expected: Vec<(String, Option<String>)> = ["s1", "s2", "s3", "s1", "s2", "s3"]
        .iter()
        .map(|s| (s.to_string(), Some(format!("SRV={s}"))))
        .collect();
    assert_eq!(seq, expected, "{}", gate.log());

    // With curl's cookie jar: 100 requests in one curl run (one cookie
    // engine) all land on the server of the first answer, and only the
    // first answer sets the cookie.
    if Command::new("curl").arg("--version").output().is_err() {
        skip_unless_ci("curl is not installed");
        return;
    }
    let jar = TempDir::new("jar");
    let jar_file = jar.path().join("cookies.txt");
    let url = format!("http://127.0.0.1:{port}/health");
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "-b"])
        .arg(&jar_file)
        .arg("-c")
        .arg(&jar_file)
        .args(std::iter::repeat_n(url.as_str(), 100))
        .output()
        .unwrap();
    let heads = String::from_utf8_lossy(&out.stdout);
    let lines = |name: &str| -> Vec<String> {
        heads
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .collect()
    };
    let by = lines("x-served-by");
    assert_eq!(by.len(), 100, "{heads}");
    // The rotation continued where it was: s1 is next.
    assert!(by.iter().all(|s| s == "s1"), "not all on s1: {by:?}");
    assert_eq!(lines("set-cookie"), vec!["SRV=s1; path=/".to_owned()]);
    assert!(std::fs::read_to_string(&jar_file)
        .unwrap()
        .contains("SRV\ts1"));
}

#[test]
fn a_cookie_for_a_dead_server_is_redispatched_and_set_again() {
    let mut backends = three_demo_backends();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    retries 1\n    option redispatch\n    cookie SRV insert indirect\n{}",
        servers(&backends, "")
    ));
    let m = get(addr, "/health", Some("SRV=s2"));
    assert_eq!((served(&m), cookie_pair(&m)), ("s2".into(), None));
    // s2 goes away (no health checks: the connection attempt finds out).
    drop(backends.remove(1));
    let m = get(addr, "/health", Some("SRV=s2"));
    assert_eq!(m.status(), 200, "{}", gate.log());
    let now = served(&m);
    assert_ne!(now, "s2");
    assert_eq!(cookie_pair(&m), Some(format!("SRV={now}")));
    // The client's new cookie keeps it there.
    for _ in 0..5 {
        let m = get(addr, "/health", Some(&format!("SRV={now}")));
        assert_eq!((served(&m), cookie_pair(&m)), (now.clone(), None));
    }
}

#[test]
fn a_down_server_cookie_is_ignored_with_health_checks() {
    let mut backends = three_demo_backends();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _gate = Wsgate::start(&format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    cookie SRV insert indirect\n{}",
        servers(&backends, "check inter 100ms fall 1 rise 1")
    ));
    drop(backends.remove(2));
    // Once s3 is marked down, its cookie is ignored and replaced.
    let m = poll_until(Duration::from_secs(10), "s3 to be marked down", || {
        let m = get(addr, "/health", Some("SRV=s3"));
        (m.status() == 200).then_some(m)
    })
    .unwrap();
    let now = served(&m);
    assert!(now == "s1" || now == "s2", "{now}");
    assert_eq!(cookie_pair(&m), Some(format!("SRV={now}")));
}

#[test]
fn indirect_hides_the_cookie_and_prefix_mode_round_trips() {
    let app = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=abc123; Path=/\r\nContent-Length: 2\r\n\r\nok",
    ));
    let ins_port = free_port();
    let pfx_port = free_port();
    let _gate = Wsgate::start(&format!(
        "{DEFAULTS}listen ins\n    bind 127.0.0.1:{ins_port}\n    cookie SRV insert indirect\n    server a {0} cookie a1\n\
         listen pfx\n    bind 127.0.0.1:{pfx_port}\n    cookie JSESSIONID prefix\n    server a {0} cookie a1\n",
        app.addr
    ));
    let ins = SocketAddr::from(([127, 0, 0, 1], ins_port));
    let pfx = SocketAddr::from(([127, 0, 0, 1], pfx_port));
    let last_cookie = || {
        app.seen()
            .last()
            .and_then(|m| m.header("cookie").map(str::to_owned))
    };

    let m = get(ins, "/", Some("a=1; SRV=a1; b=2"));
    assert_eq!(m.status(), 200);
    assert_eq!(last_cookie().as_deref(), Some("a=1; b=2"));
    // The server's own cookie passes; no SRV cookie: the client had it.
    assert_eq!(
        m.headers_named("set-cookie"),
        vec!["JSESSIONID=abc123; Path=/"]
    );
    get(ins, "/", Some("SRV=a1"));
    assert_eq!(last_cookie(), None, "a header left empty is dropped");

    let m = get(pfx, "/", None);
    assert_eq!(
        m.headers_named("set-cookie"),
        vec!["JSESSIONID=a1~abc123; Path=/"]
    );
    get(pfx, "/", Some("x=1; JSESSIONID=a1~abc123"));
    assert_eq!(last_cookie().as_deref(), Some("x=1; JSESSIONID=abc123"));
}

/// socket.io: the client polls over plain HTTP first (and gets the
/// cookie), then upgrades with the cookie; each client's upgrade must
/// reach the server that answered its polls, whatever the balancer would
/// have chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_polling_then_upgrade_stays_on_one_server() {
    let backends = three_demo_backends();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _gate = Wsgate::start(&format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    cookie io insert indirect nocache\n{}",
        servers(&backends, "")
    ));
    let polls: Vec<(String, String)> = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| {
                let m = get(addr, "/socket.io/?EIO=4&transport=polling", None);
                (
                    served(&m),
                    cookie_pair(&m).expect("a cookie on the polling answer"),
                )
            })
            .collect()
    })
    .await
    .unwrap();
    let names: Vec<&str> = polls.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["s1", "s2", "s3"]);
    // Upgrade in reverse order: round robin alone would give s1 s2 s3.
    for (server, pair) in polls.iter().rev() {
        let mut request = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Cookie", pair.parse().unwrap());
        let (mut ws, response) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        assert_eq!(response.status().as_u16(), 101);
        // The right cookie: the 101 sets none.
        assert!(response.headers().get("set-cookie").is_none());
        assert_eq!(
            next_text(&mut ws, "welcome").await,
            format!("welcome [{server}]")
        );
        ws.send(WsMessage::Text("hi".into())).await.unwrap();
        assert_eq!(
            next_text(&mut ws, "echo").await,
            format!("got your message: hi [{server}]")
        );
    }
}

// ---------------------------------------------------------------- stick tables

fn from(src: [u8; 4], proxy: SocketAddr) -> String {
    let (status, server) = served_by(proxy, Some(IpAddr::from(src)), "/health", &[]).unwrap();
    assert_eq!(status, 200);
    server
}

#[test]
fn stick_on_src_pins_expires_and_survives_a_reload() {
    let backends = three_demo_backends();
    let port = free_port();
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    stick-table type ip size 1k expire 3s\n    stick on src\n{}",
        servers(&backends, "")
    );
    let gate = Wsgate::start(&config);
    let (a, b) = ([127, 0, 0, 2], [127, 0, 0, 3]);
    assert_eq!(from(a, proxy), "s1");
    assert_eq!(from(b, proxy), "s2");
    // Pinned: the balancer is not consulted (its next choice stays s3).
    for _ in 0..10 {
        assert_eq!(from(a, proxy), "s1");
        assert_eq!(from(b, proxy), "s2");
    }
    // A reload with the same table keeps the entries (a fresh round robin
    // would send b to s1).
    gate.guard.signal(libc::SIGHUP);
    poll_until(Duration::from_secs(10), "the reload", || {
        gate.log().contains("reloaded").then_some(())
    })
    .unwrap();
    assert_eq!(from(b, proxy), "s2", "{}", gate.log());
    assert_eq!(from(a, proxy), "s1");
    // Expiry: 3 s without a match drops a's entry; b is refreshed meanwhile.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        assert_eq!(from(b, proxy), "s2");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The balancer (fresh since the reload) gives s1 to a newcomer, then
    // s2 to a, whose entry is gone.
    assert_eq!(from([127, 0, 0, 4], proxy), "s1");
    assert_eq!(from(a, proxy), "s2");
    std::thread::sleep(Duration::from_millis(3200));
    // b's entry expired too: the balancer's next choice, s3.
    assert_eq!(from(b, proxy), "s3");
}

#[test]
fn stick_entry_for_a_down_server_moves_and_is_stored_again() {
    let mut backends = three_demo_backends();
    let port = free_port();
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let gate = Wsgate::start(&format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    stick-table type ip size 1k\n    stick on src\n{}",
        servers(&backends, "check inter 100ms fall 1 rise 1")
    ));
    let a = [127, 0, 0, 5];
    assert_eq!(from(a, proxy), "s1");
    let s1_addr = backends[0].addr;
    drop(backends.remove(0));
    let moved = poll_until(Duration::from_secs(10), "s1 to be marked down", || {
        let (status, server) = served_by(proxy, Some(IpAddr::from(a)), "/health", &[]).ok()?;
        (status == 200 && server != "s1").then_some(server)
    })
    .unwrap();
    // s1 comes back: the client stays where it was stored again.
    let dir = TempDir::new("s1-again");
    let _s1 = demo_backend_at(s1_addr, "s1", &dir);
    poll_until(Duration::from_secs(10), "s1 to be marked up", || {
        gate.log().contains("Server app/s1 is UP").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));
    for _ in 0..5 {
        assert_eq!(from(a, proxy), moved);
    }
}

#[test]
fn stick_on_src_in_tcp_mode() {
    let backends = three_demo_backends();
    let port = free_port();
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let servers: String = backends
        .iter()
        .map(|b| format!("    server {} {}\n", b.name, b.addr))
        .collect();
    let _gate = Wsgate::start(&format!(
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         listen raw\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    stick-table type ipv6 size 10\n    stick on src\n{servers}"
    ));
    // The harness's start-up probes took turns of the round robin, and in
    // mode tcp their sessions may still be picking servers: let them end.
    std::thread::sleep(Duration::from_millis(500));
    let firsts: Vec<String> = (2..5).map(|last| from([127, 0, 0, last], proxy)).collect();
    let mut distinct = firsts.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "round robin spread the first picks: {firsts:?}"
    );
    for _ in 0..3 {
        let mut again: Vec<String> = (2..5)
            .rev()
            .map(|last| from([127, 0, 0, last], proxy))
            .collect();
        again.reverse();
        assert_eq!(again, firsts);
    }
}

/// One runtime API command over TCP (`stats socket ipv4@...`).
fn cli(addr: SocketAddr, command: &str) -> String {
    use std::io::{Read, Write};
    let mut s = common::http::connect(addr);
    s.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn show_table_reports_entries_as_haproxy() {
    let backends = three_demo_backends();
    let (port, cli_port) = (free_port(), free_port());
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let api = SocketAddr::from(([127, 0, 0, 1], cli_port));
    let _gate = Wsgate::start(&format!(
        "global\n    stats socket ipv4@127.0.0.1:{cli_port} level admin\n{DEFAULTS}\
         listen app\n    bind 127.0.0.1:{port}\n    stick-table type ip size 1k expire 30s\n    stick on src\n{}\
         backend users\n    stick-table type string len 8 size 10\n    server u1 127.0.0.1:1\n",
        servers(&backends, "")
    ));
    poll_until(Duration::from_secs(10), "the stats socket", || {
        common::accepts(api).then_some(())
    })
    .unwrap();
    assert_eq!(from([127, 0, 0, 7], proxy), "s1");
    assert_eq!(from([127, 0, 0, 8], proxy), "s2");
    // Last declared first, as HAProxy 2.6 lists them.
    assert_eq!(
        cli(api, "show table"),
        "# table: users, type: string, size:10, used:0\n# table: app, type: ip, size:1024, used:2\n\n"
    );
    let dump = cli(api, "show table app");
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(
        lines[0], "# table: app, type: ip, size:1024, used:2",
        "{dump}"
    );
    for (line, (key, id, name)) in lines[1..3]
        .iter()
        .zip([("127.0.0.7", 1, "s1"), ("127.0.0.8", 2, "s2")])
    {
        let (_, rest) = line.split_once(": ").unwrap();
        let exp: u64 = rest
            .split(' ')
            .find_map(|w| w.strip_prefix("exp="))
            .unwrap()
            .parse()
            .unwrap();
        assert!((25_000..=30_000).contains(&exp), "{line}");
        assert_eq!(
            rest.replace(&format!("exp={exp}"), "exp=N"),
            format!("key={key} use=0 exp=N server_id={id} server_key={name}")
        );
    }
    assert_eq!(cli(api, "show table nope"), "No such table\n\n");
}

#[test]
fn stick_on_a_header_with_a_condition() {
    let backends = three_demo_backends();
    let port = free_port();
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let _gate = Wsgate::start(&format!(
        "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    acl pinned path_beg /health\n    stick-table type string len 8 size 10\n    stick on req.hdr(X-User) if pinned\n{}",
        servers(&backends, "")
    ));
    let user = |name: &str, path: &str| {
        let (status, server) = served_by(proxy, None, path, &[("X-User", name)]).unwrap();
        assert_eq!(status, if path == "/health" { 200 } else { 404 });
        server
    };
    assert_eq!(user("alice", "/health"), "s1");
    assert_eq!(user("bob", "/health"), "s2");
    // Keys are cut at `len 8`: the same user.
    assert_eq!(user("alice-on-phone", "/health"), "s3");
    assert_eq!(user("alice-on-tablet", "/health"), "s3");
    assert_eq!(user("bob", "/health"), "s2");
    // Outside the condition: balanced, not pinned.
    let others: Vec<String> = (0..3).map(|_| user("bob", "/other")).collect();
    assert_eq!(others, ["s1", "s2", "s3"]);
}

// ---------------------------------------------------------------- HAProxy side by side

/// The listen sections of the comparison, for a given port per section.
const SECTIONS: &[(&str, &str, bool)] = &[
    // (name, persistence lines, backend without a cookie value)
    ("ins_all", "cookie SRV insert indirect nocache httponly secure domain .a.com domain .b.com attr SameSite=None", false),
    ("pfx", "cookie JSESSIONID prefix nocache", false),
    ("pfx_ind", "cookie JSESSIONID prefix indirect", false),
    ("rw", "cookie JSESSIONID rewrite", false),
    ("ins_pres", "cookie JSESSIONID insert preserve nocache", false),
    ("ins_post", "cookie SRV insert postonly", false),
    ("passive", "cookie JSESSIONID", false),
    ("no_value", "cookie SRV insert nocache", true),
    ("dated", "cookie SRV insert indirect maxidle 60 maxlife 1h", false),
    ("idle_only", "cookie SRV insert maxidle 60", false),
    // A stick-table match counts as direct: no cookie inserted then.
    ("with_stick", "cookie SRV insert\n    stick-table type ip size 10\n    stick on src", false),
];

/// HAProxy's cookie date stamp for UNIX time `t` (30-bit base64 of
/// `(t + 3) / 4`), written here from its description.
fn stamp(t: u64) -> String {
    const TAB: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let v = (t + 3) >> 2;
    (0..5)
        .map(|i| char::from(TAB[((v >> (24 - 6 * i)) & 0x3f) as usize]))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// (method, Cookie header) of each request; dated values relative to now.
fn requests(now: u64) -> Vec<(&'static str, Option<String>)> {
    let c = |s: &str| Some(s.to_owned());
    vec![
        ("GET", None),
        ("GET", c("SRV=a1; x=1")),
        ("GET", c("x=1; SRV=zz")),
        ("GET", c("JSESSIONID=a1~abc; x=1")),
        ("GET", c("JSESSIONID=a1")),
        ("GET", c("SRV=a1|AAAAA")),
        ("GET", c("SRV=a1|12345")),
        ("GET", c("flag; SRV=a1; $Path=/")),
        ("POST", None),
        ("HEAD", c("SRV=zz")),
        // Idle 20 s, first seen 1000 s ago: kept, the last date refreshed.
        (
            "GET",
            Some(format!("SRV=a1|{}|{}", stamp(now - 20), stamp(now - 1000))),
        ),
        // Idle 300 s: past maxidle 60.
        (
            "GET",
            Some(format!("SRV=a1|{}|{}", stamp(now - 300), stamp(now - 1000))),
        ),
        // First seen two hours ago: past maxlife 1h.
        (
            "GET",
            Some(format!("SRV=a1|{}|{}", stamp(now - 20), stamp(now - 7200))),
        ),
        // Two days ahead: ignored.
        ("GET", Some(format!("SRV=a1|{}", stamp(now + 172_800)))),
        // Issued now: nothing to refresh (unless maxlife wants a first date).
        ("GET", Some(format!("SRV=a1|{}", stamp(now + 8)))),
    ]
}

/// Replaces date stamps within a few seconds of `now` by `<now>`: the two
/// proxies answer a moment apart.
fn mask_now(v: &str, now: u64) -> String {
    let mut out = v.to_owned();
    for t in now.saturating_sub(8)..=now + 8 {
        out = out.replace(&stamp(t), "<now>");
    }
    out
}

fn side_config(
    ports: &[u16],
    app: SocketAddr,
    plain: SocketAddr,
    demo: SocketAddr,
    ws_port: u16,
) -> String {
    let mut c = DEFAULTS.to_owned();
    for ((name, lines, no_value), port) in SECTIONS.iter().zip(ports) {
        let server = if *no_value {
            format!("server b {plain}")
        } else {
            format!("server a {app} cookie a1")
        };
        c.push_str(&format!(
            "listen {name}\n    bind 127.0.0.1:{port}\n    {lines}\n    {server}\n"
        ));
    }
    c.push_str(&format!(
        "listen ws\n    bind 127.0.0.1:{ws_port}\n    cookie SRV insert indirect nocache\n    server s1 {demo} cookie s1\n"
    ));
    c
}

/// What a client and the server saw of one exchange: response status,
/// `Set-Cookie` and `Cache-Control` values, the `Cookie` the server got.
type Observed = (u16, Vec<String>, Vec<String>, Option<String>);

fn observe(
    proxy: SocketAddr,
    method: &str,
    cookie: Option<&str>,
    backend: &ScriptedBackend,
) -> Observed {
    let mut req = format!("{method} / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    let before = backend.seen().len();
    let mut s = common::http::connect(proxy);
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let mut reader = Reader::new(s, IO_DEADLINE);
    let m = reader.read_head().unwrap().expect("a response");
    let seen = backend.seen();
    assert_eq!(seen.len(), before + 1, "one request reached the server");
    let values = |n: &str| m.headers_named(n).into_iter().map(str::to_owned).collect();
    (
        m.status(),
        values("set-cookie"),
        values("cache-control"),
        seen.last()
            .and_then(|r| r.header("cookie").map(str::to_owned)),
    )
}

fn upgrade_set_cookies(proxy: SocketAddr) -> (String, Vec<String>) {
    let mut s = common::http::connect(proxy);
    std::io::Write::write_all(
        &mut s,
        b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let m = Reader::new(s, IO_DEADLINE)
        .read_head()
        .unwrap()
        .expect("a response");
    (
        m.start.clone(),
        m.headers_named("set-cookie")
            .into_iter()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn cookie_headers_match_haproxy_2_6() {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed");
        return;
    };
    let app = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nSet-Cookie: JSESSIONID=abc; Path=/\r\nContent-Length: 2\r\n\r\nok",
    ));
    let plain = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 2\r\n\r\nok",
    ));
    let demo = DemoBackend::start("s1", "1h");
    let ports = |n: usize| -> Vec<u16> { (0..n).map(|_| free_port()).collect() };
    let (w, h) = (ports(SECTIONS.len() + 1), ports(SECTIONS.len() + 1));
    let wcfg = side_config(&w, app.addr, plain.addr, demo.addr, w[SECTIONS.len()]);
    let hcfg = side_config(&h, app.addr, plain.addr, demo.addr, h[SECTIONS.len()]);
    let addrs = |p: &[u16]| -> Vec<SocketAddr> {
        p.iter()
            .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect()
    };
    let gate = Wsgate::start(&wcfg);
    let _haproxy = Haproxy::start(
        &bin,
        &format!("global\n    maxconn 100\n{hcfg}"),
        &addrs(&h),
    );

    let mut differences = Vec::new();
    let now = unix_now();
    let masked = |mut o: Observed| {
        o.1 = o.1.iter().map(|v| mask_now(v, now)).collect();
        o
    };
    for (i, (name, _, no_value)) in SECTIONS.iter().enumerate() {
        let backend = if *no_value { &plain } else { &app };
        for (method, cookie) in requests(now) {
            let cookie = cookie.as_deref();
            let ours = masked(observe(addrs(&w)[i], method, cookie, backend));
            let theirs = masked(observe(addrs(&h)[i], method, cookie, backend));
            if ours != theirs {
                differences.push(format!(
                    "{name} {method} {cookie:?}:\n  wsgate  {ours:?}\n  haproxy {theirs:?}"
                ));
            }
        }
    }
    // The upgrade's 101 carries the cookie too.
    let ours = upgrade_set_cookies(addrs(&w)[SECTIONS.len()]);
    let theirs = upgrade_set_cookies(addrs(&h)[SECTIONS.len()]);
    assert!(ours.0.starts_with("HTTP/1.1 101"), "{ours:?}");
    assert_eq!(ours.1, ["SRV=s1; path=/"], "the 101 sets the cookie");
    if ours.1 != theirs.1 {
        differences.push(format!("101: wsgate {ours:?}, haproxy {theirs:?}"));
    }
    assert!(
        differences.is_empty(),
        "{}\n{}",
        differences.join("\n"),
        gate.log()
    );
}

/// The golden configuration with every persistence feature is one HAProxy
/// accepts too.
#[test]
fn the_persistence_golden_configuration_passes_haproxy_check() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/sticky_ok.cfg");
    let dir = TempDir::new("sticky-ok");
    let copy = dir.write("sticky_ok.cfg", std::fs::read(&path).unwrap());
    if let Some(result) = haproxy_check(&copy) {
        result.unwrap_or_else(|e| panic!("haproxy -c refused sticky_ok.cfg:\n{e}"));
    }
}

/// `cookie ... dynamic`: each server's value is HAProxy's (derived from
/// `dynamic-cookie-key`, its address and port), so the same configuration
/// in both proxies sets the same cookies, and a cookie one proxy set
/// brings the client to the same server through the other. A server
/// with its own `cookie` value keeps it; without a key no value exists and
/// both clear the client's cookie.
#[test]
fn dynamic_cookies_are_haproxys() {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed");
        return;
    };
    let backends = three_demo_backends();
    let lines = |key: &str| {
        let mut s = format!(
            "    balance roundrobin\n    cookie SRV insert indirect nocache dynamic\n{key}"
        );
        for (i, b) in backends.iter().enumerate() {
            let own = if i == 2 { " cookie fixed" } else { "" };
            s.push_str(&format!("    server {} {}{own}\n", b.name, b.addr));
        }
        s
    };
    let (w, h) = ([free_port(), free_port()], [free_port(), free_port()]);
    let cfg = |p: [u16; 2]| {
        format!(
            "{DEFAULTS}listen keyed\n    bind 127.0.0.1:{}\n{}listen unkeyed\n    bind 127.0.0.1:{}\n{}",
            p[0],
            lines("    dynamic-cookie-key \"mlchat-sticky-key\"\n"),
            p[1],
            lines("")
        )
    };
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let gate = Wsgate::start(&cfg(w));
    let _haproxy = Haproxy::start(
        &bin,
        &format!("global\n    maxconn 100\n{}", cfg(h)),
        &[at(h[0]), at(h[1])],
    );

    for section in 0..2 {
        let round = |p: u16| -> Vec<(String, Option<String>)> {
            (0..3)
                .map(|_| {
                    let m = get(at(p), "/health", None);
                    (served(&m), m.header("set-cookie").map(str::to_owned))
                })
                .collect()
        };
        let (ours, theirs) = (round(w[section]), round(h[section]));
        assert_eq!(ours, theirs, "section {section}\n{}", gate.log());
        if section == 0 {
            let values: Vec<String> = ours.iter().filter_map(|(_, c)| c.clone()).collect();
            assert_eq!(values.len(), 3, "{ours:?}");
            for v in &values[..2] {
                let v = v.trim_start_matches("SRV=").trim_end_matches("; path=/");
                assert!(
                    v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{v}"
                );
            }
            assert_eq!(values[2], "SRV=fixed; path=/");
            // s2's cookie, set by HAProxy, brings the client to s2 through wsgate.
            let pair = theirs[1].1.as_deref().unwrap().split(';').next().unwrap();
            for _ in 0..3 {
                assert_eq!(served(&get(at(w[0]), "/health", Some(pair))), "s2");
            }
        } else {
            assert!(
                ours[0].1.as_deref().unwrap().starts_with("SRV=; Expires="),
                "{ours:?}"
            );
        }
    }
}

/// `stick store-request` on a login only, `stick match` on every request,
/// side by side with HAProxy 2.6: a user is balanced until they log in,
/// then stays on the server that served the login for 100 requests; a
/// user who never logged in keeps being balanced.
#[test]
fn stick_match_and_store_request_pin_after_a_login() {
    let backends = three_demo_backends();
    let config = |port: u16| {
        format!(
            "{DEFAULTS}listen app\n    bind 127.0.0.1:{port}\n    balance roundrobin\n    \
             stick-table type string len 32 size 100\n    \
             stick store-request req.hdr(X-User) if {{ hdr(X-Login) -m found }}\n    \
             stick match req.hdr(X-User)\n{}",
            servers(&backends, "")
        )
    };
    balance_support::wsgate_then_haproxy(&config, &|proxy, who| {
        let ask = |user: &str, login: bool| {
            let mut headers = vec![("X-User", user)];
            if login {
                headers.push(("X-Login", "1"));
            }
            let (status, server) = served_by(proxy, None, "/health", &headers).unwrap();
            assert_eq!(status, 200, "{who}");
            server
        };
        let before: std::collections::BTreeSet<String> =
            (0..3).map(|_| ask("alice", false)).collect();
        assert_eq!(
            before.len(),
            3,
            "{who}: not stored yet, balanced: {before:?}"
        );
        let home = ask("alice", true);
        for n in 0..100 {
            assert_eq!(
                ask("alice", false),
                home,
                "{who}: request {n} after the login"
            );
        }
        let bob: std::collections::BTreeSet<String> = (0..3).map(|_| ask("bob", false)).collect();
        assert_eq!(bob.len(), 3, "{who}: bob never logged in: {bob:?}");
    });
}
