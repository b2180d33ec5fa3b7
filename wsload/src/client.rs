//! Connecting: one place that turns `--url`, `--insecure` and `--ca` into
//! WebSocket connections, so every subcommand speaks ws:// and wss:// alike.
//!
//! TLS is rustls with the ring provider, chosen explicitly (never the
//! process default), trusting the webpki roots, plus `--ca` files, or —
//! with `--insecure` — any certificate (signatures are still checked, so
//! the handshake itself is real work, as it would be for a browser).
//!
//! TLS session resumption is off unless `--tls-resume` is given, so every
//! wss connection is a full handshake (the costly case a proxy must carry).
//!
//! `--bind-ips` spreads client sockets over several loopback source
//! addresses (127.0.0.2, 127.0.0.3, …; all of 127/8 is local on Linux),
//! round robin, with `IP_BIND_ADDRESS_NO_PORT` so the kernel picks the port
//! per destination: large `hold` and `churn` runs do not run out of
//! ephemeral ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::{TcpSocket, TcpStream};
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
    /// Source addresses for client sockets, used round robin: a list
    /// (`127.0.0.2,127.0.0.3`) and/or IPv4 ranges (`127.0.0.2-127.0.0.9`).
    #[arg(long, value_name = "IPS", value_parser = parse_ip_list)]
    pub bind_ips: Option<IpList>,
    /// wss: keep TLS sessions and resume them (default: every connection
    /// makes a full handshake).
    #[arg(long)]
    pub tls_resume: bool,
}

/// Parsed `--bind-ips`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList(pub Vec<IpAddr>);

/// Parses `127.0.0.2,127.0.0.5-127.0.0.9,::1` into addresses (ranges of
/// IPv4 only, at most 65,536 addresses in all).
pub fn parse_ip_list(s: &str) -> Result<IpList, String> {
    let mut ips = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| format!("bad IPv4 '{a}'"))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| format!("bad IPv4 '{b}'"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a >= 65_536 {
                return Err(format!("bad range '{part}' (first..=last, at most 65,536)"));
            }
            ips.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
        } else {
            ips.push(
                part.parse()
                    .map_err(|_| format!("bad IP address '{part}'"))?,
            );
        }
        if ips.len() > 65_536 {
            return Err("more than 65,536 addresses".to_owned());
        }
    }
    if ips.is_empty() {
        return Err("no address given".to_owned());
    }
    Ok(IpList(ips))
}

/// Everything needed to open one more connection.
#[derive(Clone)]
pub struct Target {
    request: Request<()>,
    addr: SocketAddr,
    sources: Arc<[IpAddr]>,
    next_source: Arc<AtomicUsize>,
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
        let uri = request.uri();
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .context("--url has no host")?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("wss") {
                443
            } else {
                80
            });
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve '{host}'"))?
            .next()
            .with_context(|| format!("'{host}' has no address"))?;
        let sources: Arc<[IpAddr]> = match &args.bind_ips {
            Some(list) => list.0.clone().into(),
            None => Arc::new([]),
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .max_message_size(Some(64 << 20));
        Ok(Target {
            request,
            addr,
            sources,
            next_source: Arc::new(AtomicUsize::new(0)),
            connector,
            config,
            timeout: args.connect_timeout,
        })
    }

    /// Opens one WebSocket; the error is a short kind for the tally.
    pub async fn connect(&self) -> Result<Ws, String> {
        let attempt = async {
            let stream = self
                .tcp()
                .await
                .map_err(|e| format!("connect: io: {}", e.kind()))?;
            tokio_tungstenite::client_async_tls_with_config(
                self.request.clone(),
                stream,
                Some(self.config),
                self.connector.clone(),
            )
            .await
            .map_err(|e| format!("connect: {}", error_kind(&e)))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(kind)) => Err(kind),
            Err(_) => Err("connect: timeout".to_owned()),
        }
    }

    /// The TCP connection, from the next `--bind-ips` source if any, with
    /// `TCP_NODELAY` (one small message per round trip must not wait).
    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !self.sources.is_empty() {
            let i = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            if let Some(&ip) = self.sources.get(i) {
                bind_address_no_port(&socket);
                socket.bind(SocketAddr::new(ip, 0))?;
            }
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Asks the kernel to choose the source port at connect time (per
/// destination), not at bind time; without it every bound socket takes a
/// port of its own from the ~28,000 ephemeral ones. Best effort: on failure
/// the bind still works, only with fewer ports.
#[cfg(target_os = "linux")]
fn bind_address_no_port(socket: &TcpSocket) {
    use std::os::fd::AsRawFd as _;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn bind_address_no_port(_socket: &TcpSocket) {}

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
    let mut config = config;
    if !args.tls_resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_lists_and_ranges() {
        let l = parse_ip_list("127.0.0.2-127.0.0.4,::1").unwrap();
        assert_eq!(l.0.len(), 4);
        assert_eq!(l.0[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(l.0[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)));
        assert!(parse_ip_list("127.0.0.4-127.0.0.2").is_err());
        assert!(parse_ip_list("x").is_err());
        assert!(parse_ip_list("").is_err());
    }
}
