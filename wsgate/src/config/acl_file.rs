//! `acl <name> <fetch> [flags] -f <file> [-f <file>...] [values...]`:
//! patterns read from files, added to those on the line.
//!
//! Stage: `acl::parse_acl` accepts the `-f <file>` flags and leaves the
//! files to the `acl` handler, which calls [`load`] with the parsed term
//! (and to `Cx::rule` for the anonymous ACLs of a condition, `{ src -f
//! <file> }`, [`load_anonymous`]);
//! `check` and the session see one ACL, whatever its patterns came from.
//! HAProxy's file rules (`pat_ref_read_from_file`): one pattern per line,
//! ending at CR or LF (inner and trailing spaces are part of it); a `#` in
//! the first column makes a comment; leading spaces and tabs are dropped;
//! empty lines are skipped. A relative path is opened from the working
//! directory, as HAProxy opens it. A file that cannot be read is an
//! environment error (`wsgate -c --syntax-only` does not open it); a
//! pattern the match method cannot use is an error naming the file's line.

use super::acl::{ConditionDraft, TermDraft};
use super::lexer::Token;
use super::model::{AclTerm, MatchMethod};
use super::parser::Cx;

/// The patterns of a pattern file's text, with their line numbers.
pub fn patterns(text: &str) -> Vec<(usize, &str)> {
    text.split('\n')
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#'))
        .map(|(n, line)| {
            let line = line.trim_start_matches([' ', '\t']);
            let end = line.find(['\r', '\n']).unwrap_or(line.len());
            (n + 1, &line[..end])
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// The `-f <file>` words of an `acl` line's flags (before the values).
pub fn files(words: &[Token]) -> Vec<&Token> {
    let mut out = Vec::new();
    let mut i = 1;
    while let Some(w) = words.get(i) {
        match w.text.as_str() {
            "-f" => {
                out.extend(words.get(i + 1));
                i += 2;
            }
            "-m" => i += 2,
            "--" => break,
            t if t.starts_with('-') => i += 1,
            _ => break,
        }
    }
    out
}

/// Reads `files` and adds their patterns to `term` (nothing is read with
/// `--syntax-only`). Reports at the file's word; false after an error.
pub fn load(cx: &mut Cx<'_>, files: &[&Token], term: &mut AclTerm) -> bool {
    if cx.syntax_only {
        return true;
    }
    let mut ok = true;
    for file in files {
        let bytes = match std::fs::read(&file.text) {
            Ok(b) => b,
            Err(e) => {
                cx.env_error(file, format!("cannot read pattern file '{}': {e}", file.text))
                    .hint = Some("the file is read at start; a relative path is taken from the working directory, as HAProxy does".into());
                ok = false;
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        for (line, pattern) in patterns(&text) {
            if let Err(why) = add(term, pattern) {
                cx.error(file, format!("{why} ({} line {line})", file.text));
                ok = false;
            }
        }
    }
    ok
}

/// The `-f` files of a condition's anonymous ACLs (`{ src -f <file> }`),
/// read into them; false after an error.
pub fn load_anonymous(cx: &mut Cx<'_>, words: &[Token], cond: &mut ConditionDraft) -> bool {
    // The braces in the order `parse_condition` met them, which is the
    // order of the anonymous terms.
    let mut braces = Vec::new();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if w.text.trim_start_matches('!') == "{" {
            let Some(close) = words[i + 1..].iter().position(|t| t.text == "}") else {
                break;
            };
            braces.push(&words[i + 1..i + 1 + close]);
            i += close + 2;
        } else {
            i += 1;
        }
    }
    let anonymous = cond.groups.iter_mut().flatten().filter_map(|t| match t {
        TermDraft::Anonymous { acl, .. } => Some(acl),
        TermDraft::Named { .. } | TermDraft::Defaults { .. } => None,
    });
    let mut ok = true;
    for (inner, acl) in braces.into_iter().zip(anonymous) {
        ok &= load(cx, &files(inner), acl);
    }
    ok
}

/// Adds one pattern to `term` as its match method reads it.
fn add(term: &mut AclTerm, pattern: &str) -> Result<(), String> {
    match term.method {
        MatchMethod::Ip => {
            let net = super::acl::parse_network(pattern)
                .ok_or_else(|| format!("'{pattern}' is not an IP address or network"))?;
            term.networks.push(net);
        }
        MatchMethod::Reg => {
            let re = regex::bytes::RegexBuilder::new(pattern)
                .case_insensitive(term.ignore_case)
                .build()
                .map_err(|e| {
                    let text = e.to_string();
                    let why = text.lines().last().unwrap_or("").trim().to_owned();
                    format!("invalid regular expression '{pattern}': {why}")
                })?;
            term.regexes.push(super::acl::AclRegex(re));
        }
        MatchMethod::Int => {
            let range = super::acl::int_range(None, pattern)?;
            term.ints.push(range);
        }
        MatchMethod::Found | MatchMethod::Bool => {
            return Err(format!(
                "unexpected pattern '{pattern}' (this match takes none)"
            ))
        }
        _ => {}
    }
    term.values.push(pattern.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_haproxy_reads_them() {
        let text =
            "# blocked\n10.0.0.1\n\n  \t192.168.0.0/16\r\n #not a comment\nwith space \n#x\n";
        assert_eq!(
            patterns(text),
            vec![
                (2, "10.0.0.1"),
                (4, "192.168.0.0/16"),
                (5, "#not a comment"),
                (6, "with space "),
            ]
        );
        assert!(patterns("").is_empty());
    }
}
