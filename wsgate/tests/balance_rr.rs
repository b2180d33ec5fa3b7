//! `balance roundrobin`, `static-rr` and `random` end to end (issue #4),
//! side by side with HAProxy 2.6: the exact order of servers over 20
//! requests for weights 3:1 and 5:3:2, also after `set server weight` on
//! the runtime API (a server taken out with weight 0 and put back
//! included); a server of weight 0 never chosen; `random` and `random(2)`
//! using every server of non-zero weight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use balance_support::{haproxy_bin, served_by, Haproxy};
use common::{cli, free_port, skip_unless_ci, DemoBackend, TempDir, Wsgate};

/// Backend name, `balance` line, servers (name, weight).
type Farm = (&'static str, &'static str, &'static [(&'static str, u32)]);

const FARMS: &[Farm] = &[
    ("rr31", "roundrobin", &[("a", 3), ("b", 1)]),
    ("rr532", "roundrobin", &[("a", 5), ("b", 3), ("c", 2)]),
    ("rr_zero", "roundrobin", &[("a", 1), ("b", 0), ("c", 2)]),
    ("srr31", "static-rr", &[("a", 3), ("b", 1)]),
    ("srr532", "static-rr", &[("a", 5), ("b", 3), ("c", 2)]),
    ("rnd", "random", &[("a", 1), ("b", 0), ("c", 1)]),
    ("rnd2", "random(2)", &[("a", 1), ("b", 1), ("c", 1)]),
];

fn config(port: u16, sock: &Path, servers: &BTreeMap<&str, SocketAddr>) -> String {
    let mut cfg = format!(
        "global\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n",
        sock.display()
    );
    for (name, _, _) in FARMS {
        cfg.push_str(&format!(
            "    use_backend {name} if {{ hdr(x-farm) {name} }}\n"
        ));
    }
    for (name, balance, members) in FARMS {
        cfg.push_str(&format!("backend {name}\n    balance {balance}\n"));
        for (server, weight) in *members {
            cfg.push_str(&format!(
                "    server {server} {} weight {weight}\n",
                servers[server]
            ));
        }
    }
    cfg
}

/// The servers that answered `n` requests to `farm`, in order.
fn order(proxy: SocketAddr, farm: &str, n: usize) -> String {
    (0..n)
        .map(|_| {
            let (status, server) = served_by(proxy, None, "/health", &[("X-Farm", farm)]).unwrap();
            assert_eq!(status, 200, "{farm}");
            server
        })
        .collect()
}

/// Everything compared between the proxies: the orders, and after
/// `set server rr532/a weight 1`, the next ones.
fn orders(proxy: SocketAddr, sock: &Path) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    for farm in ["rr31", "rr532", "rr_zero", "srr31", "srr532"] {
        seen.insert(farm.to_owned(), order(proxy, farm, 20));
    }
    let answer = cli(sock, "set server rr532/a weight 1");
    assert!(answer.trim().is_empty(), "set server weight: {answer:?}");
    seen.insert("rr532 after a weight 1".into(), order(proxy, "rr532", 20));
    // A server taken out (weight 0) and put back, mid-rotation.
    order(proxy, "rr31", 2);
    for (weight, n) in [(0, 6), (1, 12), (4, 15)] {
        let answer = cli(sock, &format!("set server rr31/b weight {weight}"));
        assert!(answer.trim().is_empty(), "set server weight: {answer:?}");
        seen.insert(
            format!("rr31 after b weight {weight}"),
            order(proxy, "rr31", n),
        );
    }
    seen
}

/// `random` and `random(2)`: every server of non-zero weight is used, a
/// server of weight 0 never.
fn random_is_sane(proxy: SocketAddr, who: &str) {
    let rnd = order(proxy, "rnd", 60);
    assert!(
        rnd.contains('a') && rnd.contains('c') && !rnd.contains('b'),
        "{who}: {rnd}"
    );
    let rnd2 = order(proxy, "rnd2", 60);
    assert!(
        ["a", "b", "c"].iter().all(|s| rnd2.contains(s)),
        "{who}: {rnd2}"
    );
}

#[test]
fn round_robin_orders_are_haproxys() {
    let backends: Vec<DemoBackend> = ["a", "b", "c"]
        .iter()
        .map(|n| DemoBackend::start(n, "1h"))
        .collect();
    let servers: BTreeMap<&str, SocketAddr> =
        backends.iter().map(|b| (b.name.as_str(), b.addr)).collect();
    let dir = TempDir::new("rr");

    let port = free_port();
    let sock = dir.path().join("wsgate.sock");
    let wsgate = Wsgate::start(&config(port, &sock, &servers));
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let ours = orders(proxy, &sock);
    random_is_sane(proxy, "wsgate");
    drop(wsgate);
    // What HAProxy 2.6 gave, side by side (below, when installed).
    assert_eq!(ours["rr31"], "aaabaaabaaabaaabaaab");
    assert_eq!(ours["rr532"], "abacababacabacababac");
    assert!(
        !ours["rr_zero"].contains('b'),
        "weight 0: {}",
        ours["rr_zero"]
    );

    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let ha_port = free_port();
    let ha_sock = dir.path().join("haproxy.sock");
    let ha = SocketAddr::from(([127, 0, 0, 1], ha_port));
    let _haproxy = Haproxy::start(&bin, &config(ha_port, &ha_sock, &servers), &[ha]);
    assert_eq!(
        ours,
        orders(ha, &ha_sock),
        "wsgate (left) and HAProxy 2.6 (right)"
    );
    random_is_sane(ha, "haproxy 2.6");
}
