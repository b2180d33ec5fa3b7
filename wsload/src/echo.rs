//! `wsload echo`: round-trip throughput and latency.
//!
//! Every connection keeps exactly one message in flight: send, wait for the
//! echo, record the round trip, repeat until the duration is over. All
//! connections are opened first; the clock starts once they are up, so
//! connection setup never counts as message latency. Server-initiated
//! messages (the demo backend's welcome and pushes) are skipped while
//! waiting for an echo.
//!
//! Matching: binary messages (the default) must come back byte for byte.
//! With `--text`, each message starts with a unique tag `C.N.` (connection,
//! sequence) and any text reply containing the tag counts, so servers that
//! wrap the echo (`got your message: … [s1]`) work too.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::client::{error_kind, Target, TargetArgs, Ws};
use crate::stats::{self, Errors};

#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Concurrent connections, each with one message in flight.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Message payload size in bytes.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// How long to send for, once every connection is open (5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = stats::parse_duration)]
    pub duration: Duration,
    /// Send text messages (echo matched by a tag) instead of binary.
    #[arg(long)]
    pub text: bool,
    /// Count a message as failed, and drop its connection, after this long.
    #[arg(long, default_value = "10s", value_parser = stats::parse_duration)]
    pub reply_timeout: Duration,
    /// Stop each connection after this many round trips (0 = no limit;
    /// `--duration` still applies). Gives a fixed workload for callgrind.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Connection attempts in progress at once while opening.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
}

/// What one connection measured.
struct ConnResult {
    latency: Histogram<u64>,
    messages: u64,
    skipped: u64,
    errors: Errors,
    last_reply: Option<Instant>,
}

