//! Health checks (`check`, `inter`, `fastinter`, `downinter`, `rise`,
//! `fall`, `port`, `addr`, `option httpchk`, `http-check expect`,
//! `check-ssl`, `check-send-proxy`; `option tcp-check` scripts run in
//! `tcp_check`).
//!
//! Stage: one task per checked server, started with the proxy and stopped
//! with it. A check is a TCP connect, or with `option httpchk` an HTTP
//! request whose answer must be 2xx/3xx (or match `http-check expect`).
//! HAProxy's counting is kept exactly: a server starts up "but will fall
//! at the first failure"; once fully up it needs `fall` consecutive
//! failures to go DOWN, and then `rise` consecutive successes to come back
//! UP. Between checks it waits `inter` when stable, `fastinter` while a
//! change is under way and `downinter` while fully down. The check's own
//! timeout is `inter`, or `min(timeout connect, inter)` to connect plus
//! `timeout check` to read when that is set. State changes are logged in
//! HAProxy's words ("Server be/s1 is DOWN, reason: Layer4 connection
//! problem, ..."). A server that is down is never picked by the balancer.
//! Passive health (`observe`, `backend::observe`) feeds the same counter
//! between checks.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BackendRuntime;
use crate::config::model::{HttpCheck, HttpExpect, OnError, SendProxy, ServerAddr, ServerCheck};
use crate::config::tcp_check::TcpCheck;
use crate::proxy_protocol;
use crate::tls::client::ServerTls;

/// Largest check response read (status line and enough body for `string`).
const MAX_RESPONSE: usize = 16 * 1024;

/// The result of one check, with HAProxy's reason wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// e.g. `Layer4 connection problem, info: "Connection refused"`.
    pub reason: String,
}

/// HAProxy's health counter: 0..=rise+fall-1, up while >= rise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    value: u32,
    rise: u32,
    fall: u32,
}

/// What a check result did to the server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    WentUp,
    WentDown,
}

impl Health {
    /// Up, "but will fall at the first failure" (HAProxy's start state).
    pub fn new(rise: u32, fall: u32) -> Health {
        Health {
            value: rise,
            rise,
            fall,
        }
    }

    /// Continues from a server's state as a reload found it: a DOWN server
    /// still needs `rise` good checks, an UP one keeps its margin.
    pub fn resume(rise: u32, fall: u32, up: bool, value: u32) -> Health {
        let h = Health::new(rise, fall);
        let value = if up {
            value.clamp(rise, h.max())
        } else {
            value.min(rise.saturating_sub(1))
        };
        Health { value, ..h }
    }

    pub fn is_up(&self) -> bool {
        self.value >= self.rise
    }

    /// The counter itself (`check_health` in the stats).
    pub fn value(&self) -> u32 {
        self.value
    }

    fn max(&self) -> u32 {
        self.rise + self.fall - 1
    }

    /// `on-error sudden-death`: a server with more margin than that keeps
    /// one failed check from DOWN.
    pub fn brink(&mut self) {
        if self.value > self.rise {
            self.value = self.rise + 1;
        }
    }

    /// `on-error mark-down`: an UP server is left up by the slimmest
    /// margin, so the failure recorded next takes it DOWN.
    pub fn lowest_up(&mut self) {
        if self.is_up() {
            self.value = self.rise;
        }
    }

    pub fn record(&mut self, ok: bool) -> Transition {
        let was_up = self.is_up();
        if ok {
            if self.value < self.max() {
                self.value += 1;
                if self.value >= self.rise {
                    self.value = self.max();
                }
            }
        } else if self.value > self.rise {
            self.value -= 1;
        } else {
            self.value = 0;
        }
        match (was_up, self.is_up()) {
            (false, true) => Transition::WentUp,
            (true, false) => Transition::WentDown,
            _ => Transition::None,
        }
    }

