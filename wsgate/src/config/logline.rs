//! `log-format <fmt>`: an access log line made of HAProxy's log variables
//! (`%ci`, `%Tt`, `%{+Q}r`, ... configuration manual 8.2.4) and samples
//! (`%[req.hdr(host)]`).
//!
//! Stage: parsed at configuration time, so an unknown variable is an error
//! at its line (HAProxy refuses it too) rather than a silent `-`. `option
//! httplog` and `option tcplog` are the same lines built from HAProxy's
//! documented format strings ([`HTTPLOG`], [`TCPLOG`]), so both spellings
//! write identical lines. `log.rs` evaluates a line for each entry on its
//! writer thread; the samples that need the request's headers are taken
//! when the entry is made ([`LogLine::header_fetches`]).
//!
//! As in HAProxy, a run of spaces is one separator, and a separator after
//! a variable that printed nothing (`%hr` without captures) is dropped.

use std::sync::{Arc, OnceLock};

use super::logformat::{self, Fetch, FormatError, Use};

/// HAProxy 2.6's `option httplog` format.
pub const HTTPLOG: &str = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r";
/// HAProxy 2.6's `option tcplog` format.
pub const TCPLOG: &str = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq";

/// A log variable (`%<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    ClientIp,
    ClientPort,
    FrontendIp,
    FrontendPort,
    ServerIp,
    ServerPort,
    Frontend,
    /// `%ft`: the frontend's name, `~` appended on TLS.
    FrontendTransport,
    Backend,
    Server,
    Status,
    /// `%B`: bytes sent to the client.
    BytesRead,
    /// `%U`: bytes received from the client.
    BytesUploaded,
    Tq,
    TR,
    Ti,
    Th,
    Tw,
    Tc,
    Tr,
    Ta,
    Tt,
    Td,
    /// `%ts`: two letters.
    TermState,
    /// `%tsc`: four letters (the cookie ones are `--`).
    TermStateCookie,
    ActConn,
    FeConn,
    BeConn,
    SrvConn,
    /// `%rc`, `+` first when redispatched.
    Retries,
    SrvQueue,
    BackendQueue,
    /// `%r`: `METHOD target VERSION`.
    Request,
    Method,
    Uri,
    /// `%HP`: the target without its query string.
    Path,
    /// `%HPO`: the path alone (no scheme nor authority).
    PathOnly,
    /// `%HQ`: `?` and the query string.
    Query,
    Version,
    /// `%t`, `%tr`: local date with milliseconds.
    Date,
    /// `%T`, `%trg`: GMT date.
    GmtDate,
    /// `%Tl`, `%trl`: local date with its UTC offset.
    LocalDate,
    /// `%Ts`: Unix time in seconds.
    Timestamp,
    /// `%ms`: the date's milliseconds, 3 digits.
    Millis,
    Pid,
    Hostname,
    /// `%ID`: wsgate has no `unique-id-format`: always `-`.
    UniqueId,
    /// `%CC`, `%CS`: no cookie captures in wsgate: always `-`.
    Cookie,
    /// `%hr`, `%hs`, `%hrl`, `%hsl`: no header captures: nothing.
    Captures,
}

/// Names as HAProxy spells them.
const VARS: &[(&str, Var)] = &[
    ("ci", Var::ClientIp),
    ("cp", Var::ClientPort),
    ("fi", Var::FrontendIp),
    ("fp", Var::FrontendPort),
    ("si", Var::ServerIp),
    ("sp", Var::ServerPort),
    ("f", Var::Frontend),
    ("ft", Var::FrontendTransport),
    ("b", Var::Backend),
    ("s", Var::Server),
    ("ST", Var::Status),
    ("B", Var::BytesRead),
    ("U", Var::BytesUploaded),
    ("Tq", Var::Tq),
    ("TR", Var::TR),
    ("Ti", Var::Ti),
    ("Th", Var::Th),
    ("Tw", Var::Tw),
    ("Tc", Var::Tc),
    ("Tr", Var::Tr),
    ("Ta", Var::Ta),
    ("Tt", Var::Tt),
    ("Td", Var::Td),
    ("ts", Var::TermState),
    ("tsc", Var::TermStateCookie),
    ("ac", Var::ActConn),
    ("fc", Var::FeConn),
    ("bc", Var::BeConn),
    ("sc", Var::SrvConn),
    ("rc", Var::Retries),
    ("sq", Var::SrvQueue),
    ("bq", Var::BackendQueue),
    ("r", Var::Request),
    ("HM", Var::Method),
    ("HU", Var::Uri),
    ("HP", Var::Path),
    ("HPO", Var::PathOnly),
    ("HQ", Var::Query),
    ("HV", Var::Version),
    ("t", Var::Date),
    ("tr", Var::Date),
    ("T", Var::GmtDate),
    ("trg", Var::GmtDate),
    ("Tl", Var::LocalDate),
    ("trl", Var::LocalDate),
    ("Ts", Var::Timestamp),
    ("ms", Var::Millis),
    ("pid", Var::Pid),
    ("H", Var::Hostname),
    ("ID", Var::UniqueId),
    ("CC", Var::Cookie),
    ("CS", Var::Cookie),
    ("hr", Var::Captures),
    ("hs", Var::Captures),
    ("hrl", Var::Captures),
    ("hsl", Var::Captures),
];

