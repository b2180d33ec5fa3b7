//! Per-certificate options in a `crt-list` (`[ssl-min-ver TLSv1.3 ...]`)
//! through the real binary, side by side with HAProxy 2.6 on the same
//! list: the options apply when the SNI selects the certificate, the
//! bind's settings otherwise (versions, ciphers, curves, and client
//! certificates with `verify` and `ca-file`); options wsgate does not
//! apply per certificate are errors at their line (`wsgate -c`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tls_support;

use std::path::Path;

use common::{free_port, run_wsgate, TempDir, Wsgate};
use tls_support::{negotiated, openssl_present, s_client, subject_cn, Ca, Haproxy};

/// The first line is the default certificate (no or unknown SNI); the
/// last asks for a client certificate (`client.crt`, `client.key`).
fn list_dir(dir: &TempDir) {
    let ca = Ca::new();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    for name in ["one", "two", "three", "four"] {
        let cn = format!("{name}.example.com");
        dir.write(&format!("certs/{name}.pem"), ca.leaf(&cn, &[]));
    }
    let ca_path = dir.write("ca.pem", &ca.pem);
    let (crt, key) = ca.client_leaf(&[(rcgen::DnType::CommonName, "client")], &[1]);
    dir.write("client.crt", crt);
    dir.write("client.key", key);
    let p = |n: &str| dir.path().join("certs").join(n).display().to_string();
    dir.write(
        "list.txt",
        format!(
            "{} [alpn http/1.1 ssl-min-ver TLSv1.3] one.example.com\n\
             {} [ciphers ECDHE-ECDSA-AES256-GCM-SHA384] two.example.com\n\
             {} [curves P-384]\n\
             {} [verify required ca-file {}]\n",
            p("one.pem"),
            p("two.pem"),
            p("three.pem"),
            p("four.pem"),
            ca_path.display()
        ),
    );
}

/// SNI, `s_client` arguments, and the expected (CN, negotiated) or
/// `None` for a refused handshake.
type Case = (
    Option<&'static str>,
    &'static [&'static str],
    Option<(&'static str, &'static str)>,
);

const CASES: &[Case] = &[
    (Some("one.example.com"), &["-tls1_2"], None),
    (
        Some("one.example.com"),
        &["-tls1_3"],
        Some(("one.example.com", "TLSv1.3 TLS_AES_256_GCM_SHA384")),
    ),
    (
        Some("two.example.com"),
        &["-tls1_2"],
        Some(("two.example.com", "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384")),
    ),
    (
        Some("two.example.com"),
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        None,
    ),
    // `ciphers` is TLS 1.2's list; TLS 1.3 keeps its suites.
    (
        Some("two.example.com"),
        &["-tls1_3"],
        Some(("two.example.com", "TLSv1.3 TLS_AES_256_GCM_SHA384")),
    ),
    // The default certificate for an unknown name, or none: the bind's
    // settings (TLS 1.2 allowed), not its line's.
    (
        Some("other.example.com"),
        &["-tls1_2"],
        Some(("one.example.com", "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384")),
    ),
    (
        None,
        &["-tls1_2"],
        Some(("one.example.com", "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384")),
    ),
];

/// The CN served and what was negotiated; `None` when refused, also by an
/// alert after the client's part (a missing client certificate: s_client
/// still prints the suite).
fn served(port: u16, sni: Option<&str>, args: &[&str]) -> Option<(String, String)> {
    let out = s_client(port, sni, args);
    if out.contains("SSL alert number") {
        return None;
    }
    Some((subject_cn(&out)?, negotiated(&out)?))
}

fn config(port: u16, list: &Path) -> String {
    format!(
        "defaults\n mode http\n timeout client 5s\n timeout connect 2s\n timeout server 5s\n\
         frontend fe\n bind 127.0.0.1:{port} ssl crt-list {}\n",
        list.display()
    )
}

