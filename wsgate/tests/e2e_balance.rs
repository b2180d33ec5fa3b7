//! Round robin over three demo backends: six WebSockets land on s1 s2 s3
//! s1 s2 s3, and each stays pinned to its server (every echo and push on
//! it names that server) while the six are used interleaved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ws, DemoBackend, Wsgate};

fn config(port: u16, backends: &[DemoBackend]) -> String {
    let servers: String = backends
        .iter()
        .map(|b| format!("    server {} {}\n", b.name, b.addr))
        .collect();
    format!(
        "\
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend fe
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
{servers}"
    )
}

/// The server a connection landed on, read from the name in its echo.
fn server_of(echo: &str) -> &str {
    echo.rsplit_once(" [")
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .unwrap_or_else(|| panic!("echo without a server name: {echo:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_websockets_round_robin_and_stay_pinned() {
    let (backends, gate, port) = tokio::task::spawn_blocking(|| {
        let backends: Vec<DemoBackend> = ["s1", "s2", "s3"]
            .iter()
            .map(|n| DemoBackend::start(n, "300ms"))
            .collect();
        let port = common::free_port();
        let gate = Wsgate::start(&config(port, &backends));
        (backends, gate, port)
    })
    .await
    .unwrap();

    let url = format!("ws://127.0.0.1:{port}/");
    let mut conns = Vec::new();
    let mut landed = Vec::new();
    for i in 0..6 {
        let mut c = ws::connect(&url, None).await;
        let (echo, _) = ws::echo(&mut c, &format!("who are you {i}"), &format!("conn {i}")).await;
        landed.push(server_of(&echo).to_string());
        conns.push(c);
    }
    assert_eq!(
        landed,
        ["s1", "s2", "s3", "s1", "s2", "s3"],
        "round robin order; wsgate log:\n{}",
        gate.log()
    );

    // Interleave: every round sends one message on each connection before
    // reading any answer, so answers from all servers are in flight at once.
    for round in 0..4 {
        for (i, c) in conns.iter_mut().enumerate() {
            ws::send(c, &format!("round {round} conn {i}")).await;
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let own = &landed[i];
            let context = format!("round {round} conn {i} (pinned to {own})");
            let text = format!("round {round} conn {i}");
            loop {
                let m = ws::next_text(c, &context).await;
                if let Some(rest) = m.strip_prefix(ws::ECHO_PREFIX) {
                    assert_eq!(m, ws::expected_echo(&text, own), "{context}: got {rest:?}");
                    break;
                }
                // A push: it must come from the pinned server only.
                assert!(m.contains(own.as_str()), "{context}: push {m:?}");
                for other in ["s1", "s2", "s3"].iter().filter(|s| *s != own) {
                    assert!(!m.contains(other), "{context}: push from {other}: {m:?}");
                }
            }
        }
    }
    drop(gate);
    drop(backends);
}
