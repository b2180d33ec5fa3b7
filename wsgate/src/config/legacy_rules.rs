//! The `req*`/`rsp*` keywords HAProxy removed in 2.1 (`reqadd`, `reqrep`,
//! `rspdel`, ...), read as the `http-request`/`http-response` rule that
//! does the same, or refused with the closest modern line when no rule is
//! faithful.
//!
//! Stage: the `parser` translates a lexed line before looking it up (with
//! a warning that prints the line to write), and `wsgate migrate` writes
//! the same translation into the file. Unlike the one-for-one renames of
//! [`super::keywords::LEGACY`], these rewrite their arguments: `reqadd
//! X-Proto:\ https` is `http-request add-header X-Proto https`. The old
//! rules ran regexes over whole header lines or the request line and
//! replaced the whole line with the expansion; a translation is offered
//! only when the modern rule sees and produces the same text.

/// HAProxy version that refuses the `req*`/`rsp*` keywords.
pub const REMOVED_IN: &str = "2.1";

/// The HAProxy version that removed `keyword` (one of those translated
/// here).
pub fn removed_in(keyword: &str) -> &'static str {
    match keyword {
        "monitor-net" => "2.4",
        _ => REMOVED_IN,
    }
}

/// The removed keywords and the rule each becomes, for the docs.
pub static TABLE: &[(&str, &str)] = &[
    ("reqadd", "`http-request add-header <name> <value>`"),
    ("rspadd", "`http-response add-header <name> <value>`"),
    ("reqdel, reqidel", "`http-request del-header <name>` (regex `^<name>:` only)"),
    ("rspdel, rspidel", "`http-response del-header <name>` (regex `^<name>:` only)"),
    ("reqrep, reqirep", "`http-request replace-uri` (request-line regex `^([^\\ :]*)\\ <uri>(.*)`) or `http-request replace-header` (`^<name>:\\ ...`)"),
    ("rsprep, rspirep", "`http-response replace-header` (`^<name>:\\ ...`)"),
    ("monitor-net", "`http-request return status 200 if { src <net> }` (HAProxy's own advice; removed in 2.4)"),
    ("reqdeny, reqideny, reqallow, reqiallow, reqpass, reqipass, reqtarpit, reqitarpit, rspdeny, rspideny, reqsetbe, reqisetbe", "refused, with the closest `http-request`/`http-response`/`use_backend` line"),
];

/// Why a removed keyword has no faithful translation, and the closest
/// modern line to write by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub closest: String,
}

/// The outcome for a line whose first word is a removed `req*`/`rsp*`
/// keyword: the modern line's words, or why not.
pub type Translation = Result<Vec<String>, Refusal>;

