//! Stick counters through the real binary (`stick-table ... store`,
//! `http-request track-sc0`, `sc_*`/`src_*` fetches), side by side with
//! Debian's HAProxy 2.6 on the same configuration text: a per-client rate
//! limit (the corpus's `deny deny_status 429 if { sc_http_req_rate(0) gt
//! N }`), the counters `show table` prints, and a cap on open WebSockets
//! per client IP (`sc_conn_cur`), with raw HTTP/1.1 sockets bound to
//! chosen source addresses and tokio-tungstenite.
//!
//! Needs `/usr/sbin/haproxy` (installed by `.ci/run`): without it the
//! HAProxy half is skipped locally and fails under `CI`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use balance_support::{haproxy_bin, served_by, Haproxy};
use common::http::IO_DEADLINE;
use common::ws::Ws;
use common::{free_port, poll_until, skip_unless_ci, DemoBackend, Wsgate};

const DEFAULTS: &str = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n";

/// A proxy under test: its HTTP address and its runtime API.
struct Side {
    name: &'static str,
    proxy: SocketAddr,
    api: SocketAddr,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One runtime API command over TCP.
fn cli(addr: SocketAddr, command: &str) -> String {
    use std::io::{Read, Write};
    let mut s = common::http::connect(addr);
    s.set_read_timeout(Some(IO_DEADLINE)).unwrap();
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `show table <t>` with what legitimately differs masked: the entry's
/// address (HAProxy prints a pointer, wsgate a serial) and the
/// milliseconds left before expiry (checked to be within `expire`).
fn table_dump(api: SocketAddr, table: &str, expire_ms: u64) -> Vec<String> {
    let dump = cli(api, &format!("show table {table}"));
    dump.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let Some((_, rest)) = l.split_once(": key=") else {
                return l.to_owned();
            };
            let exp: u64 = rest
                .split(' ')
                .find_map(|w| w.strip_prefix("exp="))
                .unwrap_or_else(|| panic!("no exp= in {l}"))
                .parse()
                .unwrap();
            assert!(exp <= expire_ms && exp + 20_000 > expire_ms, "{l}");
            format!("ADDR: key={}", rest.replace(&format!("exp={exp}"), "exp=N"))
        })
        .collect()
}

/// Starts wsgate and, when installed, HAProxy on `config(port, api_port)`.
fn start_both(config: impl Fn(u16, u16) -> String) -> (Vec<Side>, Wsgate, Option<Haproxy>) {
    let (wp, wa) = (free_port(), free_port());
    let gate = Wsgate::start(&config(wp, wa));
    let mut sides = vec![Side {
        name: "wsgate",
        proxy: local(wp),
        api: local(wa),
    }];
    let haproxy = match haproxy_bin() {
        Some(bin) => {
            let (hp, ha) = (free_port(), free_port());
            let h = Haproxy::start(&bin, &config(hp, ha), &[local(hp), local(ha)]);
            sides.push(Side {
                name: "haproxy",
                proxy: local(hp),
                api: local(ha),
            });
            Some(h)
        }
        None => {
            skip_unless_ci("haproxy is not installed: wsgate alone");
            None
        }
    };
    for s in &sides {
        poll_until(Duration::from_secs(10), "the runtime API", || {
            common::accepts(s.api).then_some(())
        })
        .unwrap();
    }
    (sides, gate, haproxy)
}

fn rate_limit_config(backend: SocketAddr) -> impl Fn(u16, u16) -> String {
    move |port, api| {
        format!(
            "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n{DEFAULTS}\
             frontend fe\n    bind 127.0.0.1:{port}\n\
             \x20   stick-table type ip size 100k expire 5m store http_req_rate(10s),conn_cur,http_req_cnt,http_err_cnt\n\
             \x20   http-request track-sc0 src\n\
             \x20   http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 5 }}\n\
             \x20   default_backend app\n\
             backend app\n    server s1 {backend}\n"
        )
    }
}

