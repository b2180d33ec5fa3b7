//! `wsgate migrate`: a configuration rewritten in current syntax.
//!
//! Works on the text, line by line, so comments, blank lines and layout
//! survive; each changed line gets a comment above it saying what changed.
//! The rewrites are the keyword table's [`LEGACY`](super::keywords::LEGACY)
//! entries, plus the old `listen|frontend <name> <addr:port>` form, which
//! becomes the section line and a `bind` line. Then the rule lines of an
//! anonymous `defaults` section, which HAProxy refuses, move to the top of
//! the proxies wsgate applies them in ([`move_anonymous_rules`]). The
//! output is meant for current HAProxy as much as for wsgate.

use std::collections::HashMap;
use std::sync::Arc;

use super::{defaults_rules, keywords, legacy_rules, lexer};

/// Returns the rewritten text and how many lines changed.
pub fn migrate(text: &str) -> (String, usize) {
    let (lines, changes) = migrate_lines(text);
    let (out, moved) = move_anonymous_rules(&lines);
    (out, changes + moved)
}

/// The removed keywords and forms, rewritten line by line.
fn migrate_lines(text: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + 256);
    let mut changes = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let rest = body.trim_start();
        let indent = &body[..body.len() - rest.len()];
        let words: Vec<&str> = rest.split_whitespace().collect();
        if rest.starts_with('#') || words.is_empty() {
            out.push_str(line);
            continue;
        }
        if let Some(translation) = rule_line(rest) {
            let old = words[0];
            match translation {
                Ok(new) => {
                    out.push_str(&format!(
                        "{indent}# wsgate migrate: `{old}` was removed in HAProxy {}; this is its current form{ending}",
                        legacy_rules::removed_in(old)
                    ));
                    out.push_str(&format!("{indent}{new}{ending}"));
                    changes += 1;
                }
                Err(refusal) => {
                    let note = format!(
                        "{indent}# wsgate migrate: NOT rewritten: `{old}` was removed in HAProxy {}, and {}; the closest current form is `{}`{ending}",
                        legacy_rules::removed_in(old), refusal.reason, refusal.closest
                    );
                    // A second pass finds the note already there.
                    if !out.ends_with(&note) {
                        out.push_str(&note);
                    }
                    out.push_str(line);
                }
            }
            continue;
        }
        let dropped = keywords::DROPPED.iter().find(|(kw, _)| {
            let n = kw.split(' ').count();
            words.len() >= n && words[..n].join(" ") == *kw
        });
        if let Some((kw, removed_in)) = dropped {
            out.push_str(&format!(
                "{indent}# wsgate migrate: `{kw}` was removed in HAProxy {removed_in} and has no replacement (threads are used); line commented out{ending}"
            ));
            out.push_str(&format!("{indent}# {rest}{ending}"));
            changes += 1;
            continue;
        }
        if let Some((legacy, used)) = keywords::legacy(words.iter().copied()) {
            out.push_str(&format!(
                "{indent}# wsgate migrate: `{}` was removed in HAProxy {}; `{}` is its current form{ending}",
                legacy.old, legacy.removed_in, legacy.new
            ));
            out.push_str(&format!(
                "{indent}{}{}{ending}",
                legacy.new,
                after_words(rest, used)
            ));
            changes += 1;
            continue;
        }
        if let ["listen" | "frontend", name, addr, ..] = words.as_slice() {
            if *addr != "from" && addr.contains(':') && words.len() == 3 {
                out.push_str(&format!(
                    "{indent}# wsgate migrate: the address on the section line is no longer accepted; it is a `bind` line now{ending}"
                ));
                out.push_str(&format!("{indent}{} {name}{ending}", words[0]));
                out.push_str(&format!("{indent}    bind {addr}{ending}"));
                changes += 1;
                continue;
            }
        }
        out.push_str(line);
    }
    (out, changes)
}

/// A section of the text, as far as moving rules is concerned.
struct Section<'a> {
    /// `defaults`, `frontend`, ... (any section keyword).
    kind: &'a str,
    name: &'a str,
    /// Its first line (the section line) and the line after its last.
    start: usize,
    end: usize,
    /// A `defaults` section with a name, or a proxy naming its `defaults`
    /// with `from`: not concerned by an anonymous one.
    named: bool,
}

