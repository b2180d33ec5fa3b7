//! What a reload keeps of a backend: for every server that stays (same
//! name and address in the file), its live state — health (UP/DOWN and the
//! check history, `disable health`), administrative state (`set server ...
//! state drain|maint`), runtime weight, address (`set server ... addr`)
//! and `maxconn` (`set maxconn server`), open connections (so `leastconn`
//! and `maxconn` still count the tunnels opened before the reload),
//! counters — and the backend's own counters and queue signal. HAProxy needs a
//! `server-state-file` written before and read after a reload for part of
//! this; in one process it is a matter of keeping the objects.
//!
//! Where the new configuration changed a setting, the configuration wins,
//! as HAProxy's `load-server-state-from-file` does: a `weight` or
//! `maxconn` different from the previous file's is applied, a server that
//! gained or lost `disabled` follows the file, and a server without
//! `check` is up. A server whose address changed in the file is another
//! server: it starts from the file, its runtime address forgotten.

use std::sync::atomic::Ordering;

use super::{AdminState, BackendRuntime};
use crate::balance;

impl BackendRuntime {
    /// Takes over the live state of `previous`, the backend of the same
    /// name in the configuration being replaced.
    pub fn inherit(&mut self, previous: &BackendRuntime) {
        self.counters = previous.counters.clone();
        self.slot_freed = previous.slot_freed.clone();
        for (i, srv) in self.config.servers.iter().enumerate() {
            let Some(j) = previous
                .config
                .servers
                .iter()
                .position(|p| p.name == srv.name && p.addr == srv.addr)
            else {
                continue;
            };
            let before = &previous.config.servers[j];
            let state = previous.servers[j].clone();
            if srv.weight != before.weight {
                state.set_weight(srv.weight);
            }
            if srv.maxconn != before.maxconn {
                state.set_maxconn(srv.maxconn);
            }
            if srv.disabled != before.disabled {
                state.set_admin(if srv.disabled {
                    AdminState::Maint
                } else {
                    AdminState::Ready
                });
            }
            if srv.check.is_none() && !state.is_up() {
                state.set_up(true);
            }
            self.servers[i] = state;
        }
        let gcd = balance::weight_gcd(self.servers.iter().map(|s| s.weight()));
        self.weight_gcd.store(gcd, Ordering::Release);
    }
}
