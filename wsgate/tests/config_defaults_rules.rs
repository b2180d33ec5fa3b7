//! Rules in named `defaults` sections (HAProxy 2.5+), end to end: real
//! requests through the real binary and, side by side, through Debian's
//! HAProxy 2.6 on the same configuration. The defaults' rules run before
//! the proxy's own (frontend side, then backend side), its ACLs serve its
//! own rules, `http-response` rules in defaults apply as well, and an
//! `http-request auth` rule with its `http_auth` ACL in defaults (corpus
//! file 18's intent, in the form HAProxy 2.6 takes) asks for credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{exchange, Script, ScriptedBackend};
use common::{free_port, poll_until, skip_unless_ci, Wsgate};

fn config(port: u16, server: SocketAddr) -> String {
    format!(
        "\
defaults base
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout tunnel 1h

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
    let server = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let wsgate = Wsgate::start(&config(port, server.addr));
    let got = observe(SocketAddr::from(([127, 0, 0, 1], port)), &server);
    assert_eq!(&got, expected, "wsgate; log:\n{}", wsgate.log());

    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let server = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let ha = SocketAddr::from(([127, 0, 0, 1], port));
    let _haproxy = Haproxy::start(&bin, &config(port, server.addr), &[ha]);
    assert_eq!(&observe(ha, &server), expected, "haproxy 2.6");
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

defaults base
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout tunnel 1h

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

#[test]
fn defaults_acl_and_auth_rule_as_in_haproxy() {
    // Statuses without and with credentials, the challenge, and how many
    // requests reached the server (only the authenticated one).
    let ask = |proxy: SocketAddr, server: &ScriptedBackend| {
        let anonymous = send(
            proxy,
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        let admin = send(
            proxy,
            "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\nConnection: close\r\n\r\n",
        );
        (
            anonymous.status(),
            anonymous
                .header("www-authenticate")
                .unwrap_or_default()
                .to_owned(),
            admin.status(),
            server.seen().len(),
        )
    };
    let expected = (401, "Basic realm=\"www\"".to_owned(), 200, 1);
    side_by_side(auth_config, ask, &expected);
}
