//! What steers a running `wsgate -f`: reload in process, or stop.
//!
//! SIGHUP, SIGUSR2 (what HAProxy master-worker users send) and the runtime
//! API's `reload` command re-read the `-f` files and call
//! [`Proxy::reload`]: the new configuration is checked completely first,
//! and when it fails the running one stays, with the diagnostics
//! (file:line) printed as `wsgate -c` prints them — and returned to the
//! runtime API client. One process throughout: no old workers holding
//! WebSockets for hours. Under systemd, each reload is announced
//! (`RELOADING=1`, then `READY=1`) so `systemctl reload` waits for it.
//!
//! SIGTERM, SIGINT and SIGUSR1 (HAProxy's soft stop) end the loop; the
//! caller then stops the proxy gracefully.

use std::path::PathBuf;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::config;
use crate::proxy::Proxy;
use crate::systemd::Notifier;

/// The outcome of one reload, as the runtime API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// The new configuration is in force.
    pub applied: bool,
    /// Diagnostics and the summary, one per line.
    pub messages: String,
}

/// A reload asked for by the runtime API; the report goes back on the
/// enclosed channel.
pub type ReloadRequest = oneshot::Sender<ReloadReport>;

/// Where the runtime API sends reload requests.
pub type ReloadRequests = mpsc::Sender<ReloadRequest>;

/// The signals wsgate answers, registered before the proxy starts, so that
/// a SIGHUP sent as soon as it is ready (systemd may) is never lost or,
/// worse, taken with its default action (exit).
pub struct Signals {
    hup: Signal,
    usr2: Signal,
    term: Signal,
    int: Signal,
    usr1: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Serves reload signals and requests until a stop signal arrives.
    pub async fn serve(
        mut self,
        proxy: &Proxy,
        files: &[PathBuf],
        mut requests: mpsc::Receiver<ReloadRequest>,
        notifier: Option<&Notifier>,
    ) {
        let announced = |proxy: &Proxy, files: &[PathBuf]| {
            if let Some(n) = notifier {
                n.reloading();
            }
            let report = reload(proxy, files);
            if let Some(n) = notifier {
                let status = if report.applied {
                    "running; last reload applied"
                } else {
                    "running; last reload refused, previous configuration in force"
                };
                n.ready(status);
            }
            report
        };
        loop {
            tokio::select! {
                _ = self.hup.recv() => { announced(proxy, files); }
                _ = self.usr2.recv() => { announced(proxy, files); }
                Some(reply) = requests.recv() => {
                    let _ = reply.send(announced(proxy, files));
                }
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.usr1.recv() => return,
            }
        }
    }
}

/// Re-reads the configuration files and applies them, or keeps the running
/// configuration and reports why not.
pub fn reload(proxy: &Proxy, files: &[PathBuf]) -> ReloadReport {
    tracing::info!("reload requested: reading {}", file_list(files));
    let mut messages = String::new();
    let loaded = config::load_paths(files);
    for d in &loaded.diagnostics {
        say(&mut messages, d);
    }
    let applied = match loaded.config {
        None => {
            say(
                &mut messages,
                &"reload refused: the configuration has errors; the running one stays",
            );
            false
        }
        Some(config) => match proxy.reload(config) {
            Ok(summary) => {
                tracing::info!(
                    kept = summary.binds_kept,
                    added = summary.binds_added,
                    removed = summary.binds_removed,
                    servers_removed = summary.servers_removed,
                    "reloaded"
                );
                messages.push_str(&format!(
                    "reloaded: {} bind(s) kept, {} added, {} removed; {} server(s) removed\n",
                    summary.binds_kept,
                    summary.binds_added,
                    summary.binds_removed,
                    summary.servers_removed
                ));
                true
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    say(&mut messages, d);
                }
                say(
                    &mut messages,
                    &"reload refused; the running configuration stays",
                );
                false
            }
        },
    };
    if !applied {
        tracing::error!("reload refused (see above); the running configuration stays");
    }
    ReloadReport { applied, messages }
}

/// Prints one diagnostic as `wsgate -c` does and keeps it for the report.
fn say(messages: &mut String, d: &dyn std::fmt::Display) {
    eprintln!("{d}");
    messages.push_str(&format!("{d}\n"));
}

fn file_list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
