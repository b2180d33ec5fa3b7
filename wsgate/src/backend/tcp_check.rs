//! `option tcp-check`: one run of a backend's `tcp-check` script against
//! one server (the script itself is read by `config::tcp_check`).
//!
//! Stage: called by `health::check_once` instead of the bare connect; its
//! [`Outcome`] counts toward `rise`/`fall` like any check. As in HAProxy:
//! a script that does not start with `connect` gets one first (to the
//! check address, with `check-ssl`/`check-send-proxy` as set); `send`
//! empties what was received, so an `expect` looks at the answer to the
//! last request. An `expect` reads until its pattern shows up, the server
//! closes or 16 KiB arrived; a mismatch is only final then, or once
//! `min-recv` bytes are in: otherwise it waits for more and the check ends
//! as a Layer7 timeout, as HAProxy's does (a Redis answering `-ERR` to a
//! `+PONG` expect times out). A `!` expect fails only on a match. The failure reasons follow HAProxy's wording
//! ("TCPCHK did not match content '+PONG' at step 2"), so the DOWN log
//! line tells which step failed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::health::{fail, io_info, open, Io, Outcome, Probe};
use crate::config::tcp_check::{Step, TcpCheck};

/// Largest answer an `expect` reads.
const MAX_RECEIVED: usize = 16 * 1024;

/// Runs `script` for the probe's server: `connect_limit` for each
/// connect, everything by `overall`.
pub async fn run(
    p: &Probe<'_>,
    script: &TcpCheck,
    connect_limit: Duration,
    overall: Instant,
) -> Outcome {
    let c = p.check;
    let starts_with_connect = matches!(
        script.rules.first().map(|r| &r.step),
        Some(Step::Connect { .. })
    );
    let implicit = (!starts_with_connect).then_some(Step::Connect {
        port: None,
        ssl: false,
        send_proxy: false,
        default: true,
    });
    // HAProxy numbers steps by line (comments included); the implicit
    // connect is the "initial connection step".
    let steps = implicit.iter().map(|s| (s, None, 0)).chain(
        script
            .rules
            .iter()
            .map(|r| (&r.step, r.comment.as_deref(), r.step_no)),
    );
    let mut conn: Option<Box<dyn Io>> = None;
    let mut received = Vec::new();
    let mut passed = "Layer4 check passed";
    let mut expected = false;
    for (step, comment, step_no) in steps {
        let comment = comment
            .map(|t| format!(" comment: '{t}'"))
            .unwrap_or_default();
        let at = |what: &str| match step_no {
            0 => format!(" at initial connection step of tcp-check{comment}"),
            n => format!(" at step {n} of tcp-check ({what}){comment}"),
        };
        match step {
            Step::Connect {
                port,
                ssl,
                send_proxy,
                default,
            } => {
                let ssl = *ssl || (*default && c.ssl.is_some());
                let send_proxy = *send_proxy || (*default && c.send_proxy.is_some());
                // The previous connection closes before the next opens.
                drop(conn.take());
                received.clear();
                let target = SocketAddr::new(p.target.ip(), port.unwrap_or(p.target.port()));
                let proxy = send_proxy.then(|| c.send_proxy.or(p.server_proxy).unwrap_or_default());
                let tls = if ssl {
                    match p.tls {
                        Some(t) => Some(t),
                        None => {
                            return fail(format!(
                                "Layer6 invalid response, info: \"no TLS settings\"{}",
                                at("connect")
                            ))
                        }
                    }
                } else {
                    None
                };
                match open(target, connect_limit, proxy.as_ref(), tls, overall).await {
                    Ok((stream, label)) => {
                        conn = Some(stream);
                        passed = label;
                    }
                    Err(o) => return fail(format!("{}{}", o.reason, at("connect"))),
                }
            }
            Step::Send(data) => {
                let Some(stream) = conn.as_mut() else {
                    return fail(format!(
                        "Layer4 connection problem, info: \"not connected\"{}",
                        at("send")
                    ));
                };
                received.clear();
                match tokio::time::timeout_at(overall, stream.write_all(data)).await {
                    Err(_) => return fail(format!("Layer7 timeout{}", at("send"))),
                    Ok(Err(e)) => {
                        return fail(format!(
                            "Layer4 connection problem, info: \"{}\"{}",
                            io_info(&e),
                            at("send")
                        ))
                    }
                    Ok(Ok(())) => {}
                }
            }
            Step::Expect {
                negate,
                pattern,
                min_recv,
            } => {
                expected = true;
                let what = format!(
                    "expect {}{}",
                    if *negate { "! " } else { "" },
                    pattern.syntax()
                );
                let Some(stream) = conn.as_mut() else {
                    return fail(format!(
                        "Layer4 connection problem, info: \"not connected\"{}",
                        at(&what)
                    ));
                };
                let mut closed = false;
                let found = loop {
                    // HAProxy's `tcpcheck_eval_expect`: judge once enough
                    // bytes are in (the pattern's length, `min-recv`); a
                    // mismatch is final only with `min-recv` or when no
                    // more can come, else wait for more.
                    let last = closed || received.len() >= MAX_RECEIVED;
                    let short = received.len() < pattern.min_len()
                        || min_recv.is_some_and(|m| received.len() < m);
                    if last || !short {
                        let matched = pattern.matches(&received);
                        if matched || last || min_recv.is_some() {
                            break matched;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match tokio::time::timeout_at(overall, stream.read(&mut chunk)).await {
                        Err(_) => return fail(format!("Layer7 timeout{}", at(&what))),
                        Ok(Ok(0)) => closed = true,
                        Ok(Ok(k)) => received.extend_from_slice(&chunk[..k]),
                        Ok(Err(e)) if received.is_empty() => {
                            return fail(format!(
                                "Layer4 connection problem, info: \"{}\"{}",
                                io_info(&e),
                                at(&what)
                            ))
                        }
                        Ok(Err(_)) => closed = true,
                    }
                };
                if found == *negate {
                    let verb = if found {
                        "matched unwanted"
                    } else {
                        "did not match"
                    };
                    return fail(format!(
                        "Layer7 invalid response, info: \"TCPCHK {verb} {} at step {step_no}{comment}\"",
                        pattern.describe()
                    ));
                }
            }
        }
    }
    Outcome {
        ok: true,
        reason: if expected {
            "Layer7 check passed, info: \"(tcp-check)\"".into()
        } else {
            passed.into()
        },
    }
}
