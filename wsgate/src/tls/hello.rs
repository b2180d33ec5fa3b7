//! What the first bytes of a connection say about TLS, read without doing
//! any TLS: the `req.ssl_hello_type`, `req.ssl_ver` and `req.ssl_sni`
//! fetches of a passthrough frontend (`mode tcp`, no `ssl` on the bind),
//! which routes a `wss://` connection by its server name and leaves the
//! handshake to the server.
//!
//! Pure functions over a byte prefix, so they never block and never
//! panic (a property test feeds them arbitrary bytes). Each answer tells
//! "not there yet" ([`Probe::Incomplete`]: more bytes could still make a
//! value) from "never" ([`Probe::Absent`]), because HAProxy's content
//! inspection waits on the first and gives up on the second.
//!
//! Unlike HAProxy 2.6, which reads the server name from the first record
//! only, a ClientHello split over several handshake records (large
//! post-quantum key shares make that common) is reassembled, within the
//! bytes held.

/// One fetch's answer on the bytes seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Probe<T> {
    Found(T),
    /// A prefix of something that could still give a value.
    Incomplete,
    /// These bytes can never give a value (not TLS, or no such field).
    #[default]
    Absent,
}

impl<T> Probe<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Probe::Found(v) => Some(v),
            _ => None,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Probe<U> {
        match self {
            Probe::Found(v) => Probe::Found(f(v)),
            Probe::Incomplete => Probe::Incomplete,
            Probe::Absent => Probe::Absent,
        }
    }
}

/// TLS record content type of handshake messages.
const HANDSHAKE: u8 = 0x16;
/// The largest record payload a peer may send: 2^14 plus the expansion
/// RFC 5246 allows (HAProxy's bound too).
const MAX_RECORD: usize = (1 << 14) + 2048;

/// `req.ssl_ver`: the version the ClientHello offers (its
/// `legacy_version`, not the record layer's: 3.3 for TLS 1.2 and 1.3
/// clients, whose records say 3.1) as `major << 16 | minor`, once the
/// whole first record is in; an SSLv2-framed hello gives the version it
/// announces. As HAProxy 2.6's `smp_fetch_req_ssl_ver` (checked side by
/// side): it reads those two bytes whatever the message type, and wants
/// 11 bytes and a record of at least 6.
pub fn hello_version(buf: &[u8]) -> Probe<u32> {
    let Some(&first) = buf.first() else {
        return Probe::Incomplete;
    };
    if (0x14..=0x17).contains(&first) || first == 0xff {
        let Some(h) = buf.get(..11) else {
            return Probe::Incomplete;
        };
        let record = u32::from(h[1]) << 16 | u32::from(h[2]);
        let len = usize::from(h[3]) << 8 | usize::from(h[4]);
        if record < 0x0003_0000 || !(6..=MAX_RECORD).contains(&len) {
            return Probe::Absent;
        }
        return if buf.len() - 5 < len {
            Probe::Incomplete
        } else {
            Probe::Found(u32::from(h[9]) << 16 | u32::from(h[10]))
        };
    }
    sslv2_version(buf)
}

/// An SSLv2-framed ClientHello (two- or three-byte header, message type
/// 1): the version it offers, once the whole message is in.
fn sslv2_version(buf: &[u8]) -> Probe<u32> {
    let (record_len, pad, header) = if buf[0] & 0x80 != 0 {
        if buf.len() < 3 {
            return Probe::Incomplete;
        }
        (usize::from(buf[0] & 0x7f) << 8 | usize::from(buf[1]), 0, 2)
    } else {
        if buf.len() < 4 {
            return Probe::Incomplete;
        }
        (
            usize::from(buf[0] & 0x3f) << 8 | usize::from(buf[1]),
            usize::from(buf[2]),
            3,
        )
    };
    if buf[header] != 0x01 {
        return Probe::Absent;
    }
    let Some(m) = buf.get(header + 1..header + 9) else {
        return Probe::Incomplete;
    };
    let version = u32::from(m[0]) << 16 | u32::from(m[1]);
    let ciphers = usize::from(m[2]) << 8 | usize::from(m[3]);
    let session_id = usize::from(m[4]) << 8 | usize::from(m[5]);
    let challenge = usize::from(m[6]) << 8 | usize::from(m[7]);
    if ciphers % 3 != 0
        || (session_id != 0 && session_id != 16)
        || !(16..=32).contains(&challenge)
        || record_len != 9 + ciphers + session_id + challenge
    {
        return Probe::Absent;
    }
    let rest = ciphers + session_id + challenge + pad;
    if buf.len() - (header + 9) < rest {
        Probe::Incomplete
    } else {
        Probe::Found(version)
    }
}

