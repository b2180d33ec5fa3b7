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
//! Date-stamped values (`maxidle`, `maxlife`) are refused by the
//! configuration; a client value carrying a date (`<value>|<date>`) is
//! matched on the part before `|`, and when the date is valid and past the
//! cookie is set again without it, as HAProxy does when the dates are not
//! configured.

use crate::config::persist::{Cookie, CookieMode};

/// What the request's `Cookie` headers say about persistence.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestCookie {
    /// The server (index) the cookie designates and that `accept` took.
    pub server: Option<usize>,
    /// The designating value carried a past `|<date>`: set it again
    /// without it.
    pub dated: bool,
    /// New values of the `Cookie` headers, in order, when they change
    /// (`None` for a header left empty, to be removed); `None` when the
    /// headers go to the server as they are.
    pub rewritten: Option<Vec<Option<Vec<u8>>>>,
}

/// Splits a `Cookie` header value into its `name=value` pairs (trimmed;
/// a pair without `=` has an empty value).
fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (p[..eq].trim_ascii(), p[eq + 1..].trim_ascii()),
            None => (p, &p[p.len()..]),
        })
}

/// Reads the persistence cookie from the request's `Cookie` header values.
/// `values[i]` is server `i`'s `cookie` value; `accept(i)` says whether
/// the server may take the request (up, or `option persist`).
pub fn request(
    cfg: &Cookie,
    values: &[Option<&str>],
    headers: &[&[u8]],
    accept: impl Fn(usize) -> bool,
    now: u32,
) -> RequestCookie {
    let name = cfg.name.as_bytes();
    let mut out = RequestCookie::default();
    let mut changed = false;
    let mut rewritten = Vec::with_capacity(headers.len());
    for header in headers {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        let mut header_changed = false;
        for (n, v) in pairs(header) {
            if n != name {
                kept.push(pair_bytes(n, v));
                continue;
            }
            let (id, rest) = match cfg.mode {
                CookieMode::Prefix => match v.iter().position(|&b| b == b'~') {
                    Some(t) => (&v[..t], Some(&v[t + 1..])),
                    None => (v, None),
                },
                _ => match v.iter().position(|&b| b == b'|') {
                    Some(bar) => (&v[..bar], None),
                    None => (v, None),
                },
            };
            if out.server.is_none() {
                // The first server with this value that may take it: a
                // value shared by several servers is a failover chain.
                let found = (!id.is_empty())
                    .then(|| {
                        (0..values.len())
                            .find(|&i| values[i].is_some_and(|s| s.as_bytes() == id) && accept(i))
                    })
                    .flatten();
                if let Some(i) = found {
                    out.server = Some(i);
                    out.dated = cfg.mode != CookieMode::Prefix
                        && v.get(id.len() + 1..)
                            .is_some_and(|date| stale_date(date, now));
                }
            }
            match (cfg.mode, rest) {
                (CookieMode::Prefix, Some(real)) => {
                    kept.push(pair_bytes(n, real));
                    header_changed = true;
                }
                (CookieMode::Insert, _) if cfg.indirect => header_changed = true,
                _ => kept.push(pair_bytes(n, v)),
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

/// Whether a `|<date>` suffix (HAProxy's last-seen date: five base64
/// digits of the UNIX time in 4-second units) is a date in the past
/// (`now`: UNIX seconds), compared as HAProxy 2.6 does.
fn stale_date(date: &[u8], now: u32) -> bool {
    let Some(digits) = date.get(..5) else {
        return false;
    };
    let mut v: u32 = 0;
    for &c in digits {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        v = (v << 6) | u32::from(d);
    }
    // HAProxy keeps `val << 2` in an `int` and compares it with the
    // 64-bit `time_t` now: large values wrap negative, hence "past".
    let last = i64::from(v.wrapping_shl(2) as i32);
    v > 0 && last - i64::from(now) < 0
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

/// Whether insert mode adds a `Set-Cookie` to this response.
pub fn needs_insert(
    cfg: &Cookie,
    request: &RequestCookie,
    chosen: usize,
    server_set_it: bool,
    is_post: bool,
) -> bool {
    cfg.mode == CookieMode::Insert
        && !(server_set_it && cfg.preserve)
        && (request.server != Some(chosen) || request.dated)
        && (!cfg.postonly || is_post)
}

/// The `Set-Cookie` value insert mode adds for a server with `cookie`
/// value `server_value` (`None`: clear the client's cookie).
pub fn insert_value(cfg: &Cookie, server_value: Option<&str>) -> String {
    let mut v = match server_value {
        Some(id) => format!("{}={id}; path=/", cfg.name),
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
        }
    }

    const VALUES: [Option<&str>; 3] = [Some("c1"), Some("c2"), None];

    fn req(cfg: &Cookie, headers: &[&str], up: &[bool]) -> RequestCookie {
        let h: Vec<&[u8]> = headers.iter().map(|s| s.as_bytes()).collect();
        request(cfg, &VALUES, &h, |i| up[i], 1_764_000_000)
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
    fn dates_are_ignored_but_flagged() {
        let cfg = cookie(CookieMode::Insert, false);
        let r = req(&cfg, &["SRV=c2|12345"], &[true; 3]);
        assert_eq!((r.server, r.dated), (Some(1), true));
        // Zero, too short or not base64: no date (HAProxy 2.6 alike).
        for v in ["SRV=c2|AAAAA", "SRV=c2|x", "SRV=c2|", "SRV=c2|**!!*"] {
            let r = req(&cfg, &[v], &[true; 3]);
            assert_eq!((r.server, r.dated), (Some(1), false), "{v}");
        }
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
        assert!(needs_insert(&cfg, &came(None), 0, false, false));
        assert!(!needs_insert(&cfg, &came(Some(0)), 0, false, false));
        assert!(needs_insert(&cfg, &came(Some(1)), 0, false, false));
        cfg.postonly = true;
        assert!(!needs_insert(&cfg, &came(None), 0, false, false));
        assert!(needs_insert(&cfg, &came(None), 0, false, true));
        cfg.domains = vec![".a.com".into(), ".b.com".into()];
        cfg.httponly = true;
        cfg.secure = true;
        cfg.attrs = vec!["SameSite=None".into()];
        assert_eq!(
            insert_value(&cfg, Some("c1")),
            "SRV=c1; path=/; domain=.a.com; domain=.b.com; HttpOnly; Secure; SameSite=None"
        );
        assert_eq!(
            insert_value(&cookie(CookieMode::Insert, false), None),
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
