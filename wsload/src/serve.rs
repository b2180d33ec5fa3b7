//! `wsload serve`: a minimal, fast WebSocket echo server, the backend for
//! the benchmark (so the backend is never what limits a proxy's figures).
//!
//! Every text or binary message is sent back unchanged; pings are answered
//! and a close is returned by tungstenite. Plain listeners (`--listen`,
//! repeatable) and TLS listeners (`--listen-tls` with `--cert`, for the
//! benchmark's "direct" wss floor) share one runtime. Runs until SIGINT or
//! SIGTERM (or `--duration`), then prints one JSON object:
//! `{"mode":"serve","listen":[..],"listen_tls":[..],"connections":N,
//! "handshake_failed":N,"messages":N}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Plain (ws://) listen address, e.g. 127.0.0.1:9001; repeatable.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// TLS (wss://) listen address; repeatable; needs --cert.
    #[arg(long, value_name = "ADDR")]
    pub listen_tls: Vec<SocketAddr>,
    /// PEM file with the certificate chain (and the key, unless --key).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// PEM file with the private key (default: the --cert file).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// Stop by itself after this long (default: only on SIGINT/SIGTERM).
    #[arg(long, value_parser = crate::stats::parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handshake_failed: AtomicU64,
    messages: AtomicU64,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<(serde_json::Value, bool)> {
    if args.listen.is_empty() && args.listen_tls.is_empty() {
        anyhow::bail!("give at least one --listen or --listen-tls address");
    }
    let acceptor = if args.listen_tls.is_empty() {
        None
    } else {
        let cert = args.cert.as_ref().context("--listen-tls needs --cert")?;
        Some(tls_acceptor(cert, args.key.as_ref().unwrap_or(cert))?)
    };
    let counters = Arc::new(Counters::default());
    let mut bound = Vec::new();
    for (addr, tls) in args
        .listen
        .iter()
        .map(|a| (*a, false))
        .chain(args.listen_tls.iter().map(|a| (*a, true)))
    {
        let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let acceptor = if tls { acceptor.clone() } else { None };
        bound.push(listener.local_addr()?);
        tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&counters)));
    }
    eprintln!("wsload serve: listening on {bound:?}");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let forever = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = forever => {}
    }
    let report = json!({
        "mode": "serve",
        "listen": args.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "listen_tls": args.listen_tls.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "connections": counters.connections.load(Ordering::Relaxed),
        "handshake_failed": counters.handshake_failed.load(Ordering::Relaxed),
        "messages": counters.messages.load(Ordering::Relaxed),
    });
    Ok((report, true))
}

/// A listener with a deep backlog (bursts of thousands of connects).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read --cert {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad PEM in {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("no private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("unusable certificate or key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, counters: Arc<Counters>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                eprintln!("wsload serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let counters = Arc::clone(&counters);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => echo(stream, &counters).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => echo(s, &counters).await,
                    Err(_) => {
                        counters.handshake_failed.fetch_add(1, Ordering::Relaxed);
                    }
                },
            }
        });
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S, counters: &Counters) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .max_message_size(Some(64 << 20));
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        counters.handshake_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let mut messages = 0u64;
    // A close is answered by tungstenite on the next read, which then ends
    // the stream; the TCP connection is closed when `ws` is dropped.
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() || msg.is_binary() {
            messages += 1;
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    }
    counters.messages.fetch_add(messages, Ordering::Relaxed);
}
