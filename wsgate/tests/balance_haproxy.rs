//! Hash-based balancing picks the same server as HAProxy 2.6: Debian's
//! `haproxy` and wsgate run side by side on the same configuration text
//! and the same four demo backends, and for about a thousand keys per case
//! (`hdr(X-User)` values, URIs, `url_param` values, client source
//! addresses 127.0.0.x) both must name the same server, for map-based and
//! consistent hashing and each hash function. A user who migrates keeps
//! every client on the server it had.
//!
//! `hash-balance-factor` too: held WebSockets are opened one after the
//! other with skewed keys, so each choice depends on the connections
//! already open, and both proxies must still choose alike.
//!
//! Needs `/usr/sbin/haproxy` (installed by `.ci/run`): without it the test
//! is skipped locally and fails when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use balance_support::{haproxy_bin, open_websocket_with, served_by, Haproxy, HTTP_DEFAULTS};
use common::{free_port, skip_unless_ci, DemoBackend, Wsgate};

/// A request for one key: target and extra headers.
type Request = (String, Vec<(&'static str, String)>);

/// One `listen` section: a name, balancing lines, and the server lines'
/// extra options (one per demo backend).
struct Case {
    name: &'static str,
    balance: &'static str,
    server_opts: [&'static str; 4],
    /// Request for key `i`: (target, headers).
    request: fn(usize) -> Request,
    /// Source address per key (for `balance source`).
    source: bool,
    keys: usize,
}

fn hdr_user(i: usize) -> Request {
    ("/".into(), vec![("X-User", format!("user-{i}"))])
}

fn uri(i: usize) -> Request {
    (
        format!(
            "/app{}/room{}/part/{}?user=u{}&t={i}",
            i % 37,
            i % 211,
            i,
            (i * 7919) % 1000
        ),
        vec![],
    )
}

fn plain(_: usize) -> Request {
    ("/".into(), vec![])
}

fn host(i: usize) -> Request {
    ("/".into(), vec![("Host", format!("www.site{i}.com"))])
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "hdr_map_sdbm",
            balance: "balance hdr(X-User)",
            server_opts: ["weight 1", "weight 2", "weight 3", ""],
            request: hdr_user,
            source: false,
            keys: 1000,
        },
        Case {
            name: "hdr_consistent",
            balance: "balance hdr(X-User)\n    hash-type consistent",
            server_opts: ["", "weight 2", "id 7", ""],
            request: hdr_user,
            source: false,
            keys: 1000,
        },
        Case {
            name: "hdr_djb2_avalanche",
            balance: "balance hdr(X-User)\n    hash-type map-based djb2 avalanche",
            server_opts: ["weight 4", "weight 2", "weight 6", "weight 2"],
            request: hdr_user,
            source: false,
            keys: 400,
        },
        Case {
            name: "hdr_wt6_with_backup",
            balance: "balance hdr(X-User)\n    hash-type map-based wt6",
            server_opts: ["", "", "", "backup"],
            request: hdr_user,
            source: false,
            keys: 400,
        },
        Case {
            name: "uri_depth_consistent_wt6",
            balance: "balance uri depth 2\n    hash-type consistent wt6",
            server_opts: ["", "", "weight 3", ""],
            request: uri,
            source: false,
            keys: 1000,
        },
        Case {
            name: "uri_whole_len_crc32",
            balance: "balance uri whole len 24\n    hash-type map-based crc32",
            server_opts: ["", "", "", ""],
            request: uri,
            source: false,
            keys: 400,
        },
        Case {
            name: "url_param_consistent_crc32_avalanche",
            balance: "balance url_param user\n    hash-type consistent crc32 avalanche",
            server_opts: ["", "", "", "weight 2"],
            request: uri,
            source: false,
            keys: 1000,
        },
        Case {
            name: "host_domain_only",
            balance: "balance hdr(Host) use_domain_only\n    hash-type consistent djb2 avalanche",
            server_opts: ["", "", "", ""],
            request: host,
            source: false,
            keys: 300,
        },
        Case {
            name: "source_map",
            balance: "balance source",
            server_opts: ["weight 2", "", "", "weight 3"],
            request: plain,
            source: true,
            keys: 250,
        },
        Case {
            name: "source_consistent",
            balance: "balance source\n    hash-type consistent",
            server_opts: ["", "", "", ""],
            request: plain,
            source: true,
            keys: 250,
        },
    ]
}

fn config(cases: &[Case], ports: &[u16], backends: &[DemoBackend]) -> String {
    let mut cfg = String::from(HTTP_DEFAULTS);
    for (case, port) in cases.iter().zip(ports) {
        cfg.push_str(&format!(
            "\nlisten {}\n    bind 127.0.0.1:{port}\n    {}\n",
            case.name, case.balance
        ));
        for (b, opts) in backends.iter().zip(case.server_opts) {
            cfg.push_str(&format!("    server {} {} {opts}\n", b.name, b.addr));
        }
    }
    cfg
}

/// The source address for key `i`: 127.x.y.z spread over the loopback net.
fn source_of(i: usize) -> IpAddr {
    let n = (i * 2_654_435_761) % 16_000_000 + 1;
    IpAddr::V4(Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8))
}

