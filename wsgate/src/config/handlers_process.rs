//! Process keywords of `global` that wsgate reads only to report on the
//! machine: `chroot`.
//!
//! wsgate does not chroot (the service manager confines it), but a missing
//! chroot directory is where HAProxy would fail to start, which is worth
//! knowing on the machine the file is checked on: a warning of kind
//! environment (skipped by `--syntax-only`).

use super::keywords::NO_PRIVDROP;
use super::parser::{Cx, GlobalDraft};

/// `chroot <dir>`: ignored, with the reason; a missing directory is noted.
pub fn chroot(_g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(dir) = cx.one_arg("chroot <dir>") else {
        return;
    };
    let kw = cx.kw;
    cx.warn(kw, format!("'chroot' is ignored: {NO_PRIVDROP}"));
    if !cx.syntax_only && !std::path::Path::new(&dir.text).is_dir() {
        let d = super::diag::Diagnostic::warning(
            cx.loc(dir),
            format!(
                "chroot directory '{}' does not exist here: HAProxy would not start (wsgate does not chroot)",
                dir.text
            ),
        )
        .environment();
        cx.diags.push(d);
    }
}
