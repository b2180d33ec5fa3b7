//! The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`), versions 1
//! (text) and 2 (binary): reading the header a load balancer in front puts
//! before the client's bytes (`bind ... accept-proxy`), and writing one
//! before wsgate's bytes to a server (`server ... send-proxy[-v2]`).
//!
//! Pure: bytes in, values out, no sockets, so that it can be unit-,
//! property- and fuzz-tested alone. [`parse`] never panics and never looks
//! past [`V2_MAX`] bytes; it says [`Parsed::Incomplete`] while a prefix of
//! the input could still become a valid header, so the caller can read
//! exactly the header and leave the bytes after it (a TLS ClientHello, an
//! HTTP request) in the socket.
//!
//! What HAProxy 2.6 does, and wsgate with it: a v1 `TCP4`/`TCP6` line or a
//! v2 `PROXY` command over TCP/IPv4 or TCP/IPv6 replaces the connection's
//! addresses; `PROXY UNKNOWN`, the v2 `LOCAL` command and v2 families
//! other than TCP over IP keep the real ones; anything else (no header, a
//! bad one, a v2 TLV running past the header, a CRC32C TLV that does not
//! match) closes the connection. Writing follows `make_proxy_line_v1/v2`:
//! mixed IPv4/IPv6 addresses are sent as TCP6 with the IPv4 one mapped
//! (`::ffff:a.b.c.d`), and TLVs come in HAProxy's order (CRC32C, ALPN,
//! AUTHORITY, SSL).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::model::SendProxy;
use crate::tls::Handshake;

/// The v2 signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the specification's bound).
pub const V1_MAX: usize = 107;
/// The longest v2 header: 16 fixed bytes and a 16-bit length.
pub const V2_MAX: usize = 16 + 0xffff;

/// v2 TLV types (section 2.2 of the specification).
pub mod tlv {
    pub const ALPN: u8 = 0x01;
    pub const AUTHORITY: u8 = 0x02;
    pub const CRC32C: u8 = 0x03;
    pub const SSL: u8 = 0x20;
    pub const SUBTYPE_SSL_VERSION: u8 = 0x21;
    pub const SUBTYPE_SSL_CN: u8 = 0x22;
    pub const SUBTYPE_SSL_CIPHER: u8 = 0x23;
    /// `PP2_TYPE_SSL` client bits.
    pub const CLIENT_SSL: u8 = 0x01;
    pub const CLIENT_CERT_CONN: u8 = 0x02;
    pub const CLIENT_CERT_SESS: u8 = 0x04;
}

/// What a complete header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// The client's address and the address it connected to.
    Addresses { src: SocketAddr, dst: SocketAddr },
    /// `PROXY UNKNOWN`, v2 `LOCAL`, or a v2 family other than TCP over IP:
    /// the connection's own addresses stay.
    KeepReal,
}

/// The result of looking at the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid header of `len` bytes; what follows is the client's data.
    Complete { announced: Announced, len: usize },
    /// Valid so far: more bytes are needed.
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY protocol header (the connection does not start with `PROXY ` or the v2 signature)")]
    NotProxy,
    #[error("PROXY v1 line longer than {V1_MAX} bytes")]
    V1TooLong,
    #[error("PROXY v1 line is malformed: {0}")]
    V1Malformed(&'static str),
    #[error("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN")]
    V1Protocol,
    #[error("PROXY v2 version/command byte {0:#04x} is not supported (version 2, LOCAL or PROXY)")]
    V2Command(u8),
    #[error("PROXY v2 address block of {len} bytes is too short for its family ({need})")]
    V2Short { len: usize, need: usize },
    #[error("PROXY v2 TLV runs past the end of the header")]
    V2Tlv,
    #[error("PROXY v2 CRC32C does not match")]
    V2Checksum,
}