/// The words of a line before any comment.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect()
}

fn sections<'a>(lines: &[&'a str]) -> Vec<Section<'a>> {
    let mut out: Vec<Section<'a>> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let words = words(line);
        let Some(kind) = words.first().filter(|w| super::parser::opens_section(w)) else {
            continue;
        };
        if let Some(last) = out.last_mut() {
            last.end = i;
        }
        let name = words.get(1).copied().unwrap_or_default();
        out.push(Section {
            kind,
            name,
            start: i,
            end: lines.len(),
            named: if *kind == "defaults" {
                !name.is_empty() && name != "from"
            } else {
                words.iter().skip(2).any(|w| *w == "from")
            },
        });
    }
    out
}

/// Moves the rule lines (`acl`, `http-request`...) of each anonymous
/// `defaults` section, which HAProxy refuses, to the top of the proxies
/// wsgate applies them in (config/defaults_rules.rs): each `frontend` and
/// `listen` section using it, or each backend when only backends do. A
/// comment line is left in their place, and one above each copy. Lines of
/// a section no proxy uses are commented out. Returns the text and how
/// many lines moved.
fn move_anonymous_rules(text: &str) -> (String, usize) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let sections = sections(&lines);
    // What replaces a line (a rule leaving), and what follows one (the
    // rules arriving after a section line).
    let mut replaced: HashMap<usize, String> = HashMap::new();
    let mut after: HashMap<usize, String> = HashMap::new();
    let mut moved = 0;
    for (k, d) in sections.iter().enumerate() {
        if d.kind != "defaults" || d.named {
            continue;
        }
        let rules: Vec<usize> = (d.start + 1..d.end)
            .filter(|i| {
                words(lines[*i])
                    .first()
                    .is_some_and(|w| defaults_rules::named_only(w))
            })
            .collect();
        let Some(first) = rules.first() else {
            continue;
        };
        let users = sections[k + 1..]
            .iter()
            .take_while(|s| s.kind != "defaults")
            .filter(|s| matches!(s.kind, "frontend" | "backend" | "listen") && !s.named);
        let (backends, clients): (Vec<&Section>, Vec<&Section>) =
            users.partition(|s| s.kind == "backend");
        let receivers = if clients.is_empty() {
            backends
        } else {
            clients
        };
        let fate = if receivers.is_empty() {
            for i in &rules {
                let indent = indent(lines[*i]);
                replaced.insert(
                    *i,
                    format!("{indent}# {}", with_newline(lines[*i].trim_start())),
                );
            }
            "no proxy uses this section, so these lines did nothing; commented out".to_owned()
        } else {
            let block: String = rules.iter().map(|i| with_newline(lines[*i])).collect();
            let indent = indent(lines[*first]);
            for s in &receivers {
                after.insert(s.start, format!(
                    "{indent}# wsgate migrate: from the anonymous defaults section at line {}, where HAProxy refuses them\n{block}",
                    d.start + 1
                ));
            }
            for i in &rules {
                replaced.insert(*i, String::new());
            }
            let names = defaults_rules::names(receivers.iter().map(|s| (s.kind, s.name)));
            format!("its rule lines moved to the top of {names}")
        };
        let indent = indent(lines[*first]);
        let note = format!("{indent}# wsgate migrate: HAProxy refuses rules in an anonymous defaults section; {fate}\n");
        replaced.insert(*first, note + &replaced[first]);
        moved += rules.len();
    }
    let mut out = String::with_capacity(text.len() + 256);
    for (i, line) in lines.iter().enumerate() {
        match (replaced.get(&i), after.get(&i)) {
            (Some(new), _) => out.push_str(new),
            (None, Some(rules)) => {
                out.push_str(&with_newline(line));
                out.push_str(rules);
            }
            (None, None) => out.push_str(line),
        }
    }
    (out, moved)
}

