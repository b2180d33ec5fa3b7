//! The running proxy: listeners, sessions and tunnels built from a
//! [`Config`].
//!
//! Stage: `main` (or the demo) loads a [`Config`], [`Prepared::new`] loads
//! what can fail before binding (certificates, reported as diagnostics at
//! their `bind` line), [`Prepared::start`] binds every listener and spawns
//! the accept loops, and [`Proxy::shutdown`] stops them and waits for open
//! sessions up to a grace time.

mod buffers;
mod connect;
pub mod counters;
mod errors;
pub mod http1;
mod io;
mod listener;
pub mod route;
mod session;
mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::BackendRuntime;
use crate::config::model::{Frontend, Global};
use crate::config::{Config, Diagnostic};

/// What sessions share: the configuration and the backends' run-time state.
pub struct Runtime {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<BackendRuntime>,
    /// Frontend and process counters, the access logger.
    pub obs: counters::Observability,
}

/// A configuration whose certificates are loaded: ready to bind.
pub struct Prepared {
    runtime: Runtime,
    /// Per frontend, per bind: the TLS acceptor of `ssl` binds.
    tls: Vec<Vec<Option<TlsAcceptor>>>,
}

impl Prepared {
    /// Loads everything that can fail before binding (certificates), so
    /// that `wsgate -c` reports it at the `bind` line.
    pub fn new(config: Config) -> Result<Prepared, Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let mut tls = Vec::with_capacity(config.frontends.len());
        for fe in &config.frontends {
            let mut per_bind = Vec::with_capacity(fe.binds.len());
            for bind in &fe.binds {
                per_bind.push(match &bind.ssl {
                    None => None,
                    Some(ssl) => match crate::tls::server_config(ssl) {
                        Ok(cfg) => Some(TlsAcceptor::from(cfg)),
                        Err(e) => {
                            let mut d = Diagnostic::error(bind.location.clone(), e.to_string());
                            if let Some(hint) = e.hint() {
                                d = d.with_hint(hint);
                            }
                            errors.push(d);
                            None
                        }
                    },
                });
            }
            tls.push(per_bind);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let obs = counters::Observability::new(&config);
        let runtime = Runtime {
            obs,
            global: config.global,
            frontends: config.frontends,
            backends: config
                .backends
                .into_iter()
                .map(BackendRuntime::new)
                .collect(),
        };
        Ok(Prepared { runtime, tls })
    }

    /// The runtime API sockets to open (`stats socket`).
    pub fn stats_sockets(&self) -> Vec<crate::config::model::StatsSocket> {
        self.runtime.global.stats_sockets.clone()
    }

    /// Binds every listener and starts serving. A bind that fails (address
    /// in use, permission denied for a port below 1024) is reported with its
    /// configuration line, and nothing is left listening.
    ///
    /// Threading: one worker thread per CPU the process may run on, each
    /// with its own single-threaded tokio runtime and its own SO_REUSEPORT
    /// socket per `bind`. A connection lives on the thread that accepted it,
    /// so the data path has no cross-thread wake-ups, work stealing or
    /// atomics beyond the shared counters (measured: the multi-threaded
    /// scheduler cost noticeably more user time per message; see
    /// docs/performance.md).
    pub async fn start(self) -> Result<Proxy, StartError> {
        raise_fd_limit();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let global_slots = Arc::new(Semaphore::new(global_maxconn(&self.runtime.global)));
        let runtime = Arc::new(self.runtime);
        let frontend_slots: Vec<Option<Arc<Semaphore>>> = runtime
            .frontends
            .iter()
            .map(|fe| fe.maxconn.map(|n| Arc::new(Semaphore::new(n as usize))))
            .collect();

        // The first thread's sockets are bound on the configured addresses;
        // the others on the addresses those got (port 0 becomes a real port
        // once, shared by all threads).
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut per_thread: Vec<Vec<listener::Listener>> = Vec::with_capacity(threads);
        for thread in 0..threads {
            let mut listeners = Vec::new();
            let mut index = 0;
            for (fe_index, (fe, tls)) in runtime.frontends.iter().zip(&self.tls).enumerate() {
                for (bind, tls) in fe.binds.iter().zip(tls) {
                    let addr = if thread == 0 { bind.addr } else { addrs[index] };
                    let socket = listener::bind(addr).map_err(|source| StartError::Bind {
                        location: bind.location.to_string(),
                        addr: bind.addr,
                        source,
                    })?;
                    if thread == 0 {
                        addrs.push(socket.local_addr().unwrap_or(bind.addr));
                    }
                    index += 1;
                    listeners.push(listener::Listener {
                        socket,
                        runtime: runtime.clone(),
                        frontend: fe_index,
                        tls: tls.clone(),
                        global_slots: global_slots.clone(),
                        frontend_slots: frontend_slots[fe_index].clone(),
                    });
                }
            }
            per_thread.push(listeners);
        }

        let shutdown = CancellationToken::new();
        let sessions = TaskTracker::new();
        start_health_checks(&runtime, &shutdown).map_err(StartError::Thread)?;
        for (thread, listeners) in per_thread.into_iter().enumerate() {
            let shutdown = shutdown.clone();
            let sessions = sessions.clone();
            std::thread::Builder::new()
                .name(format!("wsgate-worker-{thread}"))
                .spawn(move || worker(listeners, shutdown, sessions))
                .map_err(StartError::Thread)?;
        }
        Ok(Proxy {
            addrs,
            shutdown,
            sessions,
            runtime,
        })
    }
}

