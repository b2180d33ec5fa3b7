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
//!
//! Removing frames: a message over `websocket rate-limit ... action drop`
//! and the pong answering one of wsgate's keepalive pings are taken out of
//! the chunk in place ([`FrameTracker::feed`] compacts the kept bytes; a
//! chunk with nothing removed is not touched). The decision is made on a
//! frame's first byte (its opcode), so a frame header split across reads
//! is never half forwarded. (Should that header then turn out not to be
//! framing at all, its bytes from the earlier read stay removed: the
//! stream is no longer WebSocket, and is copied blindly from there.)
//!
//! Counting: data messages and their payload bytes, drops, and the code of
//! a close frame (its first two payload bytes, unmasked) go into plain
//! per-direction [`DirStats`], read by the tunnel at its end.

use super::counters::MessageSizes;
use super::rate::{Clock, RateAction, RateLimit, TokenBucket};

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
    /// client's; `Some(false)`: must not be, as a server's), RSV bits
    /// (only RSV1, only on a message's first frame, only with
    /// permessage-deflate negotiated) and close frames (code and reason).
    pub strict: Option<Strict>,
    /// `websocket rate-limit`: messages per period from this direction.
    pub rate: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strict {
    pub masked: bool,
    /// permessage-deflate was negotiated: RSV1 may be set on the first
    /// frame of a data message (RFC 7692 §6), never on a continuation or
    /// control frame.
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
    #[error("message rate over the limit")]
    RateLimited,
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
    #[error("close frame with a 1-byte payload")]
    CloseLength,
    /// Its code is not kept: a wider error would widen every tunnel
    /// (two trackers each) for a rare case.
    #[error("close code that may not be sent (RFC 6455 §7.4)")]
    CloseCode,
    #[error("close reason is not UTF-8")]
    CloseReason,
}

/// Follows the frames of one direction of a WebSocket connection.
///
/// Kept small: an idle WebSocket costs little more than its task, and two
/// trackers live in every WebSocket tunnel's task (docs/performance.md,
/// "Idle memory"). What only the `websocket` limits need is boxed apart.
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
    /// Opcode and FIN bit of the last complete header seen.
    last: Option<(Opcode, bool)>,
    failed: Option<FrameError>,
    /// The `websocket` limits of this direction, with their running state;
    /// `None` when none is set (the default).
    limits: Option<Box<Limits>>,
    /// Payload bytes of the current data message so far (for `max_message`
    /// and the size histogram).
    message_len: u64,
    /// The current data message is being dropped (rate limit).
    dropping: bool,
    /// The current frame (header and payload) is left out of the stream.
    skip_frame: bool,
    /// Pongs still to come for wsgate's keepalive pings: taken out.
    pongs_expected: u8,
    /// The mask key of the current close frame and its code bytes so far.
    close_mask: [u8; 4],
    close_code: [u8; 2],
    close_code_len: u8,
    /// The first close frame's code was counted (later ones are not).
    close_counted: bool,
    /// Boxed, and made at the first count after a take: a tracker with
    /// nothing counted since its last flush (every parked tunnel's, a
    /// quiet one's) carries no room for it (docs/performance.md, "Idle
    /// memory").
    stats: Option<Box<DirStats>>,
}

/// A direction's [`Policy`] and what applying it needs to remember.
#[derive(Debug, Clone)]
struct Limits {
    policy: Policy,
    /// The policy has size limits or strict checks to apply to each frame.
    checked: bool,
    /// `policy.rate`'s bucket, made at the first message.
    bucket: Option<TokenBucket>,
    /// `strict`: the close frame being read, checked as it passes.
    close: CloseCheck,
}

/// How far a close frame's payload has been checked (`websocket strict`).
/// Its reason is validated piece by piece as reads bring it, so a close
/// frame split across reads gets the same verdict as a whole one.
#[derive(Debug, Clone, Copy, Default)]
struct CloseCheck {
    /// Payload bytes seen so far (the mask key cycles over them).
    seen: u8,
    /// The start of a UTF-8 sequence cut by the end of a read.
    pending: [u8; 3],
    pending_len: u8,
}

