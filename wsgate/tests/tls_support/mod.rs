//! Harness for the TLS end-to-end tests: a test CA and certificates made
//! with rcgen, `openssl s_client` to see which certificate a listener
//! serves for a server name, and a Debian `haproxy` started on the same
//! certificates for side-by-side comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate authority for tests.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new() -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "wsgate test CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `cn` (also the first SAN) and `sans`, valid from
    /// `not_before` to `not_after` (y, m, d): the certificate PEM and the
    /// key PEM.
    pub fn leaf_dated(
        &self,
        cn: &str,
        sans: &[&str],
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> (String, String) {
        let mut names = vec![cn.to_owned()];
        names.extend(sans.iter().map(|s| (*s).to_owned()));
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf for `cn` with serial number `serial`, valid from 2020 to
    /// 2090: the certificate PEM and the key PEM (for revocation tests).
    pub fn leaf_with_serial(&self, cn: &str, serial: u64) -> (String, String) {
        let mut p = CertificateParams::new(vec![cn.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.serial_number = Some(rcgen::SerialNumber::from(serial));
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client leaf whose subject is `dn` in this order (OpenSSL's
    /// one-line form lists it so), with serial number `serial`, valid from
    /// 2020-01-02 03:04:05 to 2090-06-07 08:09:10: the certificate PEM and
    /// the key PEM (for the `ssl_c_*` fetches).
    pub fn client_leaf(&self, dn: &[(DnType, &str)], serial: &[u8]) -> (String, String) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            p.distinguished_name.push(t.clone(), *v);
        }
        p.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
        let hms = |h: u64, m: u64, s: u64| Duration::from_secs(h * 3600 + m * 60 + s);
        p.not_before = rcgen::date_time_ymd(2020, 1, 2) + hms(3, 4, 5);
        p.not_after = rcgen::date_time_ymd(2090, 6, 7) + hms(8, 9, 10);
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A CRL of this CA (PEM) revoking the certificates with these serial
    /// numbers, valid from 2020 to 2090.
    pub fn crl(&self, revoked: &[u64]) -> String {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2090, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    /// A leaf for `cn` with `key` (see [`key_pair`]), valid from 2020 to
    /// 2090, as one PEM (certificate then key).
    pub fn leaf_with_key(&self, cn: &str, key: KeyPair) -> String {
        let mut p = CertificateParams::new(vec![cn.to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    }

    /// A leaf valid from 2020 to 2090, as one PEM (certificate then key).
    pub fn leaf(&self, cn: &str, sans: &[&str]) -> String {
        let (c, k) = self.leaf_dated(cn, sans, (2020, 1, 1), (2090, 1, 1));
        format!("{c}{k}")
    }
}

/// A private key made by `openssl genpkey` with these arguments (as
/// `["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]`): ring, under
/// rcgen, cannot make RSA keys.
pub fn key_pair(genpkey: &[&str]) -> KeyPair {
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(genpkey)
        .output()
        .expect("run openssl genpkey");
    assert!(out.status.success(), "openssl genpkey {genpkey:?}: {out:?}");
    KeyPair::from_pem(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// True when `openssl` (s_client) is installed; otherwise the test is
/// skipped (and fails in CI).
pub fn openssl_present() -> bool {
    if !have("openssl") {
        crate::common::skip_unless_ci("openssl is not installed");
        return false;
    }
    true
}

pub fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `openssl s_client` to `port` with `sni` (`None`: no SNI) and `extra`
/// arguments: its standard output, then its standard error (where an
/// alert from the server is reported: `SSL alert number 116`).
pub fn s_client(port: u16, sni: Option<&str>, extra: &[&str]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `s_client -sess_out <sess>` to `port` with `extra` arguments, kept
/// connected until the session is saved (TLS 1.3 tickets come after the
/// handshake: a client that leaves at once may not see them): its
/// standard output.
pub fn s_client_saving(port: u16, sess: &Path, extra: &[&str]) -> String {
    let out_path = sess.with_extension("out");
    let mut child = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-sess_out")
        .arg(sess)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::fs::metadata(sess).map_or(true, |m| m.len() == 0)
        && std::time::Instant::now() < deadline
        && child.try_wait().ok().flatten().is_none()
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stdin closes: s_client says goodbye and exits.
    drop(child.stdin.take());
    let _ = child.wait();
    std::fs::read_to_string(&out_path).unwrap_or_default()
}

/// The subject CN in an `s_client` output, when a certificate was served.
pub fn subject_cn(s_client_out: &str) -> Option<String> {
    // OpenSSL 3: `subject=CN = a.example.com`.
    s_client_out
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .and_then(|s| s.split("CN = ").nth(1))
        .map(|cn| cn.split(',').next().unwrap_or(cn).trim().to_owned())
}

/// The value of the `s_client` output line starting with `label` (as
/// `Peer signature type: ECDSA`, `Server public key is 2048 bit`).
pub fn field<'a>(s_client_out: &'a str, label: &str) -> Option<&'a str> {
    s_client_out
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim_start_matches(':').trim())
}

/// The version and suite an `s_client` handshake negotiated, as
/// `TLSv1.3 TLS_AES_256_GCM_SHA384`; `None` when it failed.
pub fn negotiated(s_client_out: &str) -> Option<String> {
    // `New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384` (or `Reused, ...`).
    let line = s_client_out.lines().find(|l| l.contains(", Cipher is "))?;
    let (head, suite) = line.split_once(", Cipher is ")?;
    let version = head.split(", ").nth(1)?;
    (suite != "(NONE)").then(|| format!("{version} {suite}"))
}

/// The subject CN of the certificate served on `port` for `sni` (`None`:
/// no SNI), or `None` when the handshake failed.
pub fn served_cn(port: u16, sni: Option<&str>) -> Option<String> {
    subject_cn(&s_client(port, sni, &[]))
}

/// `haproxy -db -f cfg`, killed on drop.
pub struct Haproxy {
    child: std::process::Child,
    pub log: PathBuf,
}

impl Haproxy {
    /// HAProxy on `config` (written as `haproxy.cfg` in `dir`), listening
    /// on `port`, for a side-by-side comparison; `None` when it is not
    /// installed (outside CI).
    pub fn beside(dir: &Path, config: &str, port: u16) -> Option<Haproxy> {
        if !Path::new("/usr/sbin/haproxy").exists() {
            crate::common::skip_unless_ci("haproxy is not installed (no comparison)");
            return None;
        }
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        Some(Haproxy::start(&cfg, &[port], dir.join("haproxy.log")))
    }

    pub fn start(cfg: &Path, ports: &[u16], log: PathBuf) -> Haproxy {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new("/usr/sbin/haproxy")
            .arg("-db")
            .arg("-f")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        let mut h = Haproxy { child, log };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!(
                    "haproxy exited ({status}): {}",
                    std::fs::read_to_string(&h.log).unwrap_or_default()
                );
            }
            let ready = ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "haproxy did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