/// The corpus's rate limit: after N requests within the window a client
/// gets 429 (denied requests count too, so it stays limited), another
/// client is unaffected; the table says the same in both proxies.
#[test]
fn a_request_rate_limit_denies_the_burst_as_haproxy_does() {
    let backend = DemoBackend::start("s1", "1h");
    let (sides, gate, _haproxy) = start_both(rate_limit_config(backend.addr));
    let a: IpAddr = [127, 0, 0, 2].into();
    let b: IpAddr = [127, 0, 0, 3].into();
    let mut seen = Vec::new();
    for s in &sides {
        let burst: Vec<u16> = (0..9)
            .map(|_| served_by(s.proxy, Some(a), "/", &[]).unwrap().0)
            .collect();
        let other = served_by(s.proxy, Some(b), "/", &[]).unwrap().0;
        seen.push((s.name, burst, other, table_dump(s.api, "fe", 300_000)));
    }
    let (_, burst, other, table) = &seen[0];
    // Requests 1..5 have a rate of 1..5; the 6th has 6 > 5.
    assert_eq!(
        burst,
        &[200, 200, 200, 200, 200, 429, 429, 429, 429],
        "{}",
        gate.log()
    );
    assert_eq!(*other, 200);
    assert_eq!(
        table,
        &[
            "# table: fe, type: ip, size:102400, used:2",
            "ADDR: key=127.0.0.2 use=0 exp=N conn_cur=0 http_req_cnt=9 http_req_rate(10000)=9 http_err_cnt=4",
            "ADDR: key=127.0.0.3 use=0 exp=N conn_cur=0 http_req_cnt=1 http_req_rate(10000)=1 http_err_cnt=0",
        ]
    );
    if let Some(theirs) = seen.get(1) {
        assert_eq!(&seen[0].1, &theirs.1, "statuses: wsgate vs haproxy");
        assert_eq!(seen[0].2, theirs.2);
        assert_eq!(seen[0].3, theirs.3, "show table: wsgate vs haproxy");
    }
}

/// Without tracking (no `track-sc0` matched) `sc_http_req_rate(0)` gives
/// no sample, so the deny never applies; `src_http_req_rate` reads the
/// table without tracking.
#[test]
fn untracked_slots_give_nothing_and_src_fetches_read_the_table() {
    let backend = DemoBackend::start("s1", "1h");
    let config = move |port: u16, api: u16| {
        format!(
            "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n{DEFAULTS}\
             frontend fe\n    bind 127.0.0.1:{port}\n\
             \x20   stick-table type ip size 1k expire 1m store http_req_rate(10s)\n\
             \x20   http-request track-sc0 src if {{ url_sub counted }}\n\
             \x20   http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 2 }}\n\
             \x20   http-request deny deny_status 403 if {{ src_http_req_rate(fe) gt 2 }}\n\
             \x20   default_backend app\n\
             backend app\n    server s1 {}\n",
            backend.addr
        )
    };
    let (sides, gate, _haproxy) = start_both(config);
    let mut seen = Vec::new();
    for s in &sides {
        let statuses: Vec<u16> = ["/?counted", "/?counted", "/", "/?counted", "/", "/"]
            .iter()
            .map(|t| served_by(s.proxy, None, t, &[]).unwrap().0)
            .collect();
        seen.push(statuses);
    }
    // `/` is never tracked: the slot check gives nothing there, and the
    // source's rate is read without counting: 2 (allowed), then 3 after
    // the third counted request, which its own slot check denied.
    assert_eq!(seen[0], [200, 200, 200, 429, 403, 403], "{}", gate.log());
    if let Some(theirs) = seen.get(1) {
        assert_eq!(&seen[0], theirs, "wsgate vs haproxy");
    }
}

/// A WebSocket handshake, from source address `src` when given: the
/// WebSocket, or the refusal's status (0: the connection was rejected
/// without a response).
async fn upgrade_status(proxy: SocketAddr, src: Option<Ipv4Addr>) -> Result<Ws, u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(src) = src {
        socket.bind(SocketAddr::from((src, 0))).unwrap();
    }
    let Ok(stream) = socket.connect(proxy).await else {
        return Err(0);
    };
    let url = format!("ws://{proxy}/ws");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let fut = tokio_tungstenite::client_async(url.as_str(), stream);
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Ok(Err(_)) => Err(0),
        Err(_) => panic!("{url} from {src:?}: no handshake within 10s"),
    }
}

