//! MQTT client-id stickiness in mode tcp (corpus file 30): `stick on
//! req.payload(0,0),mqtt_field_value(connect,client_identifier)` pins each
//! MQTT client id to a server, through the real binary, side by side with
//! Debian's HAProxy 2.6. The servers are raw TCP listeners in the test that
//! answer with their name and the bytes they received (so the CONNECT
//! packet read for the key must still reach the server, whole).
//!
//! HAProxy waits for the packet only with a `tcp-request content` rule,
//! which wsgate does not have: its configuration gets
//! `tcp-request content accept if { req.payload(0,0),mqtt_is_valid }`;
//! wsgate's waits (at most `tcp-request inspect-delay`) by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use balance_support::{haproxy_bin, Haproxy};
use common::{free_port, skip_unless_ci, Wsgate};

const DEFAULTS: &str =
    "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n";

/// A CONNECT packet (MQTT 3.1.1) for `id`.
fn connect_packet(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend((id.len() as u16).to_be_bytes());
    body.extend(id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// A server that reads one CONNECT packet (known length) and answers
/// `<name>:` followed by what it read, then closes.
fn start_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut head = [0u8; 2];
                if conn.read_exact(&mut head).is_err() {
                    return;
                }
                let mut rest = vec![0u8; usize::from(head[1])];
                if conn.read_exact(&mut rest).is_err() {
                    return;
                }
                let mut reply = format!("{name}:").into_bytes();
                reply.extend(head);
                reply.extend(rest);
                let _ = conn.write_all(&reply);
            });
        }
    });
    addr
}

/// Connects as MQTT client `id`; the server that answered, after checking
/// that it received the packet unchanged.
fn server_for(proxy: SocketAddr, id: &str) -> String {
    let mut s = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let packet = connect_packet(id);
    s.write_all(&packet).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let colon = reply
        .iter()
        .position(|&b| b == b':')
        .unwrap_or_else(|| panic!("{id}: no answer ({reply:?})"));
    assert_eq!(
        &reply[colon + 1..],
        &packet[..],
        "{id}: the server got the packet"
    );
    String::from_utf8_lossy(&reply[..colon]).into_owned()
}

fn config(port: u16, s1: SocketAddr, s2: SocketAddr, haproxy: bool) -> String {
    let wait = if haproxy {
        "    tcp-request content accept if { req.payload(0,0),mqtt_is_valid }\n"
    } else {
        ""
    };
    format!(
        "{DEFAULTS}frontend mqtt\n    bind 127.0.0.1:{port}\n    default_backend brokers\n\
         backend brokers\n    balance roundrobin\n    tcp-request inspect-delay 5s\n{wait}\
         \x20   stick-table type string len 32 size 100k expire 30m\n\
         \x20   stick on req.payload(0,0),mqtt_field_value(connect,client_identifier)\n\
         \x20   server s1 {s1}\n    server s2 {s2}\n"
    )
}

/// Each client id stays on the server its first connection got, where
/// round robin alone would alternate between the two servers.
#[test]
fn mqtt_clients_stick_to_their_server_by_client_id() {
    let (s1, s2) = (start_server("s1"), start_server("s2"));
    let ids = [
        "alpha", "alpha", "beta", "alpha", "beta", "gamma", "gamma", "alpha",
    ];
    // Every connection of a client id on the server of its first one.
    let pinned = |servers: &[String]| {
        ids.iter().zip(servers).all(|(id, srv)| {
            let first = ids.iter().position(|i| i == id).unwrap();
            servers[first] == *srv
        })
    };
    let port = free_port();
    let gate = Wsgate::start(&config(port, s1, s2, false));
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let ours: Vec<String> = ids.iter().map(|id| server_for(proxy, id)).collect();
    assert!(pinned(&ours), "{ours:?}\n{}", gate.log());
    match haproxy_bin() {
        Some(bin) => {
            let hport = free_port();
            let haddr = SocketAddr::from(([127, 0, 0, 1], hport));
            let _h = Haproxy::start(&bin, &config(hport, s1, s2, true), &[haddr]);
            let theirs: Vec<String> = ids.iter().map(|id| server_for(haddr, id)).collect();
            assert!(pinned(&theirs), "haproxy: {theirs:?}");
        }
        None => skip_unless_ci("haproxy is not installed: wsgate alone"),
    }
}

/// Bytes that are not an MQTT CONNECT give no key: the connection is
/// balanced as usual and its bytes still reach the server.
#[test]
fn other_protocols_are_balanced_and_forwarded() {
    let (s1, s2) = (start_server("s1"), start_server("s2"));
    let port = free_port();
    let gate = Wsgate::start(&config(port, s1, s2, false));
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    let mut names = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect_timeout(&proxy, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // A PUBLISH-looking packet: type 3.
        s.write_all(&[0x30, 3, 0, 1, b'x']).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        assert!(
            reply.ends_with(&[0x30, 3, 0, 1, b'x']),
            "{reply:?}\n{}",
            gate.log()
        );
        names.push(String::from_utf8_lossy(&reply[..2]).into_owned());
    }
    assert!(names.iter().all(|n| n == "s1" || n == "s2"), "{names:?}");
}
