//! Abuse through the real binary: clients and servers that try to make
//! wsgate hold resources forever or spin. Each has a defined outcome:
//! - slowloris: a head trickled byte by byte is cut at `timeout
//!   http-request` with 408 (the timeout bounds the whole head, not the
//!   silence between bytes), and a hundred such clients do not stop others
//!   from being served;
//! - a WebSocket client that never reads while its server floods: the
//!   server is slowed down to the client's pace (it stops being able to
//!   write), wsgate's memory stays bounded, other WebSockets keep working;
//! - an endless frame (a header announcing 2^62 bytes, then a stream):
//!   with `websocket max-message-size`, 1009 to the client and 1001 to the
//!   server at once; without, the bytes go through with bounded memory;
//! - connection floods beyond `maxconn` (frontend and global): the excess
//!   waits in the kernel's queue, wsgate holds no more than the limit,
//!   other frontends are served while there is room, everyone is served
//!   again when the flood ends;
//! - file-descriptor exhaustion (RLIMIT_NOFILE 64): accept pauses instead
//!   of spinning (CPU time stays low), says so at most once a second, and
//!   serves again once descriptors are free.
//!
//! Already covered elsewhere, not repeated here: one slow head → 408
//! (e2e_errors.rs `slow_request_head_gets_408`), oversized heads → 431 and
//! framing violations → 400 (e2e_errors.rs, e2e_smuggling.rs), messages
//! over `max-message-size` from a real client → 1009 (e2e_websocket.rs),
//! message rates → 1008 (e2e_ws_edge.rs).
//!
//! Memory and CPU are read from /proc (VmRSS, utime + stime) with bounds a
//! real bug would blow through tenfold; nothing here measures speed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use common::http::{self, Reader, Script, ScriptedBackend};
use common::ws::{connect, next_text, RecordingBackend, WS_DEADLINE};
use common::{poll_until, ChildGuard, TempDir, Wsgate};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// A WebSocket upgrade request for `path`.
fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn config(port: u16, global: &str, defaults: &str, frontend: &str, server: SocketAddr) -> String {
    format!(
        "global\n{global}\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 1h\n{defaults}\
         frontend fe\n    bind 127.0.0.1:{port}\n{frontend}    default_backend be\n\
         backend be\n    server s1 {server}\n"
    )
}

// ---------------------------------------------------------------- /proc

/// Resident memory of `pid` in bytes (VmRSS).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    kb * 1024
}

/// CPU time (user + system) `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is 3rd,
    // utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis((fields[0] + fields[1]) * 1000 / ticks)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Connections `pid` has accepted on local `port` and still holds: its
/// socket descriptors whose inode /proc/net/tcp lists as an established
/// connection to that port. (Connections still in the kernel's accept
/// queue are established too, but belong to no process yet.)
fn held_connections(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 9
                && f[1].ends_with(&local)
                && f[3] == "01"
                && inodes.iter().any(|i| i == f[9])
        })
        .count()
}

fn alive(gate: &mut ChildGuard) -> bool {
    matches!(gate.child.try_wait(), Ok(None))
}

// ---------------------------------------------------------------- slowloris

/// What one slowloris client saw: the status of the answer to its trickled
/// head and how long after its first byte it came.
fn trickle(addr: SocketAddr, head: &[u8], every: Duration) -> io::Result<(u16, Duration)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nonblocking(true)?;
    let start = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    for byte in head {
        // Read first: once wsgate answers, stop writing (a write after its
        // close would be answered with a reset).
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&chunk[..n]);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        s.write_all(std::slice::from_ref(byte))?;
        std::thread::sleep(every);
    }
    let elapsed = start.elapsed();
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    while http::find(&got, b"\r\n").is_none() {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&got);
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line in {line:?}")))?;
    Ok((status, elapsed))
}

