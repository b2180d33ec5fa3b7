//! Signals that steer a running `wsgate -f`: reload in process, or stop.
//!
//! SIGHUP, and SIGUSR2 (what HAProxy master-worker users send), re-read the
//! `-f` files and call [`Proxy::reload`]: the new configuration is checked
//! completely first, and when it fails the running one stays, with the
//! diagnostics (file:line) printed as `wsgate -c` prints them. One process
//! throughout: no old workers holding WebSockets for hours.
//!
//! SIGTERM, SIGINT and SIGUSR1 (HAProxy's soft stop) end the loop; the
//! caller then stops the proxy gracefully.

use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};

use crate::config;
use crate::proxy::Proxy;

/// Serves reload signals until a stop signal arrives.
pub async fn serve_signals(proxy: &Proxy, files: &[PathBuf]) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(proxy, files),
            _ = usr2.recv() => reload(proxy, files),
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = usr1.recv() => return Ok(()),
        }
    }
}

/// Re-reads the configuration files and applies them, or keeps the running
/// configuration and reports why not.
pub fn reload(proxy: &Proxy, files: &[PathBuf]) {
    tracing::info!("reload requested: reading {}", file_list(files));
    let loaded = config::load_paths(files);
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let Some(config) = loaded.config else {
        tracing::error!(
            "reload refused: the configuration has errors (above); the running one stays"
        );
        return;
    };
    match proxy.reload(config) {
        Ok(summary) => tracing::info!(
            kept = summary.binds_kept,
            added = summary.binds_added,
            removed = summary.binds_removed,
            servers_removed = summary.servers_removed,
            "reloaded"
        ),
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            tracing::error!("reload refused (see above); the running configuration stays");
        }
    }
}

fn file_list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
