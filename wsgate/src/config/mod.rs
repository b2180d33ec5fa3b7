//! HAProxy configuration language: text in, typed [`model::Config`] out.
//!
//! Passes: `lexer` (words, quotes, escapes, `${VAR}`) → `parser` (sections
//! and keywords, driven by the one table in `keywords`) → `check` (names
//! resolved, cross-section rules such as frontend/backend mode agreement).
//! Every pass collects [`diag::Diagnostic`]s instead of stopping at the first
//! problem. This module uses no sockets, tasks or TLS, so it can be tested
//! and fuzzed on its own.

pub mod diag;
pub mod keywords;
pub mod model;
pub mod units;

use std::path::PathBuf;

pub use diag::{Diagnostic, Severity};
pub use model::Config;

/// The result of loading a configuration: the model when there was no
/// error, and every diagnostic (warnings included) either way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

/// One configuration source: its display name (used in diagnostics) and text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Reads every `-f` argument (a directory contributes its `*.cfg` files in
/// lexical order, as HAProxy does) and loads them as one configuration.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let _ = paths;
    unimplemented_loaded()
}

/// Loads configuration text that is already in memory (the demo, tests).
pub fn load_sources(sources: &[Source]) -> Loaded {
    let _ = sources;
    unimplemented_loaded()
}

fn unimplemented_loaded() -> Loaded {
    Loaded {
        config: None,
        diagnostics: Vec::new(),
    }
}
