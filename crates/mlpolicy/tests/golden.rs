//! Golden diagnostics: every directory under `tests/cases/diagnostics/` is a small
//! configuration named after the code it must produce (`E0101-unknown-reference`). Its
//! `mlpolicy validate` transcript is snapshotted; the named code must appear in it.

use crate::support::{assert_golden, mlpolicy};

#[test]
fn every_diagnostic_case_renders_its_code() {
    let mut count = 0;
    insta::glob!("cases/diagnostics/*", |dir| {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let code = name.split('-').next().unwrap();
        let mut args = vec!["validate", "."];
        let extra = std::fs::read_to_string(dir.join("args")).unwrap_or_default();
        args.extend(extra.split_whitespace());
        let run = mlpolicy(dir, &args);
        assert!(
            run.stderr.contains(&format!("[{code}]"))
                || run.stderr.contains(&format!("{code}:"))
                || run.stderr.contains(code),
            "case {name} does not report {code}:\n{}",
            run.transcript()
        );
        assert!(!run.stderr.contains("panicked"), "case {name} panicked:\n{}", run.transcript());
        assert_golden("diagnostics", &name, &run.transcript(), &[]);
        count += 1;
    });
    assert!(count > 0, "no cases found");
}