/// The first handshake message, reassembled from the handshake records
/// at the start of `buf`: its type and body.
fn first_message(buf: &[u8]) -> Probe<(u8, Vec<u8>)> {
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(h) = buf.get(at..at + 5) else {
            return Probe::Incomplete;
        };
        let len = usize::from(h[3]) << 8 | usize::from(h[4]);
        // Record versions from SSLv3's 3.0 up, as HAProxy 2.6's fetches.
        if h[0] != HANDSHAKE || h[1] < 3 || len == 0 || len > MAX_RECORD {
            return Probe::Absent;
        }
        let Some(fragment) = buf.get(at + 5..at + 5 + len) else {
            // Take what there is: the message's type and length may
            // already tell that it can never be a hello.
            message.extend_from_slice(&buf[at + 5..]);
            return if message.len() >= 4 && 4 + message_len(&message) > MAX_HELLO {
                Probe::Absent
            } else {
                Probe::Incomplete
            };
        };
        message.extend_from_slice(fragment);
        at += 5 + len;
        if message.len() >= 4 {
            let need = 4 + message_len(&message);
            if need > MAX_HELLO {
                return Probe::Absent;
            }
            if message.len() >= need {
                message.truncate(need);
                let kind = message[0];
                message.drain(..4);
                return Probe::Found((kind, message));
            }
        }
    }
}

/// The largest ClientHello wsgate reassembles (HAProxy reads none larger
/// than its 16 KiB buffer).
const MAX_HELLO: usize = 1 << 16;

fn message_len(m: &[u8]) -> usize {
    usize::from(m[1]) << 16 | usize::from(m[2]) << 8 | usize::from(m[3])
}

/// `req.ssl_hello_type`: the type of the first handshake message (1 for a
/// ClientHello) once the whole message is in.
pub fn hello_type(buf: &[u8]) -> Probe<u8> {
    first_message(buf).map(|(kind, _)| kind)
}

/// `req.ssl_sni`: the host name in the ClientHello's server_name
/// extension (RFC 6066), as sent (no case folding, no validation beyond
/// the framing).
pub fn server_name(buf: &[u8]) -> Probe<Vec<u8>> {
    // Another message type is known from its first byte.
    if buf.first() == Some(&HANDSHAKE) && buf.get(5).is_some_and(|&t| t != 1) {
        return Probe::Absent;
    }
    match first_message(buf) {
        Probe::Found((1, body)) => sni_of(&body).map_or(Probe::Absent, Probe::Found),
        Probe::Found(_) | Probe::Absent => Probe::Absent,
        Probe::Incomplete => Probe::Incomplete,
    }
}

/// A bounds-checked reader over a message.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(b[0]) << 8 | usize::from(b[1]))
    }

    /// A vector with a one- or two-byte length.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The host name of a ClientHello body; `None` when it has none or the