/// Looks at the first bytes of a connection. Never reads past
/// [`V2_MAX`] bytes of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, HeaderError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(Parsed::Incomplete)
        } else {
            parse_v2(&buf[..buf.len().min(V2_MAX)])
        };
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return if n < V1_PREFIX.len() {
            Ok(Parsed::Incomplete)
        } else {
            parse_v1(&buf[..buf.len().min(V1_MAX)])
        };
    }
    Err(HeaderError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        // Only printable ASCII may come before the CRLF (and a lone CR at
        // the very end, waiting for its LF).
        let body = buf.strip_suffix(b"\r").unwrap_or(buf);
        if body.iter().any(|b| !(0x20..0x7f).contains(b)) {
            return Err(HeaderError::V1Malformed("a control byte before the CRLF"));
        }
        return if buf.len() >= V1_MAX {
            Err(HeaderError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let len = end + 2;
    let line =
        std::str::from_utf8(&buf[6..end]).map_err(|_| HeaderError::V1Malformed("not ASCII"))?;
    if line.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(HeaderError::V1Malformed("a control byte before the CRLF"));
    }
    // The specification: after UNKNOWN, anything up to the CRLF is ignored.
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(Parsed::Complete {
            announced: Announced::KeepReal,
            len,
        });
    }
    let mut fields = line.split(' ');
    let v6 = match fields.next() {
        Some("TCP4") => false,
        Some("TCP6") => true,
        _ => return Err(HeaderError::V1Protocol),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(HeaderError::V1Malformed(
            "expected `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>` with single spaces",
        ));
    };
    let ip = |s: &str| -> Result<IpAddr, HeaderError> {
        let parsed = if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        parsed.map_err(|_| HeaderError::V1Malformed("an address does not match the protocol"))
    };
    let port = |s: &str| -> Result<u16, HeaderError> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeaderError::V1Malformed("a port is not a decimal number"));
        }
        s.parse()
            .map_err(|_| HeaderError::V1Malformed("a port is above 65535"))
    };
    Ok(Parsed::Complete {
        announced: Announced::Addresses {
            src: SocketAddr::new(ip(src)?, port(sport)?),
            dst: SocketAddr::new(ip(dst)?, port(dport)?),
        },
        len,
    })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, HeaderError> {
    if buf.len() < 16 {
        // The signature matched; the version byte can be judged already.
        return match buf.get(12) {
            Some(&vc) if vc >> 4 != 2 => Err(HeaderError::V2Command(vc)),
            _ => Ok(Parsed::Incomplete),
        };
    }
    let ver_cmd = buf[12];
    let family = buf[13];
    let body_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Err(HeaderError::V2Command(ver_cmd));
    }
    let len = 16 + body_len;
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let header = &buf[..len];
    if ver_cmd & 0x0f == 0 {
        // LOCAL: the sender's own connection (a health check); the body
        // is to be skipped, whatever it holds.
        return Ok(Parsed::Complete {
            announced: Announced::KeepReal,
            len,
        });
    }
    let body = &header[16..];
    let (announced, addr_len) = match family {
        0x11 => {
            need(body, 12)?;
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            (
                Announced::Addresses {
                    src: SocketAddr::new(ip(0), port(8)),
                    dst: SocketAddr::new(ip(4), port(10)),
                },
                12,
            )
        }
        0x21 => {
            need(body, 36)?;
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            (
                Announced::Addresses {
                    src: SocketAddr::new(ip(0), port(32)),
                    dst: SocketAddr::new(ip(16), port(34)),
                },
                36,
            )
        }
        // UDP, UNIX sockets, UNSPEC: accepted, the real addresses stay
        // (HAProxy: "unsupported protocol, keep local connection address").
        _ => {
            return Ok(Parsed::Complete {
                announced: Announced::KeepReal,
                len,
            })
        }
    };
    check_tlvs(header, 16 + addr_len)?;
    Ok(Parsed::Complete { announced, len })
}

fn need(body: &[u8], n: usize) -> Result<(), HeaderError> {
    if body.len() < n {
        Err(HeaderError::V2Short {
            len: body.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

/// Walks the TLVs from `at` to the end of `header`: each must fit, and a
/// CRC32C TLV must match the header (computed with its own value zeroed).
fn check_tlvs(header: &[u8], mut at: usize) -> Result<(), HeaderError> {
    while at < header.len() {
        if at + 3 > header.len() {
            return Err(HeaderError::V2Tlv);
        }
        let kind = header[at];
        let len = usize::from(u16::from_be_bytes([header[at + 1], header[at + 2]]));
        let value = at + 3;
        if value + len > header.len() {
            return Err(HeaderError::V2Tlv);
        }
        if kind == tlv::CRC32C {
            if len != 4 {
                return Err(HeaderError::V2Tlv);
            }
            let sent = u32::from_be_bytes([
                header[value],
                header[value + 1],
                header[value + 2],
                header[value + 3],
            ]);
            let mut zeroed = header.to_vec();
            zeroed[value..value + 4].fill(0);
            if crc32c(&zeroed) != sent {
                return Err(HeaderError::V2Checksum);
            }
        }
        at = value + len;
    }
    Ok(())
}

/// CRC-32C (Castagnoli), bitwise: headers are small and checked once.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An IPv4 address as IPv6 (`::ffff:a.b.c.d`), as HAProxy's `v4tov6`.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A v1 line for a connection from `src` to `dst`.
pub fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let line = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            format!("PROXY TCP4 {s} {d} {} {}\r\n", src.port(), dst.port())
        }
        (s, d) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            as_v6(s),
            as_v6(d),
            src.port(),
            dst.port()
        ),
    };
    line.into_bytes()
}

