//! wsgate: a WebSocket-first reverse proxy and load balancer that reads
//! HAProxy's configuration language.
//!
//! Data flow: [`config`] (text → typed model) → [`proxy`] (listeners,
//! HTTP/1.1 sessions, tunnels) using [`balance`] (server choice),
//! [`backend`] (server state) and [`tls`] (certificates). [`demo`] is the
//! tutorial's WebSocket server and the `wsgate demo` command. [`admin`]
//! (stats page, Prometheus, runtime API) and [`log`] (access logs) show
//! what the proxy does.

pub mod admin;
pub mod backend;
pub mod balance;
pub mod config;
pub mod demo;
pub mod log;
pub mod process;
pub mod proxy;
pub mod proxy_protocol;
pub mod reload;
pub mod systemd;
pub mod tls;
pub mod ws;
