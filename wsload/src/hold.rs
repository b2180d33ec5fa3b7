//! `wsload hold`: idle connections, the WebSocket workload a proxy must
//! carry cheaply.
//!
//! Opens `--connections` WebSockets at `--rate` per second (0 = as fast as
//! possible), keeps them idle for `--hold` once all attempts are done (each
//! still reads, so server pushes and pings are consumed and answered), then
//! checks every connection by a ping that must come back as a pong with the
//! same payload, and closes each with a close handshake.
//!
//! The hold ends early when every opened connection is already gone (the
//! server closed them all): there is nothing left to hold.
//!
//! Reported: `opened`, `failed` (could not open), `still_open` (answered the
//! final ping), `lost` (opened but not still open), `closed_clean`, the
//! reasons in `error_kinds`, and connect latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::client::{error_kind, Target, TargetArgs, Ws};
use crate::stats::{self, Errors};

const VERIFY_PAYLOAD: &[u8] = b"wsload-verify";

#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Opening rate: 100, 100/s, 6000/m; 0 opens them all at once.
    #[arg(long, default_value = "100/s", value_parser = stats::parse_rate)]
    pub rate: f64,
    /// How long to keep them open once every attempt is done.
    #[arg(long, default_value = "10s", value_parser = stats::parse_duration)]
    pub hold: Duration,
    /// How long each connection gets to answer the final ping, and then
    /// to answer the close (thousands close at once: allow for a queue).
    #[arg(long, default_value = "5s", value_parser = stats::parse_duration)]
    pub verify_timeout: Duration,
}

#[derive(Default)]
struct Outcome {
    opened: bool,
    still_open: bool,
    closed_clean: bool,
    server_messages: u64,
    errors: Errors,
}

