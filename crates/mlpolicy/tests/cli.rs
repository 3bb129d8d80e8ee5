//! Command behaviour: exit codes, `fmt`, help texts, and the file-system diagnostics that need a
//! real directory ("E0001" … "E0006"), snapshotted with temporary paths filtered.

use std::path::Path;

use crate::support::{Run, assert_golden, copy_to_temp, mlpolicy, root, tests_dir};

fn snapshot(name: &str, run: &Run, tmp: &Path) {
    let text = run.transcript().replace(&tmp.display().to_string(), "[TMP]");
    assert_golden("cli", name, &text, &[]);
}

const VALID: &str = "group ds {\n  name = \"ml-ds\"\n}\n";

#[test]
fn missing_directory_is_e0001() {
    let tmp = tempfile::tempdir().unwrap();
    let run = mlpolicy(tmp.path(), &["validate", "does-not-exist"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0001"), "{}", run.transcript());
    snapshot("E0001-missing-directory", &run, tmp.path());
}

#[test]
fn directory_without_mlp_is_e0002() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("sub/a.mlp"), VALID).unwrap();
    let run = mlpolicy(tmp.path(), &["validate", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0002"), "{}", run.transcript());
    snapshot("E0002-no-mlp-files", &run, tmp.path());
}

#[test]
fn invalid_utf8_and_non_files_are_e0003() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.mlp"), b"group ds {\n  name = \"\xff\xfe\"\n}\n").unwrap();
    std::fs::create_dir(tmp.path().join("b.mlp")).unwrap();
    std::fs::write(tmp.path().join("c.mlp"), VALID).unwrap();
    let run = mlpolicy(tmp.path(), &["validate", "."]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.matches("E0003").count(), 2, "{}", run.transcript());
    snapshot("E0003-unreadable", &run, tmp.path());
}

#[cfg(unix)]
#[test]
fn symlink_out_of_the_directory_is_e0004() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.mlp"), VALID).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.mlp"), tmp.path().join("a.mlp")).unwrap();
    let run = mlpolicy(tmp.path(), &["validate", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0004"), "{}", run.transcript());
    snapshot("E0004-symlink-outside", &run, tmp.path());
}

#[test]
fn huge_file_is_e0005() {
    let tmp = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(tmp.path().join("big.mlp")).unwrap();
    f.set_len(mlpolicy_lang::source::MAX_FILE_BYTES + 1).unwrap();
    let run = mlpolicy(tmp.path(), &["validate", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0005"), "{}", run.transcript());
    snapshot("E0005-huge-file", &run, tmp.path());
}

#[test]
fn fmt_write_failure_is_e0006() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.mlp"), "group   ds {\nname=\"x\"\n}\n").unwrap();
    // The temporary file fmt writes through is taken by a directory: the write fails.
    std::fs::create_dir(tmp.path().join("a.mlp.fmt-tmp")).unwrap();
    let run = mlpolicy(tmp.path(), &["fmt", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("E0006"), "{}", run.transcript());
}

#[test]
fn fmt_check_lists_files_and_fmt_rewrites_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.mlp"), "group   ds {\nname=\"x\" # keep me\n}\n").unwrap();
    std::fs::write(tmp.path().join("b.mlp"), VALID).unwrap();
    let check = mlpolicy(tmp.path(), &["fmt", ".", "--check"]);
    assert_eq!(check.code, 1, "{}", check.transcript());
    assert_eq!(check.stdout, "a.mlp\n");
    let before = std::fs::read_to_string(tmp.path().join("a.mlp")).unwrap();
    assert!(before.contains("group   ds"), "--check changed nothing");
    let write = mlpolicy(tmp.path(), &["fmt", "."]);
    assert_eq!(write.code, 0, "{}", write.transcript());
    let after = std::fs::read_to_string(tmp.path().join("a.mlp")).unwrap();
    assert!(after.contains("# keep me"), "{after}");
    assert_eq!(mlpolicy(tmp.path(), &["fmt", ".", "--check"]).code, 0);
}

#[test]
fn fmt_is_idempotent_on_every_mlp_in_the_repository() {
    let mut files = Vec::new();
    collect_mlp(&root(), &mut files);
    assert!(files.len() > 5, "found {} .mlp files", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let (ast, diags) = mlpolicy_lang::syntax::parse(mlpolicy_lang::source::FileId(0), &text);
        if diags.has_errors() {
            continue;
        }
        let once = mlpolicy_lang::fmt::format(&ast, &text);
        let (ast2, diags2) = mlpolicy_lang::syntax::parse(mlpolicy_lang::source::FileId(0), &once);
        assert!(!diags2.has_errors(), "fmt output of {} does not parse:\n{once}", f.display());
        let twice = mlpolicy_lang::fmt::format(&ast2, &once);
        assert_eq!(once, twice, "fmt is not idempotent on {}", f.display());
    }
}

fn collect_mlp(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() && !name.starts_with('.') && name != "target" {
            collect_mlp(&p, out);
        } else if p.extension().is_some_and(|x| x == "mlp") {
            out.push(p);
        }
    }
}

#[test]
fn graph_of_a_cycle_is_an_error() {
    let tmp = copy_to_temp(&tests_dir().join("cases/diagnostics/E0301-group-cycle"));
    let run = mlpolicy(tmp.path(), &["graph", "."]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("E0301"));
}

#[test]
fn every_command_help_has_an_example() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in ["validate", "fmt", "graph", "emulator", "lsp"] {
        let run = mlpolicy(tmp.path(), &[cmd, "--help"]);
        assert_eq!(run.code, 0, "{cmd}");
        assert!(run.stdout.contains("Example"), "{cmd} --help:\n{}", run.stdout);
    }
}

