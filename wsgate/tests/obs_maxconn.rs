//! `set maxconn frontend` and `set maxconn global` on the runtime API,
//! through the real binary: the answers side by side with Debian's HAProxy
//! 2.6 on the same configuration (errors, `show info`'s `Maxconn` and
//! `Hard_maxconn`, the CSV's `slim`), and the effect on real clients
//! (tokio-tungstenite): a lowered limit holds new connections until open
//! ones close, a raised one lets the waiting ones in at once, open ones
//! are never closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use common::cli;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use balance_support::{haproxy_bin, Haproxy};
use common::ws::{echo, Ws};
use common::{free_port, DemoBackend, TempDir, Wsgate};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);

/// One worker thread: the accept loop of a single thread holds the limit
/// exactly (with several, a connection may wait on a thread whose loop
/// waits for a slot while another thread has one).
fn config(port: u16, admin: &Path, user: &Path, server: SocketAddr) -> String {
    format!(
        "global\n    maxconn 500\n    nbthread 1\n    stats socket {} level admin\n    stats socket {} level user\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    maxconn 100\n    default_backend app\n\
         backend app\n    server s1 {server}\n",
        admin.display(),
        user.display()
    )
}

/// `Maxconn` and `Hard_maxconn` of `show info`.
fn info_maxconn(sock: &Path) -> Vec<String> {
    cli(sock, "show info")
        .lines()
        .filter(|l| l.starts_with("Maxconn:") || l.starts_with("Hard_maxconn:"))
        .map(str::to_owned)
        .collect()
}

/// The FRONTEND line's `slim` (7th CSV column).
fn frontend_slim(sock: &Path) -> String {
    let stat = cli(sock, "show stat");
    let line = stat
        .lines()
        .find(|l| l.starts_with("fe,FRONTEND,"))
        .unwrap_or_else(|| panic!("{stat}"));
    line.split(',').nth(6).unwrap().to_owned()
}

#[test]
fn answers_side_by_side_with_haproxy() {
    let dir = TempDir::new("maxconn");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let s1 = DemoBackend::start("s1", "0");
    let port = free_port();
    let _gate = Wsgate::start_in(dir, &config(port, &admin, &user, s1.addr));

    // Each step: a command, then what is read back.
    let script = [
        "set maxconn frontend fe 5",
        "set maxconn frontend nope 5",
        "set maxconn frontend app 5",
        "set maxconn frontend fe",
        "set maxconn frontend fe -1",
        "set maxconn frontend",
        "set maxconn global 100",
        "set maxconn global 1000",
        "set maxconn global",
        "set maxconn global 0",
        "set maxconn global 42",
        "set maxconn frontend fe 0",
    ];
    let run = |sock: &Path| -> Vec<(String, Vec<String>, String)> {
        script
            .iter()
            .map(|c| (cli(sock, c), info_maxconn(sock), frontend_slim(sock)))
            .collect()
    };
    let ours = run(&admin);
    assert_eq!(
        ours[0],
        (
            "\n".into(),
            vec!["Maxconn: 500".into(), "Hard_maxconn: 500".into()],
            "5".into()
        )
    );
    assert_eq!(ours[1].0, "No such frontend.\n\n");
    assert_eq!(ours[7].0, "Value out of range.\n\n");
    assert_eq!(ours[6].1[0], "Maxconn: 100");
    assert_eq!(ours[9].1[0], "Maxconn: 500");
    assert_eq!(ours[11].2, "0");
    // Levels: admin only.
    assert_eq!(
        cli(&user, "set maxconn frontend fe 9"),
        "Permission denied\n\n"
    );
    assert_eq!(cli(&user, "set maxconn global 9"), "Permission denied\n\n");
    // wsgate's own answers: a frontend by its `iid`, and a value that is
    // not a number (HAProxy reads it as 0).
    assert_eq!(cli(&admin, "set maxconn frontend #1 7"), "\n");
    assert_eq!(frontend_slim(&admin), "7");
    assert_eq!(
        cli(&admin, "set maxconn frontend #2 7"),
        "No such frontend.\n\n"
    );
    assert_eq!(
        cli(&admin, "set maxconn frontend fe abc"),
        "Integer value expected.\n\n"
    );
    assert_eq!(
        cli(&admin, "set maxconn global x"),
        "Expects an integer value.\n\n"
    );
    assert_eq!(
        cli(&admin, "set maxconn global -3"),
        "Value out of range.\n\n"
    );
    assert_eq!(frontend_slim(&admin), "7");

    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return;
    };
    let hdir = TempDir::new("maxconn-haproxy");
    let hadmin = hdir.path().join("admin.sock");
    let huser = hdir.path().join("user.sock");
    let hport = free_port();
    let _h = Haproxy::start(
        &bin,
        &config(hport, &hadmin, &huser, s1.addr),
        &[SocketAddr::from(([127, 0, 0, 1], hport))],
    );
    let theirs = run(&hadmin);
    for ((cmd, mine), theirs) in script.iter().zip(&ours).zip(&theirs) {
        assert_eq!(mine, theirs, "{cmd}");
    }
}

