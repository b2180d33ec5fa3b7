//! Parked tunnels: idle tunnels kept outside tokio.
//!
//! An idle WebSocket in a task of its own costs about 2.1 KiB: the task
//! (896 bytes: tokio rounds it up to 128 and adds its header), two reactor
//! registrations (256 bytes each, cache-line padded), a timer and the
//! stop signal's registration. Most WebSockets are idle most of the time
//! (a chat, a dashboard, a notification channel), so that is what a fleet
//! of them costs (docs/performance.md, "Idle memory").
//!
//! A tunnel silent for `tune.idle-park` (its `park_after`, see
//! [`TunnelOptions`](super::tunnel::TunnelOptions)) with nothing in
//! flight leaves its task: its state is boxed into its worker's
//! parked set, its two sockets go into one epoll instance of the worker's
//! own (their tokio registrations are dropped), and its next deadline
//! (`timeout tunnel`, a keepalive ping) into a heap. The first byte or FIN
//! from either peer, the deadline, or a signal (stop, reload, shutdown of
//! its server's sessions or of this session) gives it a task again, where
//! it carries on exactly where it was: the parked state is the running
//! state minus its task, timer and registrations.
//!
//! The set is per worker thread (each worker is a single-threaded runtime
//! with `SO_REUSEPORT` listeners): nothing here is shared or locked, and a
//! tunnel is woken on the thread it ran on. Signals come from other
//! threads (the runtime API, health checks, a reload, the stop) through
//! one waker per set, which makes the set look at every parked tunnel: it
//! watches every cancellation of the stop and server tokens
//! (backend/sessions.rs), and each parked tunnel's `show sess` entry
//! holds it for `shutdown session`. Those signals are rare, and a waker
//! registration per tunnel would cost what parking saves.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::backend::sessions;
use crate::config::model::Global;

/// Tunnels parked now, in all workers of the process.
static PARKED_NOW: AtomicU64 = AtomicU64::new(0);
/// Parks since the process started (the heap trim looks at it).
static PARKED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Tunnels parked now, process-wide.
pub fn parked_now() -> u64 {
    PARKED_NOW.load(Ordering::Relaxed)
}

/// Parks since the process started, process-wide.
pub fn parked_total() -> u64 {
    PARKED_TOTAL.load(Ordering::Relaxed)
}

/// A parked tunnel, whatever its ends and what its task holds.
pub trait Sleeper {
    /// Its two sockets, to watch for readability.
    fn sockets(&self) -> [RawFd; 2];
    /// When it must be woken even if nobody speaks (the same for as long
    /// as it is parked).
    fn wake_at(&self) -> Option<Instant>;
    /// Whether wsgate wants it closed (then it is woken to do so).
    fn signalled(&self) -> bool;
    /// Registers `waker` with whatever raises those signals.
    fn watch_signals(&mut self, waker: &Waker);
    /// Gives it a task of its own again, tracked by `tasks`.
    fn wake(self: Box<Self>, tasks: &TaskTracker);
}

thread_local! {
    /// This worker's parked set, while its [`run`] task runs.
    static SET: RefCell<Option<Set>> = const { RefCell::new(None) };
}

/// Whether tunnels on this thread can be parked (its worker runs a set).
pub fn available() -> bool {
    SET.with(|s| s.borrow().is_some())
}

/// How long a tunnel set up now must be idle before it is parked:
/// `tune.idle-park`, if this worker has a parked set.
pub fn delay(global: &Global) -> Option<Duration> {
    global.process.idle_park.0.filter(|_| available())
}

/// Parks `tunnel` in this worker's set; when that cannot be done (no set,
/// the epoll instance refused its sockets) or it was signalled meanwhile,
/// it is woken at once instead.
pub fn park(tunnel: Box<dyn Sleeper>) {
    let refused = SET.with(|s| match s.borrow_mut().as_mut() {
        Some(set) => set.insert(tunnel).err().map(|t| (t, set.tasks.clone())),
        None => Some((tunnel, TaskTracker::new())),
    });
    if let Some((tunnel, tasks)) = refused {
        tunnel.wake(&tasks);
    }
}

