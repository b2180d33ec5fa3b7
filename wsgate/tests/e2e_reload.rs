//! In-process reload (SIGHUP / SIGUSR2) through the real binary, with
//! independent WebSocket peers (tokio-tungstenite on both sides):
//! WebSockets on kept servers carry on, those on a removed server get close
//! 1012 (and their server 1001), no connection is refused while reloading,
//! and a broken configuration changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{connect, next_text, RecordingBackend, Ws, WS_DEADLINE};
use common::Wsgate;

fn config(port: u16, servers: &[(&str, SocketAddr)]) -> String {
    let mut cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    balance roundrobin\n"
    );
    for (name, addr) in servers {
        cfg.push_str(&format!("    server {name} {addr}\n"));
    }
    cfg
}

/// Sends `msg` and returns the server's answer (`name:msg`).
async fn ask(ws: &mut Ws, msg: &str) -> String {
    ws.send(Message::Text(msg.into())).await.unwrap();
    next_text(ws, msg).await
}

fn wait_for_log(gate: &Wsgate, needle: &str, count: usize) {
    let deadline = Instant::now() + WS_DEADLINE;
    while gate.log().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {count}x {needle:?} in the log:\n{}",
            gate.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_kept_servers_and_closes_removed_ones_with_1012() {
    let s1 = RecordingBackend::start(Some("s1")).await.addr;
    let s2_backend = RecordingBackend::start(Some("s2")).await;
    let s2 = s2_backend.addr;
    let s3 = RecordingBackend::start(Some("s3")).await.addr;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, &[("s1", s1), ("s2", s2)]));
    let url = format!("ws://127.0.0.1:{port}/ws");

    let mut on_s1 = connect(&url, None).await;
    let mut on_s2 = connect(&url, None).await;
    assert_eq!(ask(&mut on_s1, "a").await, "s1:a");
    assert_eq!(ask(&mut on_s2, "b").await, "s2:b");

    // Connect continuously while reloading: none may be refused.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (stop, ok, refused) = (stop.clone(), ok.clone(), refused.clone());
        std::thread::spawn(move || {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while !stop.load(Ordering::Relaxed) {
                match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // s2 goes away, s3 comes in; s1 stays.
    std::fs::write(&gate.config, config(port, &[("s1", s1), ("s3", s3)])).unwrap();
    gate.guard.signal(libc::SIGHUP);
    wait_for_log(&gate, "reloaded", 1);

    // The WebSocket on the removed server is told to reconnect...
    let closed = tokio::time::timeout(WS_DEADLINE, async {
        loop {
            match on_s2.next().await {
                Some(Ok(Message::Close(Some(f)))) => return (f.code, f.reason.to_string()),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("close frame after reload");
    assert_eq!(closed.0, CloseCode::Restart, "{}", gate.log());
    assert_eq!(closed.1, "service restart");
    let _ = on_s2.flush().await;
    drop(on_s2);
    // ...its server got a 1001...
    assert_eq!(s2_backend.closes(1).await, vec![Some(1001)]);
    // ...and the one on the kept server did not notice.
    assert_eq!(ask(&mut on_s1, "c").await, "s1:c");

    // New WebSockets go to the new set only.
    for i in 0..4 {
        let mut ws = connect(&url, None).await;
        let answer = ask(&mut ws, &format!("n{i}")).await;
        assert!(
            answer.starts_with("s1:") || answer.starts_with("s3:"),
            "{answer}"
        );
    }

    // More reloads under the connect loop, alternating two configurations.
    for i in 0..10 {
        let servers: &[(&str, SocketAddr)] = if i % 2 == 0 {
            &[("s1", s1), ("s3", s3)]
        } else {
            &[("s1", s1), ("s3", s3), ("s4", s3)]
        };
        std::fs::write(&gate.config, config(port, servers)).unwrap();
        gate.guard.signal(if i % 2 == 0 {
            libc::SIGHUP
        } else {
            libc::SIGUSR2
        });
        wait_for_log(&gate, "reloaded", i + 2);
    }
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "connections refused during reloads"
    );
    assert!(ok.load(Ordering::Relaxed) > 0);
    assert_eq!(ask(&mut on_s1, "d").await, "s1:d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_reload_changes_nothing() {
    let s1 = RecordingBackend::start(Some("s1")).await.addr;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, &[("s1", s1)]));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut ws = connect(&url, None).await;
    assert_eq!(ask(&mut ws, "a").await, "s1:a");

    std::fs::write(
        &gate.config,
        config(port, &[("s1", s1)]).replace("balance roundrobin", "balance nonsense"),
    )
    .unwrap();
    gate.guard.signal(libc::SIGHUP);
    wait_for_log(&gate, "reload refused", 1);
    let log = gate.log();
    assert!(
        log.contains("wsgate.cfg:"),
        "diagnostic with file:line expected:\n{log}"
    );

    // The running configuration is intact: old and new WebSockets work.
    assert_eq!(ask(&mut ws, "b").await, "s1:b");
    let mut fresh = connect(&url, None).await;
    assert_eq!(ask(&mut fresh, "c").await, "s1:c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_a_bind_to_a_new_port() {
    let s1 = RecordingBackend::start(Some("s1")).await.addr;
    let (old_port, new_port) = (common::free_port(), common::free_port());
    let gate = Wsgate::start(&config(old_port, &[("s1", s1)]));
    let mut kept = connect(&format!("ws://127.0.0.1:{old_port}/ws"), None).await;

    std::fs::write(&gate.config, config(new_port, &[("s1", s1)])).unwrap();
    gate.guard.signal(libc::SIGHUP);
    wait_for_log(&gate, "reloaded", 1);

    let mut fresh = connect(&format!("ws://127.0.0.1:{new_port}/ws"), None).await;
    assert_eq!(ask(&mut fresh, "new").await, "s1:new");
    // The old port no longer accepts, but its established WebSocket lives.
    let deadline = Instant::now() + WS_DEADLINE;
    while common::accepts(SocketAddr::from(([127, 0, 0, 1], old_port))) {
        assert!(
            Instant::now() < deadline,
            "old bind still open\n{}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ask(&mut kept, "old").await, "s1:old");
}

/// One runtime API command on a Unix socket; the answer.
fn cli(path: &std::path::Path, line: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `show stat` as (pxname, svname) → column → value.
fn stat(
    path: &std::path::Path,
) -> std::collections::HashMap<(String, String), std::collections::HashMap<String, String>> {
    let csv = cli(path, "show stat");
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: std::collections::HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect();
            ((row["pxname"].clone(), row["svname"].clone()), row)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_server_state_counters_and_open_tunnel_counts() {
    let s1 = RecordingBackend::start(Some("s1")).await.addr;
    let s2 = RecordingBackend::start(Some("s2")).await.addr;
    let s3 = RecordingBackend::start(Some("s3")).await.addr;
    // s3's checks go to a closed port: it goes DOWN and must stay so.
    let dead = common::free_port();
    let dir = common::TempDir::new("reload-state");
    let sock = dir.path().join("admin.sock");
    let port = common::free_port();
    let cfg = |extra_bind: &str| {
        format!(
            "global\n    stats socket {} level admin\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n\
             frontend fe\n    bind 127.0.0.1:{port}\n{extra_bind}    default_backend be\n\
             backend be\n    balance leastconn\n\
             \x20   server s1 {s1}\n    server s2 {s2}\n\
             \x20   server s3 {s3} check addr 127.0.0.1 port {dead} inter 100 fall 1 rise 2\n",
            sock.display()
        )
    };
    let gate = Wsgate::start_in(dir, &cfg(""));
    common::poll_until(WS_DEADLINE, "s3 DOWN", || {
        gate.log().contains("Server be/s3 is DOWN").then_some(())
    })
    .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws");
    // leastconn: s1, s2, then a tie broken round robin; three on s1/s2.
    let mut open = Vec::new();
    for i in 0..3 {
        let mut ws = connect(&url, None).await;
        let a = ask(&mut ws, &format!("m{i}")).await;
        open.push((a[..2].to_string(), ws));
    }
    let busy = if open.iter().filter(|(s, _)| s == "s1").count() == 2 {
        "s1"
    } else {
        "s2"
    };
    let idle = if busy == "s1" { "s2" } else { "s1" };
    assert_eq!(cli(&sock, "set server be/s2 weight 7"), "\n");
    let before = stat(&sock);
    let uptime_before: u64 = cli(&sock, "show info")
        .lines()
        .find_map(|l| l.strip_prefix("Uptime_sec: "))
        .unwrap()
        .parse()
        .unwrap();

    // A reload that adds a bind and changes nothing about the servers.
    let extra = common::free_port();
    std::fs::write(&gate.config, cfg(&format!("    bind 127.0.0.1:{extra}\n"))).unwrap();
    gate.guard.signal(libc::SIGHUP);
    wait_for_log(&gate, "reloaded", 1);

    let after = stat(&sock);
    let key = |s: &str| ("be".to_string(), s.to_string());
    assert_eq!(
        after[&key("s3")]["status"],
        "DOWN",
        "health kept: {}",
        gate.log()
    );
    assert_eq!(after[&key("s2")]["weight"], "7", "runtime weight kept");
    for s in ["s1", "s2"] {
        assert_eq!(
            after[&key(s)]["stot"],
            before[&key(s)]["stot"],
            "{s}: session total kept"
        );
        assert_eq!(
            after[&key(s)]["scur"],
            before[&key(s)]["scur"],
            "{s}: open tunnels counted"
        );
    }
    assert_eq!(
        after[&key("BACKEND")]["stot"],
        before[&key("BACKEND")]["stot"]
    );
    assert_eq!(
        after[&("fe".to_string(), "FRONTEND".to_string())]["stot"],
        before[&("fe".to_string(), "FRONTEND".to_string())]["stot"],
        "frontend counters kept"
    );
    let uptime_after: u64 = cli(&sock, "show info")
        .lines()
        .find_map(|l| l.strip_prefix("Uptime_sec: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(uptime_after >= uptime_before, "uptime not reset");
    // leastconn still counts the tunnels opened before the reload: the next
    // WebSocket goes to the server with fewer, and none to the DOWN s3.
    let mut next = connect(&url, None).await;
    let a = ask(&mut next, "after").await;
    assert_eq!(&a[..2], idle, "leastconn after reload (busy: {busy})");
    for (_, ws) in &mut open {
        assert!(ask(ws, "still").await.ends_with(":still"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_delays_the_close_of_websockets_on_a_removed_server() {
    let s1 = RecordingBackend::start(Some("s1")).await.addr;
    let s2 = RecordingBackend::start(Some("s2")).await.addr;
    let port = common::free_port();
    let with = |servers: &[(&str, SocketAddr)]| {
        format!("global\n    grace 1500ms\n{}", config(port, servers))
    };
    let gate = Wsgate::start(&with(&[("s2", s2)]));
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/ws"), None).await;
    assert_eq!(ask(&mut ws, "a").await, "s2:a");

    std::fs::write(&gate.config, with(&[("s1", s1)])).unwrap();
    gate.guard.signal(libc::SIGHUP);
    wait_for_log(&gate, "reloaded", 1);
    let reloaded = Instant::now();
    // Within the grace the WebSocket on the removed server still works...
    assert_eq!(ask(&mut ws, "b").await, "s2:b");
    // ...then it gets its 1012.
    let code = tokio::time::timeout(WS_DEADLINE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return f.code,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("close frame after the grace");
    assert_eq!(code, CloseCode::Restart);
    assert!(
        reloaded.elapsed() >= Duration::from_millis(1200),
        "closed after {:?}, before the grace",
        reloaded.elapsed()
    );
}
