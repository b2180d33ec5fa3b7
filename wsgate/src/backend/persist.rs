//! Cookie persistence (`cookie <name> insert|prefix|rewrite ...` with
//! `server ... cookie <value>`): which server a request's cookie names,
//! how the `Cookie` header reaches the server, and what the response's
//! `Set-Cookie` headers become.
//!
//! Pure functions of header values, so every rule is tested alone; the
//! session applies them (`proxy::persist`). The behaviour is HAProxy
//! 2.6's (`http_manage_client_side_cookie`, `http_manage_server_side_cookies`
//! and the insertion in `http_process_res_common`), checked side by side
//! with Debian's 2.6.12 in `tests/balance_sticky.rs`:
//!
//! * request: the first cookie of that name whose value (before a `|`
//!   date, or before the `~` in prefix mode) is the `cookie` value of a
//!   server that is up (or any, with `option persist`) sends the request
//!   to the first such server (several servers may share a value).
//!   In insert mode with `indirect` every cookie of that name is removed
//!   before forwarding; in prefix mode the `<value>~` prefix is removed.
//! * response, insert mode: `Set-Cookie: <name>=<value>; path=/` (then
//!   `; domain=..`, `; HttpOnly`, `; Secure`, `; <attr>`) is appended
//!   unless the client came with the right cookie, or the server set the
//!   cookie itself and `preserve` is on, or `postonly` and the request was
//!   not a POST. A server without a `cookie` value gets the cookie
//!   cleared (`<name>=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/`).
//!   The server's own cookie of that name is removed (unless `preserve`).
//!   With `nocache`, a cacheable response that gets a cookie also gets
//!   `Cache-control: private`.
//! * response, rewrite/prefix mode: the server's `Set-Cookie` of that name
//!   gets its value replaced by (rewrite) or prefixed with `<value>~`
//!   (prefix). Without a mode the cookie is only read (the server sets it
//!   with the right value itself).
//!
//! Date-stamped values (`maxidle`, `maxlife`, in seconds): inserted values
//! are `<value>|<last seen>[|<first seen>]`, HAProxy's 30-bit base64
//! stamps of the UNIX time in 4-second units. A cookie idle longer than
//! `maxidle`, first set longer ago than `maxlife`, or dated more than a
//! day ahead is ignored (the request is balanced and gets a new cookie); a
//! past last-seen date is refreshed. Without them, a dated client value is
//! matched on the part before `|` and set again without the dates.

use crate::config::persist::{Cookie, CookieMode};

/// What the request's `Cookie` headers say about persistence.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestCookie {
    /// The server (index) the cookie designates and that `accept` took.
    pub server: Option<usize>,
    /// The value's `|<last seen>` and `|<first seen>` dates (UNIX seconds
    /// as HAProxy keeps them, in an `int`; 0: none), after `maxidle` and
    /// `maxlife` have been applied (an expired cookie has none).
    pub last_date: i32,
    pub first_date: i32,
    /// New values of the `Cookie` headers, in order, when they change
    /// (`None` for a header left empty, to be removed); `None` when the
    /// headers go to the server as they are.
    pub rewritten: Option<Vec<Option<Vec<u8>>>>,
}

/// The pairs of a `Cookie` header value: (name, value, the pair as
/// written), trimmed. A pair without `=` has no name: it is nobody's
/// persistence cookie and is kept as it is, as in HAProxy.
fn pairs(header: &[u8]) -> impl Iterator<Item = (Option<&[u8]>, &[u8], &[u8])> {
    header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (Some(p[..eq].trim_ascii()), p[eq + 1..].trim_ascii(), p),
            None => (None, &p[p.len()..], p),
        })
}

/// HAProxy's `b64tos30`: five base64 digits → a 30-bit value (`None` for
/// fewer digits or a character outside the alphabet).
fn b64_to_s30(digits: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in digits.get(..5)? {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        v = (v << 6) | u32::from(d);
    }
    Some(v)
}