    /// The wait before the next check.
    pub fn interval(&self, c: &ServerCheck) -> Duration {
        if self.value == 0 {
            c.downinter
        } else if self.value == self.max() {
            c.inter
        } else {
            c.fastinter
        }
    }
}

/// Runs the checks of server `index` of `backend` until `stop`.
/// `backend` is any owner of the backend (the proxy passes a handle into
/// its shared runtime).
pub async fn run<B>(backend: B, index: usize, stop: CancellationToken)
where
    B: std::ops::Deref<Target = BackendRuntime>,
{
    let be: &BackendRuntime = &backend;
    let server = &be.config.servers[index];
    // Passive health is on only for checked servers (nothing else would
    // bring them back); a reload brings the new settings here.
    let observer = be.servers[index].counters.observer.clone();
    if let Some(o) = &observer {
        o.configure(server.check.as_ref().map(|_| &server.passive));
    }
    let Some(check) = server.check.clone() else {
        return;
    };
    // The server's TLS settings (`check-ssl`, or the server's own for a
    // `tcp-check connect ssl` step); they loaded at start-up already, for
    // the server itself or by the same code.
    let tcp_ssl = be.config.tcp_check.as_ref().is_some_and(|t| t.wants_ssl());
    let ssl = check
        .ssl
        .as_ref()
        .or(server.ssl.as_ref().filter(|_| tcp_ssl));
    let tls = match ssl.map(ServerTls::new).transpose() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(
                "Server {}/{}: health checks cannot use TLS: {e}",
                be.config.name,
                server.name
            );
            return;
        }
    };
    // A reload keeps the server's state (backend/carry.rs): go on from it.
    let state = &be.servers[index];
    let mut health = Health::resume(
        check.rise,
        check.fall,
        state.is_up(),
        state
            .check_health
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    // Spread the first checks over the interval, as HAProxy does, so a big
    // farm is not probed all at once.
    let first = Duration::from_millis(fastrand::u64(..=check.inter.as_millis().min(1000) as u64));
    let mut next = Instant::now() + first;
    let mut paused = false;
    loop {
        let passive = async {
            match &observer {
                Some(o) => o.wake.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = passive => {
                let Some(event) = observer.as_ref().and_then(|o| o.take()) else {
                    continue;
                };
                if paused || state.checks_paused() {
                    continue;
                }
                // HAProxy's `on-error`: the check counter moves as for a
                // failed check (`fastinter` alone leaves it), and every
                // mode checks again within `fastinter`.
                let transition = match event.action {
                    OnError::FastInter => None,
                    OnError::FailCheck => Some(health.record(false)),
                    OnError::SuddenDeath => {
                        health.brink();
                        Some(health.record(false))
                    }
                    OnError::MarkDown => {
                        health.lowest_up();
                        Some(health.record(false))
                    }
                };
                if let Some(transition) = transition {
                    let reason = format!("Health analyze, info: \"{}\"", event.info);
                    state.record_check(false, &reason, 0, health.value());
                    announce(be, index, transition, &reason, 0);
                }
                next = next.min(Instant::now() + check.fastinter);
                continue;
            }
            _ = stop.cancelled() => return,
        }
        // `disable health`: no probes; after `enable health`, go on from
        // up with the full margin.
        if state.checks_paused() {
            paused = true;
            next = Instant::now() + check.inter;
            continue;
        }
        if std::mem::take(&mut paused) {
            health = Health::resume(check.rise, check.fall, true, u32::MAX);
        }
        // No address yet (`init-addr none`): nothing to check until `set
        // server ... addr`, as in HAProxy.
        let Some(target) = check_target(&check, state) else {
            next = Instant::now() + check.inter;
            continue;
        };
        let started = Instant::now();
        let probe = Probe {
            check: &check,
            target,
            tls: tls.as_ref(),
            http: be.config.httpchk.as_ref(),
            tcp: be.config.tcp_check.as_ref(),
            server_proxy: server.send_proxy,
            timeout_connect: be.config.timeouts.connect,
            timeout_check: be.config.timeouts.check,
        };
        let outcome = tokio::select! {
            o = check_once(&probe) => o,
            _ = stop.cancelled() => return,
        };
        let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let transition = health.record(outcome.ok);
        state.record_check(outcome.ok, &outcome.reason, took, health.value());
        announce(be, index, transition, &outcome.reason, took);
        next = Instant::now() + health.interval(&check);
    }
}

/// Where the next check connects: the configured target, or, for a server
/// whose address came from `set server ... addr`, that address on the
/// check port. `None` while the server has no address.
fn check_target(check: &ServerCheck, state: &super::ServerState) -> Option<SocketAddr> {
    let addr = state.addr().known()?;
    Some(match check.target {
        ServerAddr::Known(t) => t,
        ServerAddr::Unresolved { port } => SocketAddr::new(addr.ip(), port),
    })
}

/// Applies a change of state that a check (or passive health) caused to
/// server `index`, logged in HAProxy's words.
fn announce(be: &BackendRuntime, index: usize, transition: Transition, reason: &str, took: u64) {
    let server = &be.config.servers[index];
    match transition {
        Transition::None => {}
        Transition::WentDown => {
            be.servers[index].set_up(false);
            let (act, bck) = be.usable_counts();
            tracing::warn!(
                "Server {}/{} is DOWN, reason: {reason}, check duration: {took}ms. {act} active and {bck} backup servers left. {} sessions active, 0 requeued, 0 remaining in queue.",
                be.config.name,
                server.name,
                be.servers[index].served(),
            );
            if act == 0 && bck == 0 {
                tracing::error!("backend {} has no server available!", be.config.name);
            }
            if server.shutdown_on_down {
                be.shutdown_sessions(index);
            }
        }
        Transition::WentUp => {
            be.servers[index].set_up(true);
            be.servers[index].start_ramp(server.slowstart);
            let (act, bck) = be.usable_counts();
            tracing::warn!(
                "Server {}/{} is UP, reason: {reason}, check duration: {took}ms. {act} active and {bck} backup servers online. 0 sessions requeued, 0 total in queue.",
                be.config.name,
                server.name,
            );
            be.wake_queue();
            if server.shutdown_backups_on_up && !server.backup && be.servers[index].weight() > 0 {
                for (i, s) in be.config.servers.iter().enumerate() {
                    if s.backup {
                        be.shutdown_sessions(i);
                    }
                }
            }
        }
    }
}

/// Everything one check of one server needs.
pub struct Probe<'a> {
    pub check: &'a ServerCheck,
    /// Where to connect (see [`check_target`]).
    pub target: SocketAddr,
    /// TLS settings for `check-ssl`, or for a `tcp-check connect ssl` step.
    pub tls: Option<&'a ServerTls>,
    /// `option httpchk`.
    pub http: Option<&'a HttpCheck>,
    /// `option tcp-check` and its script.
    pub tcp: Option<&'a TcpCheck>,
    /// The server's `send-proxy*` settings (`tcp-check connect
    /// send-proxy` sends its header the way the server gets it).
    pub server_proxy: Option<SendProxy>,
    pub timeout_connect: Option<Duration>,
    pub timeout_check: Option<Duration>,
}

