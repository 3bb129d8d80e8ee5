//! Every diagnostic code used in `src/` is documented in `docs/diagnostics.md` and has a golden
//! case (a directory under `tests/cases/diagnostics/` or `tests/cases/plan/`, or a test in `tests/*.rs` that asserts it).

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::{root, tests_dir};

fn codes_in(dir: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            codes_in(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            let bytes = text.as_bytes();
            for (i, w) in bytes.windows(7).enumerate() {
                let is_code = w[0] == b'"'
                    && (w[1] == b'E' || w[1] == b'W')
                    && w[2..6].iter().all(u8::is_ascii_digit)
                    && w[6] == b'"';
                if is_code {
                    out.insert(text[i + 1..i + 6].to_owned());
                }
            }
        }
    }
}

fn used_codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    codes_in(&root().join("crates"), &mut codes);
    codes
}

#[test]
fn every_code_is_documented() {
    let docs = std::fs::read_to_string(root().join("docs/diagnostics.md")).unwrap();
    let missing: Vec<String> = used_codes().into_iter().filter(|c| !docs.contains(&format!("## {c}"))).collect();
    assert!(missing.is_empty(), "codes used in src/ but not documented in docs/diagnostics.md: {missing:?}");
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
    let missing: Vec<String> = used_codes()
        .into_iter()
        .filter(|c| !cases.iter().any(|d| d.starts_with(c.as_str())) && !tests.contains(&format!("\"{c}\"")))
        .collect();
    assert!(missing.is_empty(), "codes without a golden case: {missing:?}");
}