/// Runs this worker's parked set: installs it, then wakes its tunnels as
/// their sockets, deadlines and signals say, for as long as the worker
/// runs. Woken tunnels are spawned on `tasks`.
pub async fn run(tasks: TaskTracker) -> io::Result<()> {
    // SAFETY: epoll_create1 has no preconditions; the result is checked.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an OwnedFd keeps its descriptor open, and the same, until
    // the AsyncFd that owns it is dropped.
    let epoll = unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    let bell = Arc::new(Bell::default());
    let bell_waker = Waker::from(bell.clone());
    let rearm = Arc::new(Notify::new());
    SET.with(|s| {
        *s.borrow_mut() = Some(Set {
            epoll: epoll.as_raw_fd(),
            slots: Vec::new(),
            free: Vec::new(),
            deadlines: BinaryHeap::new(),
            len: 0,
            sleeping_until: None,
            rearm: rearm.clone(),
            bell: bell_waker.clone(),
            tasks: tasks.clone(),
        })
    });
    sessions::watch_all(&bell_waker);
    let _installed = Installed(bell_waker);
    loop {
        let next = SET.with(|s| s.borrow_mut().as_mut().and_then(Set::next_deadline));
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let woken = tokio::select! {
            ready = epoll.readable() => {
                let mut guard = ready?;
                let (woken, drained) = with_set(|set| set.ready_sockets());
                if drained {
                    guard.clear_ready();
                }
                woken
            }
            () = sleep => with_set(|set| set.due(Instant::now())),
            () = bell.rung.notified() => with_set(Set::signalled),
            () = rearm.notified() => Vec::new(),
        };
        for Woken { tunnel, tracked } in woken {
            tunnel.wake(&tasks);
            // Only now: with the tunnel's task spawned, a stop that waits
            // for the tracker to empty cannot end the worker in between.
            drop(tracked);
        }
    }
}

fn with_set<T: Default>(f: impl FnOnce(&mut Set) -> T) -> T {
    SET.with(|s| s.borrow_mut().as_mut().map(f).unwrap_or_default())
}

/// Removes the set from the thread when its task ends (the worker stops),
/// dropping the tunnels still parked, which closes their sockets; and its
/// bell from the stop and server signals' watchers.
struct Installed(Waker);

impl Drop for Installed {
    fn drop(&mut self) {
        sessions::unwatch_all(&self.0);
        let set = SET.with(|s| s.borrow_mut().take());
        drop(set);
    }
}

/// Rung by the signals of any parked tunnel, from any thread.
#[derive(Default)]
struct Bell {
    rung: Notify,
}

impl Wake for Bell {
    fn wake(self: Arc<Self>) {
        self.rung.notify_one();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.rung.notify_one();
    }
}

/// 24 bytes: a parked tunnel's deadline is not kept here but asked again
/// (it does not change while parked), since every parked WebSocket pays
/// for the entry.
struct Entry {
    tunnel: Box<dyn Sleeper>,
    /// Keeps the process's session tracker open while parked (a stop
    /// waits for every tunnel).
    tracked: TaskTrackerToken,
}

/// A tunnel taken out of the set, still counted by the tracker until its
/// new task is spawned.
struct Woken {
    tunnel: Box<dyn Sleeper>,
    tracked: TaskTrackerToken,
}

/// One worker's parked tunnels.
struct Set {
    /// The epoll instance (owned by [`run`]'s `AsyncFd`).
    epoll: RawFd,
    /// Parked tunnels by key (the epoll data of their sockets).
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Deadlines and their keys, earliest first. An entry whose tunnel
    /// was woken or parked again with another deadline is stale, and
    /// dropped when it comes up (or when stale ones outnumber the rest).
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
    len: usize,
    /// The deadline [`run`] sleeps until.
    sleeping_until: Option<Instant>,
    /// Tells [`run`] that an earlier deadline came.
    rearm: Arc<Notify>,
    bell: Waker,
    tasks: TaskTracker,
}

