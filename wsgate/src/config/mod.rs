//! HAProxy configuration language: text in, typed [`model::Config`] out.
//!
//! Passes: `lexer` (words, quotes, escapes, `${VAR}`) → `parser` (sections
//! and keywords, driven by the one table in `keywords`) → `check` (names
//! resolved, cross-section rules such as frontend/backend mode agreement).
//! Every pass collects [`diag::Diagnostic`]s instead of stopping at the first
//! problem. This module uses no sockets, tasks or TLS, so it can be tested
//! and fuzzed on its own.

pub mod check;
pub mod diag;
mod handlers;
pub mod keywords;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod units;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diag::{Diagnostic, Severity};
pub use model::Config;

use model::Location;

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
    let mut sources = Vec::new();
    let mut diagnostics = Vec::new();
    for path in paths {
        read_path(path, &mut sources, &mut diagnostics);
    }
    if sources.is_empty() && diagnostics.is_empty() {
        diagnostics.push(Diagnostic::error(
            whole_file(
                &paths
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            "no configuration file found (a directory contributes only its *.cfg files)",
        ));
    }
    let mut loaded = load_sources_with_env(&sources, &|name| std::env::var(name).ok());
    diagnostics.append(&mut loaded.diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        loaded.config = None;
    }
    Loaded {
        config: loaded.config,
        diagnostics,
    }
}

fn whole_file(name: &str) -> Location {
    Location {
        file: Arc::from(name),
        line: 0,
        col: 0,
    }
}

fn read_path(path: &Path, sources: &mut Vec<Source>, diags: &mut Vec<Diagnostic>) {
    let name = path.display().to_string();
    if path.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::error(
                    whole_file(&name),
                    format!("cannot read directory: {e}"),
                ));
                return;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cfg") && p.is_file())
            .collect();
        files.sort();
        for f in files {
            read_path(&f, sources, diags);
        }
        return;
    }
    match std::fs::read(path) {
        Ok(bytes) => sources.push(Source {
            name,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }),
        Err(e) => diags.push(
            Diagnostic::error(
                whole_file(&name),
                format!("cannot read configuration file: {e}"),
            )
            .with_hint("check the path given to -f"),
        ),
    }
}

/// Loads configuration text that is already in memory (the demo, tests).
/// Environment variables come from the process environment.
pub fn load_sources(sources: &[Source]) -> Loaded {
    load_sources_with_env(sources, &|name| std::env::var(name).ok())
}

/// [`load_sources`] with an explicit environment, for tests.
pub fn load_sources_with_env(sources: &[Source], env: lexer::EnvLookup<'_>) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut parser = parser::Parser::new();
    let mut order = Vec::new();
    for source in sources {
        let file: Arc<str> = Arc::from(source.name.as_str());
        order.push(file.clone());
        let lines = lexer::lex(&file, &source.text, env, &mut diagnostics);
        parser.parse_file(&file, &lines, &mut diagnostics);
    }
    let config = check::check(parser.finish(), &mut diagnostics);
    // Report in file order, then line and column, whatever pass found them.
    diagnostics.sort_by_key(|d| {
        let file = order
            .iter()
            .position(|f| *f == d.location.file)
            .unwrap_or(usize::MAX);
        (file, d.location.line, d.location.col)
    });
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    Loaded {
        config: ok.then_some(config),
        diagnostics,
    }
}
