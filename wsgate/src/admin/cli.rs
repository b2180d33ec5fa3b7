//! The runtime API (HAProxy's CLI protocol) on `stats socket` lines: a
//! Unix socket (`stats socket /run/wsgate.sock mode 660 level admin`) or a
//! TCP one (`stats socket ipv4@127.0.0.1:9999`).
//!
//! Protocol, as HAProxy's: the client sends one line (and any lines that
//! came with it); several commands may be separated by `;`; each
//! command's output ends with an empty line; the connection then closes,
//! unless the client sent `prompt`, which turns on
//! interactive mode (a `> ` prompt after each answer, until `quit` or
//! `stats timeout` of inactivity). Levels `user` < `operator` < `admin`
//! are enforced per command (`Permission denied`); unknown commands get
//! HAProxy's "Unknown command" answer followed by the commands valid at
//! the connection's level.
//!
//! Malformed lines get HAProxy 2.6's treatment: a line over `MAX_LINE`
//! bytes or one cut by the end of the stream runs nothing, an empty
//! command answers the command list. `show sess` and `show errors` are
//! rendered by `inspect`; `show stat typed` and `json` by `fields`.
//!
//! Stage: started by `main` once the proxy runs, on the main runtime;
//! reads the same snapshot as the stats page and steers servers through
//! `BackendRuntime::{set_admin, set_weight}`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::backend::{AdminState, BackendRuntime, Counters};
use crate::config::model::{CliLevel, SocketAddress, StatsSocket};
use crate::config::persist::KeyType;
use crate::proxy::Runtime;
use crate::reload::ReloadRequests;

/// Longest command line accepted, newline included. HAProxy 2.6 reads a
/// line into its 16 KiB buffer (one byte kept back) and closes the
/// connection without an answer when it does not fit; wsgate does the
/// same (nothing of the line runs), and never buffers more than this per
/// client.
const MAX_LINE: usize = 16 * 1024 - 1;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{location}: error: cannot bind the stats socket {addr}: {source}")]
    Bind {
        location: String,
        addr: String,
        source: std::io::Error,
    },
}

/// A bound stats socket.
pub struct Bound {
    listener: Listener,
    level: CliLevel,
}

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl Bound {
    /// The TCP address, when the socket is a TCP one (port 0 in the
    /// configuration shows the chosen port).
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds every `stats socket` (must run inside a tokio runtime). A stale
/// Unix socket file left by a previous run is replaced, as HAProxy does.
pub fn bind_all(sockets: &[StatsSocket]) -> Result<Vec<Bound>, CliError> {
    let mut out = Vec::with_capacity(sockets.len());
    for s in sockets {
        let err = |source: std::io::Error| CliError::Bind {
            location: s.location.to_string(),
            addr: match &s.addr {
                SocketAddress::Unix(p) => p.display().to_string(),
                SocketAddress::Tcp(a) => a.to_string(),
            },
            source,
        };
        let listener = match &s.addr {
            SocketAddress::Unix(path) => {
                use std::os::unix::fs::FileTypeExt;
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    if meta.file_type().is_socket() {
                        let _ = std::fs::remove_file(path);
                    }
                }
                let l = UnixListener::bind(path).map_err(err)?;
                if let Some(mode) = s.mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                        .map_err(err)?;
                }
                Listener::Unix(l, path.clone())
            }
            SocketAddress::Tcp(addr) => {
                let std = std::net::TcpListener::bind(addr).map_err(err)?;
                std.set_nonblocking(true).map_err(err)?;
                Listener::Tcp(TcpListener::from_std(std).map_err(err)?)
            }
        };
        out.push(Bound {
            listener,
            level: s.level,
        });
    }
    Ok(out)
}

/// Gives the runtime in force now (it changes on reload).
pub type CurrentRuntime = Arc<dyn Fn() -> Arc<Runtime> + Send + Sync>;

