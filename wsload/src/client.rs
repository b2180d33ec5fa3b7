//! Connecting: one place that turns `--url`, `--insecure` and `--ca` into
//! WebSocket connections, so every subcommand speaks ws:// and wss:// alike.
//!
//! TLS is rustls with the ring provider, chosen explicitly (never the
//! process default), trusting the webpki roots, plus `--ca` files, or —
//! with `--insecure` — any certificate (signatures are still checked, so
//! the handshake itself is real work, as it would be for a browser).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connection options shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// WebSocket URL: ws://host:port/path or wss://...
    #[arg(long)]
    pub url: String,
    /// wss: accept any server certificate (self-signed demo and test certs).
    #[arg(long)]
    pub insecure: bool,
    /// wss: also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Give up on a connection attempt (TCP + TLS + upgrade) after this long.
    #[arg(long, default_value = "10s", value_parser = crate::stats::parse_duration)]
    pub connect_timeout: Duration,
}

/// Everything needed to open one more connection.
#[derive(Clone)]
pub struct Target {
    request: Request<()>,
    connector: Option<Connector>,
    config: WebSocketConfig,
    timeout: Duration,
}

impl Target {
    /// Validates the URL and builds the TLS configuration once.
    /// `read_buffer` is tungstenite's per-connection read buffer: small for
    /// idle connections, larger for throughput.
    pub fn new(args: &TargetArgs, read_buffer: usize) -> anyhow::Result<Target> {
        let request = args
            .url
            .as_str()
            .into_client_request()
            .with_context(|| format!("bad --url '{}'", args.url))?;
        let connector = match request.uri().scheme_str() {
            Some("wss") => Some(Connector::Rustls(Arc::new(tls_config(args)?))),
            Some("ws") => {
                if args.insecure || args.ca.is_some() {
                    eprintln!("wsload: --insecure/--ca have no effect on a ws:// URL");
                }
                Some(Connector::Plain)
            }
            _ => anyhow::bail!("--url must start with ws:// or wss://"),
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .max_message_size(Some(64 << 20));
        Ok(Target {
            request,
            connector,
            config,
            timeout: args.connect_timeout,
        })
    }

    /// Opens one WebSocket; the error is a short kind for the tally.
    pub async fn connect(&self) -> Result<Ws, String> {
        let attempt = tokio_tungstenite::connect_async_tls_with_config(
            self.request.clone(),
            Some(self.config),
            true,
            self.connector.clone(),
        );
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(e)) => Err(format!("connect: {}", error_kind(&e))),
            Err(_) => Err("connect: timeout".to_owned()),
        }
    }
}

/// A short, countable description of a tungstenite error (no addresses or
/// per-connection details, so identical failures tally together).
pub fn error_kind(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) => format!("io: {}", io.kind()),
        Error::Http(resp) => format!("http status {}", resp.status().as_u16()),
        Error::Tls(t) => format!("tls: {t}"),
        Error::ConnectionClosed | Error::AlreadyClosed => "connection closed".to_owned(),
        other => other.to_string(),
    }
}

fn tls_config(args: &TargetArgs) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?;
    let config = if args.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &args.ca {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read --ca {}", path.display()))?;
            for cert in certs {
                let cert = cert.with_context(|| format!("bad PEM in {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("unusable certificate in {}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// `--insecure`: any certificate is accepted, but the handshake signature is
/// still verified with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
