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

use super::model::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Information, not a problem (`wsgate -c` lists the certificates it
    /// loaded this way).
    Note,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn note(location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Note,
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        if self.location.line == 0 {
            // About a whole file (it could not be read).
            write!(f, "{}: {}: {}", self.location.file, sev, self.message)?;
        } else {
            write!(f, "{}: {}: {}", self.location, sev, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}
