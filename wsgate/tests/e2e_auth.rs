//! HTTP Basic authentication through the real binary: a `userlist` with
//! crypt(3) hashes made by `openssl passwd -6|-5|-1` (and a bcrypt one from
//! the C library's crypt), `http_auth` / `http_auth_group` ACLs and
//! `http-request auth`. curl is the client; Debian's HAProxy 2.6 runs the
//! same configuration beside wsgate and must give every request the same
//! status and `WWW-Authenticate`, and the same 401 page.
//!
//! Needs `curl`, `openssl` and `/usr/sbin/haproxy` (installed by
//! `.ci/run`): without them the test is skipped locally and fails in CI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::process::Command;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{exchange, Script, ScriptedBackend};
use common::{free_port, skip_unless_ci, Wsgate};

/// `crypt("secretb", "$2b$04$E6/0FYFRhg5GHnp4ea6En.")` (Python's crypt
/// module over libxcrypt): openssl makes no bcrypt hashes.
const BCRYPT: &str = "$2b$04$E6/0FYFRhg5GHnp4ea6En.7kl4GVzTpWuLpDYWKVKxf.StRAIp8M.";

fn openssl_passwd(scheme: &str, password: &str) -> Option<String> {
    let out = Command::new("openssl")
        .args(["passwd", scheme, password])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Status, `WWW-Authenticate` and body of a curl GET (`user` as `-u`).
fn curl(addr: SocketAddr, path: &str, user: Option<&str>) -> (String, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10"]);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    let out = cmd.arg(format!("http://{addr}{path}")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    let www = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("www-authenticate")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, www, body.to_owned())
}

#[test]
fn basic_auth_with_crypt_hashes_matches_haproxy() {
    let hashes = ["-6", "-5", "-1"].map(|s| openssl_passwd(s, &format!("secret{s}")));
    let [Some(h6), Some(h5), Some(h1)] = hashes else {
        skip_unless_ci("openssl is not installed");
        return;
    };
    if Command::new("curl").arg("--version").output().is_err() {
        skip_unless_ci("curl is not installed");
        return;
    }
    assert!(h6.starts_with("$6$") && h5.starts_with("$5$") && h1.starts_with("$1$"));
    let backend = ScriptedBackend::start(Script::Ok);
    let config = |port: u16| {
        // Single quotes: HAProxy would expand `$...` in double ones.
        format!(
            "userlist L
    group admins users alice
    user alice password '{h6}'
    user bob password '{h5}' groups devs
    user carol password '{h1}'
    user dave insecure-password plain groups admins,devs
    user erin password '{BCRYPT}'
    group devs
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{port}
    acl ok http_auth(L)
    acl adm http_auth_group(L) admins
    http-request auth realm basicauth unless ok
    http-request auth if {{ path_beg /adm }} !adm
    default_backend be
backend be
    server s1 {}
",
            backend.addr
        )
    };
    let port = free_port();
    let ours = SocketAddr::from(([127, 0, 0, 1], port));
    let gate = Wsgate::start(&config(port));
    let mut sides = vec![("wsgate", ours)];
    let _haproxy = match haproxy_bin() {
        Some(bin) => {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            sides.push(("haproxy", addr));
            Some(Haproxy::start(&bin, &config(port), &[addr]))
        }
        None => {
            skip_unless_ci("haproxy is not installed: no side-by-side comparison");
            None
        }
    };

    let realm = "Basic realm=\"basicauth\"";
    let own = "Basic realm=\"fe\"";
    let ok = "HTTP/1.1 200 OK";
    let denied = "HTTP/1.1 401 Unauthorized";
    let cases: [(&str, Option<&str>, &str, &str); 14] = [
        ("/", None, denied, realm),
        ("/", Some("alice:wrong"), denied, realm),
        ("/", Some("nobody:secret-6"), denied, realm),
        ("/", Some("alice:secret-6"), ok, ""),
        ("/", Some("bob:secret-5"), ok, ""),
        ("/", Some("carol:secret-1"), ok, ""),
        ("/", Some("dave:plain"), ok, ""),
        ("/", Some("dave:plai"), denied, realm),
        ("/", Some("erin:secretb"), ok, ""),
        ("/", Some("erin:secretc"), denied, realm),
        // Group membership from either side; no realm: the proxy's name.
        ("/adm", Some("alice:secret-6"), ok, ""),
        ("/adm", Some("dave:plain"), ok, ""),
        ("/adm", Some("bob:secret-5"), denied, own),
        ("/adm", Some("carol:secret-1"), denied, own),
    ];
    for (path, user, status, www) in cases {
        let views: Vec<_> = sides
            .iter()
            .map(|(name, addr)| (*name, curl(*addr, path, user)))
            .collect();
        let (got_status, got_www, _) = &views[0].1;
        assert_eq!(
            (got_status.as_str(), got_www.as_str()),
            (status, www),
            "{path} {user:?}\n{}",
            gate.log()
        );
        for (name, v) in &views[1..] {
            assert_eq!(&views[0].1, v, "{path} {user:?}: wsgate vs {name}");
        }
    }
    // Credentials reach the server untouched (HAProxy does not remove
    // them either).
    let m = exchange(
        ours,
        b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic ZGF2ZTpwbGFpbg==\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(m.status(), 200);
    let seen = backend.seen();
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some("Basic ZGF2ZTpwbGFpbg==")
    );
}

/// The golden configuration with a userlist, `http-request auth`,
/// `http-after-response` and dynamic cookies is one HAProxy accepts too.
#[test]
fn the_auth_cookie_golden_configuration_passes_haproxy_check() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/auth_cookie_ok.cfg");
    let dir = common::TempDir::new("auth-cookie-ok");
    let copy = dir.write("auth_cookie_ok.cfg", std::fs::read(&path).unwrap());
    if let Some(result) = common::haproxy_check(&copy) {
        result.unwrap_or_else(|e| panic!("haproxy -c refused auth_cookie_ok.cfg:\n{e}"));
    }
}
