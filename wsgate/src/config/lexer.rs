//! Lexer: configuration text → lines of words, each word with its line and
//! column.
//!
//! Stage: first pass; the `parser` consumes the [`Line`]s. The rules are
//! HAProxy's line tokenizer (manual §2.2 "Quoting and escaping" and §2.3
//! "Environment variables"), so a file means the same thing to both:
//!
//! * words are split on unquoted spaces and tabs; `#` outside quotes starts a
//!   comment;
//! * outside single quotes a backslash escapes `\ `, `\\`, `\#`, `\'`, `\"`,
//!   and produces `\n`, `\r`, `\t`, `\xHH`; `\$` only inside double quotes;
//!   any other backslash pair (`\1`, `\d`) is kept as written, for regexes;
//! * single quotes protect everything; double quotes protect spaces, `#` and
//!   `'`, and expand `$VAR`, `${VAR}`, `${VAR-default}` and `${VAR[*]}`
//!   (one word per space-separated part). Variables are expanded **only
//!   inside double quotes**, as HAProxy does; an unset variable expands to
//!   nothing (with a warning here, since that is rarely intended). The
//!   exception is HAProxy's too: `bind` and `server` addresses expand
//!   `$VAR`/`${VAR}` even unquoted ([`expand_address`], called by their
//!   handlers);
//! * `.FILE` and `.LINE` pseudo-variables are supported;
//! * a backslash at the very end of a line is *not* a line continuation in
//!   HAProxy's language (HAProxy would keep it as a literal `\`), so it is
//!   rejected with an explanation rather than silently misread;
//! * lines end with LF or CRLF; tabs separate words like spaces; lines
//!   have no length or word limit. Where HAProxy 2.6 refuses a file that
//!   wsgate reads (a UTF-8 byte order mark, no newline at the end, more
//!   than 64 words on a line), a warning says so, for files that must
//!   also work with HAProxy.
//!
//! A line with a lexical error is reported and dropped; the other lines are
//! still lexed, so every problem in a file is reported at once.

use std::sync::Arc;

use super::diag::Diagnostic;
use super::model::Location;

/// One word of a configuration line, after quote removal, escapes and
/// expansion. `line` and `col` (both 1-based, col counted in characters)
/// point at the first character of the word as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub line: u32,
    pub col: u32,
}

/// The words of one non-empty configuration line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: u32,
    pub words: Vec<Token>,
}

/// Why a line could not be lexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("unterminated {0} quote")]
    UnterminatedQuote(&'static str),
    #[error("a backslash at the end of a line is not a line continuation in HAProxy's configuration language")]
    LineContinuation,
    #[error("invalid escape '\\x{0}': \\x needs two hexadecimal digits")]
    BadHex(String),
    #[error("invalid environment variable name after '$' (names start with a letter or '_'; write \\$ for a literal dollar)")]
    BadVarName,
    #[error("unknown pseudo-variable '{0}' (known: .FILE, .LINE)")]
    BadPseudoVar(String),
    #[error("missing '}}' after '${{'")]
    UnclosedBrace,
    #[error("'[' in a variable must be '[*]' (word expansion)")]
    BadExpand,
}

/// HAProxy's limit of words per line (`MAX_LINE_ARGS`, keyword included).
const HAPROXY_MAX_WORDS: usize = 64;