/// body is malformed.
fn sni_of(body: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader(body);
    let version = r.take(2)?;
    if version[0] < 3 || (version[0] == 3 && version[1] == 0) {
        return None;
    }
    r.take(32)?; // random
    if r.vec8()?.len() > 32 {
        return None; // session id
    }
    let suites = r.vec16()?;
    if suites.len() < 2 || suites.len() % 2 != 0 {
        return None;
    }
    if r.vec8()?.is_empty() {
        return None; // compression methods
    }
    let mut extensions = Reader(r.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                return Some(name.to_vec());
            }
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real ClientHello from rustls' client, with or without SNI.
    fn client_hello(name: Option<&str>) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.enable_sni = name.is_some();
        let server = rustls_pki_types::ServerName::try_from(name.unwrap_or("x.invalid"))
            .unwrap()
            .to_owned();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// `hello` re-framed as records of at most `size` bytes.
    fn split_records(hello: &[u8], size: usize) -> Vec<u8> {
        let body = &hello[5..];
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            out.extend_from_slice(&[0x16, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn reads_a_real_client_hello() {
        let h = client_hello(Some("ws.Example.com"));
        assert_eq!(
            server_name(&h),
            Probe::Found(b"ws.Example.com".to_vec()),
            "rustls sends the name as given"
        );
        assert_eq!(hello_type(&h), Probe::Found(1));
        // The hello's legacy_version (3.3), not its record's (3.1).
        assert_eq!(hello_version(&h), Probe::Found(0x0003_0003));
        let anonymous = client_hello(None);
        assert_eq!(server_name(&anonymous), Probe::Absent);
        assert_eq!(hello_type(&anonymous), Probe::Found(1));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let h = client_hello(Some("a.example.com"));
        for n in 0..h.len() {
            assert_eq!(server_name(&h[..n]), Probe::Incomplete, "{n} bytes");
            assert_eq!(hello_type(&h[..n]), Probe::Incomplete, "{n} bytes");
        }
        // Whatever follows the hello does not matter.
        let mut more = h.clone();
        more.extend_from_slice(b"\x17\x03\x03garbage");
        assert_eq!(server_name(&more), Probe::Found(b"a.example.com".to_vec()));
    }

    #[test]
    fn a_hello_over_several_records_is_reassembled() {
        let h = split_records(&client_hello(Some("split.example.com")), 40);
        assert_eq!(server_name(&h), Probe::Found(b"split.example.com".to_vec()));
        assert_eq!(server_name(&h[..h.len() - 1]), Probe::Incomplete);
    }

    #[test]
    fn other_protocols_are_absent_at_once() {
        for bytes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x10\x1a\x00\x04MQTT",
            b"SSH-2.0-OpenSSH",
            b"\x16\x03\x01\x00\x00",         // empty record
            b"\x15\x03\x03\x00\x02\x02\x28", // an alert
        ] {
            assert_eq!(server_name(bytes), Probe::Absent, "{bytes:?}");
            assert_eq!(hello_type(bytes), Probe::Absent, "{bytes:?}");
        }
        assert_eq!(hello_version(b"GET / HTTP/1.1\r\n"), Probe::Absent);
        // An alert record is too short to hold a version (HAProxy's rule).
        assert_eq!(
            hello_version(b"\x15\x03\x03\x00\x02\x02\x28"),
            Probe::Incomplete
        );
        assert_eq!(
            hello_version(b"\x15\x03\x03\x00\x02\x02\x28\0\0\0\0"),
            Probe::Absent
        );
        let sslv3 = b"\x16\x03\x00\x00\x06\x01\x00\x00\x02\x03\x00";
        assert_eq!(hello_version(sslv3), Probe::Found(0x0003_0000));
        // A (truncated) SSLv3 hello: a hello, with no room for a name.
        assert_eq!(hello_type(sslv3), Probe::Found(1));
        assert_eq!(server_name(sslv3), Probe::Absent);
    }

    #[test]
    fn a_server_hello_has_no_server_name() {
        // Type 2 with a 40-byte body.
        let mut m = vec![0x16, 3, 3, 0, 44, 2, 0, 0, 40];
        m.extend_from_slice(&[0; 40]);
        assert_eq!(hello_type(&m), Probe::Found(2));
        assert_eq!(server_name(&m), Probe::Absent);
    }

    #[test]
    fn sslv2_hello_version() {
        // Two-byte header, type 1, version 3.1, 3 bytes of ciphers, no
        // session id, a 16-byte challenge.
        let mut m = vec![0x80, 9 + 3 + 16, 1, 3, 1, 0, 3, 0, 0, 0, 16];
        m.extend_from_slice(&[0; 3 + 16]);
        assert_eq!(hello_version(&m), Probe::Found(0x0003_0001));
        assert_eq!(hello_version(&m[..m.len() - 1]), Probe::Incomplete);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = server_name(&bytes);
            let _ = hello_type(&bytes);
            let _ = hello_version(&bytes);
        }

        #[test]
        fn a_mangled_hello_never_panics(at in 0usize..400, byte in proptest::prelude::any::<u8>()) {
            let mut h = client_hello(Some("p.example.com"));
            let i = at % h.len();
            h[i] = byte;
            let _ = server_name(&h);
            let _ = hello_type(&h);
        }
    }
}
