//! Request smuggling: ambiguous requests sent as raw bytes to wsgate and,
//! side by side, to Debian's HAProxy 2.6, each in front of its own
//! recording backend. For every case: the status the client got and what
//! reached the backend. wsgate must never forward what HAProxy refuses,
//! never let a request turn into two at the backend, and match the verdict
//! pinned here (docs/security.md has the table and explains each
//! difference: wsgate is stricter or equal, never looser).
//!
//! Every request says `Connection: close` and carries a second request
//! (`GET /smuggled`) where a confused parser would find one: a backend
//! that sees `/smuggled`, or two requests for one, was smuggled to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod balance_support;
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use balance_support::{haproxy_bin, Haproxy};
use common::http::{Script, ScriptedBackend};
use common::{free_port, Wsgate};

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// (name, raw request, wsgate's status, HAProxy 2.6's status). 0: the
/// connection was closed without a response.
fn cases() -> Vec<(&'static str, String, u16, u16)> {
    let post = |headers: &str, body: &str| {
        format!("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\n{body}")
    };
    vec![
        (
            "control: valid chunked body",
            post(
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            200,
            200,
        ),
        (
            "CL + TE",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            200,
        ),
        (
            "TE + CL (order swapped)",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            200,
        ),
        (
            "TE: chunked, identity",
            post(
                "Transfer-Encoding: chunked, identity\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "TE: identity, chunked",
            post(
                "Transfer-Encoding: identity, chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            501,
            422,
        ),
        (
            "TE: gzip, chunked",
            post(
                "Transfer-Encoding: gzip, chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            501,
            422,
        ),
        (
            "TE: xchunked",
            post("Transfer-Encoding: xchunked\r\n", &format!("0\r\n\r\n{SMUGGLED}")),
            400,
            400,
        ),
        (
            "TE twice: chunked, chunked",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "TE in HTTP/1.0",
            format!(
                "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
            400,
            200,
        ),
        (
            "duplicate CL, different",
            post(
                "Content-Length: 5\r\nContent-Length: 40\r\n",
                &format!("hello{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "duplicate CL, same",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            200,
            200,
        ),
        (
            "CL: 5, 40 in one header",
            post("Content-Length: 5, 40\r\n", &format!("hello{SMUGGLED}")),
            400,
            400,
        ),
        (
            "CL: +5",
            post("Content-Length: +5\r\n", &format!("hello{SMUGGLED}")),
            400,
            400,
        ),
        (
            "space before colon",
            post("Content-Length : 5\r\n", &format!("hello{SMUGGLED}")),
            400,
            400,
        ),
        (
            "obs-fold in a header",
            post("X-Folded: a\r\n b\r\nContent-Length: 5\r\n", "hello"),
            400,
            200,
        ),
        (
            "obs-fold continuing Transfer-Encoding",
            post(
                "Transfer-Encoding: identity\r\n chunked\r\nContent-Length: 5\r\n",
                &format!("hello{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "bare LF line endings",
            format!(
                "POST / HTTP/1.1\nHost: a\nConnection: close\nContent-Length: 5\n\nhello{SMUGGLED}"
            ),
            200,
            200,
        ),
        (
            "bare CR in a header value",
            post("X-A: a\rb\r\nContent-Length: 5\r\n", "hello"),
            400,
            400,
        ),
        (
            "NUL in a header value",
            post("X-A: a\0b\r\nContent-Length: 5\r\n", "hello"),
            400,
            200,
        ),
        (
            "huge chunk size",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("ffffffffffffffffffff\r\nx\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "chunk size 0x5",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("0x5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "chunk extension with a NUL",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("5;a\0b\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            200,
        ),
        (
            "chunk extension with a bare LF",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("5;a\nb\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            400,
        ),
        (
            "chunk extension with an unterminated quote",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("5;a=\"b\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            200,
        ),
        (
            "chunk extension without a name",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("5;\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
            200,
        ),
        (
            "control: valid chunk extension",
            post(
                "Transfer-Encoding: chunked\r\n",
                "5;name=\"va lue\"\r\nhello\r\n0\r\n\r\n",
            ),
            200,
            200,
        ),
        (
            "URI over tune.bufsize",
            format!(
                "GET /{} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                "u".repeat(20_000)
            ),
            414,
            400,
        ),
        (
            "headers over tune.bufsize",
            post(
                &format!("X-Big: {}\r\nContent-Length: 0\r\n", "h".repeat(20_000)),
                "",
            ),
            431,
            400,
        ),
        (
            "unknown method",
            "FROB / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned(),
            200,
            200,
        ),
        (
            "method with a bad character",
            "GE(T / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned(),
            400,
            400,
        ),
        (
            "HTTP/0.9 request line",
            "GET /\r\n\r\n".to_owned(),
            400,
            400,
        ),
        (
            "Upgrade with a body",
            format!(
                "POST /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
                 Content-Length: 5\r\n\r\nhello{SMUGGLED}"
            ),
            200,
            200,
        ),
        (
            "Upgrade: h2c, bare LF line endings",
            "GET / HTTP/1.1\nHost: a\nConnection: Upgrade, close\nUpgrade: h2c\n\n".to_owned(),
            200,
            200,
        ),
        (
            "Upgrade: h2c",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                .to_owned(),
            200,
            200,
        ),
        (
            "two Host headers",
            post("Host: b\r\nContent-Length: 0\r\n", ""),
            400,
            400,
        ),
    ]
}

/// The status of the first response on a connection (0: closed without
/// one), reading until the proxy closes.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

struct Side {
    addr: SocketAddr,
    backend: ScriptedBackend,
}

/// What one proxy did with one request: the client's status, how many
/// requests reached the backend, and whether `/smuggled` was one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    status: u16,
    forwarded: usize,
    smuggled: bool,
}

fn run(side: &Side, request: &[u8]) -> Verdict {
    let before = side.backend.seen().len();
    let status = send_raw(side.addr, request);
    // The backend records what it read; give a refused body's head time
    // to land.
    std::thread::sleep(Duration::from_millis(100));
    let seen = side.backend.seen();
    let new = &seen[before..];
    Verdict {
        status,
        forwarded: new.len(),
        smuggled: new.iter().any(|m| m.start.contains("/smuggled")),
    }
}

#[test]
fn ambiguous_requests_side_by_side_with_haproxy() {
    let template = |port: u16, server: SocketAddr| {
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 3s\n    timeout server 3s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
             backend be\n    server s1 {server}\n"
        )
    };
    let wb = ScriptedBackend::start(Script::Ok);
    let port = free_port();
    let _wsgate = Wsgate::start(&template(port, wb.addr));
    let mut sides = vec![Side {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        backend: wb,
    }];
    let _haproxy = match haproxy_bin() {
        Some(bin) => {
            let hb = ScriptedBackend::start(Script::Ok);
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let h = Haproxy::start(&bin, &template(port, hb.addr), &[addr]);
            sides.push(Side { addr, backend: hb });
            Some(h)
        }
        None => {
            common::skip_unless_ci("haproxy is not installed: no side-by-side comparison");
            None
        }
    };
    let mut table = String::from("| case | wsgate | HAProxy 2.6 |\n|---|---|---|\n");
    let mut failures = Vec::new();
    for (name, request, want_wsgate, want_haproxy) in cases() {
        let verdicts: Vec<Verdict> = sides.iter().map(|s| run(s, request.as_bytes())).collect();
        let show = |v: &Verdict| {
            format!(
                "{} {}{}",
                v.status,
                if v.forwarded == 0 {
                    "not forwarded".to_owned()
                } else {
                    format!("{} forwarded", v.forwarded)
                },
                if v.smuggled { " SMUGGLED" } else { "" }
            )
        };
        let h = verdicts.get(1);
        table.push_str(&format!(
            "| {name} | {} | {} |\n",
            show(&verdicts[0]),
            h.map_or("-".to_owned(), show)
        ));
        let w = verdicts[0];
        if w.status != want_wsgate {
            failures.push(format!(
                "{name}: wsgate answered {} (expected {want_wsgate})",
                w.status
            ));
        }
        if w.smuggled || w.forwarded > 1 {
            failures.push(format!("{name}: wsgate forwarded {w:?}"));
        }
        // Refused (4xx, 501): nothing reaches the server.
        if (400..502).contains(&w.status) && w.forwarded > 0 {
            failures.push(format!("{name}: wsgate refused but forwarded {w:?}"));
        }
        if let Some(h) = h {
            if h.status != want_haproxy {
                failures.push(format!(
                    "{name}: HAProxy answered {} (expected {want_haproxy})",
                    h.status
                ));
            }
            if h.forwarded == 0 && (400..500).contains(&h.status) && w.forwarded > 0 {
                failures.push(format!("{name}: HAProxy refused it, wsgate forwarded it"));
            }
        }
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}