/// `$VAR` and `${VAR}` in an address (`bind`, `server`), expanded whether
/// quoted or not, as HAProxy's address parser does (an unset variable is
/// empty). Other words expand variables only inside double quotes.
pub fn expand_address(text: &str, env: EnvLookup<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if valid {
            out.push_str(&env(name).unwrap_or_default());
            rest = &after[len..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Looks up an environment variable; injected so tests do not depend on the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Lexes a whole file. Lines with errors are reported in `diags` and left
/// out of the result.
pub fn lex(
    file: &Arc<str>,
    text: &str,
    env: EnvLookup<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Line> {
    let mut lines = Vec::new();
    let at = |line: u32| Location {
        file: file.clone(),
        line,
        col: 1,
    };
    // Editors on Windows may start a file with a byte order mark; HAProxy
    // 2.6 reads it as part of the first word and refuses the file.
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            diags.push(Diagnostic::warning(
                at(1),
                "UTF-8 byte order mark skipped (HAProxy 2.6 refuses a file that starts with one)",
            ).with_hint("save the file as UTF-8 without BOM to use it with HAProxy too"));
            rest
        }
        None => text,
    };
    for (index, raw) in text.split('\n').enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let mut lexer = LineLexer {
            file,
            line: number,
            env,
            words: Vec::new(),
            warnings: Vec::new(),
        };
        match lexer.run(raw) {
            Ok(()) => {
                diags.append(&mut lexer.warnings);
                if lexer.words.len() > HAPROXY_MAX_WORDS {
                    diags.push(Diagnostic::warning(
                        at(number),
                        format!("{} words on one line: wsgate reads them all, HAProxy stops at {HAPROXY_MAX_WORDS} and refuses the file", lexer.words.len()),
                    ).with_hint("split the line (e.g. several `acl` lines with one name are OR-ed) to use it with HAProxy too"));
                }
                if !lexer.words.is_empty() {
                    lines.push(Line {
                        line: number,
                        words: lexer.words,
                    });
                }
            }
            Err((col, err)) => {
                diags.append(&mut lexer.warnings);
                let loc = Location {
                    file: file.clone(),
                    line: number,
                    col,
                };
                let mut d = Diagnostic::error(loc, err.to_string());
                d = match err {
                    LexError::LineContinuation => d.with_hint(
                        "join the two lines into one (HAProxy reads a trailing '\\' as a literal backslash)",
                    ),
                    LexError::UnterminatedQuote(_) => {
                        d.with_hint("quotes do not span lines; close the quote on the same line")
                    }
                    _ => d,
                };
                diags.push(d);
            }
        }
    }
    lines
}

struct LineLexer<'a> {
    file: &'a Arc<str>,
    line: u32,
    env: EnvLookup<'a>,
    words: Vec<Token>,
    warnings: Vec<Diagnostic>,
}

/// The word being built: its text and the column it started at.
struct Word {
    text: String,
    col: u32,
    /// Quotes were seen, so the word exists even if empty (`""`).
    quoted: bool,
}

