//! Stick counters: what a `stick-table` stores (`store ...`), the
//! `track-sc0|1|2` actions that attach a request to a table entry, and the
//! `sc_*`/`src_*` fetches that read the counters in conditions.
//!
//! Stage: `persist::stick_table` calls [`parse_store`]; `http_rules` calls
//! [`parse_track`] for `http-request track-sc<n>`; `acl` calls
//! [`parse_counter_fetch`]; `check` calls [`check_tables`] once every
//! proxy is known, so a `table <name>` that names no table is an error at
//! its line. The run-time side is `backend::stick` (counters, HAProxy's
//! `freq_ctr` rates) and `proxy::track` (the tracked entries of a request).
//!
//! HAProxy 2.6 semantics: tracking an entry counts a connection
//! (`conn_cnt`, `conn_cur`, `conn_rate`) and, from `http-request`, the
//! request (`http_req_cnt`, `http_req_rate`); `conn_cur` drops when the
//! request ends, which for a WebSocket is when its tunnel closes. A slot
//! already tracked is left alone by later `track-sc` rules of that slot.

use std::time::Duration;

use super::diag::Diagnostic;
use super::model::{Acl, AclFetch, Condition, Config, HttpRequestAction, Location};
use super::persist::{StickFetch, StickTable};
use super::units::parse_time;

impl StickTable {
    /// The same definition: a reload keeps such a table and its entries.
    pub fn same_as(&self, other: &StickTable) -> bool {
        (self.key, self.size, self.expire, self.nopurge, &self.store)
            == (
                other.key,
                other.size,
                other.expire,
                other.nopurge,
                &other.store,
            )
    }
}

/// One `store` data type, with its period for rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Gpc0,
    Gpc0Rate(Duration),
    ConnCnt,
    ConnRate(Duration),
    ConnCur,
    HttpReqCnt,
    HttpReqRate(Duration),
    HttpErrCnt,
    HttpErrRate(Duration),
}

/// What a counter fetch reads (the data type without its period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    Gpc0,
    Gpc0Rate,
    ConnCnt,
    ConnRate,
    ConnCur,
    HttpReqCnt,
    HttpReqRate,
    HttpErrCnt,
    HttpErrRate,
}

impl DataType {
    pub fn counter(self) -> Counter {
        match self {
            DataType::Gpc0 => Counter::Gpc0,
            DataType::Gpc0Rate(_) => Counter::Gpc0Rate,
            DataType::ConnCnt => Counter::ConnCnt,
            DataType::ConnRate(_) => Counter::ConnRate,
            DataType::ConnCur => Counter::ConnCur,
            DataType::HttpReqCnt => Counter::HttpReqCnt,
            DataType::HttpReqRate(_) => Counter::HttpReqRate,
            DataType::HttpErrCnt => Counter::HttpErrCnt,
            DataType::HttpErrRate(_) => Counter::HttpErrRate,
        }
    }

    /// The rate's period; `None` for plain counters.
    pub fn period(self) -> Option<Duration> {
        match self {
            DataType::Gpc0Rate(p)
            | DataType::ConnRate(p)
            | DataType::HttpReqRate(p)
            | DataType::HttpErrRate(p) => Some(p),
            _ => None,
        }
    }

    /// HAProxy's data type number: `show table` prints the columns in
    /// this order whatever the order of the `store` list.
    pub fn rank(self) -> u8 {
        match self {
            DataType::Gpc0 => 2,
            DataType::Gpc0Rate(_) => 3,
            DataType::ConnCnt => 4,
            DataType::ConnRate(_) => 5,
            DataType::ConnCur => 6,
            DataType::HttpReqCnt => 9,
            DataType::HttpReqRate(_) => 10,
            DataType::HttpErrCnt => 11,
            DataType::HttpErrRate(_) => 12,
        }
    }
}

impl Counter {
    pub fn name(self) -> &'static str {
        match self {
            Counter::Gpc0 => "gpc0",
            Counter::Gpc0Rate => "gpc0_rate",
            Counter::ConnCnt => "conn_cnt",
            Counter::ConnRate => "conn_rate",
            Counter::ConnCur => "conn_cur",
            Counter::HttpReqCnt => "http_req_cnt",
            Counter::HttpReqRate => "http_req_rate",
            Counter::HttpErrCnt => "http_err_cnt",
            Counter::HttpErrRate => "http_err_rate",
        }
    }

    fn from_name(name: &str) -> Option<Counter> {
        Some(match name {
            "gpc0" => Counter::Gpc0,
            "gpc0_rate" => Counter::Gpc0Rate,
            "conn_cnt" => Counter::ConnCnt,
            "conn_rate" => Counter::ConnRate,
            "conn_cur" => Counter::ConnCur,
            "http_req_cnt" => Counter::HttpReqCnt,
            "http_req_rate" => Counter::HttpReqRate,
            "http_err_cnt" => Counter::HttpErrCnt,
            "http_err_rate" => Counter::HttpErrRate,
            _ => return None,
        })
    }
}

