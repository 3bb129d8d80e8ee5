//! Golden plans through the emulator over HTTP: every directory under `tests/cases/plan/` holds
//! `config/` (the configuration planned), optionally `before/` (applied first, as the tenant's
//! earlier state), `emulator-seed.yaml` (the tenant's people and hand-made access) and `args`
//! (extra flags for `plan`). The text, markdown and JSON plans are snapshotted with the exit code.
//! Cases named after a code must report it.

use std::fmt::Write as _;
use std::path::Path;

use crate::support::{Run, assert_golden, mlpolicy, root, tests_dir};

fn copy_files(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Removes the configuration files of `dir`, keeping the emulator's state.
fn clear_config(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "mlp") || p.file_name().is_some_and(|n| n == "mlpolicy.yaml") {
            std::fs::remove_file(p).unwrap();
        }
    }
}

/// Object ids the emulator mints at random are replaced; ids written in the case stay.
fn stable(text: &str, case: &Path) -> String {
    let mut known = String::new();
    for sub in ["config", "before", "."] {
        if let Ok(rd) = std::fs::read_dir(case.join(sub)) {
            for e in rd {
                let p = e.unwrap().path();
                if p.is_file() {
                    known.push_str(&std::fs::read_to_string(p).unwrap_or_default());
                }
            }
        }
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let candidate = text.get(i..i + 36);
        let is_uuid = candidate.is_some_and(|c| {
            c.bytes()
                .enumerate()
                .all(|(j, b)| if [8, 13, 18, 23].contains(&j) { b == b'-' } else { b.is_ascii_hexdigit() })
        }) && (i == 0 || !bytes[i - 1].is_ascii_hexdigit());
        if is_uuid && !known.to_lowercase().contains(&candidate.unwrap().to_lowercase()) {
            out.push_str("[ID]");
            i += 36;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Prepares a temporary directory holding the case's tenant (after `before/`) and `config/`.
pub fn prepare(case: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    if case.join("emulator-seed.yaml").exists() {
        std::fs::copy(case.join("emulator-seed.yaml"), tmp.path().join("emulator-seed.yaml")).unwrap();
    }
    if case.join("before").is_dir() {
        copy_files(&case.join("before"), tmp.path());
        let run = mlpolicy(tmp.path(), &["apply", ".", "--emulator", "--auto-approve"]);
        assert_eq!(run.code, 0, "applying {}/before failed:\n{}", case.display(), run.transcript());
        clear_config(tmp.path());
    }
    copy_files(&case.join("config"), tmp.path());
    tmp
}

fn snapshot(name: &str, run: &Run, case: &Path) {
    assert_golden("plans", name, &stable(&run.transcript(), case), &[]);
}

#[test]
fn golden_plans_in_every_format() {
    let mut count = 0;
    insta::glob!("cases/plan/*", |case| {
        let name = case.file_name().unwrap().to_str().unwrap().to_owned();
        let tmp = prepare(case);
        let extra = std::fs::read_to_string(case.join("args")).unwrap_or_default();
        for format in ["text", "markdown", "json"] {
            let mut args = vec!["plan", ".", "--emulator", "--detailed-exitcode", "--format", format];
            args.extend(extra.split_whitespace());
            let run = mlpolicy(tmp.path(), &args);
            assert!(!run.stderr.contains("panicked"), "{name}:\n{}", run.transcript());
            if let Some(code) = name.split('-').next().filter(|c| c.starts_with('E')) {
                assert_eq!(run.code, 1, "{name}:\n{}", run.transcript());
                assert!(run.stderr.contains(code), "{name} does not report {code}:\n{}", run.transcript());
            } else if name == "no-op" || name == "drift" || name == "adopt-only" || name == "moved" {
                // Unmanaged drift is reported but apply changes nothing, adoptions only write
                // ownership markers, and moves change nothing in Azure: exit 0.
                assert_eq!(run.code, 0, "{name}:\n{}", run.transcript());
            } else {
                assert_eq!(run.code, 2, "{name}:\n{}", run.transcript());
            }
            if let Some(code) = name.split('-').next().filter(|c| c.starts_with('W')) {
                assert!(run.stderr.contains(code), "{name} does not warn {code}:\n{}", run.transcript());
            }
            if format == "json" && run.code != 1 {
                let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("plan JSON parses");
                assert_eq!(v["format_version"], 1);
            }
            snapshot(&format!("{name}-{format}"), &run, case);
        }
        count += 1;
    });
    assert!(count >= 10);
}

#[test]
fn the_same_input_gives_a_byte_identical_plan() {
    let case = tests_dir().join("cases/plan/each-action");
    let tmp = prepare(&case);
    let first = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--format", "json"]);
    let second = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn stale_saved_plans_are_refused_naming_what_changed() {
    let case = tests_dir().join("cases/plan/each-action");
    let tmp = prepare(&case);
    let plan = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    // Someone changes the tenant after review: the `before` configuration is applied again with
    // another description for the group.
    let other = tempfile::tempdir().unwrap();
    copy_files(tmp.path(), other.path());
    clear_config(other.path());
    std::fs::create_dir_all(other.path().join(".mlpolicy")).unwrap();
    copy_files(&tmp.path().join(".mlpolicy"), &other.path().join(".mlpolicy"));
    let before = std::fs::read_to_string(case.join("before/main.mlp"))
        .unwrap()
        .replace("\"Data scientists\"", "\"Changed in the portal\"");
    std::fs::write(other.path().join("main.mlp"), before).unwrap();
    std::fs::copy(case.join("before/mlpolicy.yaml"), other.path().join("mlpolicy.yaml")).unwrap();
    let change = mlpolicy(other.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(change.code, 0, "{}", change.transcript());
    copy_files(&other.path().join(".mlpolicy"), &tmp.path().join(".mlpolicy"));
    let apply = mlpolicy(tmp.path(), &["apply", "plan.json", "--emulator"]);
    assert_eq!(apply.code, 1, "{}", apply.transcript());
    assert!(apply.stderr.contains("E0703"), "{}", apply.transcript());
    assert!(apply.stderr.contains("group.ds"), "names the changed group:\n{}", apply.transcript());
    snapshot("stale-plan-refused", &apply, &case);
}

/// A tenant that refuses the caller: reading live state is "E0501", naming the call and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_reads_are_e0501() {
    use mlpolicy_azure::{AzureClient, ClientOptions, Cloud, TokenSource};
    let emu = mlpolicy_emulator::Emulator::start(mlpolicy_emulator::EmulatorConfig::default()).await.unwrap();
    let cloud = Cloud::single_endpoint(&emu.base_url()).unwrap();
    let client = AzureClient::new(
        cloud,
        "t",
        TokenSource::fixed(Some("not-a-token"), Some("not-a-token")),
        ClientOptions::default(),
    )
    .unwrap();
    let compiled = mlpolicy_lang::compile(
        &tests_dir().join("cases/plan/empty-tenant/config"),
        &mlpolicy_lang::settings::Overrides::default(),
    );
    let desired = mlpolicy_engine::lower::lower(&compiled.model, "t");
    let err = mlpolicy_engine::live::read(&client, &desired, &[]).await.unwrap_err();
    assert_eq!(err.code.as_str(), "E0501");
    assert!(err.message.contains("401"), "{}", err.message);
    assert!(!err.message.contains("not-a-token"), "the token never appears: {}", err.message);
    emu.shutdown().await;
}

/// The main job end to end: apply the shipped example, then `plan --detailed-exitcode` exits 0;
/// a member added "in the portal" (Graph, through the emulator's API) is exactly the drift the
/// next plan shows.
#[test]
fn example_applied_then_a_portal_change_is_exactly_the_drift() {
    let tmp = crate::support::copy_to_temp(&root().join("examples/contoso-ml"));
    let apply = mlpolicy(tmp.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    let clean = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(clean.stdout.contains("No changes."), "{}", clean.stdout);

    let state = tmp.path().join(".mlpolicy/emulator.yaml");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use mlpolicy_azure::{AzureClient, ClientOptions, Cloud, Credential, SecretString, TokenSource};
        let cfg = mlpolicy_emulator::EmulatorConfig { state_file: Some(state.clone()), ..Default::default() };
        let emu = mlpolicy_emulator::Emulator::start(cfg).await.unwrap();
        let tenant = emu.tenant().await.tenant_id.clone();
        let source = TokenSource::credential(Credential::ClientSecret {
            client_id: "portal".into(),
            secret: SecretString::new("x"),
        });
        let client = AzureClient::new(
            Cloud::single_endpoint(&emu.base_url()).unwrap(),
            &tenant,
            source,
            ClientOptions::default(),
        )
        .unwrap();
        let group =
            client.get_group_by_unique_name("mlpolicy.contoso-ml-prod.data_scientists.fraud").await.unwrap().unwrap();
        let hana = client.get_user("hana.sato@contoso.com").await.unwrap().unwrap();
        client.add_group_member(&group.id, &hana.id).await.unwrap();
        emu.shutdown().await;
    });

    let drift = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{}", drift.transcript());
    let actions: Vec<&str> = drift.stdout.lines().filter(|l| l.starts_with("  # ")).collect();
    assert_eq!(actions, ["  # group.data_scientists[\"fraud\"] will be updated in place"], "{}", drift.stdout);
    assert!(drift.stdout.contains("- hana.sato@contoso.com"), "{}", drift.stdout);
    assert!(drift.stdout.contains("hana.sato@contoso.com is a member of ml-fraud-data-scientists"), "{}", drift.stdout);
    assert!(drift.stdout.contains("Plan: 0 to add, 1 to change, 0 to destroy."), "{}", drift.stdout);
}

/// A tenant whose subscription already holds `existing` role assignments (made by hand), and a
/// configuration that adds three more.
fn near_the_limit(existing: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let sub = "11111111-1111-1111-1111-111111111111";
    let mut seed = format!(
        "tenant_id: 00000000-0000-0000-0000-0000000000aa\nsubscriptions:\n  - id: {sub}\n\
         users:\n  - user_principal_name: alice@contoso.com\nrole_assignments:\n"
    );
    for n in 0..existing {
        let _ = writeln!(
            seed,
            "  - {{scope: /subscriptions/{sub}, role: Reader, principal: 0bad0bad-0000-4000-8000-{n:012}, principal_type: User}}"
        );
    }
    std::fs::write(tmp.path().join("emulator-seed.yaml"), seed).unwrap();
    std::fs::write(
        tmp.path().join("mlpolicy.yaml"),
        format!("tenant: 00000000-0000-0000-0000-0000000000aa\nsubscriptions:\n  prod: {sub}\nowner: plan-tests\n"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("main.mlp"),
        "resource_group ml {\n  subscription = sub.prod\n  name         = \"rg-limits\"\n  location     = \"westeurope\"\n}\n\n\
         grant \"Reader\" to user(\"alice@contoso.com\") on resource_group.ml\n\
         grant \"AzureML Data Scientist\" to user(\"alice@contoso.com\") on resource_group.ml\n\
         grant \"Storage Blob Data Reader\" to user(\"alice@contoso.com\") on resource_group.ml\n",
    )
    .unwrap();
    tmp
}

#[test]
fn a_plan_past_azures_role_assignment_limit_fails_and_one_near_it_warns() {
    // 3,998 + 3 = 4,001: past the 4,000 Azure allows per subscription.
    let over = near_the_limit(3_998);
    let run = mlpolicy(over.path(), &["plan", ".", "--emulator"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0509"), "{}", run.transcript());
    assert!(run.stderr.contains("would hold 4001 role assignments"), "{}", run.transcript());
    assert_golden("plans", "E0509-role-assignment-limit", &run.stderr, &[]);
    let apply = mlpolicy(over.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(apply.code, 1, "apply refuses too:\n{}", apply.transcript());
    assert!(apply.stdout.is_empty() || !apply.stdout.contains("Creation complete"), "{}", apply.transcript());

    // 3,600 + 3 = 3,603: above 90% of the limit, a warning; the plan still stands.
    let near = near_the_limit(3_600);
    let run = mlpolicy(near.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("W0501") && run.stderr.contains("90% of Azure's fixed limit"), "{}", run.transcript());
}
