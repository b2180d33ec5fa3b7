//! Servers named by host name and `init-addr` (issue #4), end to end and
//! side by side with HAProxy 2.6: `localhost` is resolved at startup and
//! served; a name that does not resolve starts its server in maintenance
//! with `init-addr last,libc,none` (the traffic goes to the others), falls
//! back to an `init-addr` address, or stops the start with an error at its
//! line when no method gives an address. A server without an address
//! cannot be enabled (nothing reaches whatever listens on localhost at its
//! port) until `set server ... addr` gives it one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::Duration;

use balance_support::{served_by, wsgate_then_haproxy, HTTP_DEFAULTS};
use common::{cli, poll_until, run_wsgate, DemoBackend, TempDir};

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

/// `init-addr none` leaves `waiting` without an address. Enabling it
/// (`enable server`, `set server ... state ready`) is answered as HAProxy
/// 2.6 answers (nothing) and changes nothing there: `show servers state`
/// shows it stopped, in resolution maintenance (admin state 32), address
/// `-`; no request and no health check reaches `lurker`, which listens on
/// 127.0.0.1 at its port (where a 0.0.0.0 placeholder would connect).
/// Then `set server ... addr` gives it an address and it serves, checked.
/// HAProxy 2.6 refuses that address ("address family") yet leaves
/// maintenance all the same: wsgate differs there, on purpose.
#[test]
fn a_server_without_an_address_cannot_be_enabled_until_it_gets_one() {
    let one = DemoBackend::start("one", "1h");
    let lurker = DemoBackend::start("lurker", "1h");
    let dir = TempDir::new("dns-none");
    let sock = |port: u16| dir.path().join(format!("cli-{port}.sock"));
    let config = |port: u16| {
        format!(
            "global\n    stats socket {} level admin\n{HTTP_DEFAULTS}\nlisten app\n    \
             bind 127.0.0.1:{port}\n    \
             server one localhost:{}\n    \
             server waiting no-such-host.invalid:{} init-addr none check inter 200ms\n",
            sock(port).display(),
            one.addr.port(),
            lurker.addr.port()
        )
    };
    let served = |proxy| -> BTreeSet<String> {
        (0..6)
            .map(|_| served_by(proxy, None, "/health", &[]).unwrap().1)
            .collect()
    };
    let only_one: BTreeSet<String> = ["one".to_string()].into();
    wsgate_then_haproxy(&config, &|proxy, who| {
        let ask = |command: &str| cli(&sock(proxy.port()), command);
        let waiting = || -> Vec<String> {
            let state = ask("show servers state app");
            let line = state
                .lines()
                .find(|l| l.split(' ').nth(3) == Some("waiting"));
            let line = line.unwrap_or_else(|| panic!("{who}: {state}"));
            line.split(' ').map(str::to_owned).collect()
        };
        let check_status = || -> String {
            let stat = ask("show stat");
            let line = stat.lines().find(|l| l.starts_with("app,waiting,"));
            let line = line.unwrap_or_else(|| panic!("{who}: {stat}"));
            line.split(',').nth(36).unwrap().to_owned()
        };
        assert_eq!(served(proxy), only_one, "{who}");
        assert_eq!(ask("enable server app/waiting"), "\n", "{who}");
        assert_eq!(ask("set server app/waiting state ready"), "\n", "{who}");
        // Address, op state, admin state: stopped, resolution maintenance.
        assert_eq!(waiting()[4..7], ["-", "0", "32"], "{who}");
        assert_eq!(served(proxy), only_one, "{who}: enabled without an address");
        // Checks every 200 ms would have passed against `lurker` by now.
        std::thread::sleep(Duration::from_secs(1));
        assert_ne!(check_status(), "L4OK", "{who}: checked without an address");
        let answer = ask("set server app/waiting addr 127.0.0.1");
        if who != "wsgate" {
            assert!(
                answer.starts_with("Update for the current server address family is only supported through configuration file"),
                "{who}: {answer}"
            );
            return;
        }
        assert_eq!(
            answer,
            "IP changed from '-' to '127.0.0.1' by 'stats socket command'\n\n"
        );
        assert_eq!(waiting()[4..7], ["127.0.0.1", "2", "0"]);
        let both: BTreeSet<String> = ["one".to_string(), "lurker".to_string()].into();
        poll_until(Duration::from_secs(30), "lurker to serve", || {
            (served(proxy) == both).then_some(())
        })
        .unwrap();
        poll_until(Duration::from_secs(30), "lurker to be checked", || {
            (check_status() == "L4OK").then_some(())
        })
        .unwrap();
    });
}