const STORE_TYPES: &str = "gpc0, gpc0_rate(<period>), conn_cnt, conn_rate(<period>), conn_cur, http_req_cnt, http_req_rate(<period>), http_err_cnt, http_err_rate(<period>)";

/// Data types HAProxy 2.6 has and wsgate does not keep.
const NOT_KEPT: &[&str] = &[
    "server_id",
    "gpt0",
    "gpt",
    "gpc",
    "gpc_rate",
    "gpc1",
    "gpc1_rate",
    "sess_cnt",
    "sess_rate",
    "bytes_in_cnt",
    "bytes_in_rate",
    "bytes_out_cnt",
    "bytes_out_rate",
    "http_fail_cnt",
    "http_fail_rate",
    "server_key",
];

/// A `store` argument: `<type>[,<type>...]`, rates as `<type>(<period>)`
/// (the comma inside the parentheses is not a separator). `Err` is the
/// message for the word.
pub fn parse_store(text: &str) -> Result<Vec<DataType>, (String, Option<String>)> {
    let mut out: Vec<DataType> = Vec::new();
    for item in split_top(text) {
        let (name, arg) = match item.split_once('(') {
            Some((n, rest)) => match rest.strip_suffix(')') {
                Some(a) => (n, Some(a)),
                None => return Err((format!("stick-table: missing ')' in '{item}'"), None)),
            },
            None => (item, None),
        };
        let Some(counter) = Counter::from_name(name) else {
            let msg = if NOT_KEPT.contains(&name) {
                format!("stick-table: 'store {name}' is not supported")
            } else {
                format!("stick-table: unknown data type '{name}' in 'store'")
            };
            return Err((msg, Some(format!("wsgate stores {STORE_TYPES}"))));
        };
        let ty = match (counter, arg) {
            (
                Counter::Gpc0Rate | Counter::ConnRate | Counter::HttpReqRate | Counter::HttpErrRate,
                Some(a),
            ) => {
                let period = match parse_time(a) {
                    Ok(p) if !p.is_zero() && p.as_millis() <= u128::from(u32::MAX) => p,
                    _ => {
                        return Err((
                            format!("stick-table: invalid period '{a}' for '{name}'"),
                            Some("a time such as `10s` (milliseconds unless suffixed)".into()),
                        ))
                    }
                };
                match counter {
                    Counter::Gpc0Rate => DataType::Gpc0Rate(period),
                    Counter::ConnRate => DataType::ConnRate(period),
                    Counter::HttpReqRate => DataType::HttpReqRate(period),
                    _ => DataType::HttpErrRate(period),
                }
            }
            (
                Counter::Gpc0Rate | Counter::ConnRate | Counter::HttpReqRate | Counter::HttpErrRate,
                None,
            ) => {
                return Err((
                    format!("stick-table: data type '{name}' needs a period, e.g. '{name}(10s)'"),
                    None,
                ))
            }
            (_, Some(_)) => {
                return Err((
                    format!("stick-table: data type '{name}' takes no argument"),
                    None,
                ))
            }
            (Counter::Gpc0, None) => DataType::Gpc0,
            (Counter::ConnCnt, None) => DataType::ConnCnt,
            (Counter::ConnCur, None) => DataType::ConnCur,
            (Counter::HttpReqCnt, None) => DataType::HttpReqCnt,
            (Counter::HttpErrCnt, None) => DataType::HttpErrCnt,
        };
        // HAProxy keeps the first of a repeated type (with a warning we
        // do not need: the value is the same counter).
        if !out.iter().any(|d| d.counter() == ty.counter()) {
            out.push(ty);
        }
    }
    Ok(out)
}

/// Splits at commas outside parentheses.
pub(super) fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// `track-sc<n> <fetch> [table <name>]`: the rule's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// 0, 1 or 2.
    pub slot: u8,
    pub fetch: StickFetch,
    /// `table <name>`; `None`: the table of the section holding the rule.
    pub table: Option<String>,
}

