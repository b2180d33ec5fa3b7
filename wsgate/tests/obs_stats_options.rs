//! Where the stats page answers, side by side with Debian's HAProxy 2.6
//! on the same configuration: the default `stats uri` (`/haproxy?stats`)
//! after a bare `stats enable`, `stats hide-version`, stats in a `listen`
//! section and in a `backend` the request was routed to; other requests
//! still reach the servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{exchange, Script, ScriptedBackend};
use common::{free_port, Wsgate};

fn config(ports: [u16; 4], server: SocketAddr) -> String {
    let [plain, hidden, both, routed] = ports;
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         frontend plain\n    bind 127.0.0.1:{plain}\n    stats enable\n    default_backend app\n\
         frontend hidden\n    bind 127.0.0.1:{hidden}\n    stats uri /st\n    stats hide-version\n    default_backend app\n\
         listen both\n    bind 127.0.0.1:{both}\n    stats uri /lst\n    server l1 {server}\n\
         frontend routed\n    bind 127.0.0.1:{routed}\n    use_backend statsbe if {{ path_beg /admin }}\n    default_backend app\n\
         backend statsbe\n    stats enable\n    stats uri /admin\n    server x {server}\n\
         backend app\n    server a1 {server}\n"
    )
}

/// What a proxy answered: the status, whether it is its stats page, and
/// whether that page shows a version.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Answer {
    status: u16,
    stats_page: bool,
    version_shown: bool,
}

fn ask(port: u16, path: &str) -> Answer {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let resp = exchange(SocketAddr::from(([127, 0, 0, 1], port)), req.as_bytes()).unwrap();
    let body = resp.body_str();
    let stats_page = body.contains("<title>Statistics Report for ");
    Answer {
        status: resp.status(),
        stats_page,
        // wsgate: "version 0.1.0 &middot;"; HAProxy: "version 2.6.12...".
        version_shown: stats_page && body.contains("version "),
    }
}

const REQUESTS: [(usize, &str); 7] = [
    (0, "/haproxy?stats"),
    (0, "/other"),
    (1, "/st"),
    (2, "/lst"),
    (3, "/admin"),
    (3, "/elsewhere"),
    (1, "/haproxy?stats"),
];

fn answers(ports: [u16; 4]) -> Vec<Answer> {
    REQUESTS
        .iter()
        .map(|(i, path)| ask(ports[*i], path))
        .collect()
}

#[test]
fn stats_page_placement_beside_haproxy() {
    let server = ScriptedBackend::start(Script::Ok);
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let gate = Wsgate::start(&config(ports, server.addr));
    let mine = answers(ports);
    let page = |version_shown| Answer {
        status: 200,
        stats_page: true,
        version_shown,
    };
    let served = Answer {
        status: 200,
        stats_page: false,
        version_shown: false,
    };
    assert_eq!(
        mine,
        [
            page(true),
            served,
            page(false),
            page(true),
            page(true),
            served,
            served,
        ],
        "{}",
        gate.log()
    );
    // Only the requests that were not for a stats page reached a server.
    let targets: Vec<String> = server
        .seen()
        .iter()
        .map(|m| m.start.split(' ').nth(1).unwrap_or("").to_owned())
        .collect();
    assert_eq!(targets, ["/other", "/elsewhere", "/haproxy?stats"]);
    // The `listen` section's page shows its own three rows.
    let req = b"GET /lst HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let body = exchange(SocketAddr::from(([127, 0, 0, 1], ports[2])), req)
        .unwrap()
        .body_str();
    for sv in ["FRONTEND", "l1", "BACKEND"] {
        assert!(
            body.contains(&format!("data-px=\"both\" data-sv=\"{sv}\"")),
            "{sv}"
        );
    }

    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let hports = [free_port(), free_port(), free_port(), free_port()];
    let addrs = hports.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let _h = Haproxy::start(&bin, &config(hports, server.addr), &addrs);
    assert_eq!(mine, answers(hports));
}
