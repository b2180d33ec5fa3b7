//! Client certificates (`bind ... ssl crt <pem> ca-file <pem> verify
//! optional|required`) through the real binary, with curl as the client:
//! `required` refuses a handshake without a certificate or with one from
//! another CA; `optional` lets a client without one through and still
//! refuses a bad one; `crl-file` refuses a revoked one. The same
//! configuration text runs on Debian's
//! HAProxy beside it, and every outcome must agree. Configuration errors
//! (missing `ca-file`, a `ca-file` that does not exist) come with their
//! line.
//!
//! Needs `curl` (and `/usr/sbin/haproxy` for the comparison); without them
//! the test is skipped, except in CI (`CI` set) where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;
mod tls_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::http::{Script, ScriptedBackend};
use common::{free_port, run_wsgate, skip_unless_ci, TempDir, Wsgate};

/// `curl https://localhost:<port>/` trusting `ca`, with a client
/// certificate when given: the body on success, `Err(curl's message)`.
fn curl(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"));
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn client_certificates_required_optional_and_revoked() {
    if !tls_support::have("curl") {
        skip_unless_ci("curl is not installed");
        return;
    }
    let ca = tls_support::Ca::new();
    let other = tls_support::Ca::new();
    let dir = TempDir::new("mtls");
    let site = dir.write("site.pem", ca.leaf("localhost", &["127.0.0.1"]));
    let ca_path = dir.write("ca.pem", &ca.pem);
    let (c, k) = ca.leaf_dated("alice", &[], (2020, 1, 1), (2090, 1, 1));
    let alice = (dir.write("alice.crt", c), dir.write("alice.key", k));
    let (c, k) = other.leaf_dated("mallory", &[], (2020, 1, 1), (2090, 1, 1));
    let mallory = (dir.write("mallory.crt", c), dir.write("mallory.key", k));
    let (c, k) = ca.leaf_with_serial("bob", 666);
    let bob = (dir.write("bob.crt", c), dir.write("bob.key", k));
    let crl_path = dir.write("crl.pem", ca.crl(&[666]));
    let backend = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ));
    let cfg = |p: [u16; 3]| {
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n    timeout tunnel 1h\n\
             frontend req\n    bind 127.0.0.1:{} ssl crt {site} ca-file {ca} verify required\n    default_backend be\n\
             frontend opt\n    bind 127.0.0.1:{} ssl crt {site} ca-file {ca} verify optional\n    default_backend be\n\
             frontend crl\n    bind 127.0.0.1:{} ssl crt {site} ca-file {ca} verify required crl-file {crl}\n    default_backend be\n\
             backend be\n    server s1 {}\n",
            p[0],
            p[1],
            p[2],
            backend.addr,
            site = site.display(),
            ca = ca_path.display(),
            crl = crl_path.display(),
        )
    };
    let wp = [free_port(), free_port(), free_port()];
    let wsgate = Wsgate::start(&cfg(wp));
    let clients: [(&str, Option<(&Path, &Path)>); 4] = [
        ("no certificate", None),
        ("alice (our CA)", Some((&alice.0, &alice.1))),
        ("mallory (another CA)", Some((&mallory.0, &mallory.1))),
        ("bob (our CA, revoked)", Some((&bob.0, &bob.1))),
    ];
    // (listener, client) → served?
    let want = [
        [false, true, false, true],  // required
        [true, true, false, true],   // optional
        [false, true, false, false], // required, with the CRL
    ];
    let outcome = |ports: [u16; 3]| -> Vec<Vec<Result<String, String>>> {
        ports
            .iter()
            .map(|p| {
                clients
                    .iter()
                    .map(|(_, c)| curl(*p, &ca_path, *c))
                    .collect()
            })
            .collect()
    };
    let got = outcome(wp);
    let listeners = [
        "verify required",
        "verify optional",
        "verify required + crl-file",
    ];
    for (l, listener) in listeners.iter().enumerate() {
        for (c, (client, _)) in clients.iter().enumerate() {
            let served = got[l][c].as_deref() == Ok("ok");
            assert_eq!(
                served,
                want[l][c],
                "{listener}, {client}: {:?}\n{}",
                got[l][c],
                wsgate.log()
            );
        }
    }
    // HAProxy on the same text: the same outcomes.
    let Some(bin) = balance_support::haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    };
    let hp = [free_port(), free_port(), free_port()];
    let _haproxy = balance_support::Haproxy::start(
        &bin,
        &cfg(hp),
        &hp.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
    );
    let theirs = outcome(hp);
    for l in 0..3 {
        for c in 0..4 {
            assert_eq!(
                theirs[l][c].as_deref() == Ok("ok"),
                want[l][c],
                "HAProxy, listener {l}, client {c}: {:?}",
                theirs[l][c]
            );
        }
    }
}

