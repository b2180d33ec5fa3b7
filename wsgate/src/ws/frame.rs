//! WebSocket frame boundaries (RFC 6455 §5.2), from headers alone.
//!
//! Stage: the tunnel feeds every chunk it copies to a [`FrameTracker`], one
//! per direction. The tracker reads only the 2–14 header bytes of each frame
//! and skips payload lengths arithmetically: nothing is copied or unmasked
//! (DESIGN.md principle 4). What it gives the tunnel is knowledge of where
//! messages begin and end, so a close frame can be sent *between* messages
//! (on stop, reload or idle timeout) instead of cutting one in half.
//!
//! A stream that stops looking like WebSocket framing makes the tracker
//! report an error; the tunnel then goes on copying blindly (the bytes are
//! still the peers' business) but can no longer close at a boundary.

/// Largest frame header: 2 bytes, 8 of extended length, 4 of mask key.
const MAX_HEADER: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A complete frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..3 as the low three bits (RSV1 = 4).
    pub rsv: u8,
    pub opcode: Opcode,
    pub masked: bool,
    pub payload_len: u64,
}

/// What one direction of a WebSocket may carry (`websocket ...` settings).
/// The default allows anything the framing allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub max_frame: Option<u64>,
    pub max_message: Option<u64>,
    /// RFC 6455 checks as violations (else they only stop the tracking):
    /// framing errors, masking (`Some(true)`: frames must be masked, as a
    /// client's; `Some(false)`: must not be, as a server's), and RSV bits
    /// other than RSV1 with a negotiated extension.
    pub strict: Option<Strict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strict {
    pub masked: bool,
    /// An extension (permessage-deflate) was negotiated: RSV1 may be set.
    pub rsv1_allowed: bool,
}

/// A frame the policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("frame of {0} bytes is over the limit")]
    FrameTooBig(u64),
    #[error("message of {0} bytes is over the limit")]
    MessageTooBig(u64),
    #[error("protocol error: {0}")]
    Protocol(FrameError),
}

