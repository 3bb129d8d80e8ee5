//! Contract tests: the wire behaviour mlpolicy relies on, checked through the real
//! [`AzureClient`] (its public methods only) against a **target**.
//!
//! - By default the target is an in-process emulator over HTTP, and every contract runs twice:
//!   `default_target` with the quick realism, `azure_profile` with the emulator's Azure-like
//!   profile (replication delay lowered to 1 s so CI stays fast).
//! - With `MLPOLICY_CONTRACT_SUBSCRIPTION` set, `default_target` runs against that real
//!   subscription and its tenant (`MLPOLICY_CONTRACT_TENANT` or `AZURE_TENANT_ID`), with the
//!   credential the CLI would use (`TokenSource::from_env`), and `azure_profile` is skipped.
//!   Every resource group and Graph group it creates is named `MLPOLICY_CONTRACT_PREFIX`
//!   (default `mlpolicy-contract-`) + creation time + random suffix, and is deleted when its
//!   contract ends, passed or failed, unless `MLPOLICY_CONTRACT_KEEP=1`; prefixed leftovers
//!   older than an hour (crashed runs) are deleted at start. Location:
//!   `MLPOLICY_CONTRACT_LOCATION` (default `westeurope`). See "Checking a claim against real
//!   Azure" in docs/emulator.md.
//!
//! **CI never runs these against real Azure**: it has no credentials and never sets
//! `MLPOLICY_CONTRACT_SUBSCRIPTION`, so there every test runs against the emulator.
//!
//! The client hides status codes, so each target's client records its exchanges (the client's
//! record mode, in a temporary folder, or under `MLPOLICY_RECORD` when set) and contracts read
//! the statuses Azure answered from that cassette. Where the emulator and Azure may legitimately
//! differ in timing (replication, list consistency), a contract asserts the eventual outcome
//! within the target's replication budget.
//!
//! Not expressible with the client's public methods (noted, not added): a role-assignment PUT
//! *without* `principalType` (the client always sends it, so the contract checks that Azure
//! keeps `ServicePrincipal` for a new identity), role definitions listed with
//! `$filter=roleName eq '…'` (the contract lists all and matches the name case-insensitively),
//! and identities listed by resource group (the contract lists the subscription's and filters).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mlpolicy_azure::{
    AuthOptions, AzureClient, AzureError, ClientOptions, Cloud, Credential, DirectoryObjectKind,
    FederatedCredentialProperties, GroupUpsert, LogFn, LroPolicy, MembershipChange, PrincipalType, ReplicationPolicy,
    RetryPolicy, RoleAssignmentRequest, RoleCatalog, SecretString, TokenSource,
};
use mlpolicy_emulator::recordings::{Interaction, load};
use mlpolicy_emulator::{Emulator, EmulatorConfig, Profile};

const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const EMULATOR_SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000c0c7";
const DEFAULT_PREFIX: &str = "mlpolicy-contract-";
const DEFAULT_LOCATION: &str = "westeurope";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// Leftovers of crashed runs older than this are deleted at start.
const STALE_AFTER: Duration = Duration::from_secs(3600);

// ---- targets -----------------------------------------------------------------------------------

/// Which emulator realism a test asks for (real Azure ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Realism {
    Quick,
    AzureLike,
}

/// What a contract created, deleted at its end.
#[derive(Debug, Default)]
struct Created {
    resource_groups: Vec<String>,
    /// Graph groups: `uniqueName` → object id once known.
    groups: BTreeMap<String, Option<String>>,
}

/// Where a contract runs, and the client that reaches it.
struct Target {
    label: String,
    real: bool,
    /// The emulator hides new principals for a while (its Azure-like profile).
    delays_replication: bool,
    client: AzureClient,
    subscription: String,
    /// Normalised region name, e.g. `westeurope`.
    location: String,
    prefix: String,
    keep: bool,
    /// How long an eventual outcome (replication, list consistency) is waited for.
    patience: Duration,
    poll: Duration,
    cassette_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    created: Mutex<Created>,
    /// Keeps the in-process emulator serving.
    _emulator: Option<Emulator>,
    /// Holds the temporary cassette folder until the target is dropped.
    tmp: Option<tempfile::TempDir>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Client options with retries in milliseconds (the emulator's timing).
fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            max_retry_after: Duration::from_millis(500),
            throttle_budget: Duration::from_secs(10),
        },
        lro: LroPolicy {
            default_interval: Duration::from_millis(50),
            max_interval: Duration::from_millis(200),
            timeout: Duration::from_secs(15),
        },
        replication: ReplicationPolicy {
            rbac_budget: Duration::from_secs(10),
            rbac_delay: Duration::from_millis(150),
            graph_budget: Duration::from_secs(10),
            graph_delay: Duration::from_millis(150),
        },
        request_timeout: Duration::from_secs(15),
        ..ClientOptions::default()
    }
}

