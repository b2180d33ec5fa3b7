//! Raw-socket WebSocket peers for malformed frames: what no WebSocket
//! library will send. A client that writes hand-built frames after its own
//! upgrade request, and a backend that completes the handshake and then
//! writes hand-built frames, keeping what it gets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::ws::WS_DEADLINE;

/// The mask key of every hand-built masked frame.
const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// One frame with its first byte given whole (FIN, RSV bits, opcode), any
/// payload length (the extended length forms too), masked or not.
pub fn frame(b0: u8, mask: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    let bit = if mask { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => f.push(bit | n as u8),
        n @ 126..=0xffff => {
            f.push(bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(bit | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        f.extend_from_slice(&KEY);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A masked client frame.
pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame((u8::from(fin) << 7) | opcode, true, payload)
}

/// A close frame's payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Reads one unmasked server frame (≤ 125 bytes): (opcode, payload).
pub fn read_server_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[1] & 0x80, 0, "frames to a client are not masked");
    let mut payload = vec![0u8; usize::from(h[1] & 0x7f)];
    s.read_exact(&mut payload).unwrap();
    (h[0] & 0x0f, payload)
}

/// The close code of a close frame's payload.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Reads an HTTP head up to its blank line (or the end of the stream).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A raw-socket WebSocket handshake: the upgrade request followed, in the
/// same write, by `early` (frames a client pipelines), then the server's
/// head read up to its end. Panics (with the proxy's log) unless it is 101.
pub fn raw_upgrade(port: u16, early: &[u8], log: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WS_DEADLINE)).unwrap();
    let mut first = b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    first.extend_from_slice(early);
    s.write_all(&first).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}\n{log}");
    s
}

/// A backend that completes one handshake, writes `after_101`, then reads
/// and keeps what it gets until the proxy closes (never answering, not
/// even pings): the bytes arrive on the receiver.
pub fn raw_backend(after_101: Vec<u8>) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let head = read_head(&mut s);
        let Some(key) = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        }) else {
            return;
        };
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        answer.extend_from_slice(&after_101);
        s.write_all(&answer).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let _ = tx.send(got);
    });
    (addr, rx)
}

/// Unmasks the frames of a client-to-server byte stream: (opcode, payload).
pub fn client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 6 {
        assert!(bytes[1] & 0x80 != 0, "frames to a server are masked");
        let len = usize::from(bytes[1] & 0x7f);
        assert!(len <= 125);
        let key = [bytes[2], bytes[3], bytes[4], bytes[5]];
        let payload = bytes[6..6 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        frames.push((bytes[0] & 0x0f, payload));
        bytes = &bytes[6 + len..];
    }
    frames
}
