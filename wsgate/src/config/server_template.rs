//! `server-template <prefix> <num | first-last> <fqdn>[:<port>] [params*]`:
//! numbered servers filled from one host name.
//!
//! HAProxy fills the slots from DNS answers at run time (`resolvers`);
//! wsgate resolves the name once, at startup, like every server address:
//! slot k gets the k-th address of the answer, and slots with no address
//! are declared `disabled` (as HAProxy keeps them in maintenance until DNS
//! gives them one). Address changes while running are not followed, which
//! the warning says. Each slot is then an ordinary `server` line.

use std::net::{IpAddr, ToSocketAddrs};

use super::lexer::Token;
use super::parser::{Cx, ProxyDraft};

pub fn server_template(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let usage = "usage: server-template <prefix> <num>|<first>-<last> <fqdn>:<port> [params...]";
    let args = cx.args;
    let (Some(prefix), Some(range), Some(addr)) = (args.first(), args.get(1), args.get(2)) else {
        let kw = cx.kw;
        cx.error(
            kw,
            "'server-template' needs a prefix, a number of servers and an address",
        )
        .hint = Some(usage.into());
        return;
    };
    let ids = match parse_range(&range.text) {
        Some(ids) => ids,
        None => {
            cx.error(
                range,
                format!(
                    "'{}' is not a server count or a range such as 1-4",
                    range.text
                ),
            )
            .hint = Some(usage.into());
            return;
        }
    };
    let params = &args[3..];
    let addr_text = super::lexer::expand_address(&addr.text, cx.env);
    let (host, port) = match addr_text.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => {
            cx.error(
                addr,
                format!("missing port in server-template address '{}'", addr.text),
            )
            .hint = Some(usage.into());
            return;
        }
    };
    let init_none = params
        .windows(2)
        .any(|w| w[0].text == "init-addr" && w[1].text.split(',').any(|m| m == "none"));
    let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if cx.syntax_only => Vec::new(),
        Err(_) => {
            let mut ips = Vec::new();
            let found = (host, port.parse::<u16>().unwrap_or(0)).to_socket_addrs();
            for a in found.into_iter().flatten() {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            if ips.is_empty() && !init_none {
                cx.env_error(addr, format!("cannot resolve host name '{host}'"))
                    .hint = Some("make sure the name resolves where wsgate starts, or add `init-addr none` to start the slots without an address (in maintenance); `wsgate -c --syntax-only` skips name resolution".into());
                return;
            }
            ips
        }
    };
    let filled = ips.len().min(ids.len());
    let message = if cx.syntax_only {
        format!("server-template: '{host}' is resolved once, at startup (not now: --syntax-only); slots without an address stay in maintenance until `set server ... addr`; address changes are not followed while running")
    } else {
        format!(
            "server-template: '{host}' resolved once, at startup: {filled} of {} slot(s) get an address, the others stay in maintenance until `set server ... addr`; address changes are not followed while running",
            ids.len()
        )
    };
    cx.warn(addr, message);
    // Every slot has the same options: their problems are reported once,
    // by the first slot.
    let mut after_first = None;
    for (k, id) in ids.iter().enumerate() {
        let at = |t: &Token, text: String| Token {
            text,
            line: t.line,
            col: t.col,
        };
        // A slot without an address gets none (HAProxy's "MAINT
        // (resolution)"); its name only gives the port.
        let host_text = match ips.get(k) {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            Some(v4) => v4.to_string(),
            None => host.to_owned(),
        };
        let mut words = vec![
            at(prefix, format!("{}{id}", prefix.text)),
            at(addr, format!("{host_text}:{port}")),
        ];
        words.extend(params.iter().cloned());
        let mut slot = Cx {
            file: cx.file,
            keyword: "server".into(),
            kw: cx.kw,
            args: &words,
            negated: false,
            section: cx.section,
            crt_base: cx.crt_base,
            ssl_bind: cx.ssl_bind.clone(),
            syntax_only: cx.syntax_only,
            env: cx.env,
            diags: &mut *cx.diags,
        };
        super::handlers::server_at(p, &mut slot, ips.get(k).is_none());
        match after_first {
            None => after_first = Some(cx.diags.len()),
            Some(n) => cx.diags.truncate(n),
        }
    }
}

/// `4` → 1..=4, `2-5` → 2..=5.
fn parse_range(text: &str) -> Option<Vec<u32>> {
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => (1, text.parse().ok()?),
    };
    (lo >= 1 && lo <= hi && hi - lo < 10_000).then(|| (lo..=hi).collect())
}
