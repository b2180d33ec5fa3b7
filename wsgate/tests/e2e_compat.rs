//! Configurations as people write them (issue #10), end to end: the ACL
//! fetches of real configs (`url_beg`, `path_reg`, `hdr_cnt`, `nbsrv`, ...),
//! `.if` blocks, `monitor-uri`, `http-check send`, check mode telling the
//! machine from the language, and line endings, each through the real
//! binary and, where HAProxy 2.6 is installed, side by side with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use balance_support::{haproxy_bin, served_by, Haproxy, HTTP_DEFAULTS};
use common::http::{Script, ScriptedBackend};
use common::{
    free_port, haproxy_check, in_ci, poll_until, run_wsgate, skip_unless_ci, DemoBackend, TempDir,
    Wsgate,
};

fn routing_config(port: u16, one: SocketAddr, two: SocketAddr, three: SocketAddr) -> String {
    format!(
        "{HTTP_DEFAULTS}
frontend fe
    bind 127.0.0.1:{port}
.if feature(QUIC)
    bind quic4@127.0.0.1:{port}
.endif
    monitor-uri /healthz
    monitor fail if {{ nbsrv(dead) lt 1 }} {{ hdr(X-Fail) -m found }}
    acl io url_beg /socket.io
    acl q url_sub ?v=2
    acl uuid path_reg ^/[0-9a-f]{{8}}/port
    acl static path_dir static
    acl no_scheme req.hdr_cnt(X-Scheme) eq 0
    acl ws_host hdr_beg(host) -i ws.
    acl never hdr_beg -i ws.
.if version_atleast(2.4) && !defined(WSGATE_COMPAT_UNSET)
    use_backend b_io if io
.else
    use_backend b_q if io
.endif
    use_backend b_q if q
    use_backend b_uuid if uuid
    use_backend b_static if static
    use_backend b_fallback if {{ nbsrv(dead) lt 1 }} {{ path_beg /dead }}
    use_backend b_scheme if !no_scheme
    use_backend b_q if never
    use_backend b_host if ws_host METH_GET
    default_backend b_default

backend dead
    server d 127.0.0.1:1 disabled
backend b_io
    server one {one}
backend b_q
    server two {two}
backend b_uuid
    server three {three}
backend b_static
    server two {two}
backend b_fallback
    server three {three}
backend b_scheme
    server one {one}
backend b_host
    server two {two}
backend b_default
    server three {three}
"
    )
}

/// Request target, extra headers, expected server ("" for the monitor URI,
/// answered by the proxy: 200, or 503 when `monitor fail` holds).
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const CASES: &[Case] = &[
    ("/healthz", &[], ""),
    ("/healthz", &[("X-Fail", "1")], ""),
    ("/socket.io/?EIO=4", &[], "one"),
    ("/x?v=2", &[], "two"),
    ("/0123abcd/port/1", &[], "three"),
    ("/0123ABCD/port/1", &[], "three"),
    ("/a/static/b.css", &[], "two"),
    ("/a/staticx/b.css", &[], "three"),
    ("/dead/x", &[], "three"),
    ("/plain", &[("X-Scheme", "https")], "one"),
    ("/plain", &[("Host", "ws.example.com")], "two"),
    ("/plain", &[], "three"),
];