/// `%{+Q,+X,+E}` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `+Q`: strings between double quotes.
    pub quote: bool,
    /// `+X`: numbers in upper-case hexadecimal.
    pub hex: bool,
    /// `+E`: `"`, `\` and `]` in strings escaped with `\`.
    pub escape: bool,
}

/// One piece of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Text(String),
    /// A run of spaces.
    Separator,
    Var(Var, Flags),
    Sample(Fetch, Flags),
}

/// A parsed `log-format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub nodes: Vec<Node>,
}

impl LogLine {
    /// The header names of the `%[hdr()]` / `%[req.hdr()]` samples, in
    /// order: their values are taken from the request when the entry is
    /// made (the writer thread no longer has it).
    pub fn header_fetches(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Sample(Fetch::Hdr(h) | Fetch::ReqHdr(h), _) => Some(h.as_str()),
            _ => None,
        })
    }
}

/// `option httplog` as a line.
pub fn httplog() -> Arc<LogLine> {
    static LINE: OnceLock<Arc<LogLine>> = OnceLock::new();
    LINE.get_or_init(|| Arc::new(parse(HTTPLOG).unwrap_or(LogLine { nodes: Vec::new() })))
        .clone()
}

/// `option tcplog` as a line.
pub fn tcplog() -> Arc<LogLine> {
    static LINE: OnceLock<Arc<LogLine>> = OnceLock::new();
    LINE.get_or_init(|| Arc::new(parse(TCPLOG).unwrap_or(LogLine { nodes: Vec::new() })))
        .clone()
}

const SAMPLES: &str = "src, src_port, dst, dst_port, hdr(<name>), req.hdr(<name>), path, url, query, method, ssl_fc, status";

fn unknown(message: String) -> FormatError {
    FormatError {
        message,
        hint: Some(
            "wsgate knows %ci %cp %fi %fp %si %sp %f %ft %b %s %ST %B %U %Tq %TR %Ti %Th %Tw %Tc %Tr %Ta %Tt %Td %ts %tsc %ac %fc %bc %sc %rc %sq %bq %r %HM %HU %HP %HPO %HQ %HV %t %tr %T %trg %Tl %trl %Ts %ms %pid %H %ID %CC %CS %hr %hs %hrl %hsl, and %[<sample>]; write %% for a literal '%'".into(),
        ),
    }
}

