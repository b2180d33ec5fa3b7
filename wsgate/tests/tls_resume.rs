//! TLS session resumption through the real binary, side by side with
//! HAProxy 2.6: `openssl s_client -sess_out` then `-sess_in` is resumed
//! ("Reused") in TLS 1.2 and 1.3; with `no-tls-tickets` no TLS 1.2 ticket
//! is issued and resumption goes by session ID, while TLS 1.3 resumes
//! with stateful tickets (OpenSSL's `SSL_OP_NO_TICKET` in TLS 1.3 too).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use common::{free_port, TempDir, Wsgate};
use tls_support::{openssl_present, s_client, s_client_saving, Haproxy};

fn config(ports: [u16; 2]) -> String {
    format!(
        "defaults\n mode http\n timeout client 5s\n timeout connect 2s\n timeout server 5s\n\
         frontend fe\n bind 127.0.0.1:{} ssl crt site.pem\n bind 127.0.0.1:{} ssl crt site.pem no-tls-tickets\n",
        ports[0], ports[1]
    )
}

/// For each bind and version: (a ticket in the first session, resumed).
fn observe(ports: [u16; 2], dir: &TempDir, tag: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for (b, port) in ports.iter().enumerate() {
        for version in ["-tls1_2", "-tls1_3"] {
            let sess = dir.path().join(format!("{tag}-{b}{version}.sess"));
            let first = s_client_saving(*port, &sess, &[version]);
            let second = s_client(*port, None, &[version, "-sess_in", sess.to_str().unwrap()]);
            seen.push(format!(
                "bind {b} {version}: ticket {}, reused {}",
                first.contains("TLS session ticket:"),
                second.contains(&format!("Reused, TLSv1.{}", &version[6..])),
            ));
        }
    }
    seen
}

#[test]
fn sessions_resume_with_and_without_tickets_as_in_haproxy() {
    if !openssl_present() {
        return;
    }
    let dir = TempDir::new("tls-resume");
    dir.write(
        "site.pem",
        wsgate::tls::self_signed_pem(&["localhost"]).unwrap(),
    );
    let expected = [
        "bind 0 -tls1_2: ticket true, reused true",
        "bind 0 -tls1_3: ticket true, reused true",
        "bind 1 -tls1_2: ticket false, reused true",
        "bind 1 -tls1_3: ticket true, reused true",
    ];
    let hap_ports = [free_port(), free_port()];
    let hap_config = config(hap_ports).replace(
        "crt site.pem",
        &format!("crt {}/site.pem", dir.path().display()),
    );
    if let Some(_hap) = Haproxy::beside(dir.path(), &hap_config, hap_ports[1]) {
        assert_eq!(observe(hap_ports, &dir, "haproxy"), expected, "haproxy");
    }
    let ports = [free_port(), free_port()];
    let gate = Wsgate::start_in(dir, &config(ports));
    assert_eq!(
        observe(ports, &gate.dir, "wsgate"),
        expected,
        "wsgate\n{}",
        gate.log()
    );
}
