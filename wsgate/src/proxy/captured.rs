//! The last invalid request of each frontend and the last invalid
//! response of each backend, for the runtime API's `show errors`: when,
//! from whom, why, the bytes received (up to `tune.bufsize`) and the
//! position of the first byte the parser could not accept, as HAProxy
//! keeps them.
//!
//! Stage: the session records a request head it refused (400, 414, 431,
//! 501, 505) or a server's response head it could not read (502) here;
//! `admin/cli.rs` prints the captures. Process-wide and kept across
//! reloads. Only refused messages are written, so the data path of valid
//! traffic does not touch it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// The captures of the process.
#[derive(Debug, Default)]
pub struct Captures {
    /// Events captured since start (HAProxy's event numbers).
    events: AtomicU64,
    /// The last one per frontend (requests) and per backend (responses).
    last: Mutex<BTreeMap<(bool, String), Captured>>,
}

/// One refused request.
#[derive(Debug, Clone)]
pub struct Captured {
    pub event: u64,
    pub date: SystemTime,
    pub frontend: String,
    /// For a response: its backend and server.
    pub response: Option<(String, String)>,
    pub peer: SocketAddr,
    pub status: u16,
    pub reason: String,
    /// Where the first byte the grammar refuses is (or the end of the
    /// bytes when the fault is in their meaning, e.g. a bad length).
    pub position: usize,
    pub bytes: Vec<u8>,
}

impl Captures {
    /// Records a refused request head.
    pub fn request(
        &self,
        frontend: &str,
        peer: SocketAddr,
        status: u16,
        reason: String,
        bytes: &[u8],
    ) {
        let event = self.events.fetch_add(1, Ordering::Relaxed);
        let c = Captured {
            event,
            date: SystemTime::now(),
            frontend: frontend.to_owned(),
            response: None,
            peer,
            status,
            reason,
            position: error_position(bytes),
            bytes: bytes.to_vec(),
        };
        self.lock().insert((false, frontend.to_owned()), c);
    }

    /// Records a server's response head that could not be read (the
    /// client got `status`).
    pub fn response(
        &self,
        frontend: &str,
        backend: &str,
        server: &str,
        peer: SocketAddr,
        status: u16,
        bytes: &[u8],
    ) {
        let event = self.events.fetch_add(1, Ordering::Relaxed);
        let c = Captured {
            event,
            date: SystemTime::now(),
            frontend: frontend.to_owned(),
            response: Some((backend.to_owned(), server.to_owned())),
            peer,
            status,
            reason: "invalid response head".into(),
            position: response_error_position(bytes),
            bytes: bytes.to_vec(),
        };
        self.lock().insert((true, backend.to_owned()), c);
    }

