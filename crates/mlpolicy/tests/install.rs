//! Installation and distribution: `--version` names the commit, completions and man pages come
//! from the real command definition, and the install command of the README names this package.

use crate::support::{mlpolicy, root};

/// `mlpolicy 0.1.0 (1a2b3c4d5e6f)`: the package version and the commit (or `unknown`).
#[test]
fn version_names_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let run = mlpolicy(tmp.path(), &["--version"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let line = run.stdout.trim_end();
    let rest =
        line.strip_prefix(&format!("mlpolicy {} (", env!("CARGO_PKG_VERSION"))).unwrap_or_else(|| panic!("{line}"));
    let commit = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line}"));
    assert!(commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{line}");
    // Built from this checkout (and no MLPOLICY_COMMIT override): the commit is HEAD's.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if let (Some(head), "git") = (head, env!("MLPOLICY_COMMIT_SOURCE")) {
        assert_eq!(commit, head, "{line}");
    }
    // Every command shows the same version.
    let plan = mlpolicy(tmp.path(), &["plan", "--version"]);
    assert_eq!(plan.stdout.trim_end(), format!("mlpolicy-plan {} ({commit})", env!("CARGO_PKG_VERSION")));
}

const COMMANDS: [&str; 13] = [
    "validate",
    "fmt",
    "graph",
    "plan",
    "apply",
    "audit",
    "show",
    "access",
    "export",
    "emulator",
    "completions",
    "man",
    "lsp",
];

#[test]
fn completions_cover_every_command_in_every_shell() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = mlpolicy(tmp.path(), &["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.transcript());
        assert!(run.stdout.len() > 1000, "{shell}: {} bytes", run.stdout.len());
        for cmd in COMMANDS {
            assert!(run.stdout.contains(cmd), "{shell} completion lacks `{cmd}`");
        }
        // Fish writes long flags as `-l NAME`, the others as `--NAME`.
        for flag in ["detailed-exitcode", "pr-comment", "auto-approve", "emulator-profile"] {
            let written = if shell == "fish" { format!("-l {flag}") } else { format!("--{flag}") };
            assert!(run.stdout.contains(&written), "{shell} completion lacks `{written}`");
        }
    }
    let bad = mlpolicy(tmp.path(), &["completions", "tcsh"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("possible values: bash, elvish, fish, powershell, zsh"), "{}", bad.stderr);
}

#[cfg(unix)]
#[test]
fn bash_completion_loads_and_completes_a_command() {
    let has_bash = std::process::Command::new("bash").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_bash {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = mlpolicy(tmp.path(), &["completions", "bash"]).stdout;
    std::fs::write(tmp.path().join("c.bash"), script).unwrap();
    // Complete `mlpolicy pl<TAB>` the way bash's programmable completion calls the function.
    let probe = "source ./c.bash; COMP_WORDS=(mlpolicy pl); COMP_CWORD=1; COMP_LINE='mlpolicy pl'; COMP_POINT=11; \
                 _mlpolicy mlpolicy pl mlpolicy; printf '%s\\n' \"${COMPREPLY[@]}\"";
    let out = std::process::Command::new("bash").args(["-c", probe]).current_dir(tmp.path()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "plan", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn man_pages_one_per_command() {
    let tmp = tempfile::tempdir().unwrap();
    let page = mlpolicy(tmp.path(), &["man"]);
    assert_eq!(page.code, 0, "{}", page.transcript());
    assert!(
        page.stdout.starts_with(".ie \\n(.g .ds Aq") || page.stdout.contains(".TH mlpolicy 1"),
        "{}",
        &page.stdout[..200.min(page.stdout.len())]
    );
    let run = mlpolicy(tmp.path(), &["man", "--out", "man"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let mut files: Vec<String> = std::fs::read_dir(tmp.path().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = COMMANDS.iter().map(|c| format!("mlpolicy-{c}.1")).collect();
    expected.push("mlpolicy.1".into());
    expected.sort();
    assert_eq!(files, expected);
    let plan = std::fs::read_to_string(tmp.path().join("man/mlpolicy-plan.1")).unwrap();
    assert!(plan.contains(".TH mlpolicy-plan 1"), "{plan}");
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
    assert_eq!(std::fs::read_to_string(tmp.path().join("man/mlpolicy.1")).unwrap(), page.stdout);
}

/// The README's `cargo install --locked --path crates/mlpolicy` installs a binary called
/// `mlpolicy`: the path is this package, whose name and binary are `mlpolicy`.
#[test]
fn readme_install_command_names_this_package() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo install --locked --path crates/mlpolicy\n"), "README install command");
    // What `cargo install --path crates/mlpolicy` reads: the package at that path and its bins.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1", "--manifest-path"])
        .arg(root().join("crates/mlpolicy/Cargo.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = root().join("crates/mlpolicy").canonicalize().unwrap();
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| std::path::Path::new(p["manifest_path"].as_str().unwrap()).parent() == Some(dir.as_path()))
        .expect("the package at crates/mlpolicy");
    assert_eq!(package["name"], "mlpolicy");
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(bins, ["mlpolicy"]);
}
