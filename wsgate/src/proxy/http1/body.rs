//! HTTP/1.1 message bodies: where they end, and streaming them through.
//!
//! Bodies are never buffered whole: bytes are copied through a pooled buffer
//! as they arrive. Chunked bodies are forwarded as they are (chunk framing
//! included) while [`ChunkedScanner`] follows the framing to find the end,
//! so the proxy and the server always agree on where a message stops.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::super::buffers::PooledBuf;
use super::super::io::{read_with_timeout, write_with_timeout, IoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// A response delimited by the server closing the connection.
    UntilClose,
}

/// Follows chunked framing (RFC 9112 §7.1) byte by byte, without copying.
#[derive(Debug, Clone, Default)]
pub struct ChunkedScanner {
    state: ChunkState,
    size: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    SizeStart,
    Size,
    /// Whitespace after the size: before a `;` or the CR.
    SizeWs,
    /// Chunk extensions (RFC 9112 §7.1.1), checked to the grammar: a
    /// server that reads a malformed one its own way (an unterminated
    /// quote running past the CRLF) would see other chunk boundaries than
    /// wsgate, which forwards the framing as it is. HAProxy 2.6 passes
    /// some of them on (docs/security.md).
    /// After `;`: spaces, then the name.
    ExtStart,
    ExtName,
    /// Spaces after the name: `=`, `;` or the CR follow.
    ExtNameWs,
    /// After `=`: spaces, then a token or a quoted string.
    ExtValStart,
    ExtToken,
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After a value: spaces, then `;` or the CR.
    ExtAfterVal,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked encoding")]
pub struct ChunkedError;

impl ChunkState {
    /// After the chunk size's digits, before the line's CR.
    fn in_size_line(self) -> bool {
        matches!(
            self,
            ChunkState::Size
                | ChunkState::SizeWs
                | ChunkState::ExtStart
                | ChunkState::ExtName
                | ChunkState::ExtNameWs
                | ChunkState::ExtValStart
                | ChunkState::ExtToken
                | ChunkState::ExtQuoted
                | ChunkState::ExtQuotedPair
                | ChunkState::ExtAfterVal
        )
    }
}

/// `tchar` (RFC 9110 §5.6.2): what a token is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One byte of a chunk-size line after the size's digits:
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) CR`
/// (RFC 9112 §7.1.1), with spaces also allowed before the CR.
fn chunk_ext(state: ChunkState, b: u8) -> Result<ChunkState, ChunkedError> {
    use ChunkState::*;
    let ws = b == b' ' || b == b'\t';
    Ok(match state {
        ExtQuoted => match b {
            b'"' => ExtAfterVal,
            b'\\' => ExtQuotedPair,
            // qdtext: HTAB, SP, VCHAR but '"' and '\\', obs-text.
            b'\t' | b' '..=b'~' | 0x80..=0xff => ExtQuoted,
            _ => return Err(ChunkedError),
        },
        ExtQuotedPair if b == b'\t' || b >= b' ' && b != 0x7f => ExtQuoted,
        Size | SizeWs | ExtName | ExtNameWs | ExtToken | ExtAfterVal if b == b'\r' => SizeLf,
        Size | SizeWs | ExtName | ExtNameWs | ExtToken | ExtAfterVal if b == b';' => ExtStart,
        Size | SizeWs if ws => SizeWs,
        ExtStart if ws => ExtStart,
        ExtStart | ExtName if is_tchar(b) => ExtName,
        ExtName | ExtNameWs if ws => ExtNameWs,
        ExtName | ExtNameWs if b == b'=' => ExtValStart,
        ExtValStart if ws => ExtValStart,
        ExtValStart if b == b'"' => ExtQuoted,
        ExtValStart | ExtToken if is_tchar(b) => ExtToken,
        ExtToken | ExtAfterVal if ws => ExtAfterVal,
        _ => return Err(ChunkedError),
    })
}

impl ChunkedScanner {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of the body; returns how many belong to it (fewer than
    /// `input.len()` only when the body ended inside `input`).
    pub fn scan(&mut self, input: &[u8]) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            if self.state == ChunkState::Data {
                let available = (input.len() - i) as u64;
                let take = available.min(self.size);
                i += take as usize;
                self.size -= take;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (ChunkState::SizeStart | ChunkState::Size, b) if b.is_ascii_hexdigit() => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(digit))
                        .ok_or(ChunkedError)?;
                    ChunkState::Size
                }
                (state, b) if state.in_size_line() => chunk_ext(state, b)?,
                (ChunkState::SizeLf, b'\n') if self.size == 0 => ChunkState::TrailerStart,
                (ChunkState::SizeLf, b'\n') => ChunkState::Data,
                (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                (ChunkState::DataLf, b'\n') => ChunkState::SizeStart,
                (ChunkState::TrailerStart, b'\r') => ChunkState::FinalLf,
                (ChunkState::TrailerLine, b'\r') => ChunkState::TrailerLf,
                (ChunkState::TrailerStart | ChunkState::TrailerLine, b) if b != b'\n' => {
                    ChunkState::TrailerLine
                }
                (ChunkState::TrailerLf, b'\n') => ChunkState::TrailerStart,
                (ChunkState::FinalLf, b'\n') => ChunkState::Done,
                _ => return Err(ChunkedError),
            };
        }
        Ok(i)
    }
}

/// Why streaming a body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the body: {0}")]
    Read(IoError),
    #[error("writing the body: {0}")]
    Write(IoError),
    #[error("the peer closed the connection in the middle of the body")]
    Truncated,
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
}

/// Checks the chunked framing of the body bytes that came with the head,
/// before anything is sent to a server: a chunk size HAProxy would refuse
/// (not hex, too large) is then refused before the head goes out, not
/// halfway through forwarding (tests/e2e_smuggling.rs).
pub fn check_buffered(kind: BodyKind, already: &[u8]) -> Result<(), ChunkedError> {
    if kind == BodyKind::Chunked {
        ChunkedScanner::default().scan(already)?;
    }
    Ok(())
}

/// Streams one body from `from` to `to`. `already` holds bytes read past
/// the head; the part of it that belongs to the body is consumed from the
/// front, and what follows the body (a pipelined request) stays in it.
pub async fn copy_body<R, W>(
    kind: BodyKind,
    already: &mut Vec<u8>,
    from: &mut R,
    read_timeout: Option<Duration>,
    to: &mut W,
    write_timeout: Option<Duration>,
) -> Result<u64, BodyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    let mut scanner = ChunkedScanner::default();
    let mut remaining = match kind {
        BodyKind::None => return Ok(0),
        BodyKind::Length(n) => n,
        BodyKind::Chunked | BodyKind::UntilClose => u64::MAX,
    };
    // First the bytes that arrived with the head.
    if !already.is_empty() {
        let take = body_prefix(kind, &mut scanner, already, remaining)?;
        write_with_timeout(to, &already[..take], write_timeout)
            .await
            .map_err(BodyError::Write)?;
        already.drain(..take);
        remaining = remaining.saturating_sub(take as u64);
        total += take as u64;
    }
    let mut buf = PooledBuf::take();
    while !body_finished(kind, &scanner, remaining) {
        let n = read_with_timeout(from, buf.as_mut(), read_timeout)
            .await
            .map_err(BodyError::Read)?;
        if n == 0 {
            if kind == BodyKind::UntilClose {
                break;
            }
            return Err(BodyError::Truncated);
        }
        let chunk = &buf.as_ref()[..n];
        let take = body_prefix(kind, &mut scanner, chunk, remaining)?;
        write_with_timeout(to, &chunk[..take], write_timeout)
            .await
            .map_err(BodyError::Write)?;
        // Bytes after the end of the body are the start of the next message.
        already.extend_from_slice(&chunk[take..]);
        remaining = remaining.saturating_sub(take as u64);
        total += take as u64;
    }
    to.flush()
        .await
        .map_err(|e| BodyError::Write(IoError::Io(e)))?;
    Ok(total)
}

fn body_prefix(
    kind: BodyKind,
    scanner: &mut ChunkedScanner,
    bytes: &[u8],
    remaining: u64,
) -> Result<usize, ChunkedError> {
    Ok(match kind {
        BodyKind::Chunked => scanner.scan(bytes)?,
        _ => bytes
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX)),
    })
}

fn body_finished(kind: BodyKind, scanner: &ChunkedScanner, remaining: u64) -> bool {
    match kind {
        BodyKind::None => true,
        BodyKind::Length(_) => remaining == 0,
        BodyKind::Chunked => scanner.is_done(),
        BodyKind::UntilClose => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(input: &[u8]) -> Result<(usize, bool), ChunkedError> {
        let mut s = ChunkedScanner::default();
        let n = s.scan(input)?;
        Ok((n, s.is_done()))
    }

    #[test]
    fn chunked_end_is_found() {
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        assert_eq!(scan_all(body).unwrap(), (body.len() - 4, true));
    }

    #[test]
    fn chunked_split_anywhere_gives_the_same_end() {
        let body = b"a\r\n0123456789\r\n0\r\n\r\nGET";
        for split in 0..=body.len() - 3 {
            let mut s = ChunkedScanner::default();
            let a = s.scan(&body[..split]).unwrap();
            assert_eq!(a, split);
            let b = s.scan(&body[split..]).unwrap();
            assert_eq!(a + b, body.len() - 3, "split at {split}");
            assert!(s.is_done());
        }
    }

    #[test]
    fn bad_chunked_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"5\rhello",
            b"5\r\nhelloXX",
            b"ffffffffffffffffff\r\n",
            b"\r\n",
        ] {
            assert!(scan_all(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chunk_extensions_follow_the_grammar() {
        for good in [
            &b"5;a\r\n"[..],
            b"5 ; a = b ; c\r\n",
            b"5;name=\"va lue \\\" \\\\\";x=1\r\n",
            b"5;a=\"\xc3\xa9\"\r\n",
            b"5  \r\n",
            b"5;a=b \r\n",
        ] {
            let mut chunk = good.to_vec();
            chunk.extend_from_slice(b"hello\r\n0\r\n\r\n");
            assert_eq!(scan_all(&chunk), Ok((chunk.len(), true)), "{good:?}");
        }
        for bad in [
            &b"5;\r\n"[..],
            b"5;=b\r\n",
            b"5;a=\r\n",
            b"5;a=\"b\r\n",
            b"5;a=\"b\rc\"\r\n",
            b"5;a\0b\r\n",
            b"5;a\nb\r\n",
            b"5;a b\r\n",
            b"5;a=b c\r\n",
            b"5;a=\"b\"c\r\n",
            b"5;a(b\r\n",
            b"5 x\r\n",
            b"5;a=\"\x7f\"\r\n",
        ] {
            assert_eq!(scan_all(bad), Err(ChunkedError), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn length_body_leaves_the_next_request() {
        let mut already = b"hel".to_vec();
        let mut from: &[u8] = b"loGET / HTTP/1.1";
        let mut to = Vec::new();
        let n = copy_body(
            BodyKind::Length(5),
            &mut already,
            &mut from,
            None,
            &mut to,
            None,
        )
        .await
        .unwrap();
        assert_eq!(n, 5);
        assert_eq!(to, b"hello");
        assert_eq!(already, b"GET / HTTP/1.1");
    }

    #[tokio::test]
    async fn truncated_body_is_an_error() {
        let mut already = Vec::new();
        let mut from: &[u8] = b"abc";
        let mut to = Vec::new();
        let r = copy_body(
            BodyKind::Length(5),
            &mut already,
            &mut from,
            None,
            &mut to,
            None,
        )
        .await;
        assert!(matches!(r, Err(BodyError::Truncated)));
    }
}
