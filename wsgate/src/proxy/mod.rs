//! The running proxy: listeners, sessions and tunnels built from a
//! [`Config`].
//!
//! Stage: `main` (or the demo) loads a [`Config`], [`Prepared::new`] loads
//! what can fail before binding (certificates, reported as diagnostics at
//! their `bind` line), [`Prepared::start`] binds every listener and spawns
//! the accept loops, and [`Proxy::shutdown`] stops them and waits for open
//! sessions up to a grace time.

mod after;
mod auth;
mod buffers;
pub mod captured;
mod connect;
pub mod counters;
mod errors;
pub mod http1;
mod inspect;
mod io;
mod listener;
pub mod maxconn;
mod monitor;
mod mqtt;
mod park;
mod persist;
pub mod registry;
pub mod route;
mod rules;
mod session;
mod track;
mod trim;
mod tunnel;
mod upstream;
mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::sessions::{self, ServerSessions};
use crate::backend::BackendRuntime;
use crate::config::model::{Frontend, Global, Location};
use crate::config::{Config, Diagnostic};
use crate::tls::client::ServerTls;

/// What sessions share: the configuration and the backends' run-time state.
/// Replaced as a whole on reload; sessions keep the one they started with.
pub struct Runtime {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<BackendRuntime>,
    /// Frontend and process counters, the access logger.
    pub obs: counters::Observability,
    /// What each listening address serves (the bound address: a `bind` on
    /// port 0 is known by the port it got).
    binds: HashMap<SocketAddr, BindTarget>,
    /// Per frontend, the permits of its `maxconn` (`frontend_limits`).
    frontend_slots: Vec<Option<Arc<Semaphore>>>,
    /// Per frontend, its `maxconn` (unlimited when unset), which `set
    /// maxconn frontend` changes; a reload starts from the file again.
    pub frontend_limits: Vec<Arc<maxconn::ConnLimit>>,
    /// Global `maxconn` (`set maxconn global`): one for the process, kept
    /// across reloads.
    pub global_limit: Arc<maxconn::ConnLimit>,
    /// Per server, the signal that ends its tunnels (see
    /// backend/sessions.rs); kept across reloads for servers that stay
    /// (same backend, name and address), so their tunnels stay reachable.
    server_sessions: HashMap<ServerKey, Arc<ServerSessions>>,
    /// TLS to servers (`server ... ssl`), by (backend, server) index.
    server_tls: HashMap<(usize, usize), Arc<ServerTls>>,
    /// Per frontend, its `stick-table` (track.rs).
    pub frontend_tables: Vec<Option<Arc<crate::backend::stick::StickTable>>>,
}

/// A server's identity across reloads: a changed address is a new server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    backend: String,
    server: String,
    addr: crate::config::model::ServerAddr,
}

#[derive(Clone)]
struct BindTarget {
    frontend: usize,
    tls: Option<crate::tls::Acceptor>,
    /// `accept-proxy`.
    accept_proxy: bool,
}

impl Runtime {
    /// The TLS settings of a server with `ssl`.
    pub(crate) fn server_tls(&self, backend: usize, server: usize) -> Option<&Arc<ServerTls>> {
        self.server_tls.get(&(backend, server))
    }

    /// The tunnels of a server, as a group that can be closed.
    pub(crate) fn server_sessions(
        &self,
        backend: usize,
        server: usize,
    ) -> Option<&Arc<ServerSessions>> {
        self.backends.get(backend)?.sessions.get(server)
    }
}

/// The runtime that new connections use, swapped by [`Proxy::reload`].
/// Read once per accepted connection, never on the data path.
struct Shared {
    runtime: RwLock<Arc<Runtime>>,
}

impl Shared {
    fn current(&self) -> Arc<Runtime> {
        // A poisoned lock only means a panic elsewhere mid-swap; the Arc
        // inside is whole either way.
        self.runtime
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, runtime: Arc<Runtime>) -> Arc<Runtime> {
        let mut slot = self.runtime.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *slot, runtime)
    }
}

