//! Reading a large tenant through the client, as a plan does: role assignments of the
//! subscription (paged), identities (paged) plus the federated credentials of each (one list per
//! identity: ARM has no batch), groups by `uniqueName` prefix (paged, `$top=999`) plus their
//! members and owners through Graph `$batch` (20 per batch), and the role catalog once.
//!
//! Tenant: 10,000 role assignments, 2,000 groups × 20 members, 2,000 identities × 2 federated
//! credentials, seeded straight into the emulator. Two runs: 30 ms latency per request; then
//! the same plus Azure's read bucket (250, refilling 25/s) switched on.
//!
//! Run with `cargo bench --bench read` (or `cargo bench --bench read --profile dev` where a
//! release build of every dependency is too slow). `READ_BENCH_PAGE_SIZE` overrides the ARM
//! page size (default 1000).

use std::time::Instant;

use mlpolicy_azure::{AzureClient, ClientOptions, Cloud, Credential, SecretString, TokenSource};
use mlpolicy_emulator::{DEFAULT_TENANT, Emulator, EmulatorConfig, Realism, Throttle};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The allocator the `mlpolicy` binary uses (src/main.rs), so that figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUB: &str = "00000000-0000-0000-0000-0000000000be";
const ASSIGNMENTS: usize = 10_000;
const GROUPS: usize = 2_000;
const MEMBERS: usize = 20;
const IDENTITIES: usize = 2_000;
const FICS: usize = 2;
const USERS: usize = 1_000;
const BATCH: usize = 20;
const GRAPH_TOP: usize = 999;
const LATENCY_MS: u64 = 30;
const CONCURRENCY: usize = 64;
const ROLES: [&str; 3] = [
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "f6c7c914-8db3-469d-8ca1-694a8f32e121",
];

fn uuid(kind: &str, i: usize) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{kind}-{i}").as_bytes()).to_string()
}

fn seed() -> Value {
    let rgs: Vec<Value> = (0..3).map(|r| json!({"subscription": SUB, "name": format!("rg-{r}")})).collect();
    let users: Vec<Value> = (0..USERS)
        .map(|u| json!({"id": uuid("user", u), "user_principal_name": format!("user{u}@contoso.com")}))
        .collect();
    let identities: Vec<Value> = (0..IDENTITIES)
        .map(|i| {
            json!({"subscription": SUB, "resource_group": "rg-0", "name": format!("uai-{i:04}"),
                   "principal_id": uuid("sp", i), "client_id": uuid("app", i)})
        })
        .collect();
    let fics: Vec<Value> = (0..IDENTITIES * FICS)
        .map(|f| {
            let i = f / FICS;
            json!({"identity": format!("/subscriptions/{SUB}/resourceGroups/rg-0/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-{i:04}"),
                   "name": format!("gh-{}", f % FICS), "issuer": "https://token.actions.githubusercontent.com",
                   "subject": format!("repo:org/repo{i}:environment:e{}", f % FICS), "audiences": ["api://AzureADTokenExchange"]})
        })
        .collect();
    let groups: Vec<Value> = (0..GROUPS)
        .map(|g| {
            let members: Vec<String> = (0..MEMBERS).map(|k| uuid("user", (g * 7 + k) % USERS)).collect();
            json!({"id": uuid("group", g), "display_name": format!("ml-g{g:04}"), "unique_name": format!("mlp-g{g:04}"),
                   "mail_nickname": format!("mlpg{g:04}"), "security_enabled": true,
                   "members": members, "owners": [uuid("user", g % USERS)]})
        })
        .collect();
    let assignments: Vec<Value> = (0..ASSIGNMENTS)
        .map(|a| {
            let p = a % (IDENTITIES + GROUPS);
            let (principal, kind) =
                if p < IDENTITIES { (uuid("sp", p), "ServicePrincipal") } else { (uuid("group", p - IDENTITIES), "Group") };
            let role = ROLES[a % ROLES.len()];
            json!({"name": uuid("ra", a), "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-{}", a / (IDENTITIES + GROUPS)),
                   "role_definition_id": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                   "principal_id": principal, "principal_type": kind})
        })
        .collect();
    json!({"tenant_id": DEFAULT_TENANT, "subscriptions": [{"id": SUB, "display_name": "bench"}], "resource_groups": rgs,
           "users": users, "identities": identities, "federated_credentials": fics, "groups": groups,
           "role_assignments": assignments})
}

#[derive(Debug, Default)]
struct Counts {
    assignments: usize,
    identities: usize,
    fics: usize,
    groups: usize,
    members: usize,
    roles: usize,
}