#[test]
fn fetches_blocks_and_monitor_uri_route_as_haproxy() {
    let one = DemoBackend::start("one", "1h");
    let two = DemoBackend::start("two", "1h");
    let three = DemoBackend::start("three", "1h");
    let port = free_port();
    let cfg = routing_config(port, one.addr, two.addr, three.addr);
    let wsgate = Wsgate::start(&cfg);
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let run = |proxy: SocketAddr, who: &str| {
        for (target, headers, server) in CASES {
            let (status, got) = served_by(proxy, None, target, headers).unwrap();
            assert_eq!(got, *server, "{who}: GET {target} {headers:?}");
            if server.is_empty() {
                let failing = headers.iter().any(|(n, _)| *n == "X-Fail");
                assert_eq!(
                    status,
                    if failing { 503 } else { 200 },
                    "{who}: GET {target} {headers:?}"
                );
            }
        }
    };
    run(proxy, "wsgate");
    let log = wsgate.log();
    assert!(
        !log.contains("/healthz"),
        "monitor requests are not logged or forwarded:\n{log}"
    );

    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let ha_port = free_port();
    let ha_cfg = routing_config(ha_port, one.addr, two.addr, three.addr);
    let ha_addr = SocketAddr::from(([127, 0, 0, 1], ha_port));
    let _haproxy = Haproxy::start(&bin, &ha_cfg, &[ha_addr]);
    run(ha_addr, "haproxy 2.6");
}

/// A mode tcp frontend on a mode http backend: HAProxy upgrades the
/// connection to HTTP; wsgate reads the frontend as mode http. The
/// backend's HTTP settings apply (here `option forwardfor`).
#[test]
fn tcp_frontend_on_http_backend_is_http() {
    let seen = ScriptedBackend::start(Script::Ok);
    let cfg = |port: u16| {
        format!(
            "defaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend fe\n    mode tcp\n    bind 127.0.0.1:{port}\n    default_backend app\n\
             backend app\n    mode http\n    option forwardfor\n    server s {}\n",
            seen.addr
        )
    };
    let port = free_port();
    let wsgate = Wsgate::start(&cfg(port));
    assert!(
        wsgate.log().contains("read as mode http"),
        "{}",
        wsgate.log()
    );
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(served_by(proxy, None, "/x", &[]).unwrap().0, 200);
    let mut requests = vec![seen.requests.lock().unwrap().last().cloned().unwrap()];
    if let Some(bin) = haproxy_bin() {
        let ha_port = free_port();
        let _haproxy = Haproxy::start(
            &bin,
            &cfg(ha_port),
            &[SocketAddr::from(([127, 0, 0, 1], ha_port))],
        );
        let ha = SocketAddr::from(([127, 0, 0, 1], ha_port));
        assert_eq!(served_by(ha, None, "/x", &[]).unwrap().0, 200);
        requests.push(seen.requests.lock().unwrap().last().cloned().unwrap());
    } else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
    }
    for r in requests {
        assert_eq!(r.start, "GET /x HTTP/1.1");
        assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"), "{r:?}");
    }
}

/// `use_backend` in a mode tcp frontend, on what a connection offers
/// (`src`, `nbsrv`), as HAProxy evaluates it.
#[test]
fn tcp_frontend_use_backend_rules() {
    let one = DemoBackend::start("one", "1h");
    let two = DemoBackend::start("two", "1h");
    let cfg = |port: u16| {
        format!(
            "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    use_backend dead if {{ src 10.0.0.0/8 }}\n\
             use_backend two if {{ nbsrv(dead) lt 1 }} LOCALHOST\n    default_backend one\n\
             backend dead\n    server d 127.0.0.1:1 disabled\n\
             backend one\n    server one {}\n\
             backend two\n    server two {}\n",
            one.addr, two.addr
        )
    };
    let port = free_port();
    let _wsgate = Wsgate::start(&cfg(port));
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(served_by(proxy, None, "/", &[]).unwrap().1, "two");
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let ha_port = free_port();
    let ha = SocketAddr::from(([127, 0, 0, 1], ha_port));
    let _haproxy = Haproxy::start(&bin, &cfg(ha_port), &[ha]);
    assert_eq!(served_by(ha, None, "/", &[]).unwrap().1, "two");
}

