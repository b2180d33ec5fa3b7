//! The runtime API's views of single connections: `show sess` (the live
//! ones, WebSocket tunnels included) and `show errors` (the last refused
//! request of each frontend), in HAProxy's layouts where they make sense
//! for wsgate.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::log::accept_date;
use crate::proxy::captured::dump;
use crate::proxy::Runtime;

/// `show sess`: one line per live connection, oldest first:
/// `0x<id>: proto=tcpv4 src=<ip:port> fe=<frontend> be=<backend>
/// srv=<server> age=<time> state=<http|websocket|tunnel> reqs=<n>
/// [tunnel_age=<time> bytes_in=<from client> bytes_out=<from server>]`.
pub fn show_sess(rt: &Runtime) -> String {
    let mut out = String::new();
    for live in rt.obs.registry.snapshot() {
        let st = live.state();
        let proto = if live.peer.is_ipv4() {
            "tcpv4"
        } else {
            "tcpv6"
        };
        let state = match st.tunnel {
            Some(t) if t.websocket => "websocket",
            Some(_) => "tunnel",
            None => "http",
        };
        let _ = write!(
            out,
            "0x{:x}: proto={proto} src={} fe={}{} be={} srv={} age={} state={state} reqs={}",
            live.id,
            live.peer,
            live.frontend,
            if live.tls { "~" } else { "" },
            st.route.as_ref().map_or("<NONE>", |r| &*r.backend),
            st.route.as_ref().map_or("<NONE>", |r| &*r.server),
            human(live.started.elapsed()),
            st.exchanges,
        );
        if let Some(t) = st.tunnel {
            let (up, down) = live.tunnel_bytes();
            let _ = write!(
                out,
                " tunnel_age={} bytes_in={up} bytes_out={down}",
                human(t.since.elapsed())
            );
        }
        out.push('\n');
    }
    out
}

/// `show errors`: HAProxy's header, then per frontend its last refused
/// request and per backend its last unreadable response, with the
/// offending position and the bytes received.
pub fn show_errors(rt: &Runtime) -> String {
    let captures = rt.obs.captures.all();
    let mut out = format!(
        "Total events captured on [{}] : {}\n",
        accept_date(SystemTime::now()),
        rt.obs.captures.events()
    );
    let id = |i: Option<usize>| i.map_or(-1, |i| i64::try_from(i).unwrap_or(-2) + 1);
    for c in captures {
        let fe_id = id(rt.frontends.iter().position(|f| f.name == c.frontend));
        let _ = write!(out, "\n[{}] ", accept_date(c.date));
        match &c.response {
            None => {
                let _ = write!(
                    out,
                    "frontend {} (#{fe_id}): invalid request\n  backend <NONE> (#-1), server <NONE> (#-1)",
                    c.frontend
                );
            }
            Some((backend, server)) => {
                let be = rt.backends.iter().position(|b| b.config.name == *backend);
                let srv = be.and_then(|b| rt.backends[b].server_index(server));
                let srv_id = srv
                    .zip(be)
                    .map_or(-1, |(s, b)| i64::from(rt.backends[b].config.servers[s].id));
                let _ = write!(
                    out,
                    "backend {backend} (#{}): invalid response\n  frontend {} (#{fe_id}), server {server} (#{srv_id})",
                    id(be),
                    c.frontend
                );
            }
        }
        let _ = write!(
            out,
            ", event #{}, src {}\n  answered {} ({})\n  len {}, error at position {}:\n\n{}",
            c.event,
            c.peer,
            c.status,
            c.reason,
            c.bytes.len(),
            c.position,
            dump(&c.bytes)
        );
    }
    out
}

/// `5s`, `3m12s`, `2h5m`, as HAProxy prints ages.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_as_haproxy_prints_them() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(192)), "3m12s");
        assert_eq!(human(Duration::from_secs(7500)), "2h5m");
        assert_eq!(human(Duration::from_secs(90_000)), "1d1h");
    }
}
