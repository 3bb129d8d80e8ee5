//! The JSON Schemas shipped under docs/schema/ are exactly what the code generates from the
//! types it serialises. `UPDATE_SCHEMAS=1 cargo test -p mlpolicy --test main schemas` rewrites
//! them after a change of the JSON output (review the diff: a breaking change bumps the format
//! version). Every JSON output of the test suite is validated against them (support.rs).

use crate::support::root;

#[test]
fn shipped_schemas_are_the_generated_ones() {
    let dir = root().join("docs/schema");
    let generated = mlpolicy::render::schemas();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for (name, text) in &generated {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(format!("docs/schema/{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "{} differ from what the code generates; run `UPDATE_SCHEMAS=1 cargo test -p mlpolicy --test main schemas` and review the diff",
        stale.join(", ")
    );
    let mut shipped: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    shipped.sort();
    let mut expected: Vec<String> = generated.iter().map(|(n, _)| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(shipped, expected, "docs/schema/ holds a file the code does not generate");
}

/// The validation of the suite's outputs can fail: a document that breaks the schema is refused.
#[test]
#[should_panic(expected = "does not follow docs/schema/plan.schema.json")]
fn an_output_that_breaks_the_schema_fails_the_test() {
    crate::support::assert_valid_json("plan.schema.json", r#"{"format_version": 1, "summary": {}}"#);
}
