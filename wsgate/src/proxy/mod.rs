//! The running proxy: listeners, sessions and tunnels built from a
//! [`Config`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{Config, Diagnostic};

/// A configuration whose certificates are loaded: ready to bind.
pub struct Prepared {
    config: Config,
}

impl Prepared {
    /// Loads everything that can fail before binding (certificates), so
    /// that `wsgate -c` reports it at the `bind` line.
    pub fn new(config: Config) -> Result<Prepared, Vec<Diagnostic>> {
        Ok(Prepared { config })
    }

    /// Binds every listener and starts serving.
    pub async fn start(self) -> anyhow::Result<Proxy> {
        let _ = self.config;
        anyhow::bail!("not yet")
    }
}

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
}

impl Proxy {
    /// The bound address of every `bind`, in frontend then bind order
    /// (port 0 in the configuration shows the port the kernel chose).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Stops accepting, lets open connections finish for up to `grace`,
    /// then closes what remains.
    pub async fn shutdown(self, grace: Duration) {
        let _ = grace;
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
