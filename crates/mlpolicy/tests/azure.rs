//! Contract tests: the real `AzureClient` against the real emulator over HTTP (HTTPS where a
//! credential needs it). Every client call succeeds against the emulator, and each failure the
//! issue names is provoked through the emulator's realism switches rather than a mock: 409
//! `RoleAssignmentExists`, replication delay, concurrent FIC writes, 429, 5xx and dropped
//! connections, non-idempotent POSTs, rejected tokens, Azure errors and malformed bodies. Then
//! the chaos run, the no-secret-leak check and the `mlpolicy emulator` binary.

#![expect(clippy::format_push_string, reason = "the leak test collects every output into one text")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlpolicy_azure::{
    AzureClient, AzureError, BatchRequest, ClientOptions, Cloud, Credential, FederatedCredentialProperties,
    GroupUpsert, LogFn, LroPolicy, MembershipChange, PrincipalType, ReplicationPolicy, RetryPolicy,
    RoleAssignmentRequest, SecretString, TokenSource,
};
use mlpolicy_emulator::{DEFAULT_TENANT, Emulator, EmulatorConfig, Realism, Throttle};
use serde_json::{Value, json};

const SUB: &str = "00000000-0000-0000-0000-0000000000c1";
const CLIENT_ID: &str = "5a2c0c1e-0000-4000-8000-00000000c11e";
const CLIENT_SECRET: &str = "emulator-client-secret-Zq8~not-a-real-one";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

type Log = Arc<Mutex<Vec<String>>>;

fn rg_scope(rg: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}")
}

fn identity_id(rg: &str, name: &str) -> String {
    format!("{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}", rg_scope(rg))
}

/// Short but realistic waits: retries in milliseconds instead of seconds.
fn options(log: &Log) -> ClientOptions {
    let sink = Arc::clone(log);
    let log_fn: LogFn = Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_string()));
    ClientOptions {
        log: Some(log_fn),
        retry: RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(400),
            max_retry_after: Duration::from_millis(300),
            throttle_budget: Duration::from_secs(10),
        },
        lro: LroPolicy {
            default_interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(200),
            timeout: Duration::from_secs(20),
        },
        replication: ReplicationPolicy {
            rbac_budget: Duration::from_secs(3),
            rbac_delay: Duration::from_millis(300),
            graph_budget: Duration::from_secs(10),
            graph_delay: Duration::from_millis(500),
        },
        request_timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    }
}

fn secret_source() -> TokenSource {
    TokenSource::credential(Credential::ClientSecret {
        client_id: CLIENT_ID.to_string(),
        secret: SecretString::new(CLIENT_SECRET),
    })
}

fn client_for(emu: &Emulator, source: TokenSource, opts: ClientOptions) -> AzureClient {
    let cloud = Cloud::single_endpoint(&emu.base_url()).unwrap();
    AzureClient::new(cloud, DEFAULT_TENANT, source, opts).unwrap()
}

struct Env {
    emu: Emulator,
    client: AzureClient,
    log: Log,
    http: reqwest::Client,
}

impl Env {
    async fn start(realism: Realism, seed: Option<&Value>) -> Env {
        Self::start_cfg(EmulatorConfig { realism, ..EmulatorConfig::default() }, seed).await
    }

    async fn start_cfg(mut cfg: EmulatorConfig, seed: Option<&Value>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        if let Some(seed) = seed {
            let path = dir.path().join("seed.yaml");
            // JSON is YAML.
            std::fs::write(&path, seed.to_string()).unwrap();
            cfg.seed_file = Some(path);
        }
        let emu = Emulator::start(cfg).await.unwrap();
        let log = Log::default();
        let client = client_for(&emu, secret_source(), options(&log));
        Env { emu, client, log, http: reqwest::Client::new() }
    }

    async fn stats(&self) -> Value {
        self.http.get(format!("{}/_emulator/stats", self.emu.base_url())).send().await.unwrap().json().await.unwrap()
    }

    async fn reset_stats(&self) {
        self.http.post(format!("{}/_emulator/stats/reset", self.emu.base_url())).send().await.unwrap();
    }