#[test]
fn hash_choices_match_haproxy() {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    };
    let backends: Vec<DemoBackend> = (1..=4)
        .map(|i| DemoBackend::start(&format!("s{i}"), "1h"))
        .collect();
    let cases = cases();
    let ha_ports: Vec<u16> = cases.iter().map(|_| free_port()).collect();
    let ws_ports: Vec<u16> = cases.iter().map(|_| free_port()).collect();
    let ha_cfg = config(&cases, &ha_ports, &backends);
    let ws_cfg = config(&cases, &ws_ports, &backends);
    let ha_addrs: Vec<SocketAddr> = ha_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let _haproxy = Haproxy::start(&bin, &ha_cfg, &ha_addrs);
    let wsgate = Wsgate::start(&ws_cfg);

    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (c, case) in cases.iter().enumerate() {
            let (ha, ws) = (ha_addrs[c], SocketAddr::from(([127, 0, 0, 1], ws_ports[c])));
            handles.push(scope.spawn(move || {
                let mut mismatches = Vec::new();
                let mut seen = std::collections::BTreeMap::<String, usize>::new();
                for i in 0..case.keys {
                    let (target, headers) = (case.request)(i);
                    let headers: Vec<(&str, &str)> =
                        headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                    let src = case.source.then(|| source_of(i));
                    // A transient failure (a 5xx under a loaded machine) is
                    // retried: the comparison is about choices.
                    let ask = |proxy| {
                        let mut last = (0, String::new());
                        for _ in 0..3 {
                            last = served_by(proxy, src, &target, &headers).expect("request");
                            if last.0 < 500 {
                                break;
                            }
                        }
                        last
                    };
                    let (a, b) = (ask(ha), ask(ws));
                    assert!(!a.1.is_empty(), "{}: haproxy answered {} without a server", case.name, a.0);
                    assert_eq!(b.0, a.0, "{}: statuses differ for key {i}", case.name);
                    *seen.entry(a.1.clone()).or_default() += 1;
                    // A real difference in the hash repeats; ask both again
                    // once, so that a one-off (a retried connection on a
                    // loaded machine) is not counted.
                    let (a, b) = if a.1 != b.1 { (ask(ha), ask(ws)) } else { (a, b) };
                    if a.1 != b.1 {
                        mismatches.push(format!("key {i} ({target} {headers:?} {src:?}): haproxy {} wsgate {} (status {})", a.1, b.1, b.0));
                    }
                }
                (case.name, seen, mismatches)
            }));
        }
        let mut failures = Vec::new();
        for h in handles {
            let (name, seen, mismatches) = h.join().expect("case thread");
            eprintln!(
                "{name}: haproxy distribution {seen:?}, {} mismatches",
                mismatches.len()
            );
            // Every case must really spread keys, or the comparison proves little.
            assert!(
                seen.len() >= 3 || name.contains("backup"),
                "{name}: {seen:?}"
            );
            if !mismatches.is_empty() {
                failures.push(format!(
                    "{name}: {} mismatches, first: {}",
                    mismatches.len(),
                    mismatches[..mismatches.len().min(3)].join("; ")
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{}\nwsgate log:\n{}",
            failures.join("\n"),
            wsgate.log()
        );
    });
}

/// The key of the `i`-th WebSocket: one hot key a third of the time, else
/// one of seven others, so that bounded loads have work to do.
fn skewed_key(i: usize) -> String {
    if i % 3 == 0 {
        "hot".into()
    } else {
        format!("user-{}", i % 7)
    }
}

/// `hash-balance-factor`: 48 WebSockets held open one after the other
/// through each proxy; the bound on load moves keys round the ring, and
/// the sequence of servers must be HAProxy's.
#[test]
fn bounded_load_choices_match_haproxy() {
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    };
    let backends: Vec<DemoBackend> = (1..=4)
        .map(|i| DemoBackend::start(&format!("s{i}"), "1h"))
        .collect();
    let section = |name: &str, port: u16, factor: &str| {
        let mut cfg = format!(
            "\nlisten {name}\n    bind 127.0.0.1:{port}\n    balance hdr(X-User)\n    \
             hash-type consistent\n{factor}"
        );
        for (b, w) in backends.iter().zip([1, 2, 1, 1]) {
            cfg.push_str(&format!("    server {} {} weight {w}\n", b.name, b.addr));
        }
        cfg
    };
    let defaults = "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    \
                    timeout server 30s\n    timeout tunnel 1h\n";
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let bounded = "    hash-balance-factor 125\n";
    let ha_cfg = format!("{defaults}{}", section("bounded", ports[0], bounded));
    let ws_cfg = format!(
        "{defaults}{}{}",
        section("bounded", ports[1], bounded),
        section("unbounded", ports[2], "")
    );
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let _haproxy = Haproxy::start(&bin, &ha_cfg, &[addr(ports[0])]);
    let wsgate = Wsgate::start(&ws_cfg);

    let open_all = |proxy: SocketAddr| {
        let mut held = Vec::new();
        let mut names = Vec::new();
        for i in 0..48 {
            let key = skewed_key(i);
            let (ws, name) = open_websocket_with(proxy, &[("X-User", &key)])
                .unwrap_or_else(|e| panic!("websocket {i} through {proxy}: {e}"));
            held.push(ws);
            names.push(name);
        }
        (held, names)
    };
    let (_ha_held, haproxy) = open_all(addr(ports[0]));
    let (_ws_held, ours) = open_all(addr(ports[1]));
    let (_plain_held, unbounded) = open_all(addr(ports[2]));
    eprintln!("haproxy: {haproxy:?}\nwsgate:  {ours:?}");
    assert_eq!(ours, haproxy, "{}", wsgate.log());
    // The bound changed something: the hot key alone stays on one server
    // without it, and no server holds more than its share with it.
    let hot = |names: &[String]| {
        names
            .iter()
            .step_by(3)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert_eq!(hot(&unbounded), 1, "{unbounded:?}");
    assert!(hot(&ours) > 1, "{ours:?}");
    assert_ne!(ours, unbounded);
}