impl Violation {
    /// RFC 6455 §7.4.1: 1009 for sizes, 1002 for protocol errors.
    pub fn is_size(&self) -> bool {
        matches!(
            self,
            Violation::FrameTooBig(_) | Violation::MessageTooBig(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved opcode {0}")]
    ReservedOpcode(u8),
    #[error("64-bit payload length with the most significant bit set")]
    LengthTooLarge,
    #[error("control frame fragmented or longer than 125 bytes")]
    BadControlFrame,
    #[error("continuation frame outside a fragmented message")]
    UnexpectedContinuation,
    #[error("new data message inside a fragmented message")]
    ExpectedContinuation,
    #[error("frame masking is wrong for its direction")]
    Masking,
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
}

/// Follows the frames of one direction of a WebSocket connection.
#[derive(Debug, Clone, Default)]
pub struct FrameTracker {
    /// Header bytes gathered so far (a header may be split across reads).
    header: [u8; MAX_HEADER],
    header_len: u8,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Inside a frame's payload (possibly of length 0, just completed).
    in_payload: bool,
    /// A fragmented data message has started and not yet ended.
    in_message: bool,
    /// The last complete header seen.
    last: Option<FrameHeader>,
    failed: Option<FrameError>,
    policy: Policy,
    /// Payload bytes of the current data message so far.
    message_len: u64,
}

/// What [`FrameTracker::feed`] found in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fed {
    /// Offset just after the first message boundary reached in the chunk
    /// (the end of a complete message or control frame), if any.
    pub first_boundary: Option<usize>,
    /// A close frame was completed in this chunk.
    pub saw_close: bool,
    /// The first frame the policy refuses, and the offset of its first
    /// byte in the chunk (`None` when it began in an earlier chunk). The
    /// tracker stops there.
    pub violation: Option<(Option<usize>, Violation)>,
}

impl FrameTracker {
    pub fn with_policy(policy: Policy) -> FrameTracker {
        FrameTracker {
            policy,
            ..FrameTracker::default()
        }
    }

    /// Whether the stream is between messages right now: no frame header or
    /// payload in progress and no fragmented message open.
    pub fn at_boundary(&self) -> bool {
        self.failed.is_none() && self.header_len == 0 && !self.in_payload && !self.in_message
    }

    pub fn error(&self) -> Option<FrameError> {
        self.failed
    }

    /// Consumes one chunk of the stream, as it is copied. Headers that lie
    /// whole inside the chunk (the usual case) are parsed in place; only a
    /// header split across reads is gathered into the tracker.
    pub fn feed(&mut self, chunk: &[u8]) -> Fed {
        let mut fed = Fed::default();
        let mut pos = 0usize;
        while pos < chunk.len() && self.failed.is_none() {
            if self.in_payload {
                let available = (chunk.len() - pos) as u64;
                if self.remaining > available {
                    self.remaining -= available;
                    return fed;
                }
                // The payload ends inside this chunk (≤ available: fits usize).
                pos += self.remaining as usize;
                self.remaining = 0;
                self.end_frame(pos, &mut fed);
                continue;
            }
            let prev = usize::from(self.header_len);
            let n = (MAX_HEADER - prev).min(chunk.len() - pos);
            let parsed = if prev == 0 {
                parse_header(&chunk[pos..], self.in_message)
            } else {
                self.header[prev..prev + n].copy_from_slice(&chunk[pos..pos + n]);
                parse_header(&self.header[..prev + n], self.in_message)
            };
            match parsed {
                Ok(Some((h, header_len))) => {
                    if let Some(v) = self.check(&h) {
                        let start = (prev == 0).then_some(pos);
                        fed.violation = Some((start, v));
                        self.failed = Some(match v {
                            Violation::Protocol(e) => e,
                            _ => FrameError::LengthTooLarge,
                        });
                        return fed;
                    }
                    pos += header_len - prev;
                    self.header_len = 0;
                    self.last = Some(h);
                    self.remaining = h.payload_len;
                    self.in_payload = true;
                    if h.payload_len == 0 {
                        self.end_frame(pos, &mut fed);
                    }
                }
                Ok(None) => {
                    // Incomplete header: keep what there is for next time.
                    if prev == 0 {
                        self.header[..n].copy_from_slice(&chunk[pos..pos + n]);
                    }
                    self.header_len = (prev + n) as u8;
                    pos += n;
                }
                Err(e) => {
                    if self.policy.strict.is_some() {
                        let start = (prev == 0).then_some(pos);
                        fed.violation = Some((start, Violation::Protocol(e)));
                    }
                    self.failed = Some(e);
                }
            }
        }
        fed
    }

    /// The policy's verdict on a new frame; also counts message sizes.
    fn check(&mut self, h: &FrameHeader) -> Option<Violation> {
        let p = &self.policy;
        if let Some(strict) = p.strict {
            if h.masked != strict.masked {
                return Some(Violation::Protocol(FrameError::Masking));
            }
            let allowed = if strict.rsv1_allowed { 0b100 } else { 0 };
            if h.rsv & !allowed != 0 {
                return Some(Violation::Protocol(FrameError::ReservedBits));
            }
        }
        if h.opcode.is_control() {
            return None;
        }
        if p.max_frame.is_some_and(|max| h.payload_len > max) {
            return Some(Violation::FrameTooBig(h.payload_len));
        }
        if h.opcode != Opcode::Continuation {
            self.message_len = 0;
        }
        self.message_len = self.message_len.saturating_add(h.payload_len);
        if p.max_message.is_some_and(|max| self.message_len > max) {
            return Some(Violation::MessageTooBig(self.message_len));
        }
        None
    }

    fn end_frame(&mut self, offset: usize, fed: &mut Fed) {
        self.in_payload = false;
        let Some(h) = self.last else { return };
        match h.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => self.in_message = !h.fin,
            Opcode::Close => fed.saw_close = true,
            Opcode::Ping | Opcode::Pong => {}
        }
        if !self.in_message && fed.first_boundary.is_none() {
            fed.first_boundary = Some(offset);
        }
    }
}

/// Parses a frame header at the start of `bytes`: `Ok(None)` when more
/// bytes are needed, else the header and its length.
fn parse_header(
    bytes: &[u8],
    in_message: bool,
) -> Result<Option<(FrameHeader, usize)>, FrameError> {
    let [b0, b1, rest @ ..] = bytes else {
        return Ok(None);
    };
    let (b0, b1) = (*b0, *b1);
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let masked = b1 & 0x80 != 0;
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    if bytes.len() < header_len {
        return Ok(None);
    }
    let payload_len = match ext {
        2 => u64::from(u16::from_be_bytes([rest[0], rest[1]])),
        8 => {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(&rest[..8]);
            let len = u64::from_be_bytes(eight);
            if len >> 63 != 0 {
                return Err(FrameError::LengthTooLarge);
            }
            len
        }
        _ => u64::from(b1 & 0x7f),
    };
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(FrameError::ReservedOpcode(b0 & 0x0f))?;
    if opcode.is_control() && (!fin || payload_len > 125) {
        return Err(FrameError::BadControlFrame);
    }
    match opcode {
        Opcode::Continuation if !in_message => return Err(FrameError::UnexpectedContinuation),
        Opcode::Text | Opcode::Binary if in_message => {
            return Err(FrameError::ExpectedContinuation)
        }
        _ => {}
    }
    Ok(Some((
        FrameHeader {
            fin,
            rsv: (b0 >> 4) & 0b111,
            opcode,
            masked,
            payload_len,
        },
        header_len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes one frame (payload zeros; masking irrelevant to framing).
    fn frame(fin: bool, opcode: u8, masked: bool, len: usize) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => out.push(mask_bit | len as u8),
            126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
        out.extend(std::iter::repeat_n(0u8, len));
        out
    }

    #[test]
    fn boundaries_fall_after_whole_messages() {
        let mut stream = frame(true, 1, true, 5);
        let first_end = stream.len();
        stream.extend(frame(false, 2, true, 300)); // fragmented start
        stream.extend(frame(true, 9, true, 0)); // ping inside the message
        stream.extend(frame(true, 0, true, 70_000)); // final fragment
        let mut t = FrameTracker::default();
        let fed = t.feed(&stream);
        assert_eq!(fed.first_boundary, Some(first_end));
        assert!(t.at_boundary());
        assert!(t.error().is_none());
    }

    #[test]
    fn no_boundary_inside_a_fragmented_message() {
        let mut stream = frame(false, 1, false, 3);
        stream.extend(frame(true, 10, false, 2)); // pong between fragments
        let mut t = FrameTracker::default();
        assert_eq!(t.feed(&stream).first_boundary, None);
        assert!(!t.at_boundary());
        let fed = t.feed(&frame(true, 0, false, 1));
        assert!(fed.first_boundary.is_some());
        assert!(t.at_boundary());
    }

    #[test]
    fn close_frames_are_noticed() {
        let mut t = FrameTracker::default();
        let fed = t.feed(&frame(true, 8, true, 2));
        assert!(fed.saw_close);
    }

    #[test]
    fn protocol_errors_are_reported() {
        let cases: [(Vec<u8>, FrameError); 4] = [
            (frame(true, 3, false, 0), FrameError::ReservedOpcode(3)),
            (frame(false, 9, false, 0), FrameError::BadControlFrame),
            (frame(true, 8, false, 126), FrameError::BadControlFrame),
            (frame(true, 0, false, 1), FrameError::UnexpectedContinuation),
        ];
        for (bytes, expected) in cases {
            let mut t = FrameTracker::default();
            t.feed(&bytes);
            assert_eq!(t.error(), Some(expected));
            assert!(!t.at_boundary());
        }
    }

    #[test]
    fn size_limits_stop_at_the_offending_frame() {
        let policy = Policy {
            max_frame: Some(100),
            max_message: Some(150),
            strict: None,
        };
        let mut t = FrameTracker::with_policy(policy);
        let ok = frame(true, 1, true, 100);
        let fed = t.feed(&ok);
        assert!(fed.violation.is_none());
        let mut stream = frame(false, 2, true, 100);
        let second = stream.len();
        stream.extend(frame(true, 0, true, 60)); // message now 160 > 150
        let fed = t.feed(&stream);
        assert_eq!(
            fed.violation,
            Some((Some(second), Violation::MessageTooBig(160)))
        );
        let mut t = FrameTracker::with_policy(policy);
        let fed = t.feed(&frame(true, 2, true, 101));
        assert_eq!(fed.violation, Some((Some(0), Violation::FrameTooBig(101))));
        // Control frames are not data: never counted.
        let mut t = FrameTracker::with_policy(policy);
        assert!(t.feed(&frame(true, 9, true, 125)).violation.is_none());
    }

    #[test]
    fn strict_checks_masking_and_reserved_bits() {
        let client = Policy {
            strict: Some(Strict {
                masked: true,
                rsv1_allowed: false,
            }),
            ..Policy::default()
        };
        let mut t = FrameTracker::with_policy(client);
        let fed = t.feed(&frame(true, 1, false, 3));
        assert_eq!(
            fed.violation,
            Some((Some(0), Violation::Protocol(FrameError::Masking)))
        );
        let mut t = FrameTracker::with_policy(client);
        let mut rsv1 = frame(true, 1, true, 3);
        rsv1[0] |= 0x40;
        let fed = t.feed(&rsv1);
        assert_eq!(
            fed.violation,
            Some((Some(0), Violation::Protocol(FrameError::ReservedBits)))
        );
        let mut t = FrameTracker::with_policy(Policy {
            strict: Some(Strict {
                masked: true,
                rsv1_allowed: true,
            }),
            ..Policy::default()
        });
        assert!(t.feed(&rsv1).violation.is_none());
        let mut t = FrameTracker::with_policy(client);
        let fed = t.feed(&frame(true, 3, true, 0));
        assert_eq!(
            fed.violation,
            Some((Some(0), Violation::Protocol(FrameError::ReservedOpcode(3))))
        );
    }

    proptest! {
        /// However the stream is cut into reads, the tracker ends at the
        /// same place, between messages, with the same boundaries found.
        #[test]
        fn any_split_gives_the_same_result(
            frames in proptest::collection::vec((any::<bool>(), 0usize..200, any::<bool>()), 1..20),
            cuts in proptest::collection::vec(1usize..64, 1..50),
        ) {
            let mut stream = Vec::new();
            for (masked, len, binary) in &frames {
                stream.extend(frame(true, if *binary { 2 } else { 1 }, *masked, *len));
            }
            let mut whole = FrameTracker::default();
            let first = whole.feed(&stream).first_boundary;
            prop_assert!(whole.at_boundary());

            let mut pieces = FrameTracker::default();
            let mut pos = 0;
            let mut first_split = None;
            for cut in cuts.iter().cycle() {
                if pos >= stream.len() { break; }
                let end = (pos + cut).min(stream.len());
                let fed = pieces.feed(&stream[pos..end]);
                if first_split.is_none() {
                    first_split = fed.first_boundary.map(|b| pos + b);
                }
                pos = end;
            }
            prop_assert!(pieces.at_boundary());
            prop_assert_eq!(first, first_split);
        }
    }
}
