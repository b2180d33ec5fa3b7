//! Reloads under load, as issue #6 states the bar: 2,000 open WebSockets
//! (some of them talking), a loop opening new WebSockets every few
//! milliseconds, and 20 reloads with changed configurations (a server
//! added, one removed, weights changed). Peers are tokio-tungstenite on both
//! sides; no code is shared with the proxy.
//!
//! Expected: no new WebSocket fails, no tunnel on a kept server is lost
//! (each still echoes at the end), and every tunnel on the removed server
//! gets close 1012 — a close frame, not a reset — with its server seeing
//! 1001.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use common::ws::{RecordingBackend, Ws, WS_DEADLINE};
use common::Wsgate;

const HELD: usize = 2000;
/// Of the held WebSockets, these keep sending (one message in flight each).
const TALKERS: usize = 100;
const RELOADS: usize = 20;

/// The configuration of generation `gen`: s2 is there for generations 0
/// and 1 only, s3 from 1 on, s4 on even generations from 4; s1's weight
/// changes every time.
fn config(port: u16, s: &[SocketAddr; 4], gen: usize) -> String {
    let mut cfg = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    balance roundrobin\n    server s1 {} weight {}\n",
        s[0],
        1 + gen % 3
    );
    if gen <= 1 {
        cfg.push_str(&format!("    server s2 {}\n", s[1]));
    }
    if gen >= 1 {
        cfg.push_str(&format!("    server s3 {}\n", s[2]));
    }
    if gen >= 4 && gen % 2 == 0 {
        cfg.push_str(&format!("    server s4 {}\n", s[3]));
    }
    cfg
}

/// What the connect loop saw.
#[derive(Default)]
struct LoopStats {
    ok: AtomicUsize,
    /// The connection or handshake failed.
    refused: AtomicUsize,
    /// Accepted, then anything but the echo or a close 1012.
    broken: AtomicUsize,
    /// Routed to s2 just before a reload removed it.
    closed_1012: AtomicUsize,
}

/// How one held WebSocket ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Still open at the end, and answered a last message.
    Open,
    /// A close frame with this code.
    Closed(u16),
    /// Anything else: error, EOF without a close frame, wrong echo.
    Broken(String),
}

