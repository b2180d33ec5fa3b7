//! ACL fetches and match methods in `use_backend` rules, side by side with
//! HAProxy 2.6 (issue #4): one table of rules and one table of requests;
//! wsgate and HAProxy must route every request to the expected backend.
//! Each backend answers by itself (`http-request return ... hdr
//! X-Served-By <name>`), so no server process is needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use balance_support::{haproxy_bin, wsgate_then_haproxy, Haproxy, HTTP_DEFAULTS};
use common::http::exchange;
use common::{free_port, run_with_deadline, skip_unless_ci, TempDir, TestCert, Wsgate};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A backend that answers every request itself, naming itself.
fn answering_backend(name: &str) -> String {
    format!(
        "backend {name}\n    http-request return status 200 content-type text/plain string {name} hdr X-Served-By {name}\n"
    )
}

/// The rules, in order: the first that holds wins (`/admin/site.css` is
/// both `css` and `admin`: `b_css`, the earlier rule).
const RULES: &str = "\
    acl alt_port dst_port {ALT}
    acl id_found url_param(id) -m found
    acl v2 urlp(v) 2
    acl semi url_param(s,;) yes
    acl short path -m len 1:3
    acl long_host hdr(host) -m len gt 20
    acl css path_end .css
    acl admin path_sub /admin/
    acl exact url /exact?x=1
    acl host_org hdr_end(host) .example.org
    acl bot hdr_sub(user-agent) -i bot
    acl api_dom hdr_dom(host) api
    acl tenant req.hdr(x-tenant) blue
    acl post method POST
    acl m_sub path -m sub legacy
    acl m_reg path -m reg ^/v[0-9]+/items$
    acl m_zone hdr(x-zone) -m dom eu
    acl m_ip hdr(x-real-ip) -m ip 10.0.0.0/8
    acl m_dir path -m dir docs
    acl m_int hdr(x-count) -m int gt 10
    acl any always_true
    use_backend b_port if alt_port
    use_backend b_id if id_found
    use_backend b_v2 if v2
    use_backend b_semi if semi
    use_backend b_post if post
    use_backend b_exact if exact
    use_backend b_css if css
    use_backend b_admin if admin
    use_backend b_org if host_org
    use_backend b_bot if bot
    use_backend b_api if api_dom
    use_backend b_tenant if tenant
    use_backend b_sub if m_sub
    use_backend b_reg if m_reg
    use_backend b_zone if m_zone
    use_backend b_ip if m_ip
    use_backend b_dir if m_dir
    use_backend b_int if m_int
    use_backend b_short if short
    use_backend b_long if long_host
    use_backend b_always if any { hdr(x-always) -m found }
    default_backend b_def
";

fn routing_config(port: u16, alt: u16) -> String {
    let mut cfg = format!(
        "{HTTP_DEFAULTS}\nfrontend fe\n    bind 127.0.0.1:{port}\n    bind 127.0.0.1:{alt}\n{}\n",
        RULES.replace("{ALT}", &alt.to_string())
    );
    for line in RULES.lines() {
        if let Some(rest) = line.trim().strip_prefix("use_backend ") {
            cfg.push_str(&answering_backend(rest.split(' ').next().unwrap()));
        }
    }
    cfg.push_str(&answering_backend("b_def"));
    cfg
}

/// Method, target, extra headers, on the second port, expected backend.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    bool,
    &'static str,
);

const CASES: &[Case] = &[
    ("GET", "/", &[], true, "b_port"),
    ("GET", "/page?id=7", &[], false, "b_id"),
    ("GET", "/page?a=1&id=", &[], false, "b_id"),
    // No `=`: no value, so not found; the path is short.
    ("GET", "/x?id", &[], false, "b_short"),
    ("GET", "/page?v=1&v=2", &[], false, "b_v2"),
    ("GET", "/page?v=12", &[], false, "b_def"),
    ("GET", "/page;s=yes", &[], false, "b_semi"),
    ("GET", "/page?s=yes", &[], false, "b_def"),
    ("POST", "/page", &[], false, "b_post"),
    ("GET", "/exact?x=1", &[], false, "b_exact"),
    ("GET", "/exact?x=12", &[], false, "b_def"),
    ("GET", "/admin/site.css", &[], false, "b_css"),
    ("GET", "/a/admin/panel", &[], false, "b_admin"),
    (
        "GET",
        "/home",
        &[("Host", "www.example.org")],
        false,
        "b_org",
    ),
    (
        "GET",
        "/home",
        &[("Host", "example.organic")],
        false,
        "b_def",
    ),
    (
        "GET",
        "/home",
        &[("User-Agent", "GoogleBOT/2")],
        false,
        "b_bot",
    ),
    (
        "GET",
        "/home",
        &[("Host", "api.example.com")],
        false,
        "b_api",
    ),
    (
        "GET",
        "/home",
        &[("Host", "rapid.example.com")],
        false,
        "b_def",
    ),
    (
        "GET",
        "/home",
        &[("X-Tenant", "red, blue")],
        false,
        "b_tenant",
    ),
    ("GET", "/home", &[("X-Tenant", "blueish")], false, "b_def"),
    ("GET", "/legacy-api/x", &[], false, "b_sub"),
    ("GET", "/v2/items", &[], false, "b_reg"),
    ("GET", "/v2/items/1", &[], false, "b_def"),
    (
        "GET",
        "/home",
        &[("X-Zone", "shop.eu.example")],
        false,
        "b_zone",
    ),
    ("GET", "/home", &[("X-Zone", "europe")], false, "b_def"),
    ("GET", "/home", &[("X-Real-IP", "10.1.2.3")], false, "b_ip"),
    (
        "GET",
        "/home",
        &[("X-Real-IP", "192.168.1.1")],
        false,
        "b_def",
    ),
    ("GET", "/a/docs/x", &[], false, "b_dir"),
    ("GET", "/a/docsx/y", &[], false, "b_def"),
    ("GET", "/home", &[("X-Count", "11")], false, "b_int"),
    ("GET", "/home", &[("X-Count", "10")], false, "b_def"),
    ("GET", "/ab", &[], false, "b_short"),
    (
        "GET",
        "/home",
        &[("Host", "a-very-long-hostname.example.com")],
        false,
        "b_long",
    ),
    ("GET", "/home", &[("X-Always", "1")], false, "b_always"),
    ("GET", "/home", &[], false, "b_def"),
];

