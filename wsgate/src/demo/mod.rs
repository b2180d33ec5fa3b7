//! `wsgate demo`: demo backends and wsgate in front of them.

pub mod backend;

/// Options of `wsgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Port of the plain (ws://) listener on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the TLS (wss://) listener on 127.0.0.1.
    #[arg(long, default_value_t = 8443)]
    pub tls_port: u16,
    /// Number of demo backends (s1, s2, ...).
    #[arg(long, default_value_t = 3)]
    pub backends: u16,
}

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
