//! Apply against the in-process emulator over real HTTP: the shipped example converges and
//! re-plans clean, a second apply changes nothing, interrupted applies (SIGKILL at 20 points of
//! a ~300-object apply) and a faulty, throttled, slow-replicating tenant converge without
//! duplicates, and the saved-plan, self-lock-out and audit-log guards hold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mlpolicy::connect::{ConnectOptions, Connection, connect};
use mlpolicy_azure::{
    AzureClient, ClientOptions, Cloud, Credential, LroPolicy, PrincipalType, ReplicationPolicy, RetryPolicy,
    RoleAssignmentRequest, SecretString, TokenSource,
};
use mlpolicy_emulator::{Emulator, EmulatorConfig, Realism, Tenant, Throttle};
use mlpolicy_engine::apply::{ApplyEvent, ApplyOptions, apply};
use mlpolicy_engine::diff::DiffOptions;
use mlpolicy_engine::lower::{Desired, PrincipalRef};
use mlpolicy_engine::plan::{FORMAT_VERSION, ObjectKind, SavedPlan};
use mlpolicy_lang::settings::Overrides;

use crate::support::{copy_to_temp, mlpolicy, mlpolicy_env, root};

/// Writes `emulator-seed.yaml` with every user the configuration names.
fn write_seed(dir: &Path) {
    let compiled = mlpolicy_lang::compile(dir, &Overrides::default());
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let owner = compiled.settings.owner.clone().unwrap_or_else(|| "mlpolicy".into());
    let desired = mlpolicy_engine::lower::lower(&compiled.model, &owner);
    let mut seed = String::from("users:\n");
    for r in mlpolicy_engine::live::principal_refs(&desired) {
        if let PrincipalRef::User { upn } = r {
            let _ = writeln!(seed, "  - user_principal_name: {upn}");
        }
    }
    std::fs::write(dir.join("emulator-seed.yaml"), seed).unwrap();
}

fn synth_dir(teams: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    mlpolicy_lang::synth::write(tmp.path(), teams).unwrap();
    write_seed(tmp.path());
    tmp
}

fn example_dir() -> tempfile::TempDir {
    let tmp = copy_to_temp(&root().join("examples/contoso-ml"));
    if !tmp.path().join("emulator-seed.yaml").exists() {
        write_seed(tmp.path());
    }
    tmp
}

async fn connect_emulator(dir: &Path) -> (mlpolicy_lang::Compiled, Connection) {
    let compiled = mlpolicy_lang::compile(dir, &Overrides::default());
    let conn = connect(dir, &compiled.settings, &ConnectOptions { emulator: true, ..ConnectOptions::default() })
        .await
        .unwrap_or_else(|d| panic!("{d:?}"));
    (compiled, conn)
}

async fn plan_of(compiled: &mlpolicy_lang::Compiled, client: &AzureClient) -> mlpolicy_engine::Planned {
    let planned = mlpolicy_engine::plan(compiled, &Overrides::default(), client, &DiffOptions::default())
        .await
        .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(!planned.diagnostics.has_errors(), "{:#?}", planned.diagnostics);
    planned
}

/// What the emulator holds, as counts that expose duplicates.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    groups: BTreeMap<String, usize>,
    assignments: BTreeMap<(String, String, String), usize>,
    identities: usize,
    federated: usize,
    workspaces: usize,
    members: usize,
    owners: usize,
}

fn census(t: &Tenant) -> Census {
    let mut groups = BTreeMap::new();
    let (mut members, mut owners) = (0, 0);
    for g in &t.groups {
        if let Some(u) = &g.unique_name {
            *groups.entry(u.to_ascii_lowercase()).or_insert(0) += 1;
            members += g.members.len();
            owners += g.owners.len();
        }
    }
    let mut assignments = BTreeMap::new();
    for a in &t.role_assignments {
        let role = a.role_definition_id.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
        let key = (a.scope.to_ascii_lowercase(), role, a.principal_id.to_ascii_lowercase());
        *assignments.entry(key).or_insert(0) += 1;
    }
    Census {
        groups,
        assignments,
        identities: t.identities.len(),
        federated: t.federated_credentials.len(),
        workspaces: t.workspaces.len(),
        members,
        owners,
    }
}