/// A configuration whose certificates are loaded: ready to bind.
pub struct Prepared {
    config: Config,
    /// Per frontend, per bind: the TLS acceptor of `ssl` binds.
    tls: Vec<Vec<Option<crate::tls::Acceptor>>>,
    /// Certificate notes and warnings (see [`Prepared::diagnostics`]).
    report: Vec<Diagnostic>,
    /// TLS to servers (`server ... ssl`), by (backend, server) index.
    server_tls: HashMap<(usize, usize), Arc<ServerTls>>,
}

impl Prepared {
    /// Loads everything that can fail before binding (certificates), so
    /// that `wsgate -c` reports it at the `bind` line.
    pub fn new(config: Config) -> Result<Prepared, Vec<Diagnostic>> {
        let mut report: Vec<Diagnostic> = Vec::new();
        let mut tls = Vec::with_capacity(config.frontends.len());
        for fe in &config.frontends {
            let mut per_bind = Vec::with_capacity(fe.binds.len());
            for bind in &fe.binds {
                per_bind.push(match &bind.ssl {
                    None => None,
                    Some(ssl) => {
                        // Certificate notes and warnings, and errors.
                        let loaded = crate::tls::load_bind(ssl, &bind.location);
                        report.extend(loaded.diagnostics);
                        loaded.acceptor
                    }
                });
            }
            tls.push(per_bind);
        }
        let mut server_tls = HashMap::new();
        for (b, be) in config.backends.iter().enumerate() {
            for (s, srv) in be.servers.iter().enumerate() {
                let Some(ssl) = &srv.ssl else { continue };
                match ServerTls::new(ssl) {
                    Ok(t) => {
                        server_tls.insert((b, s), Arc::new(t));
                    }
                    Err(e) => report.push(Diagnostic::error(
                        srv.location.clone(),
                        format!("server '{}': {e}", srv.name),
                    )),
                }
            }
        }
        if report.iter().any(Diagnostic::is_error) {
            return Err(report);
        }
        Ok(Prepared {
            config,
            tls,
            report,
            server_tls,
        })
    }

    /// The runtime API sockets to open (`stats socket`).
    pub fn stats_sockets(&self) -> Vec<crate::config::model::StatsSocket> {
        self.config.global.stats_sockets.clone()
    }