/// Parses a `log-format` string.
pub fn parse(text: &str) -> Result<LogLine, FormatError> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut lit = String::new();
    let mut defaults = Flags::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    let flush = |lit: &mut String, nodes: &mut Vec<Node>| {
        if !lit.is_empty() {
            nodes.push(Node::Text(std::mem::take(lit)));
        }
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c == b' ' {
            flush(&mut lit, &mut nodes);
            if nodes.last() != Some(&Node::Separator) {
                nodes.push(Node::Separator);
            }
            i += 1;
            continue;
        }
        if c != b'%' {
            let ch = text[i..].chars().next().unwrap_or(' ');
            lit.push(ch);
            i += ch.len_utf8();
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'%') {
            lit.push('%');
            i += 1;
            continue;
        }
        let mut flags = defaults;
        if bytes.get(i) == Some(&b'{') {
            let Some(end) = text[i..].find('}') else {
                return Err(FormatError {
                    message: format!("missing '}}' after '%{{' in '{text}'"),
                    hint: Some("options are written %{+Q}r".into()),
                });
            };
            flags = read_flags(&text[i + 1..i + end], flags)?;
            i += end + 1;
        }
        if bytes.get(i) == Some(&b'[') {
            let Some(end) = text[i..].find(']') else {
                return Err(FormatError {
                    message: format!("missing ']' after '%[' in '{text}'"),
                    hint: Some("a sample expression is written %[<fetch>]".into()),
                });
            };
            let expr = text[i + 1..i + end].trim();
            flush(&mut lit, &mut nodes);
            if expr.starts_with("capture.req.hdr(") || expr.starts_with("capture.res.hdr(") {
                // Header captures are not kept (`capture` is ignored with a
                // warning): printed as `%hr`/`%hs` are, empty.
                nodes.push(Node::Var(Var::Captures, flags));
            } else {
                nodes.push(Node::Sample(sample(expr)?, flags));
            }
            i += end + 1;
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        if name.is_empty() {
            return Err(unknown(format!(
                "a '%' that starts no variable in '{text}'"
            )));
        }
        i += name.len();
        if name == "o" {
            defaults = flags;
            continue;
        }
        let Some((_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
            return Err(unknown(format!(
                "log-format variable '%{name}' is not supported"
            )));
        };
        flush(&mut lit, &mut nodes);
        nodes.push(Node::Var(*var, flags));
    }
    flush(&mut lit, &mut nodes);
    Ok(LogLine { nodes })
}

fn read_flags(list: &str, mut flags: Flags) -> Result<Flags, FormatError> {
    for f in list.split(',') {
        let (on, name) = if let Some(n) = f.strip_prefix('+') {
            (true, n)
        } else if let Some(n) = f.strip_prefix('-') {
            (false, n)
        } else {
            return Err(unknown(format!(
                "log-format option '{f}' must start with '+' or '-'"
            )));
        };
        match name {
            "Q" => flags.quote = on,
            "X" => flags.hex = on,
            "E" => flags.escape = on,
            _ => {
                return Err(FormatError {
                    message: format!("log-format option '{f}' is not supported"),
                    hint: Some("wsgate knows +Q (quote), +X (hexadecimal), +E (escape)".into()),
                })
            }
        }
    }
    Ok(flags)
}

/// A `%[...]` sample: `logformat`'s fetches, where `status` is the
/// response's and response headers are refused (wsgate does not keep the
/// response's headers until the log line).
fn sample(expr: &str) -> Result<Fetch, FormatError> {
    if expr == "status" {
        return Ok(Fetch::Status);
    }
    if expr.starts_with("res.")
        || expr.starts_with("ssl_c_")
        || matches!(expr, "ssl_fc_protocol" | "ssl_fc_sni")
    {
        return Err(FormatError {
            message: format!("'%[{expr}]' is not available in a log-format line"),
            hint: Some(format!("log-format lines can use {SAMPLES}")),
        });
    }
    logformat::fetch(
        expr,
        Use {
            groups: false,
            response: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_formats_parse() {
        let h = parse(HTTPLOG).unwrap();
        assert_eq!(h.nodes[0], Node::Var(Var::ClientIp, Flags::default()));
        assert_eq!(
            h.nodes.last(),
            Some(&Node::Var(
                Var::Request,
                Flags {
                    quote: true,
                    ..Flags::default()
                }
            ))
        );
        parse(TCPLOG).unwrap();
    }

    #[test]
    fn separators_text_samples_and_options() {
        let l = parse("a  %[req.hdr(host)]/%{+X}Ts %{+Q}o%b 100%%").unwrap();
        let q = Flags {
            quote: true,
            ..Flags::default()
        };
        assert_eq!(
            l.nodes,
            vec![
                Node::Text("a".into()),
                Node::Separator,
                Node::Sample(Fetch::ReqHdr("host".into()), Flags::default()),
                Node::Text("/".into()),
                Node::Var(
                    Var::Timestamp,
                    Flags {
                        hex: true,
                        ..Flags::default()
                    }
                ),
                Node::Separator,
                Node::Var(Var::Backend, q),
                Node::Separator,
                Node::Text("100%".into()),
            ]
        );
        assert_eq!(l.header_fetches().collect::<Vec<_>>(), vec!["host"]);
    }

    #[test]
    fn unknown_variables_and_options_are_named() {
        for (text, needle) in [
            ("%ci %zz", "'%zz'"),
            ("%{+Z}r", "'+Z'"),
            ("%{Q}r", "'Q'"),
            ("%[res.hdr(x)]", "not available"),
            ("%[ssl_fc_protocol]", "not available"),
            ("%[lua.x]", "lua.x"),
            ("%{+Q", "missing '}'"),
            ("50%", "starts no variable"),
            ("%1", "starts no variable"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }
}