/// A line's indentation.
fn indent(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// `line`, ending with a line feed (the last line of a file may have none).
fn with_newline(line: &str) -> String {
    if line.ends_with('\n') {
        line.to_owned()
    } else {
        format!("{line}\n")
    }
}

/// A removed `req*`/`rsp*` line (without its indentation) as the line to
/// write today, or why it cannot be translated; `None` for other lines.
/// The line is lexed as the parser reads it (escapes such as `\ ` in
/// `reqadd X-Proto:\ https` applied); a line using environment variables
/// is left for a human, since expanding them here would bake values in.
fn rule_line(rest: &str) -> Option<Result<String, legacy_rules::Refusal>> {
    let first = rest.split_whitespace().next()?;
    // Only lines starting with a removed `req*`/`rsp*` keyword.
    legacy_rules::translate(&[first, ""]).map(|_| ())?;
    if rest.contains('$') {
        return Some(Err(legacy_rules::Refusal {
            reason: "the line uses environment variables".into(),
            closest: "the `http-request`/`http-response` form given by `wsgate -c`".into(),
        }));
    }
    let mut diags = Vec::new();
    let file: Arc<str> = Arc::from("migrate");
    let lines = lexer::lex(&file, rest, &|_| None, &mut diags);
    let words: Vec<&str> = lines
        .first()?
        .words
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    Some(
        legacy_rules::translate(&words)?
            .map(|new| new.iter().map(|w| word(w)).collect::<Vec<_>>().join(" ")),
    )
}

/// `w` as it must be written in a configuration to be read back as one
/// word: as it is when plain, else quoted.
pub fn word(w: &str) -> String {
    let plain = !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '#' | '"' | '\'' | '$'));
    if plain {
        w.to_owned()
    } else if !w.contains('\'') {
        format!("'{w}'")
    } else {
        lexer::quote_word(w)
    }
}

