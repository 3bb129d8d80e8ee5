//! Golden diagnostics: every directory under `tests/cases/diagnostics/` is a small
//! configuration named after the code it must produce (`E0101-unknown-reference`). Its
//! `mlpolicy validate` transcript is snapshotted; the named code must appear in it.

use crate::support::{mlpolicy, subdirs, tests_dir};

#[test]
fn every_diagnostic_case_renders_its_code() {
    let cases = tests_dir().join("cases/diagnostics");
    let mut count = 0;
    for dir in subdirs(&cases) {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let code = name.split('-').next().unwrap();
        let mut args = vec!["validate", "."];
        let extra = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
        args.extend(extra.split_whitespace());
        let run = mlpolicy(&dir, &args);
        assert!(
            run.stderr.contains(&format!("[{code}]"))
                || run.stderr.contains(&format!("{code}:"))
                || run.stderr.contains(code),
            "case {name} does not report {code}:\n{}",
            run.transcript()
        );
        assert!(!run.stderr.contains("panicked"), "case {name} panicked:\n{}", run.transcript());
        insta::with_settings!({ snapshot_path => tests_dir().join("snapshots/diagnostics"), prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name, run.transcript());
        });
        count += 1;
    }
    assert!(count > 0, "no cases found");
}
