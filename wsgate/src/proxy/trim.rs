//! Giving memory back to the system after bursts of connections.
//!
//! A connection's HTTP phase needs far more memory than its tunnel: the
//! session task and its head buffers are some 20 KiB, an idle WebSocket
//! afterwards under 2 KiB. When many handshakes are in flight at once
//! (a burst of reconnecting clients, a proxy behind on its accept queue),
//! glibc's heap grows for them, and once they become tunnels the freed
//! session state is left as holes between the long-lived tunnel tasks:
//! the process keeps those pages, and RSS per idle WebSocket doubles
//! (measured: 9,000 WebSockets opened at 3,000/s on an unpinned proxy,
//! 4.9 KiB each instead of 2.2; docs/performance.md, "Idle memory").
//!
//! `malloc_trim(0)` returns every whole free page inside the heap (glibc
//! 2.8 and later: `madvise(MADV_DONTNEED)`), not just the heap's top. It is
//! called from one background task, at most every [`PERIOD`], and only
//! when at least [`MIN_NEW_SESSIONS`] connections were accepted (or idle
//! tunnels parked, each of which frees its task: park.rs) since the last
//! call: an idle or steady proxy never pays for it. HAProxy does the
//! same from its pool garbage collector.

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

/// Returns free heap pages to the system; whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators return memory on their own (or not at all).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_trimmer_ends_with_the_proxy() {
        let process = Counters::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(after_bursts(process.clone(), shutdown.clone()));
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
