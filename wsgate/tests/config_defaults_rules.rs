//! Rules in named `defaults` sections (HAProxy 2.5+), end to end: real
//! requests through the real binary and, side by side, through Debian's
//! HAProxy 2.6 on the same configuration. The defaults' rules run before
//! the proxy's own (frontend side, then backend side), its ACLs serve its
//! own rules, `http-response` rules in defaults apply as well, and an
//! `http-request auth` rule with its `http_auth` ACL in defaults (corpus
//! file 18's intent, in the form HAProxy 2.6 takes) asks for credentials.
//! Corpus file 18 as written (its rules in an anonymous `defaults`, which
//! HAProxy refuses) runs in wsgate as `wsgate migrate` writes it for
//! HAProxy: the rules once per request, in the frontend and the listen
//! section.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{exchange, Script, ScriptedBackend};
use common::{free_port, poll_until, skip_unless_ci, TempDir, Wsgate};

/// The `defaults base` section the named-defaults configurations build on.
const BASE_DEFAULTS: &str = "\
defaults base
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout tunnel 1h
";

fn config(port: u16, server: SocketAddr) -> String {
    format!(
        "\
{BASE_DEFAULTS}
defaults client_rules from base
    acl blocked path /blocked
    http-request deny if blocked
    http-request deny deny_status 429 if {{ path /slow }}
    http-request add-header X-Seq defaults-frontend
    http-response set-header X-Defaults-Response yes

defaults server_rules from base
    http-request add-header X-Seq defaults-backend

frontend fe from client_rules
    bind 127.0.0.1:{port}
    http-request add-header X-Seq frontend
    default_backend be

backend be from server_rules
    http-request add-header X-Seq backend
    server s1 {server}
"
    )
}

/// One request on a new connection and its response. A connection reset
/// before any answer is retried: seen once in a full run, on HAProxy's
/// first request just after it started listening; a reset is no answer to
/// compare, and these requests change nothing on the server.
fn send(proxy: SocketAddr, request: &str) -> common::http::Message {
    poll_until(
        Duration::from_secs(5),
        &format!("an answer from {proxy} to {request:?}"),
        || exchange(proxy, request.as_bytes()).ok(),
    )
    .unwrap()
}

/// Starts wsgate on `config` with a fresh scripted server and compares
/// what `observe` sees with `expected`; then the same with Debian's
/// HAProxy (required in CI).
fn side_by_side<T: PartialEq + std::fmt::Debug>(
    config: fn(u16, SocketAddr) -> String,
    observe: impl Fn(SocketAddr, &ScriptedBackend) -> T,
    expected: &T,
) {
    compare(
        |[port], server| config(port, server),
        |text| text,
        |[proxy], server| observe(proxy, server),
        expected,
    );
}

/// [`side_by_side`] with `N` listening ports, and HAProxy running
/// `for_haproxy` of the configuration wsgate runs.
fn compare<const N: usize, T: PartialEq + std::fmt::Debug>(
    config: impl Fn([u16; N], SocketAddr) -> String,
    for_haproxy: impl Fn(String) -> String,
    observe: impl Fn([SocketAddr; N], &ScriptedBackend) -> T,
    expected: &T,
) {
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let server = ScriptedBackend::start(Script::Ok);
    let ports = [(); N].map(|()| free_port());
    let wsgate = Wsgate::start(&config(ports, server.addr));
    let got = observe(ports.map(local), &server);
    assert_eq!(&got, expected, "wsgate; log:\n{}", wsgate.log());

    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let server = ScriptedBackend::start(Script::Ok);
    let ports = [(); N].map(|()| free_port());
    let _haproxy = Haproxy::start(
        &bin,
        &for_haproxy(config(ports, server.addr)),
        &ports.map(local),
    );
    assert_eq!(&observe(ports.map(local), &server), expected, "haproxy 2.6");
}

