//! The `wsgate` command line: run a configuration, check one, or run the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use wsgate::config::model::DEFAULT_HARD_STOP_AFTER;
use wsgate::config::{self, Diagnostic};

/// jemalloc rather than glibc's malloc: it keeps small objects of one size
/// together, so the few hundred bytes an idle tunnel keeps do not pin the
/// pages its handshake used, and returns freed pages on request
/// (`proxy/trim.rs`). Measured with 9,000 idle WebSockets: 1.25 KiB of RSS
/// each instead of 1.97 (docs/performance.md, "Idle memory").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "wsgate",
    version,
    about = "A WebSocket-first reverse proxy and load balancer that reads HAProxy's configuration language",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Configuration file or directory (its *.cfg files in lexical order); repeatable.
    #[arg(short = 'f', value_name = "FILE|DIR")]
    files: Vec<PathBuf>,
    /// Check the configuration and exit: 0 when valid, 1 when not.
    #[arg(short = 'c')]
    check: bool,
    /// With -c: check the language alone. Files named by the configuration
    /// (certificates, CA files) are not read and host names are not resolved,
    /// so the result is the same on any machine.
    #[arg(long, requires = "check")]
    syntax_only: bool,
    /// Print the keyword table (supported, ignored, rejected) as Markdown and exit.
    #[arg(long)]
    list_keywords: bool,
    /// Write the process id to this file at start (as HAProxy's -p; wins over `pidfile`).
    #[arg(short = 'p', value_name = "PIDFILE")]
    pidfile: Option<PathBuf>,
    /// Accepted for HAProxy compatibility and ignored: wsgate stays in the foreground,
    /// for the service manager to supervise.
    #[arg(short = 'D')]
    daemon: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Start three demo WebSocket servers and wsgate in front of them (ws and wss).
    Demo(wsgate::demo::DemoArgs),
    /// Run the tutorial's WebSocket server: echoes messages, pushes one every interval.
    DemoBackend(wsgate::demo::backend::BackendArgs),
    /// Print a configuration rewritten in current HAProxy syntax (removed keywords replaced,
    /// a comment above each changed line).
    Migrate {
        /// The configuration file to rewrite.
        #[arg(short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Some(Command::Demo(args)) => block_on(wsgate::demo::run(args)),
        Some(Command::DemoBackend(args)) => block_on(wsgate::demo::backend::run(args)),
        Some(Command::Migrate { file }) => migrate(&file),
        None => run(cli.run),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WSGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(file: &std::path::Path) -> ExitCode {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let (new, changes) = config::migrate::migrate(&text);
            print!("{new}");
            eprintln!("wsgate migrate: {changes} line(s) rewritten");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsgate migrate: cannot read {}: {e}", file.display());
            ExitCode::from(1)
        }
    }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}");
    }
    let environment = diagnostics
        .iter()
        .filter(|d| d.is_error() && d.is_environment())
        .count();
    if environment > 0 {
        eprintln!(
            "{environment} error(s) marked [environment] are about this machine (files, host names), \
             not the configuration language; `wsgate -c --syntax-only` checks the language alone"
        );
    }
}