pub async fn run(args: HoldArgs) -> anyhow::Result<(serde_json::Value, bool)> {
    let target = Arc::new(Target::new(&args.target, 4 << 10)?);
    let mut connect_latency = stats::new_histogram()?;
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let (verify_tx, verify_rx) = watch::channel(false);
    let alive = Arc::new(Alive::default());

    // Phase 1: open at the requested rate (Burst keeps the average rate
    // when the timer falls behind).
    let open_started = Instant::now();
    let mut ticker = (args.rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let target = Arc::clone(&target);
        let opened_tx = opened_tx.clone();
        let verify_rx = verify_rx.clone();
        let timeout = args.verify_timeout;
        let alive = Arc::clone(&alive);
        tasks.push(tokio::spawn(async move {
            hold_one(&target, opened_tx, verify_rx, timeout, &alive).await
        }));
    }
    drop(opened_tx);
    let mut opened = 0usize;
    let mut failed = 0usize;
    let mut errors = Errors::default();
    while let Some(result) = opened_rx.recv().await {
        match result {
            Ok(took) => {
                opened += 1;
                stats::record(&mut connect_latency, took);
            }
            Err(kind) => {
                failed += 1;
                errors.add(kind);
            }
        }
    }
    let open_s = open_started.elapsed().as_secs_f64();
    eprintln!(
        "wsload hold: {opened} open, {failed} failed after {open_s:.2}s; holding for {:?}",
        args.hold
    );

    // Phase 2: hold. The connections are the workload; this wait is the
    // point of the test, not a synchronisation.
    let ended_early = tokio::select! {
        () = tokio::time::sleep(args.hold) => false,
        () = alive.all_gone() => true,
    };
    if ended_early {
        eprintln!("wsload hold: every connection is gone; not holding any longer");
    }

    // Phase 3: verify and close.
    let _ = verify_tx.send(true);
    let mut still_open = 0usize;
    let mut closed_clean = 0usize;
    let mut server_messages = 0u64;
    for task in tasks {
        match task.await {
            Ok(o) => {
                still_open += usize::from(o.still_open);
                closed_clean += usize::from(o.closed_clean);
                server_messages += o.server_messages;
                // Connect failures were tallied as they happened.
                if o.opened {
                    errors.merge(o.errors);
                }
            }
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let report = json!({
        "mode": "hold",
        "url": args.target.url,
        "connections": args.connections,
        "rate_per_s": args.rate,
        "hold_s": args.hold.as_secs_f64(),
        "hold_ended_early": ended_early,
        "open_s": stats::round3(open_s),
        "opened": opened,
        "failed": failed,
        "still_open": still_open,
        "lost": opened - still_open.min(opened),
        "closed_clean": closed_clean,
        "server_messages": server_messages,
        "connect_latency_us": stats::summary(&connect_latency),
        "errors": errors.total(),
        "error_kinds": errors.to_json(),
    });
    Ok((report, opened > 0))
}

async fn hold_one(
    target: &Target,
    opened_tx: mpsc::UnboundedSender<Result<Duration, String>>,
    mut verify: watch::Receiver<bool>,
    verify_timeout: Duration,
    alive: &Alive,
) -> Outcome {
    let mut o = Outcome::default();
    let t0 = Instant::now();
    let ws = match target.connect().await {
        Ok(ws) => ws,
        Err(kind) => {
            let _ = opened_tx.send(Err(kind));
            return o;
        }
    };
    o.opened = true;
    // Counted alive before the main task can learn it was opened.
    alive.count.fetch_add(1, Ordering::SeqCst);
    let _ = opened_tx.send(Ok(t0.elapsed()));
    drop(opened_tx);
    hold_open(ws, o, &mut verify, verify_timeout, alive).await
}

/// Connections currently open during the hold.
#[derive(Default)]
struct Alive {
    count: AtomicUsize,
    gone: Notify,
}

impl Alive {
    fn lost_one(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.gone.notify_one();
        }
    }

    /// Resolves once no opened connection is left (never while some are).
    async fn all_gone(&self) {
        loop {
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            self.gone.notified().await;
        }
    }
}

async fn hold_open(
    mut ws: Ws,
    mut o: Outcome,
    verify: &mut watch::Receiver<bool>,
    verify_timeout: Duration,
    alive: &Alive,
) -> Outcome {
    // Idle, but reading: pushes are counted, pings answered by tungstenite.
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => o.server_messages += 1,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    o.errors.add(format!("closed by server during hold ({code})"));
                    alive.lost_one();
                    return o;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    o.errors.add(format!("dropped during hold: {}", error_kind(&e)));
                    alive.lost_one();
                    return o;
                }
                None => {
                    o.errors.add("dropped during hold: eof");
                    alive.lost_one();
                    return o;
                }
            },
            _ = verify.wait_for(|v| *v) => break,
        }
    }

    match tokio::time::timeout(verify_timeout, ping(&mut ws, &mut o.server_messages)).await {
        Ok(Ok(())) => o.still_open = true,
        Ok(Err(kind)) => {
            o.errors.add(kind);
            return o;
        }
        Err(_) => {
            o.errors.add("verify: no pong");
            return o;
        }
    }
    match crate::echo::close_within(&mut ws, verify_timeout).await {
        Ok(()) => o.closed_clean = true,
        Err(kind) => o.errors.add(kind),
    }
    o
}

/// Sends a ping and waits for its pong.
async fn ping(ws: &mut Ws, server_messages: &mut u64) -> Result<(), String> {
    ws.send(Message::Ping(Bytes::from_static(VERIFY_PAYLOAD)))
        .await
        .map_err(|e| format!("verify: {}", error_kind(&e)))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(p))) if p.as_ref() == VERIFY_PAYLOAD => return Ok(()),
            Some(Ok(Message::Text(_) | Message::Binary(_))) => *server_messages += 1,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                return Err(format!("verify: closed by server ({code})"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("verify: {}", error_kind(&e))),
            None => return Err("verify: eof".to_owned()),
        }
    }
}