/// Whether a close frame may carry `code` (RFC 6455 §7.4.1–7.4.2, and the
/// IANA registry's 1012–1014): 1004–1006 and 1015 are reserved, and
/// 1016–2999 are for future revisions and extensions (none assigned).
fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What one direction carried since the last flush, counted as it went
/// (plain integers: the tunnel adds them to the shared counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Data messages forwarded whole.
    pub messages: u64,
    /// Payload bytes of the forwarded data frames (wire sizes: compressed
    /// with permessage-deflate).
    pub payload_bytes: u64,
    /// Messages dropped by `websocket rate-limit ... action drop` (since
    /// the last flush, as the others: see `MessageSizes` for the bound).
    pub dropped: u32,
    /// The code of the close frame this direction sent: `Some(0)` for a
    /// close frame without one (RFC 6455 §7.1.5: 1005, never sent).
    pub close_code: Option<u16>,
    /// The forwarded messages by size (`DirStats::message_done`).
    pub sizes: MessageSizes,
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
    /// How many bytes of the chunk are kept, at its start, once the
    /// removed frames are taken out. Offsets above are in the kept bytes.
    pub kept: usize,
}

impl FrameTracker {
    pub fn with_policy(policy: Policy) -> FrameTracker {
        let limits = (policy != Policy::default()).then(|| {
            Box::new(Limits {
                policy,
                checked: policy.strict.is_some()
                    || policy.max_frame.is_some()
                    || policy.max_message.is_some(),
                bucket: None,
                close: CloseCheck::default(),
            })
        });
        FrameTracker {
            limits,
            ..FrameTracker::default()
        }
    }

    /// The policy's rate limit, if it has one.
    fn rate(&self) -> Option<RateLimit> {
        self.limits.as_ref().and_then(|l| l.policy.rate)
    }

    /// Whether the stream is between messages right now: no frame header or
    /// payload in progress and no fragmented message open.
    pub fn at_boundary(&self) -> bool {
        self.failed.is_none() && self.header_len == 0 && !self.in_payload && !self.in_message
    }

    pub fn error(&self) -> Option<FrameError> {
        self.failed
    }

    /// What this direction carried since the last [`FrameTracker::take_stats`].
    pub fn stats(&self) -> &DirStats {
        self.stats.as_deref().unwrap_or(&DirStats::NONE)
    }

    /// What this direction carried since the last call, for the shared
    /// counters; the counts start again from zero. Deltas rather than
    /// totals, so the tunnel need not keep a copy of what it flushed (an
    /// idle tunnel's memory is mostly its task).
    pub fn take_stats(&mut self) -> DirStats {
        self.stats.take().map_or_else(DirStats::default, |s| *s)
    }

    /// The counts, made on first use.
    fn counts(&mut self) -> &mut DirStats {
        self.stats.get_or_insert_with(Box::default)
    }

    /// wsgate sent a keepalive ping to this direction's reader: its pong
    /// is taken out of the stream instead of reaching the other peer.
    pub fn expect_pong(&mut self) {
        self.pongs_expected = self.pongs_expected.saturating_add(1);
    }

    /// Consumes one chunk of the stream, as it is copied. Headers that lie
    /// whole inside the chunk (the usual case) are parsed in place; only a
    /// header split across reads is gathered into the tracker. Frames to
    /// remove are cut out of `chunk` in place: what goes on is
    /// `chunk[..fed.kept]`.
    pub fn feed(&mut self, chunk: &mut [u8]) -> Fed {
        self.feed_at(chunk, &mut Clock::default())
    }

