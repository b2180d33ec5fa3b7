//! Content inspection of a mode tcp connection: the frontend's
//! `tcp-request content` rules run on the client's first bytes, peeked
//! (left in the socket, so the tunnel forwards them untouched), until a
//! rule accepts or rejects, or `tcp-request inspect-delay` is over. What
//! the bytes said ([`Inspected`]) then goes to `use_backend`: this is how
//! `use_backend bk_a if { req.ssl_sni -i a.example.com }` routes a
//! `wss://` connection whose TLS the server terminates.
//!
//! HAProxy 2.6 semantics (`tcp_inspect_request`): while the delay runs, a
//! condition whose answer could still change with more bytes (a
//! ClientHello not complete yet) is "missing data" and stops the
//! evaluation until more bytes come; conditions combine in three-valued
//! logic, so `{ req.ssl_hello_type 1 } || { src 10.0.0.0/8 }` holds at
//! once for a client of 10/8. Once the delay is over, the client has
//! shut its side, or the buffer (`tune.bufsize`) is full, the rules run
//! once more on what is there as definitive. No rule applying means
//! accept. `use_backend` always sees the bytes as definitive.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::route::{term_matches, RequestFacts};
use crate::config::model::{Acl, AclFetch, Condition, Frontend};
use crate::config::tcp_rules::{Inspection, TcpAction, TcpRule};
use crate::tls::hello::{self, Probe};

/// What the client's first bytes said, for the content fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspected {
    /// `req.len`: bytes received so far.
    pub len: usize,
    /// No more bytes will be waited for: an answer "not there yet" is
    /// final, and the fetch finds nothing.
    pub definitive: bool,
    pub hello_type: Probe<u8>,
    pub version: Probe<u32>,
    pub sni: Probe<Vec<u8>>,
}

impl Inspected {
    fn of(bytes: &[u8], definitive: bool) -> Inspected {
        Inspected {
            len: bytes.len(),
            definitive,
            hello_type: hello::hello_type(bytes),
            version: hello::hello_version(bytes),
            sni: hello::server_name(bytes),
        }
    }

    /// Whether `fetch` could answer otherwise once more bytes come.
    fn may_change(&self, fetch: &AclFetch) -> bool {
        if self.definitive {
            return false;
        }
        match fetch {
            AclFetch::ReqSslSni => self.sni == Probe::Incomplete,
            AclFetch::ReqSslHelloType => self.hello_type == Probe::Incomplete,
            AclFetch::ReqSslVer => self.version == Probe::Incomplete,
            AclFetch::ReqLen | AclFetch::WaitEnd => true,
            _ => false,
        }
    }
}

/// A client stream whose socket can be peeked: a plain connection. A TLS
/// connection that wsgate terminates has none (its bytes are deciphered,
/// never a ClientHello).
pub trait Peek {
    fn peekable(&self) -> Option<&TcpStream>;
}

