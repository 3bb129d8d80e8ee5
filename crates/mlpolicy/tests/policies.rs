//! Golden cases for every rule of the built-in packs: `tests/cases/policies/<pack>-<rule>-pass`
//! must validate with exit 0 and no finding of that rule; `...-fail` must exit 3 (a `deny`) or
//! report the warning, naming the rule. Transcripts are snapshotted.

use crate::support::{assert_golden, mlpolicy};

#[test]
fn every_pack_rule_passes_and_fails_as_documented() {
    let mut count = 0;
    insta::glob!("cases/policies/*", |dir| {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let run = mlpolicy(dir, &["validate", "."]);
        let rule = name.trim_end_matches("-pass").trim_end_matches("-fail").split_once('-').unwrap().1.to_owned();
        let warns = rule == "no_client_secrets";
        if name.ends_with("-pass") {
            assert_eq!(run.code, 0, "{name}:\n{}", run.transcript());
            assert!(!run.stderr.contains(&format!("`{rule}`")), "{name}:\n{}", run.transcript());
        } else if rule == "in-loop" {
            assert_eq!(run.code, 3, "{name}:\n{}", run.transcript());
            assert!(run.stderr.contains("group.ds[\"risk\"]"), "{name}:\n{}", run.transcript());
            assert!(!run.stderr.contains("group.ds[\"fraud\"] on"), "waived instance reported:\n{}", run.transcript());
        } else {
            assert_eq!(run.code, if warns { 0 } else { 3 }, "{name}:\n{}", run.transcript());
            assert!(run.stderr.contains(&format!("`{rule}`")), "{name} does not name {rule}:\n{}", run.transcript());
        }
        assert_golden("policies", &name, &run.transcript(), &[]);
        count += 1;
    });
    assert!(count >= 20, "only {count} policy cases");
}
