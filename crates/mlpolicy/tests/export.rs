//! `mlpolicy export` round trip through the emulator over HTTP: the shipped example is applied,
//! hand-made extras are added through the emulator's API (a group under the prefix with its
//! members, a portal grant to it, an identity with a federated credential, a grant with a
//! condition, a workspace whose system identity holds a grant, an assignment of a role the
//! tenant's catalog does not have), then the estate is
//! exported flat and `--compact` into directories that share the emulator's state. Both pass
//! `fmt --check`, plan to no changes (only adoptions), lower to the same desired state; applying
//! the export adopts without creating anything, after which the plan is empty.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use mlpolicy_azure::{
    AzureClient, ClientOptions, Cloud, Credential, FederatedCredentialProperties, PrincipalType, RoleAssignmentRequest,
    SecretString, TokenSource,
};
use mlpolicy_emulator::{Emulator, EmulatorConfig, Tenant};
use mlpolicy_lang::settings::Overrides;
use serde_json::json;

use crate::support::{Run, assert_golden, copy_to_temp, mlpolicy, root, tests_dir};

const PROD: &str = "6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60";
const SHARED: &str = "b2d84f17-5e3a-4c69-a1f0-7e6c2d9b4a85";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const BLOB_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
/// A role definition the emulator's catalog does not have: a custom role it cannot read.
const CUSTOM_ROLE: &str = "0f0f0f0f-1111-4222-8333-444444444444";
const CUSTOM_ASSIGNMENT: &str = "0e0e0e0e-5555-4666-8777-888888888888";
const CONDITION: &str = "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR (@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals 'models'))";

fn client_for(emu: &Emulator, tenant: &str) -> AzureClient {
    let source = TokenSource::credential(Credential::ClientSecret {
        client_id: "portal".into(),
        secret: SecretString::new("x"),
    });
    AzureClient::new(Cloud::single_endpoint(&emu.base_url()).unwrap(), tenant, source, ClientOptions::default())
        .unwrap()
}

fn rg_id(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}")
}

