//! The client certificate's `ssl_c_*` fetches, in HAProxy 2.6's output
//! formats, computed from the certificate's DER when a rule asks (nothing
//! is parsed for connections whose rules do not read them).
//!
//! Formats, as HAProxy's `ssl_utils.c` writes them with OpenSSL:
//! - a distinguished name is OpenSSL's one-line form, `/C=FR/O=Acme/CN=x`,
//!   in certificate order, each value's bytes as stored; `rfc2253` gives
//!   RFC 2253's `CN=x,O=Acme,C=FR` (reversed, escaped, non-ASCII as
//!   `\XX`); `(CN)` gives one attribute's value (short name, any case;
//!   occurrence 1 the first, -1 the last);
//! - the serial number is its bytes (no sign padding), SHA-1 the digest of
//!   the DER: binary, written in hex by `,hex` (uppercase);
//! - dates are `YYMMDDhhmmssZ` (HAProxy cuts the century off a
//!   GeneralizedTime, and gives nothing outside 2000-2099).

use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::config::model::{CertFetch, DnQuery};

/// A fetch's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertValue {
    Bool(bool),
    Int(i64),
    /// Text (a name, a date) or, for binary fetches, raw bytes.
    Bytes(Vec<u8>),
}

/// `fetch` on a TLS connection whose client sent `leaf` (DER; `None`: no
/// certificate). `None` when the fetch finds nothing.
pub fn value(fetch: &CertFetch, leaf: Option<&[u8]>) -> Option<CertValue> {
    match fetch {
        CertFetch::Used => return Some(CertValue::Bool(leaf.is_some())),
        CertFetch::VerifyError => return Some(CertValue::Int(0)),
        _ => {}
    }
    let der = leaf?;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let bytes = |v: Vec<u8>| Some(CertValue::Bytes(v));
    match fetch {
        CertFetch::SubjectDn(q) => dn(cert.subject(), q).and_then(bytes),
        CertFetch::IssuerDn(q) => dn(cert.issuer(), q).and_then(bytes),
        CertFetch::Serial => bytes(serial(cert.raw_serial())),
        CertFetch::Sha1 => bytes(
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
                .as_ref()
                .to_vec(),
        ),
        CertFetch::NotBefore => time(cert.validity().not_before.timestamp()).and_then(bytes),
        CertFetch::NotAfter => time(cert.validity().not_after.timestamp()).and_then(bytes),
        CertFetch::Version => Some(CertValue::Int(i64::from(cert.version().0) + 1)),
        CertFetch::Used | CertFetch::VerifyError => None,
    }
}

/// A value as text in a header (`%[...]`): booleans `1`/`0`, integers in
/// decimal, binary values in uppercase hex (the `,hex` the format must
/// have said).
pub fn text(v: CertValue, binary: bool) -> Vec<u8> {
    match v {
        CertValue::Bool(b) => if b { b"1" } else { b"0" }.to_vec(),
        CertValue::Int(n) => n.to_string().into_bytes(),
        CertValue::Bytes(b) if binary => hex(&b).into_bytes(),
        CertValue::Bytes(b) => b,
    }
}

/// Uppercase hex, as HAProxy's `hex` converter.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The serial's DER content without the sign byte (OpenSSL keeps the
/// magnitude only).
fn serial(raw: &[u8]) -> Vec<u8> {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].to_vec()
}

/// `YYMMDDhhmmssZ`, for years 2000 to 2099.
fn time(unix: i64) -> Option<Vec<u8>> {
    let (y, mo, d, h, mi, s) = super::checks::civil(unix);
    (2000..2100)
        .contains(&y)
        .then(|| format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).into_bytes())
}

/// OpenSSL's short name of an attribute type (`OBJ_nid2sn`), or its
/// dotted OID when OpenSSL has none.
fn short_name(oid: &str) -> String {
    let known = match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        other => return other.to_owned(),
    };
    known.to_owned()
}

