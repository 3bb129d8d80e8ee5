//! The CI templates of examples/ci/ parse as YAML, have the shape the README promises (OIDC
//! login, pull-request comment, SARIF upload, protected apply from the saved plan, one apply at
//! a time), and every `mlpolicy ...` command line in their scripts parses with the real command
//! definition: no template names a command or flag that does not exist.

use clap::CommandFactory as _;
use serde_norway::Value;

use crate::support::root;

fn load(rel: &str) -> Value {
    let path = root().join("examples/ci").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Every script of a workflow or pipeline: the values of `run` (GitHub), `bash`, `script` and
/// `inlineScript` (Azure Pipelines), wherever they are.
fn scripts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let script_key = k.as_str().is_some_and(|k| matches!(k, "run" | "bash" | "script" | "inlineScript"));
                match v {
                    Value::String(s) if script_key => out.push(s.clone()),
                    _ => scripts(v, out),
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| scripts(i, out)),
        _ => {}
    }
}

/// The `mlpolicy` command lines of a script, continuation lines joined, as shell words up to
/// the first redirection, pipe or list operator.
fn commands(script: &str) -> Vec<Vec<String>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        logical.push(std::mem::take(&mut current));
    }
    logical
        .into_iter()
        .filter(|l| l.starts_with("mlpolicy ") || l == "mlpolicy")
        .map(|l| {
            let mut words = Vec::new();
            for w in shell_words(&l) {
                if [">", ">>", "|", "||", "&&", ";", "2>", "2>&1"].contains(&w.as_str()) {
                    break;
                }
                words.push(w);
            }
            words
        })
        .collect()
}

/// Splits on blanks outside quotes and drops the quotes (enough for these templates).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Parses `words` with the real command definition.
fn check(words: &[String]) -> Result<(), String> {
    mlpolicy::cli::Cli::command().try_get_matches_from(words).map(|_| ()).map_err(|e| e.to_string())
}

