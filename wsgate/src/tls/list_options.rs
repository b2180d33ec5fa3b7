//! Per-certificate options of a `crt-list` line (`[ssl-min-ver TLSv1.3
//! alpn http/1.1]`): the subset of HAProxy's "sslbindconf" that wsgate
//! applies per certificate, read over the bind line's settings.
//!
//! Supported: `ssl-min-ver`, `ssl-max-ver`, `ciphers`, `ciphersuites`,
//! `curves` (`ecdhe`), `alpn` (wsgate offers `http/1.1` whatever the
//! list, as on a bind). The rest of HAProxy's list (`verify`, `ca-file`,
//! `crl-file`, `no-ca-names`, `npn`, `allow-0rtt`, `ocsp-update`) is an
//! error naming the option, so no certificate is served with a setting
//! silently dropped. The values are read by the same functions as the
//! bind line's (`config::tls`), with the same messages.

use crate::config::model::TlsSettings;
use crate::config::tls;

/// HAProxy's crt-list options wsgate does not apply per certificate.
const NOT_PER_CERTIFICATE: &[&str] = &[
    "verify",
    "ca-file",
    "crl-file",
    "no-ca-names",
    "npn",
    "allow-0rtt",
    "ocsp-update",
];

/// What the options of one line give: the settings, or the first error;
/// and warnings (values left out, as on a bind line).
pub struct Parsed {
    pub settings: Result<TlsSettings, String>,
    pub warnings: Vec<String>,
}

/// Reads `words` (the text between `[` and `]`, split on blanks) over
/// `base`, the bind line's settings.
pub fn parse(words: &[&str], base: &TlsSettings) -> Parsed {
    let mut settings = base.clone();
    let mut warnings = Vec::new();
    let mut words = words.iter();
    let settings = loop {
        let Some(&name) = words.next() else {
            break Ok(settings);
        };
        if NOT_PER_CERTIFICATE.contains(&name) {
            break Err(format!(
                "crt-list option '{name}' is not supported per certificate by wsgate; \
                 put it on the bind line"
            ));
        }
        let known = matches!(
            name,
            "ssl-min-ver"
                | "ssl-max-ver"
                | "ciphers"
                | "ciphersuites"
                | "curves"
                | "ecdhe"
                | "alpn"
        );
        if !known {
            break Err(format!(
                "unknown crt-list option '{name}' (wsgate applies ssl-min-ver, ssl-max-ver, \
                 ciphers, ciphersuites, curves, ecdhe and alpn per certificate)"
            ));
        }
        let Some(&value) = words.next() else {
            break Err(format!("crt-list option '{name}' needs a value"));
        };
        if let Err(e) = apply(&mut settings, &mut warnings, name, value) {
            break Err(e);
        }
    };
    Parsed { settings, warnings }
}

fn apply(
    settings: &mut TlsSettings,
    warnings: &mut Vec<String>,
    name: &str,
    value: &str,
) -> Result<(), String> {
    match name {
        "ssl-min-ver" => settings.min_ver = Some(tls::parse_version(value)?),
        "ssl-max-ver" => settings.max_ver = Some(tls::parse_version(value)?),
        "ciphers" => {
            let list = tls::parse_cipher_list(value);
            if !list.refused.is_empty() {
                warnings.push(format!(
                    "cipher(s) {} left out: {}",
                    list.refused.join(", "),
                    tls::refusal_reason(&list.refused)
                ));
            }
            if list.suites.is_empty() {
                return Err("this cipher list leaves no TLS 1.2 cipher wsgate can offer".into());
            }
            settings.ciphers = Some(list.suites);
        }
        "ciphersuites" => {
            let list = tls::parse_ciphersuites(value);
            if !list.refused.is_empty() || list.suites.is_empty() {
                return Err(format!(
                    "TLS 1.3 cipher suite list '{value}' not available: wsgate (rustls) offers \
                     TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 and TLS_AES_128_GCM_SHA256"
                ));
            }
            settings.ciphersuites = Some(list.suites);
        }
        "curves" | "ecdhe" => match tls::parse_curves(value) {
            Ok(groups) if !groups.is_empty() => settings.curves = Some(groups),
            _ => {
                return Err(format!(
                    "curve list '{value}' not available: wsgate (rustls) offers X25519, P-256 and P-384"
                ))
            }
        },
        // "alpn"
        _ => {
            let (_, dropped) = tls::parse_alpn(value);
            if !dropped.is_empty() {
                warnings.push(format!(
                    "ALPN protocol(s) {} not offered: wsgate speaks http/1.1",
                    dropped.join(", ")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{KxGroup, TlsVersion};

    #[test]
    fn options_apply_over_the_bind_settings() {
        let base = TlsSettings {
            no_tls_tickets: true,
            ..TlsSettings::default()
        };
        let p = parse(
            &[
                "alpn",
                "h2,http/1.1",
                "ssl-min-ver",
                "TLSv1.3",
                "curves",
                "P-384",
            ],
            &base,
        );
        let s = p.settings.unwrap();
        assert_eq!(s.min_ver, Some(TlsVersion::Tls13));
        assert_eq!(s.curves, Some(vec![KxGroup::P384]));
        assert!(s.no_tls_tickets, "the bind's settings stay");
        assert_eq!(p.warnings.len(), 1, "h2: {:?}", p.warnings);
    }

    #[test]
    fn refused_options_name_themselves() {
        let e = |words: &[&str]| parse(words, &TlsSettings::default()).settings.unwrap_err();
        assert!(e(&["verify", "required"]).contains("'verify' is not supported per certificate"));
        assert!(e(&["bogus", "1"]).contains("unknown crt-list option 'bogus'"));
        assert!(e(&["ssl-min-ver"]).contains("needs a value"));
        assert!(e(&["ssl-min-ver", "TLSv1.1"]).contains("RFC 8996"));
        assert!(e(&["ciphersuites", "TLS_AES_128_CCM_SHA256"]).contains("not available"));
    }
}