/// A configuration (for [`start_both`]) with the runtime API, a frontend
/// with `table` and the `rules`, and one server.
fn frontend_with(server: SocketAddr, table: &str, rules: &[&str]) -> impl Fn(u16, u16) -> String {
    let lines: String = rules.iter().map(|r| format!("    {r}\n")).collect();
    let table = table.to_owned();
    move |port, api| {
        format!(
            "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n{DEFAULTS}\
             frontend fe\n    bind 127.0.0.1:{port}\n    {table}\n{lines}    default_backend app\n\
             backend app\n    server s1 {server}\n"
        )
    }
}

/// The WebSocket angle: tracking happens at the upgrade request, and the
/// tunnel holds the entry until it closes, so `sc_conn_cur(0)` counts a
/// client's open WebSockets. `deny if { sc_conn_cur(0) gt 2 }` caps them
/// at two per client IP, in plain HAProxy syntax.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_cur_caps_open_websockets_per_client() {
    let backend = DemoBackend::start("s1", "1h");
    let config = frontend_with(
        backend.addr,
        "stick-table type ip size 1k expire 1m store conn_cur,conn_cnt",
        &[
            "http-request track-sc0 src",
            "http-request deny deny_status 429 if { sc_conn_cur(0) gt 2 }",
        ],
    );
    let (sides, gate, _haproxy) = tokio::task::spawn_blocking(move || start_both(config))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for s in &sides {
        let first = upgrade_status(s.proxy, None)
            .await
            .expect("first WebSocket");
        let mut second = upgrade_status(s.proxy, None)
            .await
            .expect("second WebSocket");
        let third = upgrade_status(s.proxy, None).await.err();
        let api = s.api;
        let open = tokio::task::spawn_blocking(move || table_dump(api, "fe", 60_000))
            .await
            .unwrap();
        second.close(None).await.unwrap();
        drop(second);
        // The tunnel ends when the server answers the close; then the
        // entry has one user left.
        let api = s.api;
        let after = tokio::task::spawn_blocking(move || {
            poll_until(Duration::from_secs(10), "conn_cur to drop", || {
                let t = table_dump(api, "fe", 60_000);
                t[1].contains("conn_cur=1").then_some(t)
            })
            .unwrap()
        })
        .await
        .unwrap();
        let again = upgrade_status(s.proxy, None)
            .await
            .map(|_| 101)
            .unwrap_or_else(|e| e);
        drop(first);
        seen.push((third, open, after, again));
    }
    let (third, open, after, again) = &seen[0];
    assert_eq!(*third, Some(429), "{}", gate.log());
    assert_eq!(
        open[1],
        "ADDR: key=127.0.0.1 use=2 exp=N conn_cnt=3 conn_cur=2"
    );
    assert_eq!(
        after[1],
        "ADDR: key=127.0.0.1 use=1 exp=N conn_cnt=3 conn_cur=1"
    );
    assert_eq!(*again, 101, "a slot freed by a closed WebSocket is usable");
    if let Some(theirs) = seen.get(1) {
        assert_eq!(&seen[0], theirs, "wsgate vs haproxy");
    }
}

/// Two requests on one keep-alive connection from 127.0.0.5; the
/// statuses, or `None` when the proxy reset the connection.
fn two_requests_on_one_connection(proxy: SocketAddr) -> Option<(u16, u16)> {
    use std::io::Write;
    // A rejected connection may be reset before `connect` returns.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 5], 0)).into())
        .unwrap();
    socket
        .connect_timeout(&proxy.into(), Duration::from_secs(5))
        .ok()?;
    let mut reader = common::http::Reader::new(socket.into(), IO_DEADLINE);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let sent = reader
            .stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
        let response = sent.ok().and_then(|()| reader.read_response().ok())?;
        statuses.push(response.status());
    }
    Some((statuses[0], statuses[1]))
}