/// HAProxy's `s30tob64`: the low 30 bits of `v` as five base64 digits.
fn s30_to_b64(v: i32, out: &mut String) {
    const TAB: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for i in 0..5 {
        out.push(char::from(TAB[((v >> (24 - 6 * i)) & 0x3f) as usize]));
    }
}

/// A date field: `val << 2` as HAProxy stores it (an `int`, so large
/// values wrap negative), 0 if absent, invalid or zero.
fn date_field(digits: &[u8]) -> i32 {
    match b64_to_s30(digits) {
        Some(v) if v > 0 => v.wrapping_shl(2) as i32,
        _ => 0,
    }
}

/// HAProxy's `(signed)(a - b)` between an `int` date and a `time_t`.
fn signed_diff(a: i64, b: i64) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Reads the persistence cookie from the request's `Cookie` header values.
/// `values[i]` is server `i`'s `cookie` value; `accept(i)` says whether
/// the server may take the request (up, or `option persist`); `now` is
/// the UNIX time, for dated values (`maxidle`, `maxlife`).
pub fn request(
    cfg: &Cookie,
    values: &[Option<&str>],
    headers: &[&[u8]],
    accept: impl Fn(usize) -> bool,
    now: i64,
) -> RequestCookie {
    let name = cfg.name.as_bytes();
    let mut out = RequestCookie::default();
    let mut changed = false;
    let mut rewritten = Vec::with_capacity(headers.len());
    for header in headers {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        let mut header_changed = false;
        // RFC 2109 `$Path`-style attributes belong to the cookie before
        // them, and go when it goes (as in HAProxy).
        let mut deleting = false;
        for (n, v, text) in pairs(header) {
            if text.first() == Some(&b'$') {
                if !deleting {
                    kept.push(text.to_vec());
                }
                continue;
            }
            deleting = false;
            if n != Some(name) {
                kept.push(text.to_vec());
                continue;
            }
            let (mut id, rest) = match cfg.mode {
                CookieMode::Prefix => match v.iter().position(|&b| b == b'~') {
                    Some(t) => (&v[..t], Some(&v[t + 1..])),
                    None => (v, None),
                },
                _ => match v.iter().position(|&b| b == b'|') {
                    Some(bar) => {
                        let dates = &v[bar + 1..];
                        let last = date_field(dates);
                        if last != 0 {
                            out.last_date = last;
                        }
                        if let Some(bar2) = dates.iter().position(|&b| b == b'|') {
                            let first = date_field(&dates[bar2 + 1..]);
                            if first != 0 {
                                out.first_date = first;
                            }
                        }
                        (&v[..bar], None)
                    }
                    None => (v, None),
                },
            };
            // Too old (`maxlife`) or idle too long (`maxidle`), or dated
            // more than a day ahead: as if there were no cookie.
            let expired = |date: i32, max: Option<u32>| {
                max.is_some_and(|max| {
                    date != 0
                        && (signed_diff(now, i64::from(date)) > max as i32
                            || signed_diff(i64::from(date), now) > 86400)
                })
            };
            if expired(out.first_date, cfg.maxlife) || expired(out.last_date, cfg.maxidle) {
                out.first_date = 0;
                out.last_date = 0;
                id = &[];
            }
            if out.server.is_none() && !id.is_empty() {
                // The first server with this value that may take it: a
                // value shared by several servers is a failover chain.
                out.server = (0..values.len())
                    .find(|&i| values[i].is_some_and(|s| s.as_bytes() == id) && accept(i));
            }
            match (cfg.mode, rest) {
                (CookieMode::Prefix, Some(real)) => {
                    kept.push(pair_bytes(name, real));
                    header_changed = true;
                }
                (CookieMode::Insert, _) if cfg.indirect => {
                    header_changed = true;
                    deleting = true;
                }
                _ => kept.push(text.to_vec()),
            }
        }
        if header_changed {
            changed = true;
            rewritten.push((!kept.is_empty()).then(|| kept.join(&b"; "[..])));
        } else {
            rewritten.push(Some(header.to_vec()));
        }
    }
    if changed {
        out.rewritten = Some(rewritten);
    }
    out
}

