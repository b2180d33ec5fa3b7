//! HAProxy configuration language: text in, typed [`model::Config`] out.
//!
//! Passes: `lexer` (words, quotes, escapes, `${VAR}`) → `cond` (`.if`
//! blocks and `.notice`-style messages) → `parser` (sections
//! and keywords, driven by the one table in `keywords`) → `check` (names
//! resolved, cross-section rules such as frontend/backend mode agreement).
//! Every pass collects [`diag::Diagnostic`]s instead of stopping at the first
//! problem. This module uses no sockets, tasks or TLS, so it can be tested
//! and fuzzed on its own.

pub mod acl;
pub mod acl_file;
pub mod check;
pub mod cond;
mod defaults_rules;
pub mod diag;
pub mod errorfile;
mod handlers;
mod handlers_health;
mod handlers_obs;
pub mod http_rules;
pub mod keywords;
pub mod legacy_rules;
pub mod lexer;
pub mod logformat;
pub mod logline;
pub mod migrate;
pub mod model;
pub mod parser;
pub mod persist;
pub mod process;
mod server_template;
pub mod tcp_check;
pub mod tcp_rules;
pub mod tls;
pub mod track;
pub mod units;
pub mod userlist;
pub mod websocket;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diag::{Diagnostic, Kind, Severity};
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

/// What loading checks besides the language.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check the language alone (`wsgate -c --syntax-only`): no file named
    /// by the configuration is looked at and no host name is resolved
    /// (servers named by host get an unspecified address), so the result
    /// does not depend on the machine. Such a [`Config`] is for checking,
    /// not for running.
    pub syntax_only: bool,
}

/// Reads every `-f` argument (a directory contributes its `*.cfg` files in
/// lexical order, as HAProxy does) and loads them as one configuration.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    load_paths_with(paths, Options::default())
}

/// [`load_paths`] with explicit [`Options`].
pub fn load_paths_with(paths: &[PathBuf], options: Options) -> Loaded {
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
    let mut loaded = load_sources_with(&sources, &|name| std::env::var(name).ok(), options);
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
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !text.is_empty() && !text.ends_with('\n') {
                let last = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
                diags.push(
                    Diagnostic::warning(
                        Location {
                            file: Arc::from(name.as_str()),
                            line: last,
                            col: 1,
                        },
                        "no newline at the end of the file: the last line is read, but HAProxy 2.6 refuses such a file (\"Missing LF on last line\")",
                    )
                    .with_hint("end the file with a newline to use it with HAProxy too"),
                );
            }
            sources.push(Source { name, text });
        }
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
    load_sources_with(sources, env, Options::default())
}