/// A name as `q` asks: one entry's value, the RFC 2253 form, or the
/// one-line form.
fn dn(name: &X509Name<'_>, q: &DnQuery) -> Option<Vec<u8>> {
    let attributes: Vec<(String, Tag, &[u8])> = name
        .iter_attributes()
        .map(|a| {
            let v = a.attr_value();
            (short_name(&a.attr_type().to_id_string()), v.tag(), v.data)
        })
        .collect();
    if let Some(entry) = &q.entry {
        let matching = attributes
            .iter()
            .filter(|(n, _, _)| n.eq_ignore_ascii_case(entry));
        let found = match q.occurrence {
            0 => None,
            n if n > 0 => matching.clone().nth(usize::try_from(n - 1).ok()?),
            n => matching.rev().nth(usize::try_from(-n - 1).ok()?),
        };
        return found.map(|(_, _, v)| v.to_vec());
    }
    if q.rfc2253 {
        return Some(rfc2253(name).into_bytes());
    }
    let mut out = Vec::new();
    for (n, _, v) in &attributes {
        out.push(b'/');
        out.extend_from_slice(n.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
    }
    Some(out)
}

/// RFC 2253 as OpenSSL's `XN_FLAG_RFC2253`: the RDNs last first, `,`
/// between them and `+` inside one, values converted to UTF-8 and escaped
/// (`,+"\<>;`, a leading `#` or space, a trailing space with `\`; control
/// and non-ASCII bytes as `\XX`), a value that is no string as `#` and
/// its DER in hex.
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    let v = a.attr_value();
                    let key = short_name(&a.attr_type().to_id_string());
                    let value = match utf8_of(v.tag(), v.data) {
                        Some(text) => escape_2253(&text),
                        None => format!("#{}", hex(&der_of(v.tag(), v.data))),
                    };
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// A string value as UTF-8 bytes (`None`: not a string type).
fn utf8_of(tag: Tag, data: &[u8]) -> Option<Vec<u8>> {
    match tag {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::TeletexString
        | Tag::VisibleString => Some(data.to_vec()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units).into_bytes())
        }
        Tag::UniversalString => Some(
            data.chunks_exact(4)
                .filter_map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<String>()
                .into_bytes(),
        ),
        _ => None,
    }
}

/// The DER of a value from its tag and content (short or long length).
fn der_of(tag: Tag, data: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(tag.0).unwrap_or(0)];
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(data);
    out
}

fn escape_2253(value: &[u8]) -> String {
    let mut out = String::new();
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && matches!(b, b'#' | b' '))
            || (i == last && b == b' ');
        if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else {
            if special {
                out.push('\\');
            }
            out.push(char::from(b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn q(entry: Option<&str>, occurrence: i64, rfc2253: bool) -> DnQuery {
        DnQuery {
            entry: entry.map(str::to_owned),
            occurrence,
            rfc2253,
        }
    }

    fn leaf() -> Vec<u8> {
        let mut p = CertificateParams::new(vec!["alice.example.com".to_owned()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CountryName, "FR");
        p.distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "Ops");
        p.distinguished_name.push(DnType::CommonName, "Élise #1 ");
        p.serial_number = Some(rcgen::SerialNumber::from(vec![0x00, 0xAB, 0x01]));
        p.not_before = rcgen::date_time_ymd(2020, 1, 2);
        p.not_after = rcgen::date_time_ymd(2090, 3, 4);
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn bytes(f: CertFetch, der: &[u8]) -> Vec<u8> {
        match value(&f, Some(der)) {
            Some(CertValue::Bytes(b)) => b,
            other => panic!("{f:?}: {other:?}"),
        }
    }

    #[test]
    fn names_in_openssl_and_rfc2253_forms() {
        let der = leaf();
        let text = |f| String::from_utf8(bytes(f, &der)).unwrap();
        assert_eq!(
            text(CertFetch::SubjectDn(q(None, 1, false))),
            "/C=FR/O=Acme, Inc./OU=Ops/CN=Élise #1 "
        );
        assert_eq!(
            text(CertFetch::SubjectDn(q(None, 1, true))),
            "CN=\\C3\\89lise #1\\ ,OU=Ops,O=Acme\\, Inc.,C=FR"
        );
        assert_eq!(
            text(CertFetch::SubjectDn(q(Some("cn"), 1, false))),
            "Élise #1 "
        );
        assert_eq!(
            text(CertFetch::SubjectDn(q(Some("O"), -1, false))),
            "Acme, Inc."
        );
        assert_eq!(
            value(&CertFetch::SubjectDn(q(Some("O"), 2, false)), Some(&der)),
            None
        );
        assert_eq!(
            value(&CertFetch::SubjectDn(q(Some("O"), 0, false)), Some(&der)),
            None
        );
        // Self-signed: the issuer is the subject.
        assert_eq!(text(CertFetch::IssuerDn(q(Some("OU"), 1, false))), "Ops");
    }

    #[test]
    fn serial_digest_dates_version() {
        let der = leaf();
        assert_eq!(bytes(CertFetch::Serial, &der), [0xAB, 0x01]);
        assert_eq!(bytes(CertFetch::Sha1, &der).len(), 20);
        assert_eq!(bytes(CertFetch::NotBefore, &der), b"200102000000Z");
        assert_eq!(bytes(CertFetch::NotAfter, &der), b"900304000000Z");
        assert_eq!(
            value(&CertFetch::Version, Some(&der)),
            Some(CertValue::Int(3))
        );
        assert_eq!(value(&CertFetch::Used, None), Some(CertValue::Bool(false)));
        assert_eq!(
            value(&CertFetch::VerifyError, None),
            Some(CertValue::Int(0))
        );
        assert_eq!(value(&CertFetch::Serial, None), None);
        assert_eq!(text(CertValue::Bytes(vec![0xAB, 0x01]), true), b"AB01");
        assert_eq!(text(CertValue::Bool(true), false), b"1");
    }
}
