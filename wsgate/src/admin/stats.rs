//! The stats page (`stats enable`, `stats uri`, `stats auth`, `stats
//! realm`, `stats refresh`, `stats hide-version`): one self-contained HTML
//! page (no external assets, readable on a phone), `;csv` with HAProxy's
//! columns and `;json` in HAProxy's typed layout.
//!
//! Stage: the session recognises a request for the stats URI (on the
//! frontend before routing, or on the backend it was routed to, as
//! HAProxy does) and sends back what [`answer`] returns; nothing is
//! forwarded. Credentials are compared in constant time over the whole
//! `user:password` string, so a wrong password takes as long as a right
//! one of the same length; a missing or wrong one gets 401 with
//! `WWW-Authenticate: Basic realm="..."`. `stats refresh` updates the
//! page's cells in place from `;json` (`REFRESH_SCRIPT`).

use std::fmt::Write as _;

use super::{rows, Row, RowKind};
use crate::config::model::StatsPage;
use crate::proxy::Runtime;

/// Whether `target` asks for the stats page at `page.uri` (a prefix, as in
/// HAProxy).
pub fn matches(page: &StatsPage, target: &str) -> bool {
    target.starts_with(&page.uri)
}

/// The full HTTP/1.1 response (head and body) and its status. `admin`:
/// `stats admin` holds for this request (the page shows the server
/// actions).
pub fn answer(
    page: &StatsPage,
    target: &str,
    authorization: Option<&[u8]>,
    rt: &Runtime,
    admin: bool,
) -> (u16, Vec<u8>) {
    if !page.users.is_empty() && !authorized(page, authorization) {
        return unauthorized(page);
    }
    let rest = &target[page.uri.len().min(target.len())..];
    let snapshot = rows(rt);
    let (ctype, body) = if rest.contains(";csv") {
        ("text/plain", super::csv(&snapshot))
    } else if rest.contains(";json") {
        ("application/json", super::fields::json(&snapshot))
    } else {
        (
            "text/html; charset=utf-8",
            html(page, rt, &snapshot, target, admin),
        )
    };
    // `stats refresh` is done by the page's script (or, without
    // JavaScript, its `<noscript>` meta refresh), never by a `Refresh`
    // header, which would reload the page even with the script running.
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: {ctype}\r\n\r\n",
        body.len()
    );
    (200, [head.into_bytes(), body.into_bytes()].concat())
}

/// A POST to the stats URI: `stats admin` actions (`stats_admin`), after
/// the same authentication as the page.
pub fn answer_post(
    page: &StatsPage,
    authorization: Option<&[u8]>,
    rt: &Runtime,
    admin: bool,
    post: &super::stats_admin::Post<'_>,
) -> (u16, Vec<u8>) {
    if !page.users.is_empty() && !authorized(page, authorization) {
        return unauthorized(page);
    }
    match super::stats_admin::post(rt, admin, post) {
        Ok(code) => {
            let head = format!(
                "HTTP/1.1 303 See Other\r\ncontent-length: 0\r\ncache-control: no-cache\r\nlocation: {};st={code}\r\n\r\n",
                page.uri
            );
            (303, head.into_bytes())
        }
        Err(super::stats_admin::Refusal::Forbidden) => {
            let body = "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n";
            let head = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n\r\n",
                body.len()
            );
            (403, [head.into_bytes(), body.as_bytes().to_vec()].concat())
        }
    }
}

fn unauthorized(page: &StatsPage) -> (u16, Vec<u8>) {
    let body = "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n";
    let head = format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\nwww-authenticate: Basic realm=\"{}\"\r\n\r\n",
        body.len(),
        page.realm
    );
    (401, [head.as_bytes(), body.as_bytes()].concat())
}

/// Checks `Authorization: Basic <base64(user:pass)>` against every
/// `stats auth` line, each in constant time.
fn authorized(page: &StatsPage, header: Option<&[u8]>) -> bool {
    let Some(h) = header else { return false };
    let h = h.trim_ascii();
    let Some(encoded) = h
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case(b"basic "))
        .map(|_| h[6..].trim_ascii())
    else {
        return false;
    };
    let Some(given) = base64_decode(encoded) else {
        return false;
    };
    let mut ok = false;
    for (user, pass) in &page.users {
        let expected = format!("{user}:{pass}");
        ok |= constant_time_eq(expected.as_bytes(), &given);
    }
    ok
}

