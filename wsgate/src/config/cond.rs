//! Conditional blocks and message directives (`.if`, `.elif`, `.else`,
//! `.endif`, `.notice`, `.warning`, `.alert`, `.diag`), as HAProxy 2.6
//! reads them (configuration manual §2.4).
//!
//! Stage: between the `lexer` and the `parser`: lines inside a block whose
//! condition is false are dropped, directive lines are consumed. A
//! condition is the line's words joined by spaces (as HAProxy does), made
//! of terms combined with `!`, `&&`, `||` and parentheses. Terms: a number
//! (true when not 0), an empty condition (false), `defined(<var>)`,
//! `feature(<name>)`, `streq(<a>,<b>)`, `strneq(<a>,<b>)`,
//! `version_atleast(<ver>)`, `version_before(<ver>)`. Anything else is an
//! error, as in HAProxy ("unparsable conditional").
//!
//! What wsgate answers: the version is [`LANGUAGE_VERSION`], the HAProxy
//! release whose configuration language wsgate follows; `feature()` is true
//! for what wsgate provides ([`FEATURES`]: TLS, threads, the Prometheus
//! exporter) and false for the rest (QUIC, Lua, ...), so a block guarded by
//! `.if feature(QUIC)` is skipped rather than refused.

use std::sync::Arc;

use super::diag::Diagnostic;
use super::lexer::{EnvLookup, Line, Token};
use super::model::Location;

/// The HAProxy version `version_atleast()` and `version_before()` compare
/// with.
pub const LANGUAGE_VERSION: &str = "2.6";

/// `feature(<name>)` names that are true: HAProxy build options whose
/// configuration wsgate accepts.
pub const FEATURES: &[&str] = &["OPENSSL", "THREAD", "PROMEX"];

/// One open `.if` block.
struct Block {
    /// Where the `.if` is (for "unterminated" errors).
    at: Location,
    /// Lines of the enclosing block are kept.
    parent_active: bool,
    /// A branch of this block has been taken already.
    taken: bool,
    /// The current branch is kept.
    active: bool,
    /// `.else` was seen.
    in_else: bool,
}