/// What a client and the server see: statuses of /blocked, /slow and /ok,
/// the `X-Seq` values the server got for /ok, and the response header.
fn observe(proxy: SocketAddr, server: &ScriptedBackend) -> (u16, u16, u16, Vec<String>, String) {
    let get = |path: &str| {
        send(
            proxy,
            &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        )
    };
    let blocked = get("/blocked").status();
    let slow = get("/slow").status();
    let ok = get("/ok");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "only /ok reaches the server: {seen:?}");
    let seq = seen[0]
        .headers_named("x-seq")
        .into_iter()
        .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
        .collect();
    (
        blocked,
        slow,
        ok.status(),
        seq,
        ok.header("x-defaults-response")
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn defaults_rules_run_before_the_proxys_own_as_in_haproxy() {
    let expected = (
        403,
        429,
        200,
        [
            "defaults-frontend",
            "frontend",
            "defaults-backend",
            "backend",
        ]
        .map(str::to_owned)
        .to_vec(),
        "yes".to_owned(),
    );

    side_by_side(config, observe, &expected);
}

/// 18-mistio-userlist-ws.cfg's intent (basic authentication on every
/// request, its ACL declared in `defaults`) written the way HAProxy 2.6
/// takes it: a named section used by the frontend only. The realm, unset,
/// is the name of the proxy running the rule, in both.
fn auth_config(port: u16, server: SocketAddr) -> String {
    format!(
        "\
userlist httpusers
    user admin insecure-password admin

{BASE_DEFAULTS}
defaults auth from base
    acl auth_acl http_auth(httpusers)
    http-request auth unless auth_acl

frontend www from auth
    bind 127.0.0.1:{port}
    default_backend be

backend be from base
    server s1 {server}
"
    )
}

/// A request without credentials (its status and `WWW-Authenticate`
/// challenge), then one as admin:admin (its status).
fn challenge(proxy: SocketAddr) -> (u16, String, u16) {
    let anonymous = send(
        proxy,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let admin = send(
        proxy,
        "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\nConnection: close\r\n\r\n",
    );
    let challenge = anonymous
        .header("www-authenticate")
        .unwrap_or_default()
        .to_owned();
    (anonymous.status(), challenge, admin.status())
}

#[test]
fn defaults_acl_and_auth_rule_as_in_haproxy() {
    // Statuses without and with credentials, the challenge, and how many
    // requests reached the server (only the authenticated one).
    let ask = |proxy: SocketAddr, server: &ScriptedBackend| {
        let (anonymous, challenge, admin) = challenge(proxy);
        (anonymous, challenge, admin, server.seen().len())
    };
    let expected = (401, "Basic realm=\"www\"".to_owned(), 200, 1);
    side_by_side(auth_config, ask, &expected);
}

/// Corpus file 18's shape: the `http_auth` ACL and the rules in the
/// anonymous `defaults` section (HAProxy refuses it as it is), used by a
/// frontend, its backend and a `listen` section.
fn anonymous_config([www, stats]: [u16; 2], server: SocketAddr) -> String {
    format!(
        "\
userlist httpusers
    user admin insecure-password admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout tunnel 1h
    acl auth_acl http_auth(httpusers)
    http-request auth realm basicauth unless auth_acl
    http-request add-header X-Count 1

frontend www
    bind 127.0.0.1:{www}
    default_backend be

backend be
    server s1 {server}

listen stats
    bind 127.0.0.1:{stats}
    server s1 {server}
"
    )
}

/// `text` as `wsgate migrate` rewrites it.
fn migrated(text: String) -> String {
    let dir = TempDir::new("migrate");
    let path = dir.write("old.cfg", text);
    let out = std::process::Command::new(common::wsgate_bin())
        .arg("migrate")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn anonymous_defaults_rules_run_once_in_each_frontend_and_listen() {
    // For the frontend then the listen section: the status without
    // credentials and its challenge, the status with them; then the
    // `X-Count` values each request reaching the server carried.
    let ask = |proxies: [SocketAddr; 2], server: &ScriptedBackend| {
        let answers: Vec<(u16, String, u16)> =
            proxies.iter().map(|proxy| challenge(*proxy)).collect();
        let counts: Vec<Vec<String>> = server
            .seen()
            .iter()
            .map(|r| {
                r.headers_named("x-count")
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        (answers, counts)
    };
    let answer = (401, "Basic realm=\"basicauth\"".to_owned(), 200);
    let expected = (vec![answer.clone(), answer], vec![vec!["1".to_owned()]; 2]);
    compare(anonymous_config, migrated, ask, &expected);
}
