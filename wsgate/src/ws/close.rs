//! Close frames that wsgate sends on its own (RFC 6455 §5.5.1, §7.4).
//!
//! When wsgate ends a WebSocket itself (stop, idle timeout), each peer gets
//! a close frame with a code and a reason at a message boundary, so a
//! client sees `1001 Going Away` and knows to reconnect, instead of the
//! `1006` of a bare TCP close. Frames to a server are masked, as a client's
//! must be (§5.3); frames to a client are not.

use ring::rand::{SecureRandom, SystemRandom};

use super::frame::Violation;

/// Close codes wsgate uses (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1001: the proxy is going away (stop) or the connection idled out.
    GoingAway,
    /// 1002: the peer broke the protocol (`websocket strict`).
    ProtocolError,
    /// 1008: the peer sent messages faster than `websocket rate-limit`.
    PolicyViolation,
    /// 1009: a frame or message over `websocket max-*-size`.
    MessageTooBig,
    /// 1012: the service is restarting (a reload removed this server):
    /// reconnecting at once will reach another one.
    ServiceRestart,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::ServiceRestart => 1012,
            CloseCode::ProtocolError => 1002,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
        }
    }
}

impl CloseCode {
    /// The code and reason for a peer that broke the policy.
    pub fn for_violation(v: &Violation) -> (CloseCode, &'static str) {
        match v {
            Violation::FrameTooBig(_) | Violation::MessageTooBig(_) => {
                (CloseCode::MessageTooBig, "message too big")
            }
            Violation::RateLimited => (CloseCode::PolicyViolation, "message rate limit"),
            Violation::Protocol(_) => (CloseCode::ProtocolError, "protocol error"),
        }
    }
}

/// Which peer a frame is for: it decides masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

/// Longest reason that fits a control frame (125 bytes minus the code).
const MAX_REASON: usize = 123;

/// Encodes a close frame for `to`.
pub fn close_frame(code: CloseCode, reason: &str, to: Peer) -> Vec<u8> {
    let mut reason = reason.as_bytes();
    if reason.len() > MAX_REASON {
        reason = &reason[..MAX_REASON];
    }
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.code().to_be_bytes());
    payload.extend_from_slice(reason);
    control_frame(0x8, &payload, to)
}

/// The payload of wsgate's keepalive pings (`websocket keepalive`).
pub const PING_PAYLOAD: &[u8] = b"wsgate keepalive";

/// Encodes a ping frame for `to`.
pub fn ping_frame(to: Peer) -> Vec<u8> {
    control_frame(0x9, PING_PAYLOAD, to)
}

/// A control frame (payload ≤ 125 bytes, as RFC 6455 §5.5 requires).
fn control_frame(opcode: u8, payload: &[u8], to: Peer) -> Vec<u8> {
    let payload = &payload[..payload.len().min(125)];
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.push(0x80 | opcode); // FIN + opcode
    let len = payload.len() as u8; // ≤ 125
    match to {
        Peer::Client => {
            frame.push(len);
            frame.extend_from_slice(payload);
        }
        Peer::Server => {
            let mut key = [0u8; 4];
            // A fixed key would still be valid framing; randomness is what
            // §10.3 asks for, and failure of the system RNG is not a reason
            // to drop the close.
            let _ = SystemRandom::new().fill(&mut key);
            frame.push(0x80 | len);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::FrameTracker;

    #[test]
    fn frames_are_well_formed_for_both_peers() {
        for to in [Peer::Client, Peer::Server] {
            let f = close_frame(CloseCode::GoingAway, "server stopping", to);
            let mut t = FrameTracker::default();
            let mut f = f;
            let fed = t.feed(&mut f);
            assert!(fed.saw_close && t.at_boundary() && t.error().is_none());
            let masked = f[1] & 0x80 != 0;
            assert_eq!(masked, to == Peer::Server);
            let (key, payload) = if masked {
                (&f[2..6], &f[6..])
            } else {
                (&[0u8; 4][..], &f[2..])
            };
            let plain: Vec<u8> = payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(&plain[..2], &1001u16.to_be_bytes());
            assert_eq!(&plain[2..], b"server stopping");
        }
    }

    #[test]
    fn long_reasons_are_cut_to_fit() {
        let f = close_frame(CloseCode::GoingAway, &"x".repeat(300), Peer::Client);
        assert_eq!(f.len(), 2 + 125);
    }
}