    /// Notes (certificates loaded) and warnings found while preparing;
    /// on failure, [`Prepared::new`] returns them with the errors.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.report
    }

    /// Every `bind`: its configured address and where it was written.
    fn binds(&self) -> Vec<(SocketAddr, Location)> {
        self.config
            .frontends
            .iter()
            .flat_map(|fe| fe.binds.iter().map(|b| (b.addr, b.location.clone())))
            .collect()
    }

    /// The run-time state for this configuration; `bound` holds the
    /// listening address of every bind, in [`Prepared::binds`] order.
    /// Servers that `previous` also had keep their removal token, so their
    /// WebSockets are left alone.
    fn into_runtime(
        self,
        bound: &[SocketAddr],
        stop: &CancellationToken,
        previous: Option<&Runtime>,
    ) -> Runtime {
        let Prepared {
            config,
            tls,
            server_tls,
            ..
        } = self;
        let mut binds = HashMap::new();
        let mut addrs = bound.iter();
        for (fe_index, (fe, tls)) in config.frontends.iter().zip(tls).enumerate() {
            for (bind, tls) in fe.binds.iter().zip(tls) {
                let addr = addrs.next().copied().unwrap_or(bind.addr);
                binds.insert(
                    addr,
                    BindTarget {
                        frontend: fe_index,
                        tls,
                        accept_proxy: bind.accept_proxy,
                    },
                );
            }
        }
        let frontend_limits: Vec<Arc<maxconn::ConnLimit>> = config
            .frontends
            .iter()
            .map(|fe| maxconn::ConnLimit::new(fe.maxconn.map(|n| n as usize)))
            .collect();
        let frontend_slots = frontend_limits
            .iter()
            .map(|l| Some(l.permits().clone()))
            .collect();
        let global_limit = previous.map_or_else(
            || maxconn::ConnLimit::new(Some(global_maxconn(&config.global))),
            |p| p.global_limit.clone(),
        );
        let obs = counters::Observability::new(
            &config,
            previous.map(|p| (&p.obs, p.frontends.as_slice())),
        );
        let frontend_tables = track::frontend_tables(&config.frontends, previous);
        let mut backends: Vec<BackendRuntime> = config
            .backends
            .into_iter()
            .map(BackendRuntime::new)
            .collect();
        if let Some(previous) = previous {
            for be in &mut backends {
                if let Some(old) = previous
                    .backends
                    .iter()
                    .find(|o| o.config.name == be.config.name)
                {
                    be.inherit(old);
                    be.keep_table(old);
                }
            }
        }
        let mut server_sessions = HashMap::new();
        for be in &mut backends {
            for srv in &be.config.servers {
                let key = ServerKey {
                    backend: be.config.name.clone(),
                    server: srv.name.clone(),
                    addr: srv.addr,
                };
                let sessions = previous
                    .and_then(|p| p.server_sessions.get(&key).cloned())
                    .unwrap_or_else(|| Arc::new(ServerSessions::new(stop.child_token())));
                be.sessions.push(sessions.clone());
                server_sessions.insert(key, sessions);
            }
        }
        Runtime {
            obs,
            global: config.global,
            frontends: config.frontends,
            backends,
            binds,
            frontend_slots,
            frontend_limits,
            global_limit,
            server_sessions,
            server_tls,
            frontend_tables,
        }
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
        self.start_then(|| Ok(())).await
    }

    /// [`Prepared::start`], running `before_serving` once every socket is
    /// bound and before the first connection is accepted: where the pid
    /// file is written and root privileges are dropped, so no connection
    /// is ever served as root.
    pub async fn start_then(
        self,
        before_serving: impl FnOnce() -> Result<(), String>,
    ) -> Result<Proxy, StartError> {
        raise_fd_limit();
        let threads = match self.config.global.nbthread {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let shutdown = CancellationToken::new();
        let sessions = TaskTracker::new();
        let workers = match start_workers(threads, &shutdown, &sessions) {
            Ok(w) => w,
            Err(e) => {
                shutdown.cancel();
                return Err(StartError::Thread(e));
            }
        };
        let bound = match bind_all(&self.binds(), threads) {
            Ok(b) => b,
            Err(e) => {
                // Let the worker threads end.
                shutdown.cancel();
                sessions.close();
                return Err(e);
            }
        };
        let actual: Vec<SocketAddr> = bound.iter().map(|b| b.actual).collect();
        let runtime = Arc::new(self.into_runtime(&actual, &shutdown, None));
        let global_slots = runtime.global_limit.permits().clone();
        let health = shutdown.child_token();
        if let Err(e) = start_health_checks(&runtime, &health) {
            shutdown.cancel();
            sessions.close();
            return Err(StartError::Thread(e));
        }
        let proxy = Proxy {
            shared: Arc::new(Shared {
                runtime: RwLock::new(runtime),
            }),
            workers,
            listeners: Mutex::new(Vec::new()),
            health: Mutex::new(health),
            global_slots,
            shutdown,
            sessions,
        };
        if let Err(e) = before_serving() {
            proxy.shutdown.cancel();
            proxy.sessions.close();
            return Err(StartError::BeforeServing(e));
        }
        tokio::spawn(trim::after_bursts(
            proxy.shared.current().obs.process.clone(),
            proxy.shutdown.clone(),
        ));
        proxy.spawn_listeners(bound);
        Ok(proxy)
    }
}

/// Idle tunnels parked now, in all workers (park.rs).
pub fn parked_tunnels() -> u64 {
    park::parked_now()
}

/// Starts the worker threads and returns a handle to each one's runtime.
fn start_workers(
    threads: usize,
    shutdown: &CancellationToken,
    sessions: &TaskTracker,
) -> std::io::Result<Vec<tokio::runtime::Handle>> {
    let mut handles = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (tx, rx) = std::sync::mpsc::channel();
        let shutdown = shutdown.clone();
        let sessions = sessions.clone();
        std::thread::Builder::new()
            .name(format!("wsgate-worker-{thread}"))
            .spawn(move || worker(tx, shutdown, sessions))?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("a worker thread could not start its runtime"))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// One worker thread: a single-threaded runtime that drives the accept