/// Runs one held WebSocket until `done`: talkers send and check echoes in a
/// loop; the others wait. Returns the server it was on and how it ended.
async fn hold(mut ws: Ws, talker: bool, mut done: watch::Receiver<bool>) -> (String, End) {
    ws.send(Message::Text("hello".into())).await.unwrap();
    let server = match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.split(':').next().unwrap_or("").to_string(),
        other => return (String::new(), End::Broken(format!("first echo: {other:?}"))),
    };
    let mut n = 0u64;
    loop {
        if talker {
            n += 1;
            if ws
                .send(Message::Text(format!("m{n}").into()))
                .await
                .is_err()
            {
                return (server, End::Broken(format!("send m{n} failed")));
            }
        }
        let next = tokio::select! {
            m = ws.next() => m,
            _ = done.changed() => {
                // The end: one last round trip proves the tunnel is alive.
                if talker {
                    // The reply to m{n} is still due; read it first.
                    match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
                        Ok(Some(Ok(Message::Text(_)))) => {}
                        other => return (server, End::Broken(format!("last echo: {other:?}"))),
                    }
                }
                let _ = ws.send(Message::Text("bye".into())).await;
                return match tokio::time::timeout(WS_DEADLINE, ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == format!("{server}:bye") => {
                        (server, End::Open)
                    }
                    Ok(Some(Ok(Message::Close(Some(f))))) => (server, End::Closed(f.code.into())),
                    other => (server, End::Broken(format!("bye: {other:?}"))),
                };
            }
        };
        match next {
            Some(Ok(Message::Text(t))) => {
                if talker && t.as_str() != format!("{server}:m{n}") {
                    return (server, End::Broken(format!("echo {t} for m{n}")));
                }
                if talker {
                    // About 5 messages a second per talker.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Some(Ok(Message::Close(Some(f)))) => {
                let _ = ws.flush().await;
                return (server, End::Closed(f.code.into()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return (server, End::Broken(format!("{other:?}"))),
        }
    }
}

/// The open-file limit of this process raised to its hard limit: the test
/// holds both ends of 2,000 WebSockets.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load() {
    raise_fd_limit();
    let backends = [
        RecordingBackend::start(Some("s1")).await,
        RecordingBackend::start(Some("s2")).await,
        RecordingBackend::start(Some("s3")).await,
        RecordingBackend::start(Some("s4")).await,
    ];
    let addrs = [
        backends[0].addr,
        backends[1].addr,
        backends[2].addr,
        backends[3].addr,
    ];
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, &addrs, 0));
    let url = format!("ws://127.0.0.1:{port}/ws");

    // The held WebSockets, opened 50 at a time.
    let (done_tx, done_rx) = watch::channel(false);
    let mut held = Vec::with_capacity(HELD);
    let mut opened = 0;
    while opened < HELD {
        let batch: Vec<_> = (opened..(opened + 50).min(HELD))
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { common::ws::connect(&url, None).await })
            })
            .collect();
        for (i, task) in batch.into_iter().enumerate() {
            let ws = task.await.unwrap();
            let talker = opened + i < TALKERS;
            held.push(tokio::spawn(hold(ws, talker, done_rx.clone())));
        }
        opened = held.len();
    }

    // New WebSockets every few milliseconds, throughout. A handshake that
    // fails is a failure; one that lands on s2 just before a reload removes
    // it may get close 1012 instead of its echo, which is the design.
    let stop_loop = Arc::new(AtomicBool::new(false));
    let loop_stats = Arc::new(LoopStats::default());
    let connector = {
        let (stop, stats, url) = (stop_loop.clone(), loop_stats.clone(), url.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let attempt = tokio::time::timeout(WS_DEADLINE, async {
                    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await
                    else {
                        return &stats.refused;
                    };
                    if ws.send(Message::Text("x".into())).await.is_err() {
                        return &stats.broken;
                    }
                    let counter = match ws.next().await {
                        Some(Ok(Message::Text(t))) if t.ends_with(":x") => &stats.ok,
                        Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 1012 => {
                            &stats.closed_1012
                        }
                        _ => &stats.broken,
                    };
                    let _ = ws.close(None).await;
                    counter
                })
                .await;
                match attempt {
                    Ok(counter) => counter.fetch_add(1, Ordering::Relaxed),
                    Err(_) => stats.broken.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let started = Instant::now();
    for gen in 1..=RELOADS {
        std::fs::write(&gate.config, config(port, &addrs, gen)).unwrap();
        gate.guard.signal(if gen % 2 == 0 {
            libc::SIGUSR2
        } else {
            libc::SIGHUP
        });
        common::poll_until(WS_DEADLINE, "the reload", || {
            (gate.log().matches("reloaded").count() >= gen).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reloading = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_loop.store(true, Ordering::Relaxed);
    connector.await.unwrap();
    done_tx.send(true).unwrap();

    let mut on = std::collections::BTreeMap::<String, Vec<End>>::new();
    for task in held {
        let (server, end) = task.await.unwrap();
        on.entry(server).or_default().push(end);
    }
    let summary: Vec<(String, usize)> = on.iter().map(|(s, e)| (s.clone(), e.len())).collect();
    let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    let (ok, refused, broken, closed) = (
        load(&loop_stats.ok),
        load(&loop_stats.refused),
        load(&loop_stats.broken),
        load(&loop_stats.closed_1012),
    );
    eprintln!(
        "{RELOADS} reloads in {reloading:?}; held per server {summary:?}; connect loop: \
         {ok} ok, {refused} refused, {broken} broken, {closed} closed with 1012"
    );
    assert_eq!(
        (refused, broken),
        (0, 0),
        "new WebSockets failed during reloads\n{}",
        gate.log()
    );
    assert!(ok > 50, "the connect loop ran ({ok})");
    assert!(
        closed <= 5,
        "1012 only for the few that raced s2's removal ({closed})"
    );
    let s1 = on.remove("s1").unwrap_or_default();
    let s2 = on.remove("s2").unwrap_or_default();
    assert_eq!(
        s1.len() + s2.len(),
        HELD,
        "held WebSockets went to s1 and s2: {summary:?}"
    );
    assert!(s2.len() >= HELD / 3, "s2 carried a share: {summary:?}");
    let lost: Vec<&End> = s1.iter().filter(|e| **e != End::Open).collect();
    assert!(
        lost.is_empty(),
        "tunnels lost on the kept server s1: {lost:?}"
    );
    let not_1012: Vec<&End> = s2.iter().filter(|e| **e != End::Closed(1012)).collect();
    assert!(
        not_1012.is_empty(),
        "tunnels on the removed s2 without close 1012: {:?} of {}",
        &not_1012[..not_1012.len().min(5)],
        s2.len()
    );
    let seen = backends[1].closes(s2.len()).await;
    let server_1001 = seen.iter().filter(|c| **c == Some(1001)).count();
    // Each held tunnel on s2 closed with 1001 towards s2; a connect-loop
    // one that raced the removal may add one (or may have ended first).
    assert!(
        (s2.len()..=s2.len() + closed).contains(&server_1001),
        "s2 saw close 1001 on each of its tunnels: {server_1001} for {} held, {closed} raced",
        s2.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_1000_websockets_closes_each_with_1001() {
    const N: usize = 1000;
    raise_fd_limit();
    let backend = RecordingBackend::start(Some("s1")).await;
    let port = common::free_port();
    let mut gate = Wsgate::start(&format!(
        "global\n    hard-stop-after 20s\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        backend.addr
    ));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (_done_tx, done_rx) = watch::channel(false);
    let mut held = Vec::with_capacity(N);
    while held.len() < N {
        let batch: Vec<_> = (0..50)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { common::ws::connect(&url, None).await })
            })
            .collect();
        for task in batch {
            let talker = held.len() < TALKERS;
            held.push(tokio::spawn(hold(
                task.await.unwrap(),
                talker,
                done_rx.clone(),
            )));
        }
    }
    // Every WebSocket has echoed once before the stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = Instant::now();
    gate.guard.signal(libc::SIGTERM);
    let mut ends = Vec::with_capacity(N);
    for task in held {
        ends.push(task.await.unwrap().1);
    }
    let not_1001: Vec<&End> = ends.iter().filter(|e| **e != End::Closed(1001)).collect();
    assert!(
        not_1001.is_empty(),
        "clients without close 1001: {:?} of {N}",
        &not_1001[..not_1001.len().min(5)]
    );
    let seen = backend.closes(N).await;
    assert_eq!(
        seen.iter().filter(|c| **c == Some(1001)).count(),
        N,
        "the server saw 1001 on each"
    );
    let status = gate
        .guard
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));
    assert_eq!(status.code(), Some(0));
    eprintln!(
        "{N} WebSockets closed with 1001; exit 0 after {:?}",
        stopped.elapsed()
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "within hard-stop-after"
    );
}
