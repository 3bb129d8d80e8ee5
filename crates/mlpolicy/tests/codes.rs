//! Every diagnostic code ([`Code`]) is documented in `docs/diagnostics.md` and every section
//! there is a code; every code is reported somewhere in the crates' sources; and every code has
//! a golden case (a directory under `tests/cases/diagnostics/` or `tests/cases/plan/`, or a test
//! in `tests/*.rs` that asserts it).

use std::collections::BTreeSet;
use std::path::Path;

use mlpolicy_lang::diagnostics::Code;

use crate::support::{root, tests_dir};

fn all() -> BTreeSet<&'static str> {
    Code::ALL.iter().map(|c| c.as_str()).collect()
}

/// Every `Code::E0000` the sources name, outside the enum's own file.
fn used_in(dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            used_in(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mlpolicy-lang/src/code.rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, _) in text.match_indices("Code::") {
                let code = &text[i + 6..(i + 11).min(text.len())];
                if code.len() == 5 && code[1..].bytes().all(|b| b.is_ascii_digit()) {
                    out.insert(code.to_owned());
                }
            }
        }
    }
}

#[test]
fn docs_and_the_enum_name_the_same_codes() {
    let docs = std::fs::read_to_string(root().join("docs/diagnostics.md")).unwrap();
    let documented: BTreeSet<&str> = docs.lines().filter_map(|l| l.strip_prefix("## ")).map(|l| &l[..5]).collect();
    let codes = all();
    let undocumented: Vec<_> = codes.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&codes).collect();
    assert!(undocumented.is_empty(), "codes without a section in docs/diagnostics.md: {undocumented:?}");
    assert!(unknown.is_empty(), "sections of docs/diagnostics.md that are no Code: {unknown:?}");
}

#[test]
fn every_code_is_reported_somewhere() {
    let mut used = BTreeSet::new();
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        used_in(&krate.unwrap().path().join("src"), &mut used);
    }
    let unused: Vec<_> = all().into_iter().filter(|c| !used.contains(*c)).collect();
    assert!(unused.is_empty(), "codes no source reports: {unused:?}");
}

#[test]
fn every_code_has_a_golden_case() {
    let cases: Vec<String> = ["cases/diagnostics", "cases/plan"]
        .iter()
        .flat_map(|d| std::fs::read_dir(tests_dir().join(d)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // Codes that need a live tenant or a real directory are exercised by named tests instead.
    let tests: String = std::fs::read_dir(tests_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let missing: Vec<&str> = all()
        .into_iter()
        .filter(|c| !cases.iter().any(|d| d.starts_with(c)) && !tests.contains(&format!("\"{c}\"")))
        .collect();
    assert!(missing.is_empty(), "codes without a golden case: {missing:?}");
}
