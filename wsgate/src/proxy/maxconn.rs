//! Connection limits the runtime API can change: global `maxconn` and a
//! frontend's `maxconn` (`set maxconn global|frontend`).
//!
//! Stage: the accept loops take one permit of the global limit and one of
//! their frontend's before accepting, and a session holds them until it
//! ends (listener.rs); this module only decides how many permits exist.
//! Raising a limit adds permits, so waiting accepts go ahead at once.
//! Lowering it takes away the free permits now and, when more are in use
//! than the new limit allows, the rest as sessions end: one waiter for all
//! of them is queued before `set` returns, and since tokio's semaphore is
//! fair and hands released permits to the first waiter, accepts queued
//! behind it wait until the count is under the new limit — HAProxy's "new
//! connections acceptation will be delayed until the threshold is
//! reached". Open connections are never closed by a lower limit. Accept
//! loops take permits only once a connection waits, so a lower limit
//! applies to the very next connection.

use std::sync::{Arc, Mutex, MutexGuard};

use std::future::Future;
use std::task::{Context, Poll, Waker};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// "Unlimited" (a frontend without `maxconn`), and the highest limit the
/// runtime API sets: far above any open-file limit, and low enough that
/// permits owed plus added never reach the semaphore's maximum.
const UNLIMITED: usize = 1 << 30;

/// One limit and its permits.
#[derive(Debug)]
pub struct ConnLimit {
    permits: Arc<Semaphore>,
    /// The limit it was made with (`set maxconn global 0` restores it).
    initial: Option<usize>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The limit in force; `None`: unlimited (a frontend without
    /// `maxconn`).
    limit: Option<usize>,
    /// Permits still to take away as sessions end.
    debt: usize,
}

impl ConnLimit {
    pub fn new(limit: Option<usize>) -> Arc<ConnLimit> {
        let n = limit.unwrap_or(UNLIMITED).min(UNLIMITED);
        Arc::new(ConnLimit {
            permits: Arc::new(Semaphore::new(n)),
            initial: limit,
            state: Mutex::new(State { limit, debt: 0 }),
        })
    }

    /// The semaphore the accept loops take permits from.
    pub fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// The limit in force (`None`: unlimited).
    pub fn limit(&self) -> Option<usize> {
        self.lock().limit
    }

    /// The limit it was made with.
    pub fn initial(&self) -> Option<usize> {
        self.initial
    }

    /// Changes the limit. Lowering it below the connections open now needs
    /// a tokio runtime (a task waits for the permits owed); the runtime
    /// API runs in one.
    pub fn set(self: &Arc<Self>, new: usize) {
        let new = new.min(UNLIMITED);
        let mut st = self.lock();
        let old = st.limit.unwrap_or(UNLIMITED);
        st.limit = Some(new);
        if new >= old {
            // Permits still owed are taken from these first (their waiters
            // are ahead): the total comes out right either way.
            self.permits.add_permits(new - old);
            return;
        }
        let fewer = old - new;
        let owed = fewer - self.permits.forget_permits(fewer);
        if owed == 0 {
            return;
        }
        st.debt += owed;
        drop(st);
        // Queued now, before this returns: accepts that come later wait
        // behind it, however late the task runs.
        let n = u32::try_from(owed).unwrap_or(u32::MAX);
        let mut wait = Box::pin(self.permits.clone().acquire_many_owned(n));
        let mut cx = Context::from_waker(Waker::noop());
        match wait.as_mut().poll(&mut cx) {
            Poll::Ready(got) => self.forget(got, owed),
            Poll::Pending => {
                let this = self.clone();
                tokio::spawn(async move {
                    let got = wait.await;
                    this.forget(got, owed);
                });
            }
        }
    }

    /// The permits owed came back: they are taken away for good.
    fn forget(&self, got: Result<OwnedSemaphorePermit, AcquireError>, owed: usize) {
        if let Ok(permits) = got {
            permits.forget();
        }
        self.lock().debt -= owed;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lowering_waits_for_sessions_ahead_of_later_waiters() {
        let l = ConnLimit::new(Some(4));
        let mut held: Vec<_> = (0..3)
            .map(|_| l.permits().clone().try_acquire_owned().unwrap())
            .collect();
        // 3 in use, lowered to 1: the free one goes now, 2 are owed.
        l.set(1);
        assert_eq!(l.limit(), Some(1));
        assert_eq!(l.permits().available_permits(), 0);
        tokio::task::yield_now().await;
        // A later waiter gets nothing until two sessions have ended.
        let later = tokio::spawn({
            let p = l.permits().clone();
            async move { p.acquire_owned().await.unwrap() }
        });
        tokio::task::yield_now().await;
        held.pop();
        tokio::task::yield_now().await;
        assert!(!later.is_finished());
        held.pop();
        tokio::task::yield_now().await;
        assert!(!later.is_finished());
        assert_eq!(l.lock().debt, 0);
        // Raised: the waiter goes at once.
        l.set(2);
        let _second = later.await.unwrap();
        assert_eq!(l.permits().available_permits(), 0);
    }

    #[tokio::test]
    async fn raising_while_owed_adds_up() {
        let l = ConnLimit::new(Some(3));
        let a = l.permits().clone().try_acquire_owned().unwrap();
        let b = l.permits().clone().try_acquire_owned().unwrap();
        l.set(0);
        assert_eq!(l.lock().debt, 2);
        l.set(3);
        tokio::task::yield_now().await;
        // The collector took the two added first.
        assert_eq!(l.lock().debt, 0);
        drop((a, b));
        assert_eq!(l.permits().available_permits(), 3);
    }

    #[test]
    fn unlimited_until_set() {
        let l = ConnLimit::new(None);
        assert_eq!(l.limit(), None);
        assert_eq!(l.permits().available_permits(), UNLIMITED);
        l.set(10);
        assert_eq!(l.permits().available_permits(), 10);
    }
}
