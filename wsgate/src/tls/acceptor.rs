//! Accepting a client handshake with the bind's rustls configuration, or,
//! when a `crt-list` line has options (`[ssl-min-ver TLSv1.3 ...]`), with
//! the configuration of the certificate the ClientHello's SNI selects.
//!
//! Stage: the listener calls [`Acceptor::accept`] once per connection.
//! Without per-certificate options this is tokio-rustls' acceptor with one
//! `ServerConfig`, as before. With them, the ClientHello is read first
//! (rustls' `Acceptor`), the SNI resolver picks the certificate, and the
//! handshake goes on with that certificate's configuration. As HAProxy
//! does, options apply when the SNI selects the certificate; a handshake
//! that falls back to the default certificate (no or unknown SNI) gets the
//! bind's settings.
//!
//! The certificate is chosen here from the ClientHello's signature schemes
//! as sent; inside the handshake rustls narrows a TLS 1.2 client's schemes
//! to its suites and the resolver chooses again. The two differ only for a
//! name with an RSA and an ECDSA certificate on crt-list lines with
//! different options, offered by a TLS 1.2 client with ECDSA schemes but
//! only RSA suites: it gets the RSA certificate under the ECDSA line's
//! options.

use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use super::store::SniResolver;

/// The TLS side of one `bind ... ssl`, shared by its listeners.
#[derive(Clone)]
pub struct Acceptor {
    default: TlsAcceptor,
    per_certificate: Option<Arc<PerCertificate>>,
}

/// The configurations of the certificates with crt-list options.
pub(super) struct PerCertificate {
    pub resolver: Arc<SniResolver>,
    /// By certificate index (load order): `None` uses the bind's.
    pub configs: Vec<Option<Arc<ServerConfig>>>,
}

impl Acceptor {
    pub(super) fn new(
        default: Arc<ServerConfig>,
        per_certificate: Option<PerCertificate>,
    ) -> Acceptor {
        Acceptor {
            default: TlsAcceptor::from(default),
            per_certificate: per_certificate.map(Arc::new),
        }
    }

    /// The bind's own configuration (the demo and unit tests use it).
    pub fn config(&self) -> &Arc<ServerConfig> {
        self.default.config()
    }

    /// Runs the server side of the handshake on `io`.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(per) = &self.per_certificate else {
            return self.default.accept(io).await;
        };
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let hello = start.client_hello();
        let chosen = per
            .resolver
            .matched(hello.server_name(), hello.signature_schemes())
            .and_then(|i| per.configs.get(i).cloned().flatten());
        let config = chosen.unwrap_or_else(|| self.default.config().clone());
        start.into_stream(config).await
    }
}