    async fn set_realism(&self, realism: &Realism) {
        let status = self
            .http
            .put(format!("{}/_emulator/realism", self.emu.base_url()))
            .json(realism)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn stat(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_default()
}

fn seed() -> Value {
    json!({
        "subscriptions": [{"id": SUB, "display_name": "contract"}],
        "resource_groups": [{"subscription": SUB, "name": "rg-ml", "location": "westeurope"}],
        "users": [
            {"user_principal_name": "alice@contoso.com", "display_name": "Alice"},
            {"user_principal_name": "bob@contoso.com", "display_name": "Bob"}
        ],
        "applications": [{"display_name": "deployer", "app_id": "22222222-2222-2222-2222-222222222222"}],
        "identities": [{"subscription": SUB, "resource_group": "rg-ml", "name": "uai-seeded"}]
    })
}

fn fic(subject: &str) -> FederatedCredentialProperties {
    FederatedCredentialProperties {
        issuer: "https://token.actions.githubusercontent.com".to_string(),
        subject: subject.to_string(),
        audiences: vec!["api://AzureADTokenExchange".to_string()],
    }
}

// ---- success: every client call -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_call_succeeds_against_the_emulator() {
    let env = Env::start(Realism { lro_polls: 2, page_size: 3, ..Realism::default() }, Some(&seed())).await;
    let c = &env.client;
    let tags = BTreeMap::from([("owner".to_string(), "mlpolicy".to_string())]);

    // Resource groups.
    let rg = c.put_resource_group(SUB, "rg-new", "eastus", &tags).await.unwrap();
    assert_eq!(rg.name, "rg-new");
    assert!(c.get_resource_group(SUB, "rg-new").await.unwrap().is_some());
    assert!(c.get_resource_group(SUB, "rg-none").await.unwrap().is_none());
    let rgs = c.list_resource_groups(SUB).await.unwrap();
    assert_eq!(rgs.len(), 2);

    // Identities and FICs (paged with page size 3).
    let uai = c.put_user_assigned_identity(SUB, "rg-ml", "uai-train", "westeurope", &tags).await.unwrap();
    let principal = uai.properties.principal_id.clone().unwrap();
    assert!(uai.properties.client_id.is_some());
    let got = c.get_user_assigned_identity(SUB, "rg-ml", "uai-train").await.unwrap().unwrap();
    assert_eq!(got.properties.principal_id.as_deref(), Some(principal.as_str()));
    for i in 0..4 {
        c.put_federated_credential(&uai.id, &format!("gh-{i}"), &fic(&format!("repo:o/r:env:e{i}"))).await.unwrap();
    }
    let fics = c.list_federated_credentials(&uai.id).await.unwrap();
    assert_eq!(fics.len(), 4, "paged list of 4 with page size 3");
    assert!(c.delete_federated_credential(&uai.id, "gh-3").await.unwrap());
    assert!(!c.delete_federated_credential(&uai.id, "gh-3").await.unwrap());
    let all = c.list_user_assigned_identities(SUB).await.unwrap();
    assert_eq!(all.len(), 2);

    // Workspaces: PUT and DELETE are LROs (two 202 polls each).
    let body = json!({
        "location": "westeurope",
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "storageAccount": format!("{}/providers/Microsoft.Storage/storageAccounts/st1", rg_scope("rg-ml")),
            "keyVault": format!("{}/providers/Microsoft.KeyVault/vaults/kv1", rg_scope("rg-ml")),
        }
    });
    let ws = c.put_workspace(SUB, "rg-ml", "mlw-fraud", &body).await.unwrap();
    assert_eq!(ws.name, "mlw-fraud");
    assert!(c.get_workspace(SUB, "rg-ml", "mlw-fraud").await.unwrap().is_some());
    let patched = c.patch_workspace(SUB, "rg-ml", "mlw-fraud", &json!({"tags": {"team": "fraud"}})).await.unwrap();
    assert_eq!(patched.name, "mlw-fraud");
    assert_eq!(c.list_workspaces(SUB).await.unwrap().len(), 1);
    assert!(c.delete_workspace(SUB, "rg-ml", "mlw-fraud", true).await.unwrap());
    assert!(c.get_workspace(SUB, "rg-ml", "mlw-fraud").await.unwrap().is_none());

