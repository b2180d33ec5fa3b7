//! Connecting to a server: `timeout connect`, `retries`, `option redispatch`.
//!
//! HAProxy semantics: a failed connection attempt is retried up to
//! `retries` times (default 3) on the same server, after a turn-around
//! delay of min(`timeout connect`, 1 s) so a restarting server is not
//! hammered; with `option redispatch` the last retry goes to another server
//! instead (and without the delay). When every attempt fails the client
//! gets 503.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::backend::BackendRuntime;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no server is available")]
    NoServer,
    #[error("connection to server {server} failed: {source}")]
    Refused {
        server: String,
        source: std::io::Error,
    },
    #[error("connection to server {server} timed out")]
    Timeout { server: String },
}

/// A connected server: its index in the backend and the stream.
pub struct Connected {
    pub server: usize,
    pub stream: TcpStream,
}

pub async fn connect(backend: &BackendRuntime) -> Result<Connected, ConnectError> {
    let cfg = &backend.config;
    let mut server = backend.pick(None).ok_or(ConnectError::NoServer)?;
    let attempts = cfg.retries.saturating_add(1);
    let mut last_error = ConnectError::NoServer;
    for attempt in 0..attempts {
        let target = &cfg.servers[server];
        let result = match cfg.timeouts.connect {
            Some(limit) => tokio::time::timeout(limit, TcpStream::connect(target.addr)).await,
            None => Ok(TcpStream::connect(target.addr).await),
        };
        match result {
            Ok(Ok(stream)) => {
                // Small WebSocket messages must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(Connected { server, stream });
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
        let retries_left = attempts - attempt - 1;
        if retries_left == 0 {
            break;
        }
        if cfg.redispatch && retries_left == 1 {
            if let Some(other) = backend.pick(Some(server)) {
                if other != server {
                    server = other;
                    continue;
                }
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