/// `tcp-request connection track-sc0 src` tracks the whole connection:
/// each request on it counts; `tcp-request connection reject if {
/// src_conn_rate(fe) gt 3 }` closes the fourth connection within the
/// period without a word. (The clients come from 127.0.0.5: the start-up
/// checks' connections from 127.0.0.1 are tracked too.)
#[test]
fn connection_rules_track_connections_and_reject_above_a_rate() {
    let backend = DemoBackend::start("s1", "1h");
    let config = move |port: u16, api: u16| {
        format!(
            "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n{DEFAULTS}\
             frontend fe\n    bind 127.0.0.1:{port}\n\
             \x20   stick-table type ip size 1k expire 1m store conn_cnt,conn_cur,conn_rate(10s),http_req_cnt,http_req_rate(10s)\n\
             \x20   tcp-request connection accept if {{ src 127.0.0.9 }}\n\
             \x20   tcp-request connection track-sc0 src\n\
             \x20   tcp-request connection reject if {{ src_conn_rate(fe) gt 3 }}\n\
             \x20   http-request deny deny_status 429 if {{ sc0_http_req_cnt gt 6 }}\n\
             \x20   default_backend app\n\
             backend app\n    server s1 {}\n",
            backend.addr
        )
    };
    let (sides, gate, _haproxy) = start_both(config);
    let mut seen = Vec::new();
    for s in &sides {
        let outcomes: Vec<Option<(u16, u16)>> = (0..5)
            .map(|_| two_requests_on_one_connection(s.proxy))
            .collect();
        let untracked = served_by(s.proxy, Some([127, 0, 0, 9].into()), "/", &[])
            .unwrap()
            .0;
        let table: Vec<String> = table_dump(s.api, "fe", 60_000)
            .into_iter()
            .filter(|l| l.contains("key=127.0.0.5"))
            .collect();
        seen.push((outcomes, untracked, table));
    }
    let (outcomes, untracked, table) = &seen[0];
    assert_eq!(
        outcomes,
        &[
            Some((200, 200)),
            Some((200, 200)),
            Some((200, 200)),
            None,
            None
        ],
        "{}",
        gate.log()
    );
    assert_eq!(*untracked, 200, "`accept` ends the list before tracking");
    assert_eq!(
        table,
        &["ADDR: key=127.0.0.5 use=0 exp=N conn_cnt=5 conn_rate(10000)=5 conn_cur=0 http_req_cnt=6 http_req_rate(10000)=6"]
    );
    if let Some(theirs) = seen.get(1) {
        assert_eq!(&seen[0], theirs, "wsgate vs haproxy");
    }
}

/// A reload keeps a frontend's table and its counters while the table
/// is the same (a client stays rate limited); a changed `store` list is a
/// new, empty table.
#[test]
fn a_reload_keeps_the_counters_of_an_unchanged_table() {
    let backend = DemoBackend::start("s1", "1h");
    let (port, api) = (free_port(), free_port());
    let config = rate_limit_config(backend.addr);
    let gate = Wsgate::start(&config(port, api));
    poll_until(Duration::from_secs(10), "the runtime API", || {
        common::accepts(local(api)).then_some(())
    })
    .unwrap();
    let a: IpAddr = [127, 0, 0, 2].into();
    for _ in 0..6 {
        served_by(local(port), Some(a), "/", &[]).unwrap();
    }
    let reload = |text: &str, n: usize| {
        std::fs::write(&gate.config, text).unwrap();
        gate.guard.signal(libc::SIGHUP);
        poll_until(Duration::from_secs(10), "the reload", || {
            (gate.log().matches("reloaded").count() == n).then_some(())
        })
        .unwrap();
    };
    reload(&config(port, api), 1);
    let status = served_by(local(port), Some(a), "/", &[]).unwrap().0;
    assert_eq!(
        status,
        429,
        "still limited after the reload\n{}",
        gate.log()
    );
    reload(&config(port, api).replace(",http_err_cnt", ""), 2);
    let status = served_by(local(port), Some(a), "/", &[]).unwrap().0;
    assert_eq!(status, 200, "a changed table starts empty\n{}", gate.log());
    assert_eq!(
        table_dump(local(api), "fe", 300_000)[1],
        "ADDR: key=127.0.0.2 use=0 exp=N conn_cur=0 http_req_cnt=1 http_req_rate(10000)=1"
    );
}