/// A v2 header: `PROXY` with the addresses, or `LOCAL` (`None`: a
/// connection wsgate opened for itself, a health check), then `tlvs`
/// (type, value) in order; with `crc`, a CRC32C TLV first.
pub fn v2(
    addresses: Option<(SocketAddr, SocketAddr)>,
    tlvs: &[(u8, Vec<u8>)],
    crc: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&V2_SIGNATURE);
    match addresses {
        None => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
        Some((src, dst)) => match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out.extend_from_slice(&[0x21, 0x11, 0, 0]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                out.extend_from_slice(&src.port().to_be_bytes());
                out.extend_from_slice(&dst.port().to_be_bytes());
            }
            (s, d) => {
                out.extend_from_slice(&[0x21, 0x21, 0, 0]);
                out.extend_from_slice(&as_v6(s).octets());
                out.extend_from_slice(&as_v6(d).octets());
                out.extend_from_slice(&src.port().to_be_bytes());
                out.extend_from_slice(&dst.port().to_be_bytes());
            }
        },
    }
    let crc_at = crc.then(|| {
        put_tlv(&mut out, tlv::CRC32C, &[0; 4]);
        out.len() - 4
    });
    for (kind, value) in tlvs {
        put_tlv(&mut out, *kind, value);
    }
    let body = u16::try_from(out.len() - 16).unwrap_or(u16::MAX);
    out[14..16].copy_from_slice(&body.to_be_bytes());
    if let Some(at) = crc_at {
        let sum = crc32c(&out);
        out[at..at + 4].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

/// Appends one TLV; values are cut at 65535 bytes (they never come near).
fn put_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let value = &value[..value.len().min(0xffff)];
    out.push(kind);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// The value of a `PP2_TYPE_SSL` TLV: the client bits, the verify result
/// (0: verified, or no certificate), then the version sub-TLV and, when
/// asked, the CN and cipher sub-TLVs. A plain client gets the bare 5
/// bytes of zeros, as from HAProxy.
pub fn ssl_tlv(ssl: Option<&Handshake>, cn: bool, cipher: bool) -> Vec<u8> {
    let mut v = vec![0u8; 5];
    if let Some(ssl) = ssl {
        v[0] |= tlv::CLIENT_SSL;
        put_tlv(&mut v, tlv::SUBTYPE_SSL_VERSION, ssl.version.as_bytes());
        if ssl.client_cert {
            // Verified (rustls refuses the handshake otherwise, so the
            // verify field stays 0), and given on this connection.
            v[0] |= tlv::CLIENT_CERT_SESS | tlv::CLIENT_CERT_CONN;
        }
        if cn {
            if let Some(name) = ssl.client_cn.as_deref().filter(|n| !n.is_empty()) {
                put_tlv(&mut v, tlv::SUBTYPE_SSL_CN, name.as_bytes());
            }
        }
        if cipher {
            if let Some(name) = ssl.cipher {
                put_tlv(&mut v, tlv::SUBTYPE_SSL_CIPHER, name.as_bytes());
            }
        }
    }
    v
}

/// A client connection as a server's PROXY header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client: announced by `accept-proxy`, or the socket's peer.
    pub src: SocketAddr,
    /// The address the client connected to (announced, or the socket's).
    pub dst: SocketAddr,
    /// Set when the client came over TLS.
    pub tls: Option<Handshake>,
}

impl Origin {
    /// A plain connection from `src` to `dst`.
    pub fn plain(src: SocketAddr, dst: SocketAddr) -> Origin {
        Origin {
            src,
            dst,
            tls: None,
        }
    }
}

