//! `mlpolicy audit` end to end: the real binary against the in-process emulator, seeded from
//! `tests/cases/audit/<case>/emulator-seed.yaml` and brought to the configuration by `apply`
//! first. Also: SARIF output checked against the SARIF 2.1.0 JSON schema
//! (`tests/data/sarif-schema-2.1.0.json`), and GitHub Actions annotations.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{Run, assert_golden, copy_to_temp, tests_dir};

/// "Now" for every audit here: the seed's secrets expired 31 days before, or expire 10 days after.
const NOW: &str = "2025-06-01T00:00:00Z";

fn run_with(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    crate::support::mlpolicy_env(cwd, args, env)
}

/// A copy of the case, applied to its emulator tenant.
fn applied(case: &str) -> tempfile::TempDir {
    let tmp = copy_to_temp(&tests_dir().join("cases/audit").join(case));
    let run = run_with(tmp.path(), &["apply", ".", "--emulator", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "apply {case}:\n{}", run.transcript());
    tmp
}

fn audit(dir: &Path, format: &str) -> Run {
    run_with(dir, &["audit", ".", "--emulator", "--format", format], &[("MLPOLICY_NOW", NOW)])
}

fn snapshot(name: &str, text: &str) {
    // Groups made by `apply` get random object ids from the emulator.
    assert_golden("audit", name, text, &[(r"/groups/[0-9a-f-]{36}", "/groups/[group id]")]);
}

fn rule_counts(json: &Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for f in json["findings"].as_array().unwrap() {
        *counts.entry(f["rule"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

#[test]
fn audit_reports_each_live_problem_exactly_once() {
    let tmp = applied("findings");
    let run = audit(tmp.path(), "json");
    assert_eq!(run.code, 3, "a deny finding exits 3:\n{}", run.transcript());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let expected: BTreeMap<String, usize> = [
        ("audit/expired-secret", 1),
        ("audit/expiring-secret", 1),
        ("audit/orphaned-assignment", 1),
        ("baseline/no_standing_admin", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(rule_counts(&json), expected, "{}", run.stdout);
    assert_eq!(json["summary"]["deny"], 2);
    assert_eq!(json["summary"]["warn"], 2);
    let findings = json["findings"].as_array().unwrap();
    // The portal Owner is one finding that names the other rules it breaks.
    let owner = findings.iter().find(|f| f["rule"] == "baseline/no_standing_admin").unwrap();
    assert_eq!(owner["also"], serde_json::json!(["baseline/grants_to_groups", "audit/unexplained-access"]));
    assert!(owner["message"].as_str().unwrap().contains("Owner → mallory@contoso.com @ mlw-audit"));
    // The orphan sits on the workspace's storage account, an attached resource.
    let orphan = findings.iter().find(|f| f["rule"] == "audit/orphaned-assignment").unwrap();
    assert!(orphan["azure_id"].as_str().unwrap().contains("/storageAccounts/stmlaudit/"));
    assert_eq!(orphan["properties"]["principal_id"], "0bad0bad-0000-4000-8000-00000000dead");
    // The app without a role on the estate is not reported; secret text never is.
    assert!(!run.stdout.contains("reporting-app"), "{}", run.stdout);
    assert!(!run.stdout.contains("not-a-real-secret") && !run.stderr.contains("not-a-real-secret"));
    // The waived grant of the scoring app is not reported either.
    assert!(!run.stdout.contains("no_client_secrets"), "{}", run.stdout);
    snapshot("findings.json", &run.stdout);

    let text = audit(tmp.path(), "text");
    assert_eq!(text.code, 3, "{}", text.transcript());
    assert_eq!(text.stdout.matches("\ndeny[").count() + text.stdout.matches("\nwarn[").count() + 1, 4);
    snapshot("findings.txt", &text.transcript());
    // The same tenant gives the same bytes.
    assert_eq!(audit(tmp.path(), "text").stdout, text.stdout);
}

#[test]
fn a_compliant_tenant_has_no_findings_and_exits_0() {
    let tmp = applied("compliant");
    let run = audit(tmp.path(), "text");
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.starts_with("Audit: no findings ("), "{}", run.transcript());
    snapshot("compliant.txt", &run.transcript());
    let json: Value = serde_json::from_str(&audit(tmp.path(), "json").stdout).unwrap();
    assert_eq!(json["findings"], serde_json::json!([]));
    assert!(json["examined"]["role assignments"].as_u64().unwrap() >= 3);
}

#[test]
fn warnings_alone_exit_0() {
    let tmp = applied("findings");
    // Seen before its first secret expired and long before the portal grants: only warnings.
    let seed_state = tmp.path().join(".mlpolicy/emulator.yaml");
    let state = std::fs::read_to_string(&seed_state).unwrap();
    let owner_free: String = remove_assignment(&state, "8e3af657-a8ff-443c-a75c-2fe8c4bcb635");
    std::fs::write(&seed_state, owner_free).unwrap();
    let run = run_with(
        tmp.path(),
        &["audit", ".", "--emulator", "--expiring-within", "60d"],
        &[("MLPOLICY_NOW", "2025-04-15T00:00:00Z")],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("Audit: 0 denied, 3 warnings"), "{}", run.transcript());
    assert_eq!(run.stdout.matches("warn[audit/expiring-secret]").count(), 2, "{}", run.stdout);
}

/// The emulator state without the role assignments of one role definition GUID.
fn remove_assignment(state: &str, role_guid: &str) -> String {
    let mut tenant: serde_norway::Value = serde_norway::from_str(state).unwrap();
    let list = tenant.get_mut("role_assignments").and_then(serde_norway::Value::as_sequence_mut).unwrap();
    let before = list.len();
    list.retain(|a| !a["role_definition_id"].as_str().unwrap_or_default().ends_with(role_guid));
    assert_eq!(list.len(), before - 1, "one assignment of {role_guid}");
    serde_norway::to_string(&tenant).unwrap()
}

#[test]
fn an_invalid_now_is_e0951() {
    let tmp = copy_to_temp(&tests_dir().join("cases/audit/compliant"));
    let run = run_with(tmp.path(), &["audit", ".", "--emulator"], &[("MLPOLICY_NOW", "yesterday")]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0951") && run.stderr.contains("RFC 3339"), "{}", run.transcript());
    let run = run_with(tmp.path(), &["audit", ".", "--emulator", "--expiring-within", "soon"], &[]);
    assert_eq!(run.code, 1, "a bad duration is a usage error:\n{}", run.transcript());
}

fn sarif_validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(tests_dir().join("data/sarif-schema-2.1.0.json")).unwrap())
            .unwrap();
    jsonschema::draft4::options().should_validate_formats(true).build(&schema).expect("the SARIF schema compiles")
}

fn assert_valid_sarif(validator: &jsonschema::Validator, text: &str) -> Value {
    let log: Value = serde_json::from_str(text).unwrap();
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "SARIF does not validate:\n{}\n{text}", errors.join("\n"));
    log
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let validator = sarif_validator();
    // The schema is not a pushover: a log without `runs` or with a bad level fails.
    assert!(!validator.is_valid(&serde_json::json!({"version": "2.1.0"})));
    assert!(!validator.is_valid(&serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "fatal"}]}]})));

    let tmp = applied("findings");
    let run = audit(tmp.path(), "sarif");
    assert_eq!(run.code, 3, "{}", run.transcript());
    let log = assert_valid_sarif(&validator, &run.stdout);
    let sarif_run = &log["runs"][0];
    let results = sarif_run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let rules = sarif_run["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results {
        let rule = &rules[usize::try_from(r["ruleIndex"].as_u64().unwrap()).unwrap()];
        assert_eq!(rule["id"], r["ruleId"]);
        assert!(!rule["help"]["text"].as_str().unwrap().is_empty());
        // Live-only findings: a logical location named by the Azure id.
        let logical = &r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"];
        assert_eq!(logical, &r["properties"]["azureId"]);
    }
    snapshot("findings.sarif", &run.stdout);

    // validate --format sarif: findings declared in files have file, line and column.
    let case = tests_dir().join("cases/policies/baseline-no_standing_admin-fail");
    let run = run_with(&case, &["validate", ".", "--format", "sarif"], &[]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let log = assert_valid_sarif(&validator, &run.stdout);
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "baseline/no_standing_admin");
    assert_eq!(result["level"], "error");
    let physical = &result["locations"][0]["physicalLocation"];
    assert_eq!(physical["artifactLocation"]["uri"], "main.mlp");
    assert_eq!(physical["artifactLocation"]["uriBaseId"], "CONFIGDIR");
    assert!(physical["region"]["startLine"].as_u64().unwrap() > 1);
    assert!(physical["region"]["startColumn"].as_u64().unwrap() >= 1);
    snapshot("validate.sarif", &run.stdout);

    // A configuration with errors other than policies: each diagnostic is a result under its code.
    let run = run_with(
        &tests_dir().join("cases/diagnostics/E0101-unknown-reference"),
        &["validate", ".", "--format", "sarif"],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    let log = assert_valid_sarif(&validator, &run.stdout);
    assert!(log["runs"][0]["results"].as_array().unwrap().iter().any(|r| r["ruleId"] == "E0101"), "{}", run.stdout);
}