fn assert_no_duplicates(c: &Census) {
    assert!(c.groups.values().all(|n| *n == 1), "duplicate groups: {:?}", c.groups);
    assert!(c.assignments.values().all(|n| *n == 1), "duplicate assignments: {:?}", c.assignments);
}

fn state_of(dir: &Path) -> Tenant {
    Tenant::load(&dir.join(".mlpolicy/emulator.yaml")).unwrap()
}

fn no_events(_: ApplyEvent) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_applies_replans_clean_and_a_second_apply_changes_nothing() {
    let dir = example_dir();
    let (compiled, conn) = connect_emulator(dir.path()).await;
    let planned = plan_of(&compiled, &conn.client).await;
    assert!(planned.plan.summary.add > 20, "{}", planned.plan.summary_line());
    let audit = dir.path().join("audit.jsonl");
    let opts = ApplyOptions { audit_log: Some(audit.clone()), ..ApplyOptions::default() };
    let report = apply(&planned.plan.changes, &planned.desired, &conn.client, &opts, &no_events).await;
    assert!(report.ok(), "{:#?}", report.failed);
    let s = planned.plan.summary;
    // The seed's hand-made Reader grant is adopted: only its ownership marker is written.
    assert_eq!(s.adopt, 1, "{}", planned.plan.summary_line());
    assert_eq!(
        report.summary,
        format!("Apply complete: {} added, {} changed, {} destroyed, 1 adopted.", s.add, s.change, s.destroy)
    );
    let again = plan_of(&compiled, &conn.client).await;
    assert!(
        !again.plan.has_work(),
        "{:#?}",
        again.plan.changes.iter().filter(|c| c.action != mlpolicy_engine::plan::Action::NoOp).collect::<Vec<_>>()
    );
    let emulator = conn.emulator.as_ref().unwrap();
    let first = census(&emulator.tenant().await);
    assert_no_duplicates(&first);
    assert_eq!(first.groups.len(), 4);
    // 15 grants (one adopted from the seed, not duplicated), plus the seed's hand-made
    // Contributor grant (drift, never deleted).
    assert_eq!(first.assignments.len(), 3 + 3 * 4 + 1);

    // Replaying the whole first plan converges to the same tenant: nothing is duplicated.
    let replay = apply(&planned.plan.changes, &planned.desired, &conn.client, &opts, &no_events).await;
    assert!(replay.ok(), "{:#?}", replay.failed);
    assert_eq!(census(&emulator.tenant().await), first);
    // And an apply of the fresh plan has nothing to do.
    let none = apply(&again.plan.changes, &again.desired, &conn.client, &opts, &no_events).await;
    assert!(none.done.is_empty());
    assert_eq!(none.summary, "Apply complete: 0 added, 0 changed, 0 destroyed.");

    // The audit log: a first line per apply, then one parseable line per change made, with who
    // and Azure's ids, no token.
    let text = std::fs::read_to_string(&audit).unwrap();
    let all: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (starts, lines): (Vec<_>, Vec<_>) = all.into_iter().partition(|l| l.get("event").is_some());
    assert_eq!(lines.len(), 2 * report.done.len());
    let oid = conn.client.principal_object_id().await.unwrap().unwrap();
    assert_eq!(starts.len(), 3, "one per apply: {starts:?}");
    assert_eq!(starts[0]["event"], "apply_started");
    assert_eq!(starts[0]["principal"], oid.as_str());
    assert_eq!(starts[0]["changes"], report.done.len());
    assert_eq!(starts[2]["changes"], 0);
    for l in &lines {
        assert_eq!(l["principal"], oid.as_str());
        assert_eq!(l["outcome"], "succeeded");
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
        assert!(l["address"].as_str().is_some_and(|a| !a.is_empty()));
        assert!(l["request_id"].as_str().is_some(), "{l}");
        assert!(l["after_digest"].as_str().is_some_and(|d| d.len() == 64));
    }
    assert!(
        !text.contains("eyJ") && !text.to_ascii_lowercase().contains("bearer"),
        "a token leaked into the audit log"
    );
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_running_principals_access_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.mlp"),
        "resource_group ml {\n  subscription = sub.main\n  name = \"rg-lock\"\n  location = \"westeurope\"\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mlpolicy.yaml"),
        "tenant: 3f6b2d1e-8c4a-4e71-9b0d-5a2c7e9f1b34\nsubscriptions:\n  main: 6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60\nowner: lock\n",
    )
    .unwrap();
    let (compiled, conn) = connect_emulator(dir.path()).await;
    let planned = plan_of(&compiled, &conn.client).await;
    assert!(
        apply(&planned.plan.changes, &planned.desired, &conn.client, &ApplyOptions::default(), &no_events).await.ok()
    );
    // The running principal holds Owner on the group through an assignment marked as ours that
    // the configuration no longer declares: the plan deletes it.
    let oid = conn.client.principal_object_id().await.unwrap().unwrap();
    let scope = "/subscriptions/6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60/resourceGroups/rg-lock";
    conn.client
        .put_role_assignment(&RoleAssignmentRequest {
            scope: scope.into(),
            role_definition_id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635".into(),
            principal_id: oid.clone(),
            principal_type: PrincipalType::ServicePrincipal,
            description: Some("bootstrap [mlpolicy:lock]".into()),
            condition: None,
            name: None,
        })
        .await
        .unwrap();
    let planned = plan_of(&compiled, &conn.client).await;
    assert_eq!(planned.plan.summary.destroy, 1, "{:#?}", planned.plan.changes);
    let report =
        apply(&planned.plan.changes, &planned.desired, &conn.client, &ApplyOptions::default(), &no_events).await;
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].code.as_str(), "E0702");
    assert!(report.done.is_empty());
    assert_eq!(conn.client.list_role_assignments_for_principal(scope, &oid).await.unwrap().len(), 1);
    let opts = ApplyOptions { allow_self_lockout: true, ..ApplyOptions::default() };
    let report = apply(&planned.plan.changes, &planned.desired, &conn.client, &opts, &no_events).await;
    assert!(report.ok(), "{:#?}", report.failed);
    assert_eq!(report.summary, "Apply complete: 0 added, 0 changed, 1 destroyed.");
    assert!(conn.client.list_role_assignments_for_principal(scope, &oid).await.unwrap().is_empty());
    conn.close().await;
}

