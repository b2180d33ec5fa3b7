//! TLS with rustls: the certificates, versions and ciphers of
//! `bind ... ssl`.
//!
//! Stage: [`load_bind`] runs in `proxy::Prepared::new` before anything
//! binds, so a bad certificate is a diagnostic at its `bind` line (for
//! `wsgate -c` too, which also lists every certificate loaded as a
//! `note:`); the resulting `ServerConfig` is shared by the listener's
//! threads. The crypto stack is ring, or aws-lc-rs when built with the
//! `aws-lc-rs` feature ([`crypto`]; docs/performance.md compares them).
//! Submodules: `store` (files, directories, crt-list, SNI resolver),
//! `list_options` (a crt-list line's `[...]`), `acceptor` (the handshake,
//! with a certificate's own configuration when it has options), `checks`
//! (what a certificate says and what is wrong with it).
//!
//! Defaults, as HAProxy 2.6 with OpenSSL 3 where rustls allows: TLS 1.2
//! and 1.3, ECDHE with AEAD suites only, the server's suite order, ALPN
//! `http/1.1`, resumption by session id (a 20000-entry cache, HAProxy's
//! `tune.ssl.cachesize`) and by tickets (off with `no-tls-tickets`).

pub mod acceptor;
pub mod checks;
pub mod client;
pub mod client_cert;
pub mod hello;
mod list_options;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;

/// The rustls crypto provider every TLS configuration is built with.
#[cfg(feature = "aws-lc-rs")]
pub use rustls::crypto::aws_lc_rs as crypto;
/// The rustls crypto provider every TLS configuration is built with.
#[cfg(not(feature = "aws-lc-rs"))]
pub use rustls::crypto::ring as crypto;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::config::model::{
    BindSsl, CipherSuite, ClientAuth, KxGroup, Location, TlsSettings, TlsVersion,
};
use crate::config::Diagnostic;
pub use acceptor::Acceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file '{path}': {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("no certificate found in '{0}'")]
    NoCertificate(PathBuf),
    #[error("no private key in '{path}' nor in '{path}.key'")]
    NoKey { path: PathBuf },
    #[error("'{path}': {reason}")]
    Rejected { path: PathBuf, reason: String },
    #[error("'{0}': the private key does not belong to the certificate")]
    KeyMismatch(PathBuf),
    #[error("{0}")]
    Config(String),
}