/// Serves the sockets until `stop`. Each command reads the runtime in
/// force when it runs, so answers follow reloads; `reload` goes to
/// `reloads` (the signal loop, which serialises reloads).
pub async fn serve(
    sockets: Vec<Bound>,
    current: CurrentRuntime,
    reloads: ReloadRequests,
    stop: CancellationToken,
) {
    let tasks = tokio_util::task::TaskTracker::new();
    for bound in sockets {
        let current = current.clone();
        let stop = stop.clone();
        let reloads = reloads.clone();
        tasks.spawn(async move {
            loop {
                let level = bound.level;
                let timeout = current().global.stats_timeout;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = accept(&bound.listener) => match accepted {
                        Ok(Conn::Unix(s)) => {
                            let ctx = Context { current: current.clone(), reloads: reloads.clone(), level, timeout };
                            tokio::spawn(async move { session(s, ctx).await });
                        }
                        Ok(Conn::Tcp(s)) => {
                            let ctx = Context { current: current.clone(), reloads: reloads.clone(), level, timeout };
                            tokio::spawn(async move { session(s, ctx).await });
                        }
                        Err(e) => {
                            tracing::warn!("stats socket accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Unix(l, _) => Ok(Conn::Unix(l.accept().await?.0)),
        Listener::Tcp(l) => Ok(Conn::Tcp(l.accept().await?.0)),
    }
}

/// What one client connection of a stats socket works with.
struct Context {
    current: CurrentRuntime,
    reloads: ReloadRequests,
    level: CliLevel,
    timeout: std::time::Duration,
}

/// One client of the socket.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: S, ctx: Context) {
    let Context {
        current,
        reloads,
        level,
        timeout,
    } = ctx;
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut interactive = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(timeout, read_line(&mut r, &mut line)).await;
        match read {
            Ok(Ok(Line::Complete)) => {}
            Ok(Ok(Line::TooLong)) => {
                tracing::debug!("stats socket: a command line over {MAX_LINE} bytes; closing");
                return;
            }
            // End of stream (a last line without its newline is not run,
            // as in HAProxy), an error, or `stats timeout`.
            Ok(Ok(Line::Eof) | Err(_)) | Err(_) => return,
        }
        let text = String::from_utf8_lossy(&line);
        let mut out = String::new();
        let mut quit = false;
        for cmd in split_commands(text.trim_end_matches(['\r', '\n'])) {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            match words.as_slice() {
                ["quit", ..] => {
                    quit = true;
                    break;
                }
                ["prompt", ..] => interactive = !interactive,
                ["reload", ..] if level >= CliLevel::Admin => out.push_str(&reload(&reloads).await),
                _ => out.push_str(&execute(&current(), level, &words)),
            }
            // Every answer ends with an empty line and, in interactive
            // mode, a prompt (HAProxy 2.6 prompts after each command of
            // a `;` line, and after `prompt` itself).
            out.push('\n');
            if interactive {
                out.push_str("> ");
            }
        }
        if w.write_all(out.as_bytes()).await.is_err() || w.flush().await.is_err() {
            return;
        }
        // Without `prompt`, HAProxy still answers the lines that came with
        // the first one (`printf 'show info\nshow stat\n' | socat ...`),
        // then closes.
        let more = r.buffer().contains(&b'\n');
        if quit || !(interactive || more) {
            let _ = w.shutdown().await;
            return;
        }
    }
}

/// `reload`: the same as SIGHUP, with the outcome in the answer, in the
/// form of HAProxy's master CLI (2.7+): `Success=1` or `Success=0`, `--`,
/// then the diagnostics.
async fn reload(reloads: &ReloadRequests) -> String {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let report = match reloads.send(tx).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    match report {
        Some(r) => format!("Success={}\n--\n{}", u8::from(r.applied), r.messages),
        None => "Success=0\n--\nthe proxy is stopping; no reload\n".into(),
    }
}

/// How reading a command line ended.
enum Line {
    /// A whole line, with its newline, is in the buffer.
    Complete,
    /// The stream ended (any partial line is dropped).
    Eof,
    /// The line grew past [`MAX_LINE`] without a newline.
    TooLong,
}

/// Reads up to a newline, never holding more than [`MAX_LINE`] bytes.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > MAX_LINE {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        r.consume(take);
        if done {
            return Ok(Line::Complete);
        }
    }
}

/// `;` separates commands; `\;` is a literal semicolon.
fn split_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                cur.push(';');
                chars.next();
            }
            ';' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The commands, their help text and the level they need.
const COMMANDS: &[(&str, &str, CliLevel)] = &[
    (
        "clear counters",
        "clear max statistics counters (or all counters)",
        CliLevel::Operator,
    ),
    (
        "disable health",
        "disable health checks (the server counts as up)",
        CliLevel::Admin,
    ),
    (
        "disable server",
        "disable a server for maintenance (use 'set server' instead)",
        CliLevel::Admin,
    ),
    ("enable health", "enable health checks", CliLevel::Admin),
    (
        "enable server",
        "enable a disabled server (use 'set server' instead)",
        CliLevel::Admin,
    ),
    (
        "get weight",
        "report a server's current weight",
        CliLevel::User,
    ),
    ("help", "list known CLI commands", CliLevel::User),
    (
        "prompt",
        "toggle interactive mode with prompt",
        CliLevel::User,
    ),
    ("quit", "disconnect", CliLevel::User),
    (
        "reload",
        "reload the configuration files in process; WebSockets stay open",
        CliLevel::Admin,
    ),
    (
        "set maxconn frontend",
        "change a frontend's maxconn setting",
        CliLevel::Admin,
    ),
    (
        "set maxconn global",
        "change the per-process maxconn setting",
        CliLevel::Admin,
    ),
    (
        "set maxconn server",
        "change a server's maxconn setting",
        CliLevel::Admin,
    ),
    (
        "set server",
        "change a server's state, weight, address",
        CliLevel::Admin,
    ),
    (
        "set weight",
        "change a server's weight (deprecated)",
        CliLevel::Admin,
    ),
    (
        "show backend",
        "list backends in the current running config",
        CliLevel::User,
    ),
    (
        "show errors",
        "report the last refused request of each frontend",
        CliLevel::Operator,
    ),
    (
        "show info",
        "report information about the running process",
        CliLevel::User,
    ),
    (
        "show servers state",
        "dump volatile server information (all or for a single backend)",
        CliLevel::User,
    ),
    (
        "show sess",
        "report the list of current sessions (WebSocket tunnels included)",
        CliLevel::Operator,
    ),
    (
        "show stat",
        "report counters for each proxy and server",
        CliLevel::User,
    ),
    (
        "show table",
        "report table usage stats or dump this table's contents",
        CliLevel::User,
    ),
    (
        "show version",
        "show version of the current process",
        CliLevel::User,
    ),
    (
        "shutdown session",
        "kill a specific tunnel (WebSockets get close 1012)",
        CliLevel::Admin,
    ),
    (
        "shutdown sessions server",
        "kill sessions on a server (WebSockets get close 1012)",
        CliLevel::Admin,
    ),
];

fn help(level: CliLevel) -> String {
    let mut s = String::new();
    for (name, text, need) in COMMANDS {
        if *need <= level {
            let syntax = match *name {
                "set server" => "set server <bk>/<srv> [opts]",
                "set weight" => "set weight <bk>/<srv> (<w>|<w>%)",
                "get weight" => "get weight <bk>/<srv>",
                "set maxconn server" => "set maxconn server <bk>/<srv> <n>",
                "set maxconn frontend" => "set maxconn frontend <frontend> <value>",
                "set maxconn global" => "set maxconn global <value>",
                "enable server" => "enable server <bk>/<srv>",
                "enable health" => "enable health <bk>/<srv>",
                "disable health" => "disable health <bk>/<srv>",
                "disable server" => "disable server <bk>/<srv>",
                "show servers state" => "show servers state [<backend>]",
                "show stat" => "show stat [<iid> <type> <sid>] [typed|json]",
                "show table" => "show table [<table>]",
                "shutdown sessions server" => "shutdown sessions server <bk>/<srv>",
                "shutdown session" => "shutdown session <id>",
                "clear counters" => "clear counters [all]",
                other => other,
            };
            s.push_str(&format!("  {syntax:<40}: {text}\n"));
        }
    }
    s
}

/// Runs one command; the answer without its final empty line.
pub fn execute(rt: &Runtime, level: CliLevel, words: &[&str]) -> String {
    let Some(&(name, _, need)) = COMMANDS
        .iter()
        .filter(|(name, _, _)| {
            let parts: Vec<&str> = name.split(' ').collect();
            words.len() >= parts.len() && words[..parts.len()] == parts[..]
        })
        .max_by_key(|(name, _, _)| name.len())
    else {
        let Some(&first) = words.first() else {
            // An empty command (an empty line, `;;`): HAProxy 2.6's answer.
            return "Unknown command. Please enter one of the following commands only:\n"
                .to_owned()
                + &help(level);
        };
        let partial = COMMANDS
            .iter()
            .any(|(n, _, _)| n.split(' ').next() == Some(first));
        let lead = if partial {
            format!("Unknown command: '{first}', but maybe one of the following ones is a better match:\n")
        } else {
            format!(
                "Unknown command: '{first}'. Please enter one of the following commands only:\n"
            )
        };
        return lead + &help(level);
    };
    if need > level {
        return "Permission denied\n".into();
    }
    let args = &words[name.split(' ').count()..];
    match name {
        "help" => format!(
            "The following commands are valid at this level:\n{}",
            help(level)
        ),
        "show info" => super::info(rt)
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect(),
        "show stat" => show_stat(rt, args),
        "show servers state" => servers_state(rt, args.first().copied()),
        "show table" => show_table(rt, args.first().copied()),
        "show backend" => std::iter::once("# name".to_owned())
            .chain(rt.backends.iter().map(|b| b.config.name.clone()))
            .map(|l| l + "\n")
            .collect(),
        "show version" => format!("{}\n", env!("CARGO_PKG_VERSION")),
        "show sess" => super::inspect::show_sess(rt),
        "show errors" => super::inspect::show_errors(rt),
        "get weight" => match args {
            [target] => with_server(rt, target, |be, i| {
                format!(
                    "{} (initial {})\n",
                    be.servers[i].weight(),
                    be.config.servers[i].weight
                )
            }),
            _ => "Require 'backend/server'.\n".into(),
        },
        "clear counters" => {
            let all = args.first() == Some(&"all");
            if all && level < CliLevel::Admin {
                return "Permission denied\n".into();
            }
            clear(rt, all);
            String::new()
        }
        "set server" => set_server(rt, args),
        "set maxconn frontend" => set_maxconn_frontend(rt, args),
        "set maxconn global" => set_maxconn_global(rt, args),
        "set maxconn server" => match args {
            [target, n] => with_server(rt, target, |be, i| {
                let digits = n.bytes().take_while(u8::is_ascii_digit).count();
                match n.parse::<u32>() {
                    Ok(n) => {
                        be.set_maxconn(i, n);
                        String::new()
                    }
                    Err(_) if digits == 0 => "maxconn string empty or preceded by garbage\n".into(),
                    Err(_) => "Trailing garbage in maxconn string\n".into(),
                }
            }),
            [target] => with_server(rt, target, |_, _| "Require <maxconn>.\n".into()),
            _ => "Require 'backend/server'.\n".into(),
        },
        "set weight" => match args {
            [target, w] => with_server(rt, target, |be, i| weight(be, i, w)),
            _ => "Require 'backend/server' and 'weight' or 'weight%'.\n".into(),
        },
        "shutdown session" => {
            let live = args
                .first()
                .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                .and_then(|id| rt.obs.registry.find(id));
            match live {
                None => "No such session (use 'show sess').\n".into(),
                Some(l) if l.kill() => String::new(),
                Some(_) => "wsgate only shuts down tunnels (WebSocket or mode tcp); this session is not one.\n".into(),
            }
        }
        "shutdown sessions server" => match args {
            [target] => with_server(rt, target, |be, i| {
                be.shutdown_sessions(i);
                String::new()
            }),
            _ => "Require 'backend/server'.\n".into(),
        },
        "enable health" | "disable health" => match args {
            [target] => with_server(rt, target, |be, i| {
                let enable = name == "enable health";
                if enable && be.config.servers[i].check.is_none() {
                    return "Health check was not configured on this server, cannot enable.\n"
                        .into();
                }
                be.set_health_checks(i, enable);
                String::new()
            }),
            _ => "Require 'backend/server'.\n".into(),
        },
        "enable server" | "disable server" => match args {
            [target] => with_server(rt, target, |be, i| {
                let state = if name == "enable server" {
                    AdminState::Ready
                } else {
                    AdminState::Maint
                };
                be.set_admin(i, state);
                String::new()
            }),
            _ => "Require 'backend/server'.\n".into(),
        },
        _ => String::new(),
    }
}

/// `show stat [{<iid>|<proxy>} <type> <sid>] [typed|json] [up|no-maint]`,
/// read as HAProxy 2.6 reads it: three leading words select rows (a
/// proxy name or `iid`, a type mask — 1 frontends, 2 backends, 4 servers,
/// -1 all — and a server id, -1 for all), the words after them choose
/// the format (`typed`, `json`) and hide servers (`up`: those down or in
/// maintenance; `no-maint`: those in maintenance). Numbers are read like
/// C's `atoi`, and unknown words are ignored, as in HAProxy.
fn show_stat(rt: &Runtime, args: &[&str]) -> String {
    use super::RowKind;
    let mut rows = super::rows(rt);
    let options = match args {
        [px, ty, sid, rest @ ..] => {
            let iid = rows
                .iter()
                .find(|r| r.s("pxname") == *px)
                .map_or_else(|| atoi(px), |r| r.proxy_id as i64);
            if iid == 0 {
                return "No such proxy.\n".into();
            }
            let (ty, sid) = (atoi(ty), atoi(sid));
            rows.retain(|r| {
                let bit = match r.kind {
                    RowKind::Frontend => 1,
                    RowKind::Backend => 2,
                    RowKind::Server => 4,
                };
                (iid == -1 || r.proxy_id as i64 == iid)
                    && ty & bit != 0
                    && (r.kind != RowKind::Server || sid == -1 || r.sid as i64 == sid)
            });
            rest
        }
        _ => args,
    };
    let mut format = "csv";
    for word in options {
        match *word {
            "typed" | "json" => format = word,
            "up" => rows.retain(|r| {
                r.kind != RowKind::Server || !matches!(r.s("status").as_str(), "DOWN" | "MAINT")
            }),
            "no-maint" => rows.retain(|r| r.kind != RowKind::Server || r.s("status") != "MAINT"),
            _ => {}
        }
    }
    match format {
        "typed" => super::fields::typed(&rows),
        "json" => super::fields::json(&rows) + "\n",
        _ => super::csv(&rows),
    }
}

/// C's `atoi`, as HAProxy reads these arguments: optional sign, leading
/// digits, 0 when there are none.
fn atoi(s: &str) -> i64 {
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    sign * digits[..end].parse::<i64>().unwrap_or(0)
}

/// `set maxconn frontend <name|#id> <n>`: HAProxy's answers, except that
/// a value that is not a number is refused (HAProxy reads it as 0, which
/// stops the frontend accepting).
fn set_maxconn_frontend(rt: &Runtime, args: &[&str]) -> String {
    let Some(name) = args.first() else {
        return "A frontend name is expected.\n".into();
    };
    // `#<id>`: the frontend's `iid` in `show stat` (frontends come first).
    let index = match name.strip_prefix('#') {
        Some(id) => id
            .parse::<usize>()
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|&i| i < rt.frontends.len()),
        None => rt.frontends.iter().position(|fe| fe.name == *name),
    };
    let Some(limit) = index.and_then(|i| rt.frontend_limits.get(i)) else {
        return "No such frontend.\n".into();
    };
    match args.get(1).map(|v| v.parse::<i64>()) {
        None | Some(Err(_)) => "Integer value expected.\n".into(),
        Some(Ok(n)) => match usize::try_from(n) {
            Ok(n) => {
                limit.set(n);
                String::new()
            }
            Err(_) => "Value out of range.\n".into(),
        },
    }
}

