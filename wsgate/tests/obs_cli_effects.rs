//! What runtime API commands do to real clients, through the real binary:
//! `drain` keeps sending a server its persistent (cookie) clients but no
//! new ones, `maint` sends it nobody while its open WebSockets keep
//! working, `enable server` brings it back; `show stat json` and `show
//! servers state` (all backends) over the socket follow; `clear counters`
//! (operator) resets the maxima and `clear counters all` (admin only)
//! the totals, and an operator may `show sess`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::ws::{connect_with_cookie, echo, expected_echo};
use common::{cli, free_port, DemoBackend, TempDir, Wsgate};

/// The CSV fields of one row of `show stat`.
fn stat(sock: &Path, px: &str, sv: &str) -> std::collections::HashMap<String, String> {
    let csv = cli(sock, "show stat");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap()[2..].split(',').collect();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == px && f[1] == sv)
        .map(|f| {
            header
                .iter()
                .zip(f)
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_else(|| panic!("no {px}/{sv} in\n{csv}"))
}

struct Setup {
    admin: std::path::PathBuf,
    operator: std::path::PathBuf,
    port: u16,
    gate: Wsgate,
    _servers: [DemoBackend; 2],
}

fn start() -> Setup {
    let dir = TempDir::new("cli-effects");
    let admin = dir.path().join("admin.sock");
    let operator = dir.path().join("operator.sock");
    let s1 = DemoBackend::start("s1", "1h");
    let s2 = DemoBackend::start("s2", "1h");
    let port = free_port();
    let cfg = format!(
        "global\n    stats socket {} level admin\n    stats socket {} level operator\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
         backend app\n    cookie SRV insert indirect nocache\n    server s1 {} cookie s1\n    server s2 {} cookie s2\n\
         backend other\n    server o1 {}\n",
        admin.display(),
        operator.display(),
        s1.addr,
        s2.addr,
        s2.addr
    );
    let gate = Wsgate::start_in(dir, &cfg);
    Setup {
        admin,
        operator,
        port,
        gate,
        _servers: [s1, s2],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_maint_with_real_clients() {
    let s = start();
    let admin = s.admin.clone();
    let run = |cmd: &'static str| {
        let sock = admin.clone();
        async move {
            tokio::task::spawn_blocking(move || cli(&sock, cmd))
                .await
                .unwrap()
        }
    };
    let (mut kept, on) = connect_with_cookie(s.port, Some("s1")).await;
    assert_eq!(on, "s1");

    // drain: the persistent client still reaches s1, a new one goes to s2.
    assert_eq!(run("set server app/s1 state drain").await, "\n");
    let (_, on) = connect_with_cookie(s.port, Some("s1")).await;
    assert_eq!(on, "s1", "a drained server keeps its persistent clients");
    for _ in 0..3 {
        let (_, on) = connect_with_cookie(s.port, None).await;
        assert_eq!(on, "s2", "a drained server takes no new client");
    }

    // maint: nobody new, not even with its cookie; the open one works.
    assert_eq!(run("set server app/s1 state maint").await, "\n");
    let (_, on) = connect_with_cookie(s.port, Some("s1")).await;
    assert_eq!(on, "s2", "maintenance ignores persistence");
    let (got, _) = echo(&mut kept, "still open", "kept").await;
    assert_eq!(got, expected_echo("still open", "s1"));

    // `show stat json` over the socket: s1 in MAINT with its open tunnel.
    let json: serde_json::Value = serde_json::from_str(&run("show stat json").await).unwrap();
    let field = |sv: &str, name: &str| -> serde_json::Value {
        json.as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .filter(|f| f["objType"] == "Server")
            .filter(|f| {
                json.as_array().unwrap().iter().any(|row| {
                    row.as_array().unwrap().iter().any(|g| {
                        g["proxyId"] == f["proxyId"]
                            && g["id"] == f["id"]
                            && g["field"]["name"] == "svname"
                            && g["value"]["value"] == sv
                    })
                })
            })
            .find(|f| f["field"]["name"] == name)
            .map(|f| f["value"]["value"].clone())
            .unwrap_or_else(|| panic!("no {sv}.{name}"))
    };
    assert_eq!(field("s1", "status"), "MAINT");
    assert_eq!(field("s1", "tunnel_cur"), 1);
    assert_eq!(field("s2", "status"), "no check");

    // `show servers state` without a backend: every backend's servers,
    // s1 with admin state 1 (maintenance).
    let state = run("show servers state").await;
    let rows: Vec<Vec<&str>> = state
        .lines()
        .skip(2)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(' ').collect())
        .collect();
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r[1], r[3])).collect();
    assert_eq!(
        names,
        [("app", "s1"), ("app", "s2"), ("other", "o1")],
        "{state}"
    );
    assert_eq!(rows[0][6], "1", "s1's srv_admin_state: {state}");
    assert_eq!(rows[1][6], "0", "{state}");

    // `enable server`: s1 takes its persistent clients again.
    assert_eq!(run("enable server app/s1").await, "\n");
    let (_, on) = connect_with_cookie(s.port, Some("s1")).await;
    assert_eq!(on, "s1");
    assert_eq!(stat(&admin, "app", "s1")["status"], "no check");
    drop(s.gate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_counters_by_level() {
    let s = start();
    // Three open at once on s1 (smax 3), then two of them closed.
    let (mut held, _) = connect_with_cookie(s.port, Some("s1")).await;
    let mut brief = Vec::new();
    for _ in 0..2 {
        let (ws, on) = connect_with_cookie(s.port, Some("s1")).await;
        assert_eq!(on, "s1");
        brief.push(ws);
    }
    drop(brief);
    let (admin, operator) = (s.admin.clone(), s.operator.clone());
    let row = tokio::task::spawn_blocking(move || {
        common::poll_until(std::time::Duration::from_secs(15), "two closed", || {
            let r = stat(&admin, "app", "s1");
            (r["scur"] == "1").then_some(r)
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!((row["smax"].as_str(), row["stot"].as_str()), ("3", "3"));

    let (admin, operator2) = (s.admin.clone(), operator.clone());
    let (cleared, denied, sess, after_max, after_all) = tokio::task::spawn_blocking(move || {
        let cleared = cli(&operator2, "clear counters");
        let after_max = stat(&admin, "app", "s1");
        let denied = cli(&operator2, "clear counters all");
        let sess = cli(&operator2, "show sess");
        assert_eq!(cli(&admin, "clear counters all"), "\n");
        (cleared, denied, sess, after_max, stat(&admin, "app", "s1"))
    })
    .await
    .unwrap();
    assert_eq!(cleared, "\n", "an operator may clear the maxima");
    // The maximum restarts from what is open now; totals stay.
    assert_eq!(
        (after_max["smax"].as_str(), after_max["stot"].as_str()),
        ("1", "3")
    );
    assert_eq!(denied, "Permission denied\n\n");
    assert_eq!(
        sess.lines()
            .filter(|l| l.contains("state=websocket"))
            .count(),
        1,
        "{sess}"
    );
    // `clear counters all`: totals from zero; what is open stays counted.
    assert_eq!(
        (
            after_all["scur"].as_str(),
            after_all["smax"].as_str(),
            after_all["stot"].as_str()
        ),
        ("1", "1", "0")
    );
    let (got, _) = echo(&mut held, "after clear", "held").await;
    assert_eq!(got, expected_echo("after clear", "s1"));
}