/// What follows the first `n` words of `s` (with its leading space).
fn after_words(s: &str, n: usize) -> &str {
    let mut rest = s;
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_lines_are_rewritten_with_a_note() {
        let old = "defaults\n    # client side\n    clitimeout  30s   # idle\n    option forceclose\nlisten app 0.0.0.0:80\n    redispatch\n";
        let (new, n) = migrate(old);
        assert_eq!(n, 4);
        assert!(new.contains("    timeout client  30s   # idle\n"), "{new}");
        assert!(new.contains("    option httpclose\n"), "{new}");
        assert!(new.contains("listen app\n    bind 0.0.0.0:80\n"), "{new}");
        assert!(new.contains("    option redispatch\n"), "{new}");
        assert!(new.contains("    # client side\n"));
        assert_eq!(new.matches("# wsgate migrate:").count(), 4);
        // Migrating twice changes nothing more.
        assert_eq!(migrate(&new), (new.clone(), 0));
        // Current syntax is left alone.
        let (same, n) = migrate("frontend f\n    timeout client 1s\n    bind :80\n");
        assert_eq!(
            (same.as_str(), n),
            ("frontend f\n    timeout client 1s\n    bind :80\n", 0)
        );
    }

    #[test]
    fn rule_keywords_are_rewritten_or_flagged() {
        let old = "frontend f\n    reqadd X-Proto:\\ https if { ssl_fc }\n    rspadd X-A:\\ a,\\ b\n    reqrep ^([^\\ :]*)\\ /webcam/(.*) \\1\\ /\\2\n    reqdeny ^X-Bad:\n";
        let (new, n) = migrate(old);
        assert_eq!(n, 3, "{new}");
        assert!(
            new.contains("\n    http-request add-header X-Proto https if { ssl_fc }\n"),
            "{new}"
        );
        assert!(
            new.contains("\n    http-response add-header X-A 'a, b'\n"),
            "{new}"
        );
        assert!(
            new.contains("\n    http-request replace-uri ^/webcam/(.*) /\\1\n"),
            "{new}"
        );
        assert!(
            new.contains("# wsgate migrate: NOT rewritten: `reqdeny`"),
            "{new}"
        );
        assert!(new.contains("\n    reqdeny ^X-Bad:\n"), "{new}");
        assert_eq!(migrate(&new).1, 0);
    }

    #[test]
    fn anonymous_defaults_rules_move_to_the_proxies_running_them() {
        let old = "defaults\n    acl a path /x\n    http-request deny if a\nbackend b\n    server s 127.0.0.1:1\n\
                   frontend f\n    bind :80\nbackend c from named\n";
        let (new, n) = migrate(old);
        assert_eq!(n, 2, "{new}");
        let moved = "    # wsgate migrate: from the anonymous defaults section at line 1, where HAProxy refuses them\n    acl a path /x\n    http-request deny if a\n";
        assert!(
            new.contains(&format!("frontend f\n{moved}    bind :80\n")),
            "{new}"
        );
        assert!(new.contains("backend b\n    server"), "{new}");
        assert!(new.contains("backend c from named\n"), "{new}");
        assert_eq!(new.matches("acl a").count(), 1, "{new}");
        // Backends only: they get the lines; no proxy: commented out.
        let (new, _) = migrate("defaults\n    http-request deny\nbackend b\n");
        assert!(new.ends_with("backend b\n    # wsgate migrate: from the anonymous defaults section at line 1, where HAProxy refuses them\n    http-request deny\n"), "{new}");
        let (new, _) = migrate("defaults\n    http-request deny\ndefaults\n");
        assert!(
            new.contains("no proxy uses this section") && new.contains("    # http-request deny\n"),
            "{new}"
        );
        assert_eq!(migrate(&new).1, 0);
    }

    proptest::proptest! {
        /// Migrating a migrated file changes nothing, whatever mix of old
        /// and current lines, comments, blank lines and spacing it has.
        #[test]
        fn migrate_is_idempotent(lines in proptest::collection::vec(line(), 0..24)) {
            let text: String = lines.concat();
            let (once, _) = migrate(&text);
            let (twice, changed) = migrate(&once);
            proptest::prop_assert_eq!(changed, 0, "second pass changed lines:\n{}", once);
            proptest::prop_assert_eq!(twice, once);
        }
    }

    /// One line of a configuration: section headers (with the old
    /// `listen <name> <addr>` form), removed keywords, their current forms,
    /// comments and blank lines, with varied indentation.
    fn line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let body = prop_oneof![
            Just("defaults".to_string()),
            Just("frontend fe".to_string()),
            Just("backend be".to_string()),
            (1u16..65535).prop_map(|p| format!("listen app 0.0.0.0:{p}")),
            Just("listen app".to_string()),
            (0u32..100000).prop_map(|t| format!("clitimeout {t}")),
            (0u32..100000).prop_map(|t| format!("srvtimeout {t}   # server")),
            (0u32..100000).prop_map(|t| format!("contimeout {t}")),
            Just("redispatch".to_string()),
            Just("option forceclose".to_string()),
            Just("block if bad".to_string()),
            Just("reqadd X-Proto:\\ https".to_string()),
            Just("rspadd X-A:\\ a".to_string()),
            Just("reqidel ^X-Debug:.*".to_string()),
            Just("reqrep ^([^\\ :]*)\\ /api/(.*) \\1\\ /\\2".to_string()),
            Just("reqdeny ^X-Bad:".to_string()),
            Just("nbproc 2".to_string()),
            Just("bind-process 1".to_string()),
            Just("stats bind-process 1".to_string()),
            Just("monitor-net 10.0.0.0/8".to_string()),
            Just("option independant-streams".to_string()),
            Just("timeout client 30s".to_string()),
            Just("bind :80".to_string()),
            Just("acl a path /x".to_string()),
            Just("http-request deny if a".to_string()),
            Just("defaults named".to_string()),
            Just("backend be from named".to_string()),
            Just("server s1 127.0.0.1:8080 check".to_string()),
            Just("# a comment".to_string()),
            Just(String::new()),
        ];
        (
            prop_oneof![Just(""), Just("    "), Just("\t"), Just("  ")],
            body,
        )
            .prop_map(|(indent, body)| format!("{indent}{body}\n"))
    }
}
