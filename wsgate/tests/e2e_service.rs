//! Service integration through the real binary: systemd's notify protocol
//! (read by a datagram socket the test owns, as systemd would), the runtime
//! API's `reload` command, and socket activation with systemd's own
//! `systemd-socket-activate` passing the listening socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ChildGuard, TempDir};

const DEADLINE: Duration = Duration::from_secs(20);

fn config(port: u16, extra_global: &str, extra_bind: Option<u16>) -> String {
    let mut cfg = format!(
        "global\n{extra_global}\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n"
    );
    if let Some(p) = extra_bind {
        cfg.push_str(&format!("    bind 127.0.0.1:{p}\n"));
    }
    cfg.push_str("    http-request deny deny_status 403\n");
    cfg
}

/// Receives notifications until one contains `needle`; returns them all.
fn await_notification(sock: &UnixDatagram, needle: &str, seen: &mut Vec<String>) -> String {
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no notification with {needle:?}; got {seen:?}"
        );
        sock.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(msg.clone());
            if msg.contains(needle) {
                return msg;
            }
        }
    }
}

fn status_of(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(str::to_owned)
}

#[test]
fn notify_protocol_ready_reloading_stopping() {
    let dir = TempDir::new("notify");
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    let port = common::free_port();
    let cfg = dir.write("wsgate.cfg", config(port, "", None));
    let mut cmd = Command::new(common::proxy_bin());
    cmd.arg("-f").arg(&cfg).env("NOTIFY_SOCKET", &notify_path);
    let mut gate = ChildGuard::spawn(cmd, dir.path().join("wsgate.log"));
    let mut seen = Vec::new();

    let ready = await_notification(&sock, "READY=1", &mut seen);
    assert!(ready.contains("STATUS=running"), "{ready}");
    // Ready means listening: the first connection is served.
    assert_eq!(
        status_of(SocketAddr::from(([127, 0, 0, 1], port))).as_deref(),
        Some("HTTP/1.1 403 Forbidden"),
        "{}",
        gate.output()
    );

    gate.signal(libc::SIGHUP);
    let reloading = await_notification(&sock, "RELOADING=1", &mut seen);
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING=1")
        .parse()
        .unwrap();
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now_usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
    assert!(
        usec <= now_usec && now_usec - usec < 60_000_000,
        "MONOTONIC_USEC {usec} is CLOCK_MONOTONIC (now {now_usec})"
    );
    let after = await_notification(&sock, "READY=1", &mut seen);
    assert!(after.contains("last reload applied"), "{after}");

    // A broken configuration: the reload is refused, still READY.
    std::fs::write(&cfg, "frontend fe\n    bind 127.0.0.1:notaport\n").unwrap();
    gate.signal(libc::SIGUSR2);
    await_notification(&sock, "RELOADING=1", &mut seen);
    let refused = await_notification(&sock, "READY=1", &mut seen);
    assert!(refused.contains("refused"), "{refused}");

    gate.signal(libc::SIGTERM);
    await_notification(&sock, "STOPPING=1", &mut seen);
    let status = gate.wait_exit(DEADLINE).unwrap();
    assert!(status.success(), "{}", gate.output());
}