/// Sends one request and returns the backend that answered.
fn routed_to(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("Host: test\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    let res = exchange(addr, req.as_bytes()).unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    assert_eq!(res.status(), 200, "{method} {target} {headers:?}");
    res.header("x-served-by").unwrap_or_default().to_owned()
}

fn route_all(port: u16, alt: u16, who: &str) {
    let mut wrong = Vec::new();
    for (method, target, headers, on_alt, expected) in CASES {
        let addr = loopback(if *on_alt { alt } else { port });
        let got = routed_to(addr, method, target, headers);
        if got != *expected {
            wrong.push(format!(
                "{method} {target} {headers:?}: {got}, expected {expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{who}:\n{}", wrong.join("\n"));
}

#[test]
fn acl_fetches_and_match_methods_route_as_haproxy() {
    let (port, alt) = (free_port(), free_port());
    let wsgate = Wsgate::start(&routing_config(port, alt));
    route_all(port, alt, "wsgate");
    drop(wsgate);

    let Some(bin) = haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (side-by-side part)");
        return;
    };
    let (ha_port, ha_alt) = (free_port(), free_port());
    let _haproxy = Haproxy::start(
        &bin,
        &routing_config(ha_port, ha_alt),
        &[loopback(ha_port), loopback(ha_alt)],
    );
    route_all(ha_port, ha_alt, "haproxy 2.6");
}

/// `ssl_fc_protocol` names the client connection's TLS version as HAProxy
/// does (`TLSv1.2`, `TLSv1.3`): curl limited to each version is routed by
/// it, and gets it back from `%[ssl_fc_protocol]` in `http-request return
/// ... hdr`, by wsgate and by HAProxy; `%[ssl_fc_sni]` gives the name curl
/// asked for.
#[test]
fn ssl_fc_protocol_routes_as_haproxy() {
    let curl = Command::new("curl").arg("--version").output();
    if !curl.is_ok_and(|o| o.status.success()) {
        skip_unless_ci("curl is not installed");
        return;
    }
    let dir = TempDir::new("ssl-fc-protocol");
    let cert = TestCert::generate(dir.path(), "site.pem");
    // Each backend also names the version in its answer (a format).
    let with_protocol = |name: &str| {
        format!(
            "{} hdr X-Proto %[ssl_fc_protocol] hdr X-Sni %[ssl_fc_sni]\n",
            answering_backend(name).trim_end()
        )
    };
    let config = |port: u16| {
        format!(
            "{HTTP_DEFAULTS}\nfrontend fe\n    bind 127.0.0.1:{port} ssl crt {}\n    \
             acl v13 ssl_fc_protocol TLSv1.3\n    acl v12 ssl_fc_protocol -i tlsv1.2\n    \
             use_backend b_13 if v13\n    use_backend b_12 if v12\n    default_backend b_def\n{}{}{}",
            cert.pem_path.display(),
            with_protocol("b_13"),
            with_protocol("b_12"),
            with_protocol("b_def"),
        )
    };
    let ask = |port: u16, version: &[&str]| -> (String, String, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-D", "-", "--cacert"])
            .arg(&cert.ca_path)
            .args(version)
            .arg(format!("https://localhost:{port}/"));
        let (status, out, err) = run_with_deadline(cmd, Duration::from_secs(30)).unwrap();
        assert!(status.success(), "curl {version:?}: {err}");
        let header = |wanted: &str| {
            out.lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case(wanted)
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default()
        };
        (header("x-served-by"), header("x-proto"), header("x-sni"))
    };
    let check = |port: u16, who: &str| {
        let v13 = ask(port, &["--tlsv1.3"]);
        assert_eq!(
            (v13.0.as_str(), v13.1.as_str()),
            ("b_13", "TLSv1.3"),
            "{who}"
        );
        assert_eq!(v13.2, "localhost", "{who}: %[ssl_fc_sni]");
        let v12 = ask(port, &["--tlsv1.2", "--tls-max", "1.2"]);
        assert_eq!(
            (v12.0.as_str(), v12.1.as_str()),
            ("b_12", "TLSv1.2"),
            "{who}"
        );
    };
    wsgate_then_haproxy(&config, &|proxy, who| check(proxy.port(), who));
}