/// Translates `words` (lexed: escapes already applied) when the first is a
/// removed `req*`/`rsp*` keyword; `None` for any other line.
pub fn translate(words: &[&str]) -> Option<Translation> {
    let (&kw, args) = words.split_first()?;
    if kw == "monitor-net" {
        // Health checks from a network answered at once, unlogged: what
        // HAProxy 2.4+ tells users to write instead.
        let closest = "http-request return status 200 if { src <net> }".to_owned();
        return Some(match args {
            [net] => Ok([
                "http-request",
                "return",
                "status",
                "200",
                "if",
                "{",
                "src",
                net,
                "}",
            ]
            .map(str::to_owned)
            .to_vec()),
            _ => Err(Refusal {
                reason: "it takes exactly one network".into(),
                closest,
            }),
        });
    }
    let side = match kw.get(..3) {
        Some("req") => "http-request",
        Some("rsp") => "http-response",
        _ => return None,
    };
    let (first, rest) = match args.split_first() {
        Some((f, r)) => (*f, r),
        None => ("", &[][..]),
    };
    let condition = |from: &[&str]| from.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    let line = |mut head: Vec<String>, cond: &[&str]| {
        head.extend(condition(cond));
        Ok(head)
    };
    let refuse = |reason: &str, closest: String| {
        Some(Err(Refusal {
            reason: reason.to_owned(),
            closest,
        }))
    };
    match kw {
        "reqadd" | "rspadd" => {
            let Some((name, value)) = first.split_once(':') else {
                return refuse(
                    "its argument is not a `<name>: <value>` header line",
                    format!("{side} add-header <name> <value>"),
                );
            };
            if !is_token(name) {
                return refuse(
                    "its argument does not start with a header name",
                    format!("{side} add-header <name> <value>"),
                );
            }
            Some(line(
                vec![
                    side.into(),
                    "add-header".into(),
                    name.into(),
                    value.trim_start().into(),
                ],
                rest,
            ))
        }
        "reqdel" | "reqidel" | "rspdel" | "rspidel" => match header_prefix(first) {
            Some((name, "" | ".*")) => Some(line(
                vec![side.into(), "del-header".into(), name.into()],
                rest,
            )),
            _ => refuse(
                "only a regex of the form `^<name>:` names whole headers",
                format!("{side} del-header <name> [-m reg] [if|unless <condition>]"),
            ),
        },
        "reqrep" | "reqirep" | "rsprep" | "rspirep" => {
            let Some((&replacement, cond)) = rest.split_first() else {
                return refuse(
                    "it needs a regex and a replacement",
                    format!("{side} replace-header <name> <regex> <replacement>"),
                );
            };
            let flag = if kw.ends_with("irep") { "(?i)" } else { "" };
            if side == "http-request" {
                if let Some((uri, repl)) = request_line(first, replacement) {
                    return Some(line(
                        vec![
                            side.into(),
                            "replace-uri".into(),
                            format!("{flag}^{uri}"),
                            repl,
                        ],
                        cond,
                    ));
                }
            }
            if let Some((name, value_re, value_repl)) = header_rewrite(first, replacement) {
                return Some(line(
                    vec![
                        side.into(),
                        "replace-header".into(),
                        name.into(),
                        format!("{flag}^{value_re}"),
                        value_repl.into(),
                    ],
                    cond,
                ));
            }
            let closest = if side == "http-request" {
                "http-request replace-uri <regex> <replacement> (or replace-path, replace-header)"
            } else {
                "http-response replace-header <name> <regex> <replacement> (or set-status for the status line)"
            };
            refuse(
                "the regex is neither `^([^\\ :]*)\\ <uri>(.*)` on the request line nor `^<name>:\\ <value>` on one header",
                closest.into(),
            )
        }
        "reqdeny" | "reqideny" | "reqtarpit" | "reqitarpit" | "rspdeny" | "rspideny" => {
            let action = if kw.contains("tarpit") {
                "tarpit"
            } else {
                "deny"
            };
            refuse(
                "its regex ran over whole header lines, which no ACL fetch reproduces exactly",
                format!("{side} {action} if {{ req.hdr(<name>) -m reg {first} }}"),
            )
        }
        "reqallow" | "reqiallow" | "reqpass" | "reqipass" => refuse(
            "its regex ran over whole header lines, which no ACL fetch reproduces exactly",
            format!("http-request allow if {{ req.hdr(<name>) -m reg {first} }}"),
        ),
        "reqsetbe" | "reqisetbe" => refuse(
            "backend switching by regex is done with ACLs now",
            format!(
                "use_backend {} if {{ ... }}",
                rest.first().unwrap_or(&"<backend>")
            ),
        ),
        _ => None,
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `^Name:<rest>` → (`Name`, `<rest>`), when `Name` is a literal name
/// (letters, digits, `-`, `_`: nothing a regex reads specially).
fn header_prefix(re: &str) -> Option<(&str, &str)> {
    let (name, rest) = re.strip_prefix('^')?.split_once(':')?;
    let literal = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    literal.then_some((name, rest))
}

/// A request-line rewrite: `^([^ :]*) <uri>(.*)` with `\1 <new>\N`, where
/// `<uri>` has no space (so it stays inside the URI) and the last group
/// carries the rest of the line, version included, into the output. The
/// URI regex and its replacement, with group numbers moved down by one.
fn request_line(re: &str, replacement: &str) -> Option<(String, String)> {
    let uri = re
        .strip_prefix("^([^ :]*) ")
        .or_else(|| re.strip_prefix("^([^ :]+) "))?;
    if uri.contains(' ') || uri.contains("\\s") || !uri.ends_with("(.*)") {
        return None;
    }
    let new = replacement.strip_prefix("\\1 ")?;
    if new.contains(' ') || new.contains("\\1") {
        return None;
    }
    let groups = uri.matches('(').count() + 1;
    if !new.ends_with(&format!("\\{groups}")) || groups > 9 {
        return None;
    }
    let mut out = String::with_capacity(new.len());
    let mut chars = new.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d @ '2'..='9')) => {
                out.push('\\');
                out.push(char::from(*d as u8 - 1));
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Some((uri.to_owned(), out))
}

/// A header rewrite: `^Name:\ *<value re>` with `Name: <value>`, the same
/// name on both sides.
fn header_rewrite<'a>(re: &'a str, replacement: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
    let (name, rest) = header_prefix(re)?;
    let value_re = rest
        .strip_prefix(" *")
        .or_else(|| rest.strip_prefix("\\s*"))
        .or_else(|| rest.strip_prefix(' '))
        .unwrap_or(rest);
    let (rname, rvalue) = replacement.split_once(':')?;
    if !rname.eq_ignore_ascii_case(name) || value_re.starts_with(' ') {
        return None;
    }
    Some((name, value_re, rvalue.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(line: &[&str]) -> Translation {
        translate(line).unwrap()
    }

    #[test]
    fn adds_and_deletes() {
        assert_eq!(
            t(&[
                "reqadd",
                "X-Forwarded-Proto: https",
                "if",
                "{",
                "ssl_fc",
                "}"
            ])
            .unwrap(),
            vec![
                "http-request",
                "add-header",
                "X-Forwarded-Proto",
                "https",
                "if",
                "{",
                "ssl_fc",
                "}"
            ]
        );
        assert_eq!(
            t(&["rspadd", "Access-Control-Allow-Methods: GET, HEAD"]).unwrap(),
            vec![
                "http-response",
                "add-header",
                "Access-Control-Allow-Methods",
                "GET, HEAD"
            ]
        );
        assert_eq!(
            t(&["reqidel", "^X-Forwarded-For:.*"]).unwrap(),
            vec!["http-request", "del-header", "X-Forwarded-For"]
        );
        assert!(t(&["reqdel", "^X-.*:"]).is_err());
        assert!(t(&["reqadd", "no colon"]).is_err());
        assert!(translate(&["reqx"]).is_none());
        assert!(translate(&["http-request", "deny"]).is_none());
    }

    #[test]
    fn request_line_rewrites_become_replace_uri() {
        assert_eq!(
            t(&["reqrep", "^([^ :]*) /webcam/(.*)", "\\1 /\\2"]).unwrap(),
            vec!["http-request", "replace-uri", "^/webcam/(.*)", "/\\1"]
        );
        assert_eq!(
            t(&["reqirep", "^([^ :]*) /app(.*)", "\\1 /static/app.html\\2"]).unwrap(),
            vec![
                "http-request",
                "replace-uri",
                "(?i)^/app(.*)",
                "/static/app.html\\1"
            ]
        );
        // The version would be lost: the old rule replaced the whole line.
        assert!(t(&["reqrep", "^([^ :]*) /old", "\\1 /new"]).is_err());
        assert!(t(&["reqrep", "^GET /x(.*)", "GET /y\\1"]).is_err());
    }

    #[test]
    fn header_rewrites_become_replace_header() {
        assert_eq!(
            t(&["reqrep", "^Host: (.*)\\.old\\.com", "Host: \\1.new.com"]).unwrap(),
            vec![
                "http-request",
                "replace-header",
                "Host",
                "^(.*)\\.old\\.com",
                "\\1.new.com"
            ]
        );
        assert!(t(&["rsprep", "^HTTP/1.1 (.*)", "HTTP/1.1 200"]).is_err());
    }

    #[test]
    fn filters_are_refused_with_the_closest_line() {
        let r = t(&["reqdeny", "^User-Agent:.*bot"]).unwrap_err();
        assert!(r.closest.starts_with("http-request deny if"), "{r:?}");
        let r = t(&["reqtarpit", "x"]).unwrap_err();
        assert!(r.closest.starts_with("http-request tarpit"), "{r:?}");
    }
}
