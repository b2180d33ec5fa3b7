//! Key types through the real binary: RSA-2048, ECDSA P-384 and Ed25519
//! certificates served (checked with `openssl s_client`), and an RSA and
//! an ECDSA certificate for one name chosen by what the client can verify
//! (signature algorithms; TLS 1.2 cipher suites), side by side with
//! HAProxy 2.6 on the same directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use common::{free_port, TempDir, Wsgate};
use tls_support::{field, key_pair, openssl_present, s_client, subject_cn, Ca, Haproxy};

const RSA_2048: &[&str] = &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const P384: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
const ED25519: &[&str] = &["-algorithm", "ED25519"];

/// In lexical order, the RSA certificate of `both.example.com` first: the
/// ECDSA one must still be preferred when the client can use it.
fn cert_dir(dir: &TempDir) {
    let ca = Ca::new();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    for (file, cn, key) in [
        ("00-rsa.pem", "rsa.example.com", RSA_2048),
        ("10-p384.pem", "p384.example.com", P384),
        ("20-ed25519.pem", "ed.example.com", ED25519),
        ("30-both-rsa.pem", "both.example.com", RSA_2048),
        ("31-both-ecdsa.pem", "both.example.com", P256),
    ] {
        dir.write(
            &format!("certs/{file}"),
            ca.leaf_with_key(cn, key_pair(key)),
        );
    }
}

/// What is served: CN, the server's key size, the signature type it used.
type Served = (&'static str, &'static str, &'static str);

/// SNI, extra `s_client` arguments, and what is served.
const CASES: &[(&str, &[&str], Served)] = &[
    (
        "rsa.example.com",
        &[],
        ("rsa.example.com", "2048 bit", "RSA-PSS"),
    ),
    (
        "p384.example.com",
        &[],
        ("p384.example.com", "384 bit", "ECDSA"),
    ),
    (
        "ed.example.com",
        &[],
        ("ed.example.com", "256 bit", "ed25519"),
    ),
    (
        "both.example.com",
        &[],
        ("both.example.com", "256 bit", "ECDSA"),
    ),
    (
        "both.example.com",
        &["-sigalgs", "rsa_pss_rsae_sha256:rsa_pkcs1_sha256"],
        ("both.example.com", "2048 bit", "RSA-PSS"),
    ),
    (
        "both.example.com",
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
        ("both.example.com", "2048 bit", "RSA-PSS"),
    ),
    (
        "both.example.com",
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        ("both.example.com", "256 bit", "ECDSA"),
    ),
];

/// What `s_client` saw, as (CN, key size, signature type).
fn served(port: u16, sni: &str, extra: &[&str]) -> Option<(String, String, String)> {
    let out = s_client(port, Some(sni), extra);
    Some((
        subject_cn(&out)?,
        field(&out, "Server public key is")?.to_owned(),
        field(&out, "Peer signature type")?.to_owned(),
    ))
}

fn config(port: u16) -> String {
    format!(
        "defaults\n mode http\n timeout client 5s\n timeout connect 2s\n timeout server 5s\n\
         frontend fe\n bind 127.0.0.1:{port} ssl crt certs\n"
    )
}

#[test]
fn rsa_p384_ed25519_and_a_dual_rsa_ecdsa_name_side_by_side_with_haproxy() {
    if !openssl_present() {
        return;
    }
    let dir = TempDir::new("tls-keys");
    cert_dir(&dir);
    let hap_port = free_port();
    let hap_config =
        config(hap_port).replace("crt certs", &format!("crt {}/certs", dir.path().display()));
    let hap = Haproxy::beside(dir.path(), &hap_config, hap_port);
    let port = free_port();
    let gate = Wsgate::start_in(dir, &config(port));
    let mut wrong = Vec::new();
    for (sni, extra, (cn, bits, sig)) in CASES {
        let expected = Some((cn.to_string(), bits.to_string(), sig.to_string()));
        let got = served(port, sni, extra);
        if got != expected {
            wrong.push(format!(
                "wsgate, {sni} {extra:?}: got {got:?}, expected {expected:?}"
            ));
        }
        if hap.is_some() {
            let h = served(hap_port, sni, extra);
            if h != expected {
                wrong.push(format!(
                    "haproxy, {sni} {extra:?}: got {h:?}, expected {expected:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}\nwsgate log:\n{}", gate.log());
}