/// `set maxconn global <n>`: within the limit the process started with
/// (`Hard_maxconn`); 0 restores it.
fn set_maxconn_global(rt: &Runtime, args: &[&str]) -> String {
    let limit = &rt.global_limit;
    let hard = limit.initial().unwrap_or(usize::MAX);
    match args.first().map(|v| v.parse::<i64>()) {
        None | Some(Err(_)) => "Expects an integer value.\n".into(),
        Some(Ok(0)) => {
            limit.set(hard);
            String::new()
        }
        Some(Ok(n)) => match usize::try_from(n) {
            Ok(n) if n <= hard => {
                limit.set(n);
                String::new()
            }
            _ => "Value out of range.\n".into(),
        },
    }
}

fn clear(rt: &Runtime, all: bool) {
    let reset = |c: &Counters| {
        if all {
            c.clear_all();
        } else {
            c.clear_max();
        }
    };
    reset(&rt.obs.process);
    rt.obs.frontends.iter().for_each(|c| reset(c));
    for be in &rt.backends {
        reset(&be.counters);
        be.servers.iter().for_each(|s| reset(&s.counters));
    }
}

fn with_server(
    rt: &Runtime,
    target: &str,
    f: impl FnOnce(&BackendRuntime, usize) -> String,
) -> String {
    let Some((b, s)) = target.split_once('/') else {
        return "Require 'backend/server'.\n".into();
    };
    let Some(be) = rt.backends.iter().find(|be| be.config.name == b) else {
        return "No such backend.\n".into();
    };
    let Some(i) = be.server_index(s) else {
        return "No such server.\n".into();
    };
    f(be, i)
}

