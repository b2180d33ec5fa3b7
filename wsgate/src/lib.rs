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

/// What the cargo-fuzz targets in `fuzz/` call, in one place: the pure
/// parsers and trackers that read bytes from the network or a config file.
/// Not an API: hidden from the docs and free to change with the targets.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::config::{Diagnostic, Loaded, Severity};
    pub use crate::proxy::http1::body::ChunkedScanner;
    pub use crate::proxy::http1::head::{
        parse_request, parse_response, RequestError, ResponseError,
    };
    pub use crate::ws::frame::{Fed, FrameError, FrameTracker, Policy, Strict, Violation};
    pub use crate::ws::rate::{RateAction, RateLimit};

    /// The name configuration text loaded by [`load_config`] is given:
    /// every diagnostic must point into it.
    pub const CONFIG_NAME: &str = "fuzz.cfg";

    /// Loads configuration bytes as `wsgate -c --syntax-only` would read a
    /// file (invalid UTF-8 replaced, as `config::load_paths` does). Syntax
    /// only, so that no host name is resolved; the environment is fixed
    /// (`FUZZ=a b`, nothing else) so that a result never depends on the
    /// machine running the fuzzer.
    pub fn load_config(bytes: &[u8]) -> Loaded {
        let source = crate::config::Source {
            name: CONFIG_NAME.to_owned(),
            text: String::from_utf8_lossy(bytes).into_owned(),
        };
        let env = |name: &str| (name == "FUZZ").then(|| "a b".to_owned());
        crate::config::load_sources_with(
            &[source],
            &env,
            crate::config::Options { syntax_only: true },
        )
    }
}