impl Target {
    /// The target of one contract run; `None` when this run is skipped (the Azure-like
    /// emulator profile while real Azure is the target).
    async fn start(contract: &str, realism: Realism) -> Option<Target> {
        let real = env("MLPOLICY_CONTRACT_SUBSCRIPTION").is_some();
        if real && realism == Realism::AzureLike {
            return None;
        }
        let (cassette_dir, tmp) = if let Some(dir) = env("MLPOLICY_RECORD") {
            (Path::new(&dir).join(format!("contract-{contract}-{}", std::process::id())), None)
        } else {
            let tmp = tempfile::tempdir().expect("a temporary folder for the cassette");
            (tmp.path().to_path_buf(), Some(tmp))
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let log_fn: LogFn = Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line.to_string());
            }
        });
        let mut options = if real { ClientOptions::default() } else { fast_options() };
        options.log = Some(log_fn);
        options.record = Some(cassette_dir.clone());
        options.record_replace_ids = env("MLPOLICY_RECORD_IDS").is_none_or(|v| v != "keep");
        let prefix = env("MLPOLICY_CONTRACT_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        let keep = env("MLPOLICY_CONTRACT_KEEP").is_some_and(|v| v == "1");
        let mut target =
            if real { Self::real(options, prefix, keep) } else { Self::emulator(options, realism, prefix).await };
        target.cassette_dir = cassette_dir;
        target.log = log;
        target.tmp = tmp;
        Some(target)
    }

    fn real(options: ClientOptions, prefix: String, keep: bool) -> Target {
        let subscription = env("MLPOLICY_CONTRACT_SUBSCRIPTION").unwrap_or_default();
        let tenant = env("MLPOLICY_CONTRACT_TENANT").or_else(|| env("AZURE_TENANT_ID")).expect(
            "MLPOLICY_CONTRACT_SUBSCRIPTION is set: set MLPOLICY_CONTRACT_TENANT (or AZURE_TENANT_ID) to its tenant",
        );
        let location = env("MLPOLICY_CONTRACT_LOCATION").unwrap_or_else(|| DEFAULT_LOCATION.to_string());
        let source = TokenSource::from_env(&AuthOptions::default())
            .unwrap_or_else(|e| panic!("no Azure credential in the environment: {e}"));
        let client = AzureClient::new(Cloud::Public, &tenant, source, options).expect("build the Azure client");
        Target {
            label: format!("real Azure, subscription {subscription}, tenant {tenant}, {location}"),
            real: true,
            delays_replication: false,
            client,
            subscription,
            location: location.to_ascii_lowercase(),
            prefix,
            keep,
            patience: Duration::from_secs(300),
            poll: Duration::from_secs(5),
            cassette_dir: PathBuf::new(),
            log: Arc::default(),
            created: Mutex::default(),
            _emulator: None,
            tmp: None,
        }
    }

    async fn emulator(options: ClientOptions, realism: Realism, prefix: String) -> Target {
        let (profile, label) = match realism {
            Realism::Quick => (Profile::Quick.realism(), "in-process emulator, quick realism"),
            Realism::AzureLike => {
                let mut r = Profile::Azure.realism();
                r.replication_delay_ms = 1_000;
                (r, "in-process emulator, Azure profile (replication delay 1 s)")
            }
        };
        let emulator = Emulator::start(EmulatorConfig { realism: profile, ..EmulatorConfig::default() })
            .await
            .expect("start the emulator");
        let cloud = Cloud::single_endpoint(&emulator.base_url()).expect("emulator URL");
        let tenant = emulator.tenant().await.tenant_id;
        // The emulator trusts any application.
        let source = TokenSource::credential(Credential::ClientSecret {
            client_id: "5a2c0c1e-0000-4000-8000-00000000c0c7".to_string(),
            secret: SecretString::new("emulator-contract-secret"),
        });
        let client = AzureClient::new(cloud, &tenant, source, options).expect("build the client");
        Target {
            label: format!("{label} at {}", emulator.base_url()),
            real: false,
            delays_replication: realism == Realism::AzureLike,
            client,
            subscription: EMULATOR_SUBSCRIPTION.to_string(),
            location: DEFAULT_LOCATION.to_string(),
            prefix,
            keep: false,
            patience: Duration::from_secs(10),
            poll: Duration::from_millis(100),
            cassette_dir: PathBuf::new(),
            log: Arc::default(),
            created: Mutex::default(),
            _emulator: Some(emulator),
            tmp: None,
        }
    }

    fn c(&self) -> &AzureClient {
        &self.client
    }

    fn sub(&self) -> &str {
        &self.subscription
    }

    fn rg_scope(&self, rg: &str) -> String {
        format!("/subscriptions/{}/resourceGroups/{rg}", self.subscription)
    }

    /// A new prefixed name: prefix, creation time (seconds), random suffix.
    fn new_name(&self) -> String {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{}{}-{}", self.prefix, unix_now(), &suffix[..8])
    }

    fn track_rg(&self, name: &str) {
        self.created.lock().expect("created list").resource_groups.push(name.to_string());
    }

    /// Creates a security group by upsert, tracked for the cleanup before the call and by id
    /// after it.
    async fn create_group(&self, unique: &str) -> mlpolicy_azure::UpsertOutcome {
        self.created.lock().expect("created list").groups.insert(unique.to_string(), None);
        let desired = GroupUpsert::security_group(unique, unique, unique, Some("mlpolicy contract test"));
        let outcome = self.c().upsert_group(&desired).await.expect("create a group by uniqueName");
        self.created.lock().expect("created list").groups.insert(unique.to_string(), Some(outcome.group.id.clone()));
        outcome
    }

    /// A group the contract deleted itself: nothing left for the cleanup.
    fn forget_group(&self, unique: &str) {
        self.created.lock().expect("created list").groups.remove(unique);
    }

    /// A fresh resource group for a contract, deleted at its end.
    async fn resource_group(&self) -> String {
        let name = self.new_name();
        self.track_rg(&name);
        self.c().put_resource_group(self.sub(), &name, &self.location, &tags()).await.expect("create a resource group");
        name
    }

    /// Every exchange the client has recorded so far.
    fn cassette(&self) -> Vec<Interaction> {
        let entries = std::fs::read_dir(&self.cassette_dir).expect("the cassette folder");
        let mut all = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                all.extend(load(&path).expect("the cassette parses"));
            }
        }
        all
    }

    /// Statuses of the recorded `method` requests whose URL path ends with `path_end`
    /// (case-insensitive), in order.
    fn statuses(&self, method: &str, path_end: &str) -> Vec<u16> {
        self.exchanges(method, path_end).iter().map(|i| i.status).collect()
    }

    fn exchanges(&self, method: &str, path_end: &str) -> Vec<Interaction> {
        let end = path_end.to_ascii_lowercase();
        self.cassette()
            .into_iter()
            .filter(|i| i.method.eq_ignore_ascii_case(method) && url_path(&i.url).to_ascii_lowercase().ends_with(&end))
            .collect()
    }

    fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits until `check` returns `Some`, polling within the target's replication budget.
    async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: not so within {:?}", self.patience);
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Deletes what the contract created (unless kept), reporting rather than failing.
    async fn cleanup(&self) {
        let created = std::mem::take(&mut *self.created.lock().expect("created list"));
        if self.keep {
            println!(
                "MLPOLICY_CONTRACT_KEEP=1: kept resource groups {:?} and groups {:?}",
                created.resource_groups, created.groups
            );
            return;
        }
        for (unique, id) in &created.groups {
            if let Err(e) = self.delete_group_created(unique, id.as_deref()).await {
                println!("cleanup: could not delete group {unique}: {e}");
            }
        }
        for rg in &created.resource_groups {
            if let Err(e) = self.c().delete_resource_group(self.sub(), rg).await {
                println!("cleanup: could not delete resource group {rg}: {e}");
            }
        }
    }

    /// Deletes a group this run created. A group created moments ago may not be readable or
    /// deletable yet (404 until it has replicated), so that is waited out within the budget.
    async fn delete_group_created(&self, unique: &str, id: Option<&str>) -> Result<(), String> {
        let deadline = Instant::now() + self.patience;
        let mut id = id.map(str::to_string);
        loop {
            if id.is_none() {
                id = self.c().get_group_by_unique_name(unique).await.map_err(|e| e.to_string())?.map(|g| g.id);
            }
            if let Some(id) = &id
                && self.c().delete_group(id).await.map_err(|e| e.to_string())?
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("still not found after {:?}", self.patience));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Deletes prefixed resource groups and groups older than an hour (left by crashed runs).
    async fn sweep(&self) {
        let now = unix_now();
        let stale =
            |name: &str| created_at(name, &self.prefix).is_some_and(|t| now.saturating_sub(t) > STALE_AFTER.as_secs());
        match self.c().list_resource_groups(self.sub()).await {
            Ok(rgs) => {
                for rg in rgs.iter().filter(|rg| stale(&rg.name)) {
                    println!("sweep: deleting resource group {} left by an earlier run", rg.name);
                    if let Err(e) = self.c().delete_resource_group(self.sub(), &rg.name).await {
                        println!("sweep: could not delete {}: {e}", rg.name);
                    }
                }
            }
            Err(e) => println!("sweep: could not list resource groups: {e}"),
        }
        match self.c().list_groups_by_unique_name_prefix(&self.prefix).await {
            Ok(groups) => {
                for g in groups.iter().filter(|g| g.unique_name.as_deref().is_some_and(stale)) {
                    println!("sweep: deleting group {} left by an earlier run", g.unique_name.as_deref().unwrap_or(""));
                    if let Err(e) = self.c().delete_group(&g.id).await {
                        println!("sweep: could not delete group {}: {e}", g.id);
                    }
                }
            }
            Err(e) => println!("sweep: could not list groups: {e}"),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The creation time (Unix seconds) in a name made by [`Target::new_name`] with `prefix`.
fn created_at(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &name[prefix.len()..])?;
    let (secs, suffix) = rest.split_once('-')?;
    (!suffix.is_empty() && secs.len() >= 9).then_some(())?;
    secs.parse().ok()
}

fn url_path(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([("purpose".to_string(), "mlpolicy contract test".to_string())])
}

/// How a person writes a region (`westeurope` → `West Europe`); ARM stores it normalised.
fn display_location(location: &str) -> String {
    let known = [
        ("westeurope", "West Europe"),
        ("northeurope", "North Europe"),
        ("eastus", "East US"),
        ("eastus2", "East US 2"),
        ("westus2", "West US 2"),
        ("uksouth", "UK South"),
        ("swedencentral", "Sweden Central"),
        ("germanywestcentral", "Germany West Central"),
        ("francecentral", "France Central"),
    ];
    known.iter().find(|(k, _)| *k == location).map_or_else(|| location.to_ascii_uppercase(), |(_, v)| (*v).to_string())
}

fn fic(subject: &str) -> FederatedCredentialProperties {
    FederatedCredentialProperties {
        issuer: GITHUB_ISSUER.to_string(),
        subject: subject.to_string(),
        audiences: vec!["api://AzureADTokenExchange".to_string()],
    }
}

static SWEEP: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Runs one contract against its target, then deletes what it created whether it passed or
/// panicked, and re-raises a failure after the cleanup.
async fn run<F, Fut>(contract: &str, realism: Realism, body: F)
where
    F: FnOnce(Arc<Target>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(target) = Target::start(contract, realism).await else {
        println!(
            "contract {contract}: skipped: MLPOLICY_CONTRACT_SUBSCRIPTION makes real Azure the target, checked by default_target"
        );
        return;
    };
    let target = Arc::new(target);
    println!("contract {contract}: target {}", target.label);
    if target.real {
        SWEEP.get_or_init(|| target.sweep()).await;
    } else {
        target.sweep().await;
    }
    match guarded(&target, body).await {
        Ok(()) => println!("contract {contract}: held on {}", target.label),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The cleanup guard: `body` runs in its own task, so a failed assertion is caught there;
/// the cleanup runs either way; the failure is handed back.
async fn guarded<F, Fut>(target: &Arc<Target>, body: F) -> Result<(), Box<dyn std::any::Any + Send>>
where
    F: FnOnce(Arc<Target>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body(Arc::clone(target))).await;
    target.cleanup().await;
    match outcome {
        Ok(()) => Ok(()),
        Err(e) if e.is_panic() => Err(e.into_panic()),
        Err(e) => Err(Box::new(e.to_string())),
    }
}

/// The error a call was expected to return.
fn expect_err<T: std::fmt::Debug>(result: Result<T, AzureError>, what: &str) -> AzureError {
    match result {
        Ok(v) => panic!("{what}: expected Azure to refuse, got {v:?}"),
        Err(e) => e,
    }
}

// ---- contracts ---------------------------------------------------------------------------------

/// Resource groups: PUT answers 201 then 200; the location is stored normalised; the read
/// finds it; DELETE is a 202 + `Location` operation the client waits out; then GET is 404.
async fn check_resource_group(t: Arc<Target>) {
    let c = t.c();
    let name = t.new_name();
    t.track_rg(&name);
    let sent_location = display_location(&t.location);
    let rg = c.put_resource_group(t.sub(), &name, &sent_location, &tags()).await.expect("create");
    assert_eq!(rg.name, name);
    assert_eq!(rg.location, t.location, "`{sent_location}` is stored as `{}`", t.location);
    assert!(
        rg.id.to_ascii_lowercase().ends_with(&format!("/resourcegroups/{}", name.to_ascii_lowercase())),
        "id {}",
        rg.id
    );
    let again = c.put_resource_group(t.sub(), &name, &t.location, &tags()).await.expect("update");
    assert!(again.id.eq_ignore_ascii_case(&rg.id));
    let path = format!("/resourcegroups/{name}");
    assert_eq!(t.statuses("PUT", &path), [201, 200], "create, then update");

    let read = c.get_resource_group(t.sub(), &name).await.expect("read").expect("the group exists");
    assert_eq!(read.location, t.location);
    assert_eq!(read.tags, tags());
    assert!(read.properties.and_then(|p| p.provisioning_state).is_some_and(|s| s.eq_ignore_ascii_case("Succeeded")));

    assert!(c.delete_resource_group(t.sub(), &name).await.expect("delete"), "the group existed");
    let deletes = t.exchanges("DELETE", &path);
    assert_eq!(deletes.iter().map(|i| i.status).collect::<Vec<_>>(), [202], "delete is a long-running operation");
    assert!(deletes[0].headers.contains_key("location"), "202 with a Location to poll");
    let gone = c.get_resource_group(t.sub(), &name).await.expect("read after delete");
    assert!(gone.is_none(), "the group is gone once the operation succeeded");
    assert_eq!(t.statuses("GET", &path).last(), Some(&404));
}

/// User-assigned identities: create (201), update (200), read, list; the principal shows in
/// Graph as a managed identity's service principal within the replication budget; delete.
async fn check_identity(t: Arc<Target>) {
    let c = t.c();
    let rg = t.resource_group().await;
    let uai = c.put_user_assigned_identity(t.sub(), &rg, "uai-contract", &t.location, &tags()).await.expect("create");
    let principal = uai.properties.principal_id.clone().expect("principalId");
    let client_id = uai.properties.client_id.clone().expect("clientId");
    assert!(uai.properties.tenant_id.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(c.tenant_id())));
    assert_eq!(uai.location, t.location);
    c.put_user_assigned_identity(t.sub(), &rg, "uai-contract", &t.location, &tags()).await.expect("update");
    assert_eq!(t.statuses("PUT", "/userAssignedIdentities/uai-contract"), [201, 200]);

    let got = c.get_user_assigned_identity(t.sub(), &rg, "uai-contract").await.expect("read").expect("exists");
    assert_eq!(got.properties.principal_id.as_deref(), Some(principal.as_str()));
    assert_eq!(got.properties.client_id.as_deref(), Some(client_id.as_str()));
    let rg_part = format!("/resourcegroups/{}/", rg.to_ascii_lowercase());
    t.eventually("the identity is listed", || async {
        let all = c.list_user_assigned_identities(t.sub()).await.expect("list");
        all.iter().any(|i| i.id.to_ascii_lowercase().contains(&rg_part) && i.name == "uai-contract").then_some(())
    })
    .await;

    let sp = t
        .eventually("the identity's principal is in Graph", || async {
            c.get_service_principal(&principal).await.expect("read service principal")
        })
        .await;
    assert_eq!(sp.service_principal_type.as_deref(), Some("ManagedIdentity"));
    assert!(sp.app_id.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(&client_id)), "appId is the clientId");

    assert!(c.delete_user_assigned_identity(t.sub(), &rg, "uai-contract").await.expect("delete"));
    assert!(c.get_user_assigned_identity(t.sub(), &rg, "uai-contract").await.expect("read").is_none());
    assert!(!c.delete_user_assigned_identity(t.sub(), &rg, "uai-contract").await.expect("delete again"));
}

/// Federated credentials: create (201), issuer + subject unique per identity (400), list,
/// delete.
async fn check_federated_credential(t: Arc<Target>) {
    let c = t.c();
    let rg = t.resource_group().await;
    let uai = c.put_user_assigned_identity(t.sub(), &rg, "uai-fic", &t.location, &tags()).await.expect("identity");
    let first = c.put_federated_credential(&uai.id, "fic-a", &fic("repo:o/r:environment:a")).await.expect("create");
    assert_eq!(first.name, "fic-a");
    assert_eq!(first.properties, fic("repo:o/r:environment:a"));
    assert_eq!(t.statuses("PUT", "/federatedIdentityCredentials/fic-a"), [201]);

    let dup = expect_err(
        c.put_federated_credential(&uai.id, "fic-b", &fic("repo:o/r:environment:a")).await,
        "a second credential with the same issuer and subject",
    );
    assert_eq!(dup.status, 400, "{dup}");
    assert!(dup.message.to_ascii_lowercase().contains("already exists"), "{dup}");

    let names = |list: Vec<mlpolicy_azure::FederatedCredential>| {
        let mut n: Vec<String> = list.into_iter().map(|f| f.name).collect();
        n.sort();
        n
    };
    assert_eq!(names(c.list_federated_credentials(&uai.id).await.expect("list")), ["fic-a"]);
    c.put_federated_credential(&uai.id, "fic-b", &fic("repo:o/r:environment:b")).await.expect("another subject");
    assert_eq!(names(c.list_federated_credentials(&uai.id).await.expect("list")), ["fic-a", "fic-b"]);
    assert!(c.delete_federated_credential(&uai.id, "fic-a").await.expect("delete"));
    assert!(!c.delete_federated_credential(&uai.id, "fic-a").await.expect("delete again"));
    assert_eq!(names(c.list_federated_credentials(&uai.id).await.expect("list")), ["fic-b"]);
}

/// Role assignments: a new identity's assignment is held as `ServicePrincipal`; the same
/// principal, role and scope under another name is 409 `RoleAssignmentExists` (the client
/// adopts the existing one); the list at the scope has it; delete, then it is gone.
async fn check_role_assignment(t: Arc<Target>) {
    let c = t.c();
    let rg = t.resource_group().await;
    let uai = c.put_user_assigned_identity(t.sub(), &rg, "uai-rbac", &t.location, &tags()).await.expect("identity");
    let principal = uai.properties.principal_id.clone().expect("principalId");
    let scope = t.rg_scope(&rg);
    let mut request = RoleAssignmentRequest {
        scope: scope.clone(),
        role_definition_id: READER.to_string(),
        principal_id: principal.clone(),
        principal_type: PrincipalType::ServicePrincipal,
        description: Some("mlpolicy contract test".to_string()),
        condition: None,
        name: None,
    };
    let created = c.put_role_assignment(&request).await.expect("assign Reader to the new identity");
    assert!(!created.adopted);
    let a = &created.assignment;
    assert_eq!(a.properties.principal_type.as_deref(), Some("ServicePrincipal"));
    assert_eq!(a.role_guid(), READER);
    assert!(a.properties.principal_id.eq_ignore_ascii_case(&principal));
    assert!(a.properties.scope.eq_ignore_ascii_case(&scope), "scope {}", a.properties.scope);
    assert_eq!(t.statuses("PUT", &format!("/roleAssignments/{}", a.name)), [201]);

    let other = uuid::Uuid::new_v4().hyphenated().to_string();
    request.name = Some(other.clone());
    let again = c.put_role_assignment(&request).await.expect("the same triple under another name");
    assert!(again.adopted, "409 RoleAssignmentExists: the existing assignment is adopted");
    assert!(again.assignment.name.eq_ignore_ascii_case(&a.name));
    let conflicts = t.exchanges("PUT", &format!("/roleAssignments/{other}"));
    assert_eq!(conflicts.iter().map(|i| i.status).collect::<Vec<_>>(), [409]);
    assert!(conflicts[0].response.as_deref().unwrap_or("").contains("RoleAssignmentExists"));

    t.eventually("the assignment is listed at its scope", || async {
        let listed = c.list_role_assignments_at_scope(&scope).await.expect("list at scope");
        listed.iter().any(|x| x.name.eq_ignore_ascii_case(&a.name)).then_some(())
    })
    .await;
    assert!(c.delete_role_assignment(&a.id).await.expect("delete"));
    t.eventually("the assignment is gone", || async {
        c.get_role_assignment(&a.id).await.expect("read").is_none().then_some(())
    })
    .await;
}

/// Role definitions: the name `Reader` (any case) means exactly one built-in role, GUID
/// acdd72a7-3385-48ef-bd42-f606fba81ae7, the same in every tenant.
async fn check_role_definitions(t: Arc<Target>) {
    let c = t.c();
    let defs = c.list_role_definitions(&format!("/subscriptions/{}", t.sub())).await.expect("list");
    let readers: Vec<_> = defs.iter().filter(|d| d.properties.role_name.eq_ignore_ascii_case("reader")).collect();
    assert_eq!(readers.len(), 1, "exactly one role is named Reader");
    assert_eq!(readers[0].name, READER);
    assert_eq!(readers[0].properties.role_name, "Reader");
    assert_eq!(readers[0].properties.role_type.as_deref(), Some("BuiltInRole"));
    let catalog = RoleCatalog::new(defs.clone());
    for spelling in ["Reader", "reader", "READER"] {
        assert_eq!(catalog.by_name(spelling).map(|d| d.name.as_str()), Some(READER), "{spelling}");
    }
    let by_id = c.get_role_definition(&readers[0].id).await.expect("read").expect("Reader by id");
    assert_eq!(by_id.properties.role_name, "Reader");
}

/// Graph groups: upsert by `uniqueName` creates (201) then updates (204) the same group; its
/// owners can be read at once (404s of replication waited out); a member is added and removed,
/// each idempotent; the member list shows it eventually.
async fn check_graph_group(t: Arc<Target>) {
    let c = t.c();
    let rg = t.resource_group().await;
    let uai = c.put_user_assigned_identity(t.sub(), &rg, "uai-member", &t.location, &tags()).await.expect("identity");
    let member = uai.properties.principal_id.clone().expect("principalId");
    let unique = t.new_name();
    let first = t.create_group(&unique).await;
    assert!(first.created, "the first upsert creates");
    let id = first.group.id.clone();
    // Graph's default property set may leave `uniqueName` out of the answer; when present it is ours.
    assert!(first.group.unique_name.as_deref().is_none_or(|u| u == unique), "{:?}", first.group.unique_name);
    assert_eq!(first.group.security_enabled, Some(true));
    c.list_group_owners(&id).await.expect("owners of a just-created group");
    let desired = GroupUpsert::security_group(&unique, &unique, &unique, Some("mlpolicy contract test"));
    let second = c.upsert_group(&desired).await.expect("update by uniqueName");
    assert!(!second.created, "the second upsert updates");
    assert_eq!(second.group.id, id);
    assert_eq!(t.statuses("PATCH", &format!("/groups(uniqueName='{unique}')")), [201, 204]);
    let found = t
        .eventually("the group reads by uniqueName", || async {
            c.get_group_by_unique_name(&unique).await.expect("read by uniqueName")
        })
        .await;
    assert_eq!(found.id, id);

    assert_eq!(c.add_group_member(&id, &member).await.expect("add"), MembershipChange::Changed);
    assert_eq!(c.add_group_member(&id, &member).await.expect("add again"), MembershipChange::Unchanged);
    let listed = t
        .eventually("the member is listed", || async {
            let members = c.list_group_members(&id).await.expect("members");
            members.into_iter().find(|m| m.id.eq_ignore_ascii_case(&member))
        })
        .await;
    assert_eq!(listed.kind(), DirectoryObjectKind::ServicePrincipal);
    assert_eq!(c.remove_group_member(&id, &member).await.expect("remove"), MembershipChange::Changed);
    assert_eq!(c.remove_group_member(&id, &member).await.expect("remove again"), MembershipChange::Unchanged);
    t.eventually("the member is gone", || async {
        let members = c.list_group_members(&id).await.expect("members");
        (!members.iter().any(|m| m.id.eq_ignore_ascii_case(&member))).then_some(())
    })
    .await;
    if t.delays_replication {
        let log = t.log_text();
        assert!(log.contains("not found yet (replication"), "the replication delay was met and waited out:\n{log}");
    }
    assert!(c.delete_group(&id).await.expect("delete"));
    t.forget_group(&unique);
}

// ---- one test per contract and realism --------------------------------------------------------

macro_rules! contract {
    ($module:ident, $check:ident) => {
        mod $module {
            /// The emulator with quick realism, or real Azure when
            /// `MLPOLICY_CONTRACT_SUBSCRIPTION` is set (never in CI).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn default_target() {
                super::run(stringify!($module), super::Realism::Quick, super::$check).await;
            }

            /// The emulator's Azure-like profile (skipped when real Azure is the target).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn azure_profile() {
                super::run(stringify!($module), super::Realism::AzureLike, super::$check).await;
            }
        }
    };
}

