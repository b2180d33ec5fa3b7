//! TLS option values as HAProxy users write them (`ssl-min-ver TLSv1.2`,
//! OpenSSL cipher strings, curve names, ALPN lists), turned into typed
//! values for the model.
//!
//! Stage: called by the `bind`, `server` and `global ssl-default-bind-*`
//! handlers, so a bad name is reported at its own word with file:line:col.
//! This module knows names only, no TLS library: `tls/` maps the enums
//! below to rustls suites and groups. The accepted set is what rustls with
//! the ring provider offers: TLS 1.2 and 1.3, AEAD ciphers (AES-GCM,
//! ChaCha20-Poly1305) with ECDHE, groups X25519, P-256 and P-384. A
//! TLS 1.2 cipher string is read as OpenSSL reads it (names,
//! `FAMILY+FAMILY` intersections, `!`/`-` exclusions, `@STRENGTH`):
//! wsgate keeps the AEAD ECDHE suites it selects and warns about the rest
//! (weak CBC/3DES/RC4 suites, DHE, unknown words), naming each; like
//! OpenSSL, it refuses the list only when nothing usable is left, so pasted
//! Mozilla or distribution lists keep working with their safe part.

/// A TLS protocol version wsgate can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A cipher suite wsgate can offer (TLS 1.3 ones first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    Tls13Aes128GcmSha256,
    Tls13Aes256GcmSha384,
    Tls13Chacha20Poly1305Sha256,
    EcdheEcdsaAes128GcmSha256,
    EcdheEcdsaAes256GcmSha384,
    EcdheEcdsaChacha20Poly1305,
    EcdheRsaAes128GcmSha256,
    EcdheRsaAes256GcmSha384,
    EcdheRsaChacha20Poly1305,
}

/// A key-exchange group (`curves`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KxGroup {
    X25519,
    P256,
    P384,
}

use CipherSuite as C;

/// TLS 1.2 suites by OpenSSL name, in the order OpenSSL's `DEFAULT`
/// prefers them.
const TLS12: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::EcdheEcdsaAes256GcmSha384,
    ),
    ("ECDHE-RSA-AES256-GCM-SHA384", C::EcdheRsaAes256GcmSha384),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::EcdheEcdsaChacha20Poly1305,
    ),
    ("ECDHE-RSA-CHACHA20-POLY1305", C::EcdheRsaChacha20Poly1305),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::EcdheEcdsaAes128GcmSha256,
    ),
    ("ECDHE-RSA-AES128-GCM-SHA256", C::EcdheRsaAes128GcmSha256),
];

const TLS13: &[(&str, CipherSuite)] = &[
    ("TLS_AES_256_GCM_SHA384", C::Tls13Aes256GcmSha384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        C::Tls13Chacha20Poly1305Sha256,
    ),
    ("TLS_AES_128_GCM_SHA256", C::Tls13Aes128GcmSha256),
];

/// Safe suites rustls does not implement (finite-field DHE): skipped.
const DHE: &[&str] = &[
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
    "DHE-DSS-AES128-GCM-SHA256",
    "DHE-DSS-AES256-GCM-SHA384",
];

impl CipherSuite {
    pub fn is_tls13(self) -> bool {
        matches!(
            self,
            C::Tls13Aes128GcmSha256 | C::Tls13Aes256GcmSha384 | C::Tls13Chacha20Poly1305Sha256
        )
    }

    /// The OpenSSL name.
    pub fn name(self) -> &'static str {
        TLS12
            .iter()
            .chain(TLS13)
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }

    /// Every TLS 1.2 suite, in default preference order.
    pub fn all_tls12() -> Vec<CipherSuite> {
        TLS12.iter().map(|(_, s)| *s).collect()
    }

    /// Every TLS 1.3 suite, in default preference order.
    pub fn all_tls13() -> Vec<CipherSuite> {
        TLS13.iter().map(|(_, s)| *s).collect()
    }
}

/// Why versions below TLS 1.2 are refused.
pub const OLD_VERSIONS: &str = "SSLv3, TLS 1.0 and 1.1 are broken or deprecated (RFC 7568, RFC 8996), browsers dropped them in 2020, and rustls does not implement them; wsgate offers TLS 1.2 and 1.3";