fn pair_bytes(n: &[u8], v: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(n.len() + v.len() + 1);
    p.extend_from_slice(n);
    p.push(b'=');
    p.extend_from_slice(v);
    p
}

/// What happens to one `Set-Cookie` header of the server's response.
#[derive(Debug, PartialEq, Eq)]
pub enum SetCookie {
    Keep,
    Remove,
    Replace(Vec<u8>),
}

/// The server's `Set-Cookie` header `value`: is it the persistence cookie,
/// and what becomes of it. `server_value` is the answering server's
/// `cookie` value; `direct` says the client's cookie named that server.
pub fn server_set_cookie(
    cfg: &Cookie,
    value: &[u8],
    server_value: Option<&str>,
    direct: bool,
) -> (bool, SetCookie) {
    let first_end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    let first = &value[..first_end];
    let Some(eq) = first.iter().position(|&b| b == b'=') else {
        return (false, SetCookie::Keep);
    };
    if first[..eq].trim_ascii() != cfg.name.as_bytes() {
        return (false, SetCookie::Keep);
    }
    if cfg.preserve {
        return (true, SetCookie::Keep);
    }
    if cfg.mode == CookieMode::Insert || (direct && cfg.indirect) {
        return (true, SetCookie::Remove);
    }
    let Some(id) = server_value else {
        return (true, SetCookie::Keep);
    };
    // The value, without the spaces around it, is replaced or prefixed.
    let after_eq = &first[eq + 1..];
    let lead = after_eq.len() - after_eq.trim_ascii_start().len();
    let start = eq + 1 + lead;
    let end = start + after_eq.trim_ascii().len();
    let mut out = value[..start].to_vec();
    match cfg.mode {
        CookieMode::Passive | CookieMode::Insert => return (true, SetCookie::Keep),
        CookieMode::Rewrite => out.extend_from_slice(id.as_bytes()),
        CookieMode::Prefix => {
            out.extend_from_slice(id.as_bytes());
            out.push(b'~');
            out.extend_from_slice(&value[start..end]);
        }
    }
    out.extend_from_slice(&value[end..]);
    (true, SetCookie::Replace(out))
}

/// Whether insert mode adds a `Set-Cookie` to this response: the request
/// did not go straight to the server persistence named (`direct`: a
/// cookie or a stick-table entry, as HAProxy's `SF_DIRECT`), or the
/// cookie's dates need refreshing
/// (`maxidle`: the last-seen date is past; `maxlife`: no first date yet;
/// dates not configured: drop the client's).
pub fn needs_insert(
    cfg: &Cookie,
    request: &RequestCookie,
    direct: bool,
    server_set_it: bool,
    is_post: bool,
    now: i64,
) -> bool {
    let (last, first) = (request.last_date, request.first_date);
    let refresh = ((cfg.maxidle.is_some() || last != 0)
        && (last == 0 || i64::from(last) - now < 0))
        || (cfg.maxlife.is_some() && first == 0)
        || (cfg.maxlife.is_none() && first != 0);
    cfg.mode == CookieMode::Insert
        && !(server_set_it && cfg.preserve)
        && (!direct || refresh)
        && (!cfg.postonly || is_post)
}