#[test]
fn trickled_heads_get_408_at_timeout_http_request_and_others_are_served() {
    let backend = ScriptedBackend::start(Script::Ok);
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        "",
        "    timeout http-request 1s\n",
        "",
        backend.addr,
    ));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // 300 bytes at one every 100 ms: 30 s to send, were the timeout
    // reset by every byte.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: test\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(260)
    );
    let slow: Vec<_> = (0..100)
        .map(|_| {
            let head = head.clone().into_bytes();
            std::thread::spawn(move || trickle(addr, &head, Duration::from_millis(100)))
        })
        .collect();
    // Meanwhile, others are served.
    for _ in 0..5 {
        assert_eq!(http::status_of(addr, GET, &gate.log()), 200);
    }
    for t in slow {
        let (status, elapsed) = t
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("slowloris client: {e}\n{}", gate.log()));
        assert_eq!(status, 408, "{}", gate.log());
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
            "408 after {elapsed:?}: `timeout http-request 1s` must bound the whole head"
        );
    }
    assert_eq!(
        backend.seen().len(),
        5,
        "only the normal requests reach the server"
    );
    assert_eq!(http::status_of(addr, GET, &gate.log()), 200);
}

// ---------------------------------------------------------------- slow reader

/// A WebSocket backend: on `/flood`, sends 64 kB binary messages as fast
/// as the connection takes them (counting the bytes), on any other path
/// echoes text.
// The handshake callback's error type is tungstenite's (a whole response).
#[allow(clippy::result_large_err)]
async fn flood_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let total = sent.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let total = total.clone();
            tokio::spawn(async move {
                let mut flood = false;
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        flood = req.uri().path() == "/flood";
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                if flood {
                    let message = vec![0x5a; 64 * 1024];
                    while ws.send(Message::binary(message.clone())).await.is_ok() {
                        total.fetch_add(message.len() as u64, Ordering::SeqCst);
                    }
                    return;
                }
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let _ = ws.send(Message::Text(t)).await;
                    }
                }
            });
        }
    });
    (addr, sent)
}

/// Polls `counter` until it has stopped growing for a second; returns its
/// value then.
async fn stalled(counter: &AtomicU64, what: &str) -> u64 {
    let end = Instant::now() + Duration::from_secs(60);
    let mut last = (counter.load(Ordering::SeqCst), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counter.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(1) && now > 0 {
            return now;
        }
        assert!(
            Instant::now() < end,
            "{what}: still growing after 60 s ({now} bytes): nothing holds it back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_slow_their_server_down_and_memory_stays_bounded() {
    let (backend, sent) = flood_backend().await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, "", "", "", backend));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pid = gate.guard.pid();
    // A WebSocket round trip first, so that what the proxy allocates once
    // is in the baseline.
    let mut ws = connect(&format!("ws://127.0.0.1:{port}/echo"), None).await;
    ws.send(Message::text("warm")).await.unwrap();
    assert_eq!(next_text(&mut ws, "warm-up").await, "warm");
    let before = rss(pid);

    // Four clients that upgrade and then never read a byte.
    let mut deaf = Vec::new();
    for _ in 0..4 {
        let mut s = http::connect(addr);
        s.write_all(upgrade_request("/flood").as_bytes()).unwrap();
        deaf.push(s);
    }
    let pushed = stalled(&sent, "bytes the flooding server could write").await;
    let after = rss(pid);
    let grown = after.saturating_sub(before);
    eprintln!(
        "slow readers: server pushed {pushed} bytes before stalling; wsgate RSS {before} → {after}"
    );
    // What the kernel buffers on the way (socket buffers of both hops)
    // is a few MB per client; wsgate's own share is a copy buffer each.
    assert!(
        grown < 32 << 20,
        "wsgate's RSS grew by {grown} bytes ({before} → {after}) while the server pushed {pushed} bytes to clients that do not read\n{}",
        gate.log()
    );
    assert!(
        pushed < 256 << 20,
        "the server could push {pushed} bytes to four clients that read nothing"
    );
    // Other WebSockets are served meanwhile.
    ws.send(Message::text("still there?")).await.unwrap();
    assert_eq!(next_text(&mut ws, "beside the flood").await, "still there?");
    let mut other = connect(&format!("ws://127.0.0.1:{port}/echo"), None).await;
    other.send(Message::text("new")).await.unwrap();
    assert_eq!(next_text(&mut other, "new client").await, "new");
    drop(deaf);
}