/// One runtime API exchange on a Unix socket: the whole answer.
fn cli(path: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn runtime_api_reload_reports_the_outcome() {
    let dir = TempDir::new("cli-reload");
    let admin = dir.path().join("admin.sock");
    let oper = dir.path().join("oper.sock");
    let global = format!(
        "    stats socket {} level admin\n    stats socket {} level operator\n",
        admin.display(),
        oper.display()
    );
    let port = common::free_port();
    let added = common::free_port();
    let gate = common::Wsgate::start_in(dir, &config(port, &global, None));
    common::poll_until(DEADLINE, "the stats socket", || {
        admin.exists().then_some(())
    })
    .unwrap();

    assert_eq!(cli(&oper, "reload"), "Permission denied\n\n");

    // A new bind appears through `reload`, and the answer says so.
    std::fs::write(&gate.config, config(port, &global, Some(added))).unwrap();
    let answer = cli(&admin, "reload");
    assert!(answer.starts_with("Success=1\n--\n"), "{answer}");
    assert!(answer.contains("1 added"), "{answer}");
    assert_eq!(
        status_of(SocketAddr::from(([127, 0, 0, 1], added))).as_deref(),
        Some("HTTP/1.1 403 Forbidden")
    );

    // A broken one: refused with file:line, nothing changes.
    let broken = config(port, &global, Some(added)) + "    frobnicate now\n";
    std::fs::write(&gate.config, broken).unwrap();
    let answer = cli(&admin, "reload");
    assert!(answer.starts_with("Success=0\n--\n"), "{answer}");
    assert!(answer.contains("wsgate.cfg:"), "file:line in {answer}");
    assert!(answer.contains("error"), "{answer}");
    assert_eq!(
        status_of(SocketAddr::from(([127, 0, 0, 1], added))).as_deref(),
        Some("HTTP/1.1 403 Forbidden"),
        "the running configuration stays: {}",
        gate.log()
    );
}

#[test]
fn socket_activation_uses_the_passed_socket() {
    let Some(activate) = [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists()) else {
        common::skip_unless_ci("systemd-socket-activate (Debian package systemd) is missing");
        return;
    };
    let dir = TempDir::new("activate");
    let port = common::free_port();
    let cfg = dir.write("wsgate.cfg", config(port, "", None));
    let mut cmd = Command::new(activate);
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(common::proxy_bin())
        .arg("-f")
        .arg(&cfg);
    let gate = ChildGuard::spawn(cmd, dir.path().join("wsgate.log"));
    // systemd-socket-activate starts wsgate on the first connection, which
    // waits in the passed socket's queue meanwhile.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let status = common::poll_until(DEADLINE, "an answer on the activated socket", || {
        status_of(addr)
    });
    assert_eq!(
        status.as_deref(),
        Ok("HTTP/1.1 403 Forbidden"),
        "{}",
        gate.output()
    );
    let log = common::poll_until(DEADLINE, "the activation log line", || {
        let log = gate.output();
        log.contains("socket activation: listening socket")
            .then_some(log)
    })
    .unwrap();
    assert!(!log.contains("matches no bind"), "{log}");
}

/// A free TCP port below 1024 on 127.0.0.1 (binding it needs root).
fn free_privileged_port() -> u16 {
    (900..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 900..1000")
}

/// `Uid:`/`Gid:`/`Groups:` lines of a /proc status file.
fn identity(status_path: &Path) -> (String, String, String) {
    let text = std::fs::read_to_string(status_path).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

#[test]
fn binds_a_privileged_port_then_runs_as_user_and_group() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip_unless_ci("the privilege drop test needs root");
        return;
    }
    let dir = TempDir::new("privdrop");
    let pidfile = dir.path().join("wsgate.pid");
    let port = free_privileged_port();
    let global = format!(
        "    user nobody\n    group nogroup\n    pidfile {}\n",
        pidfile.display()
    );
    let cfg = config(port, &global, None);
    // The test directory must be readable by `nobody` for reloads; the
    // check below does not need it.
    let gate = common::Wsgate::start_in(dir, &cfg);
    assert_eq!(
        status_of(SocketAddr::from(([127, 0, 0, 1], port))).as_deref(),
        Some("HTTP/1.1 403 Forbidden"),
        "{}",
        gate.log()
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, gate.guard.pid(), "the pid file names the process");

    let nobody = "65534 65534 65534 65534".to_string();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let (uid, gid, groups) = identity(&proc_dir.join("status"));
    assert_eq!(
        (uid, gid, groups),
        (nobody.clone(), nobody.clone(), String::new())
    );
    // Every thread (workers, health checks, the runtime's) changed too.
    let mut threads = 0;
    for task in std::fs::read_dir(proc_dir.join("task")).unwrap() {
        let (uid, gid, _) = identity(&task.unwrap().path().join("status"));
        assert_eq!((&uid, &gid), (&nobody, &nobody), "thread identity");
        threads += 1;
    }
    assert!(threads > 1, "wsgate runs several threads ({threads})");
}