/// `ssl-min-ver` / `ssl-max-ver` values.
pub fn parse_version(text: &str) -> Result<TlsVersion, String> {
    match text {
        "TLSv1.2" => Ok(TlsVersion::Tls12),
        "TLSv1.3" => Ok(TlsVersion::Tls13),
        "SSLv3" | "TLSv1.0" | "TLSv1.1" => Err(format!(
            "'{text}' is not offered by wsgate: {OLD_VERSIONS}; use TLSv1.2"
        )),
        other => Err(format!(
            "unknown TLS version '{other}' (expected TLSv1.2 or TLSv1.3)"
        )),
    }
}

/// The suites a cipher list names, and what was skipped or refused.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CipherList {
    pub suites: Vec<CipherSuite>,
    /// Safe DHE names that rustls does not offer (a warning).
    pub skipped_dhe: Vec<String>,
    /// Names or families with no safe rustls equivalent, or unknown: left
    /// out with a warning, as OpenSSL ignores what it cannot use; an error
    /// only when nothing is left (`ciphers`) or for TLS 1.3 suite names.
    pub refused: Vec<String>,
}

/// An OpenSSL family word (`HIGH`, `ECDHE`, `AESGCM`, ...) as a set of the
/// suites wsgate offers, or `None` when the word is not one of them.
fn family(word: &str) -> Option<Vec<CipherSuite>> {
    let all = CipherSuite::all_tls12();
    let keep = |f: &dyn Fn(&str) -> bool| -> Vec<CipherSuite> {
        TLS12
            .iter()
            .filter(|(n, _)| f(n))
            .map(|(_, s)| *s)
            .collect()
    };
    Some(match word {
        "DEFAULT" | "HIGH" | "ALL" | "ECDHE" | "EECDH" | "kEECDH" | "kECDHE" | "AEAD"
        | "TLSv1.2" | "SECURE" => all,
        "AESGCM" | "AES" => keep(&|n| n.contains("-AES")),
        "AES128" => keep(&|n| n.contains("AES128")),
        "AES256" => keep(&|n| n.contains("AES256")),
        "CHACHA20" => keep(&|n| n.contains("CHACHA20")),
        "ECDSA" | "aECDSA" => keep(&|n| n.contains("-ECDSA-")),
        "aRSA" => keep(&|n| n.contains("-RSA-")),
        "SHA256" => keep(&|n| n.ends_with("SHA256")),
        "SHA384" => keep(&|n| n.ends_with("SHA384")),
        "ECDH" | "kECDH" | "ECDHE-ECDSA" | "ECDHE-RSA" => all,
        // Families that select nothing wsgate offers: finite-field DHE
        // (safe, not in rustls), and the weak ones (CBC-only, 3DES, RC4,
        // export, anonymous, static RSA key exchange, ...).
        "DHE" | "EDH" | "kDHE" | "kEDH" | "DH" | "kDH" | "aDH" | "ADH" | "AECDH" | "aNULL"
        | "eNULL" | "NULL" | "COMPLEMENTOFALL" | "COMPLEMENTOFDEFAULT" | "3DES" | "DES" | "RC4"
        | "RC2" | "MD5" | "SHA1" | "SHA" | "CAMELLIA" | "CAMELLIA128" | "CAMELLIA256" | "SEED"
        | "IDEA" | "ARIA" | "EXPORT" | "EXP" | "LOW" | "MEDIUM" | "PSK" | "SRP" | "kRSA" | "DSS"
        // `RSA` is OpenSSL's alias of kRSA (static RSA key exchange).
        | "RSA"
        | "aDSS" | "kPSK" | "aPSK" | "CBC" | "SSLv3" | "TLSv1" | "TLSv1.0" | "AESCCM" | "AESCCM8" => Vec::new(),
        _ => return None,
    })
}

/// One word of a cipher string (`ECDHE+AESGCM` is the intersection of
/// its parts), or `None` when a part is unknown or weak.
fn word_set(word: &str) -> Option<Vec<CipherSuite>> {
    if let Some((_, s)) = TLS12.iter().find(|(n, _)| *n == word) {
        return Some(vec![*s]);
    }
    let mut set: Option<Vec<CipherSuite>> = None;
    for part in word.split('+') {
        let part_set = family(part)?;
        set = Some(match set {
            None => part_set,
            Some(prev) => prev.into_iter().filter(|s| part_set.contains(s)).collect(),
        });
    }
    set
}