    /// [`FrameTracker::feed`], with the clock of the tunnel's wake-up (read
    /// only if a rate limit needs it, and then shared with the tunnel).
    pub fn feed_at(&mut self, chunk: &mut [u8], clock: &mut Clock) -> Fed {
        let mut fed = Fed::default();
        let mut out = Compact {
            w: 0,
            run: (!self.skip_frame).then_some(0),
        };
        let mut pos = 0usize;
        // Where the current close frame began in the kept bytes, when it
        // began in this chunk: a bad close payload is refused from there.
        let mut close_start = None;
        while pos < chunk.len() && self.failed.is_none() {
            if self.in_payload {
                let available = chunk.len() - pos;
                // ≤ available: fits usize.
                let take = self.remaining.min(available as u64) as usize;
                if matches!(self.last, Some((Opcode::Close, _))) {
                    let ends = self.remaining == take as u64;
                    if let Err(e) = self.read_close(&chunk[pos..pos + take], ends) {
                        let v = Violation::Protocol(e);
                        fed.violation = Some((close_start, v));
                        self.stop_at(v);
                        break;
                    }
                }
                pos += take;
                self.remaining -= take as u64;
                if self.remaining > 0 {
                    break;
                }
                self.end_frame(pos, &mut fed, &mut out);
                continue;
            }
            let prev = usize::from(self.header_len);
            if prev == 0 {
                match self.small_frame(chunk, pos, &mut out, clock) {
                    Small::Done(end) => {
                        pos = end;
                        if !self.in_message && fed.first_boundary.is_none() {
                            fed.first_boundary = Some(out.at(pos));
                        }
                        continue;
                    }
                    Small::Refused(v) => {
                        fed.violation = Some((Some(out.at(pos)), v));
                        self.stop_at(v);
                        break;
                    }
                    Small::General => {}
                }
                // A frame starts: kept or removed, decided on its opcode.
                if let Err(v) = self.begin_frame(chunk[pos], clock) {
                    fed.violation = Some((Some(out.at(pos)), v));
                    self.stop_at(v);
                    break;
                }
                if self.skip_frame {
                    out.skip_from(chunk, pos);
                }
            }
            let n = (MAX_HEADER - prev).min(chunk.len() - pos);
            let parsed = if prev == 0 {
                parse_header(&chunk[pos..], self.in_message)
            } else {
                self.header[prev..prev + n].copy_from_slice(&chunk[pos..pos + n]);
                parse_header(&self.header[..prev + n], self.in_message)
            };
            match parsed {
                Ok(Some((h, header_len))) => {
                    if !h.opcode.is_control() {
                        self.grow_message(h.opcode, h.payload_len);
                    }
                    if let Some(v) = self.check(&h) {
                        let start = (prev == 0).then(|| out.at(pos));
                        fed.violation = Some((start, v));
                        self.stop_at(v);
                        break;
                    }
                    let header_start = pos;
                    pos += header_len - prev;
                    self.header_len = 0;
                    self.last = Some((h.opcode, h.fin));
                    self.remaining = h.payload_len;
                    self.in_payload = true;
                    if h.opcode == Opcode::Close {
                        close_start = (prev == 0).then(|| out.at(header_start));
                        if let Some(l) = self.limits.as_deref_mut() {
                            l.close = CloseCheck::default();
                        }
                        self.close_code_len = 0;
                        self.close_mask = if h.masked {
                            let key = if prev == 0 {
                                &chunk[header_start + header_len - 4..pos]
                            } else {
                                &self.header[header_len - 4..header_len]
                            };
                            [key[0], key[1], key[2], key[3]]
                        } else {
                            [0; 4]
                        };
                    } else {
                        // Nothing to capture.
                        self.close_code_len = 2;
                        if !h.opcode.is_control() && !self.skip_frame {
                            self.counts().payload_bytes += h.payload_len;
                        }
                    }
                    if h.payload_len == 0 {
                        self.end_frame(pos, &mut fed, &mut out);
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
                    if self
                        .limits
                        .as_ref()
                        .is_some_and(|l| l.policy.strict.is_some())
                    {
                        let start = (prev == 0).then(|| out.at(pos));
                        fed.violation = Some((start, Violation::Protocol(e)));
                    }
                    self.failed = Some(e);
                    // Not framing any more: the rest is copied blindly.
                    self.skip_frame = false;
                    out.keep_from(pos);
                }
            }
        }
        if fed.violation.is_some() {
            self.skip_frame = false;
        }
        fed.kept = out.finish(chunk);
        fed
    }

    /// Stops following the stream at a refused frame: `failed` marks it
    /// (violations that are not protocol errors borrow a framing error,
    /// never reported as such: the violation is).
    fn stop_at(&mut self, v: Violation) {
        self.failed = Some(match v {
            Violation::Protocol(e) => e,
            _ => FrameError::LengthTooLarge,
        });
    }

    /// The fast path, for the common frame: a data, ping or pong frame of
    /// at most 125 bytes lying whole in the chunk, valid where it stands.
    /// Same effects as the general path (which handles the rest, and errors).
    #[inline]
    fn small_frame(
        &mut self,
        chunk: &mut [u8],
        pos: usize,
        out: &mut Compact,
        clock: &mut Clock,
    ) -> Small {
        let [b0, b1, ..] = chunk[pos..] else {
            return Small::General;
        };
        let len = usize::from(b1 & 0x7f);
        let end = pos + 2 + if b1 & 0x80 != 0 { 4 } else { 0 } + len;
        let fin = b0 & 0x80 != 0;
        let opcode = match b0 & 0x0f {
            1 if !self.in_message => Opcode::Text,
            2 if !self.in_message => Opcode::Binary,
            0 if self.in_message => Opcode::Continuation,
            9 if fin => Opcode::Ping,
            10 if fin => Opcode::Pong,
            _ => return Small::General,
        };
        if len >= 126 || end > chunk.len() {
            return Small::General;
        }
        if self.pongs_expected > 0 || self.rate().is_some() {
            if let Err(v) = self.begin_frame(b0, clock) {
                return Small::Refused(v);
            }
        }
        if !opcode.is_control() {
            self.grow_message(opcode, len as u64);
        }
        if self.limits.as_ref().is_some_and(|l| l.checked) {
            let h = FrameHeader {
                fin,
                rsv: (b0 >> 4) & 0b111,
                opcode,
                masked: b1 & 0x80 != 0,
                payload_len: len as u64,
            };
            if let Some(v) = self.check(&h) {
                return Small::Refused(v);
            }
        }
        let skipped = std::mem::take(&mut self.skip_frame);
        if skipped {
            out.skip_from(chunk, pos);
            out.keep_from(end);
        }
        if !opcode.is_control() {
            self.in_message = !fin;
            if !skipped {
                let message_len = self.message_len;
                let counts = self.counts();
                counts.payload_bytes += len as u64;
                if fin {
                    counts.message_done(message_len);
                }
            }
        }
        Small::Done(end)
    }

    /// Decides, on the first byte of a frame, whether it is removed: the
    /// frames of a message over the rate limit (`action drop`), and the
    /// pong answering a keepalive ping. A message over the limit with
    /// `action close` is a violation.
    fn begin_frame(&mut self, b0: u8, clock: &mut Clock) -> Result<(), Violation> {
        self.skip_frame = match b0 & 0x0f {
            1 | 2 if !self.in_message => {
                let rated = self
                    .limits
                    .as_mut()
                    .and_then(|l| Some((l.policy.rate?, &mut l.bucket)));
                if let Some((limit, bucket)) = rated {
                    let now = clock.now().into_std();
                    let allowed = bucket
                        .get_or_insert_with(|| TokenBucket::new(&limit, now))
                        .take(now);
                    if !allowed && limit.action == RateAction::Close {
                        return Err(Violation::RateLimited);
                    }
                    self.dropping = !allowed;
                    if !allowed {
                        let counts = self.counts();
                        counts.dropped = counts.dropped.wrapping_add(1);
                    }
                }
                self.dropping
            }
            0 => self.dropping,
            10 if self.pongs_expected > 0 => {
                self.pongs_expected -= 1;
                true
            }
            _ => false,
        };
        Ok(())
    }

    /// Reads a piece of a close frame's payload (`ends`: its last piece):
    /// the code is captured for the counters and, with `strict`, the code
    /// must be one that may be sent and the reason UTF-8 (RFC 6455 §5.5.1,
    /// §7.4). The payload is at most 125 bytes: checking it costs nothing
    /// per data message.
    fn read_close(&mut self, bytes: &[u8], ends: bool) -> Result<(), FrameError> {
        let had = self.close_code_len;
        if had < 2 {
            self.capture_close_code(bytes);
        }
        let Some(l) = self.limits.as_deref_mut() else {
            return Ok(());
        };
        if l.policy.strict.is_none() {
            return Ok(());
        }
        if had < 2 && self.close_code_len == 2 {
            let code = u16::from_be_bytes(self.close_code);
            if !close_code_may_be_sent(code) {
                return Err(FrameError::CloseCode);
            }
        }
        // The reason's bytes of this piece, unmasked, after what an earlier
        // piece left of a cut UTF-8 sequence (≤ 3 + 123 bytes).
        let check = &mut l.close;
        let mut text = [0u8; 128];
        let mut n = usize::from(check.pending_len);
        text[..n].copy_from_slice(&check.pending[..n]);
        for &b in bytes {
            let at = usize::from(check.seen);
            check.seen = check.seen.wrapping_add(1);
            if at >= 2 {
                text[n] = b ^ self.close_mask[at % 4];
                n += 1;
            }
        }
        check.pending_len = 0;
        if let Err(e) = std::str::from_utf8(&text[..n]) {
            let tail = n - e.valid_up_to();
            if e.error_len().is_some() || ends {
                return Err(FrameError::CloseReason);
            }
            check.pending[..tail].copy_from_slice(&text[e.valid_up_to()..n]);
            check.pending_len = tail as u8;
        }
        Ok(())
    }

    /// Gathers the first two payload bytes of a close frame (its code),
    /// unmasked.
    fn capture_close_code(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(usize::from(2 - self.close_code_len)) {
            let i = usize::from(self.close_code_len);
            self.close_code[i] = b ^ self.close_mask[i];
            self.close_code_len += 1;
        }
    }

    /// A data frame of `len` payload bytes starts: the current message's
    /// length so far (for `max_message` and the size histogram).
    #[inline]
    fn grow_message(&mut self, opcode: Opcode, len: u64) {
        self.message_len = if opcode == Opcode::Continuation {
            self.message_len.saturating_add(len)
        } else {
            len
        };
    }

    /// The policy's verdict on a new frame (its message already grown).
    fn check(&self, h: &FrameHeader) -> Option<Violation> {
        let p = &self.limits.as_ref()?.policy;
        if let Some(strict) = p.strict {
            if h.masked != strict.masked {
                return Some(Violation::Protocol(FrameError::Masking));
            }
            // RSV1 marks a compressed message: on its first frame only.
            let first = matches!(h.opcode, Opcode::Text | Opcode::Binary);
            let allowed = if strict.rsv1_allowed && first {
                0b100
            } else {
                0
            };
            if h.rsv & !allowed != 0 {
                return Some(Violation::Protocol(FrameError::ReservedBits));
            }
            if h.opcode == Opcode::Close && h.payload_len == 1 {
                return Some(Violation::Protocol(FrameError::CloseLength));
            }
        }
        if h.opcode.is_control() {
            return None;
        }
        if p.max_frame.is_some_and(|max| h.payload_len > max) {
            return Some(Violation::FrameTooBig(h.payload_len));
        }
        if p.max_message.is_some_and(|max| self.message_len > max) {
            return Some(Violation::MessageTooBig(self.message_len));
        }
        None
    }

    fn end_frame(&mut self, offset: usize, fed: &mut Fed, out: &mut Compact) {
        self.in_payload = false;
        let skipped = std::mem::take(&mut self.skip_frame);
        if skipped {
            out.keep_from(offset);
        }
        let Some((opcode, fin)) = self.last else {
            return;
        };
        match opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                self.in_message = !fin;
                if fin && !skipped {
                    let message_len = self.message_len;
                    self.counts().message_done(message_len);
                }
            }
            Opcode::Close => {
                fed.saw_close = true;
                if !std::mem::replace(&mut self.close_counted, true) {
                    // Two code bytes captured: the payload had them.
                    let code = if self.close_code_len == 2 {
                        u16::from_be_bytes(self.close_code)
                    } else {
                        0
                    };
                    self.counts().close_code = Some(code);
                }
            }
            Opcode::Ping | Opcode::Pong => {}
        }
        if !self.in_message && fed.first_boundary.is_none() {
            fed.first_boundary = Some(out.at(offset));
        }
    }
}

