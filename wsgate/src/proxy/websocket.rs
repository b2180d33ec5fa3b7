//! The WebSocket handshake at the HTTP layer: the checks wsgate's
//! `websocket` settings ask for before any server is contacted, and the
//! frame policies the tunnel will enforce after the `101`.
//!
//! Stage: called by the session for a request that asks to upgrade to
//! `websocket`; knows nothing of sockets. With no `websocket` setting,
//! nothing is checked and the tunnel only follows frame boundaries.

use super::http1::head::{RequestHead, ResponseHead};
use super::tunnel::Keepalive;
use crate::config::model::WebSocketSettings;
use crate::ws::frame::{Policy, Strict};

/// Why a handshake is refused; each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Origin not allowed by `websocket allow-origin`")]
    Origin,
    #[error("bad WebSocket handshake: {0}")]
    Handshake(&'static str),
    #[error("unsupported Sec-WebSocket-Version (13 is)")]
    Version,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Origin => 403,
            Refusal::Handshake(_) => 400,
            Refusal::Version => 426,
        }
    }

    /// Extra response header: RFC 6455 §4.4 says which version to use.
    pub fn header(self) -> Option<&'static str> {
        matches!(self, Refusal::Version).then_some("Sec-WebSocket-Version: 13")
    }
}

/// Whether the request upgrades to WebSocket.
pub fn is_websocket(request: &RequestHead) -> bool {
    request
        .upgrade
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("websocket"))
}

fn header<'a>(request: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .iter()
        .find(|h| h.is(name))
        .map(|h| h.value.trim_ascii())
}

/// Checks a WebSocket handshake against the frontend's and the backend's
/// settings: `allow-origin` lists (each list that is set must match), and
/// with `strict`, RFC 6455 §4.2.1.
pub fn check_handshake(
    request: &RequestHead,
    frontend: &WebSocketSettings,
    backend: &WebSocketSettings,
) -> Result<(), Refusal> {
    let origin = header(request, "origin").map(String::from_utf8_lossy);
    for settings in [frontend, backend] {
        if settings.allow_origins.is_empty() {
            continue;
        }
        let allowed = origin
            .as_deref()
            .is_some_and(|o| settings.allow_origins.iter().any(|p| p.matches(o)));
        if !allowed {
            return Err(Refusal::Origin);
        }
    }
    if frontend.strict || backend.strict {
        if request.method != "GET" {
            return Err(Refusal::Handshake("the method must be GET"));
        }
        // The key is 16 random bytes in base64: 24 characters ending "==".
        let key_ok = header(request, "sec-websocket-key").is_some_and(|k| {
            k.len() == 24
                && k.ends_with(b"==")
                && k[..22]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        });
        if !key_ok {
            return Err(Refusal::Handshake("missing or malformed Sec-WebSocket-Key"));
        }
        if header(request, "sec-websocket-version") != Some(b"13") {
            return Err(Refusal::Version);
        }
    }
    Ok(())
}

/// What the tunnel enforces after the `101`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelPlan {
    /// What the client may send.
    pub client: Policy,
    /// What the server may send.
    pub server: Policy,
    pub keepalive: Option<Keepalive>,
}

/// The plan for the tunnel after `response` (the `101`): size limits apply
/// to what the client sends, rate limits to the side they name; `strict`
/// checks both directions, with RSV1 allowed on a message's first frame
/// when the server accepted permessage-deflate (RFC 7692 §5.1: an offer
/// alone negotiates nothing). Sizes are wire sizes: with compression they
/// count compressed bytes.
pub fn plan(settings: &WebSocketSettings, response: &ResponseHead) -> TunnelPlan {
    let deflate = deflate_accepted(response);
    let strict = |masked| {
        settings.strict.then_some(Strict {
            masked,
            rsv1_allowed: deflate,
        })
    };
    let client = Policy {
        max_frame: settings.max_frame_size,
        max_message: settings.max_message_size,
        strict: strict(true),
        rate: settings.rate_limit,
    };
    let server = Policy {
        strict: strict(false),
        rate: settings.server_rate_limit,
        ..Policy::default()
    };
    let keepalive = settings.keepalive.map(|(interval, timeout)| Keepalive {
        interval,
        timeout,
        server: settings.keepalive_server,
    });
    TunnelPlan {
        client,
        server,
        keepalive,
    }
}

/// Whether the `101` accepted permessage-deflate: one of the extensions
/// its `Sec-WebSocket-Extensions` lines name (each an extension token
/// followed by `;` parameters, several separated by `,`).
fn deflate_accepted(response: &ResponseHead) -> bool {
    response
        .headers
        .iter()
        .filter(|h| h.is("sec-websocket-extensions"))
        .flat_map(|h| h.value.split(|b| *b == b','))
        .any(|ext| {
            let name = ext.split(|b| *b == b';').next().unwrap_or_default();
            name.trim_ascii()
                .eq_ignore_ascii_case(b"permessage-deflate")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::OriginPattern;
    use crate::proxy::http1::head::parse_request;

    fn request(extra: &str) -> RequestHead {
        let text = format!(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n"
        );
        parse_request(text.as_bytes(), 16384).unwrap().unwrap().0
    }

    const GOOD: &str =
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn strict_handshakes() {
        let strict = WebSocketSettings {
            strict: true,
            ..Default::default()
        };
        let none = WebSocketSettings::default();
        assert_eq!(check_handshake(&request(GOOD), &strict, &none), Ok(()));
        let old = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n";
        assert_eq!(
            check_handshake(&request(old), &none, &strict),
            Err(Refusal::Version)
        );
        let no_key = "Sec-WebSocket-Version: 13\r\n";
        assert_eq!(
            check_handshake(&request(no_key), &strict, &none)
                .unwrap_err()
                .status(),
            400
        );
        // Without `strict`, anything goes through to the server.
        assert_eq!(check_handshake(&request(no_key), &none, &none), Ok(()));
    }

    #[test]
    fn rsv1_is_allowed_only_when_the_101_accepts_deflate() {
        use crate::proxy::http1::head::parse_response;
        let strict = WebSocketSettings {
            strict: true,
            ..Default::default()
        };
        let allowed = |extra: &str| {
            let text =
                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{extra}\r\n");
            let (head, _) = parse_response(text.as_bytes(), 16384, false)
                .unwrap()
                .unwrap();
            let p = plan(&strict, &head);
            (
                p.client.strict.unwrap().rsv1_allowed,
                p.server.strict.unwrap().rsv1_allowed,
            )
        };
        assert_eq!(allowed(""), (false, false));
        let deflate = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
        assert_eq!(allowed(deflate), (true, true));
        assert_eq!(
            allowed("Sec-WebSocket-Extensions: x-foo, Permessage-Deflate\r\n"),
            (true, true)
        );
        assert_eq!(
            allowed("Sec-WebSocket-Extensions: x-permessage-deflate-ish\r\n"),
            (false, false)
        );
    }

    #[test]
    fn origins_are_checked_per_list() {
        let fe = WebSocketSettings {
            allow_origins: vec![OriginPattern::parse("https://*.example.com").unwrap()],
            ..Default::default()
        };
        let none = WebSocketSettings::default();
        let from = |o: &str| request(&format!("Origin: {o}\r\n"));
        assert_eq!(
            check_handshake(&from("https://app.example.com"), &fe, &none),
            Ok(())
        );
        assert_eq!(
            check_handshake(&from("https://evil.net"), &fe, &none),
            Err(Refusal::Origin)
        );
        assert_eq!(
            check_handshake(&request(""), &fe, &none),
            Err(Refusal::Origin)
        );
    }
}