/// One worker thread: its accept loops and every session they start, on a
/// single-threaded runtime, until shutdown and the last session are over.
fn worker(listeners: Vec<listener::Listener>, shutdown: CancellationToken, sessions: TaskTracker) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start a worker runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let accept_loops = TaskTracker::new();
        for l in listeners {
            accept_loops.spawn(l.run(shutdown.clone(), sessions.clone()));
        }
        accept_loops.close();
        accept_loops.wait().await;
        // Sessions started here are driven by this runtime: keep it running
        // until they are all over (or the process exits after the grace).
        sessions.wait().await;
    });
}

/// Runs every server's health checks (`check`) on a thread of their own
/// until `shutdown`, so checks keep their rhythm whatever the traffic.
fn start_health_checks(
    runtime: &Arc<Runtime>,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let checked: Vec<(usize, usize)> = runtime
        .backends
        .iter()
        .enumerate()
        .flat_map(|(b, be)| {
            be.config
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.check.is_some())
                .map(move |(s, _)| (b, s))
        })
        .collect();
    if checked.is_empty() {
        return Ok(());
    }
    let runtime = runtime.clone();
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("wsgate-health".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start the health-check runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let tasks = TaskTracker::new();
                for (b, s) in checked {
                    let handle = BackendHandle {
                        runtime: runtime.clone(),
                        backend: b,
                    };
                    tasks.spawn(crate::backend::health::run(handle, s, shutdown.clone()));
                }
                tasks.close();
                tasks.wait().await;
            });
        })?;
    Ok(())
}

/// One backend of the shared runtime, owned (for tasks such as health
/// checks that outlive the call that starts them).
struct BackendHandle {
    runtime: Arc<Runtime>,
    backend: usize,
}

impl std::ops::Deref for BackendHandle {
    type Target = BackendRuntime;
    fn deref(&self) -> &BackendRuntime {
        &self.runtime.backends[self.backend]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{location}: error: cannot bind {addr}: {source}")]
    Bind {
        location: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
    runtime: Arc<Runtime>,
}

impl Proxy {
    /// The shared runtime (for the runtime API and the stats views).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.clone()
    }

    /// Cancelled when the proxy stops (for tasks that live as long).
    pub fn stop_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The bound address of every `bind`, in frontend then bind order
    /// (port 0 in the configuration shows the port the kernel chose).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Stops accepting at once, closes idle keep-alive connections, lets
    /// open exchanges and tunnels finish for up to `grace`, then returns
    /// (whatever is still open ends with the process).
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.sessions.close();
        if tokio::time::timeout(grace, self.sessions.wait())
            .await
            .is_err()
        {
            tracing::info!(
                open = self.sessions.len(),
                "grace time over; closing the remaining connections"
            );
        }
    }
}

/// Global `maxconn`, or as HAProxy does when unset: what the file
/// descriptor limit allows, two descriptors per proxied connection.
fn global_maxconn(global: &Global) -> usize {
    if let Some(n) = global.maxconn {
        return n as usize;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let fds = if ok { limit.rlim_cur as usize } else { 1024 };
    (fds.saturating_sub(64) / 2).max(1)
}

/// Raises the soft file descriptor limit to the hard one, as HAProxy does
/// at start-up, so `maxconn` is not capped by a low default.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
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