/// Checks every command of a template; returns them.
fn checked_commands(rel: &str) -> Vec<String> {
    let mut all = Vec::new();
    scripts(&load(rel), &mut all);
    let mut found = Vec::new();
    for script in all {
        for words in commands(&script) {
            if let Err(e) = check(&words) {
                panic!("{rel}: `{}` is not a valid mlpolicy command line:\n{e}", words.join(" "));
            }
            found.push(words.join(" "));
        }
    }
    found
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

/// Every `uses:` of a workflow's steps.
fn uses(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Mapping(jobs) = &v["jobs"] {
        for (_, job) in jobs {
            for step in job["steps"].as_sequence().into_iter().flatten() {
                if let Some(u) = step["uses"].as_str() {
                    out.push(u.split('@').next().unwrap().to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn github_plan_workflow() {
    let wf = load("github/plan.yml");
    assert!(get(&wf, &["on", "pull_request"]).is_mapping(), "runs on pull_request");
    assert_eq!(get(&wf, &["permissions", "id-token"]).as_str(), Some("write"), "OIDC");
    assert_eq!(get(&wf, &["permissions", "pull-requests"]).as_str(), Some("write"), "the comment");
    let used = uses(&wf);
    for action in ["azure/login", "github/codeql-action/upload-sarif", "actions/upload-artifact"] {
        assert!(used.iter().any(|u| u == action), "plan.yml uses {action}: {used:?}");
    }
    let text = std::fs::read_to_string(root().join("examples/ci/github/plan.yml")).unwrap();
    assert!(!text.contains("secrets."), "no stored secret");
    let cmds = checked_commands("github/plan.yml");
    assert!(
        cmds.iter().any(|c| c.starts_with("mlpolicy plan ") && c.contains("--pr-comment") && c.contains("--out")),
        "{cmds:?}"
    );
    assert!(cmds.iter().any(|c| c.starts_with("mlpolicy validate ") && c.contains("--format sarif")), "{cmds:?}");
}

#[test]
fn github_apply_workflow() {
    let wf = load("github/apply.yml");
    let branches = get(&wf, &["on", "push", "branches"]).as_sequence().unwrap();
    assert!(branches.iter().any(|b| b.as_str() == Some("main")), "runs on push to main");
    assert!(get(&wf, &["concurrency", "group"]).as_str().is_some(), "a concurrency group");
    assert_eq!(get(&wf, &["concurrency", "cancel-in-progress"]).as_bool(), Some(false), "an apply is never cancelled");
    let apply = get(&wf, &["jobs", "apply"]);
    assert!(apply["environment"].as_str().is_some(), "apply runs in a protected environment");
    assert!(apply["needs"].as_str() == Some("plan"), "after the plan job");
    assert!(uses(&wf).iter().any(|u| u == "actions/download-artifact"), "from the saved plan");
    let cmds = checked_commands("github/apply.yml");
    assert!(cmds.iter().any(|c| c.starts_with("mlpolicy plan ") && c.contains("--out plan.json")), "{cmds:?}");
    assert!(
        cmds.iter().any(|c| c.starts_with("mlpolicy apply plan.json ") && c.contains("--auto-approve")),
        "{cmds:?}"
    );
}

#[test]
fn azure_devops_pipeline() {
    let p = load("azure-devops/azure-pipelines.yml");
    let text = std::fs::read_to_string(root().join("examples/ci/azure-devops/azure-pipelines.yml")).unwrap();
    assert!(
        text.contains("task: AzureCLI@2") && text.contains("azureSubscription: $(serviceConnection)"),
        "AzureCLI@2 with the service connection"
    );
    assert!(text.contains("SYSTEM_ACCESSTOKEN: $(System.AccessToken)"), "the token for the pull-request thread");
    let stages = p["stages"].as_sequence().unwrap();
    let apply = stages.iter().find(|s| s["stage"].as_str() == Some("Apply")).expect("an Apply stage");
    assert!(apply["jobs"][0]["environment"].as_str().is_some(), "apply in an environment");
    assert_eq!(apply["lockBehavior"].as_str(), Some("sequential"), "one apply at a time");
    let cmds = checked_commands("azure-devops/azure-pipelines.yml");
    assert!(cmds.iter().any(|c| c.starts_with("mlpolicy plan ") && c.contains("--pr-comment")), "{cmds:?}");
    assert!(cmds.iter().any(|c| c.starts_with("mlpolicy apply ") && c.contains("plan.json")), "{cmds:?}");
}

/// The checker itself: it finds commands in continued lines and rejects what does not exist.
#[test]
fn the_checker_rejects_unknown_commands_and_flags() {
    let cmds =
        commands("echo hi\nmlpolicy plan \"$DIR\" \\\n  --out plan.json \\\n  --pr-comment > x\n# mlpolicy nothing\n");
    assert_eq!(cmds, [vec!["mlpolicy", "plan", "$DIR", "--out", "plan.json", "--pr-comment"]]);
    assert!(check(&cmds[0]).is_ok());
    let bad = |line: &str| check(&commands(line)[0]).unwrap_err();
    assert!(bad("mlpolicy plan . --no-such-flag").contains("--no-such-flag"));
    assert!(bad("mlpolicy deploy .").contains("deploy"));
    assert!(bad("mlpolicy plan . --format yaml").contains("yaml"));
}

/// The release workflow builds every promised target with checksums, and the container image
/// runs as a non-root user on a minimal base.
#[test]
fn release_workflow_and_container_image() {
    let text = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    let wf: Value = serde_norway::from_str(&text).expect("release.yml is YAML");
    let matrix = get(&wf, &["jobs", "upload-assets", "strategy", "matrix", "include"]).as_sequence().unwrap();
    let targets: Vec<&str> = matrix.iter().map(|m| m["target"].as_str().unwrap()).collect();
    assert_eq!(
        targets,
        [
            "x86_64-unknown-linux-musl",
            "aarch64-unknown-linux-musl",
            "aarch64-apple-darwin",
            "x86_64-apple-darwin",
            "x86_64-pc-windows-msvc"
        ]
    );
    let steps = get(&wf, &["jobs", "upload-assets", "steps"]).as_sequence().unwrap();
    let upload = steps
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("taiki-e/upload-rust-binary-action@")))
        .expect("built and uploaded with taiki-e/upload-rust-binary-action");
    assert_eq!(upload["with"]["bin"].as_str(), Some("mlpolicy"));
    assert_eq!(upload["with"]["checksum"].as_str(), Some("sha256"));
    assert_eq!(upload["with"]["locked"].as_bool(), Some(true));

    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[1].contains("distroless/static") && froms[1].ends_with(":nonroot"), "{froms:?}");
    assert!(docker.lines().any(|l| l == "USER nonroot:nonroot"), "runs as a non-root user");
    assert!(docker.contains("cargo build --release --locked -p mlpolicy"), "builds this package, locked");
}