impl Probe<'_> {
    /// HAProxy's limits: with `timeout check`, connect within
    /// min(`timeout connect`, `inter`) and finish within `timeout check`
    /// more; otherwise `inter` bounds the whole check.
    fn limits(&self) -> (Duration, Instant) {
        let inter = self.check.inter;
        match self.timeout_check {
            Some(tc) => {
                let connect = self.timeout_connect.map_or(inter, |t| t.min(inter));
                (connect, Instant::now() + connect + tc)
            }
            None => (inter, Instant::now() + inter),
        }
    }
}

/// A check connection, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One check: connect, send the PROXY header (`check-send-proxy`), do
/// the TLS handshake (`check-ssl`), and with `option httpchk` one HTTP
/// exchange; with `option tcp-check`, its script instead.
pub async fn check_once(p: &Probe<'_>) -> Outcome {
    let (connect_limit, overall) = p.limits();
    if let Some(script) = p.tcp {
        return super::tcp_check::run(p, script, connect_limit, overall).await;
    }
    let c = p.check;
    let tls = p.tls.filter(|_| c.ssl.is_some());
    match open(p.target, connect_limit, c.send_proxy.as_ref(), tls, overall).await {
        Ok((stream, passed)) => finish(stream, p.http, overall, passed).await,
        Err(failed) => failed,
    }
}

