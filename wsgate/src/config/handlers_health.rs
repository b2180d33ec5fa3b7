//! Health keywords: the check request (`http-check send`, and the headers
//! HAProxy users embed in `option httpchk`'s version word,
//! `HTTP/1.1\r\nHost:\ example.com`, the pre-2.2 idiom), and the proxy's
//! own probe (`monitor-uri`, `monitor fail`).
//!
//! Stage: called by the `http-check`, `monitor-uri` and `monitor` entries
//! of the keyword table; `http-check send` is kept in the draft and merged
//! into `option httpchk`'s request by `check` (the two keywords may come in
//! either order, as in HAProxy).

use super::lexer::Token;
use super::parser::{Cx, ProxyDraft};

/// `http-check send [meth <m>] [uri <u>] [ver <v>] [hdr <name> <value>]*
/// [body <string>]`: what it sets, the rest comes from `option httpchk`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSend {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Splits `HTTP/1.1\r\nHost: x\r\n...` into the version and its headers.
/// `Err` names the first line that is not `Name: value`.
pub fn version_with_headers(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let version = lines.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    for l in lines {
        match l.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(' ') => {
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
            _ => return Err(format!("'{l}' is not a `Name: value` header")),
        }
    }
    Ok((version, headers))
}

/// `http-check send ...` (the words after `send`).
pub fn send(p: &mut ProxyDraft, cx: &mut Cx<'_>, args: &[Token]) {
    let usage = "usage: http-check send [meth <method>] [uri <uri>] [ver <version>] [hdr <name> <value>]... [body <string>]";
    let mut s = CheckSend::default();
    let mut i = 0;
    while let Some(w) = args.get(i) {
        let value = |k: usize| args.get(i + k).map(|t| t.text.clone());
        match w.text.as_str() {
            "meth" | "uri" | "ver" | "body" => {
                let Some(v) = value(1) else {
                    cx.error(w, format!("'{}' needs a value", w.text)).hint = Some(usage.into());
                    return;
                };
                match w.text.as_str() {
                    "meth" => s.method = Some(v),
                    "uri" => s.uri = Some(v),
                    "ver" => {
                        if v != "HTTP/1.0" && v != "HTTP/1.1" {
                            cx.error(&args[i + 1], format!("unsupported check version '{v}' (expected HTTP/1.0 or HTTP/1.1)"));
                            return;
                        }
                        s.version = Some(v);
                    }
                    _ => s.body = Some(v),
                }
                i += 2;
            }
            "hdr" => {
                let (Some(name), Some(v)) = (value(1), value(2)) else {
                    cx.error(w, "'hdr' needs a name and a value").hint = Some(usage.into());
                    return;
                };
                s.headers.push((name, v));
                i += 3;
            }
            "uri-lf" | "body-lf" => {
                cx.error(
                    w,
                    format!("'{}' (a log-format check request) is not supported", w.text),
                )
                .hint = Some("write the value itself with `uri` or `body`".into());
                return;
            }
            other => {
                cx.error(w, format!("unknown 'http-check send' argument '{other}'"))
                    .hint = Some(usage.into());
                return;
            }
        }
    }
    let merged = p.http_send.get_or_insert_with(CheckSend::default);
    merged.method = s.method.or(merged.method.take());
    merged.uri = s.uri.or(merged.uri.take());
    merged.version = s.version.or(merged.version.take());
    merged.body = s.body.or(merged.body.take());
    merged.headers.extend(s.headers);
}

/// The `<codes>` of `http-check expect status`: codes and `lo-hi` ranges,
/// comma-separated (HAProxy 2.2+). `Err` says what is wrong.
pub fn status_codes(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let code = |t: &str| match t.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("'{t}' is not an HTTP status code")),
    };
    text.split(',')
        .map(|part| {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (code(lo)?, code(hi)?),
                None => (code(part)?, code(part)?),
            };
            if lo > hi {
                return Err(format!("'{part}' is an empty range"));
            }
            Ok((lo, hi))
        })
        .collect()
}

/// `http-check disable-on-404`: accepted with a warning, the outcome is
/// the same for new traffic.
pub fn disable_on_404(cx: &mut Cx<'_>, at: &Token) {
    cx.warn(
        at,
        "'http-check disable-on-404' accepted as a failed check: a server answering 404 is marked down instead of draining; either way it gets no new connections and its open WebSockets stay",
    );
}

/// `monitor-uri <uri>`.
pub fn monitor_uri(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("monitor-uri <uri>") else {
        return;
    };
    if !t.text.starts_with('/') && !t.text.contains("://") {
        cx.warn(
            t,
            format!(
                "monitor-uri '{}' does not start with '/': no request target can match it",
                t.text
            ),
        );
    }
    p.monitor_uri = Some(t.text.clone());
}

/// `monitor fail if|unless <condition>`.
pub fn monitor(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let usage = "usage: monitor fail if|unless <condition>";
    match args {
        [fail, cond, ..]
            if fail.text == "fail" && matches!(cond.text.as_str(), "if" | "unless") =>
        {
            let location = cx.loc(fail);
            if let Some(rule) = cx.rule(String::new(), location, &args[1..]) {
                p.monitor_fail.push(rule);
            }
        }
        [fail, ..] if fail.text == "fail" => {
            cx.error(
                fail,
                "'monitor fail' needs `if <condition>` or `unless <condition>`",
            )
            .hint = Some(usage.into());
        }
        [other, ..] => {
            cx.error(other, format!("unknown 'monitor' action '{}'", other.text))
                .hint = Some(usage.into());
        }
        [] => {
            let kw = cx.kw;
            cx.error(kw, "'monitor' needs an action").hint = Some(usage.into());
        }
    }
}
