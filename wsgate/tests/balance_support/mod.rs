//! Helpers of the `balance_*` end-to-end tests: a real HAProxy started
//! beside wsgate, and a tiny HTTP/1.1 client that asks which server
//! answered (`X-Served-By`, set by `wsgate demo-backend --name`), from a
//! chosen source address when needed.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{accepts, poll_until, ChildGuard, TempDir, START_DEADLINE};

/// The `defaults` section of the side-by-side configurations: mode http,
/// timeouts both proxies accept, WebSockets kept for an hour.
pub const HTTP_DEFAULTS: &str = "\
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
";

/// Debian's HAProxy, if installed.
pub fn haproxy_bin() -> Option<PathBuf> {
    [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A running HAProxy (`-db`: foreground, no daemon), killed on drop.
pub struct Haproxy {
    pub guard: ChildGuard,
    _dir: TempDir,
}

impl Haproxy {
    pub fn start(bin: &PathBuf, config: &str, addrs: &[SocketAddr]) -> Haproxy {
        let dir = TempDir::new("haproxy");
        let path = dir.write("haproxy.cfg", config);
        let mut cmd = Command::new(bin);
        cmd.arg("-db").arg("-f").arg(&path).current_dir(dir.path());
        let mut guard = ChildGuard::spawn(cmd, dir.path().join("haproxy.log"));
        let ready = poll_until(START_DEADLINE, "haproxy to listen", || {
            if let Ok(Some(status)) = guard.child.try_wait() {
                return Some(Err(status));
            }
            addrs.iter().all(|a| accepts(*a)).then_some(Ok(()))
        });
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(status)) => panic!("haproxy exited ({status}):\n{}", guard.output()),
            Err(e) => panic!("{e}:\n{}", guard.output()),
        }
        Haproxy { guard, _dir: dir }
    }
}

/// One request with `Connection: close`; returns the status and the
/// `X-Served-By` value (empty when absent).
pub fn served_by(
    proxy: SocketAddr,
    source: Option<IpAddr>,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut stream = match source {
        None => TcpStream::connect_timeout(&proxy, Duration::from_secs(5))
            .map_err(|e| format!("connect {proxy}: {e}"))?,
        Some(ip) => {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .map_err(|e| e.to_string())?;
            socket
                .bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| format!("bind {ip}: {e}"))?;
            socket
                .connect_timeout(&proxy.into(), Duration::from_secs(5))
                .map_err(|e| format!("connect {proxy} from {ip}: {e}"))?;
            socket.into()
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("GET {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("Host: test\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    stream
        .read_to_end(&mut resp)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let server = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("x-served-by")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, server))
}

/// Opens a WebSocket with a raw upgrade request and returns the open
/// stream and the server that accepted it (`X-Served-By` on the 101).
pub fn open_websocket(proxy: SocketAddr) -> Result<(TcpStream, String), String> {
    open_websocket_with(proxy, &[])
}

/// [`open_websocket`] with extra request headers (a balancing key).
pub fn open_websocket_with(
    proxy: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<(TcpStream, String), String> {
    let mut request = String::from(
        "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for (n, v) in headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect_timeout(&proxy, Duration::from_secs(5))
        .map_err(|e| format!("connect {proxy}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&head);
    if !text.starts_with("HTTP/1.1 101") {
        return Err(format!("no upgrade: {text:?}"));
    }
    let server = text
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("x-served-by")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((stream, server))
}

/// A demo backend on a given address (to restart one where it was).
pub fn demo_backend_at(addr: SocketAddr, name: &str, dir: &TempDir) -> ChildGuard {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsgate"));
    cmd.arg("demo-backend")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--name")
        .arg(name)
        .arg("--push-interval")
        .arg("1h");
    let guard = ChildGuard::spawn(cmd, dir.path().join(format!("{name}-{}.log", addr.port())));
    poll_until(START_DEADLINE, "the demo backend to listen", || {
        accepts(addr).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    guard
}

/// An HTTP server whose answer a test changes while it runs (to drive
/// health checks), recording the request line of every request. Each
/// connection gets one answer, then is closed. Bare `option httpchk`
/// checks (`OPTIONS / ...`) can be given a script of statuses, one per
/// check, whose answers are recorded with their time.
pub struct SwitchableServer {
    pub addr: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<Answers>>,
}

#[derive(Default)]
struct Answers {
    /// The answer when no script applies.
    reply: (u16, String),
    /// Statuses for the next `OPTIONS` checks, in order.
    script: std::collections::VecDeque<u16>,
    /// When each scripted check was answered, and with what.
    scripted: Vec<(std::time::Instant, u16)>,
    lines: Vec<String>,
}

impl SwitchableServer {
    /// Starts answering `status` with `body`.
    pub fn start(status: u16, body: &str) -> SwitchableServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = std::sync::Arc::new(std::sync::Mutex::new(Answers {
            reply: (status, body.to_owned()),
            ..Answers::default()
        }));
        let shared = state.clone();
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || answer_once(conn, &shared));
            }
        });
        SwitchableServer { addr, state }
    }

    /// From now on, answer `status` with `body`.
    pub fn set(&self, status: u16, body: &str) {
        self.state.lock().unwrap().reply = (status, body.to_owned());
    }

    /// Answers the next checks with `statuses`, one each, and forgets the
    /// answers of earlier scripts.
    pub fn script_checks(&self, statuses: &[u16]) {
        let mut state = self.state.lock().unwrap();
        state.script = statuses.iter().copied().collect();
        state.scripted.clear();
    }

    /// The scripted checks answered so far: when, and with what.
    pub fn scripted(&self) -> Vec<(std::time::Instant, u16)> {
        self.state.lock().unwrap().scripted.clone()
    }

    /// Every request line received so far.
    pub fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().lines.clone()
    }
}

fn answer_once(mut conn: TcpStream, state: &std::sync::Mutex<Answers>) {
    let Some(head) = read_request_head(&mut conn) else {
        return;
    };
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("").to_owned();
    let (status, body) = {
        let mut state = state.lock().unwrap();
        let scripted = line
            .starts_with("OPTIONS ")
            .then(|| state.script.pop_front())
            .flatten();
        state.lines.push(line);
        match scripted {
            Some(status) => {
                state.scripted.push((std::time::Instant::now(), status));
                (status, String::new())
            }
            None => state.reply.clone(),
        }
    };
    let answer = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(answer.as_bytes());
}

/// Reads a request head (up to the blank line, 10 s at most); `None`
/// when the peer closes or stalls first.
pub fn read_request_head(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    Some(head)
}

/// Runs `check` against wsgate, then against HAProxy 2.6 when installed
/// (a skip outside CI otherwise), each started on `config(port)` and
/// given the address of its first `bind` and its name.
pub fn wsgate_then_haproxy(config: &dyn Fn(u16) -> String, check: &dyn Fn(SocketAddr, &str)) {
    let port = crate::common::free_port();
    let wsgate = crate::common::Wsgate::start(&config(port));
    check(SocketAddr::from(([127, 0, 0, 1], port)), "wsgate");
    drop(wsgate);
    let Some(bin) = haproxy_bin() else {
        crate::common::skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let ha_port = crate::common::free_port();
    let ha_config = config(ha_port);
    let _haproxy = Haproxy::start(&bin, &ha_config, &crate::common::bind_addrs(&ha_config));
    check(SocketAddr::from(([127, 0, 0, 1], ha_port)), "haproxy 2.6");
}