    // Role definitions and assignments.
    let defs = c.list_role_definitions(&format!("/subscriptions/{SUB}")).await.unwrap();
    assert!(defs.len() > 5);
    let catalog = c.role_catalog(SUB).await.unwrap();
    assert!(catalog.by_name("Reader").is_some());
    let reader_id = format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER}");
    assert!(c.get_role_definition(&reader_id).await.unwrap().is_some());
    let request = RoleAssignmentRequest {
        name: None,
        scope: rg_scope("rg-ml"),
        role_definition_id: READER.to_string(),
        principal_id: principal.clone(),
        principal_type: PrincipalType::ServicePrincipal,
        description: Some("managed by mlpolicy".to_string()),
        condition: None,
    };
    let first = c.put_role_assignment(&request).await.unwrap();
    assert!(!first.adopted);
    let again = c.put_role_assignment(&request).await.unwrap();
    assert_eq!(again.assignment.name, first.assignment.name, "re-PUT is idempotent");
    assert!(c.get_role_assignment(&first.assignment.id).await.unwrap().is_some());
    assert_eq!(c.list_role_assignments_for_subscription(SUB).await.unwrap().len(), 1);
    assert_eq!(c.list_role_assignments_at_scope(&rg_scope("rg-ml")).await.unwrap().len(), 1);
    assert_eq!(
        c.list_role_assignments_for_principal(&format!("/subscriptions/{SUB}"), &principal).await.unwrap().len(),
        1
    );
    assert!(c.delete_role_assignment(&first.assignment.id).await.unwrap());
    assert!(!c.delete_role_assignment(&first.assignment.id).await.unwrap());
    assert!(c.get_role_assignment(&first.assignment.id).await.unwrap().is_none());

    // Graph: users, service principals, applications.
    let alice = c.get_user("alice@contoso.com").await.unwrap().unwrap();
    assert!(c.get_user("nobody@contoso.com").await.unwrap().is_none());
    let upns = vec!["alice@contoso.com".to_string(), "nobody@contoso.com".to_string()];
    let resolved = c.resolve_upns(&upns).await.unwrap();
    assert!(resolved["alice@contoso.com"].is_some());
    assert!(resolved["nobody@contoso.com"].is_none());
    let sp = c.get_service_principal(&principal).await.unwrap().unwrap();
    let sp_app = sp.app_id.clone().unwrap();
    assert_eq!(c.find_service_principal(&sp_app).await.unwrap().len(), 1, "a GUID is an app id");
    assert!(!c.find_service_principal("uai-train").await.unwrap().is_empty(), "else a display name");
    let apps = c.list_applications(None).await.unwrap();
    let deployer = apps.iter().find(|a| a.display_name.as_deref() == Some("deployer")).unwrap();
    assert!(c.get_application(&deployer.id).await.unwrap().is_some());

    // Graph: groups, members, owners, batches.
    let desired = GroupUpsert::security_group("ml-ds", "ml-ds", "ml-ds", Some("Data scientists"));
    let created = c.upsert_group(&desired).await.unwrap();
    assert!(created.created);
    let updated = c.upsert_group(&GroupUpsert { description: Some("DS".into()), ..desired.clone() }).await.unwrap();
    assert!(!updated.created);
    let gid = created.group.id.clone();
    assert!(c.get_group(&gid).await.unwrap().is_some());
    assert!(c.get_group_by_unique_name("ml-ds").await.unwrap().is_some());
    assert_eq!(c.list_groups_by_unique_name_prefix("ml-").await.unwrap().len(), 1);
    assert_eq!(c.find_groups_by_display_name("ml-ds").await.unwrap().len(), 1);
    c.patch_group(&gid, &json!({"description": "patched"})).await.unwrap();
    assert_eq!(c.add_group_member(&gid, &alice.id).await.unwrap(), MembershipChange::Changed);
    assert_eq!(c.add_group_member(&gid, &alice.id).await.unwrap(), MembershipChange::Unchanged);
    assert_eq!(c.add_group_member(&gid, &principal).await.unwrap(), MembershipChange::Changed);
    assert_eq!(c.add_group_owner(&gid, &alice.id).await.unwrap(), MembershipChange::Changed);
    assert_eq!(c.list_group_members(&gid).await.unwrap().len(), 2);
    assert_eq!(c.list_group_owners(&gid).await.unwrap().len(), 1);
    let batch = c.batch_group_members(std::slice::from_ref(&gid)).await.unwrap();
    let membership = batch[&gid].as_ref().unwrap();
    assert_eq!((membership.members.len(), membership.owners.len()), (2, 1));
    let raw = c
        .graph_batch(vec![
            BatchRequest::get("1", format!("/groups/{gid}")),
            BatchRequest::get("2", "/users/alice@contoso.com"),
        ])
        .await
        .unwrap();
    assert!(raw.iter().all(|r| r.status == 200), "{raw:?}");
    assert_eq!(c.remove_group_member(&gid, &principal).await.unwrap(), MembershipChange::Changed);
    assert_eq!(c.remove_group_member(&gid, &principal).await.unwrap(), MembershipChange::Unchanged);
    let bob = c.get_user("bob@contoso.com").await.unwrap().unwrap();
    c.add_group_owner(&gid, &bob.id).await.unwrap();
    assert_eq!(c.remove_group_owner(&gid, &bob.id).await.unwrap(), MembershipChange::Changed);
    assert!(c.delete_group(&gid).await.unwrap());
    assert!(!c.delete_group(&gid).await.unwrap());

    // Clean-up calls and the caller's object id.
    assert!(c.delete_user_assigned_identity(SUB, "rg-ml", "uai-train").await.unwrap());
    assert!(!c.delete_user_assigned_identity(SUB, "rg-ml", "uai-train").await.unwrap());
    assert!(c.principal_object_id().await.unwrap().is_some());
    env.emu.shutdown().await;
}

// ---- the error cases ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_assignment_exists_is_adopted() {
    // The assignment exists under a name that is not mlpolicy's deterministic one.
    let mut s = seed();
    s["role_assignments"] = json!([{
        "name": "716c4d15-9bc8-476d-a3c1-6ccb70082517",
        "scope": rg_scope("rg-ml"),
        "role": "Reader",
        "principal": "alice@contoso.com"
    }]);
    let env = Env::start(Realism::default(), Some(&s)).await;
    let alice = env.client.get_user("alice@contoso.com").await.unwrap().unwrap();
    let outcome = env
        .client
        .put_role_assignment(&RoleAssignmentRequest {
            name: None,
            scope: rg_scope("rg-ml"),
            role_definition_id: READER.to_string(),
            principal_id: alice.id.clone(),
            principal_type: PrincipalType::User,
            description: None,
            condition: None,
        })
        .await
        .unwrap();
    assert!(outcome.adopted);
    assert_eq!(outcome.assignment.name, "716c4d15-9bc8-476d-a3c1-6ccb70082517");
    assert_eq!(env.client.list_role_assignments_for_subscription(SUB).await.unwrap().len(), 1);
    assert!(env.log_text().contains("adopted"));
}