#[test]
fn client_certificate_configuration_errors_name_the_line() {
    let dir = TempDir::new("mtls-errors");
    let ca = tls_support::Ca::new();
    let site = dir.write("site.pem", ca.leaf("localhost", &[]));
    let cases = [
        (
            "verify required",
            "`verify required` needs a `ca-file` to verify client certificates against",
        ),
        ("verify optional ca-file missing-ca.pem", "ca-file '"),
        (
            "verify sometimes",
            "verify 'sometimes': expected none, optional or required",
        ),
        (
            "ca-file site.pem crl-file no-such-crl.pem verify required",
            "crl-file 'no-such-crl.pem' does not exist",
        ),
    ];
    for (options, message) in cases {
        let path = dir.write(
            "bad.cfg",
            format!(
                "frontend fe\n    mode http\n    timeout client 5s\n    bind 127.0.0.1:{} ssl crt {} {options}\n    default_backend be\n\
                 backend be\n    mode http\n    timeout connect 2s\n    timeout server 5s\n    server s1 127.0.0.1:1\n",
                free_port(),
                site.display()
            ),
        );
        let (status, out) = run_wsgate(
            &[
                std::ffi::OsStr::new("-c"),
                std::ffi::OsStr::new("-f"),
                path.as_os_str(),
            ],
            Duration::from_secs(30),
        );
        assert!(!status.success(), "{options}: accepted:\n{out}");
        assert!(
            out.contains("bad.cfg:4:") && out.contains(message),
            "{options}: expected `{message}` at line 4:\n{out}"
        );
        if options.contains("missing-ca.pem") {
            assert!(out.contains("missing-ca.pem' does not exist"), "{out}");
        }
    }
}

