//! `wsgate migrate`: a configuration rewritten in current syntax.
//!
//! Works on the text, line by line, so comments, blank lines and layout
//! survive; each changed line gets a comment above it saying what changed.
//! The rewrites are the keyword table's [`LEGACY`](super::keywords::LEGACY)
//! entries, plus the old `listen|frontend <name> <addr:port>` form, which
//! becomes the section line and a `bind` line. The output is meant for
//! current HAProxy as much as for wsgate.

use std::sync::Arc;

use super::{keywords, legacy_rules, lexer};

/// Returns the rewritten text and how many lines changed.
pub fn migrate(text: &str) -> (String, usize) {
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
