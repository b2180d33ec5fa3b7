//! Start-up certificate checks: what a certificate says (names, key,
//! validity) and what is wrong with it, before any client sees it.
//!
//! Stage: called by `store` for each certificate file it loads; findings
//! become diagnostics at the `bind` line (so `wsgate -c` reports them), and
//! the summary becomes the `note:` line `-c` prints per certificate.
//!
//! Parser choice: `x509-parser` (Rusticata; nom-based, fuzzed, used by
//! rcgen's own tests and by many TLS tools). rustls-webpki parses only what
//! path validation needs and exposes neither the subject CN, the validity
//! dates nor the key size, which are exactly what these checks report. Its
//! `verify` feature uses ring, the provider wsgate already builds, to check
//! that each certificate in a chain is signed by the next one.

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Version};
use x509_parser::public_key::PublicKey;

/// Expiry closer than this is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// How to make a good key, for the hints.
pub const GOOD_KEY_HINT: &str = "make a P-256 key: `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout site.key -out site.csr`, or a 2048-bit RSA one with `-newkey rsa:2048`, and have it certified again";

/// The key of a certificate, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Rsa(usize),
    Ec(&'static str),
    Ed25519,
    Other(String),
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Rsa(bits) => write!(f, "RSA {bits} bits"),
            KeyKind::Ec(curve) => write!(f, "ECDSA {curve}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Other(oid) => write!(f, "key algorithm {oid}"),
        }
    }
}

/// What the leaf certificate says.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject CN and DNS subject alternative names, lower-case, without
    /// duplicates: the names SNI is matched against (as HAProxy does).
    pub names: Vec<String>,
    pub key: KeyKind,
    /// Validity, in seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// A problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub error: bool,
    pub message: String,
    pub hint: Option<String>,
}

/// Reads the leaf's names, key and dates and checks the chain, at time
/// `now` (Unix seconds). `Err` when the leaf cannot be parsed at all.
pub fn inspect(chain: &[CertificateDer<'_>], now: i64) -> Result<(CertInfo, Vec<Finding>), String> {
    let Some(leaf_der) = chain.first() else {
        return Err("no certificate".into());
    };
    let (_, leaf) = X509Certificate::from_der(leaf_der.as_ref())
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        let n = n.to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    // A CN that is not a host name ("My Test Cert") names nothing.
    for cn in leaf.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'))
            {
                add(s);
            }
        }
    }
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for gn in &san.value.general_names {
            if let GeneralName::DNSName(d) = gn {
                add(d);
            }
        }
    }
    let key = match leaf.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa(rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = leaf
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            KeyKind::Ec(match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "P-256",
                Some("1.3.132.0.34") => "P-384",
                Some("1.3.132.0.35") => "P-521",
                _ => "(unknown curve)",
            })
        }
        _ if leaf.public_key().algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            KeyKind::Ed25519
        }
        _ => KeyKind::Other(leaf.public_key().algorithm.algorithm.to_id_string()),
    };
    let info = CertInfo {
        names,
        key,
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    };

    let mut findings = Vec::new();
    let range = format!(
        "valid from {} to {}",
        date(info.not_before),
        date(info.not_after)
    );
    if now > info.not_after {
        findings.push(Finding {
            error: true,
            message: format!("certificate expired on {} ({range})", date(info.not_after)),
            hint: Some("renew it; clients refuse expired certificates".into()),
        });
    } else if now < info.not_before {
        findings.push(Finding {
            error: true,
            message: format!("certificate is not valid yet: {range} (is the system clock right?)"),
            hint: None,
        });
    } else if info.not_after - now < EXPIRY_WARNING_DAYS * 86_400 {
        findings.push(Finding {
            error: false,
            message: format!(
                "certificate expires on {}, in {} day(s) ({range})",
                date(info.not_after),
                (info.not_after - now) / 86_400
            ),
            hint: Some("renew it soon".into()),
        });
    }
    if leaf.version() != X509Version::V3 {
        // webpki (under rustls) parses only v3; OpenSSL takes v1, so a
        // certificate HAProxy serves can fail here, and the error rustls
        // gives would read as a key mismatch.
        findings.push(Finding {
            error: true,
            message: format!(
                "X.509 version {} certificate: the TLS library (rustls) accepts version 3 only",
                leaf.version().0 + 1
            ),
            hint: Some(
                "re-issue it as v3: `openssl x509 -req` without `-extfile` makes v1 certificates; add e.g. `-extfile <(printf 'subjectAltName=DNS:example.com')`"
                    .into(),
            ),
        });
    }
    match &info.key {
        KeyKind::Rsa(bits) if *bits < 2048 => findings.push(Finding {
            error: true,
            message: format!(
                "{bits}-bit RSA key: too weak, and the TLS library (rustls with ring) refuses RSA keys under 2048 bits"
            ),
            hint: Some(GOOD_KEY_HINT.into()),
        }),
        KeyKind::Ec("P-521") => findings.push(Finding {
            error: true,
            message: "ECDSA P-521 keys are not supported by the TLS library (rustls with ring)"
                .into(),
            hint: Some(GOOD_KEY_HINT.into()),
        }),
        _ => {}
    }
    findings.extend(check_chain(chain));
    Ok((info, findings))
}

