//! TLS to servers: `server ... ssl [verify none|required] [ca-file <pem>]
//! [sni <expr>] [alpn <list>] [crt <pem>]`, so `wss://` backends work,
//! mutual TLS included; health checks with `check-ssl` use the same
//! settings.
//!
//! HAProxy semantics: verification is on by default (`verify required`,
//! which needs `ca-file`); without `sni` no name is sent and only the chain
//! is verified (HAProxy checks the name only with `verifyhost` or `sni`).
//! rustls always wants a name to verify against, so without `sni` the
//! server's IP address is given (rustls sends no SNI for an IP address) and
//! a name mismatch is forgiven. `verify none` accepts any certificate but
//! still checks the handshake signatures.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::TlsError;
use crate::config::model::{ServerSsl, SniExpr};

/// The TLS settings of one server, ready for connections.
#[derive(Debug)]
pub struct ServerTls {
    pub config: Arc<ClientConfig>,
    sni: Option<SniExpr>,
}

impl ServerTls {
    pub fn new(ssl: &ServerSsl) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(crate::tls::crypto::default_provider());
        let webpki = match (&ssl.ca_file, ssl.verify) {
            (_, false) => None,
            (Some(ca), true) => Some(webpki_verifier(ca, &provider)?),
            // The config check already refuses this; stay safe anyway.
            (None, true) => {
                return Err(TlsError::Rejected {
                    path: Default::default(),
                    reason: "`verify required` needs a `ca-file`".into(),
                })
            }
        };
        let verifier = Verifier {
            webpki,
            check_name: ssl.sni.is_some(),
            provider: provider.clone(),
        };
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Rejected {
                path: Default::default(),
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match &ssl.crt {
            None => config.with_no_client_auth(),
            Some(crt) => {
                let key = super::store::load_client_identity(crt, &provider, super::unix_now())?;
                config.with_client_cert_resolver(Arc::new(ClientIdentity(key)))
            }
        };
        // The upgrade is HTTP/1.1; `alpn` may name other protocols (`h2`
        // was left out by the configuration check).
        config.alpn_protocols = if ssl.alpn.is_empty() {
            vec![b"http/1.1".to_vec()]
        } else {
            ssl.alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
        };
        Ok(ServerTls {
            config: Arc::new(config),
            sni: ssl.sni.clone(),
        })
    }

    /// The name to send and verify: `sni str(x)` → x; `sni req.hdr(h)` →
    /// that request header without its port (when the request has it);
    /// otherwise the server's address, which sends no SNI.
    pub fn server_name(
        &self,
        addr: IpAddr,
        header: impl Fn(&str) -> Option<String>,
    ) -> ServerName<'static> {
        let name = match &self.sni {
            Some(SniExpr::Str(s)) => Some(s.clone()),
            Some(SniExpr::ReqHdr(h)) => header(h).map(|v| strip_port(&v).to_owned()),
            None => None,
        };
        name.and_then(|n| ServerName::try_from(n).ok())
            .unwrap_or(ServerName::IpAddress(addr.into()))
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[v6]:port` or `[v6]`
        return rest.split_once(']').map_or(host, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        // No port, or a bare IPv6 address.
        _ => host,
    }
}

fn webpki_verifier(
    ca: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let roots = super::ca_roots(ca)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Read {
            path: ca.to_owned(),
            reason: e.to_string(),
        })
}

/// `crt`: the one certificate offered whenever a server asks, as
/// OpenSSL's `SSL_CTX_use_certificate` in HAProxy (no selection by the
/// server's accepted CAs or schemes).
#[derive(Debug)]
struct ClientIdentity(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `verify required` (with or without a name check) or `verify none`.
#[derive(Debug)]
struct Verifier {
    /// `None`: `verify none`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// `sni` was given: the name must match too.
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_host_headers() {
        assert_eq!(strip_port("example.com:8443"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8443"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }
}
