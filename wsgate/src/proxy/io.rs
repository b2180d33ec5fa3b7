//! Reads and writes bounded by HAProxy-style inactivity timeouts.
//!
//! `None` means no timeout (HAProxy's "unset = infinite").

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs `fut` under an optional timeout.
pub async fn with_timeout<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, IoError> {
    match limit {
        Some(limit) => match tokio::time::timeout(limit, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(IoError::Timeout),
        },
        None => Ok(fut.await?),
    }
}

pub async fn read_with_timeout<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    limit: Option<Duration>,
) -> Result<usize, IoError> {
    with_timeout(limit, r.read(buf)).await
}

pub async fn write_with_timeout<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Option<Duration>,
) -> Result<(), IoError> {
    with_timeout(limit, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
}