/// `ciphers` (TLS 1.2 and below), an OpenSSL cipher string:
/// `name:name:!excluded:FAMILY+FAMILY:@STRENGTH`. Order is preference.
pub fn parse_cipher_list(text: &str) -> CipherList {
    let mut out = CipherList::default();
    let mut excluded: Vec<CipherSuite> = Vec::new();
    for word in text.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if word.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering and levels.
        }
        if let Some(rest) = word.strip_prefix('!').or_else(|| word.strip_prefix('-')) {
            // Removing something wsgate never offers is harmless.
            if let Some(set) = word_set(rest) {
                out.suites.retain(|s| !set.contains(s));
                if word.starts_with('!') {
                    excluded.extend(set);
                }
            }
            continue;
        }
        let word = word.strip_prefix('+').unwrap_or(word);
        if DHE.contains(&word) {
            out.skipped_dhe.push(word.to_owned());
            continue;
        }
        match word_set(word) {
            // A family word that selects nothing wsgate offers (`DH+3DES`).
            Some(set) if set.is_empty() => out.refused.push(word.to_owned()),
            Some(set) => {
                for s in set {
                    if !out.suites.contains(&s) && !excluded.contains(&s) {
                        out.suites.push(s);
                    }
                }
            }
            None => out.refused.push(word.to_owned()),
        }
    }
    out
}

/// `ciphersuites` (TLS 1.3): `TLS_AES_128_GCM_SHA256:...`.
pub fn parse_ciphersuites(text: &str) -> CipherList {
    let mut out = CipherList::default();
    for word in text.split(':').filter(|w| !w.is_empty()) {
        match TLS13.iter().find(|(n, _)| *n == word) {
            Some((_, s)) if !out.suites.contains(s) => out.suites.push(*s),
            Some(_) => {}
            None => out.refused.push(word.to_owned()),
        }
    }
    out
}

/// Why a refused cipher name has no equivalent, for the message.
pub fn refusal_reason(names: &[String]) -> &'static str {
    let weak = [
        "RC4", "DES", "MD5", "NULL", "EXP", "PSK", "SRP", "CAMELLIA", "SEED", "IDEA",
    ];
    if names.iter().any(|n| weak.iter().any(|w| n.contains(w)))
        || names
            .iter()
            .any(|n| n.ends_with("-SHA") || n.contains("CBC"))
    {
        "weak (CBC, RC4, 3DES, export or unauthenticated) or unknown; wsgate offers only AEAD suites with ECDHE"
    } else {
        "unknown, or nothing rustls implements (DHE, static RSA); wsgate offers only AEAD suites with ECDHE"
    }
}

