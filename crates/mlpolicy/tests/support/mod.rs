//! Shared helpers: run the real `mlpolicy` binary (validating every JSON document it prints
//! against the shipped schemas of docs/schema/), render diagnostics for snapshots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code, stdout and stderr in one text, for snapshots.
    pub fn transcript(&self) -> String {
        format!("exit code: {}\n----- stdout -----\n{}----- stderr -----\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `mlpolicy ARGS` in `cwd` with colour off and a fixed width.
pub fn mlpolicy(cwd: &Path, args: &[&str]) -> Run {
    mlpolicy_env(cwd, args, &[])
}

/// [`mlpolicy`] with extra environment variables. CI variables of the machine running the
/// tests (`GITHUB_ACTIONS`, `TF_BUILD`, `MLPOLICY_NOW`, ...) are removed first, so only `env`
/// sets them. A JSON document on stdout (`--format json`) is checked against its schema.
pub fn mlpolicy_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlpolicy"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1").env("COLUMNS", "100");
    for var in CI_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run mlpolicy");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if let Some(schema) = json_schema_of(args)
        && !run.stdout.trim().is_empty()
    {
        assert_valid_json(schema, &run.stdout);
    }
    run
}

/// Variables of CI systems that change what mlpolicy prints or does.
const CI_VARS: [&str; 21] = [
    "MLPOLICY_PLAN_KEY",
    "GITHUB_ACTIONS",
    "GITHUB_EVENT_PATH",
    "GITHUB_REPOSITORY",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_WORKSPACE",
    "GITHUB_SERVER_URL",
    "GITHUB_RUN_ID",
    "GITHUB_EVENT_NAME",
    "SYSTEM_TEAMPROJECT",
    "BUILD_BUILDID",
    "BUILD_SOURCESDIRECTORY",
    "TF_BUILD",
    "SYSTEM_ACCESSTOKEN",
    "SYSTEM_COLLECTIONURI",
    "SYSTEM_PULLREQUEST_PULLREQUESTID",
    "BUILD_REPOSITORY_ID",
    "MLPOLICY_NOW",
    "CI",
];

/// Which schema of docs/schema/ the stdout of `mlpolicy ARGS` follows, if it is JSON.
fn json_schema_of(args: &[&str]) -> Option<&'static str> {
    let json = args.windows(2).any(|w| w == ["--format", "json"]) || args.contains(&"--format=json");
    match args.first() {
        Some(&("plan" | "show")) if json => Some("plan.schema.json"),
        Some(&("validate" | "audit")) if json => Some("findings.schema.json"),
        Some(&"access") if json => Some("access.schema.json"),
        _ => None,
    }
}

/// Asserts that `text` is one JSON document valid against `docs/schema/NAME`.
pub fn assert_valid_json(name: &str, text: &str) {
    static VALIDATORS: OnceLock<Vec<(String, jsonschema::Validator)>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        let dir = root().join("docs/schema");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = e.unwrap().path();
            let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), validator));
        }
        out
    });
    let (_, validator) =
        validators.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no schema docs/schema/{name}"));
    let doc: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("output is not one JSON document ({e}):\n{text}"));
    let errors: Vec<String> =
        validator.iter_errors(&doc).map(|e| format!("{e} (at `{}`)", e.instance_path())).collect();
    assert!(errors.is_empty(), "output does not follow docs/schema/{name}:\n{}\n{text}", errors.join("\n"));
}

/// The repository root (examples, docs).
pub fn root() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    root.canonicalize().unwrap_or(root)
}

/// This folder: golden cases, snapshots and test data.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
}

/// Sub-directories of `dir`, sorted.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Copies a directory's regular files into a new temporary directory.
pub fn copy_to_temp(dir: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    tmp
}

/// Asserts `text` against `snapshots/FOLDER/NAME.snap`: the one set of insta settings every
/// golden test uses (no module prefix, no expression, no glob suffix), with optional regex
/// filters for values that change from run to run.
pub fn assert_golden(folder: &str, name: &str, text: &str, filters: &[(&str, &str)]) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(tests_dir().join("snapshots").join(folder));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.remove_snapshot_suffix();
    for (regex, replacement) in filters {
        settings.add_filter(regex, *replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}
