//! The TLS settings of a bind, and the same from `global`'s
//! `ssl-default-bind-*`, on live handshakes: `ssl-max-ver`, `ciphers`,
//! `ciphersuites`, `curves`, each checked with `openssl s_client`
//! (`-tls1_2`/`-tls1_3`, `-cipher`, `-ciphersuites`, `-groups`) as
//! negotiated or refused, on wsgate and on HAProxy 2.6 with the same
//! configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use common::{free_port, TempDir, Wsgate};
use tls_support::{field, negotiated, openssl_present, s_client, Haproxy};

/// Bind index, `s_client` arguments, and what is negotiated (`None`:
/// refused).
type Case = (usize, &'static [&'static str], Option<&'static str>);

/// One bind per setting, nothing from `global`.
const ON_THE_BIND: &[&str] = &[
    "ssl-max-ver TLSv1.2",
    "ciphers ECDHE-ECDSA-CHACHA20-POLY1305",
    "ciphersuites TLS_CHACHA20_POLY1305_SHA256",
    "curves P-384",
];

const BIND_CASES: &[Case] = &[
    (0, &["-tls1_3"], None),
    (
        0,
        &[],
        Some("TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384 / X25519"),
    ),
    (
        1,
        &["-tls1_2"],
        Some("TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305 / X25519"),
    ),
    (
        1,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        None,
    ),
    (
        1,
        &["-tls1_3"],
        Some("TLSv1.3 TLS_AES_256_GCM_SHA384 / X25519"),
    ),
    (
        2,
        &["-tls1_3"],
        Some("TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 / X25519"),
    ),
    (
        2,
        &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"],
        None,
    ),
    (
        2,
        &["-tls1_2"],
        Some("TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384 / X25519"),
    ),
    (3, &["-groups", "X25519"], None),
    (
        3,
        &["-groups", "X25519:P-384"],
        Some("TLSv1.3 TLS_AES_256_GCM_SHA384 / ECDH, secp384r1"),
    ),
];

/// Everything from `global`: the first bind takes it as is, the second
/// overrides the version and the curves.
const GLOBAL: &str = "global\n ssl-default-bind-options ssl-max-ver TLSv1.2\n \
    ssl-default-bind-ciphers ECDHE-ECDSA-CHACHA20-POLY1305\n \
    ssl-default-bind-ciphersuites TLS_CHACHA20_POLY1305_SHA256\n \
    ssl-default-bind-curves P-384\n";
const UNDER_GLOBAL: &[&str] = &["", "ssl-max-ver TLSv1.3 curves X25519"];

const GLOBAL_CASES: &[Case] = &[
    (0, &["-tls1_3"], None),
    (
        0,
        &[],
        Some("TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305 / ECDH, secp384r1"),
    ),
    (
        0,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
        None,
    ),
    (0, &["-groups", "X25519"], None),
    (
        1,
        &[],
        Some("TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 / X25519"),
    ),
    (
        1,
        &["-tls1_2"],
        Some("TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305 / X25519"),
    ),
    (
        1,
        &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
        None,
    ),
];

fn config(global: &str, pem: &str, ports: &[u16], options: &[&str]) -> String {
    let mut c = format!(
        "{global}defaults\n mode http\n timeout client 5s\n timeout connect 2s\n timeout server 5s\nfrontend fe\n"
    );
    for (port, opts) in ports.iter().zip(options) {
        c.push_str(&format!(" bind 127.0.0.1:{port} ssl crt {pem} {opts}\n"));
    }
    c
}

/// "version suite / key exchange group", or `None` when refused.
fn handshake(port: u16, args: &[&str]) -> Option<String> {
    let out = s_client(port, Some("localhost"), args);
    let group = field(&out, "Server Temp Key")?;
    let group = group.rsplit_once(", ").map_or(group, |(g, _bits)| g);
    Some(format!("{} / {group}", negotiated(&out)?))
}

/// Runs `cases` on wsgate and HAProxy with the same binds; the
/// differences from what is expected.
fn check(tag: &str, global: &str, options: &[&str], cases: &[Case]) -> Vec<String> {
    let dir = TempDir::new(tag);
    let pem = dir.write(
        "site.pem",
        wsgate::tls::self_signed_pem(&["localhost"]).unwrap(),
    );
    let pem = pem.display().to_string();
    let hap_ports: Vec<u16> = options.iter().map(|_| free_port()).collect();
    let hap_config = config(global, &pem, &hap_ports, options);
    let hap = Haproxy::beside(dir.path(), &hap_config, hap_ports[0]);
    let ports: Vec<u16> = options.iter().map(|_| free_port()).collect();
    let gate = Wsgate::start_in(dir, &config(global, &pem, &ports, options));
    let mut wrong = Vec::new();
    for (bind, args, expected) in cases {
        let expected = expected.map(str::to_owned);
        let got = handshake(ports[*bind], args);
        if got != expected {
            wrong.push(format!(
                "{tag} wsgate, `{}` {args:?}: got {got:?}, expected {expected:?}",
                options[*bind]
            ));
        }
        if hap.is_some() {
            let h = handshake(hap_ports[*bind], args);
            if h != expected {
                wrong.push(format!(
                    "{tag} haproxy, `{}` {args:?}: got {h:?}, expected {expected:?}",
                    options[*bind]
                ));
            }
        }
    }
    if !wrong.is_empty() {
        wrong.push(format!("wsgate log:\n{}", gate.log()));
    }
    wrong
}

#[test]
fn bind_and_global_settings_decide_live_handshakes_as_in_haproxy() {
    if !openssl_present() {
        return;
    }
    let mut wrong = check("tls-settings-bind", "", ON_THE_BIND, BIND_CASES);
    wrong.extend(check(
        "tls-settings-global",
        GLOBAL,
        UNDER_GLOBAL,
        GLOBAL_CASES,
    ));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