/// What [`FrameTracker::small_frame`] did.
enum Small {
    /// The frame was handled; the next one starts here.
    Done(usize),
    /// The policy refuses it.
    Refused(Violation),
    /// Not the common case: the general path takes it.
    General,
}

/// Cuts removed frames out of a chunk in place: kept runs are moved down
/// to `w` (nothing moves until something is removed).
struct Compact {
    /// End of the kept bytes so far.
    w: usize,
    /// Start of the kept run in progress; `None` while removing.
    run: Option<usize>,
}

impl Compact {
    /// Where `offset` of the chunk lands in the kept bytes.
    fn at(&self, offset: usize) -> usize {
        match self.run {
            Some(r) => self.w + (offset - r),
            None => self.w,
        }
    }

    /// Bytes from `a` on are removed (until [`Compact::keep_from`]).
    fn skip_from(&mut self, chunk: &mut [u8], a: usize) {
        if let Some(r) = self.run.take() {
            if r != self.w {
                chunk.copy_within(r..a, self.w);
            }
            self.w += a - r;
        }
    }

    fn keep_from(&mut self, b: usize) {
        if self.run.is_none() {
            self.run = Some(b);
        }
    }

    fn finish(mut self, chunk: &mut [u8]) -> usize {
        let len = chunk.len();
        self.skip_from(chunk, len);
        self.w
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
    use crate::config::model::{RateAction, RateLimit};
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
        let fed = t.feed(&mut stream);
        assert_eq!(fed.first_boundary, Some(first_end));
        assert!(t.at_boundary());
        assert!(t.error().is_none());
    }