/// The `Set-Cookie` value insert mode adds for a server with `cookie`
/// value `server_value` (`None`: clear the client's cookie); with
/// `maxidle`/`maxlife` the value carries `|<now>` (and `|<first seen>`),
/// in HAProxy's 4-second base64 stamps.
pub fn insert_value(
    cfg: &Cookie,
    server_value: Option<&str>,
    request: &RequestCookie,
    now: i64,
) -> String {
    let mut v = match server_value {
        Some(id) => {
            let mut v = format!("{}={id}", cfg.name);
            if cfg.maxidle.is_some() || cfg.maxlife.is_some() {
                let stamp = ((now + 3) >> 2) as i32;
                v.push('|');
                s30_to_b64(stamp, &mut v);
                if cfg.maxlife.is_some() {
                    v.push('|');
                    let first = match request.first_date {
                        0 => stamp,
                        f => f >> 2,
                    };
                    s30_to_b64(first, &mut v);
                }
            }
            v.push_str("; path=/");
            v
        }
        None => format!(
            "{}=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/",
            cfg.name
        ),
    };
    for d in &cfg.domains {
        v.push_str("; domain=");
        v.push_str(d);
    }
    if cfg.httponly {
        v.push_str("; HttpOnly");
    }
    if cfg.secure {
        v.push_str("; Secure");
    }
    for a in &cfg.attrs {
        v.push_str("; ");
        v.push_str(a);
    }
    v
}

