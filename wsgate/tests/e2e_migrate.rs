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
