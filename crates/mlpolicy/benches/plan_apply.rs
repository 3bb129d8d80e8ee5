//! `plan` and `apply` of the 2,000-team synthetic estate (`mlpolicy_lang::synth`) against the emulator
//! with 30 ms latency per request, through the library functions the CLI calls.
//!
//! Setup (not timed): the emulator is seeded with the 42,000 users the configuration names,
//! then the configuration is applied once with no latency, so the tenant equals the desired
//! state. Then, with 30 ms latency:
//!
//! 1. **No-op plan**, as `mlpolicy plan DIR` does it: compile, connect (client options of the
//!    CLI), `mlpolicy_engine::plan` (live read + diff), render as text. The plan must have no change.
//! 2. **Apply of 1,000 new grants**, as `mlpolicy apply DIR --auto-approve` does it at the
//!    default parallelism (10): compile, connect, plan, render, apply. A further file adds one
//!    `Reader` grant per team for 1,000 teams; every one must be created, and a plan after it
//!    must be empty again.
//!
//! Run with `cargo bench --bench plan_apply`. `PLAN_BENCH_TEAMS` (default 2000), `PLAN_BENCH_RUNS`
//! (default 3), `PLAN_BENCH_PAGE_SIZE` (ARM page size, default 1000 as in `benches/read.rs`) and
//! `PLAN_BENCH_CONCURRENCY` (the plan's client concurrency, default the client's) override the
//! shape.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use mlpolicy_azure::{AzureClient, ClientOptions, Cloud, Credential, SecretString, TokenSource};
use mlpolicy_emulator::{Emulator, EmulatorConfig, Realism};
use mlpolicy_engine::apply::{ApplyEvent, ApplyOptions, DEFAULT_PARALLELISM};
use mlpolicy_engine::diff::DiffOptions;
use mlpolicy_engine::plan::Action;
use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::synth;
use serde_json::{Value, json};

/// The allocator the `mlpolicy` binary uses (src/main.rs), so that figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LATENCY_MS: u64 = 30;
const NEW_GRANTS: usize = 1_000;
/// What `apply` asks of the client (src/cli/apply.rs): twice its parallelism in flight, at
/// least the client's default.
fn apply_concurrency() -> usize {
    (DEFAULT_PARALLELISM * 2).max(ClientOptions::default().concurrency)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux only).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "n/a".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The users the synthetic configuration names, as an emulator seed.
fn seed(teams: usize, tenant: &str) -> Value {
    let mut users = Vec::with_capacity(teams * (synth::MEMBERS_PER_GROUP + 1));
    for team in 0..teams {
        for m in 0..synth::MEMBERS_PER_GROUP {
            users.push(json!({"user_principal_name": format!("t{team:04}-m{m:02}@contoso.com")}));
        }
        users.push(json!({"user_principal_name": format!("lead-t{team:04}@contoso.com")}));
    }
    json!({"tenant_id": tenant, "users": users})
}

/// One more grant per team for the first `n` teams: `Reader` for its group on its workspace.
fn extra_grants(n: usize) -> String {
    let mut out = String::from("# Added by benches/plan_apply.rs: one new grant per team.\n\n");
    for team in 0..n {
        let _ = writeln!(
            out,
            "grant \"Reader\" to group.ds_t{team:04} on workspace.ws_{:04}",
            team / synth::TEAMS_PER_WORKSPACE
        );
    }
    out
}

/// The client `connect` builds for the emulator, with `concurrency` requests in flight.
fn client(base: &str, tenant: &str, concurrency: Option<usize>) -> AzureClient {
    let mut options = ClientOptions::default();
    if let Some(c) = concurrency {
        options.concurrency = c;
    }
    AzureClient::new(
        Cloud::single_endpoint(base).expect("emulator URL"),
        tenant,
        TokenSource::credential(Credential::ClientSecret {
            client_id: "00000000-0000-0000-0000-00000000c11e".into(),
            secret: SecretString::new("emulator"),
        }),
        options,
    )
    .expect("client")
}

struct PlanRun {
    compile: Duration,
    plan: Duration,
    render: Duration,
    total: Duration,
    changes: usize,
    text_bytes: usize,
}