impl Set {
    fn insert(&mut self, mut tunnel: Box<dyn Sleeper>) -> Result<(), Box<dyn Sleeper>> {
        let key = match self.free.pop() {
            Some(k) => k,
            None => match u32::try_from(self.slots.len()) {
                Ok(k) => {
                    self.slots.push(None);
                    k
                }
                Err(_) => return Err(tunnel),
            },
        };
        let [client, server] = tunnel.sockets();
        if let Err(e) = self.watch(client, key) {
            self.free.push(key);
            tracing::debug!("cannot park a tunnel: {e}");
            return Err(tunnel);
        }
        if let Err(e) = self.watch(server, key) {
            self.unwatch(client);
            self.free.push(key);
            tracing::debug!("cannot park a tunnel: {e}");
            return Err(tunnel);
        }
        // Registered before the check: a signal raised after the check
        // rings the bell, and the bell's scan finds the tunnel.
        tunnel.watch_signals(&self.bell);
        if tunnel.signalled() {
            self.unwatch(client);
            self.unwatch(server);
            self.free.push(key);
            return Err(tunnel);
        }
        if let Some(at) = tunnel.wake_at() {
            self.deadlines.push(Reverse((at, key)));
            if self.sleeping_until.is_none_or(|s| at < s) {
                self.rearm.notify_one();
            }
        }
        self.slots[key as usize] = Some(Entry {
            tunnel,
            tracked: self.tasks.token(),
        });
        self.len += 1;
        PARKED_NOW.fetch_add(1, Ordering::Relaxed);
        PARKED_TOTAL.fetch_add(1, Ordering::Relaxed);
        if self.deadlines.len() > 2 * self.len + 1024 {
            self.compact_deadlines();
        }
        Ok(())
    }

    fn remove(&mut self, key: u32) -> Option<Woken> {
        let entry = self.slots.get_mut(key as usize)?.take()?;
        let [client, server] = entry.tunnel.sockets();
        self.unwatch(client);
        self.unwatch(server);
        self.free.push(key);
        self.len -= 1;
        PARKED_NOW.fetch_sub(1, Ordering::Relaxed);
        Some(Woken {
            tunnel: entry.tunnel,
            tracked: entry.tracked,
        })
    }

    fn watch(&self, fd: RawFd, key: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: u64::from(key),
        };
        // SAFETY: `self.epoll` and `fd` are open descriptors; `event` is a
        // valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn unwatch(&self, fd: RawFd) {
        // SAFETY: as in `watch`; a null event is allowed for DEL.
        unsafe {
            libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
        }
    }

    /// The tunnels whose sockets became readable (data, FIN or error), and
    /// whether the epoll instance has nothing more to say.
    fn ready_sockets(&mut self) -> (Vec<Woken>, bool) {
        const BATCH: usize = 64;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut woken = Vec::new();
        // SAFETY: `events` has room for BATCH events; timeout 0 never
        // blocks.
        let n =
            unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), BATCH as libc::c_int, 0) };
        let Ok(n) = usize::try_from(n) else {
            // EINTR: nothing lost, the instance stays readable.
            return (woken, false);
        };
        for event in &events[..n] {
            let key = event.u64;
            if let Some(t) = u32::try_from(key).ok().and_then(|k| self.remove(k)) {
                woken.push(t);
            }
        }
        (woken, n < BATCH)
    }

    /// The tunnels whose deadline has come.
    fn due(&mut self, now: Instant) -> Vec<Woken> {
        let mut woken = Vec::new();
        while let Some(&Reverse((at, key))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if self.is_current(at, key) {
                woken.extend(self.remove(key));
            }
        }
        woken
    }

    /// The tunnels that wsgate wants closed.
    fn signalled(&mut self) -> Vec<Woken> {
        let keys: Vec<u32> = (0..self.slots.len())
            .filter(|&k| self.slots[k].as_ref().is_some_and(|e| e.tunnel.signalled()))
            .filter_map(|k| u32::try_from(k).ok())
            .collect();
        keys.into_iter().filter_map(|k| self.remove(k)).collect()
    }

    /// The earliest deadline of a parked tunnel (dropping stale ones), and
    /// notes that [`run`] sleeps until it.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, key))) = self.deadlines.peek() {
            if self.is_current(at, key) {
                break;
            }
            self.deadlines.pop();
        }
        self.sleeping_until = self.deadlines.peek().map(|Reverse((at, _))| *at);
        self.sleeping_until
    }

    fn is_current(&self, at: Instant, key: u32) -> bool {
        self.slots
            .get(key as usize)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.tunnel.wake_at() == Some(at))
    }

    fn compact_deadlines(&mut self) {
        let heap = std::mem::take(&mut self.deadlines);
        self.deadlines = heap
            .into_iter()
            .filter(|Reverse((at, key))| self.is_current(*at, *key))
            .collect();
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        let parked = self.slots.iter().flatten().count() as u64;
        PARKED_NOW.fetch_sub(parked, Ordering::Relaxed);
    }
}