/// A WebSocket handshake to the proxy, left running.
fn open(port: u16) -> JoinHandle<Ws> {
    tokio::spawn(async move {
        let (ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
            .await
            .expect("handshake");
        assert_eq!(resp.status().as_u16(), 101);
        ws
    })
}

/// Waits for a handshake that must complete.
async fn opened(h: JoinHandle<Ws>, what: &str) -> Ws {
    let mut ws = tokio::time::timeout(DEADLINE, h)
        .await
        .unwrap_or_else(|_| panic!("{what}: no handshake"))
        .unwrap();
    common::ws::next_text(&mut ws, what).await; // the welcome
    ws
}

/// Checks that a handshake is still held back a while later.
async fn held_back(h: &mut JoinHandle<Ws>, what: &str) {
    assert!(
        tokio::time::timeout(Duration::from_millis(800), &mut *h)
            .await
            .is_err(),
        "{what}: the connection was served over the limit"
    );
}

async fn close(mut ws: Ws) {
    use futures_util::StreamExt;
    ws.close(None).await.unwrap();
    tokio::time::timeout(DEADLINE, async { while ws.next().await.is_some() {} })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowered_and_raised_limits_hold_and_release_new_connections() {
    let dir = TempDir::new("maxconn-effect");
    let admin = dir.path().join("admin.sock");
    let user = dir.path().join("user.sock");
    let s1 = DemoBackend::start("s1", "0");
    let port = free_port();
    let gate = Wsgate::start_in(dir, &config(port, &admin, &user, s1.addr));

    // Frontend: two open, limit lowered to 1. Open ones stay; new ones
    // wait until the count is under the limit (accept loops take a slot
    // only once a connection waits).
    let a = opened(open(port), "a").await;
    let mut b = opened(open(port), "b").await;
    assert_eq!(cli(&admin, "set maxconn frontend fe 1"), "\n");
    let mut c = open(port);
    held_back(&mut c, "c while a and b are open").await;
    echo(&mut b, "still open", "b").await;
    close(a).await;
    held_back(&mut c, "c while b is open").await;
    close(b).await;
    let c = opened(c, "c once a and b closed").await;
    let mut d = open(port);
    held_back(&mut d, "d while c is open").await;
    close(c).await;
    let d = opened(d, "d once c closed").await;

    // Raised: a waiting one goes in at once.
    let mut e = open(port);
    held_back(&mut e, "e over the limit of 1").await;
    assert_eq!(cli(&admin, "set maxconn frontend fe 10"), "\n");
    let e = opened(e, "e after the raise").await;

    // Global, the same process wide: d and e open, lowered to 2.
    assert_eq!(cli(&admin, "set maxconn global 2"), "\n");
    let mut g = open(port);
    held_back(&mut g, "g over the global limit").await;
    assert_eq!(cli(&admin, "set maxconn global 0"), "\n");
    let g = opened(g, "g once the global limit was restored").await;
    for ws in [d, e, g] {
        close(ws).await;
    }
    drop(gate);
}