fn weight(be: &BackendRuntime, i: usize, w: &str) -> String {
    let value = match w.strip_suffix('%') {
        Some(p) => p.parse::<u32>().ok().map(|p| {
            let initial = be.config.servers[i].weight;
            (initial.saturating_mul(p) / 100).min(256)
        }),
        None => w.parse::<u32>().ok(),
    };
    match value {
        Some(v) if v <= 256 => {
            be.set_weight(i, v);
            String::new()
        }
        _ => "Integer value expected, between 0 and 256 (or a percentage).\n".into(),
    }
}

/// `set server <be>/<srv> state ready|drain|maint` and `... weight <w>`.
fn set_server(rt: &Runtime, args: &[&str]) -> String {
    let [target, what, rest @ ..] = args else {
        return "Require 'backend/server'.\n".into();
    };
    with_server(rt, target, |be, i| match (*what, rest) {
        ("state", [state]) => {
            let s = match *state {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => {
                    return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"
                        .into()
                }
            };
            be.set_admin(i, s);
            String::new()
        }
        ("weight", [w]) => weight(be, i, w),
        ("addr", rest) => set_addr(be, i, rest),
        ("state", _) => "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n".into(),
        _ => "'set server <srv>' only supports 'state', 'weight' and 'addr' in wsgate.\n".into(),
    })
}

