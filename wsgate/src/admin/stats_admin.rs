//! `stats admin if <cond>`: server actions from the stats page, sent as
//! HAProxy's form (`POST <uri>` with `s=<server>&action=<action>&b=<backend>`;
//! `s` may repeat) and answered as HAProxy does, with `303 See Other` to
//! `<uri>;st=DONE|PART|NONE|ERRP`.
//!
//! CSRF-safe by three checks on top of `stats auth`: the `stats admin`
//! condition must hold, a browser's `Origin` (or, without it, `Referer`)
//! must name the page's own host, and the form must carry the process's
//! random token, which only a page fetched with the credentials shows.
//! Without `stats admin` (or when its condition does not hold) a POST gets
//! 403. Actions: `ready`, `drain`, `maint` (as the runtime API's `set
//! server ... state`), `shutdown` (the server's sessions, WebSockets with
//! close 1012) and wsgate's `weight` with a `weight=<0..256>` field.

use std::fmt::Write as _;
use std::sync::OnceLock;

use super::stats::escape;
use crate::backend::AdminState;
use crate::proxy::Runtime;

/// Largest form accepted (a page's form with every server of a big
/// backend ticked stays far below).
pub const MAX_FORM: usize = 64 * 1024;

/// The per-process token the page's forms carry.
pub fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let mut bytes = [0u8; 16];
        let rng = ring::rand::SystemRandom::new();
        if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
            // No system randomness: a token nobody can guess cannot be
            // made, so none will match.
            return String::new();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// Why a POST was refused (the status to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `stats admin`, its condition false, a foreign origin or a
    /// missing or wrong token.
    Forbidden,
}

/// The headers a POST is judged by.
pub struct Post<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub body: &'a [u8],
}

/// Checks and applies a POST; the `;st=` code to redirect to.
pub fn post(rt: &Runtime, admin: bool, req: &Post<'_>) -> Result<&'static str, Refusal> {
    if !admin || !same_origin(req) {
        return Err(Refusal::Forbidden);
    }
    let form = parse_form(req.body);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let expected = token();
    let given = field("token").unwrap_or("");
    if expected.is_empty() || !super::stats::constant_time_eq(expected.as_bytes(), given.as_bytes())
    {
        return Err(Refusal::Forbidden);
    }
    let servers: Vec<&str> = form
        .iter()
        .filter(|(n, _)| n == "s")
        .map(|(_, v)| v.as_str())
        .collect();
    let (Some(b), Some(action)) = (field("b"), field("action")) else {
        return Ok("ERRP");
    };
    let Some(be) = rt.backends.iter().find(|be| be.config.name == b) else {
        return Ok("ERRP");
    };
    let weight = match action {
        "weight" => match field("weight").and_then(|w| w.parse::<u32>().ok()) {
            Some(w) if w <= 256 => Some(w),
            _ => return Ok("ERRP"),
        },
        "ready" | "drain" | "maint" | "shutdown" => None,
        _ => return Ok("ERRP"),
    };
    if servers.is_empty() {
        return Ok("NONE");
    }
    let mut done = 0;
    for name in &servers {
        let Some(i) = be.server_index(name) else {
            continue;
        };
        match action {
            "ready" => be.set_admin(i, AdminState::Ready),
            "drain" => be.set_admin(i, AdminState::Drain),
            "maint" => be.set_admin(i, AdminState::Maint),
            "shutdown" => be.shutdown_sessions(i),
            _ => be.set_weight(i, weight.unwrap_or(0)),
        }
        done += 1;
    }
    Ok(match done {
        0 => "NONE",
        n if n == servers.len() => "DONE",
        _ => "PART",
    })
}

/// A browser names the page that sent a form in `Origin` (or at least
/// `Referer`): it must be this host. Clients that send neither (curl,
/// scripts) are judged by the token alone.
fn same_origin(req: &Post<'_>) -> bool {
    let Some(host) = req.host else {
        return req.origin.is_none() && req.referer.is_none();
    };
    let names_host = |url: &str| {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        rest.is_some_and(|r| {
            let authority = r.split(['/', '?', '#']).next().unwrap_or("");
            authority.eq_ignore_ascii_case(host)
        })
    };
    match (req.origin, req.referer) {
        (Some(o), _) => names_host(o),
        (None, Some(r)) => names_host(r),
        (None, None) => true,
    }
}

/// `application/x-www-form-urlencoded` pairs.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The page's forms: per backend, its servers to tick and the actions.
pub fn forms(rt: &Runtime, uri: &str) -> String {
    let mut s = String::from("<h2>Server actions</h2>");
    for be in &rt.backends {
        if be.config.servers.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            "<form method=\"post\" action=\"{}\" class=\"admin\"><b>{}</b> ",
            escape(uri),
            escape(&be.config.name)
        );
        for srv in &be.config.servers {
            let _ = write!(
                s,
                "<label><input type=\"checkbox\" name=\"s\" value=\"{0}\">{0}</label> ",
                escape(&srv.name)
            );
        }
        let _ = write!(
            s,
            "<select name=\"action\"><option value=\"\">Choose an action</option>\
             <option value=\"ready\">Set state to READY</option>\
             <option value=\"drain\">Set state to DRAIN</option>\
             <option value=\"maint\">Set state to MAINT</option>\
             <option value=\"shutdown\">Kill sessions</option>\
             <option value=\"weight\">Set weight</option></select> \
             <input type=\"number\" name=\"weight\" min=\"0\" max=\"256\" placeholder=\"weight\"> \
             <input type=\"hidden\" name=\"b\" value=\"{}\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <input type=\"submit\" value=\"Apply\"></form>",
            escape(&be.config.name),
            token()
        );
    }
    s
}

/// The banner for `<uri>;st=<code>` after an action.
pub fn banner(target: &str) -> Option<&'static str> {
    let code = target.split(";st=").nth(1)?;
    Some(match code.get(..4)? {
        "DONE" => "Action processed successfully.",
        "PART" => "Action partially processed.",
        "NONE" => "Nothing has changed.",
        "ERRP" => "Action not processed because of invalid parameters.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(
            parse_form(b"s=s1&s=a%20b&action=drain&b=app+x&x"),
            vec![
                ("s".into(), "s1".into()),
                ("s".into(), "a b".into()),
                ("action".into(), "drain".into()),
                ("b".into(), "app x".into()),
                ("x".into(), String::new()),
            ]
        );
        assert_eq!(parse_form(b"a=%zz%4"), vec![("a".into(), "%zz%4".into())]);
    }

    #[test]
    fn origins() {
        let p = |host, origin, referer| Post {
            host,
            origin,
            referer,
            body: b"",
        };
        assert!(same_origin(&p(Some("h:80"), None, None)));
        assert!(same_origin(&p(Some("h:80"), Some("http://h:80"), None)));
        assert!(same_origin(&p(
            Some("h:80"),
            None,
            Some("https://H:80/stats")
        )));
        assert!(!same_origin(&p(
            Some("h:80"),
            Some("http://evil"),
            Some("http://h:80/")
        )));
        assert!(!same_origin(&p(
            Some("h:80"),
            None,
            Some("http://h:80.evil/")
        )));
        assert!(!same_origin(&p(Some("h:80"), Some("null"), None)));
        assert!(!same_origin(&p(None, Some("http://h"), None)));
    }

    #[test]
    fn token_is_random_hex() {
        assert_eq!(token().len(), 32);
        assert!(token().bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