/// Opens a check connection to `target`: connect within `connect_limit`,
/// send the PROXY header, then the TLS handshake when `tls` is given (by
/// `overall`). Returns the stream and the reason of a check that stops
/// there ("Layer4 check passed", or "Layer6" after TLS).
pub(crate) async fn open(
    target: SocketAddr,
    connect_limit: Duration,
    send_proxy: Option<&SendProxy>,
    tls: Option<&ServerTls>,
    overall: Instant,
) -> Result<(Box<dyn Io>, &'static str), Outcome> {
    let mut stream = match tokio::time::timeout(connect_limit, TcpStream::connect(target)).await {
        Err(_) => return Err(fail("Layer4 timeout".into())),
        Ok(Err(e)) => {
            return Err(fail(format!(
                "Layer4 connection problem, info: \"{}\"",
                io_info(&e)
            )))
        }
        Ok(Ok(s)) => s,
    };
    if let Some(send) = send_proxy {
        let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
            return Err(fail(
                "Layer4 connection problem, info: \"no address\"".into(),
            ));
        };
        let header = proxy_protocol::for_check(send, local, peer);
        if let Err(e) = stream.write_all(&header).await {
            return Err(fail(format!(
                "Layer4 connection problem, info: \"{}\"",
                io_info(&e)
            )));
        }
    }
    let Some(tls) = tls else {
        return Ok((Box::new(stream), "Layer4 check passed"));
    };
    // HAProxy: a failed handshake is a Layer6 problem; a good one passes
    // a check without `option httpchk`.
    let name = tls.server_name(target.ip(), |_| None);
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    match tokio::time::timeout_at(overall, connector.connect(name, stream)).await {
        Err(_) => Err(fail("Layer6 timeout".into())),
        Ok(Err(e)) => Err(fail(format!("Layer6 invalid response, info: \"{e}\""))),
        Ok(Ok(s)) => Ok((Box::new(s), "Layer6 check passed")),
    }
}

/// The last step of a check on an open stream: with `option httpchk`, the
/// HTTP exchange (by `overall`); without, the check `passed`.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    http: Option<&HttpCheck>,
    overall: Instant,
    passed: &str,
) -> Outcome {
    let Some(http) = http else {
        return Outcome {
            ok: true,
            reason: passed.into(),
        };
    };
    match tokio::time::timeout_at(overall, http_check(stream, http)).await {
        Err(_) => fail("Layer7 timeout".into()),
        Ok(o) => o,
    }
}

pub(crate) fn fail(reason: String) -> Outcome {
    Outcome { ok: false, reason }
}

/// The OS message without Rust's "(os error N)" suffix, like HAProxy's.
pub(crate) fn io_info(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The check request as HAProxy 2.6 writes it: the request line, the
/// `http-check send` headers, a length for a body, and `Connection: close`
/// in HTTP/1.1 only (HTTP/1.0 closes anyway; HAProxy sends none there,
/// so a bare `option httpchk` is just `OPTIONS / HTTP/1.0`).
fn check_request(http: &HttpCheck) -> String {
    let mut request = format!("{} {} {}\r\n", http.method, http.uri, http.version);
    for (name, value) in &http.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !http.body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", http.body.len()));
    }
    if http.version != "HTTP/1.0" {
        request.push_str("Connection: close\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&http.body);
    request
}

async fn http_check<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, http: &HttpCheck) -> Outcome {
    let request = check_request(http);
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return fail(format!(
            "Layer7 connection problem, info: \"{}\"",
            io_info(&e)
        ));
    }
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= MAX_RESPONSE {
                    break;
                }
                // Status-only expectations can stop at the status line.
                let needs_body = matches!(http.expect, Some(HttpExpect::String { .. }));
                if !needs_body && buf.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) => {
                if buf.is_empty() {
                    return fail(format!(
                        "Layer7 connection problem, info: \"{}\"",
                        io_info(&e)
                    ));
                }
                break;
            }
        }
    }
    judge(&buf, http.expect.as_ref())
}