/// `set server <be>/<srv> addr <ip> [port <port>]`: new connections go
/// there; open ones (WebSockets) stay. Answered in HAProxy 2.6's words
/// (checked side by side); port 0 (HAProxy's port mapping) is refused.
/// A server without an address (`init-addr none`) gets this one and
/// leaves maintenance ("IP changed from '-' ..."), where HAProxy 2.6
/// answers "Update for the current server address family is only
/// supported through configuration file", takes it out of maintenance
/// all the same and fails its checks (SOCKERR).
fn set_addr(be: &BackendRuntime, i: usize, args: &[&str]) -> String {
    let (ip, port) = match args {
        [ip] => (*ip, None),
        [ip, "port", p] => (*ip, Some(*p)),
        _ => return "set server <b>/<s> addr requires an address and optionally a port.\n".into(),
    };
    const BY: &str = " by 'stats socket command'\n";
    let Ok(ip_addr) = ip.parse::<std::net::IpAddr>() else {
        return format!("Invalid addr '{ip}'{BY}");
    };
    let old = be.servers[i].addr();
    let mut new = std::net::SocketAddr::new(ip_addr, old.port());
    let mut msg = match old.known() {
        Some(a) if a.ip() == ip_addr => "no need to change the addr".to_owned(),
        Some(a) => format!("IP changed from '{}' to '{ip_addr}'", a.ip()),
        None => format!("IP changed from '-' to '{ip_addr}'"),
    };
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(p) if p > 0 => {
                if p == old.port() {
                    msg.push_str(", no need to change the port");
                } else {
                    msg.push_str(&format!(", port changed from '{}' to '{p}'", old.port()));
                }
                new.set_port(p);
            }
            _ => msg.push_str(&format!(", problem converting port '{p}' to an int")),
        }
    }
    be.set_addr(i, new);
    msg + BY
}