/// Applies the conditional blocks of one file: returns the lines to parse.
pub fn apply(
    file: &Arc<str>,
    lines: Vec<Line>,
    env: EnvLookup<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Line> {
    let mut out = Vec::with_capacity(lines.len());
    let mut stack: Vec<Block> = Vec::new();
    for line in lines {
        let Some(first) = line.words.first() else {
            continue;
        };
        let active = stack.last().is_none_or(|b| b.active);
        if !first.text.starts_with('.') {
            if active {
                out.push(line);
            }
            continue;
        }
        let at = Location {
            file: file.clone(),
            line: first.line,
            col: first.col,
        };
        let args = &line.words[1..];
        match first.text.as_str() {
            ".if" => {
                // Conditions inside a skipped block are not evaluated.
                let holds = active && eval(args, env, &at, diags);
                stack.push(Block {
                    at,
                    parent_active: active,
                    taken: holds,
                    active: holds,
                    in_else: false,
                });
            }
            ".elif" | ".else" => {
                let Some(b) = stack.last_mut() else {
                    diags.push(Diagnostic::error(
                        at,
                        format!("'{}' without a matching '.if'", first.text),
                    ));
                    continue;
                };
                if b.in_else {
                    diags.push(Diagnostic::error(
                        at,
                        format!("'{}' after '.else' in the same block", first.text),
                    ));
                    b.active = false;
                    continue;
                }
                let try_branch = b.parent_active && !b.taken;
                if first.text == ".else" {
                    b.in_else = true;
                    if let Some(extra) = args.first() {
                        diags.push(Diagnostic::error(
                            loc(file, extra),
                            "'.else' takes no condition (use '.elif <condition>')",
                        ));
                    }
                    b.active = try_branch;
                } else {
                    b.active = try_branch && eval(args, env, &at, diags);
                }
                b.taken |= b.active;
            }
            ".endif" if stack.pop().is_none() => {
                diags.push(Diagnostic::error(at, "'.endif' without a matching '.if'"));
            }
            ".endif" => {}
            ".notice" | ".warning" | ".alert" | ".diag" if active => {
                let text = args
                    .iter()
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                match first.text.as_str() {
                    ".notice" => diags.push(Diagnostic::note(at, text)),
                    ".warning" => diags.push(Diagnostic::warning(at, text)),
                    ".alert" => diags.push(Diagnostic::error(at, text)),
                    // HAProxy prints `.diag` only in diagnostic mode (-dD).
                    _ => {}
                }
            }
            ".notice" | ".warning" | ".alert" | ".diag" => {}
            other if active => {
                diags.push(
                    Diagnostic::error(at, format!("unknown directive '{other}'")).with_hint(
                        "HAProxy's directives are .if, .elif, .else, .endif, .notice, .warning, .alert and .diag",
                    ),
                );
            }
            _ => {}
        }
    }
    for b in stack {
        diags.push(
            Diagnostic::error(
                b.at,
                "'.if' block not closed by '.endif' before the end of the file",
            )
            .with_hint("blocks do not continue across files"),
        );
    }
    out
}

fn loc(file: &Arc<str>, t: &Token) -> Location {
    Location {
        file: file.clone(),
        line: t.line,
        col: t.col,
    }
}

/// Evaluates a condition; an unparsable one is reported and is false.
fn eval(args: &[Token], env: EnvLookup<'_>, at: &Location, diags: &mut Vec<Diagnostic>) -> bool {
    let text = args
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let mut p = CondParser {
        s: text.as_bytes(),
        i: 0,
        env,
    };
    let result = p.expr().and_then(|v| {
        p.skip_spaces();
        if p.i < p.s.len() {
            Err(format!("unexpected '{}'", &text[p.i..]))
        } else {
            Ok(v)
        }
    });
    match result {
        Ok(v) => v,
        Err(e) => {
            diags.push(
                Diagnostic::error(at.clone(), format!("unparsable condition '{text}': {e}"))
                    .with_hint("terms: a number, defined(VAR), feature(NAME), streq(A,B), strneq(A,B), version_atleast(V), version_before(V); combined with !, &&, || and ( )"),
            );
            false
        }
    }
}

struct CondParser<'a> {
    s: &'a [u8],
    i: usize,
    env: EnvLookup<'a>,
}