/// The `ssl_c_*` fetches in a `return lf-string` body, in ACLs and in a
/// header sent to the server, for a client with a certificate and one
/// without; HAProxy 2.6 on the same file must write the same bytes.
#[test]
fn client_certificate_fetches_as_haproxy_writes_them() {
    if !tls_support::have("curl") {
        skip_unless_ci("curl is not installed");
        return;
    }
    use rcgen::DnType;
    let ca = tls_support::Ca::new();
    let dir = TempDir::new("mtls-fetches");
    let site = dir.write("site.pem", ca.leaf("localhost", &["127.0.0.1"]));
    let ca_path = dir.write("ca.pem", &ca.pem);
    let (c, k) = ca.client_leaf(
        &[
            (DnType::CountryName, "FR"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::OrganizationalUnitName, "Ops"),
            // A second OU (rcgen keeps one value per type, so by its OID).
            (DnType::CustomDnType(vec![2, 5, 4, 11]), "Night shift"),
            (DnType::CommonName, "alice"),
        ],
        &[0x00, 0x9f, 0x00, 0x42],
    );
    let alice = (dir.write("alice.crt", c), dir.write("alice.key", k));
    let backend = ScriptedBackend::start(Script::Reply(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ));
    let fetches = "used=%[ssl_c_used] verify=%[ssl_c_verify] err=%[ssl_c_err] ca_err=%[ssl_c_ca_err] \
                   s=%[ssl_c_s_dn] cn=%[ssl_c_s_dn(cn)] ou1=%[ssl_c_s_dn(OU)] ou-1=%[ssl_c_s_dn(OU,-1)] \
                   rfc=%[ssl_c_s_dn(,0,rfc2253)] i=%[ssl_c_i_dn] icn=%[ssl_c_i_dn(CN)] \
                   serial=%[ssl_c_serial,hex] sha1=%[ssl_c_sha1,hex] from=%[ssl_c_notbefore] \
                   to=%[ssl_c_notafter] version=%[ssl_c_version]";
    let cfg = |port: u16| {
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind 127.0.0.1:{port} ssl crt {site} ca-file {ca} verify optional\n\
             \x20   http-request return status 200 content-type text/plain lf-string \"{fetches}\" if {{ path /fetches }}\n\
             \x20   acl alice ssl_c_s_dn(cn) alice\n\
             \x20   http-request return status 200 content-type text/plain string acl-ok if {{ path /acl }} alice {{ ssl_c_used }} {{ ssl_c_verify 0 }} {{ ssl_c_version 3 }} {{ ssl_c_serial -m bin 9f0042 }} {{ ssl_c_notafter -m beg 9006 }}\n\
             \x20   http-request return status 200 content-type text/plain string acl-no if {{ path /acl }}\n\
             \x20   http-request set-header X-SSL-Client-CN %[ssl_c_s_dn(cn)]\n\
             \x20   http-request set-header X-SSL-Client-DN %[ssl_c_s_dn]\n\
             \x20   use_backend by_cert if {{ path /route }} {{ ssl_c_s_dn(cn) alice }}\n\
             \x20   default_backend be\n\
             backend by_cert\n    http-request return status 200 content-type text/plain string routed-by-cert\n\
             backend be\n    server s1 {}\n",
            backend.addr,
            site = site.display(),
            ca = ca_path.display(),
        )
    };
    let get = |port: u16, path: &str, client: Option<(&Path, &Path)>| -> String {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca_path)
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"));
        if let Some((cert, key)) = client {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let out = cmd
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let port = free_port();
    let wsgate = Wsgate::start(&cfg(port));
    let with = Some((alice.0.as_path(), alice.1.as_path()));
    let ours = [
        get(port, "/fetches", with),
        get(port, "/fetches", None),
        get(port, "/acl", with),
        get(port, "/acl", None),
        get(port, "/route", with),
        get(port, "/route", None),
    ];
    let sha1 = {
        let der = rustls_pki_types::pem::PemObject::from_pem_file(&alice.0).unwrap();
        let der: rustls_pki_types::CertificateDer<'static> = der;
        openssl_sha1_hex(der.as_ref())
    };
    assert_eq!(
        ours[0],
        format!(
            "used=1 verify=0 err=0 ca_err=0 s=/C=FR/O=Acme, Inc./OU=Ops/OU=Night shift/CN=alice \
             cn=alice ou1=Ops ou-1=Night shift rfc=CN=alice,OU=Night shift,OU=Ops,O=Acme\\, Inc.,C=FR \
             i=/CN=wsgate test CA icn=wsgate test CA serial=9F0042 sha1={sha1} from=200102030405Z \
             to=900607080910Z version=3"
        ),
        "{}",
        wsgate.log()
    );
    assert_eq!(
        ours[1],
        "used=0 verify=0 err=0 ca_err=0 s= cn= ou1= ou-1= rfc= i= icn= serial= sha1= from= to= version="
    );
    assert_eq!([ours[2].as_str(), ours[3].as_str()], ["acl-ok", "acl-no"]);
    // `use_backend` sees the certificate too.
    assert_eq!(
        [ours[4].as_str(), ours[5].as_str()],
        ["routed-by-cert", "ok"]
    );
    assert_eq!(get(port, "/", with), "ok");
    let seen = backend.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-ssl-client-cn"), Some("alice"));
    assert_eq!(
        last.header("x-ssl-client-dn"),
        Some("/C=FR/O=Acme, Inc./OU=Ops/OU=Night shift/CN=alice")
    );

    let Some(bin) = balance_support::haproxy_bin() else {
        skip_unless_ci("haproxy is not installed (Debian package `haproxy`)");
        return;
    };
    let hport = free_port();
    let _haproxy = balance_support::Haproxy::start(
        &bin,
        &cfg(hport),
        &[SocketAddr::from(([127, 0, 0, 1], hport))],
    );
    let theirs = [
        get(hport, "/fetches", with),
        get(hport, "/fetches", None),
        get(hport, "/acl", with),
        get(hport, "/acl", None),
        get(hport, "/route", with),
        get(hport, "/route", None),
    ];
    assert_eq!(ours, theirs, "wsgate (left), HAProxy (right)");
}

/// The SHA-1 of `der` in uppercase hex, with openssl (independent of
/// the proxy's code).
fn openssl_sha1_hex(der: &[u8]) -> String {
    let dir = TempDir::new("sha1");
    let path = dir.write("c.der", der);
    let out = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-fingerprint",
            "-sha1",
            "-in",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().rsplit('=').next().unwrap().replace(':', "")
}
