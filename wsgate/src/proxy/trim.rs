//! Giving memory back to the system after bursts of connections.
//!
//! A connection's HTTP phase needs far more memory than its tunnel: the
//! session task and its head buffers are some 20 KiB, an idle WebSocket
//! afterwards about 1 KiB. When many handshakes are in flight at once (a
//! burst of reconnecting clients, a proxy behind on its accept queue), the
//! heap grows for them, and once they are tunnels that memory is free but
//! still resident: RSS per idle WebSocket doubles (measured: 9,000
//! WebSockets opened at 3,000/s on an unpinned proxy, 4.9 KiB each instead
//! of 2.2 with glibc's malloc; docs/performance.md, "Idle memory").
//!
//! wsgate's allocator is jemalloc (`main.rs`), which keeps freed pages
//! ("dirty") for a while to reuse them and returns them to the system
//! (`madvise`) as they age. Purging every arena at once returns them now.
//! It is done from one background task, at most every [`PERIOD`], and only
//! when at least [`MIN_NEW_SESSIONS`] connections were accepted (or idle
//! tunnels parked, each of which frees its task: park.rs) since the last
//! time: an idle or steady proxy never pays for it. HAProxy does the same
//! from its pool garbage collector. (With glibc's malloc this was
//! `malloc_trim(0)`: it returns whole free pages, but glibc mixes the
//! small blocks that stay with the large ones that go, so fewer pages
//! were whole.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::backend::counters::Counters;

/// How often the accept count is looked at.
pub const PERIOD: Duration = Duration::from_secs(2);

/// Connections accepted since the last trim for another to be worth it.
pub const MIN_NEW_SESSIONS: u64 = 256;

/// Trims the heap after bursts, until `shutdown`. `process` counts every
/// accepted connection (it is kept across reloads).
pub async fn after_bursts(process: Arc<Counters>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Parks count as sessions: each frees a task's worth of memory.
    let activity = || Counters::get(&process.total_sessions) + super::park::parked_total();
    let mut trimmed_at = activity();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = activity();
        if now.saturating_sub(trimmed_at) < MIN_NEW_SESSIONS {
            continue;
        }
        trimmed_at = now;
        let started = Instant::now();
        let released = trim();
        tracing::debug!(released, took = ?started.elapsed(), "heap trimmed");
    }
}

/// Returns free heap pages to the system; whether jemalloc did it.
fn trim() -> bool {
    // `MALLCTL_ARENAS_ALL`: the pseudo-index for every arena.
    const PURGE_ALL: &std::ffi::CStr = c"arena.4096.purge";
    // SAFETY: a purge takes no argument and returns none (all pointers
    // null, length 0); jemalloc does it under its own locks.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    status == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_trimmer_ends_with_the_proxy() {
        let process = Counters::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(after_bursts(process.clone(), shutdown.clone()));
        assert!(trim(), "jemalloc accepts the purge");
        for _ in 0..MIN_NEW_SESSIONS {
            process.session_start();
        }
        tokio::time::sleep(PERIOD * 3).await;
        assert!(!task.is_finished());
        shutdown.cancel();
        tokio::time::timeout(PERIOD, task)
            .await
            .expect("ends at once")
            .expect("no panic");
    }
}