contract!(resource_group, check_resource_group);
contract!(identity, check_identity);
contract!(federated_credential, check_federated_credential);
contract!(role_assignment, check_role_assignment);
contract!(role_definitions, check_role_definitions);
contract!(graph_group, check_graph_group);

#[test]
fn names_carry_their_creation_time() {
    let p = DEFAULT_PREFIX;
    assert_eq!(created_at("mlpolicy-contract-1717171717-ab12cd34", p), Some(1_717_171_717));
    assert_eq!(created_at("MLPOLICY-CONTRACT-1717171717-ab12cd34", p), Some(1_717_171_717));
    assert_eq!(created_at("mlpolicy-contract-1717171717", p), None, "no suffix: not ours");
    assert_eq!(created_at("mlpolicy-contract-x-ab12", p), None);
    assert_eq!(created_at("rg-prod", p), None);
    assert_eq!(created_at("mlpolicy-contract-17-ab", p), None, "too short to be a time");
    assert_eq!(display_location("westeurope"), "West Europe");
    assert_eq!(display_location("brazilsouth"), "BRAZILSOUTH");
}

/// The guard deletes what a contract created even when the contract fails half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_contract_still_cleans_up() {
    // The Azure-like profile, so that the group is not yet readable when the cleanup runs (real
    // Azure when that is the target).
    let target = match Target::start("cleanup", Realism::AzureLike).await {
        Some(t) => t,
        None => Target::start("cleanup", Realism::Quick).await.expect("a target"),
    };
    let target = Arc::new(target);
    println!("cleanup guard: target {}", target.label);
    let made = Arc::new(Mutex::new((String::new(), String::new())));
    let seen = Arc::clone(&made);
    let failed = guarded(&target, move |t: Arc<Target>| async move {
        let rg = t.resource_group().await;
        let unique = t.new_name();
        t.create_group(&unique).await;
        *seen.lock().expect("names") = (rg, unique);
        panic!("a deliberate failure half-way through a contract");
    })
    .await;
    let payload = failed.expect_err("the contract failed");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"a deliberate failure half-way through a contract"));
    let (rg, unique) = made.lock().expect("names").clone();
    assert!(!rg.is_empty() && !unique.is_empty(), "the contract created both before failing");
    if target.keep {
        println!("MLPOLICY_CONTRACT_KEEP=1: not checking that {rg} and {unique} are gone");
        return;
    }
    let c = target.c();
    assert!(c.get_resource_group(target.sub(), &rg).await.expect("read").is_none(), "{rg} was deleted");
    target
        .eventually("the group is gone", || async {
            c.get_group_by_unique_name(&unique).await.expect("read").is_none().then_some(())
        })
        .await;
}