/// `mlpolicy plan DIR`: compile, connect, read + diff, render.
async fn plan_once(dir: &Path, base: &str, tenant: &str, concurrency: Option<usize>) -> PlanRun {
    let start = Instant::now();
    let overrides = Overrides::default();
    let compiled = mlpolicy_lang::compile(dir, &overrides);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics.items.first());
    let compile = start.elapsed();
    let c = client(base, tenant, concurrency);
    let t = Instant::now();
    let planned = mlpolicy_engine::plan(&compiled, &overrides, &c, &DiffOptions::default()).await.expect("plan");
    let plan = t.elapsed();
    assert!(!planned.diagnostics.has_errors(), "{:?}", planned.diagnostics.items.first());
    let t = Instant::now();
    let text = mlpolicy::render::text(&planned.plan, &mlpolicy::render::Style { color: false, width: 100 });
    let render = t.elapsed();
    PlanRun {
        compile,
        plan,
        render,
        total: start.elapsed(),
        changes: planned.plan.actions().count(),
        text_bytes: text.len(),
    }
}

async fn set_realism(base: &str, realism: &Realism) {
    let put = reqwest::Client::new()
        .put(format!("{base}/_emulator/realism"))
        .json(realism)
        .send()
        .await
        .expect("set realism");
    assert!(put.status().is_success());
}

async fn emulator_stats(base: &str, reset: bool) -> Value {
    let http = reqwest::Client::new();
    if reset {
        let _ = http.post(format!("{base}/_emulator/stats/reset")).send().await;
        return Value::Null;
    }
    http.get(format!("{base}/_emulator/stats")).send().await.expect("stats").json().await.expect("stats json")
}