/// `server ... redir <prefix>`: GET and HEAD get a 302 to the prefix and
/// the path, other methods are forwarded (here to a server that is down).
#[test]
fn server_redir_answers_get_with_302() {
    let cfg = |port: u16| {
        format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    retries 0\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend maint\n\
             backend maint\n    server maint_redir 127.0.0.1:1 redir http://static.example/maintenance backup\n"
        )
    };
    let ask = |addr: SocketAddr| {
        let get = common::http::exchange(
            addr,
            b"GET /page?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let post = common::http::exchange(
            addr,
            b"POST /page HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        (
            get.status(),
            get.header("location").map(str::to_owned),
            post.status(),
        )
    };
    let expected = (
        302,
        Some("http://static.example/maintenance/page?x=1".to_owned()),
        503,
    );
    let port = free_port();
    let _wsgate = Wsgate::start(&cfg(port));
    assert_eq!(
        ask(SocketAddr::from(([127, 0, 0, 1], port))),
        expected,
        "wsgate"
    );
    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let ha_port = free_port();
    let ha = SocketAddr::from(([127, 0, 0, 1], ha_port));
    let _haproxy = Haproxy::start(&bin, &cfg(ha_port), &[ha]);
    assert_eq!(ask(ha), expected, "haproxy 2.6");
}

fn check_config(port: u16, backend: SocketAddr, old: SocketAddr) -> String {
    format!(
        "\
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend fe
    bind 127.0.0.1:{port}
    default_backend modern

backend modern
    option httpchk
    http-check send meth GET uri /hc ver HTTP/1.1 hdr Host example.org
    server s {backend} check inter 200ms

backend legacy
    option httpchk GET /old HTTP/1.1\\r\\nHost:\\ legacy.example
    server s {old} check inter 200ms
"
    )
}

/// Waits for the first health check a backend receives.
fn first_check(b: &ScriptedBackend, who: &str) -> common::http::Message {
    poll_until(Duration::from_secs(20), who, || {
        b.requests.lock().unwrap().first().cloned()
    })
    .unwrap()
}

#[test]
fn check_requests_from_http_check_send_and_the_old_idiom() {
    let modern = ScriptedBackend::start(Script::Ok);
    let legacy = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let _wsgate = Wsgate::start(&check_config(port, modern.addr, legacy.addr));
    let m = first_check(&modern, "wsgate's check (http-check send)");
    let l = first_check(&legacy, "wsgate's check (option httpchk with a header)");
    assert_eq!(m.start, "GET /hc HTTP/1.1");
    assert_eq!(m.header("host"), Some("example.org"));
    assert_eq!(l.start, "GET /old HTTP/1.1");
    assert_eq!(l.header("host"), Some("legacy.example"));

    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let (hm, hl) = (
        ScriptedBackend::start(Script::Ok),
        ScriptedBackend::start(Script::Ok),
    );
    let ha_port = free_port();
    let _haproxy = Haproxy::start(
        &bin,
        &check_config(ha_port, hm.addr, hl.addr),
        &[SocketAddr::from(([127, 0, 0, 1], ha_port))],
    );
    let hm = first_check(&hm, "haproxy's check (http-check send)");
    let hl = first_check(&hl, "haproxy's check (option httpchk with a header)");
    assert_eq!(
        (hm.start.as_str(), hm.header("host")),
        ("GET /hc HTTP/1.1", Some("example.org"))
    );
    assert_eq!(
        (hl.start.as_str(), hl.header("host")),
        ("GET /old HTTP/1.1", Some("legacy.example"))
    );
}