pub async fn run(args: EchoArgs) -> anyhow::Result<(serde_json::Value, bool)> {
    if args.connections == 0 {
        anyhow::bail!("--connections must be at least 1");
    }
    let read_buffer = args.size.saturating_add(64).clamp(8 << 10, 256 << 10);
    let target = Arc::new(Target::new(&args.target, read_buffer)?);
    let histogram = stats::new_histogram()?;

    // Phase 1: open every connection.
    let open_started = Instant::now();
    let limit = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut opening = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let target = Arc::clone(&target);
        let limit = Arc::clone(&limit);
        opening.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let t0 = Instant::now();
            target.connect().await.map(|ws| (ws, t0.elapsed()))
        }));
    }
    let mut errors = Errors::default();
    let mut connect_latency = histogram.clone();
    let mut conns = Vec::with_capacity(args.connections);
    for handle in opening {
        match handle.await {
            Ok(Ok((ws, took))) => {
                stats::record(&mut connect_latency, took);
                conns.push(ws);
            }
            Ok(Err(kind)) => errors.add(kind),
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let open_s = open_started.elapsed().as_secs_f64();
    let connected = conns.len();

    // Phase 2: round trips until the deadline.
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut running = Vec::with_capacity(connected);
    for (id, ws) in conns.into_iter().enumerate() {
        let histogram = histogram.clone();
        let (size, text, timeout) = (args.size, args.text, args.reply_timeout);
        let count = args.count;
        running.push(tokio::spawn(async move {
            echo_loop(ws, id, size, text, timeout, deadline, count, histogram).await
        }));
    }
    let mut latency = histogram;
    let mut messages = 0u64;
    let mut skipped = 0u64;
    let mut end = start;
    for handle in running {
        match handle.await {
            Ok(r) => {
                latency.add(&r.latency).ok();
                messages += r.messages;
                skipped += r.skipped;
                errors.merge(r.errors);
                if let Some(t) = r.last_reply {
                    end = end.max(t);
                }
            }
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let elapsed = end.duration_since(start).as_secs_f64();
    let rate = if elapsed > 0.0 {
        messages as f64 / elapsed
    } else {
        0.0
    };
    let report = json!({
        "mode": "echo",
        "url": args.target.url,
        "connections": args.connections,
        "connected": connected,
        "connect_failed": args.connections - connected,
        "size": args.size,
        "text": args.text,
        "count": args.count,
        "duration_s": args.duration.as_secs_f64(),
        "open_s": stats::round3(open_s),
        "elapsed_s": stats::round3(elapsed),
        "messages": messages,
        "msgs_per_sec": stats::round3(rate),
        "server_messages_skipped": skipped,
        "latency_us": stats::summary(&latency),
        "connect_latency_us": stats::summary(&connect_latency),
        "errors": errors.total(),
        "error_kinds": errors.to_json(),
    });
    if connected == 0 {
        eprintln!("wsload: no connection could be opened");
    }
    Ok((report, connected > 0))
}

#[allow(clippy::too_many_arguments)]
async fn echo_loop(
    mut ws: Ws,
    id: usize,
    size: usize,
    text: bool,
    timeout: Duration,
    deadline: Instant,
    count: u64,
    latency: Histogram<u64>,
) -> ConnResult {
    let mut r = ConnResult {
        latency,
        messages: 0,
        skipped: 0,
        errors: Errors::default(),
        last_reply: None,
    };
    let mut seq: u64 = 0;
    let mut healthy = true;
    while Instant::now() < deadline && (count == 0 || seq < count) {
        seq += 1;
        let (msg, expect) = payload(id, seq, size, text);
        let t0 = Instant::now();
        if let Err(e) = ws.send(msg).await {
            r.errors.add(format!("send: {}", error_kind(&e)));
            healthy = false;
            break;
        }
        match tokio::time::timeout(timeout, wait_echo(&mut ws, &expect, &mut r.skipped)).await {
            Ok(Ok(())) => {
                let now = Instant::now();
                stats::record(&mut r.latency, now.duration_since(t0));
                r.messages += 1;
                r.last_reply = Some(now);
            }
            Ok(Err(kind)) => {
                r.errors.add(kind);
                healthy = false;
                break;
            }
            Err(_) => {
                r.errors.add("reply timeout");
                healthy = false;
                break;
            }
        }
    }
    if healthy {
        if let Err(kind) = close(&mut ws).await {
            r.errors.add(kind);
        }
    }
    r
}

enum Expect {
    Binary(Bytes),
    TextTag(String),
}

fn payload(id: usize, seq: u64, size: usize, text: bool) -> (Message, Expect) {
    if text {
        let tag = format!("{id}.{seq}.");
        let mut body = tag.clone();
        while body.len() < size {
            body.push('x');
        }
        (Message::text(body), Expect::TextTag(tag))
    } else {
        let mut body = vec![b'x'; size];
        for (dst, src) in body.iter_mut().zip(seq.to_le_bytes()) {
            *dst = src;
        }
        let body = Bytes::from(body);
        (Message::Binary(body.clone()), Expect::Binary(body))
    }
}

/// Reads until the echo of the message just sent arrives.
async fn wait_echo(ws: &mut Ws, expect: &Expect, skipped: &mut u64) -> Result<(), String> {
    loop {
        match ws.next().await {
            None => return Err("closed by server".to_owned()),
            Some(Err(e)) => return Err(format!("read: {}", error_kind(&e))),
            Some(Ok(msg)) => match (msg, expect) {
                (Message::Binary(got), Expect::Binary(want)) => {
                    return if got == want {
                        Ok(())
                    } else {
                        Err("echo mismatch".to_owned())
                    };
                }
                (Message::Text(got), Expect::TextTag(tag)) if got.as_str().contains(tag) => {
                    return Ok(())
                }
                (Message::Close(frame), _) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    return Err(format!("closed by server ({code})"));
                }
                (Message::Ping(_) | Message::Pong(_) | Message::Frame(_), _) => {}
                (Message::Text(_) | Message::Binary(_), _) => *skipped += 1,
            },
        }
    }
}

/// Sends a close and waits (briefly) for the server's close.
pub async fn close(ws: &mut Ws) -> Result<(), String> {
    close_within(ws, Duration::from_secs(2)).await
}

/// Sends a close and waits up to `wait` for the server's close.
pub async fn close_within(ws: &mut Ws, wait: Duration) -> Result<(), String> {
    if let Err(e) = ws.close(None).await {
        return Err(format!("close: {}", error_kind(&e)));
    }
    let drain = async {
        while let Some(msg) = ws.next().await {
            if msg.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(wait, drain)
        .await
        .map_err(|_| "close: no close reply".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payload_has_size_and_sequence() {
        let (msg, _) = payload(0, 258, 16, false);
        let Message::Binary(b) = msg else {
            panic!("not binary")
        };
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..2], &[2, 1]);
        let (msg, _) = payload(0, 1, 3, false);
        assert_eq!(msg.len(), 3);
    }

    #[test]
    fn text_payload_starts_with_tag() {
        let (msg, expect) = payload(7, 9, 10, true);
        let Expect::TextTag(tag) = expect else {
            panic!("not text")
        };
        assert_eq!(tag, "7.9.");
        assert_eq!(msg.to_text().unwrap(), "7.9.xxxxxx");
    }
}