/// [`load_sources_with_env`] with explicit [`Options`].
pub fn load_sources_with(
    sources: &[Source],
    env: lexer::EnvLookup<'_>,
    options: Options,
) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut parser = parser::Parser::new(options);
    let mut order = Vec::new();
    for source in sources {
        let file: Arc<str> = Arc::from(source.name.as_str());
        order.push(file.clone());
        let lines = lexer::lex(&file, &source.text, env, &mut diagnostics);
        let lines = cond::apply(&file, lines, env, &mut diagnostics);
        parser.parse_file(&file, &lines, env, &mut diagnostics);
    }
    let config = check::check(parser.finish(&mut diagnostics), &mut diagnostics);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::model::{BackendId, HttpConnMode, Mode};
    use super::*;

    fn load(text: &str) -> Loaded {
        let env = |name: &str| (name == "APP").then(|| "127.0.0.1:9000".to_owned());
        load_sources_with_env(
            &[Source {
                name: "t.cfg".into(),
                text: text.into(),
            }],
            &env,
        )
    }

    fn config(text: &str) -> Config {
        let loaded = load(text);
        let errors: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        loaded.config.unwrap()
    }

    #[test]
    fn defaults_inheritance_and_reset() {
        let c = config(
            "defaults a\n mode http\n timeout client 10s\n timeout connect 5s\n timeout server 1m\n retries 5\n\
             defaults b from a\n timeout tunnel 1h\n\
             frontend f1\n bind :80\n default_backend b1\n\
             backend b1\n server s 127.0.0.1:1\n\
             backend b2 from a\n server s 127.0.0.1:1\n\
             defaults\n timeout client 3s\n\
             frontend f2\n bind :81\n",
        );
        let f1 = &c.frontends[0];
        assert_eq!(f1.mode, Mode::Http);
        assert_eq!(f1.timeouts.client, Some(Duration::from_secs(10)));
        assert_eq!(f1.default_backend, Some(BackendId(0)));
        let b1 = &c.backends[0];
        assert_eq!(b1.timeouts.tunnel, Some(Duration::from_secs(3600)));
        assert_eq!(b1.timeouts.server, Some(Duration::from_secs(60)));
        assert_eq!(b1.retries, 5);
        let b2 = &c.backends[1];
        assert_eq!(
            b2.timeouts.tunnel, None,
            "`from a` skips b's tunnel timeout"
        );
        let f2 = &c.frontends[1];
        assert_eq!(f2.mode, Mode::Tcp, "an unnamed defaults starts over");
        assert_eq!(f2.timeouts.client, Some(Duration::from_secs(3)));
        assert_eq!(c.backends[0].servers[0].weight, 1);
    }

    /// `init-addr none` and empty `server-template` slots: no address (not
    /// a placeholder), not `disabled` (HAProxy's resolution maintenance is
    /// a state of its own), checks on the server's port once it has one.
    #[test]
    fn servers_without_an_address() {
        let c = config(
            "backend b\n server-template t 3 localhost:81 check port 82\n\
             server n no-such-host.invalid:83 check init-addr none\n",
        );
        let s = &c.backends[0].servers;
        let none = |port| model::ServerAddr::Unresolved { port };
        // localhost has one or two addresses: the third slot has none.
        assert!(s[0].addr.known().is_some());
        assert_eq!(s[2].addr, none(81));
        assert_eq!(s[2].check.as_ref().unwrap().target, none(82));
        assert_eq!(s[3].addr, none(83));
        assert_eq!(s[3].check.as_ref().unwrap().target, none(83));
        assert!(s.iter().all(|s| !s.disabled));
        assert_eq!(s[3].addr.to_string(), "-:83");
    }

    #[test]
    fn listen_creates_both_halves() {
        let c = config(
            "listen chat\n mode http\n bind 127.0.0.1:8000\n timeout client 1s\n timeout connect 1s\n\
             timeout server 1s\n timeout tunnel 1h\n server a 127.0.0.1:8080 weight 3\n option forwardfor\n",
        );
        assert_eq!(c.frontends.len(), 1);
        assert_eq!(c.backends.len(), 1);
        assert_eq!(c.frontends[0].name, "chat");
        assert_eq!(c.backends[0].name, "chat");
        assert_eq!(c.frontends[0].default_backend, Some(BackendId(0)));
        assert!(c.frontends[0].forwardfor.is_some() && c.backends[0].http.forwardfor.is_some());
        assert_eq!(c.backends[0].servers[0].weight, 3);
        assert_eq!(c.backends[0].mode, Mode::Http);
    }

    #[test]
    fn options_units_and_server_defaults() {
        let c = config(
            "global\n maxconn 5000\n tune.bufsize 32k\n\
             defaults\n mode http\n option http-server-close\n option redispatch\n timeout client 500\n\
             timeout http-request 5s\n timeout http-keep-alive 2s\n timeout connect 1s\n timeout server 1s\n timeout tunnel 1h\n\
             frontend f\n bind :80,:::81\n maxconn 0\n no option http-server-close\n default_backend b\n\
             backend b\n option httpclose\n default-server weight 7\n server a \"$APP\" disabled\n server b 127.0.0.1:2 weight 0\n",
        );
        assert_eq!(c.global.maxconn, Some(5000));
        assert_eq!(c.global.tune_bufsize, 32768);
        let f = &c.frontends[0];
        assert_eq!(f.maxconn, None, "frontend maxconn 0 means the global value");
        assert_eq!(f.http_conn_mode, HttpConnMode::KeepAlive);
        assert_eq!(f.timeouts.client, Some(Duration::from_millis(500)));
        assert_eq!(f.timeouts.http_request, Some(Duration::from_secs(5)));
        assert_eq!(f.timeouts.http_keep_alive, Some(Duration::from_secs(2)));
        let addrs: Vec<String> = f.binds.iter().map(|b| b.addr.to_string()).collect();
        assert_eq!(addrs, ["0.0.0.0:80", "[::]:81"]);
        let b = &c.backends[0];
        assert_eq!(b.http_conn_mode, HttpConnMode::Close);
        assert!(b.redispatch);
        assert_eq!(b.servers[0].addr.to_string(), "127.0.0.1:9000");
        assert!(b.servers[0].disabled);
        assert_eq!(b.servers[0].weight, 7);
        assert_eq!(b.servers[1].weight, 0);
    }

    #[test]
    fn errors_mean_no_config_and_all_are_reported() {
        let loaded =
            load("frontend f\n bind :80\n mode http\n default_backend nope\n timeout client 10x\n");
        assert!(loaded.config.is_none());
        let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(errors[0].location.line, 4);
        assert_eq!(errors[1].location.line, 5);
    }

    #[test]
    fn mode_mismatch_points_at_the_reference() {
        let loaded = load(
            "frontend ws\n mode http\n timeout client 10s\n bind *:80\n default_backend wsbackend\n\
             backend wsbackend\n server s1 127.0.0.1:8080\n",
        );
        let e = loaded.diagnostics.iter().find(|d| d.is_error()).unwrap();
        assert_eq!((e.location.line, e.location.col), (5, 2));
        assert!(e.message.contains("mode http") && e.message.contains("mode tcp"));
        assert!(e.hint.as_deref().unwrap().contains("(line 6)"));
    }

    /// Rules of an anonymous `defaults` section (refused by HAProxy) run
    /// at the top of its frontend and listen section, not in its backend,
    /// with their own ACL: the frontend's ACL of the same name is another.
    #[test]
    fn anonymous_defaults_rules_run_once_per_request() {
        let loaded = load(
            "defaults\n mode http\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n\
             timeout tunnel 1h\n acl a path /x\n http-request deny if a\n\
             frontend f\n bind :80\n acl a path /y\n http-request deny if a\n default_backend b\n\
             backend b\n server s 127.0.0.1:1\n\
             listen l\n bind :81\n server s 127.0.0.1:1\n",
        );
        let warned: Vec<u32> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("anonymous defaults"))
            .map(|d| d.location.line)
            .collect();
        assert_eq!(warned, [7, 8]);
        let c = loaded.config.unwrap();
        let f = &c.frontends[0];
        let lines: Vec<u32> = f.http_request.iter().map(|r| r.location.line).collect();
        assert_eq!(lines, [8, 12], "the defaults' rule first, once");
        let acl = |i: usize| {
            let cond = f.http_request[i].condition.as_ref().unwrap();
            &f.acls[cond.groups[0][0].acl]
        };
        assert_ne!(acl(0).terms, acl(1).terms);
        assert_eq!(
            acl(1).terms.len(),
            1,
            "the frontend's `a` is its own line only"
        );
        assert!(c.backends[0].http.http_request.is_empty(), "backend b");
        assert_eq!(c.frontends[1].http_request.len(), 1, "listen l");
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Any text, including half-written sections and keywords, gives
        /// diagnostics, never a panic.
        #[test]
        fn loading_never_panics(lines in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::string::string_regex("[ -~]{0,40}").unwrap(),
                proptest::sample::select(vec![
                    "global", "defaults", "defaults x from", "frontend f", "backend b", "listen l from x",
                    "bind", "bind :", "bind [::", "bind :80 ssl crt", "server s", "server s :1 weight",
                    "default_backend", "timeout", "timeout client", "no option", "no", "option", "mode",
                    "balance", "\"${A", "\"$", ".if", "default-server weight", "stats",
                    ".if defined(A) && (1 || !feature(X)", ".elif", ".else", ".endif", ".notice",
                    "acl a hdr_cnt(x) gt", "acl a path_reg (", "monitor fail if", "server-template s 3 h:1",
                    "http-check send hdr", "\u{feff}global",
                ]).prop_map(String::from),
            ],
            0..12,
        )) {
            let _ = load(&lines.join("\n"));
        }
    }
}