/// loops and sessions spawned onto it, until shutdown and the last session
/// are over.
fn worker(
    handle_tx: std::sync::mpsc::Sender<tokio::runtime::Handle>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
) {
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
    if handle_tx.send(rt.handle().clone()).is_err() {
        return;
    }
    rt.block_on(async move {
        // Idle tunnels of this worker are parked here (park.rs); without
        // it they stay in their tasks, as they would anyway.
        let parked = sessions.clone();
        tokio::spawn(async move {
            if let Err(e) = park::run(parked).await {
                tracing::warn!("idle tunnels will not be parked on this worker: {e}");
            }
        });
        shutdown.cancelled().await;
        // Sessions started here are driven by this runtime: keep it running
        // until they are all over (or the process exits after the grace).
        sessions.wait().await;
    });
}

/// Sockets bound for one `bind`: one per worker thread.
struct Bound {
    actual: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

/// Binds every address once per worker thread. The first socket is bound
/// on the configured address, the others on the address it got (port 0
/// becomes a real port once, shared by all threads). A socket passed by
/// systemd for the address (socket activation) is used instead; the
/// workers then share it (duplicated descriptors, one accept queue), since
/// the manager's socket may lack SO_REUSEPORT.
fn bind_all(binds: &[(SocketAddr, Location)], threads: usize) -> Result<Vec<Bound>, StartError> {
    let mut out = Vec::with_capacity(binds.len());
    for (key, location) in binds {
        let err = |source| StartError::Bind {
            location: location.clone(),
            addr: *key,
            source,
        };
        if let Some(inherited) = crate::systemd::take_listener(*key) {
            let mut sockets = Vec::with_capacity(threads);
            for _ in 1..threads {
                sockets.push(inherited.try_clone().map_err(err)?);
            }
            sockets.push(inherited);
            out.push(Bound {
                actual: *key,
                sockets,
            });
            continue;
        }
        let first = listener::bind(*key).map_err(err)?;
        let actual = first.local_addr().unwrap_or(*key);
        let mut sockets = vec![first];
        for _ in 1..threads {
            sockets.push(listener::bind(actual).map_err(err)?);
        }
        out.push(Bound { actual, sockets });
    }
    Ok(out)
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
        location: Location,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// The pid file or the switch of user failed (see `process.rs`).
    #[error("{0}")]
    BeforeServing(String),
}

/// A running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Each worker thread's runtime, to spawn accept loops on.
    workers: Vec<tokio::runtime::Handle>,
    listeners: Mutex<Vec<ListenerHandle>>,
    /// Stops the current health checks (replaced on reload).
    health: Mutex<CancellationToken>,
    global_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
}

/// One open `bind` (its sockets on every worker).
struct ListenerHandle {
    actual: SocketAddr,
    /// Stops its accept loops when a reload removes the bind.
    removed: CancellationToken,
}

/// What a reload changed, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    pub binds_kept: usize,
    pub binds_added: usize,
    pub binds_removed: usize,
    pub servers_removed: usize,
}

