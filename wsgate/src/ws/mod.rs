//! WebSocket awareness for tunnels: frame boundaries ([`frame`]) and the
//! close frames wsgate sends itself ([`close`]). Knows nothing of HTTP or
//! sockets; the tunnel feeds it bytes.

pub mod close;
pub mod frame;
