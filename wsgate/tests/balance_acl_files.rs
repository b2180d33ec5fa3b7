//! `acl ... -f <file>` pattern files through the real binary: a blocklist
//! of source addresses spread over two files plus a value on the line, a
//! host list matched case-insensitively; relative paths taken from the
//! working directory (checked against HAProxy 2.6 in the same layout); a
//! missing file is an environment error that `--syntax-only` skips; a bad
//! pattern names its file and line; anonymous `{ ... -f <file> }` ACLs
//! read theirs too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

use balance_support::{demo_backend_at, served_by};
use common::{accepts, free_port, poll_until, proxy_bin, ChildGuard, TempDir, START_DEADLINE};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// `wsgate <args>` (or `haproxy`) run in `cwd`: success, and what it printed.
fn run_in(bin: &OsStr, cwd: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The layout: `lists/` beside `conf/`, the process started in the parent,
/// the configuration naming `lists/...` relative to it.
fn layout(port: u16, s1: SocketAddr, s2: SocketAddr) -> TempDir {
    let dir = TempDir::new("acl-files");
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    dir.write(
        "lists/blocklist.lst",
        "# addresses that get 403\n127.0.0.2\n\n   127.0.0.16/30\n",
    );
    dir.write(
        "lists/more.lst",
        "127.0.0.3\r\n#127.0.0.4 is not blocked\r\n",
    );
    dir.write("lists/hosts.lst", "API.example.com\n  admin.example.com\n");
    dir.write("lists/users.lst", "mallory\n");
    dir.write(
        "conf/wsgate.cfg",
        format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    timeout tunnel 1h\n\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    \
             acl blocked src -f lists/blocklist.lst -f lists/more.lst 127.0.0.9\n    \
             acl api hdr(host) -i -f lists/hosts.lst\n    \
             http-request deny if blocked\n    \
             http-request deny deny_status 429 if {{ hdr(x-user) -f lists/users.lst }}\n    \
             use_backend api if api\n    default_backend web\n\n\
             backend web\n    server s1 {s1}\n\n\
             backend api\n    server s2 {s2}\n"
        ),
    );
    dir
}

#[test]
fn blocklist_and_host_list_from_files() {
    let backends = TempDir::new("acl-files-backends");
    let (a1, a2) = (loopback(free_port()), loopback(free_port()));
    let _s1 = demo_backend_at(a1, "web", &backends);
    let _s2 = demo_backend_at(a2, "api", &backends);
    let port = free_port();
    let dir = layout(port, a1, a2);
    let mut cmd = Command::new(proxy_bin());
    cmd.args(["-f", "conf/wsgate.cfg"]).current_dir(dir.path());
    let guard = ChildGuard::spawn(cmd, dir.path().join("wsgate.log"));
    let proxy = loopback(port);
    poll_until(START_DEADLINE, "wsgate to listen", || {
        accepts(proxy).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", guard.output()));

    let status = |src: &str| served_by(proxy, ip(src), "/", &[]).unwrap().0;
    // From the first file (an address and a /30), the second (CRLF
    // lines), and the line itself.
    for blocked in [
        "127.0.0.2",
        "127.0.0.17",
        "127.0.0.19",
        "127.0.0.3",
        "127.0.0.9",
    ] {
        assert_eq!(status(blocked), 403, "{blocked}\n{}", guard.output());
    }
    // A commented-out line, and addresses outside the /30.
    for allowed in ["127.0.0.4", "127.0.0.15", "127.0.0.20", "127.0.0.1"] {
        assert_eq!(status(allowed), 200, "{allowed}");
    }
    let host = |h: &str| served_by(proxy, None, "/", &[("Host", h)]).unwrap().1;
    assert_eq!(host("api.example.com"), "api");
    assert_eq!(
        host("ADMIN.example.com"),
        "api",
        "leading spaces dropped, -i applies"
    );
    assert_eq!(host("www.example.com"), "web");
    // An anonymous ACL's file.
    let user = |u: &str| served_by(proxy, None, "/", &[("X-User", u)]).unwrap().0;
    assert_eq!(user("mallory"), 429);
    assert_eq!(user("alice"), 200);
}

/// Relative paths are taken from the working directory, not the
/// configuration's: accepted from the parent of `conf/`, refused from
/// inside it, by HAProxy and wsgate alike. A missing file is an
/// environment error at its line; `--syntax-only` does not look.
#[test]
fn relative_paths_missing_files_and_bad_patterns() {
    let dir = layout(free_port(), loopback(1), loopback(2));
    let wsgate = proxy_bin();
    let check = ["-c", "-f", "conf/wsgate.cfg"];
    let (ok, out) = run_in(&wsgate, dir.path(), &check);
    assert!(ok, "{out}");
    let conf = dir.path().join("conf");
    let (ok, out) = run_in(&wsgate, &conf, &["-c", "-f", "wsgate.cfg"]);
    assert!(!ok);
    assert!(
        out.contains(
            "wsgate.cfg:10:24: error: [environment] cannot read pattern file 'lists/blocklist.lst'"
        ),
        "{out}"
    );
    assert!(
        out.contains("'lists/more.lst'"),
        "every missing file is named: {out}"
    );
    let (ok, out) = run_in(&wsgate, &conf, &["-c", "--syntax-only", "-f", "wsgate.cfg"]);
    assert!(ok, "--syntax-only reads no pattern file: {out}");
    if let Some(haproxy) = balance_support::haproxy_bin() {
        let (ok, out) = run_in(haproxy.as_os_str(), dir.path(), &check);
        assert!(ok, "haproxy from the parent: {out}");
        let (ok, _) = run_in(haproxy.as_os_str(), &conf, &["-c", "-f", "wsgate.cfg"]);
        assert!(!ok, "haproxy from conf/ cannot find the lists either");
    } else {
        common::skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
    }

    // A pattern the match cannot use: the file and its line are named.
    dir.write("lists/more.lst", "127.0.0.3\nnot-an-address\n");
    let (ok, out) = run_in(&wsgate, dir.path(), &check);
    assert!(!ok);
    assert!(
        out.contains(
            "error: 'not-an-address' is not an IP address or network (lists/more.lst line 2)"
        ),
        "{out}"
    );
    // `-f` without a file; a missing one in an anonymous ACL.
    dir.write(
        "conf/bad.cfg",
        "frontend fe\n    mode http\n    bind 127.0.0.1:1\n    acl a src -f\n    \
         http-request deny if { src -f lists/gone.lst }\n",
    );
    let (ok, out) = run_in(&wsgate, dir.path(), &["-c", "-f", "conf/bad.cfg"]);
    assert!(!ok);
    assert!(
        out.contains("bad.cfg:4:15: error: '-f' needs a file name"),
        "{out}"
    );
    assert!(
        out.contains(
            "bad.cfg:5:35: error: [environment] cannot read pattern file 'lists/gone.lst'"
        ),
        "{out}"
    );
}