/// Adds the hand-made extras through the emulator's HTTP API, as someone in the portal would.
async fn add_extras(state: &Path) {
    let cfg = EmulatorConfig { state_file: Some(state.to_path_buf()), ..EmulatorConfig::default() };
    let emu = Emulator::start(cfg).await.unwrap();
    let tenant = emu.tenant().await.tenant_id.clone();
    let client = client_for(&emu, &tenant);
    let user = |upn: &'static str| {
        let c = client.clone();
        async move { c.get_user(upn).await.unwrap().unwrap().id }
    };

    // A group under the prefix, made in the portal: no uniqueName.
    let create = mlpolicy_azure::BatchRequest {
        id: "1".into(),
        method: "POST".into(),
        url: "/groups".into(),
        body: Some(json!({
            "displayName": "ml-fraud-reviewers",
            "mailNickname": "fraudreviewers",
            "mailEnabled": false,
            "securityEnabled": true,
            "description": "Reviews the fraud models",
        })),
        headers: BTreeMap::new(),
    };
    let created = client.graph_batch(vec![create]).await.unwrap();
    assert_eq!(created[0].status, 201, "{:?}", created[0]);
    let group = created[0].body["id"].as_str().unwrap().to_owned();
    client.add_group_member(&group, &user("alice.martin@contoso.com").await).await.unwrap();
    client.add_group_member(&group, &user("hana.sato@contoso.com").await).await.unwrap();
    client.add_group_owner(&group, &user("dana.fischer@contoso.com").await).await.unwrap();

    // A portal grant of a built-in role to it on a workspace.
    let ws = format!(
        "{}/providers/Microsoft.MachineLearningServices/workspaces/mlw-fraud-prod",
        rg_id(PROD, "rg-ml-teams-prod")
    );
    client
        .put_role_assignment(&RoleAssignmentRequest {
            scope: ws.clone(),
            role_definition_id: READER.into(),
            principal_id: group.clone(),
            principal_type: PrincipalType::Group,
            description: None,
            condition: None,
            name: None,
        })
        .await
        .unwrap();

    // An identity with a federated credential, and a grant to it with a condition.
    let identity = client
        .put_user_assigned_identity(PROD, "rg-ml-teams-prod", "id-batch-scoring", "westeurope", &BTreeMap::new())
        .await
        .unwrap();
    let fic = FederatedCredentialProperties {
        issuer: "https://gitlab.example.com".into(),
        subject: "project_path:contoso/scoring:ref_type:branch:ref:main".into(),
        audiences: vec!["api://AzureADTokenExchange".into()],
    };
    client.put_federated_credential(&identity.id, "gitlab-main", &fic).await.unwrap();
    let storage =
        format!("{}/providers/Microsoft.Storage/storageAccounts/stcontosomlshared", rg_id(SHARED, "rg-ml-shared"));
    client
        .put_role_assignment(&RoleAssignmentRequest {
            scope: storage,
            role_definition_id: BLOB_READER.into(),
            principal_id: identity.properties.principal_id.clone().unwrap(),
            principal_type: PrincipalType::ServicePrincipal,
            description: Some("Batch scoring reads the models container".into()),
            condition: Some(CONDITION.into()),
            name: None,
        })
        .await
        .unwrap();

    // A workspace made in the portal, with its system identity granted Reader on its group.
    let rg = rg_id(PROD, "rg-ml-teams-prod");
    let body = json!({
        "location": "westeurope",
        "identity": { "type": "SystemAssigned" },
        "properties": {
            "storageAccount": format!("{rg}/providers/Microsoft.Storage/storageAccounts/stscoring"),
            "keyVault": format!("{rg}/providers/Microsoft.KeyVault/vaults/kv-scoring"),
            "friendlyName": "Batch scoring",
        },
    });
    let workspace = client.put_workspace(PROD, "rg-ml-teams-prod", "mlw-scoring", &body).await.unwrap();
    client
        .put_role_assignment(&RoleAssignmentRequest {
            scope: rg.clone(),
            role_definition_id: READER.into(),
            principal_id: workspace.identity.unwrap().principal_id.unwrap(),
            principal_type: PrincipalType::ServicePrincipal,
            description: None,
            condition: None,
            name: None,
        })
        .await
        .unwrap();

    // An assignment of a role the catalog does not have, through the state API.
    let mallory = user("mallory.reed@contoso.com").await;
    let mut t = emu.tenant().await;
    let shared_ws = format!(
        "{}/providers/Microsoft.MachineLearningServices/workspaces/mlw-contoso-shared",
        rg_id(SHARED, "rg-ml-shared")
    );
    t.role_assignments.push(mlpolicy_emulator::state::RoleAssignment {
        name: CUSTOM_ASSIGNMENT.into(),
        scope: shared_ws,
        role_definition_id: format!(
            "/subscriptions/{SHARED}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM_ROLE}"
        ),
        principal_id: mallory,
        principal_type: "User".into(),
        created_on: "2024-01-01T00:00:00Z".into(),
        updated_on: "2024-01-01T00:00:00Z".into(),
        ..Default::default()
    });
    let status = reqwest::Client::new()
        .put(format!("{}/_emulator/state?replace=true", emu.base_url()))
        .body(serde_norway::to_string(&t).unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    emu.shutdown().await;
}

/// Object counts that expose anything created or deleted.
fn census(t: &Tenant) -> [usize; 7] {
    let members: usize = t.groups.iter().map(|g| g.members.len() + g.owners.len()).sum();
    [
        t.resource_groups.len(),
        t.identities.len(),
        t.federated_credentials.len(),
        t.workspaces.iter().filter(|w| !w.soft_deleted).count(),
        t.groups.len(),
        members,
        t.role_assignments.len(),
    ]
}

/// A configuration directory sharing the example's emulator state.
fn sharing(state_dir: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(state_dir, dir.path().join(".mlpolicy")).unwrap();
    dir
}