impl CondParser<'_> {
    fn skip_spaces(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        self.skip_spaces();
        if self.s[self.i..].starts_with(op.as_bytes()) {
            self.i += op.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while self.eat("||") {
            // Both sides are parsed, so an error on the right is reported.
            let r = self.and()?;
            v = v || r;
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.unary()?;
        while self.eat("&&") {
            let r = self.unary()?;
            v = v && r;
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<bool, String> {
        if self.eat("!") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.expr()?;
            if !self.eat(")") {
                return Err("missing ')'".into());
            }
            return Ok(v);
        }
        self.term()
    }

    fn term(&mut self) -> Result<bool, String> {
        self.skip_spaces();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        {
            self.i += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if self.s.get(self.i) != Some(&b'(') {
            if word.is_empty() {
                // An empty condition (or the end after an operator) is false
                // when alone; after an operator it is an error.
                return if start == 0 && self.s.iter().all(u8::is_ascii_whitespace) {
                    Ok(false)
                } else {
                    Err("missing term".into())
                };
            }
            return match word.parse::<i64>() {
                Ok(n) => Ok(n != 0),
                Err(_) => Err(format!("'{word}' is not a number or a known predicate")),
            };
        }
        self.i += 1;
        let arg_start = self.i;
        let mut depth = 0usize;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                _ => {}
            }
            self.i += 1;
        }
        if self.s.get(self.i) != Some(&b')') {
            return Err(format!("missing ')' after '{word}('"));
        }
        let inner = String::from_utf8_lossy(&self.s[arg_start..self.i]).into_owned();
        self.i += 1;
        let args: Vec<&str> = inner.split(',').collect();
        let one = |name: &str| -> Result<&str, String> {
            match args.as_slice() {
                [a] if !a.is_empty() => Ok(a),
                _ => Err(format!("'{name}' takes one argument")),
            }
        };
        let two = |name: &str| -> Result<(&str, &str), String> {
            match args.as_slice() {
                [a, b] => Ok((a, b)),
                _ => Err(format!("'{name}' takes two arguments")),
            }
        };
        match word.as_str() {
            "defined" => Ok((self.env)(one(&word)?).is_some()),
            "feature" => Ok(FEATURES.contains(&one(&word)?)),
            "streq" => two(&word).map(|(a, b)| a == b),
            "strneq" => two(&word).map(|(a, b)| a != b),
            "version_atleast" => Ok(version(LANGUAGE_VERSION) >= version(one(&word)?)),
            "version_before" => Ok(version(LANGUAGE_VERSION) < version(one(&word)?)),
            other => Err(format!("unknown predicate '{other}'")),
        }
    }
}

/// `2.6.12` → [2, 6, 12, 0]: numeric parts, missing ones 0 (a suffix such
/// as `-dev3` is ignored).
fn version(text: &str) -> [u32; 4] {
    let mut out = [0; 4];
    let core = text.split(['-', '+']).next().unwrap_or("");
    for (slot, part) in out.iter_mut().zip(core.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Vec<String>, Vec<Diagnostic>) {
        let file: Arc<str> = Arc::from("t.cfg");
        let env = |name: &str| (name == "SET").then(|| "1".to_owned());
        let mut diags = Vec::new();
        let lines = super::super::lexer::lex(&file, text, &env, &mut diags);
        let kept = apply(&file, lines, &env, &mut diags);
        (
            kept.iter()
                .map(|l| {
                    l.words
                        .iter()
                        .map(|t| t.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect(),
            diags,
        )
    }

    fn holds(cond: &str) -> bool {
        let (kept, diags) = run(&format!(".if {cond}\nyes\n.else\nno\n.endif\n"));
        assert!(diags.is_empty(), "{cond}: {diags:?}");
        kept == ["yes"]
    }

    #[test]
    fn predicates_and_operators_as_haproxy_2_6() {
        // Each checked with `haproxy -cc` (2.6.12).
        assert!(holds("defined(SET)"));
        assert!(holds("!defined(NOPE)"));
        assert!(!holds("defined(SET) && defined(NOPE)"));
        assert!(holds("defined(SET) || defined(NOPE)"));
        assert!(holds("(1 && 0) || 1"));
        assert!(holds("feature(OPENSSL)"));
        assert!(!holds("feature(QUIC)"));
        assert!(holds("!feature(QUIC)"));
        assert!(holds("streq(a,a)") && holds("strneq(a,b)"));
        assert!(holds("streq(\"a b\",\"a b\")"));
        assert!(holds("version_atleast(2.6)") && !holds("version_atleast(2.7)"));
        assert!(holds("version_before(2.6.13)") && !holds("version_before(2.5)"));
        assert!(!holds("0") && holds("42") && !holds(""));
    }

    #[test]
    fn nesting_elif_and_messages() {
        let (kept, diags) = run(
            ".if 0\n a\n .if 1\n b\n .endif\n.elif 1\n c\n .if 0\n d\n .else\n e\n .endif\n.else\n f\n.endif\n\
             .notice \"hello\"\n.warning careful\n.if 0\n.alert \"skipped\"\n.endif\n",
        );
        assert_eq!(kept, ["c", "e"]);
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert_eq!(diags[0].severity, super::super::Severity::Note);
        assert_eq!(diags[0].message, "hello");
        assert_eq!(diags[1].severity, super::super::Severity::Warning);
    }

    #[test]
    fn errors_name_the_line() {
        let (_, diags) = run(".if foo\n.endif\n.endif\n.if 1\n.alert stop\n.bogus\n");
        let msgs: Vec<(u32, &str)> = diags
            .iter()
            .map(|d| (d.location.line, d.message.as_str()))
            .collect();
        assert!(msgs[0].0 == 1 && msgs[0].1.contains("unparsable condition 'foo'"));
        assert_eq!(msgs[1], (3, "'.endif' without a matching '.if'"));
        assert_eq!(msgs[2], (5, "stop"));
        assert!(msgs[3].0 == 6 && msgs[3].1.contains("unknown directive"));
        assert!(msgs[4].0 == 4 && msgs[4].1.contains("not closed"));
        assert!(diags.iter().all(Diagnostic::is_error));
    }
}
