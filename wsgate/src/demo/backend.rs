//! The tutorial's WebSocket server (`wsgate demo-backend`).

/// Options of `wsgate demo-backend`.
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Server name shown in replies and pushes.
    #[arg(long)]
    pub name: Option<String>,
    /// Interval between pushed messages (HAProxy time syntax: 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = crate::config::units::parse_time)]
    pub push_interval: std::time::Duration,
}

/// Runs the demo backend until SIGINT/SIGTERM.
pub async fn run(args: BackendArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
