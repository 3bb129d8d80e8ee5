//! Records the git commit the binary is built from, for `mlpolicy --version`.
//!
//! `MLPOLICY_COMMIT` set in the build environment wins (a container or distribution build from a
//! tarball passes it); else `git rev-parse --short=12 HEAD` in the source tree; else `unknown`
//! (e.g. `cargo install` from a packaged crate, which has no `.git`).

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(dir).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=MLPOLICY_COMMIT");
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let from_env = std::env::var("MLPOLICY_COMMIT").ok().filter(|c| !c.trim().is_empty());
    let mut source = if from_env.is_some() { "env" } else { "git" };
    let commit = from_env.or_else(|| {
        let commit = git(&dir, &["rev-parse", "--short=12", "HEAD"])?;
        // Rebuild when HEAD moves: HEAD itself, the branch it points at, and packed refs.
        // (A path that does not exist would make cargo rerun this script on every build.)
        let branch = git(&dir, &["symbolic-ref", "-q", "HEAD"]);
        for path in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
            let watched = git(&dir, &["rev-parse", "--path-format=absolute", "--git-path", path]);
            if let Some(p) = watched.filter(|p| Path::new(p).exists()) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        Some(commit)
    });
    let commit: String =
        commit.unwrap_or_else(|| "unknown".to_owned()).chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let commit = if commit.is_empty() || commit == "unknown" {
        source = "none";
        "unknown".to_owned()
    } else {
        commit
    };
    println!("cargo:rustc-env=MLPOLICY_COMMIT={commit}");
    // Where it came from (`env`, `git` or `none`), for the version test.
    println!("cargo:rustc-env=MLPOLICY_COMMIT_SOURCE={source}");
}
