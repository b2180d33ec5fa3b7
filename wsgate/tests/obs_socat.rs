//! The runtime API as HAProxy users script it, through `socat`, side by
//! side with Debian's HAProxy 2.6 on the same configuration: `echo "show
//! stat" | socat stdio unix-connect:<sock>`, a `;`-separated line, an
//! interactive `prompt` session (socat with its stdin kept open), `socat
//! stdio tcp:` on a `stats socket ipv4@` socket, `show stat typed` and the
//! `show stat <iid> <type> <sid>` filters; and malformed lines (too long,
//! binary, without a newline, empty) answered as HAProxy answers them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use balance_support::{haproxy_bin, Haproxy};
use common::http::{Script, ScriptedBackend};
use common::{free_port, poll_until, TempDir, Wsgate};

const DEADLINE: Duration = Duration::from_secs(20);

/// One proxy per kind of row: a frontend with its backend (two servers,
/// the checked one down) and a `listen` section in `mode tcp`.
fn config(sock: &Path, tcp_cli: u16, port: u16, tcp_port: u16, up: SocketAddr) -> String {
    format!(
        "global\n    stats socket {} level admin\n    stats socket ipv4@127.0.0.1:{tcp_cli} level admin\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    default_backend app\n\
         backend app\n    server s1 127.0.0.1:1 check inter 300ms weight 2 maxconn 5 maxqueue 3\n    server s2 {up} backup\n\
         listen tc\n    mode tcp\n    bind 127.0.0.1:{tcp_port}\n    server t1 {up}\n",
        sock.display()
    )
}

/// A proxy (wsgate or HAProxy) running [`config`].
struct Side {
    sock: PathBuf,
    tcp_cli: SocketAddr,
    _proc: Box<dyn std::any::Any>,
    _dir: TempDir,
}

fn wsgate_side(up: SocketAddr) -> Side {
    let dir = TempDir::new("socat-wsgate");
    let sock = dir.path().join("admin.sock");
    let (tcp_cli, port, tcp_port) = (free_port(), free_port(), free_port());
    let gate = Wsgate::start(&config(&sock, tcp_cli, port, tcp_port, up));
    Side {
        sock,
        tcp_cli: SocketAddr::from(([127, 0, 0, 1], tcp_cli)),
        _proc: Box::new(gate),
        _dir: dir,
    }
}

fn haproxy_side(up: SocketAddr) -> Option<Side> {
    let Some(bin) = haproxy_bin() else {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
        return None;
    };
    let dir = TempDir::new("socat-haproxy");
    let sock = dir.path().join("admin.sock");
    let (tcp_cli, port, tcp_port) = (free_port(), free_port(), free_port());
    let addrs = [port, tcp_port, tcp_cli].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let h = Haproxy::start(&bin, &config(&sock, tcp_cli, port, tcp_port, up), &addrs);
    Some(Side {
        sock,
        tcp_cli: addrs[2],
        _proc: Box::new(h),
        _dir: dir,
    })
}

fn socat_installed() -> bool {
    let ok = Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::skip_unless_ci("socat is not installed");
    }
    ok
}

/// `echo "<input>" | socat stdio <address>`: socat's output. `-t 10`
/// lets a slow debug build answer after socat's stdin ends.
fn socat(address: &str, input: &str) -> String {
    let mut child = Command::new("socat")
        .args(["-t", "10", "stdio", address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn socat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{input}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "socat {address}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn unix(sock: &Path) -> String {
    format!("unix-connect:{}", sock.display())
}

/// An interactive session: socat with its stdin kept open, one line at a
/// time, each answer read up to its `> ` prompt; the whole transcript.
fn interactive(address: &str, lines: &[&str]) -> String {
    let mut child = Command::new("socat")
        .args(["stdio", address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn socat");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    for line in lines {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        let end = Instant::now() + DEADLINE;
        // Until this answer's prompt (or the end of the session).
        let answered_from = transcript.len();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => transcript.extend_from_slice(&chunk),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no prompt after {line:?}: {:?}",
                    String::from_utf8_lossy(&transcript)
                ),
            }
            if transcript[answered_from..].ends_with(b"> ") {
                break;
            }
        }
    }
    drop(stdin);
    // Whatever is still on its way (a prompt read early above, or the
    // end of the stream).
    while let Ok(chunk) = rx.recv_timeout(DEADLINE) {
        transcript.extend_from_slice(&chunk);
    }
    let _ = child.wait();
    String::from_utf8(transcript).unwrap()
}