/// The header to send before a session's first byte to a server, as
/// HAProxy's `make_proxy_line`.
pub fn for_session(send: &SendProxy, origin: &Origin) -> Vec<u8> {
    if !send.v2 {
        return v1(origin.src, origin.dst);
    }
    let tls = origin.tls.as_ref();
    let mut tlvs = Vec::new();
    if let Some(alpn) = tls.and_then(|t| t.alpn.clone()) {
        tlvs.push((tlv::ALPN, alpn));
    }
    if send.authority {
        if let Some(sni) = tls.and_then(|t| t.sni.as_ref()) {
            tlvs.push((tlv::AUTHORITY, sni.as_bytes().to_vec()));
        }
    }
    if send.ssl {
        tlvs.push((tlv::SSL, ssl_tlv(tls, send.cert_cn, send.ssl_cipher)));
    }
    v2(Some((origin.src, origin.dst)), &tlvs, send.crc32c)
}

/// The header a health check sends: v1 with the check connection's own
/// addresses (`local` → `peer`); v2 `LOCAL`, as a connection of wsgate's
/// own (with the SSL TLV saying "no client TLS" when asked for).
pub fn for_check(send: &SendProxy, local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
    if !send.v2 {
        return v1(local, peer);
    }
    let ssl = send.ssl.then(|| (tlv::SSL, ssl_tlv(None, false, false)));
    v2(None, ssl.as_slice(), send.crc32c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn complete(buf: &[u8]) -> (Announced, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { announced, len }) => (announced, len),
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    #[test]
    fn v1_lines() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /";
        assert_eq!(
            complete(line),
            (
                Announced::Addresses {
                    src: addr("192.0.2.7:56324"),
                    dst: addr("198.51.100.1:443")
                },
                line.len() - 5
            )
        );
        let line = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
        assert_eq!(
            complete(line).0,
            Announced::Addresses {
                src: addr("[2001:db8::1]:1"),
                dst: addr("[::1]:65535")
            }
        );
        assert_eq!(complete(b"PROXY UNKNOWN\r\n").0, Announced::KeepReal);
        assert_eq!(
            complete(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").0,
            Announced::KeepReal
        );
        for prefix in [
            &b"P"[..],
            b"PROXY",
            b"PROXY TCP4 1.2.3.4",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        ] {
            assert_eq!(parse(prefix), Ok(Parsed::Incomplete), "{prefix:?}");
        }
        let bad: &[(&[u8], HeaderError)] = &[
            (b"GET / HTTP/1.1\r\n", HeaderError::NotProxy),
            (b"\x16\x03\x01", HeaderError::NotProxy),
            (
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
                HeaderError::V1Protocol,
            ),
            (
                b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
                HeaderError::V1Malformed("an address does not match the protocol"),
            ),
            (
                b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
                HeaderError::V1Malformed("an address does not match the protocol"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                HeaderError::V1Malformed("a port is above 65535"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
                HeaderError::V1Malformed("a port is not a decimal number"),
            ),
            (
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                HeaderError::V1Malformed(
                    "expected `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>` with single spaces",
                ),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\n",
                HeaderError::V1Malformed("a control byte before the CRLF"),
            ),
        ];
        for (input, want) in bad {
            assert_eq!(
                parse(input).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(parse(&long), Err(HeaderError::V1TooLong));
    }

    #[test]
    fn v1_written_as_haproxy() {
        assert_eq!(
            v1(addr("127.0.0.1:40000"), addr("127.0.0.2:80")),
            b"PROXY TCP4 127.0.0.1 127.0.0.2 40000 80\r\n"
        );
        assert_eq!(
            v1(addr("127.0.0.1:40000"), addr("[::1]:80")),
            b"PROXY TCP6 ::ffff:127.0.0.1 ::1 40000 80\r\n"
        );
    }

    #[test]
    fn v2_round_trips_and_local() {
        let (s4, d4) = (addr("10.0.0.1:1234"), addr("10.0.0.2:443"));
        let h = v2(Some((s4, d4)), &[(tlv::ALPN, b"http/1.1".to_vec())], true);
        assert_eq!(&h[12..14], &[0x21, 0x11]);
        assert_eq!(
            complete(&[h.as_slice(), b"rest"].concat()),
            (Announced::Addresses { src: s4, dst: d4 }, h.len())
        );
        let (s6, d6) = (addr("[2001:db8::5]:1"), addr("[2001:db8::6]:2"));
        let h = v2(Some((s6, d6)), &[], false);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(complete(&h).0, Announced::Addresses { src: s6, dst: d6 });
        let local = v2(None, &[], false);
        assert_eq!(local, [&V2_SIGNATURE[..], &[0x20, 0, 0, 0]].concat());
        assert_eq!(complete(&local), (Announced::KeepReal, 16));
        // Every prefix is incomplete, never an error.
        let h = v2(
            Some((s4, d4)),
            &[(tlv::SSL, ssl_tlv(None, true, false))],
            true,
        );
        for i in 0..h.len() {
            assert_eq!(parse(&h[..i]), Ok(Parsed::Incomplete), "prefix {i}");
        }
    }

    #[test]
    fn v2_refusals() {
        let mut h = v2(Some((addr("10.0.0.1:1"), addr("10.0.0.2:2"))), &[], true);
        let crc_at = 16 + 12 + 3;
        h[crc_at] ^= 1;
        assert_eq!(parse(&h), Err(HeaderError::V2Checksum));
        let mut h = v2(
            Some((addr("10.0.0.1:1"), addr("10.0.0.2:2"))),
            &[(0xe0, vec![1, 2])],
            false,
        );
        // The TLV claims more than the header holds.
        let tlv_len_at = 16 + 12 + 1;
        h[tlv_len_at + 1] = 9;
        assert_eq!(parse(&h), Err(HeaderError::V2Tlv));
        let mut h = v2(None, &[], false);
        h[12] = 0x22;
        assert_eq!(parse(&h), Err(HeaderError::V2Command(0x22)));
        h[12] = 0x11;
        assert_eq!(parse(&h[..13]), Err(HeaderError::V2Command(0x11)));
        // PROXY over TCP4 with a 4-byte address block.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&h), Err(HeaderError::V2Short { len: 4, need: 12 }));
        // UNIX sockets and UDP are accepted and ignored.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x12, 0, 12]);
        h.extend_from_slice(&[0; 12]);
        assert_eq!(complete(&h).0, Announced::KeepReal);
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn ssl_tlv_layout() {
        assert_eq!(ssl_tlv(None, true, true), [0, 0, 0, 0, 0]);
        let facts = Handshake {
            version: "TLSv1.3",
            cipher: Some("TLS_AES_128_GCM_SHA256"),
            alpn: None,
            sni: None,
            client_cert: true,
            client_cn: Some("alice".into()),
            client_leaf: None,
        };
        let v = ssl_tlv(Some(&facts), true, false);
        let mut want = vec![0x07, 0, 0, 0, 0, 0x21, 0, 7];
        want.extend_from_slice(b"TLSv1.3");
        want.extend_from_slice(&[0x22, 0, 5]);
        want.extend_from_slice(b"alice");
        assert_eq!(v, want);
    }

    proptest! {
        #[test]
        fn never_panics_and_bounds_hold(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Parsed::Complete { len, .. }) = parse(&bytes) {
                prop_assert!(len <= bytes.len());
                // The shortest header: `PROXY UNKNOWN\r\n`.
                prop_assert!(len >= 15);
            }
        }

        #[test]
        fn never_panics_after_a_valid_start(start in 0usize..5, tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let starts: [&[u8]; 5] = [b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"\r\n\r\n\0\r\nQUIT\n\x21\x11", b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00"];
            let bytes = [starts[start], &tail].concat();
            if let Ok(Parsed::Complete { len, .. }) = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }

        #[test]
        fn v1_prefixes_and_garbage(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sp in any::<u16>(), dp in any::<u16>(), tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let s = SocketAddr::from((src, sp));
            let d = SocketAddr::from((dst, dp));
            let line = v1(s, d);
            for i in 0..line.len() {
                prop_assert_eq!(parse(&line[..i]), Ok(Parsed::Incomplete));
            }
            let full = [line.as_slice(), &tail].concat();
            prop_assert_eq!(parse(&full), Ok(Parsed::Complete { announced: Announced::Addresses { src: s, dst: d }, len: line.len() }));
        }

        #[test]
        fn v2_round_trip(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), sp in any::<u16>(), dp in any::<u16>(), value in proptest::collection::vec(any::<u8>(), 0..64), crc in any::<bool>()) {
            let s = SocketAddr::from((Ipv6Addr::from(src), sp));
            let d = SocketAddr::from((Ipv6Addr::from(dst), dp));
            let h = v2(Some((s, d)), &[(tlv::AUTHORITY, value)], crc);
            prop_assert_eq!(parse(&h), Ok(Parsed::Complete { announced: Announced::Addresses { src: s, dst: d }, len: h.len() }));
        }
    }
}