impl Peek for TcpStream {
    fn peekable(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Peek for tokio_rustls::server::TlsStream<TcpStream> {
    fn peekable(&self) -> Option<&TcpStream> {
        None
    }
}

/// Why inspection closed the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("rejected by a `tcp-request content` rule")]
    Rejected,
    /// `timeout client` is shorter than the delay and ran out first, as
    /// HAProxy's manual warns.
    #[error("`timeout client` expired while waiting for the client's first bytes")]
    ClientTimeout,
}

impl Refused {
    /// The log's termination state (HAProxy's `PR` and `cR`).
    pub fn term(self) -> [u8; 2] {
        match self {
            Refused::Rejected => *b"PR",
            Refused::ClientTimeout => *b"cR",
        }
    }
}

/// Runs the frontend's content inspection on `client`: `Ok(None)` when
/// it has none, `Ok(Some)` with what the bytes said once the rules
/// accepted, `Err` when a rule rejected or the client timed out.
pub async fn content<C: Peek>(
    client: &C,
    frontend: &Frontend,
    facts: &RequestFacts<'_>,
    bufsize: usize,
) -> Result<Option<Inspected>, Refused> {
    let Some(inspection) = &frontend.inspection else {
        return Ok(None);
    };
    let acls = &frontend.acls;
    let Some(socket) = client.peekable() else {
        let nothing = Inspected {
            definitive: true,
            ..Inspected::default()
        };
        return decide(inspection, acls, facts, nothing);
    };
    let delay = inspection.delay.unwrap_or(Duration::ZERO);
    let client_first = frontend.timeouts.client.filter(|c| *c < delay);
    let deadline = Instant::now() + client_first.unwrap_or(delay);
    let mut peeker = match Peeker::new(socket, bufsize.max(1)) {
        Ok(p) => p,
        // The socket is gone: nothing more will come.
        Err(_) => return decide(inspection, acls, facts, Inspected::of(&[], true)),
    };
    let mut ended = false;
    loop {
        let definitive = ended || peeker.full() || Instant::now() >= deadline;
        let seen = Inspected::of(peeker.bytes(), definitive);
        let now = RequestFacts {
            inspected: Some(&seen),
            ..*facts
        };
        if let Some(verdict) = verdict(&inspection.rules, acls, &now) {
            return verdict.map(|()| {
                Some(Inspected {
                    definitive: true,
                    ..seen
                })
            });
        }
        match peeker.more(deadline).await {
            Event::More => {}
            Event::Ended => ended = true,
            Event::Expired if client_first.is_some() => return Err(Refused::ClientTimeout),
            Event::Expired => {}
        }
    }
}

/// The rules run once on `seen` (definitive).
fn decide(
    inspection: &Inspection,
    acls: &[Acl],
    facts: &RequestFacts<'_>,
    seen: Inspected,
) -> Result<Option<Inspected>, Refused> {
    let now = RequestFacts {
        inspected: Some(&seen),
        ..*facts
    };
    let verdict = verdict(&inspection.rules, acls, &now).unwrap_or(Ok(()));
    verdict.map(|()| Some(seen))
}

/// The rules' verdict: `Some(Ok)` accept (a rule, or none applying),
/// `Some(Err)` reject, `None` wait for more bytes.
fn verdict(
    rules: &[TcpRule],
    acls: &[Acl],
    facts: &RequestFacts<'_>,
) -> Option<Result<(), Refused>> {
    for rule in rules {
        let holds = match &rule.condition {
            None => Some(true),
            Some(c) => condition_state(c, acls, facts),
        };
        match holds? {
            false => continue,
            true => match rule.action {
                TcpAction::Accept => return Some(Ok(())),
                TcpAction::Reject => return Some(Err(Refused::Rejected)),
                // Not read for content rules (refused by the parser).
                TcpAction::TrackSc(_) => continue,
            },
        }
    }
    Some(Ok(()))
}

/// A condition in HAProxy's three-valued logic: `None` when the answer
/// depends on bytes that have not come yet. A term that does not match
/// now but could with more bytes is unknown; AND: false wins, then
/// unknown; OR: true wins, then unknown; `!` and `unless` keep unknown.
pub fn condition_state(c: &Condition, acls: &[Acl], facts: &RequestFacts<'_>) -> Option<bool> {
    let term_state = |term| {
        let m = term_matches(term, facts);
        match facts.inspected {
            Some(seen) if !m && seen.may_change(&term.fetch) => None,
            _ => Some(m),
        }
    };
    let mut unknown = false;
    for group in &c.groups {
        let mut all = Some(true);
        for t in group {
            let acl = acls.get(t.acl).map_or(Some(false), |acl| {
                let states = acl.terms.iter().map(term_state);
                or3(states)
            });
            all = and3(all, acl.map(|m| m != t.negate));
            if all == Some(false) {
                break;
            }
        }
        match all {
            Some(true) => return Some(!c.unless),
            None => unknown = true,
            Some(false) => {}
        }
    }
    (!unknown).then_some(c.unless)
}

fn or3(states: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for s in states {
        match s {
            Some(true) => return Some(true),
            None => unknown = true,
            Some(false) => {}
        }
    }
    (!unknown).then_some(false)
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// The client's bytes, peeked: they stay in the socket's receive queue.
struct Peeker<'a> {
    socket: &'a TcpStream,
    /// The same socket as a std stream, for a synchronous peek inside
    /// tokio's readiness (`try_io`). Non-blocking, as the flag is shared.
    dup: std::net::TcpStream,
    buf: Vec<u8>,
    len: usize,
}

enum Event {
    /// More bytes are in.
    More,
    /// The client shut its side (or the socket failed): nothing more
    /// will come.
    Ended,
    /// The deadline passed.
    Expired,
}

impl<'a> Peeker<'a> {
    /// Peeks what is already there.
    fn new(socket: &'a TcpStream, bufsize: usize) -> io::Result<Peeker<'a>> {
        let dup = std::net::TcpStream::from(socket.as_fd().try_clone_to_owned()?);
        let mut buf = vec![0; bufsize];
        let len = match dup.peek(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        Ok(Peeker {
            socket,
            dup,
            buf,
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// Waits until more bytes than already peeked are in. Peeking leaves
    /// the socket readable, so the peek runs inside `try_io`: when it
    /// shows nothing new, tokio clears the readiness it saw, and the next
    /// wait lasts until new bytes (or the client's FIN) arrive; bytes that
    /// arrive meanwhile carry a newer readiness event, which stays.
    async fn more(&mut self, deadline: Instant) -> Event {
        loop {
            let ready = match tokio::time::timeout_at(
                deadline,
                self.socket.ready(Interest::READABLE),
            )
            .await
            {
                Err(_) => return Event::Expired,
                Ok(Err(_)) => return Event::Ended,
                Ok(Ok(ready)) => ready,
            };
            let (dup, buf, have) = (&self.dup, &mut self.buf, self.len);
            let peeked = self.socket.try_io(Interest::READABLE, || {
                let n = dup.peek(buf)?;
                if n == have {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            });
            match peeked {
                Ok(n) => {
                    self.len = n;
                    return Event::More;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if ready.is_read_closed() {
                        return Event::Ended;
                    }
                }
                Err(_) => return Event::Ended,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lexer::Token;
    use crate::config::model::CondTerm;

    fn acl(words: &str) -> Acl {
        let toks: Vec<Token> = words
            .split_whitespace()
            .map(|w| Token {
                text: w.into(),
                line: 1,
                col: 1,
            })
            .collect();
        Acl {
            name: words.into(),
            terms: vec![crate::config::acl::parse_acl(&toks).unwrap()],
        }
    }

    fn hello(name: &str) -> Vec<u8> {
        let provider = std::sync::Arc::new(crate::tls::crypto::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let server = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// The condition `if <terms>` (one AND group; `!` negates) on `bytes`.
    fn state(terms: &[(&str, bool)], bytes: &[u8], definitive: bool) -> Option<bool> {
        let acls: Vec<Acl> = terms.iter().map(|(w, _)| acl(w)).collect();
        let c = Condition {
            unless: false,
            groups: vec![terms
                .iter()
                .enumerate()
                .map(|(i, (_, negate))| CondTerm {
                    acl: i,
                    negate: *negate,
                })
                .collect()],
        };
        let seen = Inspected::of(bytes, definitive);
        let facts = RequestFacts {
            inspected: Some(&seen),
            ..RequestFacts::tcp("10.1.2.3:4000".parse().unwrap(), false)
        };
        condition_state(&c, &acls, &facts)
    }

    #[test]
    fn an_incomplete_hello_is_missing_data_until_definitive() {
        let h = hello("a.example.com");
        let half = &h[..h.len() / 2];
        let is_hello = [("req.ssl_hello_type 1", false)];
        assert_eq!(state(&is_hello, half, false), None);
        assert_eq!(state(&is_hello, half, true), Some(false));
        assert_eq!(state(&is_hello, &h, false), Some(true));
        // Negation keeps "unknown".
        assert_eq!(state(&[("req.ssl_hello_type 1", true)], half, false), None);
        assert_eq!(
            state(&[("req.ssl_hello_type 1", true)], half, true),
            Some(true)
        );
        // Not TLS at all: known at once.
        assert_eq!(state(&is_hello, b"GET / HTTP/1.1\r\n", false), Some(false));
        assert_eq!(
            state(&[("req.ssl_sni -i A.example.com", false)], &h, false),
            Some(true)
        );
        assert_eq!(
            state(&[("req_ssl_sni -m end .example.org", false)], &h, false),
            Some(false)
        );
    }

    #[test]
    fn three_valued_and_or() {
        let h = hello("a.example.com");
        let half = &h[..10];
        // false AND unknown = false; true AND unknown = unknown.
        assert_eq!(
            state(
                &[
                    ("src 192.168.0.0/16", false),
                    ("req.ssl_hello_type 1", false)
                ],
                half,
                false
            ),
            Some(false)
        );
        assert_eq!(
            state(
                &[("src 10.0.0.0/8", false), ("req.ssl_hello_type 1", false)],
                half,
                false
            ),
            None
        );
        // An ACL of several lines (OR): one true line decides.
        let mut either = acl("req.ssl_hello_type 1");
        either.terms.push(acl("src 10.0.0.0/8").terms.remove(0));
        let c = Condition {
            unless: false,
            groups: vec![vec![CondTerm {
                acl: 0,
                negate: false,
            }]],
        };
        let seen = Inspected::of(half, false);
        let facts = RequestFacts {
            inspected: Some(&seen),
            ..RequestFacts::tcp("10.1.2.3:4000".parse().unwrap(), false)
        };
        assert_eq!(condition_state(&c, &[either], &facts), Some(true));
    }

    #[test]
    fn req_len_wait_end_and_versions() {
        assert_eq!(state(&[("req.len ge 4", false)], b"ab", false), None);
        assert_eq!(state(&[("req.len ge 4", false)], b"ab", true), Some(false));
        assert_eq!(state(&[("req.len ge 2", false)], b"ab", false), Some(true));
        assert_eq!(state(&[("wait_end", false)], b"", false), None);
        assert_eq!(state(&[("wait_end", false)], b"", true), Some(true));
        let h = hello("v.example.com");
        // rustls offers 3.3 in the hello (its record says 3.1).
        assert_eq!(state(&[("req.ssl_ver 3.3", false)], &h, false), Some(true));
        assert_eq!(state(&[("req.ssl_ver 3.1", false)], &h, false), Some(false));
        assert_eq!(
            state(&[("req.ssl_ver 3.0:3.2", false)], &h, false),
            Some(false)
        );
        assert_eq!(
            state(&[("req_ssl_ver ge 3.0", false)], &h, false),
            Some(true)
        );
    }
}
