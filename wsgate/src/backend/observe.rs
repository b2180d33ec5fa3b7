//! Passive health: `observe layer4|layer7`, `error-limit`, `on-error`.
//!
//! Stage: every server's counters carry an [`Observer`]. The connection
//! code reports each attempt to reach the server (`ConnGuard::observe_connect`)
//! and the counters report each response status the server's exchanges
//! end with (`Counters::response`, wsgate's own 502 and 504 for a bad or
//! missing response included). After `error-limit` consecutive errors the
//! observer leaves an [`Event`] for the server's health task (`health`),
//! which applies `on-error` to the check counter exactly as a check result
//! would, logs the state change in HAProxy's words ("Health analyze") and
//! checks again after `fastinter`. HAProxy's rules (`__health_adjust`):
//! with `layer4` only connections count, an established one clearing the
//! count; with `layer7` a failed connection is an error, a response of
//! 100-499, 501 or 505 clears the count and any other is an error.
//! Observing needs `check`: without a health task nothing would bring the
//! server back, so the health task switches its observer on.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::config::model::{Observe, OnError, Passive};

/// What a limit reached asks the health task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: OnError,
    /// HAProxy's check text: `Detected 3 consecutive errors, last one
    /// was: L4 unsuccessful connection`.
    pub info: String,
}

/// The passive-health state of one server.
#[derive(Debug, Default)]
pub struct Observer {
    /// 0: off, 1: layer4, 2: layer7.
    mode: AtomicU8,
    limit: AtomicU32,
    /// 0: fastinter, 1: fail-check, 2: sudden-death, 3: mark-down.
    on_error: AtomicU8,
    consecutive: AtomicU32,
    event: Mutex<Option<Event>>,
    /// Signalled when an [`Event`] is waiting.
    pub(crate) wake: Notify,
    /// Limits reached (`failed_hana`).
    pub triggered: AtomicU64,
}

/// One observation, with HAProxy's description (`analyze_statuses`).
#[derive(Debug, Clone, Copy)]
enum Seen {
    L4Ok,
    L4Err,
    HttpOk,
    HttpWrong,
}

impl Seen {
    fn description(self) -> &'static str {
        match self {
            Seen::L4Ok => "L4 successful connection",
            Seen::L4Err => "L4 unsuccessful connection",
            Seen::HttpOk => "Correct http response",
            Seen::HttpWrong => "Wrong http response",
        }
    }

    /// `Some(true)`: an error; `Some(false)`: clears the count; `None`:
    /// not looked at in this mode.
    fn failed(self, mode: Observe) -> Option<bool> {
        match (self, mode) {
            (Seen::L4Err, _) => Some(true),
            (Seen::L4Ok, Observe::Layer4) => Some(false),
            (Seen::HttpOk, Observe::Layer7) => Some(false),
            (Seen::HttpWrong, Observe::Layer7) => Some(true),
            _ => None,
        }
    }
}

impl Observer {
    /// The server's settings, set by its health task when it starts
    /// (`None`: not observed, or not checked). A reload keeps the observer
    /// with the server; the new health task brings the new settings.
    pub fn configure(&self, passive: Option<&Passive>) {
        let (mode, limit, on_error) = match passive {
            Some(p) => (
                match p.observe {
                    None => 0,
                    Some(Observe::Layer4) => 1,
                    Some(Observe::Layer7) => 2,
                },
                p.error_limit,
                match p.on_error {
                    OnError::FastInter => 0,
                    OnError::FailCheck => 1,
                    OnError::SuddenDeath => 2,
                    OnError::MarkDown => 3,
                },
            ),
            None => (0, 0, 1),
        };
        self.limit.store(limit.max(1), Ordering::Relaxed);
        self.on_error.store(on_error, Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        self.mode.store(mode, Ordering::Release);
    }

    fn mode(&self) -> Option<Observe> {
        match self.mode.load(Ordering::Acquire) {
            1 => Some(Observe::Layer4),
            2 => Some(Observe::Layer7),
            _ => None,
        }
    }

    /// An attempt to connect to the server succeeded or failed.
    pub fn connect(&self, ok: bool) {
        self.observe(if ok { Seen::L4Ok } else { Seen::L4Err });
    }

    /// A response status from (or, 502/504, for want of) the server.
    pub fn response(&self, status: u16) {
        let good = matches!(status, 100..=499 | 501 | 505);
        self.observe(if good { Seen::HttpOk } else { Seen::HttpWrong });
    }

    fn observe(&self, seen: Seen) {
        let Some(mode) = self.mode() else {
            return;
        };
        match seen.failed(mode) {
            None => {}
            Some(false) => self.consecutive.store(0, Ordering::Relaxed),
            Some(true) => {
                let n = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                if n < self.limit.load(Ordering::Relaxed) {
                    return;
                }
                self.consecutive.store(0, Ordering::Relaxed);
                self.triggered.fetch_add(1, Ordering::Relaxed);
                let action = match self.on_error.load(Ordering::Relaxed) {
                    0 => OnError::FastInter,
                    2 => OnError::SuddenDeath,
                    3 => OnError::MarkDown,
                    _ => OnError::FailCheck,
                };
                let info = format!(
                    "Detected {n} consecutive errors, last one was: {}",
                    seen.description()
                );
                *self.event.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Event { action, info });
                self.wake.notify_one();
            }
        }
    }

    /// The event waiting for the health task, if any.
    pub fn take(&self) -> Option<Event> {
        self.event.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observer(observe: Observe, limit: u32, on_error: OnError) -> Observer {
        let o = Observer::default();
        o.configure(Some(&Passive {
            observe: Some(observe),
            error_limit: limit,
            on_error,
        }));
        o
    }

    #[test]
    fn layer4_counts_consecutive_failed_connections() {
        let o = observer(Observe::Layer4, 3, OnError::MarkDown);
        o.connect(false);
        o.connect(false);
        o.connect(true); // clears
        o.response(500); // not looked at in layer4
        o.connect(false);
        o.connect(false);
        assert_eq!(o.take(), None);
        o.connect(false);
        assert_eq!(
            o.take(),
            Some(Event {
                action: OnError::MarkDown,
                info: "Detected 3 consecutive errors, last one was: L4 unsuccessful connection"
                    .into()
            })
        );
        assert_eq!(o.triggered.load(Ordering::Relaxed), 1);
        // The count starts over.
        o.connect(false);
        assert_eq!(o.take(), None);
    }

    #[test]
    fn layer7_judges_statuses_as_haproxy() {
        let o = observer(Observe::Layer7, 2, OnError::FailCheck);
        for good in [101, 200, 404, 499, 501, 505] {
            o.response(500);
            o.response(good);
            assert_eq!(o.take(), None, "{good}");
        }
        o.connect(true); // ignored in layer7
        o.response(503);
        o.connect(false);
        let e = o.take().unwrap();
        assert_eq!(e.action, OnError::FailCheck);
        assert!(e.info.ends_with("L4 unsuccessful connection"), "{}", e.info);
        o.response(502);
        o.response(504);
        assert!(o.take().unwrap().info.ends_with("Wrong http response"));
    }

    #[test]
    fn off_unless_configured() {
        let o = Observer::default();
        for _ in 0..20 {
            o.connect(false);
        }
        assert_eq!(o.take(), None);
        let o = observer(Observe::Layer4, 1, OnError::FastInter);
        o.configure(None);
        o.connect(false);
        assert_eq!(o.take(), None);
    }
}