/// Mode tcp: `use_backend` reads the connection's counters; a client with
/// a connection already open goes to the overflow backend.
#[test]
fn mode_tcp_routing_reads_the_connection_counters() {
    let (main, overflow) = (
        DemoBackend::start("main", "1h"),
        DemoBackend::start("overflow", "1h"),
    );
    let config = move |port: u16, api: u16| {
        format!(
            "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n\
             \x20   stick-table type ip size 1k expire 1m store conn_cur\n\
             \x20   tcp-request connection track-sc0 src\n\
             \x20   use_backend spill if {{ sc0_conn_cur gt 1 }}\n\
             \x20   default_backend app\n\
             backend app\n    server s1 {}\n\
             backend spill\n    server s2 {}\n",
            main.addr, overflow.addr
        )
    };
    let (sides, gate, _haproxy) = start_both(config);
    let client: IpAddr = [127, 0, 0, 6].into();
    for s in &sides {
        assert_eq!(
            served_by(s.proxy, Some(client), "/", &[]).unwrap().1,
            "main"
        );
        let held = common::http::connect(s.proxy);
        // Wait until the held connection is counted.
        poll_until(Duration::from_secs(10), "conn_cur=1", || {
            let out = cli(s.api, "show table fe");
            out.contains("key=127.0.0.1 use=1").then_some(())
        })
        .unwrap();
        let second = served_by(s.proxy, Some([127, 0, 0, 1].into()), "/", &[]).unwrap();
        assert_eq!(second.1, "overflow", "{}: {}", s.name, gate.log());
        drop(held);
        assert_eq!(
            served_by(s.proxy, Some(client), "/", &[]).unwrap().1,
            "main",
            "{}",
            s.name
        );
    }
}

/// The abuse controls in their exact HAProxy forms, per client
/// address: `tcp-request connection track-sc0 src`, `tcp-request connection
/// reject if { sc_conn_rate(0) gt 4 }`, and `sc_conn_cur(0)` capping open
/// WebSockets at two. Three clients (127.0.0.11–13), each with its own
/// entry: two WebSockets open, the third and fourth get 429, the fifth
/// connection within the period is rejected, whatever the others do;
/// HAProxy 2.6 gives the same verdicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_address_is_capped_on_its_own() {
    let backend = DemoBackend::start("s1", "1h");
    let config = frontend_with(
        backend.addr,
        "stick-table type ip size 1k expire 1m store conn_cur,conn_rate(1m)",
        &[
            "tcp-request connection track-sc0 src",
            "tcp-request connection reject if { sc_conn_rate(0) gt 4 }",
            "http-request deny deny_status 429 if { sc_conn_cur(0) gt 2 }",
        ],
    );
    let (sides, gate, _haproxy) = tokio::task::spawn_blocking(move || start_both(config))
        .await
        .unwrap();
    let clients: Vec<Ipv4Addr> = (11..=13).map(|i| [127, 0, 0, i].into()).collect();
    let mut seen = Vec::new();
    for s in &sides {
        let mut open: Vec<Ws> = Vec::new();
        let mut outcomes = vec![Vec::new(); clients.len()];
        // Interleaved: each client's attempts between the others'.
        for _ in 0..5 {
            for (i, src) in clients.iter().enumerate() {
                let outcome = upgrade_status(s.proxy, Some(*src)).await;
                outcomes[i].push(outcome.map_or_else(
                    |status| status,
                    |ws| {
                        open.push(ws);
                        101
                    },
                ));
            }
        }
        let api = s.api;
        let table = tokio::task::spawn_blocking(move || table_dump(api, "fe", 60_000))
            .await
            .unwrap();
        seen.push((s.name, outcomes, table));
    }
    let (_, outcomes, table) = &seen[0];
    for (src, got) in clients.iter().zip(outcomes) {
        assert_eq!(got, &[101, 101, 429, 429, 0], "{src}\n{}", gate.log());
    }
    for src in &clients {
        let line = format!("ADDR: key={src} use=2 exp=N conn_rate(60000)=5 conn_cur=2");
        assert!(table.contains(&line), "{line} in {table:?}");
    }
    if let Some((_, theirs, their_table)) = seen.get(1) {
        assert_eq!(outcomes, theirs, "wsgate vs haproxy");
        assert_eq!(table, their_table, "wsgate vs haproxy");
    }
}
