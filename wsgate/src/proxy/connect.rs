//! Connecting to a server: the balancer's choice, the queue, `timeout
//! connect`, `retries`, `option redispatch`.
//!
//! HAProxy semantics: the backend chooses a server and takes a connection
//! slot on it (waiting in the queue when servers are at their `maxconn`;
//! `timeout queue` → 503). A failed connection attempt is retried up to
//! `retries` times (default 3) on the same server, after a turn-around
//! delay of min(`timeout connect`, 1 s) so a restarting server is not
//! hammered; with `option redispatch` the last retry goes to another server
//! instead (and without the delay). When every attempt fails the client
//! gets 503. The slot ([`ConnGuard`]) travels with the connection: the
//! session keeps it until the exchange or the tunnel ends.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::backend::{acquire, AcquireError, BackendRuntime, ConnGuard, Counters};
use crate::balance::Fetch;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no server is available")]
    NoServer,
    #[error("{0}")]
    Queue(AcquireError),
    #[error("connection to server {server} failed: {source}")]
    Refused {
        server: String,
        source: std::io::Error,
    },
    #[error("connection to server {server} timed out")]
    Timeout { server: String },
    /// `server ... redir`: the request is answered with a 302 to
    /// `location`, no connection is made.
    #[error("server {server} redirects to {location}")]
    Redirect { server: String, location: String },
}

impl From<AcquireError> for ConnectError {
    fn from(e: AcquireError) -> ConnectError {
        match e {
            AcquireError::NoServer => ConnectError::NoServer,
            other => ConnectError::Queue(other),
        }
    }
}

/// A connected server: its index in the backend, the stream, and the
/// connection slot, released when this is dropped.
pub struct Connected {
    pub server: usize,
    pub stream: TcpStream,
    pub guard: ConnGuard,
    /// How long the request waited for a server slot (`maxconn`): the
    /// access log's `%Tw`, apart from the connect time `%Tc`.
    pub queued: Duration,
}

/// Chooses a server for `req` (its key for hash-based balancing; `prefer`:
/// the server a persistence cookie or stick-table entry named, which
/// bypasses the balancer) and connects to it, retrying as configured.
/// Failed attempts, retries and redispatches are counted on the server and
/// the backend (`econ`, `wretr`, `wredis`).
pub async fn connect(
    backend: &BackendRuntime,
    req: &dyn Fetch,
    prefer: Option<usize>,
) -> Result<Connected, ConnectError> {
    let result = try_connect(backend, req, prefer).await;
    if let Err(ConnectError::NoServer | ConnectError::Queue(_)) = &result {
        Counters::add(&backend.counters.connection_errors, 1);
    }
    result
}

/// `redir <prefix>`: the prefix followed by the request's URI from the
/// leading `/` of its path, for GET and HEAD (HAProxy's rule).
fn redirect_location(prefix: Option<&str>, req: &dyn Fetch) -> Option<String> {
    let prefix = prefix?;
    if !matches!(req.method(), Some("GET" | "HEAD")) {
        return None;
    }
    let uri = req.uri()?;
    let path = match uri.find("://") {
        Some(i) => uri[i + 3..].find('/').map_or("/", |j| &uri[i + 3 + j..]),
        None => uri,
    };
    Some(format!("{prefix}{path}"))
}

async fn try_connect(
    backend: &BackendRuntime,
    req: &dyn Fetch,
    prefer: Option<usize>,
) -> Result<Connected, ConnectError> {
    let cfg = &backend.config;
    let queue_started = Instant::now();
    let mut guard = acquire(backend, req, None, prefer).await?;
    let queued = queue_started.elapsed();
    let attempts = cfg.retries.saturating_add(1);
    let mut last_error = ConnectError::NoServer;
    for attempt in 0..attempts {
        let server = guard.server();
        let target = &cfg.servers[server];
        if let Some(location) = redirect_location(target.redir.as_deref(), req) {
            return Err(ConnectError::Redirect {
                server: target.name.clone(),
                location,
            });
        }
        // A server without an address is in maintenance, so never chosen;
        // were it reached anyway (a race with a reload), no server.
        let Some(addr) = backend.servers[server].addr().known() else {
            return Err(ConnectError::NoServer);
        };
        let result = match cfg.timeouts.connect {
            Some(limit) => tokio::time::timeout(limit, TcpStream::connect(addr)).await,
            None => Ok(TcpStream::connect(addr).await),
        };
        match result {
            Ok(Ok(stream)) => {
                guard.observe_connect(true);
                // Small WebSocket messages must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(Connected {
                    server,
                    stream,
                    guard,
                    queued,
                });
            }
            Ok(Err(source)) => {
                tracing::debug!(backend = %cfg.name, server = %target.name, "connect failed: {source}");
                last_error = ConnectError::Refused {
                    server: target.name.clone(),
                    source,
                };
            }
            Err(_) => {
                tracing::debug!(backend = %cfg.name, server = %target.name, "connect timed out");
                last_error = ConnectError::Timeout {
                    server: target.name.clone(),
                };
            }
        }
        Counters::add(&guard.server_counters().connection_errors, 1);
        Counters::add(&backend.counters.connection_errors, 1);
        guard.observe_connect(false);
        let retries_left = attempts - attempt - 1;
        if retries_left == 0 {
            break;
        }
        Counters::add(&guard.server_counters().retries, 1);
        Counters::add(&backend.counters.retries, 1);
        if cfg.redispatch && retries_left == 1 {
            // Give the slot back before asking for another server.
            let from = guard.server_counters().clone();
            drop(guard);
            // The balancer chooses now, persistence notwithstanding.
            guard = acquire(backend, req, Some(server), None).await?;
            if guard.server() != server {
                Counters::add(&from.redispatches, 1);
                Counters::add(&backend.counters.redispatches, 1);
                continue;
            }
        }
        let turn_around = cfg
            .timeouts
            .connect
            .map_or(Duration::from_secs(1), |c| c.min(Duration::from_secs(1)));
        tokio::time::sleep(turn_around).await;
    }
    Err(last_error)
}