/// Issue 13: reading a just-created group's owners and members answered 404 until the group
/// replicated, and that failed the apply. The client waits it out (`ReplicationPolicy::graph`),
/// as apply does when it computes memberships from a fresh read of a new group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_groups_owners_and_members_are_read_through_replication_delay() {
    let env = Env::start(Realism { replication_delay_ms: 1200, ..Realism::default() }, Some(&seed())).await;
    let c = &env.client;
    let started = Instant::now();
    let group = c.upsert_group(&GroupUpsert::security_group("ml-new", "ml-new", "ml-new", None)).await.unwrap();
    let id = group.group.id.clone();
    assert!(c.list_group_owners(&id).await.unwrap().is_empty());
    assert!(c.list_group_members(&id).await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_secs(1), "the reads waited for replication");
    let log = env.log_text();
    assert!(log.contains(&format!("list owners of group {id}: not found yet (replication")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_delay_is_waited_out() {
    let env = Env::start(Realism { replication_delay_ms: 1200, ..Realism::default() }, Some(&seed())).await;
    let c = &env.client;
    let started = Instant::now();
    let uai = c.put_user_assigned_identity(SUB, "rg-ml", "uai-fresh", "westeurope", &BTreeMap::new()).await.unwrap();
    let principal = uai.properties.principal_id.unwrap();
    // Graph does not see the new service principal yet: the member add answers 404 and is retried.
    let group = c.upsert_group(&GroupUpsert::security_group("ml-fresh", "ml-fresh", "ml-fresh", None)).await.unwrap();
    assert_eq!(c.add_group_member(&group.group.id, &principal).await.unwrap(), MembershipChange::Changed);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for replication");
    assert!(env.log_text().contains("attempt"), "{}", env.log_text());
    // RBAC with principalType set does not look the principal up (docs/azure-wire.md §5.5), so a grant to a
    // fresh principal succeeds at once; the PrincipalNotFound retry serves callers without it.
    let uai2 = c.put_user_assigned_identity(SUB, "rg-ml", "uai-fresh2", "westeurope", &BTreeMap::new()).await.unwrap();
    c.put_role_assignment(&RoleAssignmentRequest {
        name: None,
        scope: rg_scope("rg-ml"),
        role_definition_id: CONTRIBUTOR.to_string(),
        principal_id: uai2.properties.principal_id.unwrap(),
        principal_type: PrincipalType::ServicePrincipal,
        description: None,
        condition: None,
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fic_writes_are_serialised() {
    let env = Env::start(Realism { latency_ms: 40, ..Realism::default() }, Some(&seed())).await;
    let id = identity_id("rg-ml", "uai-seeded");
    // One client serialises its own writes; a second client (another process) collides with
    // the first, gets 409 and retries with backoff.
    let other = client_for(&env.emu, secret_source(), options(&env.log));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let c = if i % 2 == 0 { env.client.clone() } else { other.clone() };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            c.put_federated_credential(&id, &format!("fic-{i}"), &fic(&format!("repo:o/r:env:{i}"))).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let names: BTreeSet<String> =
        env.client.list_federated_credentials(&id).await.unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(names.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_requests_wait_and_succeed() {
    let env = Env::start(Realism::default(), Some(&seed())).await;
    env.client.list_resource_groups(SUB).await.unwrap(); // tokens first
    env.set_realism(&Realism {
        throttle: Some(Throttle { random_rate: 0.4, ..Throttle::default() }),
        seed: Some(11),
        ..Realism::default()
    })
    .await;
    env.reset_stats().await;
    for _ in 0..15 {
        assert!(env.client.get_resource_group(SUB, "rg-ml").await.unwrap().is_some());
        assert!(env.client.get_user("alice@contoso.com").await.unwrap().is_some());
    }
    let stats = env.stats().await;
    assert!(stat(&stats, "throttled") > 0, "{stats}");
    assert!(env.log_text().contains("429"), "{}", env.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_dropped_connections_are_retried() {
    let env = Env::start(Realism::default(), Some(&seed())).await;
    env.client.list_resource_groups(SUB).await.unwrap();
    env.client.get_user("alice@contoso.com").await.unwrap();
    env.set_realism(&Realism { fault_rate: 0.25, drop_rate: 0.15, seed: Some(5), ..Realism::default() }).await;
    env.reset_stats().await;
    let tags = BTreeMap::new();
    for i in 0..15 {
        env.client.put_resource_group(SUB, &format!("rg-{i}"), "eastus", &tags).await.unwrap();
        assert!(env.client.get_resource_group(SUB, &format!("rg-{i}")).await.unwrap().is_some());
        env.client
            .upsert_group(&GroupUpsert::security_group(&format!("g-{i}"), &format!("g-{i}"), &format!("g{i}"), None))
            .await
            .unwrap();
    }
    let stats = env.stats().await;
    assert!(stat(&stats, "faults") > 0 && stat(&stats, "dropped") > 0, "{stats}");
    env.set_realism(&Realism::default()).await;
    assert_eq!(env.client.list_resource_groups(SUB).await.unwrap().len(), 16);
    assert_eq!(env.client.list_groups_by_unique_name_prefix("g-").await.unwrap().len(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_post_is_not_replayed_and_errors_are_clear() {
    let env = Env::start(Realism::default(), Some(&seed())).await;
    env.client.get_user("alice@contoso.com").await.unwrap();
    env.client.list_resource_groups(SUB).await.unwrap();
    let create = BatchRequest {
        id: "1".into(),
        method: "POST".into(),
        url: "/groups".into(),
        body: Some(json!({"displayName": "x", "mailNickname": "x", "mailEnabled": false, "securityEnabled": true})),
        headers: BTreeMap::new(),
    };
    for (fault_rate, drop_rate) in [(1.0, 0.0), (0.0, 1.0)] {
        env.set_realism(&Realism { fault_rate, drop_rate, ..Realism::default() }).await;
        env.reset_stats().await;
        let err = env.client.graph_batch(vec![create.clone()]).await.unwrap_err();
        assert_eq!(stat(&env.stats().await, "graph_batch"), 1, "sent once: {err}");
    }
    // An idempotent read under permanent 503s gives up after the retry budget with a clear error.
    env.set_realism(&Realism { fault_rate: 1.0, ..Realism::default() }).await;
    env.reset_stats().await;
    let err = env.client.get_resource_group(SUB, "rg-ml").await.unwrap_err();
    assert_eq!(stat(&env.stats().await, "arm_read"), 8);
    assert!(matches!(err.status, 500 | 503), "{err}");
    assert!(!err.code.is_empty() && !err.message.is_empty() && err.request_id.is_some(), "{err:?}");
    env.set_realism(&Realism::default()).await;

    // Azure's own errors: status, code, message and a hint where one is known.
    let bad = FederatedCredentialProperties { audiences: vec!["a".into(), "b".into()], ..fic("repo:o/r:env:x") };
    let err =
        env.client.put_federated_credential(&identity_id("rg-ml", "uai-seeded"), "two-aud", &bad).await.unwrap_err();
    assert_eq!(err.status, 400, "{err}");
    let text = err.to_string();
    assert!(text.contains("HTTP 400") && text.contains(&err.code) && text.contains("audience"), "{text}");
    let err = env.client.put_resource_group(SUB, "rg-ml", "eastus", &BTreeMap::new()).await.unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (409, "InvalidResourceGroupLocation"), "{err}");
    let denied = env
        .client
        .put_role_assignment(&RoleAssignmentRequest {
            name: None,
            scope: rg_scope("rg-ml"),
            role_definition_id: "00000000-0000-0000-0000-00000000dead".into(),
            principal_id: "6a1f0000-0000-4000-8000-000000000001".into(),
            principal_type: PrincipalType::User,
            description: None,
            condition: None,
        })
        .await
        .unwrap_err();
    assert!(denied.status >= 400 && !denied.code.is_empty(), "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_is_refreshed_once() {
    // Tokens do not survive an emulator restart (new signing key), as tokens issued before a
    // key rollover: the first call after the restart gets 401, the client drops its token,
    // builds a fresh azure_identity credential, and retries once.
    let env = Env::start(Realism::default(), Some(&seed())).await;
    env.client.list_resource_groups(SUB).await.unwrap();
    let addr: SocketAddr = env.emu.base_url().trim_start_matches("http://").parse().unwrap();
    let tokens_before = env.emu.issued_tokens().len();
    assert_eq!(tokens_before, 1);
    let Env { emu, client, log, .. } = env;
    emu.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.yaml");
    std::fs::write(&path, seed().to_string()).unwrap();
    let emu2 = Emulator::start(EmulatorConfig { listen: addr, seed_file: Some(path), ..EmulatorConfig::default() })
        .await
        .unwrap();
    assert_eq!(client.list_resource_groups(SUB).await.unwrap().len(), 1);
    assert_eq!(emu2.issued_tokens().len(), 1, "exactly one refresh");
    let text = log.lock().unwrap().join("\n");
    assert!(text.contains("token rejected"), "{text}");

    // A fixed (pre-acquired) token cannot be refreshed: the 401 is final and explained.
    let http = reqwest::Client::new();
    let form = [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
        ("grant_type", "client_credentials"),
    ];
    let v: Value = http
        .post(format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", emu2.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let graph_token = v["access_token"].as_str().unwrap();
    let fixed = client_for(&emu2, TokenSource::fixed(Some(graph_token), None), options(&Log::default()));
    let err = fixed.list_resource_groups(SUB).await.unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (401, "InvalidAuthenticationTokenAudience"), "{err}");
    assert!(err.hint.is_some(), "{err:?}");
    emu2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_responses_never_panic() {
    // A server that answers every request with one broken body, for each kind of breakage.
    let bodies: [&[u8]; 6] = [
        b"{\"value\": [",
        b"<html>Bad gateway</html>",
        b"{\"value\": 42, \"nextLink\": 7}",
        b"{\"id\": [], \"properties\": \"x\"}",
        b"\xff\xfe\x00",
        b"null",
    ];
    for body in bodies {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = body.to_vec();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = sock.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                });
            }
        });
        let c = AzureClient::new(
            Cloud::single_endpoint(&base).unwrap(),
            DEFAULT_TENANT,
            TokenSource::fixed(Some("arm"), Some("graph")),
            options(&Log::default()),
        )
        .unwrap();
        // Each call may fail, but with an error, never a panic.
        let _ = c.list_resource_groups(SUB).await;
        let _ = c.get_user_assigned_identity(SUB, "rg", "x").await;
        let _ = c.list_role_assignments_for_subscription(SUB).await;
        let _ = c.list_groups_by_unique_name_prefix("ml-").await;
        let _ = c.batch_group_members(&["g1".to_string()]).await;
        let _ = c.resolve_upns(&["a@b.c".to_string()]).await;
        let _ = c.put_workspace(SUB, "rg", "ws", &json!({})).await;
        let _ = c.upsert_group(&GroupUpsert::security_group("u", "u", "u", None)).await;
        server.abort();
    }
}

// ---- real credentials over HTTPS ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_credentials_work_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start_cfg(
        EmulatorConfig { tls: true, state_file: Some(dir.path().join("state.yaml")), ..EmulatorConfig::default() },
        Some(&seed()),
    )
    .await;
    assert!(env.emu.base_url().starts_with("https://"));
    let ca = env.emu.ca_cert_pem().unwrap().into_bytes();
    let log = Log::default();
    let opts = ClientOptions { extra_ca_pem: Some(ca), ..options(&log) };
    // Client secret (azure_identity::ClientSecretCredential).
    let secret = client_for(&env.emu, secret_source(), opts.clone());
    assert_eq!(secret.list_resource_groups(SUB).await.unwrap().len(), 1);
    assert!(secret.get_user("alice@contoso.com").await.unwrap().is_some());
    // Workload identity (azure_identity::WorkloadIdentityCredential) with a projected token file.
    let token_file = dir.path().join("federated-token");
    std::fs::write(&token_file, fake_federated_token()).unwrap();
    let workload = client_for(
        &env.emu,
        TokenSource::credential(Credential::WorkloadIdentity { client_id: CLIENT_ID.to_string(), token_file }),
        opts,
    );
    assert_eq!(workload.list_resource_groups(SUB).await.unwrap().len(), 1);
    assert!(workload.get_user("alice@contoso.com").await.unwrap().is_some());
    assert!(workload.principal_object_id().await.unwrap().is_some());
}

/// A JWT-shaped Kubernetes service-account token (the emulator does not check its signature).
fn fake_federated_token() -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJlLW9mLXRoZS1rdWJlcm5ldGVzLWFzc2VydGlvbg",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(
            &json!({"iss": "https://oidc.example.com/k8s", "sub": "system:serviceaccount:ml:trainer", "aud": "api://AzureADTokenExchange", "exp": 4_102_444_800u64})
        )
    )
}

/// Graph's directory budget: 3,600 member and owner reads against a bucket of 3,000 units
/// refilling 300/s (Graph's "N per 10 s" model). Graph warns from 80% on; the client keeps few
/// enough items in flight to stop in time, then paces at the refill: no item draws a 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_batches_stay_within_the_directory_budget() {
    const GROUPS: usize = 1_800;
    let groups: Vec<Value> = (0..GROUPS)
        .map(|g| {
            json!({"id": format!("00000000-0000-4000-8000-{g:012}"), "display_name": format!("budget-{g:04}"),
                   "mail_nickname": format!("budget{g:04}"), "security_enabled": true})
        })
        .collect();
    let env = Env::start(
        Realism {
            throttle: Some(Throttle {
                graph_capacity: 3_000,
                graph_refill: 300.0,
                arm_read_capacity: 100_000,
                arm_write_capacity: 100_000,
                ..Throttle::default()
            }),
            ..Realism::default()
        },
        Some(&json!({"subscriptions": [{"id": SUB, "display_name": "budget"}], "groups": groups})),
    )
    .await;
    let ids: Vec<String> = (0..GROUPS).map(|g| format!("00000000-0000-4000-8000-{g:012}")).collect();
    env.reset_stats().await;
    let started = Instant::now();
    let read = env.client.batch_group_members(&ids).await.unwrap();
    assert_eq!(read.values().filter(|m| m.is_some()).count(), GROUPS);
    let stats = env.stats().await;
    assert_eq!(stats["graph_batch_items"], 3_600);
    assert_eq!(stats["throttled"], 0, "{stats}");
    // 3,600 units from a budget of 3,000 (90% of it used) refilling 300/s: paced, not instant.
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
}

// ---- chaos -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_ends_with_exactly_the_expected_objects() {
    const N: usize = 200;
    let env = Env::start(
        Realism {
            // 10% of requests draw a 429; the buckets are large so that Azure's write budget
            // (200, refilling 10/s) does not dominate the wall time.
            throttle: Some(Throttle {
                random_rate: 0.10,
                arm_read_capacity: 100_000,
                arm_write_capacity: 100_000,
                graph_capacity: 100_000,
                ..Throttle::default()
            }),
            fault_rate: 0.05,
            drop_rate: 0.02,
            replication_delay_ms: 5000,
            token_lifetime_s: 30,
            seed: Some(2024),
            ..Realism::default()
        },
        Some(&json!({
            "subscriptions": [{"id": SUB, "display_name": "chaos"}],
            "resource_groups": [{"subscription": SUB, "name": "rg-chaos"}]
        })),
    )
    .await;
    let started = Instant::now();
    let c = env.client.clone();
    let scope = rg_scope("rg-chaos");

    // Identities and groups, in parallel (the client's own concurrency limit applies).
    let mut tasks = Vec::new();
    for i in 0..N {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let uai = c
                .put_user_assigned_identity(SUB, "rg-chaos", &format!("uai-{i:03}"), "eastus", &BTreeMap::new())
                .await?;
            let name = format!("chaos-{i:03}");
            let group = c.upsert_group(&GroupUpsert::security_group(&name, &name, &name, None)).await?;
            Ok::<_, AzureError>((uai.properties.principal_id.unwrap_or_default(), group.group.id))
        }));
    }
    let mut pairs = Vec::new();
    for t in tasks {
        pairs.push(t.await.unwrap().unwrap());
    }

    // Grants: each identity and each group gets one role on the resource group; each group
    // gets its identity as a member (waits out the 5 s replication delay through Graph 404s).
    let mut tasks = Vec::new();
    for (i, (principal, group)) in pairs.iter().cloned().enumerate() {
        let c = c.clone();
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            let role = if i % 2 == 0 { READER } else { CONTRIBUTOR };
            for (p, t) in [(principal.clone(), PrincipalType::ServicePrincipal), (group.clone(), PrincipalType::Group)]
            {
                c.put_role_assignment(&RoleAssignmentRequest {
                    name: None,
                    scope: scope.clone(),
                    role_definition_id: role.to_string(),
                    principal_id: p,
                    principal_type: t,
                    description: Some("chaos".into()),
                    condition: None,
                })
                .await?;
            }
            c.add_group_member(&group, &principal).await?;
            Ok::<_, AzureError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    // Read everything back through the same chaos.
    let identities = c.list_user_assigned_identities(SUB).await.unwrap();
    let groups = c.list_groups_by_unique_name_prefix("chaos-").await.unwrap();
    let assignments = c.list_role_assignments_for_subscription(SUB).await.unwrap();
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let members = c.batch_group_members(&group_ids).await.unwrap();

    let want_identities: BTreeSet<String> = (0..N).map(|i| format!("uai-{i:03}")).collect();
    let got_identities: Vec<String> = identities.iter().map(|u| u.name.clone()).collect();
    assert_eq!(got_identities.len(), N, "no duplicate identities");
    assert_eq!(got_identities.into_iter().collect::<BTreeSet<_>>(), want_identities);

    let want_groups: BTreeSet<String> = (0..N).map(|i| format!("chaos-{i:03}")).collect();
    let got_groups: Vec<String> = groups.iter().filter_map(|g| g.unique_name.clone()).collect();
    assert_eq!(got_groups.len(), N, "no duplicate groups");
    assert_eq!(got_groups.into_iter().collect::<BTreeSet<_>>(), want_groups);
    let tenant = env.emu.tenant().await;
    assert_eq!(tenant.groups.len(), N, "no stray groups from replayed creates");

    let want_grants: BTreeSet<(String, String)> = pairs
        .iter()
        .enumerate()
        .flat_map(|(i, (p, g))| {
            let role = if i % 2 == 0 { READER } else { CONTRIBUTOR };
            [(p.clone(), role.to_string()), (g.clone(), role.to_string())]
        })
        .collect();
    let got_grants: Vec<(String, String)> =
        assignments.iter().map(|a| (a.properties.principal_id.clone(), a.role_guid())).collect();
    assert_eq!(got_grants.len(), 2 * N, "no duplicate grants");
    assert_eq!(got_grants.into_iter().collect::<BTreeSet<_>>(), want_grants);
    assert!(assignments.iter().all(|a| mlpolicy_vocab::arm::same_id(&a.properties.scope, &scope)));

    for (principal, group) in &pairs {
        let m = members[group].as_ref().expect("group found");
        let ids: Vec<&str> = m.members.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, vec![principal.as_str()], "exactly its identity");
    }
    let stats = env.stats().await;
    eprintln!("chaos run: {:?}, emulator stats {stats}", started.elapsed());
    assert!(stat(&stats, "throttled") > 0 && stat(&stats, "faults") > 0 && stat(&stats, "dropped") > 0, "{stats}");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}

