//! The configuration lexer, `.if` blocks, parser and checks, on arbitrary
//! bytes (as `wsgate -c --syntax-only` reads a file).
//!
//! Properties: no panic; every error points at a line of the file (1 to
//! its last line, in this file), since an error a user cannot find is
//! not much better than a crash; and a configuration comes out exactly
//! when there is no error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::fuzzing::{load_config, Severity, CONFIG_NAME};

fuzz_target!(|data: &[u8]| {
    let loaded = load_config(data);
    let lines = String::from_utf8_lossy(data).split('\n').count();
    let mut errors = 0;
    for d in &loaded.diagnostics {
        if d.severity != Severity::Error {
            continue;
        }
        errors += 1;
        assert_eq!(&*d.location.file, CONFIG_NAME, "{d:?}");
        let line = usize::try_from(d.location.line).unwrap_or(usize::MAX);
        assert!((1..=lines).contains(&line), "{lines} lines: {d:?}");
    }
    assert_eq!(loaded.config.is_some(), errors == 0);
});