#[test]
fn check_mode_tells_the_machine_from_the_language() {
    let dir = TempDir::new("check-mode");
    let cfg = dir.write(
        "site.cfg",
        "\
global
    log no-such-log-host.invalid:514 local0
    chroot /no/such/chroot/dir
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:0 ssl crt /no/such/dir/site.pem
    default_backend app
backend app
    server s1 app.no-such-host.invalid:8080
    server s2 127.0.0.1:8080 ssl ca-file /no/such/ca.pem
",
    );
    let (status, out) = run_wsgate(
        &["-c".as_ref(), "-f".as_ref(), cfg.as_os_str()],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(1), "{out}");
    let env_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(": error: [environment] "))
        .collect();
    assert_eq!(
        env_lines.len(),
        4,
        "log host, certificate, host name, CA file:\n{out}"
    );
    for needle in [
        "site.cfg:2:",
        "site.cfg:10:",
        "site.cfg:13:",
        "site.cfg:14:",
    ] {
        assert!(
            env_lines.iter().any(|l| l.contains(needle)),
            "{needle} in:\n{out}"
        );
    }
    assert!(
        out.contains("`wsgate -c --syntax-only` checks the language alone"),
        "{out}"
    );
    assert!(
        out.contains("site.cfg:3:12: warning: [environment] chroot directory '/no/such/chroot/dir' does not exist"),
        "{out}"
    );

    let (status, out) = run_wsgate(
        &[
            "-c".as_ref(),
            "--syntax-only".as_ref(),
            "-f".as_ref(),
            cfg.as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("language only"), "{out}");
    assert!(
        !out.contains("[environment]"),
        "nothing about the machine:\n{out}"
    );

    // A language error still fails, and is not marked as environment.
    let bad = dir.write(
        "bad.cfg",
        "defaults\n    mode http\n    timeout client 10x\nfrontend fe\n    bind 127.0.0.1:0\n",
    );
    let (status, out) = run_wsgate(
        &[
            "-c".as_ref(),
            "--syntax-only".as_ref(),
            "-f".as_ref(),
            bad.as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("bad.cfg:3:20: error: invalid time"), "{out}");
    assert!(!out.contains("[environment]"), "{out}");
}

#[test]
fn line_endings_bom_tabs_and_long_lines() {
    let backend = DemoBackend::start("app", "1h");
    let port = free_port();
    let values: Vec<String> = (0..5000).map(|i| format!("/p{i}")).collect();
    let body = format!(
        "defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 30s\n\ttimeout server 30s\n\
         frontend fe\n\tbind 127.0.0.1:{port}\n\tacl many path_beg {}\n\tuse_backend app if many\n\
         backend app\n\tserver app {}",
        values.join(" "),
        backend.addr
    );
    // CRLF line ends, a byte order mark, no final newline.
    let text = format!("\u{feff}{}", body.replace('\n', "\r\n"));
    let wsgate = Wsgate::start(&text);
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(served_by(proxy, None, "/p4999/x", &[]).unwrap().1, "app");
    assert_eq!(served_by(proxy, None, "/q", &[]).unwrap().0, 503);
    let log = wsgate.log();
    for warning in [
        "byte order mark skipped",
        "no newline at the end",
        "5003 words on one line",
    ] {
        assert!(log.contains(warning), "{warning}:\n{log}");
    }

    // HAProxy 2.6 reads CRLF and tabs too, and refuses the other three.
    let dir = TempDir::new("lines");
    let plain = dir.write(
        "plain.cfg",
        format!("{}\r\n", body.replace('\n', "\r\n")).replace(&values[10..].join(" "), ""),
    );
    let bom = dir.write("bom.cfg", format!("\u{feff}{body}\n"));
    let no_lf = dir.write("no_lf.cfg", body.replace(&values[10..].join(" "), ""));
    let long = dir.write("long.cfg", format!("{body}\n"));
    for (path, haproxy_ok) in [
        (&plain, true),
        (&bom, false),
        (&no_lf, false),
        (&long, false),
    ] {
        let (status, out) = run_wsgate(
            &["-c".as_ref(), "-f".as_ref(), path.as_os_str()],
            Duration::from_secs(30),
        );
        assert!(status.success(), "wsgate -c {}: {out}", path.display());
        match haproxy_check(path) {
            None => {}
            Some(verdict) => assert_eq!(
                verdict.is_ok(),
                haproxy_ok,
                "haproxy -c {}: {verdict:?}",
                path.display()
            ),
        }
    }
    assert!(!in_ci() || haproxy_bin().is_some());
}