#[test]
fn validate_json_is_versioned() {
    let case = tests_dir().join("cases/policies/baseline-grants_to_groups-fail");
    let run = run_with(&case, &["validate", ".", "--format", "json"], &[]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["command"], "validate");
    assert_eq!(json["findings"][0]["rule"], "baseline/grants_to_groups");
    assert_eq!(json["findings"][0]["location"]["file"], "main.mlp");
    let pass = tests_dir().join("cases/policies/baseline-grants_to_groups-pass");
    let run = run_with(&pass, &["validate", ".", "--format", "json"], &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["findings"], serde_json::json!([]));
}

/// The workflow-command lines of a run's stderr.
fn annotations(run: &Run) -> String {
    let mut out = String::new();
    for line in run.stderr.lines().filter(|l| l.starts_with("::")) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn github_actions_get_annotations() {
    let gha = [("GITHUB_ACTIONS", "true")];
    let policies = tests_dir().join("cases/policies");
    let run = run_with(&policies, &["validate", "baseline-no_standing_admin-fail"], &gha);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let lines = annotations(&run);
    assert!(
        lines.starts_with("::error file=baseline-no_standing_admin-fail/main.mlp,line="),
        "annotations name the file from where mlpolicy ran:\n{lines}"
    );
    assert!(lines.contains(",title=mlpolicy baseline/no_standing_admin::"), "{lines}");
    snapshot("annotations-validate.txt", &lines);
    let warn = run_with(&policies.join("baseline-no_client_secrets-fail"), &["validate", "."], &gha);
    assert!(annotations(&warn).starts_with("::warning file=main.mlp,line="), "{}", warn.transcript());
    // An absolute directory inside the workspace is named from the workspace root (here: this
    // crate's folder, the parent of `tests/`).
    let root_dir = tests_dir().parent().unwrap().to_path_buf();
    let absolute = policies.join("baseline-no_standing_admin-fail");
    let run = run_with(
        &policies,
        &["validate", absolute.to_str().unwrap()],
        &[gha[0], ("GITHUB_WORKSPACE", root_dir.to_str().unwrap())],
    );
    assert!(
        annotations(&run)
            .starts_with("::error file=tests/cases/policies/baseline-no_standing_admin-fail/main.mlp,line="),
        "{}",
        run.transcript()
    );
    // Outside GitHub Actions: none.
    let quiet = run_with(&policies, &["validate", "baseline-no_standing_admin-fail"], &[]);
    assert_eq!(annotations(&quiet), "");

    let tmp = applied("findings");
    let run = run_with(tmp.path(), &["audit", ".", "--emulator"], &[("MLPOLICY_NOW", NOW), gha[0]]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let lines = annotations(&run);
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert_eq!(lines.matches("::error ").count(), 2, "{lines}");
    // Escaped: the messages' newlines become %0A, no raw line breaks inside a command.
    assert!(lines.contains("%0Ahelp: "), "{lines}");
    snapshot("annotations-audit.txt", &lines);
}

#[test]
fn a_live_change_to_a_managed_object_points_at_its_declaration() {
    let tmp = applied("compliant");
    // Someone removed the group's owners in the portal: live state breaks `group_owners`.
    let state_file = tmp.path().join(".mlpolicy/emulator.yaml");
    let mut tenant: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let groups = tenant.get_mut("groups").and_then(serde_norway::Value::as_sequence_mut).unwrap();
    let group = groups.iter_mut().find(|g| g["display_name"].as_str() == Some("ml-audit-data-scientists")).unwrap();
    group["owners"] = serde_norway::Value::Sequence(Vec::new());
    std::fs::write(&state_file, serde_norway::to_string(&tenant).unwrap()).unwrap();

    let run = run_with(tmp.path(), &["audit", ".", "--emulator", "--format", "json"], &[("MLPOLICY_NOW", NOW)]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["findings"].as_array().unwrap().len(), 1, "{}", run.stdout);
    let f = &json["findings"][0];
    assert_eq!(f["rule"], "baseline/group_owners");
    assert_eq!(f["subject"], "group.data_scientists");
    assert_eq!(f["location"]["file"], "main.mlp");
    let line = f["location"]["line"].as_u64().unwrap();
    let source = std::fs::read_to_string(tmp.path().join("main.mlp")).unwrap();
    assert!(source.lines().nth(usize::try_from(line).unwrap() - 1).unwrap().contains("group data_scientists"));

    let run = run_with(tmp.path(), &["audit", ".", "--emulator"], &[("MLPOLICY_NOW", NOW), ("GITHUB_ACTIONS", "true")]);
    let gha: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(gha.len(), 1, "{gha:?}");
    assert!(gha[0].starts_with(&format!("::error file=main.mlp,line={line},col=")), "{}", gha[0]);
    snapshot("annotations-audit-declared.txt", gha[0]);
}
