//! Benchmark of validation on large synthetic configurations (`mlpolicy::synth`): 2,000 and
//! 4,000 teams, each written to a temporary directory and loaded. Prints wall time per step and
//! the process's peak resident memory (`VmHWM`, cumulative over the run).
//!
//! Run with `cargo bench --bench validate`.

use std::time::{Duration, Instant};

use mlpolicy::source::{self, Sources};
use mlpolicy::synth;

fn main() {
    println!("{:>6}  {:>6}  {:>10}  {:>10}  {:>10}  {:>12}", "teams", "files", "bytes", "generate", "load", "peak RSS");
    for teams in [2_000, 4_000] {
        let dir = tempfile::tempdir().expect("temporary directory");

        let started = Instant::now();
        let files = synth::generate(teams);
        let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
        for (name, text) in &files {
            std::fs::write(dir.path().join(name), text).expect("write synthetic file");
        }
        let generate = started.elapsed();

        let started = Instant::now();
        let mut sources = Sources::default();
        let diags = source::load_dir(dir.path(), &mut sources);
        assert!(!diags.has_errors(), "synthetic configuration failed to load: {diags:?}");
        // TODO(lead): call compile() here and time it; assert it reports no errors.
        let load = started.elapsed();

        println!(
            "{teams:>6}  {:>6}  {bytes:>10}  {:>10}  {:>10}  {:>12}",
            files.len(),
            millis(generate),
            millis(load),
            peak_rss().unwrap_or_else(|| "n/a".to_owned()),
        );
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
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
