//! `http-request` / `http-response` rules, `redirect`, `errorfile`,
//! `option forwardfor` and the removed `req*`/`rsp*` keywords, through the
//! real binary. Where HAProxy compatibility is claimed (header actions,
//! path and URI rewrites, `return`, `redirect`, `forwardfor`), Debian's
//! HAProxy 2.6 runs the same configuration text beside wsgate, each with
//! its own scripted backend, and both must hand the backend (or the
//! client) the same thing. Without HAProxy the comparison is skipped
//! outside CI, and wsgate's own answers are still checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{exchange, Message, Script, ScriptedBackend};
use common::{free_port, TempDir, Wsgate};

/// One proxy (wsgate or HAProxy) with its own backend.
struct Side {
    name: &'static str,
    addr: SocketAddr,
    backend: ScriptedBackend,
}

/// wsgate and, when installed, HAProxy on the same configuration.
struct Pair {
    sides: Vec<Side>,
    _wsgate: Wsgate,
    _haproxy: Option<Haproxy>,
}

/// `{PORT}` and `{SERVER}` in `template` are filled per proxy.
fn config(template: &str, port: u16, server: SocketAddr) -> String {
    let head = "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 5s\n";
    format!(
        "{head}{}",
        template
            .replace("{PORT}", &port.to_string())
            .replace("{SERVER}", &server.to_string())
    )
}

fn pair(script: Script, template: &str) -> Pair {
    let wb = ScriptedBackend::start(script);
    let port = free_port();
    let wsgate = Wsgate::start(&config(template, port, wb.addr));
    let mut sides = vec![Side {
        name: "wsgate",
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        backend: wb,
    }];
    let haproxy = match haproxy_bin() {
        Some(bin) => {
            let hb = ScriptedBackend::start(script);
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let h = Haproxy::start(&bin, &config(template, port, hb.addr), &[addr]);
            sides.push(Side {
                name: "haproxy",
                addr,
                backend: hb,
            });
            Some(h)
        }
        None => {
            common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
            None
        }
    };
    Pair {
        sides,
        _wsgate: wsgate,
        _haproxy: haproxy,
    }
}

/// A request line (or status) and `X-*` headers.
type View = (String, Vec<(String, String)>);

/// The request line and the `X-*` headers (names lowercased, in order).
fn seen_by_server(m: &Message) -> View {
    let xs = m
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    (m.start.clone(), xs)
}

