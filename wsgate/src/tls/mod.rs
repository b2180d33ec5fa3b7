//! TLS termination with rustls: the certificates of `bind ... ssl crt`.
//!
//! Stage: loaded by `proxy::Prepared::new` before anything binds, so a bad
//! certificate is a configuration error at its `bind` line (for `wsgate -c`
//! too); the resulting acceptor is used by the listener for every
//! connection. The ring provider is used (one crypto stack in the build).
//! Protocols: TLS 1.2 and 1.3 only, ALPN `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::model::BindSsl;

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
    #[error("several `crt` on one bind (SNI selection) are not supported yet; keep one")]
    SeveralCertificates,
}

impl TlsError {
    /// What the user can do about it, for the diagnostic's hint line.
    pub fn hint(&self) -> Option<String> {
        match self {
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

/// Builds the rustls configuration for one `bind ... ssl`.
pub fn server_config(ssl: &BindSsl) -> Result<Arc<ServerConfig>, TlsError> {
    let [crt] = ssl.crt.as_slice() else {
        return Err(TlsError::SeveralCertificates);
    };
    let certs = load_certificates(crt)?;
    let key = load_key(crt)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| rejected(crt, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| rejected(crt, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn rejected(path: &Path, e: rustls::Error) -> TlsError {
    TlsError::Rejected {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    // Read once to tell "missing file" apart from "no certificate inside".
    let pem = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The key is in the same PEM, or else in `<file>.key` (HAProxy's rule).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    if let Ok(key) = PrivateKeyDer::from_pem_file(path) {
        return Ok(key);
    }
    let mut key_path = path.as_os_str().to_owned();
    key_path.push(".key");
    PrivateKeyDer::from_pem_file(Path::new(&key_path)).map_err(|_| TlsError::NoKey {
        path: path.to_owned(),
    })
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

    fn ssl(path: &Path) -> BindSsl {
        BindSsl {
            crt: vec![path.to_owned()],
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
        assert!(matches!(
            server_config(&ssl(&cert_only)),
            Err(TlsError::NoKey { .. })
        ));
        std::fs::write(dir.join("split.pem.key"), &pem[split..]).unwrap();
        assert!(server_config(&ssl(&cert_only)).is_ok());

        assert!(matches!(
            server_config(&ssl(&dir.join("missing.pem"))),
            Err(TlsError::Read { .. })
        ));
        assert_eq!(sha256_fingerprint(&pem).unwrap().len(), 32 * 3 - 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