impl LineLexer<'_> {
    fn run(&mut self, raw: &str) -> Result<(), (u32, LexError)> {
        let chars: Vec<char> = raw.chars().collect();
        let mut i = 0usize;
        let mut word: Option<Word> = None;
        // Which quote is open, and where it opened (for the error).
        let mut squote: Option<usize> = None;
        let mut dquote: Option<usize> = None;
        let col_of = |i: usize| u32::try_from(i + 1).unwrap_or(u32::MAX);

        while i < chars.len() {
            let c = chars[i];
            let in_quotes = squote.is_some() || dquote.is_some();
            if !in_quotes && (c == ' ' || c == '\t' || c == '\x0b' || c == '\x0c') {
                if let Some(w) = word.take() {
                    self.push(w);
                }
                i += 1;
                continue;
            }
            if !in_quotes && c == '#' {
                break;
            }
            let w = word.get_or_insert_with(|| Word {
                text: String::new(),
                col: col_of(i),
                quoted: false,
            });
            match c {
                '"' if squote.is_none() => {
                    dquote = if dquote.is_some() { None } else { Some(i) };
                    w.quoted = true;
                    i += 1;
                }
                '\'' if dquote.is_none() => {
                    squote = if squote.is_some() { None } else { Some(i) };
                    w.quoted = true;
                    i += 1;
                }
                '\\' if squote.is_none() => {
                    let next = chars.get(i + 1).copied();
                    match next {
                        None => return Err((col_of(i), LexError::LineContinuation)),
                        Some(' ' | '\\' | '#' | '\'' | '"') => {
                            w.text.extend(next);
                            i += 2;
                        }
                        Some('t') => {
                            w.text.push('\t');
                            i += 2;
                        }
                        Some('n') => {
                            w.text.push('\n');
                            i += 2;
                        }
                        Some('r') => {
                            w.text.push('\r');
                            i += 2;
                        }
                        Some('$') if dquote.is_some() => {
                            w.text.push('$');
                            i += 2;
                        }
                        Some('x') => {
                            let hex: String = chars.iter().skip(i + 2).take(2).collect();
                            let value = (hex.len() == 2)
                                .then(|| u8::from_str_radix(&hex, 16).ok())
                                .flatten()
                                .filter(|_| hex.chars().all(|h| h.is_ascii_hexdigit()));
                            match value {
                                Some(b) => {
                                    w.text.push(char::from(b));
                                    i += 4;
                                }
                                None => return Err((col_of(i), LexError::BadHex(hex))),
                            }
                        }
                        Some(_) => {
                            // Not an escape: kept as written (regex `\d`, `\1`).
                            w.text.push('\\');
                            i += 1;
                        }
                    }
                }
                '$' if dquote.is_some() => {
                    i = self.expand(&chars, i, &mut word)?;
                }
                '$' if squote.is_none()
                    && !self.in_address()
                    && !self.in_password_hash()
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| *n == '{' || n.is_ascii_alphabetic() || *n == '_') =>
                {
                    // HAProxy leaves `$VAR` unexpanded outside double quotes
                    // (addresses aside); so do we, but say so, since it is
                    // rarely intended.
                    let name: String = chars[i..]
                        .iter()
                        .take_while(|c| !c.is_whitespace() && **c != '"' && **c != '\'')
                        .collect();
                    self.warnings.push(
                        Diagnostic::warning(
                            Location {
                                file: self.file.clone(),
                                line: self.line,
                                col: col_of(i),
                            },
                            format!("'{name}' is not expanded here: outside double quotes, HAProxy expands variables only in `bind` and `server` addresses"),
                        )
                        .with_hint(format!("write \"{name}\" to use the variable, or '{name}' to keep it as written")),
                    );
                    w.text.push('$');
                    i += 1;
                }
                _ => {
                    w.text.push(c);
                    i += 1;
                }
            }
        }
        if let Some(start) = dquote {
            return Err((col_of(start), LexError::UnterminatedQuote("double")));
        }
        if let Some(start) = squote {
            return Err((col_of(start), LexError::UnterminatedQuote("single")));
        }
        if let Some(w) = word.take() {
            self.push(w);
        }
        Ok(())
    }

    /// The word being read is the address of a `bind` or `server` line,
    /// where HAProxy expands variables itself ([`expand_address`]).
    fn in_address(&self) -> bool {
        match self.words.as_slice() {
            [kw] => kw.text == "bind",
            [kw, _] => kw.text == "server",
            [kw, _, _] => kw.text == "server-template",
            _ => false,
        }
    }

    /// A userlist's `user <name> password <hash>`: crypt hashes are full of
    /// `$`, which is no variable there.
    fn in_password_hash(&self) -> bool {
        matches!(self.words.as_slice(), [kw, _, p] if kw.text == "user" && p.text == "password")
    }

    fn push(&mut self, w: Word) {
        if w.quoted || !w.text.is_empty() {
            self.words.push(Token {
                text: w.text,
                line: self.line,
                col: w.col,
            });
        }
    }

    /// Expands the variable starting at `chars[start] == '$'`; returns the
    /// index after it. `${VAR[*]}` may finish the current word and start new
    /// ones.
    fn expand(
        &mut self,
        chars: &[char],
        start: usize,
        word: &mut Option<Word>,
    ) -> Result<usize, (u32, LexError)> {
        let col_of = |i: usize| u32::try_from(i + 1).unwrap_or(u32::MAX);
        let mut i = start + 1;
        let brace = chars.get(i) == Some(&'{');
        if brace {
            i += 1;
        }
        let name_start = i;
        match chars.get(i) {
            Some(c) if c.is_ascii_alphabetic() || *c == '_' || *c == '.' => {}
            _ => return Err((col_of(start), LexError::BadVarName)),
        }
        if chars[i] == '.' {
            i += 1;
        }
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            i += 1;
        }
        let name: String = chars[name_start..i].iter().collect();
        let mut value = if let Some(pseudo) = name.strip_prefix('.') {
            match pseudo {
                "FILE" => Some(self.file.to_string()),
                "LINE" => Some(self.line.to_string()),
                _ => return Err((col_of(start), LexError::BadPseudoVar(name))),
            }
        } else {
            (self.env)(&name)
        };
        let mut word_expand = false;
        if brace && chars.get(i) == Some(&'[') {
            if chars.get(i + 1) == Some(&'*') && chars.get(i + 2) == Some(&']') {
                word_expand = true;
                i += 3;
            } else {
                return Err((col_of(i), LexError::BadExpand));
            }
        }
        if brace {
            if chars.get(i) == Some(&'-') {
                let default_start = i + 1;
                let Some(end) = chars[default_start..].iter().position(|c| *c == '}') else {
                    return Err((col_of(start), LexError::UnclosedBrace));
                };
                if value.is_none() {
                    value = Some(chars[default_start..default_start + end].iter().collect());
                }
                i = default_start + end;
            }
            if chars.get(i) != Some(&'}') {
                return Err((col_of(start), LexError::UnclosedBrace));
            }
            i += 1;
        }
        let Some(value) = value else {
            self.warnings.push(
                Diagnostic::warning(
                    Location {
                        file: self.file.clone(),
                        line: self.line,
                        col: col_of(start),
                    },
                    format!("environment variable '{name}' is not set; it expands to nothing"),
                )
                .with_hint(format!("set it, or give a default: \"${{{name}-value}}\"")),
            );
            return Ok(i);
        };
        if word_expand {
            // Each space-separated part becomes its own word, as in HAProxy.
            let parts = value.split_ascii_whitespace();
            let mut first = true;
            for part in parts {
                if !first {
                    if let Some(w) = word.take() {
                        self.push(Word { quoted: true, ..w });
                    }
                    *word = Some(Word {
                        text: String::new(),
                        col: col_of(start),
                        quoted: true,
                    });
                }
                first = false;
                if let Some(w) = word.as_mut() {
                    w.text.push_str(part);
                }
            }
        } else if let Some(w) = word.as_mut() {
            w.text.push_str(&value);
        }
        Ok(i)
    }
}