/// Compares in time that depends only on the lengths, never on where the
/// first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Standard base64 (with or without padding).
pub fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    Some(out)
}

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:8px;background:#f6f7f9;color:#1b1d21}\
h1{font-size:18px;margin:4px 0}h2{font-size:15px;margin:16px 0 4px}\
.meta{color:#555;font-size:12px}.wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}\
table{border-collapse:collapse;background:#fff;min-width:100%;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #d5d8de;padding:3px 6px;text-align:right;white-space:nowrap}\
th{background:#e8ebf0;font-weight:600}td:first-child,th:first-child{text-align:left;position:sticky;left:0;background:inherit}\
tr.fe td{background:#eef4ff}tr.be td{background:#eef1f4;font-weight:600}\
.UP,.OPEN,.no{color:#0a7a2f}.DOWN{color:#c01818;font-weight:700}.MAINT{color:#6b46c1}.DRAIN{color:#b7791f}\
.ws{font-weight:700;color:#1d4ed8}.small{font-size:11px;color:#666;text-align:left;white-space:normal;min-width:12em}";

fn html(page: &StatsPage, rt: &Runtime, rows: &[Row], target: &str, admin: bool) -> String {
    let mut s = String::with_capacity(4096 + rows.len() * 600);
    let up = rt.obs.started_at.elapsed().as_secs();
    let info = super::info(rt);
    let get = |k: &str| {
        info.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    s.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    if let Some(r) = page.refresh {
        let _ = write!(
            s,
            "<noscript><meta http-equiv=\"refresh\" content=\"{}\"></noscript>",
            r.as_secs().max(1)
        );
    }
    let _ = write!(
        s,
        "<title>Statistics Report for wsgate</title><style>{STYLE}</style></head><body>"
    );
    s.push_str("<h1>wsgate statistics</h1><p class=\"meta\">");
    if !page.hide_version {
        let _ = write!(s, "version {} &middot; ", env!("CARGO_PKG_VERSION"));
    }
    let _ = write!(
        s,
        "pid {} &middot; uptime <span id=\"uptime\">{}</span> &middot; current connections <b id=\"conns\">{}</b> &middot; total {} &middot; open WebSocket tunnels <b id=\"tunnels\">{}</b></p>",
        std::process::id(),
        super::uptime_text(up),
        get("CurrConns"),
        get("CumConns"),
        get("CurrTunnels"),
    );
    if let Some(text) = super::stats_admin::banner(target) {
        let _ = write!(s, "<p class=\"banner\" id=\"banner\">{text}</p>");
    }
    let mut i = 0;
    while i < rows.len() {
        let px = rows[i].s("pxname");
        let start = i;
        while i < rows.len()
            && rows[i].s("pxname") == px
            && rows[i].proxy_id == rows[start].proxy_id
        {
            i += 1;
        }
        proxy_table(&mut s, &px, &rows[start..i]);
    }
    if admin {
        s.push_str(&super::stats_admin::forms(rt, &page.uri));
    }
    s.push_str("<p class=\"meta\">Also as <a href=\"");
    s.push_str(&escape(&page.uri));
    s.push_str(";csv\">CSV</a> and <a href=\"");
    s.push_str(&escape(&page.uri));
    s.push_str(";json\">JSON</a>.</p>");
    if let Some(r) = page.refresh {
        // The URI as a JSON string is a JavaScript literal; `<` is escaped
        // so that no `</script>` can end the element early.
        let uri = super::json_string(&page.uri).replace('<', "\\u003c");
        let period = r.as_millis().max(1000);
        let _ = write!(
            s,
            "<script>var wsgateStats={{uri:{uri},period:{period},uptime:{up},since:Date.now()}};{REFRESH_SCRIPT}</script>"
        );
    }
    s.push_str("</body></html>\n");
    s
}

/// `stats refresh` without reloading the page: every period the script
/// fetches `<uri>;json` (the browser sends the page's credentials) and
/// rewrites the cells whose text changed — each cell's `data-field` names
/// its JSON fields, several joined by `/` — and the header's figures.
/// Byte counts and ages are written as the page writes them. A failed
/// fetch leaves the page as it is and tries again next period.
const REFRESH_SCRIPT: &str = r#"(function(c){
function pad(n){return(n<10?"0":"")+n}
function age(s){return Math.floor(s/86400)+"d "+Math.floor(s/3600)%24+"h"+pad(Math.floor(s/60)%60)+"m"+pad(s%60)+"s"}
function bytes(n){var u=["B","KiB","MiB","GiB","TiB"],i=0,v=n;if(n<1024)return n+" B";while(v>=1024&&i<4){v/=1024;i++}return v.toFixed(1)+" "+u[i]}
function put(el,t){if(el&&el.textContent!==t)el.textContent=t}
function show(td,k,f){
 if(k==="svname")return;
 if(k==="status"){put(td,f.status);td.className=String(f.status).split(" ")[0];return}
 if(k==="check_status"){if(f.check_status===undefined)return;var a=f.check_status+" in "+(f.check_duration||0)+"ms",b=f.last_chk||"";
  if(td.textContent!==a+b)td.replaceChildren(a,document.createElement("br"),b);return}
 if(k==="bin"||k==="bout"){put(td,bytes(f[k]||0));return}
 if(k==="ws_closes"){put(td,f.ws_msg_in===undefined?"":["in","out"].map(function(d){var p="ws_close_"+d+"_",a=[];
  Object.keys(f).forEach(function(n){if(n.indexOf(p)===0&&f[n]>0)a.push(n.slice(p.length)+"\u00d7"+f[n])});return a.join(" ")||"-"}).join(" / "));return}
 if(k==="lastchg"){put(td,f.lastchg===undefined?"":age(f.lastchg));return}
 var p=k.split("/");if(p.every(function(x){return f[x]===undefined})){put(td,"");return}
 put(td,p.map(function(x){return f[x]===undefined?"":String(f[x])}).join("/"))}
function tick(){fetch(location.origin+c.uri+";json",{cache:"no-store"}).then(function(r){if(!r.ok)throw r.status;return r.json()}).then(function(rows){
 var tunnels=0,conns=0;
 rows.forEach(function(row){var f={},t="";row.forEach(function(o){f[o.field.name]=o.value.value;t=o.objType});
  if(t==="Server")tunnels+=f.tunnel_cur||0;if(t==="Frontend")conns+=f.scur||0;
  var tr=document.querySelector('tr[data-px="'+CSS.escape(f.pxname)+'"][data-sv="'+CSS.escape(f.svname)+'"]');
  if(tr)tr.querySelectorAll("td[data-field]").forEach(function(td){show(td,td.getAttribute("data-field"),f)})});
 put(document.getElementById("tunnels"),String(tunnels));put(document.getElementById("conns"),String(conns));
 put(document.getElementById("uptime"),age(c.uptime+Math.floor((Date.now()-c.since)/1000)))
}).catch(function(){}).then(function(){setTimeout(tick,c.period)})}
setTimeout(tick,c.period)})(wsgateStats);"#;

/// One table per proxy. Every cell carries `data-field`: the CSV column
/// it shows (two joined by `/` where the cell shows both), for scripts and
/// tests that read the page.
fn proxy_table(s: &mut String, px: &str, rows: &[Row]) {
    let _ = write!(
        s,
        "<h2>{}</h2><div class=\"wrap\"><table><thead><tr>",
        escape(px)
    );
    for h in [
        "",
        "Status",
        "Last check",
        "Wght",
        "Queue cur/max",
        "Sessions cur/max/limit",
        "Total",
        "WS tunnels",
        "WS total",
        "WS msgs in/out",
        "WS closes in/out",
        "Bytes in",
        "Bytes out",
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "Req errors",
        "Conn errors",
        "Resp errors",
        "Retries",
        "Redisp",
        "Last change",
    ] {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        let (class, name) = match r.kind {
            RowKind::Frontend => ("fe", "Frontend".to_owned()),
            RowKind::Backend => ("be", "Backend".to_owned()),
            RowKind::Server => ("sv", r.s("svname")),
        };
        let status = r.s("status");
        let status_class = status.split(' ').next().unwrap_or("").to_owned();
        let _ = write!(
            s,
            "<tr class=\"{class}\" data-px=\"{}\" data-sv=\"{}\"><td data-field=\"svname\">{}</td>",
            escape(px),
            escape(&r.s("svname")),
            escape(&name),
        );
        cell(s, "status", &status_class, &escape(&status));
        let chk = match r.kind {
            RowKind::Server if r.get("check_status").is_some() => format!(
                "{} in {}ms<br>{}",
                escape(&r.s("check_status")),
                r.n("check_duration"),
                escape(&r.s("last_chk"))
            ),
            _ => String::new(),
        };
        cell(s, "check_status", "small", &chk);
        let opt = |name: &str| r.get(name).map(ToString::to_string).unwrap_or_default();
        cell(s, "weight", "", &opt("weight"));
        let queue = if r.kind == RowKind::Frontend {
            String::new()
        } else {
            format!("{}/{}", r.n("qcur"), r.n("qmax"))
        };
        cell(s, "qcur/qmax", "", &queue);
        let sessions = format!("{}/{}/{}", r.n("scur"), r.n("smax"), opt("slim"));
        cell(s, "scur/smax/slim", "", &sessions);
        cell(s, "stot", "", &opt("stot"));
        cell(s, "tunnel_cur", "ws", &opt("tunnel_cur"));
        cell(s, "tunnel_tot", "", &opt("tunnel_tot"));
        let messages = match (r.get("ws_msg_in"), r.get("ws_msg_out")) {
            (Some(i), Some(o)) => format!("{i}/{o}"),
            _ => String::new(),
        };
        cell(s, "ws_msg_in/ws_msg_out", "", &messages);
        cell(s, "ws_closes", "", &close_codes(r));
        cell(s, "bin", "", &bytes_text(r.n("bin")));
        cell(s, "bout", "", &bytes_text(r.n("bout")));
        for c in [
            "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "ereq", "econ", "eresp",
            "wretr", "wredis",
        ] {
            cell(s, c, "", &opt(c));
        }
        let lastchg = r
            .get("lastchg")
            .map(|_| super::uptime_text(r.n("lastchg")))
            .unwrap_or_default();
        cell(s, "lastchg", "", &lastchg);
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
}

/// The close codes seen from the client, then from the server, as
/// `1000×3 1001×1 / 1000×2` (`-` for none); empty for servers, which have
/// no per-message figures. The refresh script writes the same text.
fn close_codes(r: &Row) -> String {
    if r.get("ws_msg_in").is_none() {
        return String::new();
    }
    let dir = |d: &str| {
        let prefix = format!("ws_close_{d}_");
        let seen: Vec<String> = super::COLUMNS
            .iter()
            .filter_map(|c| c.strip_prefix(prefix.as_str()).map(|code| (c, code)))
            .filter(|(c, _)| r.n(c) > 0)
            .map(|(c, code)| format!("{code}\u{d7}{}", r.n(c)))
            .collect();
        if seen.is_empty() {
            "-".to_owned()
        } else {
            seen.join(" ")
        }
    };
    format!("{} / {}", dir("in"), dir("out"))
}

/// A table cell whose `html` is already escaped.
fn cell(s: &mut String, field: &str, class: &str, html: &str) {
    s.push_str("<td data-field=\"");
    s.push_str(field);
    if !class.is_empty() {
        s.push_str("\" class=\"");
        s.push_str(&escape(class));
    }
    s.push_str("\">");
    s.push_str(html);
    s.push_str("</td>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let page = StatsPage {
            users: vec![("admin".into(), "s3cret".into())],
            ..StatsPage::default()
        };
        // base64("admin:s3cret")
        assert!(authorized(&page, Some(b"Basic YWRtaW46czNjcmV0")));
        assert!(authorized(&page, Some(b"basic YWRtaW46czNjcmV0")));
        // base64("admin:wrong!")
        assert!(!authorized(&page, Some(b"Basic YWRtaW46d3Jvbmch")));
        assert!(!authorized(&page, None));
        assert!(!authorized(&page, Some(b"Bearer x")));
        assert!(!authorized(&page, Some(b"Basic !!!")));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"\xff"));
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8").unwrap(), b"hello");
    }
}
