//! WebSocket awareness for tunnels: frame boundaries ([`frame`]), message
//! rate limits ([`rate`]), the close frames wsgate sends itself
//! ([`close`]) and per-message counters ([`counters`]). Knows nothing of HTTP or sockets; the tunnel feeds it bytes.

pub mod close;
pub mod counters;
pub mod frame;
pub mod rate;