    /// The captures, by frontend name.
    pub fn all(&self) -> Vec<Captured> {
        self.lock().values().cloned().collect()
    }

    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(bool, String), Captured>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The offset of the first byte RFC 9112's grammar refuses in a request
/// head: method (token), SP, target (visible ASCII), SP, `HTTP/x.y`,
/// CRLF, then `name: value` CRLF lines and the empty line. The end of the
/// bytes when they all fit the grammar.
pub fn error_position(b: &[u8]) -> usize {
    let mut i = 0;
    let n = b.len();
    while i < n && is_tchar(b[i]) {
        i += 1;
    }
    if i == 0 || i >= n || b[i] != b' ' {
        return i;
    }
    i += 1;
    let start = i;
    while i < n && (0x21..0x7f).contains(&b[i]) {
        i += 1;
    }
    if i == start || i >= n || b[i] != b' ' {
        return i;
    }
    i += 1;
    for (k, want) in b"HTTP/".iter().enumerate() {
        if i + k >= n || b[i + k] != *want {
            return i + k;
        }
    }
    i += 5;
    for digit in [true, false, true] {
        if i >= n {
            return i;
        }
        let ok = if digit {
            b[i].is_ascii_digit()
        } else {
            b[i] == b'.'
        };
        if !ok {
            return i;
        }
        i += 1;
    }
    loop {
        if i >= n || b[i] != b'\r' {
            return i;
        }
        if i + 1 >= n || b[i + 1] != b'\n' {
            return i + 1;
        }
        i += 2;
        if i < n && b[i] == b'\r' {
            return if i + 1 < n && b[i + 1] == b'\n' {
                n
            } else {
                i + 1
            };
        }
        let name = i;
        while i < n && is_tchar(b[i]) {
            i += 1;
        }
        if i == name || i >= n || b[i] != b':' {
            return i;
        }
        i += 1;
        while i < n
            && (b[i] == b'\t' || b[i] == b' ' || (0x21..0x7f).contains(&b[i]) || b[i] >= 0x80)
        {
            i += 1;
        }
    }
}

/// The offset of the first byte refused in a response head: `HTTP/x.y`,
/// SP, three digits, SP, reason (visible text), CRLF, then as a request's
/// header lines.
pub fn response_error_position(b: &[u8]) -> usize {
    let n = b.len();
    let mut i = 0;
    for want in b"HTTP/" {
        if i >= n || b[i] != *want {
            return i;
        }
        i += 1;
    }
    for ok in [
        u8::is_ascii_digit as fn(&u8) -> bool,
        |c: &u8| *c == b'.',
        u8::is_ascii_digit,
        |c: &u8| *c == b' ',
        u8::is_ascii_digit,
        u8::is_ascii_digit,
        u8::is_ascii_digit,
    ] {
        if i >= n || !ok(&b[i]) {
            return i;
        }
        i += 1;
    }
    while i < n && (b[i] == b' ' || b[i] == b'\t' || (0x21..0x7f).contains(&b[i]) || b[i] >= 0x80) {
        i += 1;
    }
    // The rest is a request's: reuse its header-line checks on a
    // synthetic request line of the same length.
    if i >= n {
        return i;
    }
    let mut fake = b"GET / HTTP/1.1".to_vec();
    let shift = i as isize - fake.len() as isize;
    fake.extend_from_slice(&b[i..]);
    let p = error_position(&fake) as isize + shift;
    usize::try_from(p).unwrap_or(i)
}

/// HAProxy's dump of captured bytes: 5-digit offsets, one line per input
/// line (or 64 bytes), `\r`, `\n`, `\t`, `\\` and `\xHH` escapes.
pub fn dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = start;
        while end < bytes.len() && end - start < 64 {
            end += 1;
            if bytes[end - 1] == b'\n' {
                break;
            }
        }
        out.push_str(&format!("  {start:05}  "));
        for &c in &bytes[start..end] {
            match c {
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(char::from(c)),
                _ => out.push_str(&format!("\\x{c:02x}")),
            }
        }
        out.push('\n');
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_refused_byte() {
        for (req, pos) in [
            (&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], 27),
            (b"GE\x01T / HTTP/1.1\r\n\r\n", 2),
            (b"GET /a\x7f HTTP/1.1\r\n\r\n", 6),
            (b"GET / HTTX/1.1\r\n\r\n", 9),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 19),
            (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 23),
            (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 14),
        ] {
            assert_eq!(error_position(req), pos, "{}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn first_refused_response_byte() {
        for (res, pos) in [
            (&b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"[..], 25),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", 10),
            (b"HTTQ/1.1 200 OK\r\n\r\n", 3),
            (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 20),
            (b"garbage", 0),
        ] {
            assert_eq!(
                response_error_position(res),
                pos,
                "{}",
                String::from_utf8_lossy(res)
            );
        }
    }

    #[test]
    fn dump_escapes_and_splits_lines() {
        assert_eq!(
            dump(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n"),
            "  00000  GET /\\x01 HTTP/1.1\\r\\n\n  00017  Host: x\\r\\n\n  00026  \\r\\n\n"
        );
    }
}