/// The start-of-run sweep deletes prefixed resource groups and groups older than an hour and
/// leaves younger ones (another run's) alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_leftovers_are_swept() {
    let target = Arc::new(Target::start("sweep", Realism::Quick).await.expect("a target"));
    println!("sweep: target {}", target.label);
    if target.real {
        // The once-per-run sweep first, so that it cannot take this test's old group early.
        SWEEP.get_or_init(|| target.sweep()).await;
    }
    let result = guarded(&target, |t: Arc<Target>| async move {
        let c = t.c();
        let old = format!("{}{}-5eed0000", t.prefix, unix_now() - 2 * STALE_AFTER.as_secs());
        t.track_rg(&old);
        c.put_resource_group(t.sub(), &old, &t.location, &tags()).await.expect("an old group");
        t.create_group(&old).await;
        let young = t.resource_group().await;
        t.eventually("the old Graph group is listed", || async {
            let listed = c.list_groups_by_unique_name_prefix(&t.prefix).await.expect("list");
            listed.iter().any(|g| g.unique_name.as_deref() == Some(old.as_str())).then_some(())
        })
        .await;
        t.sweep().await;
        assert!(c.get_resource_group(t.sub(), &old).await.expect("read").is_none(), "the old resource group is swept");
        assert!(c.get_resource_group(t.sub(), &young).await.expect("read").is_some(), "a young one is left alone");
        t.eventually("the old Graph group is swept", || async {
            c.get_group_by_unique_name(&old).await.expect("read").is_none().then_some(())
        })
        .await;
        t.forget_group(&old);
    })
    .await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