// ---- no secret in any output --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_secret_or_assertion_is_ever_printed() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(
        Realism {
            throttle: Some(Throttle { random_rate: 0.2, ..Throttle::default() }),
            fault_rate: 0.1,
            token_lifetime_s: 2,
            seed: Some(3),
            ..Realism::default()
        },
        Some(&seed()),
    )
    .await;
    let token_file = dir.path().join("federated-token");
    let assertion = fake_federated_token();
    std::fs::write(&token_file, &assertion).unwrap();
    let log = Arc::clone(&env.log);
    let workload = client_for(
        &env.emu,
        TokenSource::credential(Credential::WorkloadIdentity { client_id: CLIENT_ID.into(), token_file }),
        options(&log),
    );
    let mut out = String::new();
    for c in [&env.client, &workload] {
        out += &format!("{c:?}\n{}\n", c.describe_auth());
        out += &format!("{:?}\n", c.list_resource_groups(SUB).await);
        out += &format!("{:?}\n", c.get_user("alice@contoso.com").await);
        out +=
            &format!("{:?}\n", c.put_user_assigned_identity(SUB, "rg-ml", "uai-x", "eastus", &BTreeMap::new()).await);
        tokio::time::sleep(Duration::from_millis(1100)).await; // past half the 2 s lifetime: refresh
        out += &format!("{:?}\n", c.list_role_assignments_for_subscription(SUB).await);
        // Errors, too: a 401 with another audience's token, a 404, a 400.
        out += &format!(
            "{:?}\n",
            c.get_role_assignment("/subscriptions/x/providers/Microsoft.Authorization/roleAssignments/nope").await
        );
        match c.put_federated_credential(&identity_id("rg-ml", "uai-seeded"), "bad name!", &fic("s")).await {
            Ok(v) => out += &format!("{v:?}\n"),
            Err(e) => out += &format!("{e:?}\n{e}\n"),
        }
    }
    out += &format!("{:?}\n{:?}\n", secret_source(), options(&log));
    let graph_tokens = env.emu.issued_tokens();
    let fixed = client_for(&env.emu, TokenSource::fixed(Some(&graph_tokens[0]), Some(&graph_tokens[0])), options(&log));
    out += &format!("{fixed:?}\n{:?}\n", fixed.list_resource_groups(SUB).await);
    out += &log.lock().unwrap().join("\n");

    let issued = env.emu.issued_tokens();
    assert!(issued.len() >= 4, "the test refreshed tokens: {}", issued.len());
    assert_no_secret(&out, &issued, &assertion);
    assert!(out.contains("***") || out.contains("ClientSecret"), "the output was captured");
}