/// Every file of an export, for a snapshot.
fn files(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "mlp") || p.ends_with("mlpolicy.yaml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = String::new();
    for n in names {
        let _ = write!(out, "===== {n}\n{}", std::fs::read_to_string(dir.join(&n)).unwrap());
    }
    out
}

/// UUIDs the emulator mints at random become `[ID]`; the example's own ids stay.
fn stable(text: &str) -> String {
    let known = [PROD, SHARED, CUSTOM_ROLE, CUSTOM_ASSIGNMENT, "3f6b2d1e-8c4a-4e71-9b0d-5a2c7e9f1b34"];
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let candidate = text.get(i..i + 36).filter(|c| {
            c.bytes()
                .enumerate()
                .all(|(j, b)| if [8, 13, 18, 23].contains(&j) { b == b'-' } else { b.is_ascii_hexdigit() })
        });
        match candidate {
            Some(c) if !known.contains(&c.to_ascii_lowercase().as_str()) => {
                out.push_str("[ID]");
                i += 36;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

fn export(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "export",
        "--emulator",
        "--out",
        ".",
        "--subscription",
        "ml_prod=6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60",
        "--subscription",
        "ml_shared=b2d84f17-5e3a-4c69-a1f0-7e6c2d9b4a85",
        "--group-prefix",
        "ml-",
    ];
    args.extend(extra);
    mlpolicy(dir, &args)
}

fn snapshot(name: &str, text: &str) {
    assert_golden("export", name, &stable(text), &[]);
}

fn desired(dir: &Path) -> mlpolicy_engine::lower::DesiredState {
    let compiled = mlpolicy_lang::compile(dir, &Overrides::default());
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let owner = compiled.settings.owner.clone().unwrap();
    mlpolicy_engine::lower::lower(&compiled.model, &owner)
}

#[test]
fn export_round_trips_and_applying_it_only_adopts() {
    let example = copy_to_temp(&root().join("examples/contoso-ml"));
    let applied = mlpolicy(example.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());
    let state_dir = example.path().join(".mlpolicy");
    let state = state_dir.join("emulator.yaml");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(add_extras(&state));
    let before = census(&Tenant::load(&state).unwrap());

    let flat = sharing(&state_dir);
    let run = export(flat.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("owner `contoso-ml-prod`"), "{}", run.stdout);
    assert!(run.stdout.contains("Teams: fraud, pricing, risk."), "{}", run.stdout);
    assert!(run.stderr.contains("W0801"), "the custom-role assignment is reported:\n{}", run.transcript());
    snapshot("flat-files", &files(flat.path()));
    let compact = sharing(&state_dir);
    let run = export(compact.path(), &["--compact"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot("compact-files", &files(compact.path()));
    let grants = std::fs::read_to_string(flat.path().join("grants.mlp")).unwrap();
    assert!(
        grants.contains(&format!("its role definition {CUSTOM_ROLE} is not in the subscription's role catalog")),
        "{grants}"
    );
    assert!(grants.contains("condition   = \"((!(ActionMatches"), "{grants}");

    for dir in [flat.path(), compact.path()] {
        let fmt = mlpolicy(dir, &["fmt", ".", "--check"]);
        assert_eq!(fmt.code, 0, "{}", fmt.transcript());
        let plan = mlpolicy(dir, &["plan", ".", "--emulator", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "{}", plan.transcript());
        assert!(plan.stdout.contains("Plan: 0 to add, 0 to change, 0 to destroy, 7 to adopt."), "{}", plan.stdout);
    }
    // Flat and compact declare the same objects under the same addresses.
    assert_eq!(desired(flat.path()), desired(compact.path()));

    for format in ["text", "markdown", "json"] {
        let plan = mlpolicy(flat.path(), &["plan", ".", "--emulator", "--format", format]);
        assert_eq!(plan.code, 0, "{}", plan.transcript());
        snapshot(&format!("plan-adoptions-{format}"), &plan.transcript());
    }

    let apply = mlpolicy(flat.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    assert!(apply.stdout.contains("Apply complete: 0 added, 0 changed, 0 destroyed, 7 adopted."), "{}", apply.stdout);
    let after = Tenant::load(&state).unwrap();
    assert_eq!(census(&after), before, "adoption creates and deletes nothing");
    let reviewers = after.groups.iter().find(|g| g.display_name == "ml-fraud-reviewers").unwrap();
    assert_eq!(reviewers.unique_name.as_deref(), Some("mlpolicy.contoso-ml-prod.ml_fraud_reviewers"));
    let scoring = after.identities.iter().find(|i| i.name == "id-batch-scoring").unwrap();
    assert_eq!(scoring.tags.get("mlpolicy-owner").map(String::as_str), Some("contoso-ml-prod"));
    let marked = after
        .role_assignments
        .iter()
        .filter(|r| r.description.as_deref().is_some_and(|d| d.ends_with("[mlpolicy:contoso-ml-prod]")))
        .count();
    assert_eq!(marked, after.role_assignments.len() - 1, "all but the custom-role assignment carry the marker");

    for dir in [flat.path(), compact.path()] {
        let plan = mlpolicy(dir, &["plan", ".", "--emulator", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "{}", plan.transcript());
        assert!(plan.stdout.starts_with("No changes."), "{}", plan.stdout);
        assert!(!plan.stdout.contains("adopt"), "{}", plan.stdout);
    }
}

#[test]
fn export_refuses_to_overwrite_and_rejects_a_bad_scope() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.mlp"), "# mine\n").unwrap();
    let run = mlpolicy(dir.path(), &["export", "--emulator", "--out", "."]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0801") && run.stderr.contains("--force"), "{}", run.transcript());
    assert_eq!(std::fs::read_to_string(dir.path().join("main.mlp")).unwrap(), "# mine\n");

    let run = mlpolicy(dir.path(), &["export", "--emulator", "--out", ".", "--force", "--subscription", "prod=nope"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0802"), "{}", run.transcript());
    let run = mlpolicy(dir.path(), &["export", "--emulator", "--out", ".", "--force", "--owner", "Not Valid"]);
    assert!(run.code == 1 && run.stderr.contains("E0802"), "{}", run.transcript());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.mlp")).unwrap(),
        "# mine\n",
        "nothing is written on failure"
    );

    // An empty tenant exports to a valid, empty configuration.
    let run = mlpolicy(dir.path(), &["export", "--emulator", "--out", ".", "--force", "--owner", "empty"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let plan = mlpolicy(dir.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
}

/// The export checks its own output: generated text that does not parse is "E0803", never a
/// file written silently.
#[test]
fn generated_text_that_does_not_parse_is_refused() {
    let e = mlpolicy_engine::export::format_mlp("main.mlp", "group {").unwrap_err();
    assert_eq!(e.code.as_str(), "E0803");
}

/// Applying plans with adoptions (tests/cases/plan/adopt-only, and adopt, whose changes also
/// adopt) writes the markers and creates nothing: the groups made by hand get their uniqueName
/// in place, and the next plan is empty.
#[test]
fn applying_adoptions_creates_nothing_and_converges() {
    for case in ["adopt-only", "adopt"] {
        let tmp = crate::plans::prepare(&tests_dir().join("cases/plan").join(case));
        let plan = mlpolicy(tmp.path(), &["plan", ".", "--emulator"]);
        assert_eq!(plan.code, 0, "{}", plan.transcript());
        let state = tmp.path().join(".mlpolicy/emulator.yaml");
        let objects =
            |t: &Tenant| (t.resource_groups.len(), t.identities.len(), t.groups.len(), t.role_assignments.len());
        let before = Tenant::load(&state).unwrap();
        let apply = mlpolicy(tmp.path(), &["apply", ".", "--emulator", "--auto-approve"]);
        assert_eq!(apply.code, 0, "{case}: {}", apply.transcript());
        assert!(apply.stdout.contains("Adoption complete"), "{case}: {}", apply.stdout);
        let after = Tenant::load(&state).unwrap();
        assert_eq!(objects(&after), objects(&before), "{case}: nothing created or deleted");
        assert!(
            after
                .groups
                .iter()
                .all(|g| g.unique_name.as_deref().is_some_and(|u| u.starts_with("mlpolicy.plan-tests.")))
        );
        let again = mlpolicy(tmp.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
        assert_eq!(again.code, 0, "{case}: {}", again.transcript());
        assert!(again.stdout.starts_with("No changes."), "{case}: {}", again.stdout);
    }
}

/// `export --emulator --emulator-state FILE` into a fresh directory exports the tenant of that
/// state; with a policy pack in force (`--policies baseline`) the hand-made grant it denies is
/// held back — written commented out with the finding, not adopted — and the "Next" hint is a
/// command that runs as printed: it plans no changes and shows the held-back grant as drift
/// that widens access.
#[test]
fn export_of_a_named_emulator_state_holds_back_denied_grants_and_its_hint_runs() {
    let example = copy_to_temp(&root().join("examples/contoso-ml"));
    let apply = mlpolicy(example.path(), &["apply", ".", "--emulator", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    let state = example.path().join(".mlpolicy/emulator.yaml");
    let work = tempfile::tempdir().unwrap();
    let state_arg = state.display().to_string();
    let args = ["export", "--out", "ml", "--emulator", "--emulator-state", &state_arg, "--policies", "baseline"];
    let run = mlpolicy(work.path(), &args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let grants = std::fs::read_to_string(work.path().join("ml/grants.mlp")).unwrap();
    assert!(grants.contains("# HELD BACK FOR REVIEW"), "{grants}");
    assert!(
        grants.contains(
            "#   policy `no_standing_admin` denies grant \"Contributor\" to user(\"mallory.reed@contoso.com\")"
        ),
        "{grants}"
    );
    assert!(
        grants
            .contains("\n# grant \"Contributor\" to user(\"mallory.reed@contoso.com\") on resource_group.ml_shared\n"),
        "{grants}"
    );
    assert!(
        run.stdout.contains("held back for review: grant \"Contributor\" to user(\"mallory.reed@contoso.com\")"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("W0801"), "{}", run.transcript());
    let settings = std::fs::read_to_string(work.path().join("ml/mlpolicy.yaml")).unwrap();
    assert!(settings.contains("policies: [baseline]"), "{settings}");

    // The hint, run exactly as printed.
    let hint = run.stdout.lines().find_map(|l| l.strip_prefix("Next: `")).and_then(|l| l.split('`').next()).unwrap();
    assert_eq!(hint, "mlpolicy plan ml --emulator");
    let words: Vec<&str> = hint.split_whitespace().skip(1).chain(["--detailed-exitcode"]).collect();
    let plan = mlpolicy(work.path(), &words);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(
        plan.stdout.contains("! role assignment Contributor → mallory.reed@contoso.com @ rg-ml-shared (not in the configuration) (widens access)"),
        "{}",
        plan.stdout
    );

    // `--emulator-state` needs `--emulator`, and a directory holding another state is refused.
    let refused = mlpolicy(work.path(), &["export", "--out", "other", "--emulator-state", &state_arg]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    assert!(refused.stderr.contains("--emulator"), "{}", refused.transcript());
    std::fs::write(work.path().join("ml/.mlpolicy/emulator.yaml"), "tenant_id: 00000000-0000-0000-0000-000000000001\n")
        .unwrap();
    std::fs::remove_file(work.path().join("ml/grants.mlp")).unwrap();
    let other =
        mlpolicy(work.path(), &["export", "--out", "ml", "--emulator", "--emulator-state", &state_arg, "--force"]);
    assert_eq!(other.code, 0, "--force replaces the state:\n{}", other.transcript());
}