/// Quotes `s` so that the lexer reads it back as exactly one word equal to
/// `s` (used by tests and by anything that writes configuration text).
pub fn quote_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_expand_variables_unquoted() {
        let env = |n: &str| match n {
            "IP" => Some("10.0.0.1".to_owned()),
            "PORT" => Some("8080".to_owned()),
            _ => None,
        };
        assert_eq!(expand_address("${IP}:443", &env), "10.0.0.1:443");
        assert_eq!(expand_address("$IP:$PORT", &env), "10.0.0.1:8080");
        assert_eq!(expand_address("${UNSET}:80", &env), ":80");
        assert_eq!(expand_address("a$:1 ${", &env), "a$:1 ${");
    }
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            "LIST" => Some("a  b c".into()),
            _ => None,
        }
    }

    fn lex_str(text: &str) -> (Vec<Line>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let file: Arc<str> = Arc::from("t.cfg");
        let lines = lex(&file, text, &env, &mut diags);
        (lines, diags)
    }

    fn words(text: &str) -> Vec<String> {
        let (lines, diags) = lex_str(text);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        lines
            .into_iter()
            .flat_map(|l| l.words.into_iter().map(|w| w.text))
            .collect()
    }

    #[test]
    fn splits_words_and_strips_comments() {
        assert_eq!(
            words("  bind *:80   ssl # comment"),
            ["bind", "*:80", "ssl"]
        );
        assert_eq!(words("a\tb"), ["a", "b"]);
        assert_eq!(words("# only a comment"), Vec::<String>::new());
    }

    #[test]
    fn positions_are_one_based_columns_of_word_starts() {
        let (lines, _) = lex_str("\n    server s1 \"x y\"\n");
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l.line, 2);
        let cols: Vec<u32> = l.words.iter().map(|w| w.col).collect();
        assert_eq!(cols, [5, 12, 15]);
    }

    #[test]
    fn escapes_follow_haproxy() {
        assert_eq!(
            words(r"a\ b \#c \\ \' \x41 \d"),
            ["a b", "#c", "\\", "'", "A", "\\d"]
        );
        assert_eq!(words(r#""a\tb" "\$x" \$"#), ["a\tb", "$x", "\\$"]);
        assert_eq!(words(r"'\n $PORT # x'"), [r"\n $PORT # x"]);
    }

    #[test]
    fn env_expansion_only_in_double_quotes() {
        assert_eq!(
            words(r#""$PORT" "${PORT}" $PORT"#),
            ["8080", "8080", "$PORT"]
        );
        assert_eq!(words(r#""${NOPE-127.0.0.1}:${PORT}""#), ["127.0.0.1:8080"]);
        // A default replaces unset variables only, not empty ones.
        assert_eq!(words(r#""x${EMPTY-d}y""#), ["xy"]);
        assert_eq!(words(r#"a "${LIST[*]}" z"#), ["a", "a", "b", "c", "z"]);
    }

    #[test]
    fn pseudo_variables() {
        assert_eq!(words("\n\"${.LINE}:${.FILE}\""), ["2:t.cfg"]);
    }

    #[test]
    fn unset_variable_warns_and_expands_to_nothing() {
        let (lines, diags) = lex_str(r#"bind "${NOPE}:80""#);
        assert_eq!(lines[0].words[1].text, ":80");
        assert_eq!(diags.len(), 1);
        assert!(!diags[0].is_error());
        assert_eq!(diags[0].location.col, 7);
    }

    #[test]
    fn trailing_backslash_is_rejected() {
        let (lines, diags) = lex_str("server s1 \\\n  127.0.0.1:80\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].is_error());
        assert!(diags[0].message.contains("not a line continuation"));
        assert_eq!((diags[0].location.line, diags[0].location.col), (1, 11));
        // The next line is still lexed.
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn lexical_errors_are_located() {
        for (text, col) in [
            ("a \"b", 3),
            ("a 'b", 3),
            (r"a \xZ1", 3),
            (r#"a "$1""#, 4),
            (r#""${A""#, 2),
        ] {
            let (_, diags) = lex_str(text);
            assert_eq!(diags.len(), 1, "{text}");
            assert!(diags[0].is_error(), "{text}");
            assert_eq!(diags[0].location.col, col, "{text}: {}", diags[0]);
        }
    }

    #[test]
    fn empty_quoted_word_is_a_word() {
        assert_eq!(words(r#"a "" b"#), ["a", "", "b"]);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = lex_str(&text);
        }

        #[test]
        fn never_panics_on_config_like_text(text in "[ a-z\"'\\\\#$\\{\\}\\[\\]*x0-9\t\n-]{0,64}") {
            let _ = lex_str(&text);
        }

        #[test]
        fn quoted_words_round_trip(ws in proptest::collection::vec("[^\u{0}\n\r]{0,12}", 1..6)) {
            let line: Vec<String> = ws.iter().map(|w| quote_word(w)).collect();
            let (lines, diags) = lex_str(&line.join(" "));
            prop_assert!(diags.is_empty(), "{:?}", diags);
            let got: Vec<String> = lines.into_iter().flat_map(|l| l.words).map(|w| w.text).collect();
            prop_assert_eq!(got, ws);
        }

        #[test]
        fn escaped_words_round_trip(w in "[a-zA-Z0-9 #'\"\\\\.:_-]{1,16}") {
            let escaped: String = w.chars().flat_map(|c| match c {
                ' ' | '#' | '\'' | '"' | '\\' => vec!['\\', c],
                _ => vec![c],
            }).collect();
            let (lines, diags) = lex_str(&format!("kw {escaped} end"));
            prop_assert!(diags.is_empty());
            let got: Vec<String> = lines.into_iter().flat_map(|l| l.words).map(|w| w.text).collect();
            prop_assert_eq!(got, vec!["kw".to_string(), w, "end".to_string()]);
        }
    }
}
