//! Diagnostics: what `wsgate -c` prints and what a failed start reports.
//!
//! Every problem found in a configuration becomes one [`Diagnostic`] with a
//! file, line and column, a severity, a one-line message and an optional
//! hint, printed compiler-style:
//!
//! ```text
//! ws.cfg:10:1: error: backend 'wsbackend' is mode tcp but frontend 'ws' is mode http
//!   hint: add `mode http` to backend 'wsbackend' or to a `defaults` section
//! ```
//!
//! Passes collect all diagnostics rather than stopping at the first, as
//! HAProxy's `check_config_validity()` does.
//!
//! Each diagnostic also has a [`Kind`]: most are about the configuration
//! language, some about the machine the file is checked on (a certificate
//! that is not there, a host name that does not resolve). The latter print
//! `[environment]` after the severity, and `wsgate -c --syntax-only` skips
//! the checks that produce them, so a file can be validated on a laptop
//! before it reaches the server it was written for.

use super::model::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Information, not a problem (`wsgate -c` lists the certificates it
    /// loaded this way).
    Note,
    Warning,
    Error,
}

/// What a diagnostic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// The text itself: a keyword, an argument, a reference between sections.
    #[default]
    Language,
    /// The machine: a missing or unreadable file (certificate, CA,
    /// errorfile, crt-list, chroot directory), a host name that does not
    /// resolve. The same file may be fine where it is deployed.
    Environment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: Kind,
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            kind: Kind::Language,
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            kind: Kind::Language,
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn note(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Note,
            kind: Kind::Language,
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Marks this diagnostic as about the machine, not the language.
    pub fn environment(mut self) -> Self {
        self.kind = Kind::Environment;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn is_environment(&self) -> bool {
        self.kind == Kind::Environment
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        let kind = match self.kind {
            Kind::Language => "",
            Kind::Environment => "[environment] ",
        };
        if self.location.line == 0 {
            // About a whole file (it could not be read).
            write!(f, "{}: {sev}: {kind}{}", self.location.file, self.message)?;
        } else {
            write!(f, "{}: {sev}: {kind}{}", self.location, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
