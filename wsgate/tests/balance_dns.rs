//! Servers named by host name and `init-addr` (issue #4), end to end and
//! side by side with HAProxy 2.6: `localhost` is resolved at startup and
//! served; a name that does not resolve starts its server in maintenance
//! with `init-addr last,libc,none` (the traffic goes to the others), falls
//! back to an `init-addr` address, or stops the start with an error at its
//! line when no method gives an address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::Duration;

use balance_support::{served_by, wsgate_then_haproxy, HTTP_DEFAULTS};
use common::{run_wsgate, DemoBackend, TempDir};

#[test]
fn host_names_and_init_addr_route_as_haproxy() {
    let one = DemoBackend::start("one", "1h");
    let two = DemoBackend::start("two", "1h");
    // Nothing listens there: were `waiting` not in maintenance, its share
    // of the requests would fail.
    let nobody = common::free_port();
    let config = |port: u16| {
        format!(
            "{HTTP_DEFAULTS}\nlisten app\n    bind 127.0.0.1:{port}\n    \
             server one localhost:{} init-addr last,libc,none\n    \
             server waiting no-such-host.invalid:{} init-addr last,libc,none\n    \
             server two no-such-host.invalid:{} init-addr libc,127.0.0.1\n",
            one.addr.port(),
            nobody,
            two.addr.port()
        )
    };
    wsgate_then_haproxy(&config, &|proxy, who| {
        let seen: BTreeSet<String> = (0..6)
            .map(|_| {
                let (status, server) = served_by(proxy, None, "/health", &[]).unwrap();
                assert_eq!(status, 200, "{who}");
                server
            })
            .collect();
        let want: BTreeSet<String> = ["one", "two"].iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, want, "{who}: `waiting` is in maintenance");
    });
}

/// Without `none`, a name that does not resolve stops the start, with its
/// file and line and a hint naming `init-addr`.
#[test]
fn an_unresolvable_server_name_is_an_error_at_its_line() {
    let dir = TempDir::new("dns-error");
    let cfg = dir.write(
        "wsgate.cfg",
        format!(
            "{HTTP_DEFAULTS}\nlisten app\n    bind 127.0.0.1:1\n    server s no-such-host.invalid:80\n"
        ),
    );
    let (status, output) = run_wsgate(
        &[OsStr::new("-f"), cfg.as_os_str()],
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("wsgate.cfg:10:14: error: [environment] cannot resolve host name 'no-such-host.invalid'"),
        "{output}"
    );
    assert!(output.contains("init-addr last,libc,none"), "{output}");
}
