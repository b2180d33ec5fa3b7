//! `wsgate -c` output read back as diagnostics.
//!
//! Each diagnostic is printed as one `file:line:col: severity: message` line
//! followed by its own indented lines (`  hint: ...`). Reading the output
//! one diagnostic at a time, header and indented lines together, keeps a
//! hint with the diagnostic that printed it: filtering lines first (keeping
//! only `error:` lines and then any `hint:` line after them) gave an error
//! the hint of the warning that followed it.

/// One printed diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// Its first line, `file:line:col: severity: message`.
    pub header: String,
    /// The text of its `  hint:` line, if any.
    pub hint: Option<String>,
}

impl Reported {
    pub fn is_error(&self) -> bool {
        self.header.contains(": error: ")
    }

    pub fn is_warning(&self) -> bool {
        self.header.contains(": warning: ")
    }

    /// The diagnostic as printed: its header, then its hint line.
    pub fn text(&self) -> String {
        match &self.hint {
            Some(h) => format!("{}\n  hint: {h}", self.header),
            None => self.header.clone(),
        }
    }
}

/// The diagnostics of a `wsgate -c` run's stderr, in order. Lines that are
/// neither a diagnostic nor indented under one (the closing summary) end
/// the current diagnostic and are left out.
pub fn parse(stderr: &str) -> Vec<Reported> {
    let mut out: Vec<Reported> = Vec::new();
    let mut open = false;
    for line in stderr.lines() {
        if let Some(hint) = line.strip_prefix("  hint: ") {
            if let (true, Some(last)) = (open, out.last_mut()) {
                last.hint = Some(hint.to_owned());
            }
        } else if [": error: ", ": warning: ", ": note: "]
            .iter()
            .any(|s| line.contains(s))
        {
            out.push(Reported {
                header: line.to_owned(),
                hint: None,
            });
            open = true;
        } else {
            open = false;
        }
    }
    out
}