/// The read a plan makes.
async fn read(client: &AzureClient) -> Counts {
    let c = client.clone();
    let ras = tokio::spawn(async move { c.list_role_assignments_for_subscription(SUB).await.unwrap().len() });
    let c = client.clone();
    let roles =
        tokio::spawn(async move { c.list_role_definitions(&format!("/subscriptions/{SUB}")).await.unwrap().len() });
    let c = client.clone();
    let graph = tokio::spawn(async move {
        let groups = c.list_groups_by_unique_name_prefix("mlp-").await.unwrap();
        let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
        let members = c.batch_group_members(&ids).await.unwrap();
        (groups.len(), members.values().flatten().map(|m| m.members.len()).sum::<usize>())
    });
    let identities = client.list_user_assigned_identities(SUB).await.unwrap();
    let mut fic_lists = JoinSet::new();
    for identity in &identities {
        let c = client.clone();
        let id = identity.id.clone();
        fic_lists.spawn(async move { c.list_federated_credentials(&id).await.unwrap().len() });
    }
    let mut fics = 0;
    while let Some(n) = fic_lists.join_next().await {
        fics += n.unwrap();
    }
    let (groups, members) = graph.await.unwrap();
    Counts {
        assignments: ras.await.unwrap(),
        identities: identities.len(),
        fics,
        groups,
        members,
        roles: roles.await.unwrap(),
    }
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat` (Linux);
/// `None` elsewhere. Client and emulator share the process, so this is both sides' work.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports in USER_HZ, 100 on every Linux configuration in use.
    Some(ticks / 100.0)
}

async fn stats(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/_emulator/stats")).send().await.unwrap().json().await.unwrap()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_default()
}

#[expect(clippy::cast_precision_loss, reason = "a ratio of request counts")]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

#[tokio::main(flavor = "multi_thread")]
#[expect(clippy::cast_precision_loss, reason = "request counts shown as seconds and ratios")]
async fn main() {
    let page: usize = std::env::var("READ_BENCH_PAGE_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.yaml");
    std::fs::write(&seed_path, seed().to_string()).unwrap();
    let t0 = Instant::now();
    let realism = Realism { latency_ms: LATENCY_MS, page_size: page, ..Realism::default() };
    let emu = Emulator::start(EmulatorConfig {
        seed_file: Some(seed_path),
        realism: realism.clone(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let base = emu.base_url();
    eprintln!("seeded in {:?}", t0.elapsed());
    let http = reqwest::Client::new();
    let client = || {
        AzureClient::new(
            Cloud::single_endpoint(&base).unwrap(),
            DEFAULT_TENANT,
            TokenSource::credential(Credential::ClientSecret {
                client_id: uuid("bench-client", 0),
                secret: SecretString::new("bench"),
            }),
            ClientOptions { concurrency: CONCURRENCY, ..ClientOptions::default() },
        )
        .unwrap()
    };

    // The minimum the limits allow: one request per page of each list, one FIC list per
    // identity (ARM has no batch), one $batch per 20 member/owner lists, one role list.
    let pages = |items: usize, size: usize| items.div_ceil(size).max(1) as u64;
    let min_arm = |roles: usize| {
        pages(ASSIGNMENTS, page) + pages(roles, page) + pages(IDENTITIES, page) + IDENTITIES as u64 * pages(FICS, page)
    };
    let min_graph = pages(GROUPS, GRAPH_TOP) + (GROUPS * 2).div_ceil(BATCH) as u64;

    // Run 1: 30 ms latency.
    let _ = http.post(format!("{base}/_emulator/stats/reset")).send().await;
    let c = client();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let counts = read(&c).await;
    let wall = t.elapsed();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let s = stats(&http, &base).await;
    assert_eq!(
        (counts.assignments, counts.identities, counts.fics, counts.groups, counts.members),
        (ASSIGNMENTS, IDENTITIES, IDENTITIES * FICS, GROUPS, GROUPS * MEMBERS),
        "{counts:?}"
    );
    let arm = n(&s, "arm_read");
    let graph = n(&s, "graph_read") + n(&s, "graph_batch");
    let min = min_arm(counts.roles) + min_graph;
    let per_object =
        (ASSIGNMENTS + IDENTITIES + IDENTITIES * FICS + GROUPS + GROUPS * (MEMBERS + 1) + counts.roles) as u64;
    println!(
        "## read bench: page size {page} (ARM), $top {GRAPH_TOP} (Graph), batch {BATCH}, latency {LATENCY_MS} ms, client concurrency {CONCURRENCY}"
    );
    println!("tenant: {counts:?}");
    println!(
        "run 1 (latency only): wall {wall:.2?}, CPU {} (client and emulator, {} cores)",
        cpu.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.2} s")),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!(
        "  requests: arm_read {arm}, graph_read {}, graph_batch {} ({} inner), token {}; total API {} vs minimum {min} (ratio {:.3})",
        n(&s, "graph_read"),
        n(&s, "graph_batch"),
        n(&s, "graph_batch_items"),
        n(&s, "token"),
        arm + graph,
        ratio(arm + graph, min)
    );
    println!(
        "  one GET per object: {per_object} requests, {:.1} s sequential at {LATENCY_MS} ms, {:.1} s at concurrency {CONCURRENCY}",
        per_object as f64 * LATENCY_MS as f64 / 1000.0,
        per_object as f64 * LATENCY_MS as f64 / 1000.0 / CONCURRENCY as f64
    );

    // Run 2: Azure's read bucket on (250, refilling 25/s); a fresh client and fresh buckets.
    let throttle = Throttle::default();
    let put = http
        .put(format!("{base}/_emulator/realism"))
        .json(&Realism { throttle: Some(throttle.clone()), ..realism.clone() })
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let _ = http.post(format!("{base}/_emulator/stats/reset")).send().await;
    let c = client();
    let t = Instant::now();
    let counts2 = read(&c).await;
    let wall2 = t.elapsed();
    let s2 = stats(&http, &base).await;
    assert_eq!(counts2.fics, IDENTITIES * FICS);
    let arm2 = n(&s2, "arm_read");
    let bucket_s = (arm2.saturating_sub(u64::from(throttle.arm_read_capacity))) as f64 / throttle.arm_read_refill;
    println!("run 2 (read bucket 250 + 25/s): wall {wall2:.2?}");
    println!(
        "  requests: arm_read {arm2} (of which 429: {}), graph_read {}, graph_batch {} (429s inside batches: {}); 429 share {:.2}% of ARM reads; bucket-imposed time {bucket_s:.1} s; wall/bucket {:.3}",
        n(&s2, "arm_throttled"),
        n(&s2, "graph_read"),
        n(&s2, "graph_batch"),
        n(&s2, "throttled") - n(&s2, "arm_throttled"),
        ratio(n(&s2, "arm_throttled") * 100, arm2),
        wall2.as_secs_f64() / bucket_s
    );
    emu.shutdown().await;
}