    #[test]
    fn no_boundary_inside_a_fragmented_message() {
        let mut stream = frame(false, 1, false, 3);
        stream.extend(frame(true, 10, false, 2)); // pong between fragments
        let mut t = FrameTracker::default();
        assert_eq!(t.feed(&mut stream).first_boundary, None);
        assert!(!t.at_boundary());
        let fed = t.feed(&mut frame(true, 0, false, 1));
        assert!(fed.first_boundary.is_some());
        assert!(t.at_boundary());
    }

    #[test]
    fn close_frames_are_noticed() {
        let mut t = FrameTracker::default();
        let fed = t.feed(&mut frame(true, 8, true, 2));
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
        for (mut bytes, expected) in cases {
            let mut t = FrameTracker::default();
            t.feed(&mut bytes);
            assert_eq!(t.error(), Some(expected));
            assert!(!t.at_boundary());
        }
    }

    #[test]
    fn size_limits_stop_at_the_offending_frame() {
        let policy = Policy {
            max_frame: Some(100),
            max_message: Some(150),
            ..Policy::default()
        };
        let mut t = FrameTracker::with_policy(policy);
        let mut ok = frame(true, 1, true, 100);
        let fed = t.feed(&mut ok);
        assert!(fed.violation.is_none());
        let mut stream = frame(false, 2, true, 100);
        let second = stream.len();
        stream.extend(frame(true, 0, true, 60)); // message now 160 > 150
        let fed = t.feed(&mut stream);
        assert_eq!(
            fed.violation,
            Some((Some(second), Violation::MessageTooBig(160)))
        );
        let mut t = FrameTracker::with_policy(policy);
        let fed = t.feed(&mut frame(true, 2, true, 101));
        assert_eq!(fed.violation, Some((Some(0), Violation::FrameTooBig(101))));
        // Control frames are not data: never counted.
        let mut t = FrameTracker::with_policy(policy);
        assert!(t.feed(&mut frame(true, 9, true, 125)).violation.is_none());
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
        let fed = t.feed(&mut frame(true, 1, false, 3));
        assert_eq!(
            fed.violation,
            Some((Some(0), Violation::Protocol(FrameError::Masking)))
        );
        let mut t = FrameTracker::with_policy(client);
        let mut rsv1 = frame(true, 1, true, 3);
        rsv1[0] |= 0x40;
        let fed = t.feed(&mut rsv1);
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
        assert!(t.feed(&mut rsv1).violation.is_none());
        let mut t = FrameTracker::with_policy(client);
        let fed = t.feed(&mut frame(true, 3, true, 0));
        assert_eq!(
            fed.violation,
            Some((Some(0), Violation::Protocol(FrameError::ReservedOpcode(3))))
        );
    }