/// Decides a check from the raw response.
pub fn judge(response: &[u8], expect: Option<&HttpExpect>) -> Outcome {
    let line_end = response
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(response.len());
    let line = String::from_utf8_lossy(&response[..line_end]);
    let mut parts = line.splitn(3, ' ');
    let (version, code, text) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let code = match (version, code.and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code,
        _ => return fail("Layer7 invalid response, info: \"no valid HTTP status line\"".into()),
    };
    let (ok, what) = match expect {
        None => (
            (200..400).contains(&code),
            if (200..400).contains(&code) {
                "check passed"
            } else {
                "wrong status"
            },
        ),
        Some(HttpExpect::Status { codes, negate }) => {
            let listed = codes.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code));
            let ok = listed != *negate;
            (ok, if ok { "check passed" } else { "wrong status" })
        }
        Some(HttpExpect::RStatus { regex, negate }) => {
            let ok = regex.0.is_match(code.to_string().as_bytes()) != *negate;
            (ok, if ok { "check passed" } else { "wrong status" })
        }
        Some(HttpExpect::String { text: want, negate }) => {
            let body_at = response
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(response.len(), |i| i + 4);
            let body = &response[body_at..];
            let found = !want.is_empty() && body.windows(want.len()).any(|w| w == want.as_bytes());
            if found == *negate {
                // HAProxy 2.6's words (an invalid response, L7RSP), which
                // differ for `expect ! string`.
                let info = if *negate {
                    "HTTP check matched unwanted content"
                } else {
                    "HTTP content check did not match"
                };
                return fail(format!("Layer7 invalid response, info: \"{info}\""));
            }
            (true, "check passed")
        }
    };
    Outcome {
        ok,
        reason: format!("Layer7 {what}, code: {code}, info: \"{}\"", text.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_continues_from_the_state_a_reload_found() {
        let down = Health::resume(2, 3, false, 5);
        assert!(!down.is_up());
        assert_eq!(down.value(), 1);
        let mut up = Health::resume(2, 3, true, 4);
        assert_eq!(up.value(), 4);
        assert_eq!(up.record(false), Transition::None, "margin kept");
        assert_eq!(Health::resume(2, 3, true, 0).value(), 2);
    }

    #[test]
    fn counting_follows_haproxy() {
        let mut h = Health::new(2, 3);
        assert!(h.is_up());
        // At start a single failure takes the server down.
        assert_eq!(h.record(false), Transition::WentDown);
        assert_eq!(h.record(true), Transition::None);
        assert_eq!(h.record(true), Transition::WentUp);
        // Fully up now: it takes `fall` = 3 failures.
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.record(false), Transition::WentDown);
        // A failure while rising starts over.
        assert_eq!(h.record(true), Transition::None);
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.record(true), Transition::None);
        assert_eq!(h.record(true), Transition::WentUp);
    }

    #[test]
    fn passive_health_moves_the_counter_as_haproxy() {
        // sudden-death: one failed check from DOWN, then one failure.
        let mut h = Health::resume(2, 3, true, 4);
        h.brink();
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.value(), 2);
        assert_eq!(h.record(false), Transition::WentDown);
        // mark-down: DOWN at once, from any margin.
        let mut h = Health::resume(2, 3, true, 4);
        h.lowest_up();
        assert_eq!(h.record(false), Transition::WentDown);
        // Not again when already down or rising.
        let mut h = Health::resume(2, 3, false, 1);
        h.lowest_up();
        assert_eq!(h.record(false), Transition::None);
        assert_eq!(h.value(), 0);
    }

    #[test]
    fn intervals() {
        let c = ServerCheck {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_secs(1),
            downinter: Duration::from_secs(5),
            rise: 2,
            fall: 3,
            target: ServerAddr::Known("127.0.0.1:1".parse().unwrap()),
            ssl: None,
            send_proxy: None,
        };
        let mut h = Health::new(2, 3);
        assert_eq!(h.interval(&c), c.fastinter);
        h.record(true);
        assert_eq!(h.interval(&c), c.inter);
        h.record(false);
        assert_eq!(h.interval(&c), c.fastinter);
        h.record(false);
        h.record(false);
        assert_eq!(h.interval(&c), c.downinter);
    }

    /// What HAProxy 2.6 sent a server, side by side (header names aside:
    /// HAProxy writes them in lower case).
    #[test]
    fn check_requests_are_haproxys() {
        assert_eq!(
            check_request(&HttpCheck::default()),
            "OPTIONS / HTTP/1.0\r\n\r\n"
        );
        let v11 = HttpCheck {
            method: "GET".into(),
            uri: "/a".into(),
            version: "HTTP/1.1".into(),
            ..HttpCheck::default()
        };
        assert_eq!(
            check_request(&v11),
            "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"
        );
        let sent = HttpCheck {
            headers: vec![("Host".into(), "example.com".into())],
            body: "hello".into(),
            ..HttpCheck::default()
        };
        assert_eq!(
            check_request(&sent),
            "OPTIONS / HTTP/1.0\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn judging_responses() {
        let ok = b"HTTP/1.0 200 OK\r\n\r\nhello";
        assert!(judge(ok, None).ok);
        assert_eq!(
            judge(ok, None).reason,
            "Layer7 check passed, code: 200, info: \"OK\""
        );
        let bad = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(
            judge(bad, None).reason,
            "Layer7 wrong status, code: 503, info: \"Service Unavailable\""
        );
        assert!(judge(b"HTTP/1.1 302 Found\r\n\r\n", None).ok);
        let want = HttpExpect::Status {
            codes: vec![(204, 204)],
            negate: false,
        };
        assert!(!judge(ok, Some(&want)).ok);
        let range = HttpExpect::Status {
            codes: vec![(100, 101), (200, 299)],
            negate: false,
        };
        assert!(judge(ok, Some(&range)).ok);
        let not_2xx = HttpExpect::RStatus {
            regex: crate::config::acl::AclRegex(regex::bytes::Regex::new("^2").unwrap()),
            negate: true,
        };
        assert_eq!(
            judge(ok, Some(&not_2xx)).reason,
            "Layer7 wrong status, code: 200, info: \"OK\""
        );
        assert!(judge(b"HTTP/1.1 500 Oops\r\n\r\n", Some(&not_2xx)).ok);
        let s = HttpExpect::String {
            text: "hello".into(),
            negate: false,
        };
        assert!(judge(ok, Some(&s)).ok);
        let absent = HttpExpect::String {
            text: "absent".into(),
            negate: false,
        };
        assert_eq!(
            judge(ok, Some(&absent)).reason,
            "Layer7 invalid response, info: \"HTTP content check did not match\""
        );
        let unwanted = HttpExpect::String {
            text: "hello".into(),
            negate: true,
        };
        assert_eq!(
            judge(ok, Some(&unwanted)).reason,
            "Layer7 invalid response, info: \"HTTP check matched unwanted content\""
        );
        let absent_unwanted = HttpExpect::String {
            text: "absent".into(),
            negate: true,
        };
        assert!(judge(ok, Some(&absent_unwanted)).ok);
        assert!(!judge(b"garbage", None).ok);
    }
}
