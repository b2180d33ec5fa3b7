//! Configurations written for old HAProxy versions: wsgate reads the
//! removed keywords in their modern form (with warnings that give the line
//! to write), and `wsgate migrate` rewrites the file so that current
//! HAProxy (`haproxy -c`, when installed) and wsgate both accept it without
//! those warnings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TempDir;

const OLD: &str = "\
global
    maxconn 1000

defaults
    mode http
    contimeout 5000
    clitimeout 50000   # client side
    srvtimeout 50000
    option forceclose
    redispatch

listen app 127.0.0.1:18099
    acl bad path_beg /admin
    block if bad
    server s1 127.0.0.1:9
";

fn wsgate(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String, String) {
    let out = std::process::Command::new(common::wsgate_bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn old_keywords_are_read_and_migrated() {
    let dir = TempDir::new("migrate");
    let old = dir.write("old.cfg", OLD);

    // Read as is, with a warning per removed keyword naming its replacement.
    let (status, _, err) = wsgate(&["-c".as_ref(), "-f".as_ref(), old.as_os_str()]);
    assert!(status.success(), "{err}");
    for (line, new) in [
        (6, "timeout connect 5000"),
        (7, "timeout client 50000"),
        (8, "timeout server 50000"),
        (9, "option httpclose"),
        (10, "option redispatch"),
        (14, "http-request deny if bad"),
    ] {
        let needle = format!("old.cfg:{line}:5: warning: ");
        let at = err
            .find(&needle)
            .unwrap_or_else(|| panic!("no warning at line {line}:\n{err}"));
        assert!(
            err[at..].contains(&format!("read as `{new}`")),
            "line {line}:\n{err}"
        );
    }

    // Rewritten: comments kept, a note above each change.
    let (status, new_text, err) = wsgate(&["migrate".as_ref(), "-f".as_ref(), old.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(err.contains("7 line(s) rewritten"), "{err}");
    assert!(
        new_text.contains("    timeout client 50000   # client side\n"),
        "{new_text}"
    );
    assert!(
        new_text.contains("listen app\n    bind 127.0.0.1:18099\n"),
        "{new_text}"
    );
    let new = dir.write("new.cfg", &new_text);
    let (status, _, err) = wsgate(&["-c".as_ref(), "-f".as_ref(), new.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(!err.contains("was removed"), "{err}");

    if let Some(verdict) = common::haproxy_check(&new) {
        if let Err(stderr) = verdict {
            panic!("haproxy -c refused the migrated file:\n{stderr}\n{new_text}");
        }
        // ...and refuses the original, which is the point.
        let old_verdict = common::haproxy_check(&old);
        assert!(
            matches!(old_verdict, Some(Err(_))),
            "haproxy accepted the old file"
        );
    }
}

/// A 1.x-style file with request/response rewriting, served as is and as
/// migrated: every request gets the same answer and the server sees the
/// same request.
const OLD_RULES: &str = "\
defaults
    mode http
    contimeout 5000
    clitimeout 50000
    srvtimeout 50000
    option forceclose

listen app 127.0.0.1:PORT
    acl bad path_beg /admin
    block if bad
    reqadd X-Forwarded-Proto:\\ http
    reqidel ^X-Debug:.*
    reqrep ^([^\\ :]*)\\ /api/(.*) \\1\\ /\\2
    rspadd X-Served-By:\\ app
    server s1 BACKEND
";

/// What one request looked like from both ends.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    status: u16,
    served_by: Option<String>,
    /// The request line, X-Forwarded-Proto and X-Debug the server got.
    at_server: Option<(String, Option<String>, Option<String>)>,
}

fn observe(config: &str, port: u16, backend: &common::http::ScriptedBackend) -> Vec<Observed> {
    use std::net::SocketAddr;
    let dir = TempDir::new("migrate-run");
    let path = dir.write("app.cfg", config);
    let mut cmd = std::process::Command::new(common::proxy_bin());
    cmd.arg("-f").arg(&path);
    let guard = common::ChildGuard::spawn(cmd, dir.path().join("wsgate.log"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    common::poll_until(common::START_DEADLINE, "wsgate to listen", || {
        common::accepts(addr).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", guard.output()));
    let requests: [&[u8]; 4] = [
        b"GET /api/users?id=3 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /admin/panel HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /page HTTP/1.1\r\nHost: x\r\nX-Debug: 1\r\n\r\n",
        b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    ];
    requests
        .iter()
        .map(|req| {
            let before = backend.seen().len();
            let resp = common::http::exchange(addr, req)
                .unwrap_or_else(|e| panic!("{e}\n{}", guard.output()));
            let seen = backend.seen();
            let at_server = seen.get(before).map(|m| {
                (
                    m.start.clone(),
                    m.header("x-forwarded-proto").map(str::to_owned),
                    m.header("x-debug").map(str::to_owned),
                )
            });
            Observed {
                status: resp.status(),
                served_by: resp.header("x-served-by").map(str::to_owned),
                at_server,
            }
        })
        .collect()
}

#[test]
fn legacy_and_migrated_files_behave_alike() {
    let backend = common::http::ScriptedBackend::start(common::http::Script::Ok);
    let port = common::free_port();
    let old = OLD_RULES
        .replace("PORT", &port.to_string())
        .replace("BACKEND", &backend.addr.to_string());
    let dir = TempDir::new("migrate-rules");
    let old_path = dir.write("old.cfg", &old);
    let (status, new, err) = wsgate(&["migrate".as_ref(), "-f".as_ref(), old_path.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(
        new.contains("http-request add-header X-Forwarded-Proto http"),
        "{new}"
    );

    let as_legacy = observe(&old, port, &backend);
    let as_migrated = observe(&new, port, &backend);
    assert_eq!(as_legacy, as_migrated, "legacy vs migrated\n{new}");
    // And what that behaviour is.
    let line = |o: &Observed| o.at_server.as_ref().map(|s| s.0.clone());
    assert_eq!(
        line(&as_legacy[0]).as_deref(),
        Some("GET /users?id=3 HTTP/1.1")
    );
    assert_eq!(as_legacy[1].status, 403);
    assert_eq!(as_legacy[1].at_server, None, "blocked before the server");
    let third = as_legacy[2].at_server.as_ref().unwrap();
    assert_eq!(
        (third.1.as_deref(), third.2.as_deref()),
        (Some("http"), None)
    );
    assert_eq!(line(&as_legacy[3]).as_deref(), Some("POST /items HTTP/1.1"));
    assert!(as_legacy
        .iter()
        .filter(|o| o.status == 200)
        .all(|o| o.served_by.as_deref() == Some("app")));

    if let Some(verdict) = common::haproxy_check(&dir.write("new.cfg", &new)) {
        verdict.unwrap_or_else(|e| panic!("haproxy -c refused the migrated file:\n{e}\n{new}"));
    }
}