/// `show servers state [<backend>]` in HAProxy's version 1 layout.
/// `show table`: one summary line per stick table (HAProxy lists them
/// last declared first); `show table <name>`: that line and its entries.
/// Entry "addresses" are recency serials here; `use` counts the requests
/// and WebSocket tunnels tracking the entry; stored counters follow, in
/// HAProxy's order.
fn show_table(rt: &Runtime, only: Option<&str>) -> String {
    let now = std::time::Instant::now();
    // Frontends' tables (track-sc only) and backends' ones, by name.
    let tables = rt
        .frontends
        .iter()
        .zip(&rt.frontend_tables)
        .filter_map(|(fe, t)| Some((fe.name.as_str(), None, t.as_ref()?)))
        .chain(
            rt.backends
                .iter()
                .filter_map(|be| Some((be.config.name.as_str(), Some(be), be.table.as_ref()?))),
        )
        .collect::<Vec<_>>();
    let tables = tables
        .into_iter()
        .rev()
        .filter(|(name, _, _)| only.is_none_or(|n| n == *name));
    let mut s = String::new();
    for (name, be, table) in tables {
        let ty = match table.def.key {
            KeyType::Ip => "ip",
            KeyType::Ipv6 => "ipv6",
            KeyType::Integer => "integer",
            KeyType::String { .. } => "string",
        };
        s.push_str(&format!(
            "# table: {name}, type: {ty}, size:{}, used:{}\n",
            table.def.size,
            table.len(now)
        ));
        if only.is_none() {
            continue;
        }
        for e in table.entries(now) {
            let exp = e.left.map_or(0, |d| d.as_millis());
            s.push_str(&format!(
                "{:#014x}: key={} use={} exp={exp}",
                e.serial, e.key, e.refs
            ));
            // HAProxy's order: server_id, the counters, server_key.
            if let Some(id) = e.server_id {
                s.push_str(&format!(" server_id={id}"));
            }
            for (d, v) in &e.data {
                let name = d.counter().name();
                match d.period() {
                    Some(p) => s.push_str(&format!(" {name}({})={v}", p.as_millis())),
                    None => s.push_str(&format!(" {name}={v}")),
                }
            }
            if let Some(id) = e.server_id {
                let server = be
                    .and_then(|be| Some(be.config.servers[be.server_by_id(id)?].name.as_str()))
                    .unwrap_or("");
                s.push_str(&format!(" server_key={server}"));
            }
            s.push('\n');
        }
    }
    if s.is_empty() && only.is_some() {
        return "No such table\n".into();
    }
    s
}

