//! Benchmark of `validate` (source → syntax → resolve → check → policies → graph) on synthetic
//! configurations from `mlpolicy_lang::synth`: 2,000 and 4,000 teams (each team: a group of 20
//! members, an identity with 2 federated credentials, 5 grants). Each size is compiled in a
//! child process of this binary so that its peak resident memory (`VmHWM`) is its own.
//!
//! Run with `cargo bench --bench validate`; figures are recorded in docs/performance.md.

use std::process::Command;
use std::time::Instant;

use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::synth;

/// The allocator the `mlpolicy` binary uses (src/main.rs), so that figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 5;

fn main() {
    if let Ok(dir) = std::env::var("MLPOLICY_BENCH_DIR") {
        child(std::path::Path::new(&dir));
        return;
    }
    println!(
        "{:>6}  {:>9}  {:>10}  {:>8}  {:>12}  {:>12}  {:>10}",
        "teams", "policies", "bytes", "objects", "median wall", "min wall", "peak RSS"
    );
    for teams in [2_000, 4_000] {
        for packs in ["none", "baseline"] {
            let dir = tempfile::tempdir().expect("temporary directory");
            let files = synth::generate(teams);
            let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
            for (name, text) in &files {
                let text = if name == "mlpolicy.yaml" && packs == "baseline" {
                    format!("{text}policies: [baseline]\n")
                } else {
                    text.clone()
                };
                std::fs::write(dir.path().join(name), text).expect("write synthetic file");
            }
            let exe = std::env::current_exe().expect("own path");
            let out = Command::new(exe)
                .env("MLPOLICY_BENCH_DIR", dir.path())
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("run child");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let line = String::from_utf8_lossy(&out.stdout);
            println!("{teams:>6}  {packs:>9}  {bytes:>10}  {}", line.trim_end());
        }
    }
}

/// Compiles `dir` RUNS times; prints objects, median and min wall time, and peak RSS.
fn child(dir: &std::path::Path) {
    let mut times = Vec::with_capacity(RUNS);
    let mut objects = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let compiled = mlpolicy_lang::compile(dir, &Overrides::default());
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!compiled.has_errors(), "synthetic configuration has errors: {:?}", compiled.diagnostics.items.first());
        objects = compiled.model.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{objects:>8}  {:>9.1} ms  {:>9.1} ms  {:>10}",
        times[RUNS / 2],
        times[0],
        peak_rss().unwrap_or_else(|| "n/a".to_owned())
    );
}

/// `VmHWM` from `/proc/self/status` (Linux only).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    #[expect(clippy::cast_precision_loss, reason = "a memory size shown to one decimal")]
    let mib = kib as f64 / 1024.0;
    Some(format!("{mib:.1} MiB"))
}