fn run_cli(dir: &Path, args: &[&str]) -> crate::support::Run {
    crate::support::mlpolicy(dir, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_plans_apply_once_and_stale_or_altered_ones_are_refused() {
    let dir = example_dir();
    let (compiled, conn) = connect_emulator(dir.path()).await;
    let planned = plan_of(&compiled, &conn.client).await;
    let saved = SavedPlan {
        format_version: FORMAT_VERSION,
        created_by: "mlpolicy test".into(),
        config_dir: dir.path().display().to_string(),
        tenant: compiled.settings.tenant.clone(),
        cloud: conn.endpoints.clone(),
        subscriptions: compiled.settings.subscriptions.values().cloned().collect(),
        emulator: true,
        desired: planned.desired.clone(),
        plan: planned.plan.clone(),
    };
    // Someone creates one of the planned groups by hand after the plan was made.
    let group = planned.plan.changes.iter().find(|c| c.kind == ObjectKind::Group).cloned().unwrap();
    let Some(Desired::Group(g)) = &group.desired else { panic!() };
    let upsert = mlpolicy_azure::GroupUpsert::security_group(&g.unique_name, &g.display_name, &g.mail_nickname, None);
    conn.client.upsert_group(&upsert).await.unwrap();
    conn.close().await;

    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, saved.to_file_text()).unwrap();
    let stale = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(stale.code, 1, "{}", stale.transcript());
    assert!(stale.stderr.contains("E0703") && stale.stderr.contains(&group.address), "{}", stale.transcript());
    // One object changed: the group. Its grants are keyed by its object id now, by its name
    // before; that is no second change, and the group is named once.
    assert!(stale.stderr.contains("1 object(s) changed"), "{}", stale.transcript());
    assert_eq!(stale.stderr.matches(&group.address).count(), 1, "{}", stale.transcript());

    let altered = saved.to_file_text().replace("Data scientists of the", "Data scientists of the evil");
    std::fs::write(&plan_file, altered).unwrap();
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0704"), "{}", run.transcript());
    let run = run_cli(dir.path(), &["show", "plan.json"]);
    assert_eq!(run.code, 1);

    // A fresh saved plan applies without asking and converges.
    let (compiled, conn) = connect_emulator(dir.path()).await;
    let planned = plan_of(&compiled, &conn.client).await;
    let fresh = SavedPlan { plan: planned.plan.clone(), desired: planned.desired.clone(), ..saved };
    conn.close().await;
    std::fs::write(&plan_file, fresh.to_file_text()).unwrap();
    let run = run_cli(dir.path(), &["show", "plan.json", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("Apply complete:"), "{}", run.transcript());
    assert!(run.stdout.contains(": Creation complete after"), "{}", run.transcript());
    let run = run_cli(dir.path(), &["apply", ".", "--emulator"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("No changes."), "{}", run.transcript());
    assert_no_duplicates(&census(&state_of(dir.path())));
}

/// The role GUID of Owner.
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

/// Reads `dir/plan.json`, lets `edit` change it, and writes it back with its integrity hash
/// recomputed, as a forger would.
fn forge(dir: &Path, edit: impl FnOnce(&mut SavedPlan)) {
    let path = dir.join("plan.json");
    let mut saved = SavedPlan::from_file_text(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut saved);
    std::fs::write(&path, saved.to_file_text()).unwrap();
}

/// stderr with miette's wrapped lines joined, so that long addresses can be searched for.
fn unwrapped(stderr: &str) -> String {
    stderr.lines().map(|l| l.trim_start().trim_start_matches('│').trim()).collect::<Vec<_>>().join(" ")
}

fn owner_assignments(t: &Tenant) -> usize {
    t.role_assignments.iter().filter(|a| a.role_definition_id.to_ascii_lowercase().ends_with(OWNER)).count()
}

#[test]
fn forged_saved_plans_apply_nothing_and_the_reviewed_one_applies() {
    let dir = example_dir();
    let plan = run_cli(dir.path(), &["plan", ".", "--emulator", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    let reviewed = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
    let before = census(&state_of(dir.path()));
    let owners_before = owner_assignments(&state_of(dir.path()));

    // A grant's role swapped for Owner, in what apply sends and in the live ids it uses.
    let mut grant = String::new();
    forge(dir.path(), |saved| {
        let c = saved.plan.changes.iter_mut().find(|c| c.kind == ObjectKind::RoleAssignment).unwrap();
        grant.clone_from(&c.address);
        c.live_ref.role_guid = Some(OWNER.into());
        if let Some(Desired::RoleAssignment(r)) = &mut c.desired {
            r.role = "Owner".into();
        }
        if let Some(o) = saved.desired.objects.get_mut(&grant)
            && let Desired::RoleAssignment(r) = &mut o.object
        {
            r.role = "Owner".into();
        }
    });
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let stderr = unwrapped(&run.stderr);
    assert!(stderr.contains("E0706") && stderr.contains(&grant), "{}", run.transcript());
    assert!(stderr.contains("the live ids apply uses"), "{}", run.transcript());
    assert!(!run.stdout.contains("Creating..."), "nothing starts:\n{}", run.transcript());
    assert_eq!(census(&state_of(dir.path())), before, "nothing was applied");
    assert_eq!(owner_assignments(&state_of(dir.path())), owners_before);

    // A member added to a group.
    std::fs::write(dir.path().join("plan.json"), &reviewed).unwrap();
    let mut group = String::new();
    forge(dir.path(), |saved| {
        let c = saved.plan.changes.iter_mut().find(|c| c.kind == ObjectKind::Group).unwrap();
        group.clone_from(&c.address);
        let mallory = PrincipalRef::User { upn: "mallory@contoso.com".into() };
        if let Some(Desired::Group(g)) = &mut c.desired {
            g.members.push(mallory.clone());
        }
        if let Some(o) = saved.desired.objects.get_mut(&group)
            && let Desired::Group(g) = &mut o.object
        {
            g.members.push(mallory);
        }
    });
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let stderr = unwrapped(&run.stderr);
    assert!(stderr.contains("E0706") && stderr.contains(&group), "{}", run.transcript());
    assert_eq!(census(&state_of(dir.path())), before, "nothing was applied");

    // A change dropped from the file (so that a deletion or a grant would not be seen): refused.
    std::fs::write(dir.path().join("plan.json"), &reviewed).unwrap();
    forge(dir.path(), |saved| {
        saved.plan.changes.retain(|c| c.kind != ObjectKind::RoleAssignment);
    });
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(unwrapped(&run.stderr).contains("is missing from the saved plan"), "{}", run.transcript());
    assert_eq!(census(&state_of(dir.path())), before, "nothing was applied");

    // A plan whose configuration is not there cannot be re-derived: refused.
    std::fs::write(dir.path().join("plan.json"), &reviewed).unwrap();
    forge(dir.path(), |saved| saved.config_dir = "elsewhere".into());
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(unwrapped(&run.stderr).contains("cannot be re-derived"), "{}", run.transcript());
    assert_eq!(census(&state_of(dir.path())), before, "nothing was applied");

    // The plan as reviewed applies, and the tenant is then as configured.
    std::fs::write(dir.path().join("plan.json"), &reviewed).unwrap();
    let run = run_cli(dir.path(), &["apply", "plan.json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("Apply complete:"), "{}", run.transcript());
    assert_eq!(owner_assignments(&state_of(dir.path())), owners_before);
    let again = run_cli(dir.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
}

#[test]
fn with_a_plan_key_only_plans_signed_with_it_apply() {
    let key = ("MLPOLICY_PLAN_KEY", "3f0c9a1be47d25c8a6e1f09b7d4c3a52e8f61b0d9c2a7e45");
    let other = ("MLPOLICY_PLAN_KEY", "9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddcc");
    let dir = example_dir();
    let plan_out = ["plan", ".", "--emulator", "--out", "plan.json"];

    // Unsigned, then applied with a key: refused.
    let run = run_cli(dir.path(), &plan_out);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let before = census(&state_of(dir.path()));
    assert!(!std::fs::read_to_string(dir.path().join("plan.json")).unwrap().contains("\"signature\""));
    let run = mlpolicy_env(dir.path(), &["apply", "plan.json"], &[key]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        unwrapped(&run.stderr).contains("E0707") && unwrapped(&run.stderr).contains("is not signed"),
        "{}",
        run.transcript()
    );

    // Signed with another key: refused.
    let run = mlpolicy_env(dir.path(), &plan_out, &[other]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let run = mlpolicy_env(dir.path(), &["apply", "plan.json"], &[key]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(unwrapped(&run.stderr).contains("does not match the key"), "{}", run.transcript());

    // Signed with the key, then edited with the hash recomputed: the signature fails.
    let run = mlpolicy_env(dir.path(), &plan_out, &[key]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let signed = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
    assert!(signed.contains("\"signature\": \"hmac-sha256:"), "{signed}");
    assert!(!signed.contains(key.1), "the key is never written");
    let mut forged: serde_json::Value = serde_json::from_str(&signed).unwrap();
    forged["content"]["created_by"] = "mlpolicy evil".into();
    let content = serde_json::to_vec(&forged["content"]).unwrap();
    forged["integrity"] = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&content)).into();
    std::fs::write(dir.path().join("plan.json"), serde_json::to_string_pretty(&forged).unwrap()).unwrap();
    let run = mlpolicy_env(dir.path(), &["apply", "plan.json"], &[key]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0707"), "{}", run.transcript());
    assert!(!run.stderr.contains(key.1) && !run.stdout.contains(key.1), "the key is never printed");
    assert_eq!(census(&state_of(dir.path())), before, "nothing was applied");

    // A key too short to sign with is refused before anything is written.
    let run = mlpolicy_env(
        dir.path(),
        &["plan", ".", "--emulator", "--out", "short.json"],
        &[("MLPOLICY_PLAN_KEY", "secret")],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0707") && !dir.path().join("short.json").exists(), "{}", run.transcript());

    // Signed with the key and untouched: applies. Without a key a signed plan applies too.
    std::fs::write(dir.path().join("plan.json"), &signed).unwrap();
    let run = mlpolicy_env(dir.path(), &["apply", "plan.json"], &[key]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("Apply complete:"), "{}", run.transcript());
}

/// `--audit-log` on a full disk: the first line cannot be written, so apply stops before it
/// changes anything, with one clear error.
#[cfg(target_os = "linux")]
#[test]
fn an_audit_log_on_a_full_disk_stops_apply_before_any_change() {
    let dir = example_dir();
    let plan = run_cli(dir.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "there is work to do:\n{}", plan.transcript());
    let before = census(&state_of(dir.path()));
    let run = run_cli(dir.path(), &["apply", ".", "--emulator", "--auto-approve", "--audit-log", "/dev/full"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_eq!(run.stderr.matches("E0705").count(), 1, "{}", run.transcript());
    assert!(run.stderr.contains("No space left on device"), "{}", run.transcript());
    assert!(run.stderr.contains("nothing was applied"), "{}", run.transcript());
    assert!(!run.stdout.contains("Creating..."), "a change started:\n{}", run.transcript());
    assert_eq!(census(&state_of(dir.path())), before, "something was applied");
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let dir = example_dir();
    let run = run_cli(dir.path(), &["apply", ".", "--emulator"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("--auto-approve"), "{}", run.transcript());
    assert!(run.stdout.contains("Plan: "), "{}", run.transcript());
}

/// Runs `apply --emulator --auto-approve` and SIGKILLs it after `kill_after` progress lines
/// (never, when `None`). Returns the progress lines read and whether it was killed.
fn apply_and_kill(dir: &Path, kill_after: Option<usize>) -> (usize, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlpolicy"))
        .args(["apply", ".", "--emulator", "--auto-approve", "--parallelism", "10"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut progress = 0;
    let mut killed = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.contains("...") || line.contains(" after ") {
            progress += 1;
            if Some(progress) == kill_after {
                child.kill().unwrap();
                killed = true;
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    if !killed {
        assert!(status.success(), "apply failed: {status}");
    }
    (progress, killed)
}

fn expected_synth(teams: usize) -> (usize, usize) {
    (teams, teams * 5)
}

#[test]
fn interrupted_applies_converge_without_duplicates() {
    let started = Instant::now();
    let teams = 32;
    let dir = synth_dir(teams);
    let mut kills = 0;
    for i in 0..20 {
        // Early, distinct points, so that every run is still working when it is killed.
        let (_, killed) = apply_and_kill(dir.path(), Some(2 + i));
        kills += usize::from(killed);
        assert_no_duplicates(&census(&state_of(dir.path())));
    }
    let (_, killed) = apply_and_kill(dir.path(), None);
    assert!(!killed);
    let c = census(&state_of(dir.path()));
    assert_no_duplicates(&c);
    let (groups, assignments) = expected_synth(teams);
    assert_eq!(c.groups.len(), groups);
    assert_eq!(c.assignments.len(), assignments);
    assert_eq!(c.identities, teams);
    assert_eq!(c.federated, 2 * teams);
    assert_eq!(c.workspaces, teams.div_ceil(10));
    assert_eq!(c.members, teams * mlpolicy_lang::synth::MEMBERS_PER_GROUP);
    assert_eq!(c.owners, teams);
    let rerun = crate::support::mlpolicy(dir.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(rerun.code, 0, "{}", rerun.transcript());
    assert!(rerun.stdout.contains("No changes."), "{}", rerun.transcript());
    assert_eq!(kills, 20, "only {kills} of 20 runs were killed before finishing");
    eprintln!("interrupted apply: {kills} kills, {:?}", started.elapsed());
}

fn chaos_client(emulator: &Emulator, tenant: &str) -> AzureClient {
    let cloud = Cloud::single_endpoint(&emulator.base_url()).unwrap();
    let source = TokenSource::credential(Credential::ClientSecret {
        client_id: "00000000-0000-0000-0000-00000000c11e".into(),
        secret: SecretString::new("emulator"),
    });
    let options = ClientOptions {
        concurrency: 20,
        retry: RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_retry_after: Duration::from_millis(300),
            throttle_budget: Duration::from_secs(10),
        },
        lro: LroPolicy::default(),
        replication: ReplicationPolicy {
            rbac_budget: Duration::from_secs(1),
            rbac_delay: Duration::from_millis(100),
            graph_budget: Duration::from_secs(1),
            graph_delay: Duration::from_millis(100),
        },
        pacing: false,
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    AzureClient::new(cloud, tenant, source, options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_converges_with_nothing_duplicated_or_lost() {
    let started = Instant::now();
    let teams = 6;
    let dir = synth_dir(teams);
    let compiled = mlpolicy_lang::compile(dir.path(), &Overrides::default());
    let realism = Realism {
        throttle: Some(Throttle { random_rate: 0.05, ..Throttle::default() }),
        fault_rate: 0.05,
        drop_rate: 0.03,
        replication_delay_ms: 300,
        token_lifetime_s: 30,
        lro_polls: 1,
        seed: Some(7),
        ..Realism::default()
    };
    let emulator = Emulator::start(EmulatorConfig {
        seed_file: Some(dir.path().join("emulator-seed.yaml")),
        realism,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let tenant = emulator.tenant().await.tenant_id.clone();
    let client = chaos_client(&emulator, &tenant);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 6, "no convergence after 5 applies");
        let Ok(planned) =
            mlpolicy_engine::plan(&compiled, &Overrides::default(), &client, &DiffOptions::default()).await
        else {
            continue;
        };
        assert!(!planned.diagnostics.has_errors(), "{:#?}", planned.diagnostics);
        if !planned.plan.has_work() {
            break;
        }
        let report =
            apply(&planned.plan.changes, &planned.desired, &client, &ApplyOptions::default(), &no_events).await;
        assert_no_duplicates(&census(&emulator.tenant().await));
        let _ = report;
    }
    let c = census(&emulator.tenant().await);
    assert_no_duplicates(&c);
    let (groups, assignments) = expected_synth(teams);
    assert_eq!((c.groups.len(), c.assignments.len()), (groups, assignments));
    assert_eq!((c.identities, c.federated, c.members, c.owners), (teams, 2 * teams, teams * 20, teams));
    let stats: serde_json::Value =
        reqwest::get(format!("{}/_emulator/stats", emulator.base_url())).await.unwrap().json().await.unwrap();
    let trouble = ["throttled", "faults", "dropped"].iter().map(|k| stats[k].as_u64().unwrap_or(0)).sum::<u64>();
    assert!(trouble > 10, "the emulator caused too little trouble: {stats}");
    eprintln!("chaos: {stats}");
    eprintln!("chaos: converged in {rounds} plan rounds, {:?}", started.elapsed());
    emulator.shutdown().await;
}

/// The example applies and converges under the emulator's `azure` profile, where new
/// principals stay invisible for 5 s (to role assignments and to Graph reads of new groups),
/// Azure's throttling buckets apply and workspace operations take polls, as a real tenant's do.
#[test]
fn every_example_converges_under_the_azure_profile() {
    let examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("mlpolicy.yaml").is_file())
        .collect();
    assert!(examples.len() >= 2, "{examples:?}");
    // In parallel: each waits out the profile's replication delay.
    let runs: Vec<_> = examples.into_iter().map(|e| std::thread::spawn(move || converges_under_azure(&e))).collect();
    for r in runs {
        r.join().unwrap();
    }
}

/// Applies an example through `--emulator-profile azure`, where new principals stay invisible
/// for 5 s (to role assignments and to Graph reads of new groups), Azure's throttling buckets
/// apply, workspace operations take polls, ARM ids come back re-cased and JSON keys in no fixed
/// order, as a real tenant's do; then plans again and expects no changes.
fn converges_under_azure(example: &Path) {
    let name = example.file_name().unwrap().to_string_lossy().into_owned();
    let dir = copy_to_temp(example);
    let profile = ["--emulator", "--emulator-profile", "azure"];
    let mut args = vec!["apply", ".", "--auto-approve", "--verbose"];
    args.extend(profile);
    let applied = mlpolicy(dir.path(), &args);
    assert_eq!(applied.code, 0, "{name}: {}", applied.transcript());
    assert!(applied.stdout.contains("Apply complete:"), "{name}: {}", applied.transcript());
    // The profile's replication delay was in force: reading a new group's owners answered 404
    // until it replicated, and apply waited it out.
    assert!(
        applied.stderr.contains("not found yet (replication"),
        "{name}: no replication wait under the azure profile:\n{}",
        applied.transcript()
    );
    // Let the last principals replicate, as a pipeline's next run would.
    std::thread::sleep(Duration::from_secs(6));
    let mut plan = vec!["plan", ".", "--detailed-exitcode"];
    plan.extend(profile);
    let again = mlpolicy(dir.path(), &plan);
    assert_eq!(again.code, 0, "{name}: a plan after apply has no changes:\n{}", again.transcript());
}

/// Renames through `moved` blocks, end to end: a tenant applied from `cases/plan/moved/before`,
/// then every local name renamed with `moved` blocks. The plan destroys nothing, apply (from
/// the directory and from a saved plan) changes nothing in Azure — the emulator's state is
/// byte-identical — and without the blocks the plan would destroy the group and credential and
/// warns W0502.
#[test]
fn renames_with_moved_blocks_change_nothing_in_azure() {
    let case = crate::support::tests_dir().join("cases/plan/moved");
    let tmp = crate::plans::prepare(&case);
    let state = tmp.path().join(".mlpolicy/emulator.yaml");
    let before = std::fs::read(&state).unwrap();

    let plan = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--detailed-exitcode", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(plan.stdout.contains("~ group.readers → group.viewers (moved)"), "{}", plan.stdout);
    assert!(plan.stdout.contains("Plan: 0 to add, 0 to change, 0 to destroy, 10 moved."), "{}", plan.stdout);
    assert!(!plan.stdout.contains("will be destroyed") && !plan.stdout.contains("will be created"), "{}", plan.stdout);

    for args in [["apply", ".", "--emulator", "--auto-approve"], ["apply", "plan.json", "--emulator", "--auto-approve"]]
    {
        let apply = mlpolicy(tmp.path(), &args);
        assert_eq!(apply.code, 0, "{}", apply.transcript());
        assert!(!apply.stdout.contains("complete after"), "nothing is written:\n{}", apply.stdout);
        assert_eq!(std::fs::read(&state).unwrap(), before, "{args:?} changed the tenant");
    }

    // The blocks are what tells mlpolicy: without them, a destroy and a create, and W0502.
    let text = std::fs::read_to_string(tmp.path().join("main.mlp")).unwrap();
    std::fs::write(tmp.path().join("main.mlp"), &text[..text.find("moved {").unwrap()]).unwrap();
    let without = mlpolicy(tmp.path(), &["plan", ".", "--emulator"]);
    assert_eq!(without.code, 0, "{}", without.transcript());
    assert!(without.stdout.contains("# group \"ml-readers\" will be destroyed"), "{}", without.stdout);
    assert!(without.stderr.contains("W0502"), "{}", without.transcript());
    let squeezed: String = without.stderr.split_whitespace().collect();
    assert!(
        squeezed.contains("`moved{from=group.readersto=group.viewers}`"),
        "shows the block to write:\n{}",
        without.stderr
    );
}
