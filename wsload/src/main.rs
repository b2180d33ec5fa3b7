//! wsload: WebSocket load generator for wsgate's tests and benchmark.
//!
//! Subcommands (each prints one JSON object on stdout; progress and
//! problems go to stderr):
//!
//! * `echo`: N connections, one message in flight each, for a duration;
//!   throughput and round-trip latency percentiles ([`echo`]).
//! * `hold`: open N idle connections at a rate, keep them, then check each
//!   still answers a ping and close it cleanly ([`hold`]).
//! * `churn`: open, echo one message, close, at a concurrency, for a
//!   duration; connections per second ([`churn`]).
//! * `serve`: a fast WebSocket echo server (ws and wss), the benchmark's
//!   backend ([`serve`]).
//!
//! `--threads N` (before or after the subcommand) sets the runtime's worker
//! threads: 1 is a single-threaded runtime (the benchmark pins wsload to one
//! core), the default is one per available CPU.
//!
//! Shared pieces: [`client`] (connecting, ws:// and wss://, `--insecure`,
//! `--ca`) and [`stats`] (durations, histograms, error tallies).
//! The exit status is 0 when the run completed, 1 when it could not start or
//! not a single connection was opened; errors during a run are counted in
//! the JSON, not turned into the exit status, so a benchmark can read them.

mod churn;
mod client;
mod echo;
mod hold;
mod serve;
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
    /// Runtime worker threads (1 = single-threaded; default: one per CPU).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Round trips: each connection sends a message and waits for its echo.
    Echo(echo::EchoArgs),
    /// Idle connections: open N at a rate, hold them, verify, close.
    Hold(hold::HoldArgs),
    /// Connection cost: open, echo one message, close, over and over.
    Churn(churn::ChurnArgs),
    /// A fast WebSocket echo server (the benchmark's backend).
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match cli.threads {
        Some(0) => {
            eprintln!("wsload: --threads must be at least 1");
            return ExitCode::FAILURE;
        }
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsload: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Echo(args) => echo::run(args).await,
            Command::Hold(args) => hold::run(args).await,
            Command::Churn(args) => churn::run(args).await,
            Command::Serve(args) => serve::run(args).await,
        }
    });
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
