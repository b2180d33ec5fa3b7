//! Routing with ACLs and `use_backend`, end to end: the WebSocket idiom
//! (`acl is_ws hdr(Upgrade) -i WebSocket` + `use_backend ws_servers if
//! is_ws`), anonymous ACLs, `!`, `||`, and the fall back to
//! `default_backend`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::net::SocketAddr;

use balance_support::{open_websocket, served_by, HTTP_DEFAULTS};
use common::{free_port, DemoBackend, Wsgate};

#[test]
fn websocket_idiom_and_path_rules() {
    let ws = DemoBackend::start("ws1", "1h");
    let api = DemoBackend::start("api1", "1h");
    let app = DemoBackend::start("app1", "1h");
    let port = free_port();
    let cfg = format!(
        "{HTTP_DEFAULTS}
frontend fe
    bind 127.0.0.1:{port}
    acl is_ws hdr(Upgrade) -i WebSocket
    acl is_api path_beg /api/
    acl is_api path /v1
    acl beta hdr(X-Beta) -m found
    use_backend ws_servers if is_ws
    use_backend api if is_api || {{ path_beg /v2/ }} !beta
    default_backend app

backend ws_servers
    server ws1 {}

backend api
    server api1 {}

backend app
    server app1 {}
",
        ws.addr, api.addr, app.addr
    );
    let _wsgate = Wsgate::start(&cfg);
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let get =
        |path: &str, headers: &[(&str, &str)]| served_by(proxy, None, path, headers).unwrap().1;

    let (_socket, server) = open_websocket(proxy).unwrap();
    assert_eq!(server, "ws1", "the upgrade goes to ws_servers");
    assert_eq!(get("/", &[]), "app1");
    assert_eq!(get("/api/users", &[]), "api1");
    assert_eq!(
        get("/v1", &[]),
        "api1",
        "two `acl` lines of one name are OR-ed"
    );
    assert_eq!(get("/v1/x", &[]), "app1");
    assert_eq!(get("/v2/x", &[]), "api1", "anonymous ACL AND-ed with !beta");
    assert_eq!(get("/v2/x", &[("X-Beta", "1")]), "app1");
    assert_eq!(
        get("/api/x", &[("X-Beta", "1")]),
        "api1",
        "|| makes is_api alone enough"
    );
}