fn requests(stats: &Value) -> String {
    let n = |k: &str| stats[k].as_u64().unwrap_or_default();
    format!(
        "ARM {} reads + {} writes, Graph {} reads + {} writes + {} $batch ({} inner)",
        n("arm_read"),
        n("arm_write"),
        n("graph_read"),
        n("graph_write"),
        n("graph_batch"),
        n("graph_batch_items")
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let teams = env_usize("PLAN_BENCH_TEAMS", 2_000);
    let runs = env_usize("PLAN_BENCH_RUNS", 3).max(1);
    let page = env_usize("PLAN_BENCH_PAGE_SIZE", 1_000);
    // `plan` leaves the client's default; this overrides it to compare.
    let plan_concurrency = std::env::var("PLAN_BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok());
    let dir = tempfile::tempdir().expect("temporary directory");
    synth::write(dir.path(), teams).expect("write the synthetic configuration");
    let compiled = mlpolicy_lang::compile(dir.path(), &Overrides::default());
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics.items.first());
    let tenant = compiled.settings.tenant.clone().expect("synthetic tenant");
    let seed_dir = tempfile::tempdir().expect("temporary directory");
    let seed_path = seed_dir.path().join("seed.yaml");
    std::fs::write(&seed_path, seed(teams, &tenant).to_string()).expect("write seed");

    let t = Instant::now();
    let realism = Realism { page_size: page, ..Realism::default() };
    let emu = Emulator::start(EmulatorConfig {
        seed_file: Some(seed_path),
        tenant: tenant.clone(),
        realism: realism.clone(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("start the emulator");
    let base = emu.base_url();
    println!(
        "## plan/apply bench: {teams} teams, ARM page size {page}, latency {LATENCY_MS} ms, plan client concurrency {}",
        plan_concurrency.unwrap_or(ClientOptions::default().concurrency)
    );
    println!("setup: emulator seeded with {} users in {}", teams * 21, secs(t.elapsed()));

    // Setup: apply the whole configuration once, without latency.
    let t = Instant::now();
    let setup_client = client(&base, &tenant, Some(64));
    let planned = mlpolicy_engine::plan(&compiled, &Overrides::default(), &setup_client, &DiffOptions::default())
        .await
        .expect("plan");
    let options = ApplyOptions { parallelism: 32, ..ApplyOptions::default() };
    let report =
        mlpolicy_engine::apply::apply(&planned.plan.changes, &planned.desired, &setup_client, &options, &|_| {}).await;
    assert!(report.ok(), "setup apply failed: {:?}", report.failed.first());
    println!("setup: {} ({} objects) in {} at latency 0", report.summary, report.done.len(), secs(t.elapsed()));
    drop(compiled);

    set_realism(&base, &Realism { latency_ms: LATENCY_MS, ..realism.clone() }).await;

    // 1. No-op plan.
    let mut totals = Vec::new();
    for run in 1..=runs {
        emulator_stats(&base, true).await;
        let cpu0 = cpu_seconds();
        let r = plan_once(dir.path(), &base, &tenant, plan_concurrency).await;
        let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
        let stats = emulator_stats(&base, false).await;
        assert_eq!(r.changes, 0, "the plan of an applied configuration must be empty");
        println!(
            "no-op plan run {run}: total {} (compile {}, read + diff {}, render {} for {} bytes); CPU {}; load {}",
            secs(r.total),
            secs(r.compile),
            secs(r.plan),
            secs(r.render),
            r.text_bytes,
            cpu.map_or_else(|| "n/a".into(), |c| format!("{c:.2} s")),
            load_average()
        );
        println!("  requests: {}", requests(&stats));
        totals.push(r.total);
    }
    // Where the plan's time goes: the live read alone, once.
    let compiled = mlpolicy_lang::compile(dir.path(), &Overrides::default());
    let owner = compiled.settings.owner.clone().unwrap_or_else(|| mlpolicy_engine::lower::DEFAULT_OWNER.to_owned());
    let desired = mlpolicy_engine::lower::lower(&compiled.model, &owner);
    let subscriptions: Vec<String> = compiled.settings.subscriptions.values().cloned().collect();
    let c = client(&base, &tenant, plan_concurrency);
    let t = Instant::now();
    let live = mlpolicy_engine::live::read(&c, &desired, &subscriptions).await.expect("live read");
    println!(
        "  of which the live read alone: {} ({} role assignments, {} groups, {} federated credentials)",
        secs(t.elapsed()),
        live.role_assignments.len(),
        live.groups.len(),
        live.federated.len()
    );
    drop((live, desired, compiled));
    totals.sort();
    println!("no-op plan: median {}, min {} (target < 5 s)", secs(totals[totals.len() / 2]), secs(totals[0]));

    // 2. Apply of 1,000 new grants at the default parallelism.
    let grants = NEW_GRANTS.min(teams);
    std::fs::write(dir.path().join("zz-extra-grants.mlp"), extra_grants(grants)).expect("write grants");
    emulator_stats(&base, true).await;
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let overrides = Overrides::default();
    let compiled = mlpolicy_lang::compile(dir.path(), &overrides);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics.items.first());
    let compile = start.elapsed();
    let c = client(&base, &tenant, Some(apply_concurrency()));
    let t = Instant::now();
    let planned = mlpolicy_engine::plan(&compiled, &overrides, &c, &DiffOptions::default()).await.expect("plan");
    let text = mlpolicy::render::text(&planned.plan, &mlpolicy::render::Style { color: false, width: 100 });
    let plan = t.elapsed();
    let creates = planned.plan.changes.iter().filter(|c| c.action == Action::Create).count();
    assert_eq!((creates, planned.plan.actions().count()), (grants, grants), "the plan adds exactly the new grants");
    let t = Instant::now();
    let lines = std::sync::atomic::AtomicUsize::new(0);
    let events = |e: ApplyEvent| {
        // The CLI formats one line per event; the bench formats and drops them.
        let text = format!("{e:?}");
        lines.fetch_add(usize::from(!text.is_empty()), std::sync::atomic::Ordering::Relaxed);
    };
    let report =
        mlpolicy_engine::apply::apply(&planned.plan.changes, &planned.desired, &c, &ApplyOptions::default(), &events)
            .await;
    let apply = t.elapsed();
    let total = start.elapsed();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let stats = emulator_stats(&base, false).await;
    assert!(report.ok(), "apply failed: {:?}", report.failed.first());
    assert_eq!(report.done.len(), grants);
    println!(
        "apply of {grants} new grants at parallelism {DEFAULT_PARALLELISM}: total {} (compile {}, plan {} for {} bytes, apply {}); {} progress events; CPU {}; load {}",
        secs(total),
        secs(compile),
        secs(plan),
        text.len(),
        secs(apply),
        lines.load(std::sync::atomic::Ordering::Relaxed),
        cpu.map_or_else(|| "n/a".into(), |c| format!("{c:.2} s")),
        load_average()
    );
    println!("  requests: {}", requests(&stats));
    println!("  {} (target < 10 s)", report.summary);

    // The apply converged: planning again finds nothing to do.
    let after = plan_once(dir.path(), &base, &tenant, plan_concurrency).await;
    assert_eq!(after.changes, 0, "a plan after the apply must be empty");
    println!("plan after apply: no changes ({})", secs(after.total));
    emu.shutdown().await;
}
