//! What each stats column is in HAProxy's typed terms, and the two
//! layouts that print it: `show stat typed` and `;json` / `show stat
//! json`.
//!
//! HAProxy tags every field with an origin, a nature and a scope (one
//! letter each) and a value type; tools that read the typed or JSON
//! output (e.g. `hatop`, exporters written against `show stat typed`)
//! key on them. The tags below are the ones Debian's HAProxy 2.6 prints
//! for the same columns (compared side by side in `tests/obs_socat.rs`);
//! a few differ between frontend, backend and server rows, as in HAProxy.

use std::fmt::Write as _;

use super::{json_string, Row, RowKind, Value, COLUMNS};

/// The tags (`<origin><nature><scope>`) and value type of a column on a
/// row of `kind`, as HAProxy 2.6 prints them.
pub fn tags(kind: RowKind, column: &str) -> (&'static [u8; 3], &'static str) {
    match column {
        "pxname" | "svname" => (b"KNS", "str"),
        "pid" => (b"KGP", "u32"),
        "iid" | "sid" => (b"KGS", "u32"),
        "type" | "qlimit" | "check_rise" | "check_fall" | "check_health" => (b"CGS", "u32"),
        "addr" | "mode" | "algo" => (b"CGS", "str"),
        "status" => (b"SGP", "str"),
        "qcur" | "scur" | "used_conn_cur" | "tunnel_cur" => (b"MGP", "u32"),
        "qmax" | "smax" => (b"MMP", "u32"),
        "slim" => (b"CLP", "u32"),
        "weight" | "uweight" => (b"MaP", "u32"),
        "act" | "bck" if kind == RowKind::Server => (b"SGP", "u32"),
        "act" | "bck" => (b"MGP", "u32"),
        "lastchg" => (b"MAP", "u32"),
        "lastsess" => (b"MAP", "s32"),
        "check_status" | "last_chk" | "check_desc" => (b"MOP", "str"),
        "check_duration" => (b"MDP", "u64"),
        // Every other column wsgate fills is a counter: bytes, sessions,
        // responses, errors, and wsgate's tunnel and message totals.
        _ => (b"MCP", "u64"),
    }
}

fn origin(c: u8) -> &'static str {
    match c {
        b'K' => "Key",
        b'C' => "Config",
        b'S' => "Status",
        _ => "Metric",
    }
}

fn nature(c: u8) -> &'static str {
    match c {
        b'A' => "Age",
        b'a' => "Avg",
        b'C' => "Counter",
        b'D' => "Duration",
        b'L' => "Limit",
        b'M' => "Max",
        b'N' => "Name",
        b'O' => "Output",
        b'R' => "Rate",
        b'T' => "Time",
        _ => "Gauge",
    }
}

fn scope(c: u8) -> &'static str {
    match c {
        b'S' => "Service",
        b's' => "System",
        _ => "Process",
    }
}

/// The object letter of `show stat typed` and the `objType` of JSON.
fn object(kind: RowKind) -> (char, &'static str) {
    match kind {
        RowKind::Frontend => ('F', "Frontend"),
        RowKind::Backend => ('B', "Backend"),
        RowKind::Server => ('S', "Server"),
    }
}

/// `show stat typed`: one line per non-empty field,
/// `<F|B|S>.<iid>.<sid>.<pos>.<name>.<process>:<tags>:<type>:<value>`.
pub fn typed(rows: &[Row]) -> String {
    let mut s = String::with_capacity(rows.len() * 64 * 40);
    for r in rows {
        let (letter, _) = object(r.kind);
        for (pos, f) in r.fields.iter().enumerate() {
            let Some(v) = f else { continue };
            let name = COLUMNS[pos];
            let ([o, n, sc], ty) = tags(r.kind, name);
            let _ = writeln!(
                s,
                "{letter}.{}.{}.{pos}.{name}.1:{}{}{}:{ty}:{v}",
                r.proxy_id,
                r.sid,
                char::from(*o),
                char::from(*n),
                char::from(*sc),
            );
        }
    }
    s
}

/// HAProxy's `;json` / `show stat json` layout: one array per row, one
/// object per non-empty field with its position, name, tags and typed
/// value.
pub fn json(rows: &[Row]) -> String {
    let mut s = String::from("[");
    for (ri, r) in rows.iter().enumerate() {
        if ri > 0 {
            s.push(',');
        }
        s.push('[');
        let (_, obj) = object(r.kind);
        let mut first = true;
        for (pos, f) in r.fields.iter().enumerate() {
            let Some(v) = f else { continue };
            if !first {
                s.push(',');
            }
            first = false;
            let name = COLUMNS[pos];
            let ([o, n, sc], ty) = tags(r.kind, name);
            let val = match v {
                Value::U64(n) => n.to_string(),
                Value::Str(t) => json_string(t),
            };
            let _ = write!(
                s,
                "{{\"objType\":\"{obj}\",\"proxyId\":{},\"id\":{},\"field\":{{\"pos\":{pos},\"name\":\"{name}\"}},\"processNum\":1,\"tags\":{{\"origin\":\"{}\",\"nature\":\"{}\",\"scope\":\"{}\"}},\"value\":{{\"type\":\"{ty}\",\"value\":{val}}}}}",
                r.proxy_id,
                r.sid,
                origin(*o),
                nature(*n),
                scope(*sc),
            );
        }
        s.push(']');
    }
    s.push(']');
    s
}