/// `show stat typed` lines by object: (letter, proxy name, sid) → field
/// position → (name, tags, type, value). Proxies are named, not numbered:
/// HAProxy counts its internal CLI proxy first.
type Typed = BTreeMap<(String, String, String), BTreeMap<u32, (String, String, String, String)>>;

fn parse_typed(text: &str) -> Typed {
    let mut by_id: BTreeMap<(String, String, String), BTreeMap<u32, _>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(4, ':');
        let (head, tags, ty, value) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts
                .next()
                .unwrap_or_else(|| panic!("not a typed line: {line:?}")),
        );
        let h: Vec<&str> = head.split('.').collect();
        assert_eq!(h.len(), 6, "{line}");
        assert_eq!(h[5], "1", "process number: {line}");
        let id = (h[0].to_owned(), h[1].to_owned(), h[2].to_owned());
        let field = (
            h[4].to_owned(),
            tags.to_owned(),
            ty.to_owned(),
            value.to_owned(),
        );
        by_id
            .entry(id)
            .or_default()
            .insert(h[3].parse().unwrap(), field);
    }
    by_id
        .into_iter()
        .map(|((letter, _, sid), fields)| {
            let px = fields[&0].3.clone();
            ((letter, px, sid), fields)
        })
        .collect()
}

/// The (pxname, svname) of each CSV line of a `show stat` answer.
fn csv_rows(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
        })
        .collect()
}

/// Waits until the checked server is down on a side (HAProxy and wsgate
/// both start it up and need `fall` failed checks).
fn wait_s1_down(side: &Side) {
    poll_until(DEADLINE, "app/s1 to go DOWN", || {
        socat(&unix(&side.sock), "show stat app 4 1")
            .contains(",DOWN,")
            .then_some(())
    })
    .unwrap();
}