/// `curves X25519:P-256:P-384` (and the one-name `ecdhe`).
pub fn parse_curves(text: &str) -> Result<Vec<KxGroup>, Vec<String>> {
    let mut groups = Vec::new();
    let mut bad = Vec::new();
    for word in text.split(':').filter(|w| !w.is_empty()) {
        let g = match word {
            "X25519" | "x25519" => KxGroup::X25519,
            "P-256" | "prime256v1" | "secp256r1" => KxGroup::P256,
            "P-384" | "secp384r1" => KxGroup::P384,
            other => {
                bad.push(other.to_owned());
                continue;
            }
        };
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    if bad.is_empty() {
        Ok(groups)
    } else {
        Err(bad)
    }
}

/// `alpn h2,http/1.1`: what wsgate offers (always `http/1.1`) and the
/// protocols it leaves out.
pub fn parse_alpn(text: &str) -> (Vec<String>, Vec<String>) {
    let mut dropped = Vec::new();
    for p in text.split(',').filter(|p| !p.is_empty()) {
        if p != "http/1.1" && !dropped.iter().any(|d| d == p) {
            dropped.push(p.to_owned());
        }
    }
    (vec!["http/1.1".to_owned()], dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mozilla_intermediate_maps_and_skips_dhe() {
        let l = parse_cipher_list("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305");
        assert_eq!(l.suites.len(), 6);
        assert_eq!(l.suites[0], C::EcdheEcdsaAes128GcmSha256);
        assert_eq!(l.skipped_dhe.len(), 3);
        assert!(l.refused.is_empty());
    }

    #[test]
    fn families_exclusions_and_weak_names() {
        let l = parse_cipher_list("ECDHE+AESGCM:!aNULL:!MD5:@STRENGTH");
        assert_eq!(l.suites.len(), 4);
        assert!(l.refused.is_empty());
        let l = parse_cipher_list("HIGH:!aRSA");
        assert_eq!(l.suites.len(), 3);
        let l = parse_cipher_list("HIGH:!RSA");
        assert_eq!(l.suites.len(), 6, "RSA is kRSA: ECDHE-RSA suites stay");
        let l = parse_cipher_list("ECDHE-RSA-AES128-SHA:RC4-SHA:ECDHE-RSA-AES128-GCM-SHA256");
        assert_eq!(l.suites, [C::EcdheRsaAes128GcmSha256]);
        assert_eq!(l.refused, ["ECDHE-RSA-AES128-SHA", "RC4-SHA"]);
        assert!(refusal_reason(&l.refused).starts_with("weak"));
    }

    #[test]
    fn distribution_lists_keep_their_aead_ecdhe_part() {
        // Kazoo's list: ECDH families; AES256/AES128 narrow to GCM here.
        let l = parse_cipher_list(
            "ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES256:ECDH+AES128:!aNULL:!SHA1:!AESCCM",
        );
        assert_eq!(l.suites.len(), 6, "{l:?}");
        assert!(l.refused.is_empty());
        // Matrix's list: the DH and 3DES words select nothing wsgate offers.
        let l = parse_cipher_list("ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:ECDH+3DES:DH+3DES:RSA+3DES:!aNULL:!MD5:!DSS");
        assert_eq!(l.suites.len(), 4, "the AES-GCM ECDHE suites");
        assert!(l.refused.contains(&"DH+3DES".to_owned()));
        // Nothing usable at all.
        assert!(parse_cipher_list("DES-CBC3-SHA:RC4-MD5").suites.is_empty());
    }

    #[test]
    fn versions_suites_curves_alpn() {
        assert_eq!(parse_version("TLSv1.3"), Ok(TlsVersion::Tls13));
        assert!(parse_version("TLSv1.0").unwrap_err().contains("RFC 8996"));
        let s = parse_ciphersuites("TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256");
        assert_eq!(s.suites, [C::Tls13Aes128GcmSha256]);
        assert_eq!(s.refused, ["TLS_AES_128_CCM_SHA256"]);
        assert_eq!(
            parse_curves("X25519:prime256v1"),
            Ok(vec![KxGroup::X25519, KxGroup::P256])
        );
        assert_eq!(parse_curves("X448"), Err(vec!["X448".to_owned()]));
        assert_eq!(parse_alpn("h2,http/1.1").1, ["h2"]);
        assert_eq!(
            CipherSuite::EcdheRsaAes128GcmSha256.name(),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }
}

/// A client-certificate fetch (`ssl_c_*`) of a `bind ... ssl` with
/// `verify optional|required`, in ACLs and in `%[...]` formats, with
/// HAProxy 2.6's output formats (`tls::client_cert` computes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFetch {
    /// `ssl_c_used`: the client presented a certificate (boolean).
    Used,
    /// `ssl_c_verify`, `ssl_c_err`, `ssl_c_ca_err`: OpenSSL's verification
    /// error numbers. wsgate refuses the handshake whenever verification
    /// fails (HAProxy does too unless `ca-ignore-err`/`crt-ignore-err`,
    /// which wsgate does not have), so on a TLS connection they are 0.
    VerifyError,
    /// `ssl_c_s_dn(...)`: the subject.
    SubjectDn(DnQuery),
    /// `ssl_c_i_dn(...)`: the issuer.
    IssuerDn(DnQuery),
    /// `ssl_c_serial` (binary: the serial number's bytes).
    Serial,
    /// `ssl_c_sha1` (binary: the SHA-1 of the certificate's DER).
    Sha1,
    /// `ssl_c_notbefore`, `ssl_c_notafter`: `YYMMDDhhmmssZ`.
    NotBefore,
    NotAfter,
    /// `ssl_c_version`: 3 for an X.509 v3 certificate.
    Version,
}

/// The `[<entry>[,<occ>[,<format>]]]` arguments of `ssl_c_s_dn` and
/// `ssl_c_i_dn`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnQuery {
    /// `CN`, `O`, `OU`...: the value of that attribute (OpenSSL's short
    /// name, any case) instead of the whole name.
    pub entry: Option<String>,
    /// Which occurrence of `entry`: 1 the first, -1 the last.
    pub occurrence: i64,
    /// `rfc2253`: the whole name as RFC 2253 (LDAP) writes it, instead of
    /// OpenSSL's `/C=../CN=..` one-line form.
    pub rfc2253: bool,
}

impl CertFetch {
    /// Binary samples (`ssl_c_serial`, `ssl_c_sha1`): ACL patterns are
    /// hexadecimal, and formats need `,hex` (HAProxy would copy the raw
    /// bytes, up to the first zero byte, into a header).
    pub fn is_binary(&self) -> bool {
        matches!(self, CertFetch::Serial | CertFetch::Sha1)
    }
}

/// `ssl_c_*` with its parenthesised argument: `None` when `name` is not a
/// client-certificate fetch wsgate knows, `Some(Err)` with the reason
/// when its arguments are wrong or it is one wsgate does not evaluate.
pub fn parse_cert_fetch(name: &str, arg: Option<&str>) -> Option<Result<CertFetch, String>> {
    let no_arg = |f: CertFetch| match arg {
        Some(_) => Err(format!("'{name}' takes no argument")),
        None => Ok(f),
    };
    Some(match name {
        "ssl_c_used" => no_arg(CertFetch::Used),
        "ssl_c_verify" | "ssl_c_err" | "ssl_c_ca_err" => no_arg(CertFetch::VerifyError),
        "ssl_c_serial" => no_arg(CertFetch::Serial),
        "ssl_c_sha1" => no_arg(CertFetch::Sha1),
        "ssl_c_notbefore" => no_arg(CertFetch::NotBefore),
        "ssl_c_notafter" => no_arg(CertFetch::NotAfter),
        "ssl_c_version" => no_arg(CertFetch::Version),
        "ssl_c_s_dn" => dn_query(name, arg).map(CertFetch::SubjectDn),
        "ssl_c_i_dn" => dn_query(name, arg).map(CertFetch::IssuerDn),
        other if other.starts_with("ssl_c_") => Err(format!(
            "'{other}' is not supported (wsgate knows ssl_c_used, ssl_c_verify, ssl_c_err, ssl_c_ca_err, ssl_c_s_dn, ssl_c_i_dn, ssl_c_serial, ssl_c_sha1, ssl_c_notbefore, ssl_c_notafter, ssl_c_version)"
        )),
        _ => return None,
    })
}

fn dn_query(name: &str, arg: Option<&str>) -> Result<DnQuery, String> {
    let mut q = DnQuery {
        entry: None,
        occurrence: 1,
        rfc2253: false,
    };
    let Some(arg) = arg else {
        return Ok(q);
    };
    let mut parts = arg.split(',').map(str::trim);
    if let Some(entry) = parts.next().filter(|e| !e.is_empty()) {
        q.entry = Some(entry.to_owned());
    }
    if let Some(occ) = parts.next().filter(|o| !o.is_empty()) {
        q.occurrence = occ
            .parse()
            .map_err(|_| format!("'{name}': the occurrence '{occ}' is not an integer"))?;
    }
    if let Some(format) = parts.next().filter(|f| !f.is_empty()) {
        if format != "rfc2253" {
            return Err(format!(
                "'{name}': unknown DN format '{format}' (HAProxy knows rfc2253 only)"
            ));
        }
        q.rfc2253 = true;
    }
    if let Some(extra) = parts.next() {
        return Err(format!(
            "'{name}': unexpected argument '{extra}' (usage: {name}([<entry>[,<occ>[,rfc2253]]]))"
        ));
    }
    Ok(q)
}
