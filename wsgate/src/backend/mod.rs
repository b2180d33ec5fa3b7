//! Backends at run time: their servers and the balancer that picks among
//! them.
//!
//! Stage: built from `config::model::Backend` when the proxy starts; used by
//! `proxy::connect` for every new server connection. Server state beyond
//! the configuration (health, counters) arrives with the balancing and
//! observability work.

use std::sync::Mutex;

use crate::balance::RoundRobin;
use crate::config::model::{Backend, Balance};

pub struct BackendRuntime {
    pub config: Backend,
    balancer: Mutex<RoundRobin>,
}

impl BackendRuntime {
    pub fn new(config: Backend) -> BackendRuntime {
        let balancer = match config.balance {
            Balance::RoundRobin => RoundRobin::new(config.servers.len()),
        };
        BackendRuntime {
            config,
            balancer: Mutex::new(balancer),
        }
    }

    /// Picks a server for a new connection, avoiding `avoid` (the server
    /// that just failed, on a redispatch) unless it is the only choice.
    /// `None` when no server can take traffic (none, all disabled or of
    /// weight 0).
    pub fn pick(&self, avoid: Option<usize>) -> Option<usize> {
        let servers = &self.config.servers;
        let weight = |i: usize| {
            let s = &servers[i];
            if s.disabled {
                0
            } else {
                s.weight
            }
        };
        // A poisoned lock only means another session panicked mid-pick; the
        // scores are still valid numbers, so keep balancing.
        let mut rr = self.balancer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(avoid) = avoid {
            if let Some(i) = rr.pick(|i| if i == avoid { 0 } else { weight(i) }) {
                return Some(i);
            }
        }
        rr.pick(weight)
    }
}