fn request(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

/// Sends `req` to each side; returns what each one's server saw.
fn server_views(pair: &Pair, req: &[u8]) -> Vec<(&'static str, View)> {
    pair.sides
        .iter()
        .map(|side| {
            let before = side.backend.seen().len();
            let resp = exchange(side.addr, req).unwrap_or_else(|e| panic!("{}: {e}", side.name));
            assert_eq!(resp.status(), 200, "{}: {:?}", side.name, resp.raw_head);
            let seen = side.backend.seen();
            assert_eq!(seen.len(), before + 1, "{}", side.name);
            (side.name, seen_by_server(&seen[before]))
        })
        .collect()
}

fn assert_same<T: PartialEq + std::fmt::Debug>(views: &[(&str, T)], context: &str) {
    for (name, v) in &views[1..] {
        assert_eq!(&views[0].1, v, "{context}: wsgate vs {name}");
    }
}

const HEADER_RULES: &str = "\
frontend fe
    bind 127.0.0.1:{PORT}
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Host %[req.hdr(host)]
    http-request add-header X-Path %[path]
    http-request add-header X-Url %[url]
    http-request add-header X-Query %[query]
    http-request add-header X-Method %[method]
    http-request add-header X-Ssl %[ssl_fc]
    http-request add-header X-Missing <%[req.hdr(x-nope)]>
    http-request add-header X-Last %[hdr(x-multi)]
    http-request add-header X-Percent 100%%
    http-request del-header X-Remove
    http-request del-header X-Pre- -m beg
    http-request replace-header X-Rep ^a(.*)$ b\\1
    http-request replace-value X-Vals ^x(.*)$ y\\1
    http-request set-header X-Cond yes if { path_beg /cond }
    http-request set-header X-Unless no unless { path_beg /cond }
    http-request replace-path ^/old/(.*) /new/\\1
    http-request replace-uri ^/uri/(.*) /moved/\\1
    http-request set-header X-After %[path]
    http-request set-path /p%[path] if { path_beg /setpath }
    http-request set-query q=1 if { path_beg /setquery }
    http-request set-uri /fixed if { path_beg /seturi }
    http-request add-header X-Final %[url]
    default_backend be
backend be
    http-request set-header X-Backend be
    http-request replace-path ^/new/(.*) /be/\\1
    server s1 {SERVER}
";

#[test]
fn request_header_rules_and_rewrites_match_haproxy() {
    let pair = pair(Script::Ok, HEADER_RULES);
    let full =
        "X-Remove: 1\r\nX-Pre-One: 1\r\nX-Pre-Two: 2\r\nX-Keep: k\r\nX-Rep: abc\r\nX-Rep: zzz\r\n\
                X-Vals: x1, z2,x3\r\nX-Multi: a, b\r\nX-Multi: c, d\r\n";
    let cases = [
        ("/old/a/b?k=v", full),
        ("/cond/x", ""),
        ("/uri/z?y", ""),
        ("/setpath/a?b=c", ""),
        ("/setquery/a?b=c", ""),
        ("/seturi/a?x", ""),
        ("/plain", ""),
        ("/empty?", ""),
    ];
    for (target, extra) in cases {
        let views = server_views(&pair, &request(target, extra));
        let (start, xs) = &views[0].1;
        // wsgate's own view, whatever HAProxy does.
        assert!(
            xs.contains(&("x-real-ip".into(), "127.0.0.1".into())),
            "{xs:?}"
        );
        assert!(xs.contains(&("x-backend".into(), "be".into())), "{xs:?}");
        assert!(
            !xs.iter()
                .any(|(n, _)| n == "x-remove" || n.starts_with("x-pre-")),
            "{xs:?}"
        );
        if target == "/old/a/b?k=v" {
            assert_eq!(start, "GET /be/a/b?k=v HTTP/1.1");
            assert!(xs.contains(&("x-rep".into(), "bbc".into())), "{xs:?}");
            assert!(xs.contains(&("x-rep".into(), "zzz".into())), "{xs:?}");
            assert!(
                xs.contains(&("x-vals".into(), "y1, z2,y3".into())),
                "{xs:?}"
            );
            assert!(xs.contains(&("x-last".into(), "d".into())), "{xs:?}");
            assert!(xs.contains(&("x-missing".into(), "<>".into())), "{xs:?}");
            assert!(xs.contains(&("x-percent".into(), "100%".into())), "{xs:?}");
        }
        assert_same(&views, target);
    }
}

#[test]
fn dst_port_and_frontend_port_aliases() {
    let port = free_port();
    let backend = ScriptedBackend::start(Script::Ok);
    let cfg = config(
        "frontend fe\n    bind 127.0.0.1:{PORT}\n    http-request set-header X-Port %[dst_port]\n    http-request set-header X-Fp %fp\n    http-request set-header X-Ci %ci\n    default_backend be\nbackend be\n    server s1 {SERVER}\n",
        port,
        backend.addr,
    );
    let _w = Wsgate::start(&cfg);
    let resp = exchange(SocketAddr::from(([127, 0, 0, 1], port)), &request("/", "")).unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &backend.seen()[0];
    assert_eq!(seen.header("x-port"), Some(port.to_string().as_str()));
    assert_eq!(seen.header("x-fp"), Some(port.to_string().as_str()));
    assert_eq!(seen.header("x-ci"), Some("127.0.0.1"));
}

const RESPONSE_RULES: &str = "\
frontend fe
    bind 127.0.0.1:{PORT}
    http-response set-header X-Served-By proxy
    http-response add-header X-Status %[status]
    http-response add-header X-From-Server <%[res.hdr(x-server)]>
    http-response del-header X-Drop
    http-response replace-header X-Server ^a(.*) b\\1
    http-response set-header X-Api yes if { path_beg /api }
    http-response deny if { path_beg /deny }
    default_backend be
backend be
    http-response set-header X-Backend be
    server s1 {SERVER}
";

/// The status and the `X-*` headers the client got.
fn client_view(m: &Message) -> (u16, Vec<(String, String)>) {
    (m.status(), seen_by_server(m).1)
}

#[test]
fn response_rules_match_haproxy() {
    let pair = pair(
        Script::Reply(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Server: a1\r\nX-Drop: 1\r\n\r\nok",
        ),
        RESPONSE_RULES,
    );
    for target in ["/", "/api/x", "/deny"] {
        let views: Vec<_> = pair
            .sides
            .iter()
            .map(|side| {
                let m = exchange(side.addr, &request(target, "")).unwrap();
                (side.name, client_view(&m))
            })
            .collect();
        let (status, xs) = &views[0].1;
        if target == "/deny" {
            assert_eq!(*status, 502, "{xs:?}");
        } else {
            assert_eq!(*status, 200);
            assert!(xs.contains(&("x-server".into(), "b1".into())), "{xs:?}");
            assert!(xs.contains(&("x-status".into(), "200".into())), "{xs:?}");
            assert!(
                xs.contains(&("x-from-server".into(), "<a1>".into())),
                "{xs:?}"
            );
            assert!(xs.contains(&("x-backend".into(), "be".into())), "{xs:?}");
            assert!(!xs.iter().any(|(n, _)| n == "x-drop"), "{xs:?}");
            assert_eq!(
                xs.iter().any(|(n, _)| n == "x-api"),
                target == "/api/x",
                "{xs:?}"
            );
        }
        // HAProxy evaluates `path` on responses as never matching (it
        // warns so): wsgate evaluates the request's ACLs, so `/api` and
        // `/deny` are compared on wsgate's side only.
        if target == "/" {
            assert_same(&views, target);
        }
    }
}

const FINAL_RULES: &str = "\
frontend fe
    bind 127.0.0.1:{PORT}
    http-request allow if { path_beg /allowed }
    http-request return status 200 content-type text/plain string hello if { path /ret }
    http-request return status 404 content-type text/plain lf-string \"no %[path] here\" hdr X-Why missing if { path_beg /nope }
    http-request return status 204 if { path /empty }
    http-request redirect location /elsewhere code 301 if { path /loc }
    http-request redirect prefix https://example.org drop-query if { path_beg /pfx }
    http-request redirect prefix / append-slash if { path_beg /slash }
    http-request redirect scheme https code 307 if { path_beg /sch }
    http-request deny if { path_beg /allowed } || { path_beg /denied }
    redirect location /old-style code 303 if { path /legacy }
    default_backend be
backend be
    redirect prefix /from-backend code 302 if { path /be-redirect }
    server s1 {SERVER}
";

#[test]
fn return_redirect_allow_and_deny_match_haproxy() {
    let pair = pair(Script::Ok, FINAL_RULES);
    let cases: [(&str, u16, Option<&str>, &str); 12] = [
        ("/ret", 200, None, "hello"),
        ("/nope/x", 404, None, "no /nope/x here"),
        ("/empty", 204, None, ""),
        ("/loc", 301, Some("/elsewhere"), ""),
        ("/pfx/a?b=c", 302, Some("https://example.org/pfx/a"), ""),
        ("/slash/a", 302, Some("/slash/a/"), ""),
        ("/sch/x?y", 307, Some("https://example.com/sch/x?y"), ""),
        ("/legacy", 303, Some("/old-style"), ""),
        ("/be-redirect", 302, Some("/from-backend/be-redirect"), ""),
        ("/denied", 403, None, ""),
        // `allow` is final: the deny after it never sees the request.
        ("/allowed", 200, None, "ok 1"),
        ("/other", 200, None, "ok 1"),
    ];
    for (target, status, location, body) in cases {
        let views: Vec<_> = pair
            .sides
            .iter()
            .map(|side| {
                let m = exchange(side.addr, &request(target, "")).unwrap();
                let body = if m.status() == 403 {
                    String::new()
                } else {
                    m.body_str()
                };
                (
                    side.name,
                    (m.status(), m.header("location").map(str::to_owned), body),
                )
            })
            .collect();
        assert_eq!(
            views[0].1,
            (status, location.map(str::to_owned), body.to_owned()),
            "{target}"
        );
        assert_same(&views, target);
    }
    // `return` keeps the connection open, as HAProxy.
    let mut s = common::http::connect(pair.sides[0].addr);
    use std::io::Write;
    s.write_all(b"GET /ret HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut r = common::http::Reader::new(s, common::http::IO_DEADLINE);
    assert_eq!(r.read_response().unwrap().body_str(), "hello");
    assert_eq!(r.read_response().unwrap().status(), 200);
}

#[test]
fn forwardfor_options_match_haproxy() {
    let template = "\
frontend fe
    bind 127.0.0.1:{PORT}
    option forwardfor header X-Client if-none
    default_backend be
backend be
    option forwardfor except 10.0.0.0/8 header X-Real-Client if-none
    server s1 {SERVER}
frontend fe2
    bind 127.0.0.1:{PORT2}
    option forwardfor except 127.0.0.0/8
    default_backend be2
backend be2
    server s1 {SERVER}
";
    let port2 = free_port();
    let port2_ha = free_port();
    let wb = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let _w = Wsgate::start(&config(
        &template.replace("{PORT2}", &port2.to_string()),
        port,
        wb.addr,
    ));
    let mut sides = vec![("wsgate", port, port2, wb)];
    let _h = haproxy_bin().map(|bin| {
        let hb = ScriptedBackend::start(Script::Ok);
        let hport = free_port();
        let cfg = config(
            &template.replace("{PORT2}", &port2_ha.to_string()),
            hport,
            hb.addr,
        );
        let addrs = [hport, port2_ha].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let h = Haproxy::start(&bin, &cfg, &addrs);
        sides.push(("haproxy", hport, port2_ha, hb));
        h
    });
    if sides.len() == 1 {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
    }
    let mut views = Vec::new();
    for (name, p1, p2, backend) in &sides {
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        for (p, extra) in [(*p1, ""), (*p1, "X-Real-Client: 1.2.3.4\r\n"), (*p2, "")] {
            assert_eq!(exchange(at(p), &request("/", extra)).unwrap().status(), 200);
        }
        let seen: Vec<_> = backend.seen().iter().map(|m| seen_by_server(m).1).collect();
        views.push((*name, seen));
    }
    let seen = &views[0].1;
    // The backend's header name wins; both proxies asked for if-none.
    assert_eq!(
        seen[0],
        vec![("x-real-client".to_owned(), "127.0.0.1".to_owned())]
    );
    assert_eq!(
        seen[1],
        vec![("x-real-client".to_owned(), "1.2.3.4".to_owned())]
    );
    // The client is in the `except` network.
    assert!(seen[2].is_empty(), "{seen:?}");
    assert_same(&views, "forwardfor");
}

#[test]
fn errorfiles_replace_built_in_pages_with_backend_precedence() {
    let dir = TempDir::new("errorfile");
    let page = |name: &str, status: &str, body: &str| {
        dir.write(
            name,
            format!("HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()),
        )
    };
    let defaults_503 = page("d503.http", "503 Busy", "defaults 503");
    let backend_503 = page("b503.http", "503 Busy", "backend 503");
    let fe_403 = page("f403.http", "403 Nope", "frontend 403");
    let port = free_port();
    let dead = free_port();
    let cfg = format!(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 5s\n    errorfile 503 {}\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    errorfile 403 {}\n    http-request deny if {{ path /deny }}\n    use_backend own if {{ path_beg /own }}\n    use_backend inherited if {{ path_beg /inh }}\n\
         backend own\n    errorfile 503 {}\n    server s1 127.0.0.1:{dead}\n\
         backend inherited\n    server s1 127.0.0.1:{dead}\n",
        defaults_503.display(),
        fe_403.display(),
        backend_503.display()
    );
    let w = Wsgate::start_in(dir, &cfg);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for (target, status, body) in [
        ("/deny", 403, "frontend 403"),
        ("/own", 503, "backend 503"),
        ("/inh", 503, "defaults 503"),
        // No backend at all: the frontend's page (inherited from defaults).
        ("/none", 503, "defaults 503"),
    ] {
        let m = exchange(addr, &request(target, "")).unwrap();
        assert_eq!(
            (m.status(), m.body_str().as_str()),
            (status, body),
            "{target}\n{}",
            w.log()
        );
    }
    if let Some(Err(e)) = common::haproxy_check(&w.config) {
        panic!("haproxy -c refused the errorfile configuration:\n{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_through_response_rules() {
    use common::ws::RecordingBackend;
    use futures_util::{SinkExt, StreamExt};
    let backend = RecordingBackend::start(None).await;
    let port = free_port();
    let cfg = config(
        "frontend fe\n    bind 127.0.0.1:{PORT}\n    http-request set-header X-Seen yes\n    http-response set-header X-Proxy wsgate\n    http-response del-header X-Nothing\n    http-response del-header Upgrade\n    http-response set-header Connection close\n    default_backend be\nbackend be\n    server s1 {SERVER}\n",
        port,
        backend.addr,
    );
    let _w = tokio::task::spawn_blocking(move || Wsgate::start(&cfg))
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut ws, resp) = tokio::time::timeout(
        common::ws::WS_DEADLINE,
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    assert_eq!(
        resp.headers().get("x-proxy").map(|v| v.to_str().unwrap()),
        Some("wsgate")
    );
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    let reply = tokio::time::timeout(common::ws::WS_DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "hi");
}

#[test]
fn removed_rule_keywords_are_read_and_migrated_for_haproxy() {
    let dir = TempDir::new("migrate-rules");
    let backend = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let old = format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 5s\n\
         frontend fe\n    bind 127.0.0.1:{port}\n    reqadd X-Forwarded-Proto:\\ http\n    reqidel ^X-Debug:.*\n    reqrep ^([^\\ :]*)\\ /webcam/(.*) \\1\\ /\\2\n    rspadd X-Frame-Options:\\ DENY\n    default_backend be\n\
         backend be\n    server s1 {}\n",
        backend.addr
    );
    let path = dir.write("old.cfg", &old);
    // Read as is: the rules work.
    let w = Wsgate::start(&old);
    let m = exchange(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &request("/webcam/snap?x=1", "X-Debug: 1\r\n"),
    )
    .unwrap();
    assert_eq!(m.header("x-frame-options"), Some("DENY"), "{}", w.log());
    let seen = &backend.seen()[0];
    assert_eq!(seen.start, "GET /snap?x=1 HTTP/1.1");
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-debug"), None);
    drop(w);
    // Migrated: both wsgate and HAProxy accept it without warnings about
    // removed keywords.
    let out = std::process::Command::new(common::wsgate_bin())
        .args(["migrate".as_ref(), "-f".as_ref(), path.as_os_str()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let new_text = String::from_utf8(out.stdout).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 line(s) rewritten"));
    assert!(
        new_text.contains("    http-request replace-uri ^/webcam/(.*) /\\1\n"),
        "{new_text}"
    );
    let new = dir.write("new.cfg", &new_text);
    let check = std::process::Command::new(common::wsgate_bin())
        .args(["-c".as_ref(), "-f".as_ref(), new.as_os_str()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success() && !err.contains("removed"), "{err}");
    if let Some(Err(e)) = common::haproxy_check(&new) {
        panic!("haproxy -c refused the migrated file:\n{e}\n{new_text}");
    }
}

#[test]
fn framing_headers_survive_prefix_deletes() {
    let backend = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let cfg = config(
        "frontend fe\n    bind 127.0.0.1:{PORT}\n    http-request del-header Content- -m beg\n    default_backend be\nbackend be\n    server s1 {SERVER}\n",
        port,
        backend.addr,
    );
    let _w = Wsgate::start(&cfg);
    let req = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let m = exchange(SocketAddr::from(([127, 0, 0, 1], port)), req).unwrap();
    assert_eq!(m.status(), 200);
    let seen = &backend.seen()[0];
    assert_eq!(seen.header("content-type"), None);
    assert_eq!(seen.header("content-length"), Some("5"));
    assert_eq!(seen.body, b"hello");
}

#[test]
fn deny_pages_match_haproxy() {
    const CODES: [u16; 19] = [
        200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 421, 422, 425, 429, 500, 501, 502, 503,
        504,
    ];
    let rules: String = CODES
        .iter()
        .map(|c| format!("    http-request deny deny_status {c} if {{ path /{c} }}\n"))
        .collect();
    let template = format!(
        "frontend fe\n    bind 127.0.0.1:{{PORT}}\n{rules}    default_backend be\nbackend be\n    server s1 {{SERVER}}\n"
    );
    let pair = pair(Script::Ok, &template);
    for code in CODES {
        let views: Vec<_> = pair
            .sides
            .iter()
            .map(|side| {
                let m = exchange(side.addr, &request(&format!("/{code}"), "")).unwrap();
                (
                    side.name,
                    (
                        m.start.clone(),
                        m.header("content-type").map(str::to_owned),
                        m.body_str(),
                    ),
                )
            })
            .collect();
        assert!(
            views[0].1 .0.starts_with(&format!("HTTP/1.1 {code} ")),
            "{views:?}"
        );
        assert_same(&views, &format!("deny_status {code}"));
    }
}

const AFTER_RULES: &str = "\
frontend fe
    bind 127.0.0.1:{PORT}
    http-after-response set-header Strict-Transport-Security \"max-age=31536000\"
    http-after-response add-header X-After fe-%[status]
    http-after-response del-header X-Drop
    http-response add-header X-Response yes
    monitor-uri /mon
    http-request return status 200 content-type text/plain string hi if { path /ret }
    http-request redirect location /elsewhere if { path /redir }
    http-request deny if { path /deny }
    stats enable
    stats uri /stats
    use_backend empty if { path /none }
    use_backend tea if { path_beg /tea }
    use_backend other if { path_beg /other }
    default_backend be
backend be
    http-after-response add-header X-Backend-After be
    server s1 {SERVER}
backend empty
    http-after-response add-header X-Backend-After empty
backend tea
    http-after-response set-status 418 reason Teapot
    server s1 {SERVER}
backend other
    http-after-response set-status 299
    http-after-response allow
    http-after-response add-header X-Never yes
    server s1 {SERVER}
";

/// `http-after-response` rules reach every response the client gets, the
/// server's and the proxy's own (a `return`, a redirect, a deny page, a
/// 503 without servers, the stats page, `monitor-uri`), with the backend's
/// rules first, `set-status` (HAProxy's reason when none is given) and
/// `allow` (which ends the backend's list, not the frontend's): the status
/// line and headers are HAProxy's for each.
#[test]
fn after_response_rules_match_haproxy() {
    let pair = pair(
        Script::Reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Drop: 1\r\n\r\nok"),
        AFTER_RULES,
    );
    let view = |m: &Message| -> View {
        let hs = m
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .filter(|(n, _)| n.starts_with("x-") || n == "strict-transport-security")
            .collect();
        (m.start.clone(), hs)
    };
    let sts = (
        "strict-transport-security".to_owned(),
        "max-age=31536000".to_owned(),
    );
    // (target, status line, headers the client must get)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case; 9] = [
        (
            "/",
            "HTTP/1.1 200 OK",
            &[
                ("x-response", "yes"),
                ("x-backend-after", "be"),
                ("x-after", "fe-200"),
            ],
        ),
        ("/ret", "HTTP/1.1 200 OK", &[("x-after", "fe-200")]),
        ("/redir", "HTTP/1.1 302 Found", &[("x-after", "fe-302")]),
        ("/deny", "HTTP/1.1 403 Forbidden", &[("x-after", "fe-403")]),
        (
            "/none",
            "HTTP/1.1 503 Service Unavailable",
            &[("x-backend-after", "empty"), ("x-after", "fe-503")],
        ),
        ("/stats", "HTTP/1.1 200 OK", &[("x-after", "fe-200")]),
        ("/mon", "HTTP/1.1 200 OK", &[("x-after", "fe-200")]),
        (
            "/tea",
            "HTTP/1.1 418 Teapot",
            &[("x-response", "yes"), ("x-after", "fe-418")],
        ),
        (
            "/other",
            "HTTP/1.1 299 Success",
            &[("x-response", "yes"), ("x-after", "fe-299")],
        ),
    ];
    for (target, start, xs) in cases {
        let views: Vec<_> = pair
            .sides
            .iter()
            .map(|side| {
                let m = exchange(side.addr, &request(target, "")).unwrap();
                (side.name, view(&m))
            })
            .collect();
        let (got_start, got) = &views[0].1;
        assert_eq!(got_start, start, "{target}");
        assert!(got.contains(&sts), "{target}: {got:?}");
        for (n, v) in xs {
            assert!(
                got.contains(&((*n).to_owned(), (*v).to_owned())),
                "{target}: {got:?}"
            );
        }
        assert!(
            !got.iter().any(|(n, _)| n == "x-drop" || n == "x-never"),
            "{target}: {got:?}"
        );
        assert_same(&views, target);
    }
    // A request that cannot be read gets its 400 without the rules, in
    // both: there is no request to run them for.
    let views: Vec<_> = pair
        .sides
        .iter()
        .map(|side| {
            let m = exchange(
                side.addr,
                b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
            )
            .unwrap();
            (side.name, view(&m))
        })
        .collect();
    assert_eq!(views[0].1, ("HTTP/1.1 400 Bad request".to_owned(), vec![]));
    assert_same(&views, "a bad request");
}

/// The `101` of a WebSocket upgrade gets the `http-after-response`
/// headers too, as from HAProxy (the upgrade goes on afterwards).
#[test]
fn after_response_rules_reach_the_101() {
    let demo = common::DemoBackend::start("s1", "1h");
    let template = "frontend fe
    bind 127.0.0.1:{PORT}
    http-after-response set-header Strict-Transport-Security \"max-age=31536000\"
    http-after-response add-header X-After fe-%[status]
    default_backend be
backend be
    server s1 {SERVER}
";
    let port = free_port();
    let mut sides = vec![("wsgate", SocketAddr::from(([127, 0, 0, 1], port)))];
    let _gate = Wsgate::start(&config(template, port, demo.addr));
    let _haproxy = haproxy_bin().map(|bin| {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        sides.push(("haproxy", addr));
        Haproxy::start(&bin, &config(template, port, demo.addr), &[addr])
    });
    if sides.len() == 1 {
        common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
    }
    let views: Vec<_> = sides
        .iter()
        .map(|(name, addr)| {
            let mut s = common::http::connect(*addr);
            std::io::Write::write_all(
                &mut s,
                b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
            let m = common::http::Reader::new(s, common::http::IO_DEADLINE)
                .read_head()
                .unwrap()
                .expect("a response");
            let hs: Vec<(String, String)> = m
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .filter(|(n, _)| n.starts_with("x-") || n == "strict-transport-security")
                .collect();
            (*name, (m.start.clone(), hs))
        })
        .collect();
    assert_eq!(
        views[0].1,
        (
            "HTTP/1.1 101 Switching Protocols".to_owned(),
            vec![
                ("x-served-by".to_owned(), "s1".to_owned()),
                (
                    "strict-transport-security".to_owned(),
                    "max-age=31536000".to_owned()
                ),
                ("x-after".to_owned(), "fe-101".to_owned()),
            ]
        )
    );
    assert_same(&views, "101");
}