/// The slot of a `track-sc<n>` action word, if it is one.
pub fn track_slot(word: &str) -> Option<u8> {
    match word {
        "track-sc0" => Some(0),
        "track-sc1" => Some(1),
        "track-sc2" => Some(2),
        _ => None,
    }
}

/// Which entry a counter fetch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `sc_<counter>(<n>[,<table>])`, `sc<n>_<counter>([<table>])`: the
    /// entry tracked in slot n (in `table`, when given, the same key
    /// looked up there).
    Slot(u8),
    /// `src_<counter>([<table>])`: the client address looked up (not
    /// tracked, nothing counted).
    Src,
}

/// A counter fetch: `sc_http_req_rate(0)`, `sc1_conn_cur`,
/// `src_conn_rate(t)`... An entry without the counter stored, or no entry,
/// gives 0, as HAProxy (an untracked slot gives no sample).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterFetch {
    pub source: Source,
    pub counter: Counter,
    /// `sc_get_gpc0`, `sc_inc_gpc0`: `inc` adds one before reading.
    pub inc: bool,
    pub table: Option<String>,
}

/// The counter fetches wsgate knows, for hints.
pub const COUNTER_FETCHES: &str = "sc_<c>(<n>[,<table>]), sc0_<c>, sc1_<c>, sc2_<c>([<table>]), src_<c>([<table>]) with <c> one of conn_cnt, conn_cur, conn_rate, http_req_cnt, http_req_rate, http_err_cnt, http_err_rate, get_gpc0, inc_gpc0, gpc0_rate";

