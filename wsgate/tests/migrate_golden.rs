//! `wsgate migrate` on small configurations in the style of HAProxy 1.5–2.x
//! tutorials (written for these tests, in wsgate/tests/migrate/): each
//! `NAME.cfg` has its expected output in `NAME.migrated` (`BLESS=1`
//! rewrites them). Every migrated file must pass `wsgate -c` without a
//! "removed" warning (refused lines aside), `haproxy -c` when it is
//! installed and nothing was left for a human, and migrating it again must
//! change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn wsgate(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(common::wsgate_bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/migrate");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    v.sort();
    v
}

#[test]
fn legacy_tutorial_configs_migrate_to_their_golden_output() {
    let bless = std::env::var_os("BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 3, "test configs in tests/migrate");
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, migrated, err) = wsgate(&["migrate".as_ref(), "-f".as_ref(), case.as_os_str()]);
        assert!(ok, "{name}: {err}");
        let golden = case.with_extension("migrated");
        if bless {
            std::fs::write(&golden, &migrated).unwrap();
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1)", golden.display()));
        assert_eq!(
            migrated,
            want,
            "{name}: output differs from {}",
            golden.display()
        );

        let dir = common::TempDir::new("migrate-golden");
        let new = dir.write(&name, &migrated);
        let (again_ok, again, _) = wsgate(&["migrate".as_ref(), "-f".as_ref(), new.as_os_str()]);
        assert!(again_ok);
        assert_eq!(again, migrated, "{name}: migrating twice changed the file");

        let left_for_a_human = migrated.contains("NOT rewritten");
        // The original is read as it is too (with warnings), unless a line
        // had to be left for a human.
        let (orig_ok, _, orig_err) = wsgate(&["-c".as_ref(), "-f".as_ref(), case.as_os_str()]);
        assert_eq!(
            orig_ok, !left_for_a_human,
            "{name}: wsgate -c on the original:\n{orig_err}"
        );
        let (check_ok, _, check_err) = wsgate(&["-c".as_ref(), "-f".as_ref(), new.as_os_str()]);
        if left_for_a_human {
            assert!(
                !check_ok,
                "{name}: a refused line must stay an error:\n{check_err}"
            );
        } else {
            assert!(
                check_ok,
                "{name}: wsgate -c refused the migrated file:\n{check_err}"
            );
            assert!(
                !check_err.contains("removed in HAProxy"),
                "{name}:\n{check_err}"
            );
            if let Some(verdict) = common::haproxy_check(&new) {
                verdict
                    .unwrap_or_else(|e| panic!("{name}: haproxy -c refused it:\n{e}\n{migrated}"));
            }
        }
    }
}