/// Each certificate in the file must be issued (and signed) by the next
/// one; a chain that does not lead to its issuer makes clients that lack
/// the intermediate fail.
fn check_chain(chain: &[CertificateDer<'_>]) -> Vec<Finding> {
    let parsed: Vec<Option<X509Certificate<'_>>> = chain
        .iter()
        .map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, x)| x))
        .collect();
    let mut findings = Vec::new();
    for (i, pair) in parsed.windows(2).enumerate() {
        let (Some(cert), Some(next)) = (&pair[0], &pair[1]) else {
            findings.push(Finding {
                error: false,
                message: format!("certificate {} of the chain cannot be parsed", i + 2),
                hint: None,
            });
            continue;
        };
        let signed = cert.verify_signature(Some(next.public_key())).is_ok();
        if cert.issuer() != next.subject() || !signed {
            findings.push(Finding {
                error: false,
                message: format!(
                    "the chain does not lead to the issuer: certificate {} ('{}') is issued by '{}', but the next one in the file is '{}'{}",
                    i + 1,
                    cert.subject(),
                    cert.issuer(),
                    next.subject(),
                    if cert.issuer() == next.subject() { " (its signature does not verify)" } else { "" }
                ),
                hint: Some("put the certificate first, then its intermediate(s) in order, as your CA's fullchain.pem does".into()),
            });
        }
    }
    findings
}

/// `2030-01-31` from Unix seconds (UTC).
pub fn date(unix: i64) -> String {
    let (year, month, day, ..) = civil(unix);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Year, month, day, hour, minute, second (UTC) of Unix seconds.
pub fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    // Howard Hinnant's days-to-civil algorithm.
    let secs = unix.rem_euclid(86_400);
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

/// The subject CN of a DER certificate (the first one, as OpenSSL's
/// `X509_NAME_get_text_by_NID` in HAProxy), if it has one.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl x509 -req -signkey` without extensions: version 1.
    const V1_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBHzCBxwIUdd9On8XwTo38tzEOtPVYWjdtJxgwCgYIKoZIzj0EAwIwEjEQMA4G
A1UEAwwHdjEudGVzdDAgFw0yNjExMjUxNjMyMzNaGA8yMTI2MTEwMTE2MzIzM1ow
EjEQMA4GA1UEAwwHdjEudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABA+c
MPpPYUBGJc3XkR4z/AP8XJ64j56+uhO8mJxwLlaUf0XZA+M7COCu6gqwU3s7ijIU
jaTvKkT6hTl39469tGEwCgYIKoZIzj0EAwIDRwAwRAIgL1fWeX1nqx/JenUMLaMf
Ae7YIT7hJYa4T7aqHbfJHmsCIGtroyEYogPpxQEHdvJBaIEvve1QmhUlvwseiZKT
jJwU
-----END CERTIFICATE-----
";

    #[test]
    fn version_1_certificates_are_named() {
        use rustls_pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(V1_CERT.as_bytes()).unwrap();
        // 2027-01-01: inside its validity.
        let (info, findings) = inspect(std::slice::from_ref(&der), 1_798_761_600).unwrap();
        assert_eq!(info.names, ["v1.test"]);
        assert_eq!(subject_cn(der.as_ref()).as_deref(), Some("v1.test"));
        let f: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            f,
            ["X.509 version 1 certificate: the TLS library (rustls) accepts version 3 only"]
        );
        assert!(findings[0].error);
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_893_456_000), "2030-01-01");
    }

    fn cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> CertificateDer<'static> {
        let mut p = rcgen::CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap();
        p.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn validity_and_names() {
        let now = 1_893_456_000; // 2030-01-01
        let (info, f) = inspect(&[cert((2029, 1, 1), (2031, 1, 1))], now).unwrap();
        assert_eq!(info.names, ["a.example.com"]);
        assert_eq!(info.key, KeyKind::Ec("P-256"));
        assert!(f.is_empty(), "{f:?}");
        let (_, f) = inspect(&[cert((2020, 1, 1), (2029, 6, 1))], now).unwrap();
        assert!(f[0].error && f[0].message.contains("expired on 2029-06-01"));
        let (_, f) = inspect(&[cert((2030, 6, 1), (2031, 1, 1))], now).unwrap();
        assert!(f[0].error && f[0].message.contains("not valid yet"));
        let (_, f) = inspect(&[cert((2029, 1, 1), (2030, 1, 10))], now).unwrap();
        assert!(!f[0].error && f[0].message.contains("in 9 day(s)"));
    }

    #[test]
    fn broken_chain_warns() {
        let a = cert((2020, 1, 1), (2040, 1, 1));
        let b = cert((2020, 1, 1), (2040, 1, 1));
        let (_, f) = inspect(&[a, b], 1_893_456_000).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("does not lead to the issuer"));
    }
}