    fn strict(masked: bool, rsv1_allowed: bool) -> Policy {
        Policy {
            strict: Some(Strict {
                masked,
                rsv1_allowed,
            }),
            ..Policy::default()
        }
    }

    /// A masked close frame with `payload` (code and reason).
    fn close(payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![0x88, 0x80 | payload.len() as u8];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    fn with_reason(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        p
    }

    #[test]
    fn strict_checks_close_codes_and_reasons_however_split() {
        let refused = |payload: &[u8]| {
            let (_, _, v, _) = feed_split(
                FrameTracker::with_policy(strict(true, false)),
                &close(payload),
                &[usize::MAX],
            );
            v.map(|(start, v)| {
                assert_eq!(start, Some(0), "refused from its first byte");
                v
            })
        };
        let protocol = |e| Some(Violation::Protocol(e));
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                refused(&with_reason(code, b"")),
                protocol(FrameError::CloseCode),
                "{code}"
            );
        }
        for code in [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            assert_eq!(refused(&with_reason(code, b"bye")), None, "{code}");
        }
        assert_eq!(refused(b""), None, "no code at all is allowed");
        assert_eq!(refused(&[0x03]), protocol(FrameError::CloseLength));
        for bad in [&b"\xff"[..], b"ok \xc3", b"\xed\xa0\x80"] {
            assert_eq!(
                refused(&with_reason(1000, bad)),
                protocol(FrameError::CloseReason),
                "{bad:?}"
            );
        }
        // A reason with multi-byte characters, cut inside one of them
        // anywhere: accepted; a bad one: refused however it is cut.
        let good = close(&with_reason(1000, "déjà vu ✓".as_bytes()));
        let bad = close(&with_reason(1000, b"d\xc3\xa9j\xe0 vu"));
        for cut in 1..good.len() {
            let (kept, _, v, t) = feed_split(
                FrameTracker::with_policy(strict(true, false)),
                &good,
                &[cut],
            );
            assert_eq!((v, kept.len()), (None, good.len()), "cut at {cut}");
            assert_eq!(t.stats().close_code, Some(1000));
            let (_, _, v, _) =
                feed_split(FrameTracker::with_policy(strict(true, false)), &bad, &[cut]);
            assert_eq!(
                v.map(|(_, v)| v),
                protocol(FrameError::CloseReason),
                "cut at {cut}"
            );
        }
        // Without `strict`, close payloads are the peers' business.
        let mut t = FrameTracker::default();
        let fed = t.feed(&mut close(&with_reason(1005, b"\xff")));
        assert!(fed.violation.is_none() && fed.saw_close && t.error().is_none());
    }

    #[test]
    fn rsv1_only_on_the_first_frame_of_a_message_with_deflate() {
        let rsv1 = |mut f: Vec<u8>| {
            f[0] |= 0x40;
            f
        };
        let verdict = |policy: Policy, stream: Vec<u8>| {
            let (_, _, v, _) = feed_split(FrameTracker::with_policy(policy), &stream, &[7]);
            v.map(|(_, v)| v)
        };
        let bits = Some(Violation::Protocol(FrameError::ReservedBits));
        let mut first = rsv1(frame(false, 1, false, 10));
        first.extend(frame(true, 0, false, 10));
        assert_eq!(verdict(strict(false, true), first.clone()), None);
        assert_eq!(verdict(strict(false, false), first), bits);
        let mut cont = frame(false, 2, false, 10);
        cont.extend(rsv1(frame(true, 0, false, 10)));
        assert_eq!(verdict(strict(false, true), cont), bits);
        for control in [8, 9, 10] {
            let f = rsv1(frame(true, control, false, 0));
            assert_eq!(verdict(strict(false, true), f), bits, "opcode {control}");
        }
        let mut rsv2 = frame(true, 1, false, 3);
        rsv2[0] |= 0x20;
        assert_eq!(verdict(strict(false, true), rsv2), bits);
    }

    fn dropping(burst: u32) -> Policy {
        Policy {
            rate: Some(RateLimit {
                messages: 1,
                period: std::time::Duration::from_secs(86_400),
                burst,
                action: RateAction::Drop,
            }),
            ..Policy::default()
        }
    }

    #[test]
    fn messages_over_the_rate_are_cut_out_whole() {
        let mut t = FrameTracker::with_policy(dropping(1));
        let kept = frame(true, 1, true, 3);
        let mut stream = kept.clone();
        // The second message (two fragments around a ping) is dropped; the
        // ping stays.
        stream.extend(frame(false, 2, true, 200));
        let ping = frame(true, 9, true, 4);
        stream.extend(&ping);
        stream.extend(frame(true, 0, true, 10));
        let fed = t.feed(&mut stream);
        let mut expected = kept.clone();
        expected.extend(&ping);
        assert_eq!(&stream[..fed.kept], &expected[..]);
        assert_eq!(fed.first_boundary, Some(kept.len()));
        assert!(t.at_boundary());
        let stats = t.stats();
        assert_eq!(
            (stats.messages, stats.dropped, stats.payload_bytes),
            (1, 1, 3)
        );
    }

    #[test]
    fn a_message_over_the_rate_closes_before_its_first_byte() {
        let mut policy = dropping(1);
        policy.rate.as_mut().unwrap().action = RateAction::Close;
        let mut t = FrameTracker::with_policy(policy);
        let mut stream = frame(true, 1, true, 3);
        let first = stream.len();
        stream.extend(frame(true, 1, true, 3));
        let fed = t.feed(&mut stream);
        assert_eq!(fed.violation, Some((Some(first), Violation::RateLimited)));
    }

    #[test]
    fn pongs_to_wsgate_are_taken_out_and_close_codes_read() {
        let mut t = FrameTracker::default();
        t.expect_pong();
        let mut stream = frame(true, 10, true, 16);
        let text = frame(true, 1, true, 2);
        stream.extend(&text);
        stream.extend(frame(true, 10, true, 0)); // not expected: kept
        let fed = t.feed(&mut stream);
        let mut expected = text.clone();
        expected.extend(frame(true, 10, true, 0));
        assert_eq!(&stream[..fed.kept], &expected[..]);
        // A masked close frame with code 4001, split inside its code.
        let mut close = vec![0x88, 0x82, 0x11, 0x22, 0x33, 0x44];
        close.extend([0x0f ^ 0x11, 0xa1 ^ 0x22]);
        let (a, b) = close.split_at_mut(7);
        t.feed(a);
        assert!(t.feed(b).saw_close);
        assert_eq!(t.stats().close_code, Some(4001));
    }

    /// What a tracker made of a stream fed in pieces.
    type Split = (
        Vec<u8>,
        Option<usize>,
        Option<(Option<usize>, Violation)>,
        FrameTracker,
    );

    /// Feeds `stream` in pieces cut at `cuts` (cycled); returns the kept
    /// bytes, the absolute kept offset of the first boundary and of the
    /// violation, and the tracker.
    fn feed_split(mut t: FrameTracker, stream: &[u8], cuts: &[usize]) -> Split {
        let mut kept = Vec::new();
        let (mut boundary, mut violation) = (None, None);
        let mut pos = 0;
        for cut in cuts.iter().cycle() {
            if pos >= stream.len() || violation.is_some() {
                break;
            }
            let end = (pos + cut).min(stream.len());
            let mut piece = stream[pos..end].to_vec();
            let fed = t.feed(&mut piece);
            if boundary.is_none() {
                boundary = fed.first_boundary.map(|b| kept.len() + b);
            }
            if let Some((start, v)) = fed.violation {
                violation = Some((start.map(|s| kept.len() + s), v));
                kept.extend_from_slice(&piece[..start.unwrap_or(0)]);
            } else {
                kept.extend_from_slice(&piece[..fed.kept]);
            }
            pos = end;
        }
        (kept, boundary, violation, t)
    }

    /// A stream of valid frames from (fin, opcode, masked, len) choices,
    /// fragmentation kept consistent.
    fn valid_stream(frames: &[(bool, u8, bool, usize)]) -> Vec<u8> {
        let mut stream = Vec::new();
        let mut in_message = false;
        for &(fin, kind, masked, len) in frames {
            let (fin, opcode, len) = match kind % 4 {
                0 | 1 => (fin, if in_message { 0 } else { 1 + kind % 2 }, len),
                2 => (true, 9, len % 126),
                _ => (true, 10, len % 126),
            };
            if opcode <= 2 {
                in_message = !fin;
            }
            stream.extend(frame(fin, opcode, masked, len));
        }
        stream
    }

    fn policies() -> impl Strategy<Value = Policy> {
        (0u8..4, any::<bool>(), 1u32..4).prop_map(|(kind, masked, burst)| match kind {
            0 => Policy::default(),
            1 => Policy {
                max_frame: Some(150),
                max_message: Some(300),
                strict: Some(Strict {
                    masked,
                    rsv1_allowed: burst == 1,
                }),
                rate: None,
            },
            2 => dropping(burst),
            _ => {
                let mut p = dropping(burst);
                p.rate.as_mut().unwrap().action = RateAction::Close;
                p
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
        ))]

        /// Fuzzing: arbitrary bytes, and valid streams with bytes mutated,
        /// cut anywhere, under any policy: never a panic, and the same
        /// kept bytes, boundaries, verdict and counts as one whole read.
        #[test]
        fn arbitrary_and_mutated_streams_split_anywhere_agree(
            frames in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<bool>(), 0usize..300), 0..12),
            noise in proptest::collection::vec(any::<u8>(), 0..64),
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            arbitrary in any::<bool>(),
            policy in policies(),
            pongs in 0u8..3,
            cuts in proptest::collection::vec(1usize..40, 1..30),
        ) {
            let mut stream = if arbitrary { noise } else { valid_stream(&frames) };
            if !stream.is_empty() {
                for (at, byte) in &mutations {
                    let i = at % stream.len();
                    stream[i] = *byte;
                }
            }
            let fresh = || {
                let mut t = FrameTracker::with_policy(policy);
                for _ in 0..pongs {
                    t.expect_pong();
                }
                t
            };
            let (kept, boundary, violation, whole) = feed_split(fresh(), &stream, &[usize::MAX]);
            let (kept_s, boundary_s, violation_s, split) = feed_split(fresh(), &stream, &cuts);
            prop_assert_eq!(boundary, boundary_s);
            match violation_s {
                // The refused frame began in an earlier read: its first
                // bytes had gone on (the tunnel then closes the writer
                // without a close frame). That is part of its header, or
                // with `strict`, of a close frame refused for its payload.
                Some((None, v)) => {
                    prop_assert_eq!(violation.map(|(_, v)| v), Some(v));
                    prop_assert!(kept_s.starts_with(&kept));
                    let close = matches!(
                        v,
                        Violation::Protocol(FrameError::CloseCode | FrameError::CloseReason)
                    );
                    let most = if close { 6 + 125 } else { MAX_HEADER - 1 };
                    prop_assert!(kept_s.len() - kept.len() <= most);
                }
                // Framing broke inside the header of a frame being removed:
                // its first bytes, cut out with the earlier read, are gone.
                None if whole.error().is_some() && kept != kept_s => {
                    prop_assert!(violation.is_none());
                    let same = kept.iter().zip(&kept_s).take_while(|(a, b)| a == b).count();
                    let lost = kept.len() - kept_s.len();
                    prop_assert!(lost < MAX_HEADER);
                    prop_assert_eq!(&kept[same + lost..], &kept_s[same..]);
                }
                _ => {
                    prop_assert_eq!(&kept, &kept_s);
                    prop_assert_eq!(violation, violation_s);
                }
            }
            prop_assert_eq!(whole.error(), split.error());
            prop_assert_eq!(whole.at_boundary(), split.at_boundary());
            prop_assert_eq!(whole.stats(), split.stats());
            prop_assert!(kept.len() <= stream.len());
        }

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
            let first = whole.feed(&mut stream).first_boundary;
            prop_assert!(whole.at_boundary());

            let mut pieces = FrameTracker::default();
            let mut pos = 0;
            let mut first_split = None;
            for cut in cuts.iter().cycle() {
                if pos >= stream.len() { break; }
                let end = (pos + cut).min(stream.len());
                let fed = pieces.feed(&mut stream[pos..end]);
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