#[test]
fn socat_scripts_answer_as_haproxy() {
    if !socat_installed() {
        return;
    }
    let up = ScriptedBackend::start(Script::Ok);
    let ours = wsgate_side(up.addr);
    let Some(theirs) = haproxy_side(up.addr) else {
        return;
    };
    wait_s1_down(&ours);
    wait_s1_down(&theirs);

    // `echo "show stat" | socat stdio unix-connect:...`: HAProxy's columns
    // in HAProxy's order, then wsgate's own.
    let csv = socat(&unix(&ours.sock), "show stat");
    let their_csv = socat(&unix(&theirs.sock), "show stat");
    let header = csv.lines().next().unwrap();
    let their_header = their_csv.lines().next().unwrap();
    assert!(header.starts_with(their_header), "{header}\n{their_header}");
    assert!(header[their_header.len()..].starts_with("tunnel_cur,"));
    assert_eq!(csv_rows(&csv), csv_rows(&their_csv));
    assert!(csv.ends_with(",\n\n"), "{csv:?}");

    // Answers claimed identical, over both kinds of socket and in one
    // `;`-separated line.
    for side in [&ours, &theirs] {
        let tcp = format!("tcp:{}", side.tcp_cli);
        assert_eq!(socat(&tcp, "show backend"), "# name\napp\ntc\n\n");
        assert_eq!(
            socat(&unix(&side.sock), "show backend;get weight app/s1"),
            "# name\napp\ntc\n\n2 (initial 2)\n\n"
        );
    }

    // Lines sent together are all answered before the connection closes.
    for side in [&ours, &theirs] {
        assert_eq!(
            socat(&unix(&side.sock), "show backend\nget weight app/s1"),
            "# name\napp\ntc\n\n2 (initial 2)\n\n"
        );
    }

    // Interactive: `prompt` answers an empty line and a prompt, every
    // command of a line gets its own prompt, `quit` ends the session.
    let session = [
        "prompt",
        "show backend",
        "get weight app/s1;show backend",
        "set weight app/s1 3",
        "get weight app/s1",
        "quit",
    ];
    let transcript = interactive(&unix(&ours.sock), &session);
    assert_eq!(
        transcript,
        "\n> # name\napp\ntc\n\n> 2 (initial 2)\n\n> # name\napp\ntc\n\n> \n> 3 (initial 2)\n\n> "
    );
    assert_eq!(transcript, interactive(&unix(&theirs.sock), &session));
    let over_tcp = interactive(
        &format!("tcp:{}", ours.tcp_cli),
        &["prompt", "show backend", "quit"],
    );
    assert_eq!(over_tcp, "\n> # name\napp\ntc\n\n> ");

    // `show stat typed`: every field wsgate shows in HAProxy's columns has
    // HAProxy's name, tags and type on the same object; names, keys,
    // configuration and states have its values too.
    let typed = parse_typed(&socat(&unix(&ours.sock), "show stat typed"));
    let their_typed = parse_typed(&socat(&unix(&theirs.sock), "show stat typed"));
    assert_eq!(
        typed.keys().collect::<Vec<_>>(),
        their_typed.keys().collect::<Vec<_>>()
    );
    let mut compared = 0;
    for (object, fields) in &typed {
        for (pos, (name, tags, ty, value)) in fields {
            if *pos >= 128 {
                assert!(name.starts_with("tunnel_") || name.starts_with("ws_"));
                continue;
            }
            let Some((n, t, y, v)) = their_typed[object].get(pos) else {
                // The one figure wsgate shows where HAProxy has none: a
                // backend's requests answered by wsgate itself (stats
                // lines in the backend, `;csv` documents it).
                if object.0 == "B" && name == "intercepted" {
                    continue;
                }
                panic!("{object:?} {pos} {name}: HAProxy has no such field");
            };
            assert_eq!((name, tags, ty), (n, t, y), "{object:?} field {pos}");
            let config_or_state = tags.starts_with(['K', 'C', 'S']) && name != "iid";
            if config_or_state || name == "check_status" {
                assert_eq!(value, v, "{object:?} {name}");
            }
            compared += 1;
        }
    }
    assert!(compared > 80, "only {compared} fields compared");

    // Filters: `<iid|proxy> <type> <sid>` select the same rows, formats
    // and options follow them; a bad proxy is refused in HAProxy's words.
    for filter in [
        "show stat -1 4 -1",
        "show stat -1 1 -1",
        "show stat app 2 -1",
        "show stat app 4 2",
        "show stat tc 7 -1",
        "show stat -1 6 -1 up",
        "show stat -1 -1 -1 no-maint",
        "show stat tc 3 x",
        "show stat 99 -1 -1",
        "show stat -1 0 -1",
    ] {
        let mine = socat(&unix(&ours.sock), filter);
        let theirs_out = socat(&unix(&theirs.sock), filter);
        assert_eq!(csv_rows(&mine), csv_rows(&theirs_out), "{filter}");
        assert!(mine.starts_with("# pxname,svname,"), "{filter}: {mine}");
    }
    assert_eq!(
        csv_rows(&socat(&unix(&ours.sock), "show stat -1 4 -1")),
        [("app", "s1"), ("app", "s2"), ("tc", "t1")]
            .map(|(p, s)| (p.to_owned(), s.to_owned()))
            .into()
    );
    assert_eq!(
        csv_rows(&socat(&unix(&ours.sock), "show stat -1 4 -1 up")),
        [("app", "s2"), ("tc", "t1")]
            .map(|(p, s)| (p.to_owned(), s.to_owned()))
            .into(),
        "`up` hides the down s1"
    );
    let servers = parse_typed(&socat(&unix(&ours.sock), "show stat -1 4 -1 typed"));
    assert_eq!(
        servers.keys().collect::<Vec<_>>(),
        parse_typed(&socat(&unix(&theirs.sock), "show stat -1 4 -1 typed"))
            .keys()
            .collect::<Vec<_>>()
    );
    assert!(servers.keys().all(|(letter, _, _)| letter == "S"));
    let json = socat(&unix(&ours.sock), "show stat app 4 -1 json");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 2, "{json}");
    for bad in ["show stat nope -1 -1", "show stat typed 3 -1 -1"] {
        assert_eq!(socat(&unix(&ours.sock), bad), "No such proxy.\n\n");
        assert_eq!(socat(&unix(&theirs.sock), bad), "No such proxy.\n\n");
    }
}