/// Reads `name(args)` as a counter fetch. `Ok(None)`: not a counter fetch
/// at all (another fetch); `Err`: a counter fetch that is malformed or
/// not supported.
pub fn parse_counter_fetch(name: &str, arg: Option<&str>) -> Result<Option<CounterFetch>, String> {
    let (source, rest, slot_in_args) = if let Some(r) = name.strip_prefix("sc_") {
        (None, r, true)
    } else if let Some(r) = name.strip_prefix("src_") {
        (Some(Source::Src), r, false)
    } else {
        match name.get(..4) {
            Some(p @ ("sc0_" | "sc1_" | "sc2_")) => {
                let n = p.as_bytes()[2] - b'0';
                (Some(Source::Slot(n)), &name[4..], false)
            }
            _ => return Ok(None),
        }
    };
    let (counter, inc) = match rest {
        "get_gpc0" => (Counter::Gpc0, false),
        "inc_gpc0" => (Counter::Gpc0, true),
        "gpc0" => return Ok(None),
        other => match Counter::from_name(other) {
            Some(c) => (c, false),
            None => {
                return Err(format!(
                    "fetch '{name}' is not supported (wsgate knows {COUNTER_FETCHES})"
                ))
            }
        },
    };
    if inc && source == Some(Source::Src) {
        return Err(format!(
            "fetch '{name}' is not supported: use `sc_inc_gpc0(<n>)` on a tracked entry"
        ));
    }
    let args: Vec<&str> = arg
        .map(|a| a.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let (source, table) = if slot_in_args {
        let n = match args.first().map(|a| a.parse::<u8>()) {
            Some(Ok(n)) if n <= 2 => n,
            _ => {
                return Err(format!(
                    "'{name}' needs the tracking slot, 0, 1 or 2, e.g. '{name}(0)'"
                ))
            }
        };
        if args.len() > 2 {
            return Err(format!(
                "'{name}' takes at most two arguments: <n>[,<table>]"
            ));
        }
        (Source::Slot(n), args.get(1).map(|t| (*t).to_owned()))
    } else {
        if args.len() > 1 {
            return Err(format!("'{name}' takes at most one argument: [<table>]"));
        }
        (
            source.unwrap_or(Source::Src),
            args.first()
                .filter(|t| !t.is_empty())
                .map(|t| (*t).to_owned()),
        )
    };
    Ok(Some(CounterFetch {
        source,
        counter,
        inc,
        table,
    }))
}

/// After the model is built: every `track-sc ... table <name>`, every
/// counter fetch's `<table>` and every `track-sc` without `table` (which
/// uses its own section's) must name a proxy with a `stick-table`.
pub fn check_tables(config: &Config, diags: &mut Vec<Diagnostic>) {
    let has_table = |name: &str| {
        config
            .frontends
            .iter()
            .any(|f| f.name == name && f.table.is_some())
            || config
                .backends
                .iter()
                .any(|b| b.name == name && b.sticky.table.is_some())
    };
    let missing = |what: String, name: &str, at: &Location, diags: &mut Vec<Diagnostic>| {
        diags.push(
            Diagnostic::error(at.clone(), format!("{what}: unable to find stick-table '{name}'"))
                .with_hint(
                    "declare `stick-table type ip size 100k expire 10m store http_req_rate(10s)` in that section, or name a section that has one with `table <name>`",
                ),
        );
    };
    let sections = config
        .frontends
        .iter()
        .map(|f| (&f.name, &f.location, &f.http_request, &f.acls))
        .chain(
            config
                .backends
                .iter()
                .map(|b| (&b.name, &b.location, &b.http.http_request, &b.http.acls)),
        );
    // Where conditions are evaluated without the request's counters.
    let unsupported = config
        .frontends
        .iter()
        .flat_map(|f| {
            f.http_response
                .iter()
                .map(|r| (&r.condition, &r.location, &f.acls))
        })
        .chain(config.backends.iter().flat_map(|b| {
            let response = b
                .http
                .http_response
                .iter()
                .map(|r| (&r.condition, &r.location, &b.http.acls));
            let stick = b
                .sticky
                .rules
                .iter()
                .map(|r| (&r.condition, &r.location, &b.sticky.acls));
            response.chain(stick)
        }));
    for (condition, at, acls) in unsupported {
        if condition.as_ref().is_some_and(|c| uses_counters(c, acls)) {
            diags.push(
                Diagnostic::warning(at.clone(), "stick counter fetches (`sc_*`, `src_*`) give nothing in `http-response` and `stick` conditions: this condition's counter ACLs never match")
                    .with_hint("test the counters in `http-request` rules, which see them (deny there, or set a header there)"),
            );
        }
    }
    for (own, section, rules, acls) in sections {
        for rule in rules {
            if let HttpRequestAction::TrackSc(t) = &rule.action {
                let name = t.table.as_deref().unwrap_or(own);
                if !has_table(name) {
                    let what = format!("'http-request track-sc{}'", t.slot);
                    missing(what, name, &rule.location, diags);
                }
            }
        }
        for acl in acls {
            for term in &acl.terms {
                if let AclFetch::Counter(CounterFetch {
                    table: Some(name), ..
                }) = &term.fetch
                {
                    if !has_table(name) {
                        let what = match acl.name.starts_with('{') {
                            true => format!("a condition of '{own}'"),
                            false => format!("acl '{}' of '{own}'", acl.name),
                        };
                        missing(what, name, section, diags);
                    }
                }
            }
        }
    }
}

/// Whether a condition reads a stick counter.
fn uses_counters(c: &Condition, acls: &[Acl]) -> bool {
    c.groups.iter().flatten().any(|t| {
        acls.get(t.acl).is_some_and(|a| {
            a.terms
                .iter()
                .any(|term| matches!(term.fetch, AclFetch::Counter(_)))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lists() {
        let s = parse_store("http_req_rate(10s),conn_cur,gpc0").unwrap();
        assert_eq!(
            s,
            vec![
                DataType::HttpReqRate(Duration::from_secs(10)),
                DataType::ConnCur,
                DataType::Gpc0
            ]
        );
        assert!(parse_store("http_req_rate").is_err());
        assert!(parse_store("conn_cur(1s)").is_err());
        assert!(parse_store("bytes_in_rate(1s)")
            .unwrap_err()
            .0
            .contains("not supported"));
        assert!(parse_store("nope")
            .unwrap_err()
            .0
            .contains("unknown data type"));
    }

    #[test]
    fn counter_fetches() {
        let f = |n, a| parse_counter_fetch(n, a);
        assert_eq!(
            f("sc_http_req_rate", Some("0")),
            Ok(Some(CounterFetch {
                source: Source::Slot(0),
                counter: Counter::HttpReqRate,
                inc: false,
                table: None
            }))
        );
        assert_eq!(
            f("sc1_conn_cur", None).unwrap().unwrap().source,
            Source::Slot(1)
        );
        let src = f("src_conn_rate", Some("t")).unwrap().unwrap();
        assert_eq!((src.source, src.table.as_deref()), (Source::Src, Some("t")));
        assert!(f("sc_inc_gpc0", Some("2")).unwrap().unwrap().inc);
        assert_eq!(f("path", None), Ok(None));
        assert!(f("sc_http_req_rate", None).is_err());
        assert!(f("sc_http_req_rate", Some("3")).is_err());
        assert!(f("sc0_bytes_in_rate", None).is_err());
    }
}
