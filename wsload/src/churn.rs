//! `wsload churn`: connection setup and teardown, the cost a proxy pays
//! per WebSocket rather than per message.
//!
//! `--concurrency` workers each repeat, until `--duration` is over: open a
//! WebSocket (TCP, TLS for wss:// — a full handshake unless `--tls-resume`
//! — and the HTTP upgrade), send one binary message of `--size` bytes, wait
//! for its echo, close with a close handshake. A failed cycle is tallied by
//! kind and the worker pauses 10 ms (so a refused port does not spin).
//!
//! Reported: `completed` cycles, `failed` cycles, `conns_per_sec`
//! (completed / elapsed), `cycle_latency_us` (the whole cycle) and
//! `connect_latency_us` (TCP + TLS + upgrade), `error_kinds`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::client::{error_kind, Target, TargetArgs};
use crate::stats::{self, Errors};

#[derive(Debug, clap::Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Cycles (open, echo, close) in progress at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Payload size of the one echoed message, in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// How long to keep cycling (5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = stats::parse_duration)]
    pub duration: Duration,
    /// Give up on an echo after this long.
    #[arg(long, default_value = "10s", value_parser = stats::parse_duration)]
    pub reply_timeout: Duration,
}

struct WorkerResult {
    completed: u64,
    failed: u64,
    cycle: Histogram<u64>,
    connect: Histogram<u64>,
    errors: Errors,
    last: Option<Instant>,
}

pub async fn run(args: ChurnArgs) -> anyhow::Result<(serde_json::Value, bool)> {
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let target = Arc::new(Target::new(&args.target, 8 << 10)?);
    let histogram = stats::new_histogram()?;
    let payload = Bytes::from(vec![b'c'; args.size]);
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut workers = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let target = Arc::clone(&target);
        let histogram = histogram.clone();
        let payload = payload.clone();
        let timeout = args.reply_timeout;
        workers.push(tokio::spawn(async move {
            worker(&target, payload, timeout, deadline, histogram).await
        }));
    }
    let (mut completed, mut failed) = (0u64, 0u64);
    let mut cycle = histogram.clone();
    let mut connect = histogram;
    let mut errors = Errors::default();
    let mut end = start;
    for w in workers {
        match w.await {
            Ok(r) => {
                completed += r.completed;
                failed += r.failed;
                cycle.add(&r.cycle).ok();
                connect.add(&r.connect).ok();
                errors.merge(r.errors);
                if let Some(t) = r.last {
                    end = end.max(t);
                }
            }
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let elapsed = end.duration_since(start).as_secs_f64();
    let rate = if elapsed > 0.0 {
        completed as f64 / elapsed
    } else {
        0.0
    };
    let report = json!({
        "mode": "churn",
        "url": args.target.url,
        "concurrency": args.concurrency,
        "size": args.size,
        "tls_resume": args.target.tls_resume,
        "duration_s": args.duration.as_secs_f64(),
        "elapsed_s": stats::round3(elapsed),
        "completed": completed,
        "failed": failed,
        "conns_per_sec": stats::round3(rate),
        "cycle_latency_us": stats::summary(&cycle),
        "connect_latency_us": stats::summary(&connect),
        "errors": errors.total(),
        "error_kinds": errors.to_json(),
    });
    Ok((report, completed > 0))
}

async fn worker(
    target: &Target,
    payload: Bytes,
    timeout: Duration,
    deadline: Instant,
    histogram: Histogram<u64>,
) -> WorkerResult {
    let mut r = WorkerResult {
        completed: 0,
        failed: 0,
        cycle: histogram.clone(),
        connect: histogram,
        errors: Errors::default(),
        last: None,
    };
    while Instant::now() < deadline {
        let t0 = Instant::now();
        match cycle(target, &payload, timeout, &mut r.connect, t0).await {
            Ok(()) => {
                let now = Instant::now();
                stats::record(&mut r.cycle, now.duration_since(t0));
                r.completed += 1;
                r.last = Some(now);
            }
            Err(kind) => {
                r.failed += 1;
                r.errors.add(kind);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    r
}

/// One open, echo, close.
async fn cycle(
    target: &Target,
    payload: &Bytes,
    timeout: Duration,
    connect: &mut Histogram<u64>,
    t0: Instant,
) -> Result<(), String> {
    let mut ws = target.connect().await?;
    stats::record(connect, t0.elapsed());
    ws.send(Message::Binary(payload.clone()))
        .await
        .map_err(|e| format!("send: {}", error_kind(&e)))?;
    let echo = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(got))) => {
                    return if got == *payload {
                        Ok(())
                    } else {
                        Err("echo mismatch".to_owned())
                    };
                }
                Some(Ok(Message::Close(_))) | None => return Err("closed by server".to_owned()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {}", error_kind(&e))),
            }
        }
    };
    match tokio::time::timeout(timeout, echo).await {
        Ok(result) => result?,
        Err(_) => return Err("reply timeout".to_owned()),
    }
    crate::echo::close(&mut ws).await
}
