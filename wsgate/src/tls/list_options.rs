//! Per-certificate options of a `crt-list` line (`[ssl-min-ver TLSv1.3
//! alpn http/1.1]`): the subset of HAProxy's "sslbindconf" that wsgate
//! applies per certificate, read over the bind line's settings.
//!
//! Supported: `ssl-min-ver`, `ssl-max-ver`, `ciphers`, `ciphersuites`,
//! `curves` (`ecdhe`), `alpn` (wsgate offers `http/1.1` whatever the
//! list, as on a bind), and client certificates: `verify`, `ca-file`,
//! `crl-file`, each over the bind's (`verify none` turns them off for the
//! certificate). The rest of HAProxy's list (`no-ca-names`, `npn`,
//! `allow-0rtt`, `ocsp-update`) is an error naming the option, so no
//! certificate is served with a setting silently dropped. The values are
//! read by the same functions as the bind line's (`config::tls`), with the
//! same messages.

use std::path::PathBuf;

use crate::config::model::{ClientAuth, TlsSettings};
use crate::config::tls;

/// HAProxy's crt-list options wsgate does not apply per certificate.
const NOT_PER_CERTIFICATE: &[&str] = &["no-ca-names", "npn", "allow-0rtt", "ocsp-update"];

/// What one line's options make of the bind's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineOptions {
    pub settings: TlsSettings,
    pub client_auth: Option<ClientAuth>,
}

/// What the options of one line give: the result, or the first error;
/// and warnings (values left out, as on a bind line).
pub struct Parsed {
    pub options: Result<LineOptions, String>,
    pub warnings: Vec<String>,
}

/// Reads `words` (the text between `[` and `]`, split on blanks) over
/// the bind line's settings and client certificate options.
pub fn parse(words: &[&str], settings: &TlsSettings, client_auth: Option<&ClientAuth>) -> Parsed {
    let mut settings = settings.clone();
    let mut warnings = Vec::new();
    let mut auth = AuthWords::default();
    let mut words = words.iter();
    let result = loop {
        let Some(&name) = words.next() else {
            break Ok(());
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
                | "verify"
                | "ca-file"
                | "crl-file"
        );
        if !known {
            break Err(format!(
                "unknown crt-list option '{name}' (wsgate applies ssl-min-ver, ssl-max-ver, \
                 ciphers, ciphersuites, curves, ecdhe, alpn, verify, ca-file and crl-file \
                 per certificate)"
            ));
        }
        let Some(&value) = words.next() else {
            break Err(format!("crt-list option '{name}' needs a value"));
        };
        let applied = match name {
            "verify" => match value {
                "none" | "optional" | "required" => {
                    auth.verify = Some(value);
                    Ok(())
                }
                other => Err(format!(
                    "unknown verify mode '{other}' (none, optional or required)"
                )),
            },
            "ca-file" => {
                auth.ca_file = Some(PathBuf::from(value));
                Ok(())
            }
            "crl-file" => {
                auth.crl_file = Some(PathBuf::from(value));
                Ok(())
            }
            _ => apply(&mut settings, &mut warnings, name, value),
        };
        if let Err(e) = applied {
            break Err(e);
        }
    };
    let versions = |()| match (settings.min_ver, settings.max_ver) {
        (Some(min), Some(max)) if min > max => Err(
            "the TLS versions allowed for this certificate are empty (minimum above maximum, \
             with the bind's settings)"
                .to_owned(),
        ),
        _ => Ok(()),
    };
    let options = result
        .and_then(versions)
        .and_then(|()| auth.over(client_auth))
        .map(|client_auth| LineOptions {
            settings,
            client_auth,
        });
    Parsed { options, warnings }
}

/// A line's `verify`, `ca-file` and `crl-file`.
#[derive(Default)]
struct AuthWords<'a> {
    verify: Option<&'a str>,
    ca_file: Option<PathBuf>,
    crl_file: Option<PathBuf>,
}

impl AuthWords<'_> {
    /// Each word given replaces the bind's; as on a bind, `verify
    /// optional|required` needs a `ca-file`.
    fn over(self, bind: Option<&ClientAuth>) -> Result<Option<ClientAuth>, String> {
        let verify = self.verify.unwrap_or(match bind {
            Some(a) if a.required => "required",
            Some(_) => "optional",
            None => "none",
        });
        if verify == "none" {
            return Ok(None);
        }
        let Some(ca_file) = self.ca_file.or_else(|| bind.map(|a| a.ca_file.clone())) else {
            return Err(format!(
                "`verify {verify}` needs a `ca-file` to verify client certificates against"
            ));
        };
        Ok(Some(ClientAuth {
            ca_file,
            required: verify == "required",
            crl_file: self
                .crl_file
                .or_else(|| bind.and_then(|a| a.crl_file.clone())),
        }))
    }
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
            None,
        );
        let s = p.options.unwrap().settings;
        assert_eq!(s.min_ver, Some(TlsVersion::Tls13));
        assert_eq!(s.curves, Some(vec![KxGroup::P384]));
        assert!(s.no_tls_tickets, "the bind's settings stay");
        assert_eq!(p.warnings.len(), 1, "h2: {:?}", p.warnings);
    }

    #[test]
    fn refused_options_name_themselves() {
        let e = |words: &[&str]| {
            parse(words, &TlsSettings::default(), None)
                .options
                .unwrap_err()
        };
        assert!(e(&["npn", "http/1.1"]).contains("'npn' is not supported per certificate"));
        assert!(e(&["verify", "required"]).contains("needs a `ca-file`"));
        assert!(e(&["verify", "sometimes"]).contains("unknown verify mode"));
        assert!(e(&["bogus", "1"]).contains("unknown crt-list option 'bogus'"));
        assert!(e(&["ssl-min-ver"]).contains("needs a value"));
        assert!(e(&["ssl-min-ver", "TLSv1.1"]).contains("RFC 8996"));
        assert!(e(&["ciphersuites", "TLS_AES_128_CCM_SHA256"]).contains("not available"));
        assert!(e(&["ssl-min-ver", "TLSv1.3", "ssl-max-ver", "TLSv1.2"]).contains("are empty"));
    }

    #[test]
    fn client_certificate_words_apply_over_the_bind() {
        let bind = ClientAuth {
            ca_file: "bind-ca.pem".into(),
            required: true,
            crl_file: None,
        };
        let auth = |words: &[&str], bind: Option<&ClientAuth>| {
            parse(words, &TlsSettings::default(), bind)
                .options
                .unwrap()
                .client_auth
        };
        assert_eq!(auth(&[], Some(&bind)), Some(bind.clone()));
        assert_eq!(auth(&["verify", "none"], Some(&bind)), None);
        let optional = auth(&["verify", "optional"], Some(&bind)).unwrap();
        assert!(!optional.required && optional.ca_file == bind.ca_file);
        let own = auth(&["verify", "required", "ca-file", "line-ca.pem"], None).unwrap();
        assert_eq!(own.ca_file, PathBuf::from("line-ca.pem"));
        assert_eq!(auth(&["ca-file", "line-ca.pem"], None), None, "verify none");
    }
}