impl TlsError {
    /// What the user can do about it, for the diagnostic's hint line.
    pub fn hint(&self) -> Option<String> {
        match self {
            TlsError::KeyMismatch(_) => Some(
                "the key in the PEM (or in <file>.key) must be the one the certificate was issued for; \
                 compare `openssl x509 -noout -pubkey -in <file>` with `openssl pkey -pubout -in <key>`"
                    .to_owned(),
            ),
            TlsError::Read { .. } | TlsError::NoCertificate(_) | TlsError::NoKey { .. } => Some(
                "`crt` takes a PEM file with the certificate, its chain and the private key \
                 (or the key in <file>.key); a self-signed one for testing: \
                 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                 -subj /CN=localhost -keyout site.pem -out site.pem"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// Session cache entries, as HAProxy's `tune.ssl.cachesize` default.
const SESSION_CACHE: usize = 20_000;

/// One `bind ... ssl` loaded: its acceptor (`None` after an error) and
/// what to report at the bind line (notes, warnings, errors).
pub struct BindTls {
    pub acceptor: Option<Acceptor>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Loads the certificates of one `bind ... ssl` written at `at` and builds
/// its rustls configuration.
pub fn load_bind(ssl: &BindSsl, at: &Location) -> BindTls {
    let now = unix_now();
    let provider = provider(&ssl.settings);
    let store = store::load(ssl, &provider, now);
    let mut diagnostics = Vec::new();
    for c in &store.certs {
        let names = if c.info.names.is_empty() {
            "no DNS names".to_owned()
        } else {
            c.info.names.join(", ")
        };
        let days = (c.info.not_after - now) / 86_400;
        let soon = if days < 365 {
            format!(" (in {days} days)")
        } else {
            String::new()
        };
        diagnostics.push(Diagnostic::note(
            at.clone(),
            format!(
                "certificate '{}': {names}; {}; expires {}{soon}",
                shown(&c.path),
                c.info.key,
                checks::date(c.info.not_after)
            ),
        ));
    }
    for p in &store.problems {
        let location = p.location.clone().unwrap_or_else(|| at.clone());
        let mut d = if p.error {
            Diagnostic::error(location, p.message.clone())
        } else {
            Diagnostic::warning(location, p.message.clone())
        };
        d.hint = p.hint.clone();
        diagnostics.push(d);
    }
    let failed = |mut diagnostics: Vec<Diagnostic>, message: String| {
        diagnostics.push(Diagnostic::error(at.clone(), message));
        BindTls {
            acceptor: None,
            diagnostics,
        }
    };
    if store.problems.iter().any(|p| p.error) {
        return BindTls {
            acceptor: None,
            diagnostics,
        };
    }
    let Some(resolver) = store.resolver(ssl.strict_sni) else {
        return failed(diagnostics, "no certificate loaded for this bind".into());
    };
    let resolver = Arc::new(resolver);
    let default = match build_config(ssl, provider, resolver.clone()) {
        Ok(config) => config,
        Err(e) => return failed(diagnostics, e.to_string()),
    };
    match per_certificate(ssl, &store, &resolver) {
        Ok(per) => BindTls {
            acceptor: Some(Acceptor::new(
                default,
                per.map(|configs| acceptor::PerCertificate { resolver, configs }),
            )),
            diagnostics,
        },
        Err(message) => failed(diagnostics, message),
    }
}

/// The configurations of the certificates whose crt-list line has
/// options, by certificate index, one per distinct set of options;
/// `None` when no line has any.
fn per_certificate(
    ssl: &BindSsl,
    store: &store::Store,
    resolver: &Arc<store::SniResolver>,
) -> Result<Option<Vec<Option<Arc<ServerConfig>>>>, String> {
    let mut built: Vec<(&store::LineOptions, Arc<ServerConfig>)> = Vec::new();
    let mut configs = Vec::with_capacity(store.options.len());
    for (options, cert) in store.options.iter().zip(&store.certs) {
        let Some(options) = options else {
            configs.push(None);
            continue;
        };
        if let Some((_, c)) = built.iter().find(|(o, _)| *o == options) {
            configs.push(Some(c.clone()));
            continue;
        }
        let with = BindSsl {
            settings: options.settings.clone(),
            client_auth: options.client_auth.clone(),
            ..ssl.clone()
        };
        let c = build_config(&with, provider(&options.settings), resolver.clone())
            .map_err(|e| format!("crt-list options of '{}': {e}", shown(&cert.path)))?;
        built.push((options, c.clone()));
        configs.push(Some(c));
    }
    Ok((!built.is_empty()).then_some(configs))
}

/// A path as the user most likely wrote it: relative to the working
/// directory when under it.
pub fn shown(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
}

/// The rustls configuration of one `bind ... ssl`, or its first error
/// (for callers without a configuration line: the demo, tests).
pub fn server_config(ssl: &BindSsl) -> Result<Arc<ServerConfig>, TlsError> {
    let at = Location {
        file: Arc::from("-"),
        line: 0,
        col: 0,
    };
    let loaded = load_bind(ssl, &at);
    match loaded.acceptor {
        Some(a) => Ok(a.config().clone()),
        None => Err(TlsError::Config(
            loaded
                .diagnostics
                .into_iter()
                .find(|d| d.is_error())
                .map_or_else(|| "TLS configuration failed".to_owned(), |d| d.message),
        )),
    }
}

/// The ring provider restricted to the configured suites and groups.
fn provider(settings: &TlsSettings) -> rustls::crypto::CryptoProvider {
    use crypto::{cipher_suite as cs, kx_group};
    let mut p = crypto::default_provider();
    let suite = |s: CipherSuite| match s {
        CipherSuite::Tls13Aes128GcmSha256 => cs::TLS13_AES_128_GCM_SHA256,
        CipherSuite::Tls13Aes256GcmSha384 => cs::TLS13_AES_256_GCM_SHA384,
        CipherSuite::Tls13Chacha20Poly1305Sha256 => cs::TLS13_CHACHA20_POLY1305_SHA256,
        CipherSuite::EcdheEcdsaAes128GcmSha256 => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::EcdheEcdsaAes256GcmSha384 => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::EcdheEcdsaChacha20Poly1305 => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        CipherSuite::EcdheRsaAes128GcmSha256 => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::EcdheRsaAes256GcmSha384 => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::EcdheRsaChacha20Poly1305 => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    };
    if settings.ciphers.is_some() || settings.ciphersuites.is_some() {
        let tls13 = settings
            .ciphersuites
            .clone()
            .unwrap_or_else(CipherSuite::all_tls13);
        let tls12 = settings
            .ciphers
            .clone()
            .unwrap_or_else(CipherSuite::all_tls12);
        p.cipher_suites = tls13.into_iter().chain(tls12).map(suite).collect();
    }
    if let Some(curves) = &settings.curves {
        p.kx_groups = curves
            .iter()
            .map(|g| match g {
                KxGroup::X25519 => kx_group::X25519,
                KxGroup::P256 => kx_group::SECP256R1,
                KxGroup::P384 => kx_group::SECP384R1,
            })
            .collect();
    }
    p
}

fn build_config(
    ssl: &BindSsl,
    provider: rustls::crypto::CryptoProvider,
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let settings = &ssl.settings;
    let provider = Arc::new(provider);
    let min = settings.min_ver.unwrap_or(TlsVersion::Tls12);
    let max = settings.max_ver.unwrap_or(TlsVersion::Tls13);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if min <= TlsVersion::Tls13 && max >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(format!("TLS settings rejected: {e}")))?;
    let builder = match &ssl.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => builder.with_client_cert_verifier(client_verifier(auth, &provider)?),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = !settings.prefer_client_ciphers;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    if !settings.no_tls_tickets {
        config.ticketer = crypto::Ticketer::new()
            .map_err(|e| TlsError::Config(format!("cannot create the TLS ticket key: {e}")))?;
    }
    Ok(Arc::new(config))
}

/// The certificates of a `ca-file` (on a `bind` for clients, on a
/// `server` for servers) as trust anchors; an empty file is an error.
pub fn ca_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, TlsError> {
    let read = |reason: String| TlsError::Read {
        path: path.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| read(e.to_string()))? {
        roots
            .add(cert.map_err(|e| read(e.to_string()))?)
            .map_err(|e| read(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(roots)
}

/// `verify optional|required` with `ca-file`: rustls' WebPKI verifier
/// over the CAs in the file (chain and validity dates checked, as
/// OpenSSL's verification in HAProxy), with the CRLs of `crl-file`.
fn client_verifier(
    auth: &ClientAuth,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let roots = ca_roots(&auth.ca_file)?;
    let read = |reason: String| TlsError::Read {
        path: auth.ca_file.clone(),
        reason,
    };
    let mut builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    if let Some(crl_path) = &auth.crl_file {
        let crl_err = |reason: String| TlsError::Read {
            path: crl_path.clone(),
            reason,
        };
        let crls = CertificateRevocationListDer::pem_file_iter(crl_path)
            .map_err(|e| crl_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crl_err(e.to_string()))?;
        if crls.is_empty() {
            return Err(crl_err("no X509 CRL found in the file".into()));
        }
        // rustls-webpki's defaults: every certificate of the chain must
        // have a CRL (unknown status is refused), OpenSSL's
        // `X509_V_FLAG_CRL_CHECK_ALL`, which HAProxy sets.
        builder = builder.with_crls(crls);
    }
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| read(e.to_string()))
}

/// What a finished client handshake says, for the PROXY protocol's SSL
/// TLV (`send-proxy-v2-ssl[-cn]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// OpenSSL's name for the version: `TLSv1.3`, `TLSv1.2`.
    pub version: &'static str,
    /// OpenSSL's name for the suite.
    pub cipher: Option<&'static str>,
    pub alpn: Option<Vec<u8>>,
    pub sni: Option<String>,
    /// The client certificate, when one was given (it verified).
    pub client_cert: bool,
    /// Its subject CN.
    pub client_cn: Option<String>,
    /// The certificate itself (DER), for the `ssl_c_*` fetches.
    pub client_leaf: Option<CertificateDer<'static>>,
}

impl Handshake {
    pub fn of(conn: &rustls::ServerConnection) -> Handshake {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLSv1.3",
        };
        let leaf = conn.peer_certificates().and_then(|c| c.first());
        Handshake {
            version,
            cipher: conn
                .negotiated_cipher_suite()
                .and_then(|s| openssl_cipher_name(s.suite())),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            sni: conn.server_name().map(str::to_owned),
            client_cert: leaf.is_some(),
            client_cn: leaf.and_then(|c| checks::subject_cn(c.as_ref())),
            client_leaf: leaf.map(|c| c.clone().into_owned()),
        }
    }
}

/// A client's failed handshake in the words of HAProxy's log ("SSL
/// handshake failure", "Connection closed during SSL handshake"), with
/// what the client did in parentheses, not only what rustls saw (plain
/// HTTP on a TLS port is the common case).
pub fn handshake_failure(e: &std::io::Error) -> String {
    use rustls::{Error as E, InvalidMessage};
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "Connection closed during SSL handshake".to_owned();
    }
    let why = match e.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        Some(E::InvalidMessage(InvalidMessage::InvalidContentType)) => {
            "the client does not speak TLS: not a TLS record (plain HTTP or another protocol \
             sent to a TLS port?)"
                .to_owned()
        }
        Some(E::InvalidMessage(m)) => format!("malformed handshake message: {m:?}"),
        Some(E::PeerIncompatible(p)) => {
            format!("nothing in common with the client's offer: {p:?}")
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    };
    format!("SSL handshake failure ({why})")
}

/// The OpenSSL name of a suite wsgate offers.
fn openssl_cipher_name(suite: rustls::CipherSuite) -> Option<&'static str> {
    use rustls::CipherSuite as R;
    let ours = match suite {
        R::TLS13_AES_128_GCM_SHA256 => CipherSuite::Tls13Aes128GcmSha256,
        R::TLS13_AES_256_GCM_SHA384 => CipherSuite::Tls13Aes256GcmSha384,
        R::TLS13_CHACHA20_POLY1305_SHA256 => CipherSuite::Tls13Chacha20Poly1305Sha256,
        R::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => CipherSuite::EcdheEcdsaAes128GcmSha256,
        R::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => CipherSuite::EcdheEcdsaAes256GcmSha384,
        R::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => CipherSuite::EcdheEcdsaChacha20Poly1305,
        R::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => CipherSuite::EcdheRsaAes128GcmSha256,
        R::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => CipherSuite::EcdheRsaAes256GcmSha384,
        R::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => CipherSuite::EcdheRsaChacha20Poly1305,
        _ => return None,
    };
    Some(ours.name())
}

/// A self-signed certificate for `names`, as one PEM (certificate then
/// key), the format `crt` takes. For the demo and for tests.
pub fn self_signed_pem(names: &[&str]) -> Result<String, rcgen::Error> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok(format!(
        "{}{}",
        certified.cert.pem(),
        certified.signing_key.serialize_pem()
    ))
}

/// SHA-256 fingerprint of the first certificate in a PEM, as colon-separated
/// hex (what browsers show).
pub fn sha256_fingerprint(pem: &str) -> Option<String> {
    let cert = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    Some(
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ssl(path: &Path) -> BindSsl {
        BindSsl::with_crt(vec![path.to_owned()])
    }

    fn error_of(path: &Path) -> String {
        match server_config(&ssl(path)) {
            Err(e) => e.to_string(),
            Ok(_) => "loaded".into(),
        }
    }

    #[test]
    fn loads_combined_pem_and_separate_key() {
        let dir = std::env::temp_dir().join(format!("wsgate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = self_signed_pem(&["localhost"]).unwrap();
        let both = dir.join("both.pem");
        std::fs::write(&both, &pem).unwrap();
        assert!(server_config(&ssl(&both)).is_ok());

        let split = pem.find("-----BEGIN PRIVATE KEY").unwrap();
        let cert_only = dir.join("split.pem");
        std::fs::write(&cert_only, &pem[..split]).unwrap();
        assert!(error_of(&cert_only).contains("no private key"));
        std::fs::write(dir.join("split.pem.key"), &pem[split..]).unwrap();
        assert!(server_config(&ssl(&cert_only)).is_ok());

        assert!(error_of(&dir.join("missing.pem")).contains("cannot read"));
        assert_eq!(sha256_fingerprint(&pem).unwrap().len(), 32 * 3 - 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