fn servers_state(rt: &Runtime, only: Option<&str>) -> String {
    let mut s = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n");
    if let Some(name) = only {
        if !rt.backends.iter().any(|b| b.config.name == name) {
            return "Can't find backend.\n".into();
        }
    }
    for (bi, be) in rt.backends.iter().enumerate() {
        if only.is_some_and(|n| n != be.config.name) {
            continue;
        }
        for (i, srv) in be.config.servers.iter().enumerate() {
            let st = &be.servers[i];
            // HAProxy: a server without an address is stopped, in
            // resolution maintenance (`SRV_ADMF_RMAINT`, 0x20), its
            // address `-`.
            let op = if st.is_up() && !st.awaits_addr() {
                2
            } else {
                0
            };
            let asked = match st.admin_asked() {
                AdminState::Ready => 0,
                AdminState::Maint => 1,
                AdminState::Drain => 8,
            };
            let admin = asked | if st.awaits_addr() { 32 } else { 0 };
            let addr = st.addr();
            let ip = addr.known().map_or("-".to_owned(), |a| a.ip().to_string());
            let checked = srv.check.is_some();
            s.push_str(&format!(
                "{} {} {} {} {} {op} {admin} {} {} {} {} {} {} {} 0 0 0 - {} - 0 {} - - 0\n",
                bi + 1,
                be.config.name,
                srv.id,
                srv.name,
                ip,
                st.weight(),
                srv.weight,
                st.last_change_age(),
                if checked { 6 } else { 1 },
                if checked { u8::from(st.is_up()) + 1 } else { 0 },
                st.check_health.load(std::sync::atomic::Ordering::Relaxed),
                if checked { 6 } else { 0 },
                addr.port(),
                srv.check.as_ref().map_or(0, |c| c.target.port()),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons() {
        assert_eq!(
            split_commands("show info;show stat"),
            vec!["show info", "show stat"]
        );
        assert_eq!(split_commands("a\\;b"), vec!["a;b"]);
    }

    #[test]
    fn help_follows_levels() {
        assert!(help(CliLevel::Admin).contains("set server"));
        assert!(!help(CliLevel::User).contains("set server"));
        assert!(help(CliLevel::User).contains("  show info                               : "));
    }
}