/// Raw bytes on a Unix socket, the write side then shut; everything
/// read until the server closes (or resets) the connection.
fn raw(sock: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // The server may close while this is still being written.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading the answer: {e} (after {:?})", out),
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn malformed_lines_get_haproxys_answer() {
    if !socat_installed() {
        return;
    }
    let up = ScriptedBackend::start(Script::Ok);
    let ours = wsgate_side(up.addr);
    let theirs = haproxy_side(up.addr);
    const PLEASE: &str = "Unknown command. Please enter one of the following commands only:\n";

    // The longest line accepted (16 KiB less one byte, newline included,
    // as HAProxy 2.6) runs; one byte more, or much more, and it is dropped
    // unanswered and the connection closed. (HAProxy 2.6 does that too,
    // but not every time: some runs it waits for more instead, so it is
    // not compared here.)
    let longest = format!("show backend{}\n", " ".repeat(16 * 1024 - 14));
    let just_over = format!("show backend{}\n", " ".repeat(16 * 1024 - 13));
    assert_eq!((longest.len(), just_over.len()), (16383, 16384));
    assert_eq!(raw(&ours.sock, longest.as_bytes()), "# name\napp\ntc\n\n");
    for overlong in [just_over, format!("show backend{}\n", " ".repeat(30_000))] {
        assert_eq!(
            raw(&ours.sock, overlong.as_bytes()),
            "",
            "an overlong line runs nothing"
        );
    }
    let cases: [(&str, &[u8]); 3] = [
        ("no newline", b"show backend"),
        ("empty", b"\n"),
        ("spaces", b"   \n"),
    ];
    let mut answers = Vec::new();
    for (what, bytes) in cases {
        let mine = raw(&ours.sock, bytes);
        if let Some(h) = &theirs {
            let their = raw(&h.sock, bytes);
            if what == "no newline" {
                assert_eq!(mine, their, "{what}");
            } else {
                // The lead is HAProxy's; the list is wsgate's commands.
                assert!(their.starts_with(PLEASE), "{what}: {their:?}");
            }
        }
        answers.push(mine);
    }
    assert_eq!(
        answers[0], "",
        "a line cut by the end of the stream runs nothing"
    );
    assert!(answers[1].starts_with(PLEASE) && answers[1].contains("  show info "));
    assert_eq!(answers[1], answers[2]);

    // Binary bytes: an unknown command, answered with the command list.
    let binary = raw(&ours.sock, b"\x00\xff\xfe\x01\n");
    assert!(binary.starts_with("Unknown command"), "{binary:?}");
    assert!(binary.contains("  show stat ") && binary.ends_with("\n\n"));
    if let Some(h) = &theirs {
        assert!(raw(&h.sock, b"\x00\xff\xfe\x01\n").starts_with(PLEASE));
    }

    // A client streaming megabytes without a newline is cut off at the
    // limit, long before `stats timeout` (HAProxy's default 10 s): the
    // line is never buffered whole.
    let started = Instant::now();
    let mut s = UnixStream::connect(&ours.sock).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    let refused = (0..64).any(|_| match s.write_all(&chunk) {
        Ok(()) => {
            sent += chunk.len();
            false
        }
        Err(_) => true,
    });
    assert!(
        refused,
        "4 MiB without a newline were all accepted ({sent} bytes)"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Through all of it the socket kept serving.
    assert_eq!(
        socat(&unix(&ours.sock), "show backend"),
        "# name\napp\ntc\n\n"
    );
}
