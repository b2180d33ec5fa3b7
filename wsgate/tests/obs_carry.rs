//! Runtime API changes carried across reloads, through the real binary:
//! `set server addr`, `set maxconn server` and `disable health` survive a
//! reload of an unchanged file (new WebSockets still reach the address
//! set at run time, `show stat` keeps the limit), and the file wins where
//! it changed the setting — a new `maxconn`, or a new address (then the
//! server starts from the file).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::cli;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::ws::{connect, echo};
use common::{free_port, DemoBackend, TempDir, Wsgate};

/// `s1`'s address and both servers' `maxconn` as in the file; `dead` is a
/// port nothing listens on, checked so that only `disable health` keeps
/// o1 up.
fn config(port: u16, admin: &Path, s1: SocketAddr, s1_max: u32, o1_max: u32, dead: u16) -> String {
    format!(
        "global\n    stats socket {} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
         backend app\n    server s1 {s1} maxconn {s1_max}\n\
         backend other\n    server o1 127.0.0.1:{dead} maxconn {o1_max} check inter 100ms fall 1 rise 1\n",
        admin.display()
    )
}

/// `show stat` as (pxname, svname) → column → value.
fn stat(sock: &Path) -> HashMap<(String, String), HashMap<String, String>> {
    let csv = cli(sock, "show stat");
    let mut lines = csv.lines();
    let cols: Vec<String> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: HashMap<String, String> = cols
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect();
            ((row["pxname"].clone(), row["svname"].clone()), row)
        })
        .collect()
}

fn field(sock: &Path, px: &str, sv: &str, col: &str) -> String {
    stat(sock)[&(px.to_owned(), sv.to_owned())][col].clone()
}

fn reload(sock: &Path, gate: &Wsgate, config: &str) {
    std::fs::write(&gate.config, config).unwrap();
    let answer = cli(sock, "reload");
    assert!(answer.contains("Success=1"), "{answer}\n{}", gate.log());
}

/// The server named in the demo backend's echo.
async fn served_by(port: u16) -> String {
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/"), None).await;
    let (reply, _) = echo(&mut ws, "who", "who").await;
    reply
        .rsplit('[')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_addr_maxconn_and_health_survive_reloads_unless_the_file_changed_them() {
    let dir = TempDir::new("carry");
    let admin = dir.path().join("admin.sock");
    let d1 = DemoBackend::start("d1", "0");
    let d2 = DemoBackend::start("d2", "0");
    let d3 = DemoBackend::start("d3", "0");
    let port = free_port();
    let dead = free_port();
    let cfg =
        |s1: SocketAddr, s1_max: u32, o1_max: u32| config(port, &admin, s1, s1_max, o1_max, dead);
    let gate = Wsgate::start_in(dir, &cfg(d1.addr, 10, 5));
    assert_eq!(served_by(port).await, "d1");

    // Run-time changes.
    let moved = cli(
        &admin,
        &format!("set server app/s1 addr 127.0.0.1 port {}", d2.addr.port()),
    );
    assert!(moved.contains("port changed from"), "{moved}");
    assert_eq!(cli(&admin, "set maxconn server app/s1 3"), "\n");
    assert_eq!(cli(&admin, "set maxconn server other/o1 4"), "\n");
    assert_eq!(cli(&admin, "disable health other/o1"), "\n");
    assert_eq!(served_by(port).await, "d2");
    assert_eq!(field(&admin, "other", "o1", "status"), "UP");

    // The same file again: everything set at run time stays.
    reload(&admin, &gate, &cfg(d1.addr, 10, 5));
    assert_eq!(served_by(port).await, "d2", "runtime address kept");
    assert_eq!(field(&admin, "app", "s1", "addr"), d2.addr.to_string());
    assert_eq!(field(&admin, "app", "s1", "slim"), "3");
    assert_eq!(field(&admin, "other", "o1", "slim"), "4");
    std::thread::sleep(Duration::from_millis(500)); // several check intervals
    assert_eq!(
        field(&admin, "other", "o1", "status"),
        "UP",
        "checks still paused"
    );

    // The file changes o1's maxconn: the file wins there only.
    reload(&admin, &gate, &cfg(d1.addr, 10, 7));
    assert_eq!(field(&admin, "other", "o1", "slim"), "7");
    assert_eq!(field(&admin, "app", "s1", "slim"), "3");
    assert_eq!(served_by(port).await, "d2");

    // The file moves s1: a new server, from the file.
    reload(&admin, &gate, &cfg(d3.addr, 10, 7));
    assert_eq!(served_by(port).await, "d3");
    assert_eq!(field(&admin, "app", "s1", "addr"), d3.addr.to_string());
    assert_eq!(field(&admin, "app", "s1", "slim"), "10");
}
