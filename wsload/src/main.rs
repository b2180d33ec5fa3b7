//! wsload: WebSocket load generator for wsgate's tests and benchmark.
//!
//! Subcommands (each prints one JSON object on stdout; progress and
//! problems go to stderr):
//!
//! * `echo`: N connections, one message in flight each, for a duration;
//!   throughput and round-trip latency percentiles ([`echo`]).
//! * `hold`: open N idle connections at a rate, keep them, then check each
//!   still answers a ping and close it cleanly ([`hold`]).
//!
//! Shared pieces: [`client`] (connecting, ws:// and wss://, `--insecure`,
//! `--ca`) and [`stats`] (durations, histograms, error tallies).
//! The exit status is 0 when the run completed, 1 when it could not start or
//! not a single connection was opened; errors during a run are counted in
//! the JSON, not turned into the exit status, so a benchmark can read them.

mod client;
mod echo;
mod hold;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wsload",
    version,
    about = "WebSocket load generator (JSON results on stdout)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Round trips: each connection sends a message and waits for its echo.
    Echo(echo::EchoArgs),
    /// Idle connections: open N at a rate, hold them, verify, close.
    Hold(hold::HoldArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo(args) => echo::run(args).await,
        Command::Hold(args) => hold::run(args).await,
    };
    match result {
        Ok((report, success)) => {
            println!("{report}");
            if success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("wsload: {e:#}");
            ExitCode::FAILURE
        }
    }
}