fn assert_no_secret(out: &str, tokens: &[String], assertion: &str) {
    for t in tokens {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!out.contains(t.as_str()), "a token leaked");
        assert!(!out.contains(signature), "a token signature leaked");
    }
    assert!(!out.contains(CLIENT_SECRET), "the client secret leaked");
    assert!(!out.contains(assertion), "the client assertion leaked");
    assert!(!out.contains(assertion.rsplit('.').next().unwrap()), "the assertion signature leaked");
}

// ---- the `mlpolicy emulator` command -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_command_prints_its_url_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.yaml");
    let seed_file: PathBuf = dir.path().join("seed.yaml");
    std::fs::write(&seed_file, seed().to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlpolicy"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .arg("--seed")
        .arg(&seed_file)
        .args(["--latency", "5ms", "--page-size", "50", "--token-lifetime", "30s", "--replication-delay", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(line.starts_with("mlpolicy emulator listening on http://127.0.0.1:"), "{line}");
    assert!(!url.ends_with(":0"), "{url}");

    let log = Log::default();
    let client =
        AzureClient::new(Cloud::single_endpoint(&url).unwrap(), DEFAULT_TENANT, secret_source(), options(&log))
            .unwrap();
    let rgs = client.list_resource_groups(SUB).await.unwrap();
    assert_eq!(rgs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["rg-ml"]);
    client.put_resource_group(SUB, "rg-cli", "eastus", &BTreeMap::new()).await.unwrap();
    assert!(std::fs::read_to_string(&state).unwrap().contains("rg-cli"), "state saved");

    // A token the process issued, fetched directly, to look for in its output.
    let v: Value = reqwest::Client::new()
        .post(format!("{url}/{DEFAULT_TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://management.azure.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let out = format!("{line}{rest}{stderr}{}", log.lock().unwrap().join("\n"));
    assert_no_secret(&out, &[token], "no assertion in this test");
}

/// Record mode writes every exchange to a cassette in azure-cli's recording format, which the
/// emulator's recording reader (the parity suite's) loads; no token, secret or real tenant or
/// subscription id is in it.
#[tokio::test]
async fn record_mode_writes_sanitised_cassettes_the_parity_suite_reads() {
    let emu = Emulator::start(EmulatorConfig { seed_file: None, ..EmulatorConfig::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let opts = ClientOptions { record: Some(dir.path().join("cassettes")), ..options(&log) };
    let c = client_for(&emu, secret_source(), opts);
    let tags = BTreeMap::new();
    c.put_resource_group(SUB, "rg-rec", "westeurope", &tags).await.unwrap();
    let uai = c.put_user_assigned_identity(SUB, "rg-rec", "uai-rec", "westeurope", &tags).await.unwrap();
    c.put_federated_credential(&uai.id, "github-prod", &fic("repo:o/r:environment:prod")).await.unwrap();
    assert!(c.get_resource_group(SUB, "rg-missing").await.unwrap().is_none());
    let files: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("cassettes")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let recorded = mlpolicy_emulator::recordings::load(&files[0]).unwrap();
    let methods: Vec<(&str, u16)> = recorded.iter().map(|i| (i.method.as_str(), i.status)).collect();
    assert_eq!(methods, [("PUT", 201), ("PUT", 201), ("PUT", 201), ("GET", 404)], "{text}");
    assert!(recorded[0].url.contains("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-rec"));
    assert!(recorded[3].response.as_deref().is_some_and(|b| b.contains("ResourceGroupNotFound")));
    assert!(!text.to_ascii_lowercase().contains(&SUB.to_ascii_lowercase()), "subscription id replaced");
    assert!(!text.contains(DEFAULT_TENANT), "tenant id replaced");
    assert!(!text.contains(CLIENT_SECRET) && !text.to_ascii_lowercase().contains("bearer"), "{text}");
    for token in emu.issued_tokens() {
        assert!(!text.contains(&token), "a token in the cassette");
    }
    emu.shutdown().await;
}