#[test]
fn per_certificate_options_apply_by_sni_as_in_haproxy() {
    if !openssl_present() {
        return;
    }
    let dir = TempDir::new("tls-crt-list");
    list_dir(&dir);
    let list = dir.path().join("list.txt");
    let hap_port = free_port();
    let hap = Haproxy::beside(dir.path(), &config(hap_port, &list), hap_port);
    let port = free_port();
    let gate = Wsgate::start_in(dir, &config(port, &list));
    let mut wrong = Vec::new();
    for (sni, args, expected) in CASES {
        let expected = expected.map(|(cn, n)| (cn.to_owned(), n.to_owned()));
        let got = served(port, *sni, args);
        if got != expected {
            wrong.push(format!(
                "wsgate, {sni:?} {args:?}: got {got:?}, expected {expected:?}"
            ));
        }
        if hap.is_some() {
            let h = served(hap_port, *sni, args);
            if h != expected {
                wrong.push(format!(
                    "haproxy, {sni:?} {args:?}: got {h:?}, expected {expected:?}"
                ));
            }
        }
    }
    // `verify required` for one name: TLS 1.2, so that the refusal comes
    // within the handshake (in TLS 1.3 it comes after the client's end).
    let client = gate.dir.path().join("client.crt");
    let key = gate.dir.path().join("client.key");
    let with_cert = [
        "-tls1_2",
        "-cert",
        client.to_str().unwrap(),
        "-key",
        key.to_str().unwrap(),
    ];
    let four = Some("four.example.com");
    let expected = Some((
        "four.example.com".to_owned(),
        "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384".to_owned(),
    ));
    let targets =
        std::iter::once(("wsgate", port)).chain(hap.as_ref().map(|_| ("haproxy", hap_port)));
    for (who, p) in targets {
        let without = served(p, four, &["-tls1_2"]);
        let with = served(p, four, &with_cert);
        let other = served(p, Some("two.example.com"), &["-tls1_2"]);
        if without.is_some() || with != expected || other.is_none() {
            wrong.push(format!(
                "{who}, verify required on four only: without a certificate {without:?}, \
                 with one {with:?}, two.example.com without one {other:?}"
            ));
        }
    }

    // `curves` per certificate: wsgate offers only P-384 to this name.
    // (HAProxy 2.6 with OpenSSL 3 still negotiates X25519 here: its
    // per-certificate `curves` does not reach the key exchange;
    // docs/tls.md.)
    let three = Some("three.example.com");
    let x25519 = s_client(port, three, &["-tls1_3", "-groups", "X25519"]);
    if negotiated(&x25519).is_some() {
        wrong.push(format!(
            "wsgate, three with X25519 only: not refused:\n{x25519}"
        ));
    }
    let p384 = s_client(port, three, &["-tls1_3", "-groups", "X25519:P-384"]);
    if !p384.contains("Server Temp Key: ECDH, secp384r1") {
        wrong.push(format!(
            "wsgate, three with X25519:P-384: not P-384:\n{p384}"
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}\nwsgate log:\n{}", gate.log());
}

/// `wsgate -c` on a bind with `list`, which must fail: its output.
fn refused(dir: &TempDir, list: &Path) -> String {
    let cfg = dir.write("check.cfg", config(free_port(), list));
    let (status, out) = run_wsgate(
        &["-c".as_ref(), "-f".as_ref(), cfg.as_os_str()],
        std::time::Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(1), "{out}");
    out
}

#[test]
fn options_not_applied_per_certificate_are_errors_at_their_line() {
    let dir = TempDir::new("tls-crt-list-check");
    list_dir(&dir);
    let pem = dir.path().join("certs/one.pem");
    let list = dir.write(
        "bad.txt",
        format!(
            "{0} [npn http/1.1] one.example.com\n{0} [ssl-min-ver TLSv1.1]\n{0} [alpn h2,http/1.1 ssl-max-ver TLSv1.2\n{0} [verify optional]\n{0} [ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.2]\n",
            pem.display()
        ),
    );
    let out = refused(&dir, &list);
    // The lines above refuse themselves; a `ca-file` that cannot be read
    // only when the certificate's configuration is built (at the bind).
    let missing = dir.write(
        "missing.txt",
        format!(
            "{} [verify required ca-file no-such-ca.pem]\n",
            pem.display()
        ),
    );
    let missing_out = refused(&dir, &missing);
    assert!(
        missing_out.contains(&format!(
            "error: [environment] crt-list options of '{}': cannot read certificate file 'no-such-ca.pem'",
            pem.display()
        )),
        "{missing_out}"
    );
    let at = |line: u32| format!("{}:{line}:", list.display());
    for (line, message) in [
        (1, "crt-list option 'npn' is not supported per certificate by wsgate; put it on the bind line"),
        (2, "'TLSv1.1' is not offered by wsgate"),
        (3, "crt-list options: `[` without its `]`"),
        (4, "`verify optional` needs a `ca-file` to verify client certificates against"),
        (5, "the TLS versions allowed for this certificate are empty"),
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&at(line)) && l.contains(message)),
            "line {line}: {message}\n{out}"
        );
    }
}
