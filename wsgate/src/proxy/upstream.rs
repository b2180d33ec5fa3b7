//! The server side of a session: a plain TCP connection, or TLS on top of
//! it for `server ... ssl` (so `wss://` backends work), after the PROXY
//! protocol header of `send-proxy*`.
//!
//! Stage: `connect` gives a TCP stream; [`secure`] adds TLS when the server
//! asks for it; the session speaks HTTP over the result and, after a `101`,
//! hands it to the tunnel as a [`ServerEnd`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::io::{with_timeout, write_with_timeout, IoError};
use super::tunnel::{IntoTunnel, Parkable, PlainSocket, Stream, TunnelIo};
use crate::config::model::Server;
use crate::proxy_protocol::{self, Origin};
use crate::tls::client::ServerTls;

pub enum ServerStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Sends the PROXY protocol header when `server` has `send-proxy*`, then
/// wraps `stream` in TLS when `tls` is set (the header goes first, in
/// clear, as HAProxy sends it). Both are part of the connection: `timeout
/// connect` bounds them. A failure (certificate refused, server not
/// speaking TLS) is an error the session answers with 503.
pub async fn secure(
    mut stream: TcpStream,
    tls: Option<&Arc<ServerTls>>,
    server: &Server,
    origin: &Origin,
    header: impl Fn(&str) -> Option<String>,
    limit: Option<Duration>,
) -> Result<ServerStream, IoError> {
    if let Some(send) = &server.send_proxy {
        let line = proxy_protocol::for_session(send, origin);
        write_with_timeout(&mut stream, &line, limit).await?;
    }
    let Some(tls) = tls else {
        return Ok(ServerStream::Plain(stream));
    };
    // Without `sni`, the name is the address connected to (the runtime
    // API may have moved the server since the configuration said).
    let ip = stream.peer_addr()?.ip();
    let name = tls.server_name(ip, header);
    let connector = TlsConnector::from(tls.config.clone());
    let stream = with_timeout(limit, connector.connect(name, stream)).await?;
    Ok(ServerStream::Tls(Box::new(stream)))
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            ServerStream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            ServerStream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// The server end of a tunnel: a readiness-driven plain socket, or TLS.
pub enum ServerEnd {
    Plain(PlainSocket),
    Tls(Stream<Box<TlsStream<TcpStream>>>),
}

impl IntoTunnel for ServerStream {
    type End = ServerEnd;
    fn into_tunnel(self) -> io::Result<ServerEnd> {
        Ok(match self {
            ServerStream::Plain(s) => ServerEnd::Plain(PlainSocket::new(s)?),
            ServerStream::Tls(s) => ServerEnd::Tls(Stream(s)),
        })
    }
}

/// A plain server end parks as its socket; a TLS one does not park.
impl Parkable for ServerEnd {
    type Parked = std::net::TcpStream;

    fn parkable(&self) -> bool {
        matches!(self, ServerEnd::Plain(_))
    }

    fn park(self) -> Result<std::net::TcpStream, ServerEnd> {
        match self {
            ServerEnd::Plain(s) => s.park().map_err(ServerEnd::Plain),
            tls => Err(tls),
        }
    }

    fn unpark(parked: std::net::TcpStream) -> io::Result<ServerEnd> {
        PlainSocket::unpark(parked).map(ServerEnd::Plain)
    }
}

impl TunnelIo for ServerEnd {
    fn poll_read_pooled(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(super::buffers::PooledBuf, usize)>> {
        match self {
            ServerEnd::Plain(s) => s.poll_read_pooled(cx),
            ServerEnd::Tls(s) => s.poll_read_pooled(cx),
        }
    }

    fn poll_write_some(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            ServerEnd::Plain(s) => s.poll_write_some(cx, buf),
            ServerEnd::Tls(s) => s.poll_write_some(cx, buf),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ServerEnd::Plain(s) => s.poll_flush(cx),
            ServerEnd::Tls(s) => s.poll_flush(cx),
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ServerEnd::Plain(s) => s.poll_shutdown(cx),
            ServerEnd::Tls(s) => s.poll_shutdown(cx),
        }
    }
}