#[test]
fn bad_flags_exit_1_with_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let run = mlpolicy(tmp.path(), &["validate", "--no-such-flag"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("--no-such-flag"));
}

const APPLY_SUB: &str = "6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60";

fn apply_config(dir: &Path, seed: &str) {
    std::fs::write(
        dir.join("mlpolicy.yaml"),
        format!("tenant: 3f6b2d1e-8c4a-4e71-9b0d-5a2c7e9f1b34\nsubscriptions:\n  main: {APPLY_SUB}\nowner: clitest\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("main.mlp"),
        format!(
            "resource_group ml {{\n  subscription = sub.main\n  name = \"rg-cli\"\n  location = \"westeurope\"\n}}\n\n\
             workspace w {{\n  resource_group = resource_group.ml\n  name = \"mlw-cli\"\n  \
             storage_account = \"/subscriptions/{APPLY_SUB}/resourceGroups/rg-cli/providers/Microsoft.Storage/storageAccounts/stcli\"\n  \
             key_vault = \"/subscriptions/{APPLY_SUB}/resourceGroups/rg-cli/providers/Microsoft.KeyVault/vaults/kv-cli\"\n}}\n\n\
             group ds {{\n  name = \"ml-cli-ds\"\n  members = [user(\"alice@contoso.com\")]\n  owners = [user(\"alice@contoso.com\")]\n}}\n\n\
             identity ci {{\n  resource_group = resource_group.ml\n  name = \"id-cli\"\n}}\n\n\
             grant \"AzureML Data Scientist\" to group.ds on workspace.w\n\
             grant \"Reader\" to identity.ci on resource_group.ml\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("emulator-seed.yaml"), seed).unwrap();
}

#[test]
fn apply_failure_is_e0701_and_skips_only_dependents() {
    let tmp = tempfile::tempdir().unwrap();
    // A soft-deleted workspace holds the name: creating it fails with 409.
    let seed = format!(
        "users:\n  - user_principal_name: alice@contoso.com\nworkspaces:\n  - subscription: {APPLY_SUB}\n    \
         resource_group: rg-cli\n    name: mlw-cli\n    location: westeurope\n    soft_deleted: true\n"
    );
    apply_config(tmp.path(), &seed);
    let run = mlpolicy(tmp.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("E0701") && run.stderr.contains("workspace.w failed: HTTP 409"),
        "{}",
        run.transcript()
    );
    assert!(run.stdout.contains("Skipped: depends on workspace.w, which failed"), "{}", run.transcript());
    assert!(run.stdout.contains("group.ds: Creation complete"), "{}", run.transcript());
    assert!(run.stdout.contains("identity.ci: Creation complete"), "{}", run.transcript());
    assert!(run.stdout.contains("Apply failed: 1 failed, 1 skipped; 4 added"), "{}", run.transcript());
}

#[test]
fn unwritable_audit_log_is_e0705_and_nothing_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    apply_config(tmp.path(), "users:\n  - user_principal_name: alice@contoso.com\n");
    let run =
        mlpolicy(tmp.path(), &["apply", ".", "--emulator", "--auto-approve", "--audit-log", "no/such/dir/a.jsonl"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0705"), "{}", run.transcript());
    assert!(!run.stdout.contains("Creating..."), "{}", run.transcript());
}

#[test]
fn show_refuses_a_file_that_is_not_a_plan_e0704() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("plan.json"), "{\"integrity\": \"00\", \"content\": {}}").unwrap();
    let run = mlpolicy(tmp.path(), &["show", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0704"), "{}", run.transcript());
    let run = mlpolicy(tmp.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0704"), "{}", run.transcript());
}

#[test]
fn plan_without_a_tenant_is_e0601() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("main.mlp"), VALID).unwrap();
    let run = mlpolicy(tmp.path(), &["plan", "."]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0601"), "{}", run.transcript());
    assert!(run.stderr.contains("--emulator"), "the help suggests the emulator:\n{}", run.transcript());
}

#[test]
fn unwritable_plan_file_is_e0602() {
    let tmp = crate::plans::prepare(&tests_dir().join("cases/plan/empty-tenant"));
    let run = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--out", "no/such/dir/plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0602"), "{}", run.transcript());
}

/// `-v` logs every Azure request on stderr — API, method, path, status, duration and Azure's
/// request id — and never a token, an `Authorization` header or a request body.
#[test]
fn verbose_logs_each_request_without_secrets() {
    let tmp = copy_to_temp(&root().join("examples/quickstart"));
    for args in [&["plan", ".", "--emulator", "-v"][..], &["apply", ".", "--emulator", "--auto-approve", "-v"]] {
        let run = mlpolicy(tmp.path(), args);
        assert_eq!(run.code, 0, "{}", run.transcript());
        let requests: Vec<&str> = run.stderr.lines().filter(|l| l.contains(" -> ")).collect();
        assert!(requests.len() >= 5, "{args:?} logs each request:\n{}", run.stderr);
        for line in &requests {
            let shape = regex_lite_line(line);
            assert!(shape, "{args:?}: not `mlpolicy: API METHOD /path -> STATUS in Nms (request id ID)`: {line}");
        }
        assert!(
            requests.iter().any(|l| l.starts_with("mlpolicy: ARM GET /subscriptions/")),
            "{args:?}:\n{}",
            run.stderr
        );
        if args[0] == "apply" {
            assert!(requests.iter().any(|l| l.contains(" PUT ")), "writes are logged too:\n{}", run.stderr);
        }
        assert!(
            !run.stderr.contains("replace the secret"),
            "no advice about a secret the reader has not got:\n{}",
            run.stderr
        );
        for secret in ["Bearer", "eyJ", "authorization:", "Authorization:", "client_secret", "\"properties\""] {
            assert!(!run.stderr.contains(secret), "{args:?} leaks `{secret}`:\n{}", run.stderr);
        }
    }
}

/// `mlpolicy: ARM|Microsoft Graph METHOD /path[?query] -> STATUS in Nms (request id ID)`.
fn regex_lite_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("mlpolicy: ") else { return false };
    let Some(rest) = rest.strip_prefix("ARM ").or_else(|| rest.strip_prefix("Microsoft Graph ")) else {
        return false;
    };
    let Some((method, rest)) = rest.split_once(' ') else { return false };
    let Some((path, rest)) = rest.split_once(" -> ") else { return false };
    let Some((status, rest)) = rest.split_once(" in ") else { return false };
    let Some((ms, id)) = rest.split_once("ms (request id ") else { return false };
    ["GET", "PUT", "PATCH", "POST", "DELETE"].contains(&method)
        && path.starts_with('/')
        && status.len() == 3
        && status.bytes().all(|b| b.is_ascii_digit())
        && ms.bytes().all(|b| b.is_ascii_digit())
        && id.ends_with(')')
}

/// Under `--emulator`, a user the configuration names that the emulator lacks is E0502 with
/// help naming the seed file, its path and the entry to write; a seed edited after the state
/// exists is merged into it on the next run, with a notice saying how to start over — once.
#[test]
fn emulator_users_come_from_the_seed_even_when_edited_later() {
    let tmp = copy_to_temp(&root().join("examples/quickstart"));
    let first = mlpolicy(tmp.path(), &["plan", ".", "--emulator"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let config = std::fs::read_to_string(tmp.path().join("main.mlp")).unwrap();
    let config =
        config.replace("user(\"bob@contoso.com\")]", "user(\"bob@contoso.com\"), user(\"carol@contoso.com\")]");
    std::fs::write(tmp.path().join("main.mlp"), config).unwrap();

    let missing = mlpolicy(tmp.path(), &["plan", ".", "--emulator"]);
    assert_eq!(missing.code, 1, "{}", missing.transcript());
    assert!(missing.stderr.contains("E0502"), "{}", missing.transcript());
    let squeezed: String = missing.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squeezed.contains("# ./emulator-seed.yaml users: - user_principal_name: carol@contoso.com"),
        "names the seed file and the entry:\n{}",
        missing.stderr
    );
    assert!(squeezed.contains("users: - user_principal_name: carol@contoso.com"), "{}", missing.stderr);
    assert!(squeezed.contains("State and seed files"), "points at the format:\n{}", missing.stderr);

    // The seed is edited after the state exists (and is newer than it).
    let seed = tmp.path().join("emulator-seed.yaml");
    let mut text = std::fs::read_to_string(&seed).unwrap();
    text.push_str("  - user_principal_name: carol@contoso.com\n");
    std::fs::write(&seed, text).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options().write(true).open(&seed).unwrap().set_modified(later).unwrap();
    let merged = mlpolicy(tmp.path(), &["plan", ".", "--emulator"]);
    assert_eq!(merged.code, 0, "{}", merged.transcript());
    assert!(merged.stderr.contains("changed after the emulator's state"), "{}", merged.transcript());
    assert!(merged.stderr.contains("added user carol@contoso.com"), "{}", merged.transcript());
    assert!(merged.stderr.contains("to start over from the seed"), "{}", merged.transcript());
    assert!(merged.stdout.contains("carol@contoso.com"), "{}", merged.stdout);

    // Once merged, the state is the newer file again: no notice (a clock in the future aside).
    std::fs::File::options()
        .write(true)
        .open(&seed)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
        .unwrap();
    let again = mlpolicy(tmp.path(), &["plan", ".", "--emulator"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(!again.stderr.contains("changed after"), "{}", again.transcript());
}
