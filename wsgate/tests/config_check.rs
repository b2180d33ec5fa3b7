//! Golden tests for configuration diagnostics: every `tests/config/*.cfg`
//! is checked with the real binary (`wsgate -c -f <file>`), and its stderr
//! and exit code are compared with `<name>.stderr` and the `# exit: N`
//! first line of the file. Error wording is user interface: review changes
//! to the `.stderr` files as such.
//!
//! Each case runs in a fresh directory holding a copy of the `.cfg` and a
//! real self-signed `websocketsite.pem` (the tutorial's certificate name),
//! so relative paths and file names in messages are the same everywhere.
//! The environment is fixed: `WSGATE_TEST_ADDR=127.0.0.1:8081`,
//! `WSGATE_TEST_PORT=8000`, `WSGATE_TEST_UNSET` unset.
//!
//! `BLESS=1 cargo test --test config_check` rewrites the expectations.

// A test harness: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("config")
}

fn write_certificate(dir: &Path) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = format!("{}{}", key.cert.pem(), key.signing_key.serialize_pem());
    std::fs::write(dir.join("websocketsite.pem"), pem).unwrap();
}

fn expected_exit(cfg: &str) -> i32 {
    cfg.lines()
        .next()
        .and_then(|l| l.strip_prefix("# exit: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the first line must be `# exit: N`"))
}

fn run_case(cfg_path: &Path, bless: bool) -> Result<(), String> {
    let name = cfg_path.file_name().unwrap().to_str().unwrap().to_owned();
    let text = std::fs::read_to_string(cfg_path).unwrap();
    let dir = std::env::temp_dir().join(format!("wsgate-golden-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&name), &text).unwrap();
    write_certificate(&dir);

    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["-c", "-f", &name])
        .current_dir(&dir)
        .env("WSGATE_TEST_ADDR", "127.0.0.1:8081")
        .env("WSGATE_TEST_PORT", "8000")
        .env_remove("WSGATE_TEST_UNSET")
        .env_remove("WSGATE_LOG")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let code = output.status.code().unwrap_or(-1);
    let expected_path = cfg_path.with_extension("stderr");
    if bless {
        std::fs::write(&expected_path, &stderr).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    let mut problems = Vec::new();
    if code != expected_exit(&text) {
        problems.push(format!(
            "exit code {code}, expected {}",
            expected_exit(&text)
        ));
    }
    if stderr != expected {
        problems.push(format!(
            "stderr differs.\n--- expected\n{expected}\n--- got\n{stderr}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("\n")))
    }
}

#[test]
fn golden_diagnostics() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case(c, bless).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The tutorial file itself, unchanged, passes with warnings only when its
/// certificate exists.
#[test]
fn shared_tutorial_example_passes() {
    let example = Path::new("/work/shared/examples/ws.cfg");
    let Ok(text) = std::fs::read_to_string(example) else {
        return; // Not on this machine: the golden copy covers it.
    };
    let dir = std::env::temp_dir().join(format!("wsgate-tutorial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ws.cfg"), text).unwrap();
    write_certificate(&dir);
    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["-c", "-f", "ws.cfg"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
}

/// A directory given to `-f` contributes its `*.cfg` files in lexical
/// order; a missing file is named.
#[test]
fn directories_and_missing_files() {
    let dir = std::env::temp_dir().join(format!("wsgate-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/20-backend.cfg"),
        "backend be\n    mode http\n    timeout connect 1s\n    timeout server 1s\n    timeout tunnel 1h\n    server s1 127.0.0.1:8080\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/10-frontend.cfg"),
        "frontend fe\n    mode http\n    timeout client 1s\n    bind :8000\n    default_backend be\n",
    )
    .unwrap();
    std::fs::write(dir.join("conf.d/notes.txt"), "this is not configuration\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["-c", "-f", "conf.d"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr, "Configuration file is valid\n");
    assert_eq!(output.status.code(), Some(0));

    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(["-c", "-f", "conf.d", "-f", "missing.cfg"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with("missing.cfg: error: cannot read configuration file:"),
        "{stderr}"
    );
}

/// `docs/config.md` is the keyword table, generated by the binary.
#[test]
fn docs_match_the_keyword_table() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .arg("--list-keywords")
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert_eq!(table, wsgate::config::keywords::markdown_table());
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&docs, &table).unwrap();
    }
    let current = std::fs::read_to_string(&docs).unwrap_or_default();
    assert!(
        current == table,
        "docs/config.md is out of date: regenerate it with `wsgate --list-keywords > docs/config.md` (or BLESS=1)"
    );
}