/// Whether a response may be cached by a shared cache, as HAProxy 2.6
/// decides it for `nocache`: a safe method (GET, HEAD, OPTIONS, TRACE), a
/// status cacheable by default (RFC 7231 §6.1), no `Pragma: no-cache`,
/// `Cache-Control` values read in order (`public` allows; `private`,
/// `no-cache`, `no-store`, `max-age=0`, `s-maxage=0` forbid), and some
/// freshness or validator (`max-age`, `s-maxage`, `Expires`, `ETag`,
/// `Last-Modified`): without one, HAProxy does not count it as cacheable.
pub fn cacheable<'a>(method: &str, status: u16, header: impl Fn(&str) -> Vec<&'a [u8]>) -> bool {
    if !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") {
        return false;
    }
    if !matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 404 | 405 | 410 | 414 | 501
    ) {
        return false;
    }
    if header("pragma")
        .first()
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
    {
        return false;
    }
    let mut cacheable = true;
    let mut fresh = false;
    for v in header("cache-control")
        .into_iter()
        .flat_map(|h| h.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
    {
        let is = |s: &str| v.eq_ignore_ascii_case(s.as_bytes());
        let starts =
            |s: &str| v.len() >= s.len() && v[..s.len()].eq_ignore_ascii_case(s.as_bytes());
        if is("public") {
            cacheable = true;
        } else if is("private")
            || is("no-cache")
            || is("no-store")
            || is("max-age=0")
            || is("s-maxage=0")
        {
            cacheable = false;
        } else if starts("s-maxage") || starts("max-age") {
            fresh = true;
        }
    }
    let validator = || !header("etag").is_empty() || !header("last-modified").is_empty();
    cacheable && (fresh || !header("expires").is_empty() || validator())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(mode: CookieMode, indirect: bool) -> Cookie {
        Cookie {
            name: "SRV".into(),
            mode,
            indirect,
            nocache: false,
            postonly: false,
            preserve: false,
            httponly: false,
            secure: false,
            domains: vec![],
            attrs: vec![],
            maxidle: None,
            maxlife: None,
            dynamic: false,
        }
    }

    const NOW: i64 = 1_764_000_000;

    /// A date field for UNIX time `t`, as HAProxy writes it.
    fn stamp(t: i64) -> String {
        let mut s = String::new();
        s30_to_b64(((t + 3) >> 2) as i32, &mut s);
        s
    }

    const VALUES: [Option<&str>; 3] = [Some("c1"), Some("c2"), None];

    fn req(cfg: &Cookie, headers: &[&str], up: &[bool]) -> RequestCookie {
        let h: Vec<&[u8]> = headers.iter().map(|s| s.as_bytes()).collect();
        request(cfg, &VALUES, &h, |i| up[i], NOW)
    }

    fn texts(r: &RequestCookie) -> Option<Vec<Option<String>>> {
        r.rewritten.as_ref().map(|v| {
            v.iter()
                .map(|h| h.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect()
        })
    }

    #[test]
    fn insert_indirect_finds_and_removes() {
        let cfg = cookie(CookieMode::Insert, true);
        let r = req(&cfg, &["a=1; SRV=c2; b=2"], &[true, true, true]);
        assert_eq!(r.server, Some(1));
        assert_eq!(texts(&r), Some(vec![Some("a=1; b=2".into())]));
        // A lone cookie empties its header, which is then dropped.
        let r = req(&cfg, &["SRV=c1", "x=1; SRV=c1"], &[true, true, true]);
        assert_eq!(r.server, Some(0));
        assert_eq!(texts(&r), Some(vec![None, Some("x=1".into())]));
        // Its `$` attributes go with it; a flag without `=` stays.
        let r = req(
            &cfg,
            &["flag; SRV=c1; $Path=/; $x; b=2; $Domain=d"],
            &[true; 3],
        );
        assert_eq!(texts(&r), Some(vec![Some("flag; b=2; $Domain=d".into())]));
        // Unknown values are removed too, and name no server.
        let r = req(&cfg, &["SRV=bogus; z=1"], &[true, true, true]);
        assert_eq!(r.server, None);
        assert_eq!(texts(&r), Some(vec![Some("z=1".into())]));
        // Without indirect the header goes as it is.
        let r = req(&cookie(CookieMode::Insert, false), &["SRV=c1"], &[true; 3]);
        assert_eq!((r.server, r.rewritten), (Some(0), None));
    }

    #[test]
    fn down_servers_are_not_chosen() {
        let cfg = cookie(CookieMode::Insert, false);
        let r = req(&cfg, &["SRV=c1"], &[false, true, true]);
        assert_eq!(r.server, None);
        // The first acceptable occurrence wins.
        let r = req(&cfg, &["SRV=c1; SRV=c2"], &[false, true, true]);
        assert_eq!(r.server, Some(1));
        // A shared value goes to the first of its servers that is up.
        let shared = [Some("c1"), Some("c1"), None];
        let r = request(&cfg, &shared, &[b"SRV=c1"], |i| i != 0, 0);
        assert_eq!(r.server, Some(1));
        // An empty value names no server.
        let r = request(&cfg, &[Some(""), None, None], &[b"SRV="], |_| true, 0);
        assert_eq!(r.server, None);
    }

    #[test]
    fn dates_without_maxidle_or_maxlife() {
        let cfg = cookie(CookieMode::Insert, false);
        let dated = |v: &str| {
            let r = req(&cfg, &[v], &[true; 3]);
            (
                r.server,
                needs_insert(&cfg, &r, r.server == Some(1), false, false, NOW),
            )
        };
        // A past date: matched, and set again without it.
        assert_eq!(dated("SRV=c2|12345"), (Some(1), true));
        assert_eq!(
            dated(&format!("SRV=c2|{}", stamp(NOW - 100))),
            (Some(1), true)
        );
        // A first date is dropped too.
        assert_eq!(
            dated(&format!("SRV=c2|{0}|{0}", stamp(NOW + 8))),
            (Some(1), true)
        );
        // Zero, too short or not base64: no date (as HAProxy 2.6).
        for v in ["SRV=c2|AAAAA", "SRV=c2|x", "SRV=c2|", "SRV=c2|**!!*"] {
            assert_eq!(dated(v), (Some(1), false), "{v}");
        }
    }

    #[test]
    fn maxidle_and_maxlife() {
        let mut cfg = cookie(CookieMode::Insert, true);
        cfg.maxidle = Some(60);
        let r = req(&cfg, &[&format!("SRV=c1|{}", stamp(NOW - 30))], &[true; 3]);
        assert_eq!((r.server, texts(&r)), (Some(0), Some(vec![None])));
        assert!(
            needs_insert(&cfg, &r, r.server == Some(0), false, false, NOW),
            "the date is refreshed"
        );
        assert_eq!(
            insert_value(&cfg, Some("c1"), &r, NOW),
            format!("SRV=c1|{}; path=/", stamp(NOW))
        );
        // Idle too long, or more than a day ahead: ignored.
        let r = req(&cfg, &[&format!("SRV=c1|{}", stamp(NOW - 90))], &[true; 3]);
        assert_eq!((r.server, r.last_date), (None, 0));
        let r = req(
            &cfg,
            &[&format!("SRV=c1|{}", stamp(NOW + 90_000))],
            &[true; 3],
        );
        assert_eq!(r.server, None);
        // No date at all: accepted, and dated in the answer.
        let r = req(&cfg, &["SRV=c1"], &[true; 3]);
        assert_eq!(r.server, Some(0));
        assert!(needs_insert(
            &cfg,
            &r,
            r.server == Some(0),
            false,
            false,
            NOW
        ));
        // The date just issued needs no refresh.
        let r = req(&cfg, &[&format!("SRV=c1|{}", stamp(NOW))], &[true; 3]);
        assert!(!needs_insert(
            &cfg,
            &r,
            r.server == Some(0),
            false,
            false,
            NOW
        ));

        cfg.maxlife = Some(3600);
        let first = stamp(NOW - 1000);
        let r = req(
            &cfg,
            &[&format!("SRV=c1|{}|{first}", stamp(NOW))],
            &[true; 3],
        );
        assert_eq!(r.server, Some(0));
        assert!(!needs_insert(
            &cfg,
            &r,
            r.server == Some(0),
            false,
            false,
            NOW
        ));
        // The first date is kept when the cookie is set again.
        assert_eq!(
            insert_value(&cfg, Some("c1"), &r, NOW + 10),
            format!("SRV=c1|{}|{first}; path=/", stamp(NOW + 10))
        );
        let r = req(
            &cfg,
            &[&format!("SRV=c1|{}|{}", stamp(NOW), stamp(NOW - 4000))],
            &[true; 3],
        );
        assert_eq!(r.server, None, "older than maxlife");
    }

    #[test]
    fn prefix_mode_strips_the_prefix() {
        let cfg = cookie(CookieMode::Prefix, false);
        let r = req(&cfg, &["a=1; SRV=c2~abc; b=2"], &[true; 3]);
        assert_eq!(r.server, Some(1));
        assert_eq!(texts(&r), Some(vec![Some("a=1; SRV=abc; b=2".into())]));
        // An unknown prefix is stripped too; no tilde: left alone.
        let r = req(&cfg, &["SRV=zz~abc"], &[true; 3]);
        assert_eq!(r.server, None);
        assert_eq!(texts(&r), Some(vec![Some("SRV=abc".into())]));
        let r = req(&cfg, &["SRV=abc"], &[true; 3]);
        assert_eq!((r.server, r.rewritten), (None, None));
    }

    #[test]
    fn server_cookies_in_each_mode() {
        let sc = |cfg: &Cookie, v: &str, id: Option<&str>, direct: bool| {
            server_set_cookie(cfg, v.as_bytes(), id, direct)
        };
        let rw = cookie(CookieMode::Rewrite, false);
        assert_eq!(
            sc(&rw, "SRV=abc; Path=/", Some("c2"), false),
            (true, SetCookie::Replace(b"SRV=c2; Path=/".to_vec()))
        );
        let pfx = cookie(CookieMode::Prefix, false);
        assert_eq!(
            sc(&pfx, "SRV=abc; Path=/", Some("c2"), false),
            (true, SetCookie::Replace(b"SRV=c2~abc; Path=/".to_vec()))
        );
        assert_eq!(sc(&pfx, "SRV=abc", None, false), (true, SetCookie::Keep));
        assert_eq!(
            sc(&pfx, "other=1", Some("c2"), false),
            (false, SetCookie::Keep)
        );
        let ins = cookie(CookieMode::Insert, false);
        assert_eq!(
            sc(&ins, "SRV=x", Some("c1"), false),
            (true, SetCookie::Remove)
        );
        let mut keep = cookie(CookieMode::Insert, false);
        keep.preserve = true;
        assert_eq!(
            sc(&keep, "SRV=x", Some("c1"), false),
            (true, SetCookie::Keep)
        );
    }

    #[test]
    fn insertion_rules_and_value() {
        let mut cfg = cookie(CookieMode::Insert, true);
        let came = |server| RequestCookie {
            server,
            ..RequestCookie::default()
        };
        assert!(needs_insert(&cfg, &came(None), false, false, false, NOW));
        assert!(!needs_insert(&cfg, &came(Some(0)), true, false, false, NOW));
        assert!(needs_insert(&cfg, &came(Some(1)), false, false, false, NOW));
        cfg.postonly = true;
        assert!(!needs_insert(&cfg, &came(None), false, false, false, NOW));
        assert!(needs_insert(&cfg, &came(None), false, false, true, NOW));
        cfg.domains = vec![".a.com".into(), ".b.com".into()];
        cfg.httponly = true;
        cfg.secure = true;
        cfg.attrs = vec!["SameSite=None".into()];
        assert_eq!(
            insert_value(&cfg, Some("c1"), &came(None), NOW),
            "SRV=c1; path=/; domain=.a.com; domain=.b.com; HttpOnly; Secure; SameSite=None"
        );
        assert_eq!(
            insert_value(&cookie(CookieMode::Insert, false), None, &came(None), NOW),
            "SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"
        );
    }

    #[test]
    fn cacheability_as_haproxy_2_6() {
        let c = |method: &str, status: u16, hs: &[(&str, &str)]| {
            let hs: Vec<(String, Vec<u8>)> = hs
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
                .collect();
            cacheable(method, status, |name| {
                hs.iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.as_slice())
                    .collect::<Vec<_>>()
            })
        };
        assert!(!c("GET", 200, &[]));
        assert!(!c("GET", 200, &[("Cache-Control", "public")]));
        assert!(c("GET", 200, &[("Cache-Control", "max-age=60")]));
        assert!(c("GET", 200, &[("Cache-Control", "public, max-age=60")]));
        assert!(c("GET", 200, &[("ETag", "\"x\"")]));
        assert!(c("GET", 200, &[("Expires", "0")]));
        assert!(c("GET", 200, &[("Last-Modified", "x")]));
        assert!(!c("GET", 200, &[("Cache-Control", "max-age=0")]));
        assert!(c("GET", 200, &[("Cache-Control", "max-age=00")]));
        assert!(!c(
            "GET",
            200,
            &[
                ("Cache-Control", "max-age=60"),
                ("Cache-Control", "private")
            ]
        ));
        assert!(c(
            "GET",
            200,
            &[
                ("Cache-Control", "private"),
                ("Cache-Control", "public"),
                ("ETag", "1")
            ]
        ));
        assert!(!c(
            "GET",
            200,
            &[("Cache-Control", "max-age=60"), ("Pragma", "no-cache")]
        ));
        assert!(!c("POST", 200, &[("Cache-Control", "max-age=60")]));
        assert!(!c("PUT", 200, &[("Cache-Control", "max-age=60")]));
        assert!(c("OPTIONS", 200, &[("Cache-Control", "max-age=60")]));
        assert!(!c("GET", 302, &[("Cache-Control", "max-age=60")]));
        assert!(!c("GET", 500, &[("Cache-Control", "max-age=60")]));
        assert!(!c("GET", 101, &[("Cache-Control", "max-age=60")]));
        assert!(c("GET", 404, &[("Cache-Control", "max-age=60")]));
    }
}
