//! Server selection (`balance`): pure functions of server state.
//!
//! Stage: the session asks its backend for a server; the backend asks the
//! algorithm here. Algorithms know nothing of sockets or sessions, so each
//! is tested alone (pingora's `selection/`, HAProxy's `lb_*.c`).

pub mod roundrobin;

pub use roundrobin::RoundRobin;