impl Proxy {
    /// The runtime new connections use now (for the stats views).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.shared.current()
    }

    /// A handle giving the current runtime, across reloads (for the
    /// runtime API, which outlives any one configuration).
    pub fn runtime_handle(&self) -> impl Fn() -> Arc<Runtime> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.current()
    }

    /// Cancelled when the proxy stops (for tasks that live as long).
    pub fn stop_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The bound address of every `bind`, in the order they were opened
    /// (port 0 in the configuration shows the port the kernel chose).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.lock_listeners().iter().map(|l| l.actual).collect()
    }

    fn lock_listeners(&self) -> std::sync::MutexGuard<'_, Vec<ListenerHandle>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an accept loop for each socket on its worker thread.
    fn spawn_listeners(&self, bound: Vec<Bound>) {
        let mut listeners = self.lock_listeners();
        for b in bound {
            let removed = CancellationToken::new();
            for (socket, worker) in b.sockets.into_iter().zip(&self.workers) {
                let l = listener::Listener {
                    socket,
                    addr: b.actual,
                    shared: self.shared.clone(),
                    global_slots: self.global_slots.clone(),
                    removed: removed.clone(),
                };
                worker.spawn(l.run(self.shutdown.clone(), self.sessions.clone()));
            }
            listeners.push(ListenerHandle {
                actual: b.actual,
                removed,
            });
        }
    }

    /// Replaces the running configuration without dropping anything that
    /// stays: binds on an address that remains keep their sockets (no
    /// connection is refused), new ones are bound, removed ones closed;
    /// certificates are re-read; established sessions and tunnels keep
    /// running; WebSockets on servers that are gone (by backend, name and
    /// address) get close 1012 at their next message boundary.
    ///
    /// The new configuration is checked completely first (certificates and
    /// new binds included); on any error nothing changes and the
    /// diagnostics are returned.
    pub fn reload(&self, config: Config) -> Result<ReloadSummary, Vec<Diagnostic>> {
        let prepared = Prepared::new(config)?;
        let mut listeners = self.lock_listeners();
        let wanted = prepared.binds();
        // A bind stays open when an open socket has exactly its address
        // (port 0 asks for a new port, so it never matches).
        let is_open =
            |addr: &SocketAddr| addr.port() != 0 && listeners.iter().any(|l| l.actual == *addr);
        let to_add: Vec<(SocketAddr, Location)> = wanted
            .iter()
            .filter(|(addr, _)| !is_open(addr))
            .cloned()
            .collect();
        let bound = bind_all(&to_add, self.workers.len()).map_err(|e| match e {
            StartError::Bind {
                location,
                addr,
                source,
            } => vec![Diagnostic::error(
                location,
                format!("cannot bind {addr}: {source}"),
            )],
            other => vec![Diagnostic::error(
                wanted
                    .first()
                    .map(|(_, l)| l.clone())
                    .unwrap_or_else(|| Location {
                        file: Arc::from("wsgate"),
                        line: 0,
                        col: 0,
                    }),
                other.to_string(),
            )],
        })?;

        let mut added = bound.iter().map(|b| b.actual);
        let actual: Vec<SocketAddr> = wanted
            .iter()
            .map(|(addr, _)| {
                if is_open(addr) {
                    *addr
                } else {
                    added.next().unwrap_or(*addr)
                }
            })
            .collect();
        let old = self.shared.current();
        let runtime = Arc::new(prepared.into_runtime(&actual, &self.shutdown, Some(&old)));
        let gone: Vec<CancellationToken> = old
            .server_sessions
            .iter()
            .filter(|(key, _)| !runtime.server_sessions.contains_key(key))
            .map(|(_, sessions)| sessions.removed().clone())
            .collect();
        let health = self.shutdown.child_token();
        if let Err(e) = start_health_checks(&runtime, &health) {
            tracing::error!("reload: cannot start health checks: {e}");
        }
        self.shared.replace(runtime.clone());
        let previous_health = {
            let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *h, health)
        };
        previous_health.cancel();

        let mut summary = ReloadSummary {
            binds_added: bound.len(),
            servers_removed: gone.len(),
            ..ReloadSummary::default()
        };
        listeners.retain(|l| {
            let keep = runtime.binds.contains_key(&l.actual);
            if !keep {
                l.removed.cancel();
                summary.binds_removed += 1;
            }
            keep
        });
        summary.binds_kept = listeners.len();
        drop(listeners);
        self.spawn_listeners(bound);
        // WebSockets on removed servers get their 1012 after `grace` (at
        // once when unset), so clients of a server being retired can be
        // given a moment to finish what they are doing.
        let close_gone = move || gone.iter().for_each(sessions::end);
        match (
            runtime.global.process.grace,
            tokio::runtime::Handle::try_current(),
        ) {
            (Some(grace), Ok(handle)) => {
                handle.spawn(async move {
                    tokio::time::sleep(grace).await;
                    close_gone();
                });
            }
            _ => close_gone(),
        }
        Ok(summary)
    }

    /// Stops accepting at once, closes idle keep-alive connections, sends
    /// WebSockets close 1001 and lets open exchanges and tunnels finish for
    /// up to `grace`, then returns (whatever is still open ends with the
    /// process).
    pub async fn shutdown(self, grace: Duration) {
        sessions::end(&self.shutdown);
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
