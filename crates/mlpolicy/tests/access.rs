//! `mlpolicy access`: golden answers for a user through two levels of nested groups, an
//! identity and a scope — as the configuration would make them, and as the emulator's tenant has
//! them after the configuration was applied (with hand-made access and a group cycle seeded).

use std::path::{Path, PathBuf};

use crate::support::{copy_to_temp, mlpolicy, tests_dir};

fn estate() -> PathBuf {
    tests_dir().join("cases/access/estate")
}

fn answer(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["access"];
    all.extend_from_slice(args);
    mlpolicy(dir, &all).transcript()
}

#[test]
fn from_the_configuration() {
    let dir = estate();
    insta::assert_snapshot!("config-user-nested", answer(&dir, &["alice@contoso.com", "."]));
    insta::assert_snapshot!("config-identity", answer(&dir, &["identity.trainer", "."]));
    insta::assert_snapshot!("config-scope", answer(&dir, &["--scope", "workspace.fraud", "."]));
    insta::assert_snapshot!(
        "config-scope-json",
        answer(&dir, &["--scope", "workspace.fraud", ".", "--format", "json"])
    );
    insta::assert_snapshot!(
        "config-user-at-scope",
        answer(&dir, &["bob@contoso.com", ".", "--scope", "resource_group.ml"])
    );
}

#[test]
fn unknown_principal_and_scope_are_errors() {
    let dir = estate();
    let run = mlpolicy(&dir, &["access", "group.leds", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0901") && run.stderr.contains("did you mean `group.leads`"), "{}", run.stderr);
    let run = mlpolicy(&dir, &["access", "--scope", "workspace.frad", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0902") && run.stderr.contains("did you mean `workspace.fraud`"), "{}", run.stderr);
    let run = mlpolicy(&dir, &["access", "."]);
    assert_eq!(run.code, 1, "a directory alone is taken as a principal that nothing names");
    assert!(run.stderr.contains("no principal `.` holds or grants access here"), "{}", run.stderr);
}

#[test]
fn from_the_tenant() {
    let tmp = copy_to_temp(&estate());
    let dir = tmp.path();
    let applied = mlpolicy(dir, &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());
    let live = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--live", "--emulator"]);
        answer(dir, &all)
    };
    insta::assert_snapshot!("live-user-nested", live(&["alice@contoso.com", "."]));
    insta::assert_snapshot!("live-identity", live(&["identity.trainer", "."]));
    // Everyone at the workspace: the managed grants, a hand-made nested group on the
    // subscription, a portal Owner on the resource group, and a group cycle that must end.
    insta::assert_snapshot!("live-scope", live(&["--scope", "workspace.fraud", "."]));
    // JSON of each query kind, live (each is checked against docs/schema/access.schema.json by
    // the run helper): a principal, a principal narrowed to a scope, everyone at a scope.
    for args in [
        &["alice@contoso.com", "."][..],
        &["bob@contoso.com", ".", "--scope", "resource_group.ml"],
        &["--scope", "workspace.fraud", "."],
    ] {
        let mut all = vec!["access"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--live", "--emulator", "--format", "json"]);
        let run = mlpolicy(dir, &all);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v["source"], "live");
        assert!(!v["entries"].as_array().unwrap().is_empty(), "{}", run.stdout);
    }
    let unknown = mlpolicy(dir, &["access", "nobody@contoso.com", ".", "--live", "--emulator"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("E0901"), "{}", unknown.stderr);
}