// ---------------------------------------------------------------- endless frame

/// The header of a masked binary frame announcing 2^62 payload bytes.
fn endless_frame_header() -> Vec<u8> {
    let mut h = vec![0x82, 0x80 | 127];
    h.extend_from_slice(&(1u64 << 62).to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]); // mask key: payload as sent
    h
}

/// Streams zeros on `s` until `stop`, an error, or `limit` bytes; returns
/// how many were written. A write blocked for a minute is an error.
fn stream_zeros(mut s: TcpStream, stop: &AtomicBool, limit: u64) -> u64 {
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < limit && !stop.load(Ordering::SeqCst) {
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    sent
}

/// Reads one WebSocket frame (unmasked, as a server sends it): opcode and
/// payload.
fn read_frame(r: &mut Reader<TcpStream>) -> (u8, Vec<u8>) {
    r.stream.set_read_timeout(Some(WS_DEADLINE)).unwrap();
    let need = |n: usize, r: &mut Reader<TcpStream>| -> Vec<u8> {
        while r.buf.len() < n {
            let mut chunk = [0u8; 4096];
            let got = r.stream.read(&mut chunk).unwrap();
            assert!(got > 0, "EOF before a whole frame: {:?}", r.buf);
            r.buf.extend_from_slice(&chunk[..got]);
        }
        r.buf.drain(..n).collect()
    };
    let h = need(2, r);
    assert!(
        h[1] & 0x80 == 0 && h[1] & 0x7f < 126,
        "unexpected frame header {h:?}"
    );
    let payload = need(usize::from(h[1]), r);
    (h[0] & 0x0f, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_frame_over_max_message_size_is_closed_with_1009_at_once() {
    let be = RecordingBackend::start(None).await;
    let port = common::free_port();
    let gate = Wsgate::start(&config(
        port,
        "",
        "",
        "    websocket max-message-size 1m\n",
        be.addr,
    ));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = gate.log();
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = http::connect(addr);
        s.write_all(upgrade_request("/").as_bytes()).unwrap();
        let mut reader = Reader::new(s.try_clone().unwrap(), WS_DEADLINE);
        let head = reader.read_head().unwrap().unwrap();
        assert_eq!(head.status(), 101, "{log}");
        s.write_all(&endless_frame_header()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (s, stop) = (s.try_clone().unwrap(), stop.clone());
            std::thread::spawn(move || stream_zeros(s, &stop, u64::MAX))
        };
        let (opcode, payload) = read_frame(&mut reader);
        stop.store(true, Ordering::SeqCst);
        let streamed = writer.join().unwrap();
        (opcode, payload, streamed)
    })
    .await
    .unwrap();
    let (opcode, payload, streamed) = closed;
    eprintln!("endless frame over the limit: the client wrote {streamed} bytes before the close");
    assert_eq!(opcode, 8, "a close frame");
    assert_eq!(
        u16::from_be_bytes([payload[0], payload[1]]),
        1009,
        "{}",
        gate.log()
    );
    // The header alone decides: wsgate does not wait for the limit's worth
    // of payload (what the client got to write is socket buffers).
    assert!(
        streamed < 512 << 20,
        "the client could stream {streamed} bytes"
    );
    assert_eq!(be.closes(1).await, vec![Some(1001)], "{}", gate.log());
}

/// A WebSocket server that answers the upgrade, then reads and counts
/// everything (frames or not) until the peer closes.
fn counting_ws_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let total = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let total = total.clone();
            std::thread::spawn(move || {
                let mut reader = Reader::new(conn, Duration::from_secs(120));
                let Ok(Some(_)) = reader.read_head() else {
                    return;
                };
                total.fetch_add(reader.buf.len() as u64, Ordering::SeqCst);
                let mut s = reader.stream;
                let _ = s.set_read_timeout(None);
                let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                if s.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                let mut chunk = vec![0u8; 256 * 1024];
                while let Ok(n @ 1..) = s.read(&mut chunk) {
                    total.fetch_add(n as u64, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, count)
}

#[test]
fn an_endless_frame_without_limits_goes_through_with_bounded_memory() {
    let (backend, received) = counting_ws_backend();
    let port = common::free_port();
    let gate = Wsgate::start(&config(port, "", "", "", backend));
    let pid = gate.guard.pid();
    let mut s = http::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    s.write_all(upgrade_request("/").as_bytes()).unwrap();
    let mut reader = Reader::new(s.try_clone().unwrap(), WS_DEADLINE);
    assert_eq!(reader.read_head().unwrap().unwrap().status(), 101);
    let before = rss(pid);

    const PAYLOAD: u64 = 320 << 20;
    let header = endless_frame_header();
    s.write_all(&header).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::SeqCst) {
                peak = peak.max(rss(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let streamed = stream_zeros(s.try_clone().unwrap(), &AtomicBool::new(false), PAYLOAD);
    assert_eq!(
        streamed,
        PAYLOAD,
        "wsgate stopped taking the frame\n{}",
        gate.log()
    );
    let want = PAYLOAD + header.len() as u64;
    let arrived = poll_until(
        Duration::from_secs(60),
        "the frame's bytes at the server",
        || (received.load(Ordering::SeqCst) >= want).then_some(()),
    );
    done.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    arrived.unwrap_or_else(|e| {
        panic!(
            "{e}: {} of {want} bytes\n{}",
            received.load(Ordering::SeqCst),
            gate.log()
        )
    });
    assert_eq!(received.load(Ordering::SeqCst), want, "every byte, once");
    let grown = peak.saturating_sub(before);
    eprintln!("endless frame: {PAYLOAD} bytes relayed; wsgate RSS {before} → peak {peak}");
    assert!(
        grown < 32 << 20,
        "wsgate's RSS grew by {grown} bytes (peak {peak}) relaying {PAYLOAD} bytes of one frame"
    );
}

// ---------------------------------------------------------------- maxconn

/// Opens `n` connections that send nothing.
fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| http::connect(addr)).collect()
}

#[test]
fn a_flood_beyond_maxconn_waits_in_the_queue_and_everyone_is_served_after() {
    let backend = ScriptedBackend::start(Script::Ok);
    let (pa, pb) = (common::free_port(), common::free_port());
    let cfg = format!(
        "global\n    maxconn 30\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 30s\n    timeout http-request 60s\n\
         frontend a\n    bind 127.0.0.1:{pa}\n    maxconn 10\n    default_backend be\n\
         frontend b\n    bind 127.0.0.1:{pb}\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        backend.addr
    );
    let mut gate = Wsgate::start(&cfg);
    let pid = gate.guard.pid();
    let (a, b) = (
        SocketAddr::from(([127, 0, 0, 1], pa)),
        SocketAddr::from(([127, 0, 0, 1], pb)),
    );
    let held = |port| held_connections(pid, port);

    // Frontend a's limit: ten held, the rest queued by the kernel.
    let flood_a = flood(a, 40);
    poll_until(Duration::from_secs(15), "10 connections held on a", || {
        (held(pa) == 10).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {} held\n{}", held(pa), gate.log()));
    // A client of a waits its turn with its request sent.
    let mut waiting = http::connect(a);
    waiting.write_all(GET).unwrap();
    // b has room: served at once.
    assert_eq!(http::status_of(b, GET, &gate.log()), 200);
    assert!(held(pa) <= 10, "{} held on a", held(pa));

    // The global limit: 30 in all.
    let flood_b = flood(b, 40);
    poll_until(
        Duration::from_secs(15),
        "30 connections held in all",
        || (held(pa) + held(pb) == 30).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {} + {} held\n{}", held(pa), held(pb), gate.log()));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(held(pa), 10);
    assert_eq!(held(pa) + held(pb), 30);
    assert!(alive(&mut gate.guard));

    // The flood ends: the waiting client is served, and new ones too.
    drop(flood_a);
    drop(flood_b);
    let resp = Reader::new(waiting, http::IO_DEADLINE)
        .read_response()
        .unwrap_or_else(|e| panic!("the waiting client: {e}\n{}", gate.log()));
    assert_eq!(resp.status(), 200);
    for addr in [a, b] {
        assert_eq!(http::status_of(addr, GET, &gate.log()), 200);
    }
    assert!(alive(&mut gate.guard));
}

// ---------------------------------------------------------------- EMFILE

/// Starts wsgate with at most `fds` open files (soft and hard: it raises
/// the soft limit to the hard one at start).
fn start_with_fd_limit(config: &str, fds: u64) -> Wsgate {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("emfile");
    let path = dir.write("wsgate.cfg", config);
    let mut cmd = Command::new(common::proxy_bin());
    cmd.arg("-f").arg(&path).current_dir(dir.path());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: fds,
                rlim_max: fds,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut guard = ChildGuard::spawn(cmd, dir.path().join("wsgate.log"));
    let addrs = common::bind_addrs(config);
    poll_until(common::START_DEADLINE, "wsgate to listen", || {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("wsgate exited ({status}):\n{}", guard.output());
        }
        addrs.iter().all(|a| common::accepts(*a)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", guard.output()));
    Wsgate {
        guard,
        dir,
        config: path,
    }
}

#[test]
fn out_of_file_descriptors_accept_pauses_logs_once_a_second_and_recovers() {
    let backend = ScriptedBackend::start(Script::Ok);
    let port = common::free_port();
    let gate = start_with_fd_limit(
        &config(
            port,
            // More connections allowed than descriptors: EMFILE comes first.
            "    maxconn 1000\n    nbthread 1\n",
            "    timeout http-request 60s\n",
            "",
            backend.addr,
        ),
        64,
    );
    let mut gate = gate;
    let pid = gate.guard.pid();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(http::status_of(addr, GET, &gate.log()), 200);

    let idle = flood(addr, 100);
    poll_until(
        Duration::from_secs(15),
        "an accept failure in the log",
        || (accept_warnings(&gate.log()) > 0).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}; {} fds open\n{}", open_fds(pid), gate.log()));
    let fds = open_fds(pid);
    assert!(fds >= 60, "only {fds} descriptors open at EMFILE");

    let (cpu0, lines0) = (cpu_time(pid), accept_warnings(&gate.log()));
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let (cpu, lines) = (cpu_time(pid) - cpu0, accept_warnings(&gate.log()) - lines0);
    let seconds = window.elapsed().as_secs_f64();
    eprintln!("EMFILE: {fds} fds open; in {seconds:.2} s: {cpu:?} CPU, {lines} accept warnings");
    assert!(
        cpu < Duration::from_millis(500),
        "wsgate used {cpu:?} of CPU in {seconds:.1} s out of descriptors: accept spins"
    );
    assert!(
        lines as f64 <= seconds + 1.0,
        "{lines} accept warnings in {seconds:.1} s\n{}",
        gate.log()
    );
    assert!(alive(&mut gate.guard));

    // Descriptors come back: served again.
    drop(idle);
    poll_until(Duration::from_secs(15), "a 200 after the flood", || {
        http::exchange(addr, GET).ok().filter(|m| m.status() == 200)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gate.log()));
    assert!(alive(&mut gate.guard));
}

/// Log lines about accept failing for want of descriptors (EMFILE).
fn accept_warnings(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("accept") && l.contains("os error 24"))
        .count()
}
