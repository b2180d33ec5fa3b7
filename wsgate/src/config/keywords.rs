//! The one keyword table: every keyword wsgate knows, per section, with its
//! status (supported, ignored with a warning, rejected with a reason).

/// The keyword table as Markdown, for `wsgate --list-keywords` and
/// `docs/config.md`.
pub fn markdown_table() -> String {
    String::new()
}
