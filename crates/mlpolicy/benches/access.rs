//! Benchmark of `mlpolicy access` after the live read: the effective-access computation over a
//! tenant of 10,000 role assignments and 2,000 groups × 20 members (one in ten groups nested in
//! another, so paths are two levels deep), 2,000 workspaces in 20 resource groups.
//!
//! The tenant is built in memory as the live read leaves it (`LiveState`): the read itself is
//! measured by `benches/read.rs`. Timed: `access::live_report`, what `mlpolicy access --live`
//! runs after reading (the access graph, kinds, managed assignments and the report), and the
//! report's text.
//!
//! Run with `cargo bench --bench access`; figures are recorded in docs/performance.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mlpolicy_engine::access;
use mlpolicy_engine::live::{LiveGroup, LiveState, PrincipalInfo, PrincipalKind};
use mlpolicy_engine::lower::DesiredState;

/// The allocator the `mlpolicy` binary uses (src/main.rs), so that figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUB: &str = "/subscriptions/33333333-3333-3333-3333-333333333333";
const TEAMS: usize = 2_000;
const RUNS: usize = 7;

fn guid(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn rg(t: usize) -> String {
    format!("{SUB}/resourceGroups/rg-ml-{:02}", t % 20)
}

fn workspace(t: usize) -> String {
    format!("{}/providers/Microsoft.MachineLearningServices/workspaces/mlw-team-{t:04}", rg(t))
}

fn storage(t: usize) -> String {
    format!("{}/providers/Microsoft.Storage/storageAccounts/stteam{t:04}", rg(t))
}

fn tenant() -> LiveState {
    let mut live = LiveState::default();
    let mut assignment = |n: usize, principal: &str, kind: &str, role_guid: &str, scope: &str| {
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}", guid(9, n));
        let a: mlpolicy_azure::RoleAssignment = serde_json::from_value(serde_json::json!({
            "id": id,
            "name": guid(9, n),
            "properties": {
                "roleDefinitionId": format!("{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"),
                "principalId": principal,
                "principalType": kind,
                "scope": scope,
            }
        }))
        .expect("role assignment");
        live.role_assignments.insert(id.to_ascii_lowercase(), a);
    };
    let data_scientist = "f6c7c914-8db3-469d-8ca1-694a8f32e121";
    let compute_operator = "e503ece1-11d0-4e8e-8e2c-7a6c3bf38815";
    let blob_contributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
    let reader = "acdd72a7-3385-43ef-bd57-21aed0219697";
    for t in 0..TEAMS {
        let group = guid(1, t);
        let identity = guid(2, t);
        assignment(5 * t, &group, "Group", data_scientist, &workspace(t));
        assignment(5 * t + 1, &group, "Group", reader, &storage(t));
        assignment(5 * t + 2, &identity, "ServicePrincipal", compute_operator, &workspace(t));
        assignment(5 * t + 3, &identity, "ServicePrincipal", blob_contributor, &storage(t));
        assignment(5 * t + 4, &group, "Group", reader, &rg(t));
    }
    for t in 0..TEAMS {
        let group = guid(1, t);
        let mut members: BTreeSet<String> = (0..20).map(|m| guid(3, t * 20 + m)).collect();
        if t % 10 == 0 && t + 1 < TEAMS {
            // Nest the next team's group: its members reach this team's workspace too.
            members.insert(guid(1, t + 1));
        }
        for m in &members {
            live.principals.entry(m.clone()).or_insert_with(|| PrincipalInfo {
                id: m.clone(),
                kind: PrincipalKind::User,
                display: format!("user{}@contoso.com", &m[24..]),
                app_id: None,
            });
        }
        live.principals.insert(
            group.clone(),
            PrincipalInfo {
                id: group.clone(),
                kind: PrincipalKind::Group,
                display: format!("ml-team-{t:04}"),
                app_id: None,
            },
        );
        live.principals.insert(
            guid(2, t),
            PrincipalInfo {
                id: guid(2, t),
                kind: PrincipalKind::ServicePrincipal,
                display: format!("id-team-{t:04}"),
                app_id: None,
            },
        );
        live.groups
            .insert(group, LiveGroup { group: mlpolicy_azure::Group::default(), members, owners: BTreeSet::new() });
    }
    live
}

fn answer(live: &LiveState, desired: &DesiredState, query: &str) -> (usize, usize) {
    let stages = std::env::var_os("ACCESS_BENCH_STAGES").is_some();
    let t = Instant::now();
    let lap = |name: &str| {
        if stages {
            eprintln!("  {name}: {:.1} ms", ms(t.elapsed()));
        }
    };
    let query = if query.starts_with('/') {
        access::Query { principal: None, scope: Some(query) }
    } else {
        access::Query { principal: Some(query), scope: None }
    };
    let report = access::live_report(desired, live, &BTreeMap::new(), &query).expect("report");
    lap("report");
    let text = mlpolicy::render::access_text(&report);
    lap("text");
    (report.entries.len(), text.len())
}

fn main() {
    let live = tenant();
    let desired = DesiredState::default();
    println!(
        "tenant: {} role assignments, {} groups, {} principals",
        live.role_assignments.len(),
        live.groups.len(),
        live.principals.len()
    );
    let queries = [
        ("--scope workspace (nested team)", workspace(10)),
        ("--scope resource group", rg(7)),
        ("--scope subscription (everything)", SUB.to_owned()),
        ("user through a nested group", "user0000000000dc@contoso.com".to_owned()),
    ];
    println!("{:<36} {:>8} {:>12} {:>12}", "query", "entries", "median", "min");
    for (name, q) in queries {
        let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
        let mut entries = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            let (n, _) = answer(&live, &desired, &q);
            times.push(start.elapsed());
            entries = n;
        }
        times.sort();
        println!("{name:<36} {entries:>8} {:>9.1} ms {:>9.1} ms", ms(times[RUNS / 2]), ms(times[0]));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