fn run(args: RunArgs) -> ExitCode {
    if args.list_keywords {
        print!("{}", config::keywords::markdown_table());
        return ExitCode::SUCCESS;
    }
    if args.files.is_empty() {
        eprintln!(
            "wsgate: no configuration given; use -f <file|dir>, or `wsgate demo` (see --help)"
        );
        return ExitCode::from(1);
    }
    let options = config::Options {
        syntax_only: args.syntax_only,
    };
    let loaded = config::load_paths_with(&args.files, options);
    let mut diagnostics = loaded.diagnostics;
    let Some(config) = loaded.config else {
        print_diagnostics(&diagnostics);
        return ExitCode::from(1);
    };
    if args.syntax_only {
        print_diagnostics(&diagnostics);
        eprintln!("Configuration file is valid (language only: files and host names not checked)");
        return ExitCode::SUCCESS;
    }
    // Certificates are part of the configuration: a file that does not load
    // is reported at its `bind` line, by `-c` too.
    let hard_stop_after = config.global.hard_stop_after;
    let mut process = config.global.process.clone();
    if let Some(p) = args.pidfile {
        process.pidfile = Some(p);
    }
    let prepared = wsgate::proxy::Prepared::new(config);
    // Notes (each certificate loaded) are for `-c`; warnings always.
    let keep = |d: &Diagnostic| args.check || d.severity != config::Severity::Note;
    let prepared = match prepared {
        Ok(p) => p,
        Err(errors) => {
            // Preparing only reads the files the configuration names
            // (certificates, CA files): its errors are about the machine.
            diagnostics.extend(errors.into_iter().filter(|d| keep(d)).map(|d| {
                if d.is_error() {
                    d.environment()
                } else {
                    d
                }
            }));
            print_diagnostics(&diagnostics);
            return ExitCode::from(1);
        }
    };
    diagnostics.extend(prepared.diagnostics().iter().filter(|d| keep(d)).cloned());
    print_diagnostics(&diagnostics);
    if args.check {
        eprintln!("Configuration file is valid");
        return ExitCode::SUCCESS;
    }
    if args.daemon {
        tracing::warn!(
            "-D ignored: wsgate stays in the foreground; run it under a service manager"
        );
    }
    let files = args.files;
    // Before any thread starts: socket activation edits the environment.
    wsgate::systemd::adopt_listen_fds();
    block_on(async move {
        let signals = wsgate::reload::Signals::install()?;
        let sockets = prepared.stats_sockets();
        let cli = match wsgate::admin::cli::bind_all(&sockets) {
            Ok(bound) => bound,
            Err(e) => anyhow::bail!("{e}"),
        };
        // Bound and certificates read, nothing accepted yet: now the pid
        // file and the switch of user, as HAProxy.
        let proxy = prepared
            .start_then(|| {
                if let Some(path) = &process.pidfile {
                    wsgate::process::write_pidfile(path).map_err(|e| e.to_string())?;
                }
                wsgate::process::drop_privileges(&process).map_err(|e| e.to_string())
            })
            .await?;
        if let Some(u) = &process.user {
            if process.group.is_none() {
                tracing::warn!(
                    "running as user '{}' with group id unchanged (no `group`/`gid`, as HAProxy)",
                    u.name
                );
            }
        }
        for addr in proxy.local_addrs() {
            tracing::info!("listening on {addr}");
        }
        for b in &cli {
            if let Some(addr) = b.tcp_addr() {
                tracing::info!("runtime API on {addr}");
            }
        }
        let (reloads, reload_requests) = tokio::sync::mpsc::channel(4);
        tokio::spawn(wsgate::admin::cli::serve(
            cli,
            std::sync::Arc::new(proxy.runtime_handle()),
            reloads,
            proxy.stop_token(),
        ));
        let origin = match hard_stop_after {
            Some(_) => "hard-stop-after",
            None => "default; set hard-stop-after to change",
        };
        tracing::info!(
            "on stop, open connections get {:?} ({origin})",
            hard_stop_after.unwrap_or(DEFAULT_HARD_STOP_AFTER)
        );
        for addr in wsgate::systemd::unclaimed() {
            tracing::warn!("socket activation: {addr} matches no bind; not served");
        }
        let notifier = wsgate::systemd::Notifier::from_env();
        if let Some(n) = &notifier {
            n.ready(&format!(
                "running; listening on {} address(es)",
                proxy.local_addrs().len()
            ));
        }
        signals
            .serve(&proxy, &files, reload_requests, notifier.as_ref())
            .await;
        if let Some(n) = &notifier {
            n.stopping();
        }
        // The configuration in force now (a reload may have changed it).
        let global = proxy.runtime().global.clone();
        if let Some(grace) = global.process.grace {
            tracing::info!("stop requested: serving as usual for {grace:?} (grace)");
            tokio::time::sleep(grace).await;
        }
        tracing::info!("stopping: no new connections; WebSockets get close 1001");
        proxy.shutdown(global.hard_stop_after()).await;
        if let Some(path) = &process.pidfile {
            // Best effort: after the switch of user the directory may not
            // let us (HAProxy leaves the file in place).
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    })
}
