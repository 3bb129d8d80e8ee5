//! Every example command in the documentation and in `--help` runs as written: the `mlpolicy`
//! commands of the fenced code blocks of README.md, docs/*.md and examples/*/README.md
//! (`cargo run --locked -- ARGS` counts as `mlpolicy ARGS`; synopsis lines with `[...]` or
//! upper-case placeholders are not examples), and the `Example:` lines of every subcommand's
//! `--help`. Each runs, in the order written, in a directory holding a copy of
//! examples/contoso-ml (with `examples/contoso-ml` and `examples/quickstart` beside it, for the
//! commands that name them); a command that reaches Azure gets `--emulator` when it lacks it,
//! the only change made. Only the `mlpolicy` part of a pipeline or `&&` chain is run. None may be
//! refused by the argument parser (clap's `error: ... Usage:`) or panic, and apart from the few
//! listed (they show an error on purpose, or need what this directory does not have) each
//! exits 0, or 2 (changes) or 3 (a policy deny) where that is its point.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{mlpolicy, root};

/// Subcommands that read Azure, and so get `--emulator` here.
const AZURE: [&str; 5] = ["plan", "apply", "audit", "export", "access"];

/// Examples that are expected to exit non-zero, with why.
const EXPECTED_FAILURES: [(&str, &str); 6] = [
    // Reads a subscription the emulator's tenant does not have: E0802/E0501, not a usage error.
    ("mlpolicy export --out ml --subscription prod=6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60", "no such subscription"),
    // The emulator seed file is the reader's own.
    ("mlpolicy emulator --seed tenant.yaml", "the seed file is the reader's"),
    // Diagnostics examples show their error.
    ("mlpolicy access --scope workspace.frad", "E0902 on purpose"),
    ("mlpolicy access group.leds", "E0901 on purpose"),
    // Asks for confirmation: without a terminal it says to pass `--auto-approve`.
    ("mlpolicy apply examples/contoso-ml                 # plan, ask, apply", "needs a terminal"),
    // An editor starts it and speaks LSP on its stdin; closed stdin without `shutdown` is exit 1.
    ("mlpolicy lsp ", "needs an editor on stdin"),
];

/// One example: where it was written and the words to run.
struct Example {
    origin: String,
    line: String,
    args: Vec<String>,
}

/// Splits a shell line into words: `'...'` and `"..."` quoting, `#` comments; stops at `|`,
/// `>`, `&&` and `;` (only the first command of a pipeline or chain).
fn words(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut skip_rest_of_command = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            ' ' | '\t' => {
                if in_word && !skip_rest_of_command {
                    commands.last_mut().unwrap().push(std::mem::take(&mut word));
                }
                word.clear();
                in_word = false;
            }
            '#' if !in_word => break,
            '|' | '>' | ';' => {
                if in_word && !skip_rest_of_command {
                    commands.last_mut().unwrap().push(std::mem::take(&mut word));
                }
                word.clear();
                in_word = false;
                skip_rest_of_command = true;
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                if in_word && !skip_rest_of_command {
                    commands.last_mut().unwrap().push(std::mem::take(&mut word));
                }
                word.clear();
                in_word = false;
                skip_rest_of_command = false;
                commands.push(Vec::new());
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word && !skip_rest_of_command {
        commands.last_mut().unwrap().push(word);
    }
    commands.into_iter().filter(|c| !c.is_empty()).collect()
}

/// The `mlpolicy` commands of one line, as argument lists without the program name.
fn commands_of(line: &str) -> Vec<Vec<String>> {
    let line = line.trim().trim_start_matches("$ ");
    let synopsis = line.contains(" [")
        || line.split_whitespace().any(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_uppercase()));
    if synopsis {
        return Vec::new();
    }
    words(line)
        .into_iter()
        .filter_map(|mut c| {
            if c.first().is_some_and(|w| w == "mlpolicy") {
                c.remove(0);
                Some(c)
            } else if c.starts_with(&["cargo".to_owned(), "run".to_owned()]) {
                let at = c.iter().position(|w| w == "--")?;
                Some(c.split_off(at + 1))
            } else {
                None
            }
        })
        .collect()
}

/// The examples of the fenced code blocks of one markdown file.
fn from_markdown(path: &Path, out: &mut Vec<Example>) {
    let text = std::fs::read_to_string(path).unwrap();
    let origin = path.strip_prefix(root()).unwrap_or(path).display().to_string();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            for args in commands_of(line) {
                out.push(Example { origin: origin.clone(), line: line.trim().to_owned(), args });
            }
        }
    }
}

/// The `Example:` lines of every subcommand's `--help`.
fn from_help(dir: &Path, out: &mut Vec<Example>) {
    let top = mlpolicy(dir, &["--help"]);
    let mut in_commands = false;
    let mut subcommands = Vec::new();
    for line in top.stdout.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
        } else if in_commands && line.starts_with("  ") {
            let name = line.split_whitespace().next().unwrap().to_owned();
            if name != "help" {
                subcommands.push(name);
            }
        } else if in_commands {
            in_commands = false;
        }
    }
    assert!(subcommands.len() >= 10, "{}", top.stdout);
    for sub in subcommands {
        let help = mlpolicy(dir, &[&sub, "--help"]);
        assert_eq!(help.code, 0, "{}", help.transcript());
        let mut in_example = false;
        for line in help.stdout.lines() {
            if line.starts_with("Example") {
                in_example = true;
            } else if in_example && line.starts_with("  mlpolicy ") {
                for args in commands_of(line) {
                    out.push(Example { origin: format!("mlpolicy {sub} --help"), line: line.trim().to_owned(), args });
                }
            } else if line.trim().is_empty() || !line.starts_with(' ') {
                in_example = false;
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A clap refusal: what the parser prints for an unknown flag, a missing or invalid value.
fn usage_error(stderr: &str) -> bool {
    stderr.contains("Usage: mlpolicy")
        || stderr.contains("error: unexpected argument")
        || stderr.contains("error: invalid value")
}

/// `mlpolicy emulator ...` serves until stopped: it runs until it says it listens (then it is
/// stopped: exit 0), or until it exits by itself.
fn run_server(dir: &Path, args: &[String]) -> (i32, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlpolicy"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    if line.contains("listening on") {
        child.kill().unwrap();
        let _ = child.wait();
        return (0, String::new());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn every_example_in_the_docs_and_help_runs_as_written() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    copy_dir(&root().join("examples/contoso-ml"), dir);
    copy_dir(&root().join("examples/contoso-ml"), &dir.join("examples/contoso-ml"));
    copy_dir(&root().join("examples/quickstart"), &dir.join("examples/quickstart"));
    // The estate a reader has once they tried `apply` (whose first example asks on a terminal):
    // `access --live` and the export of its state read it.
    let applied = mlpolicy(dir, &["apply", "examples/contoso-ml", "--emulator", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());

    let mut examples = Vec::new();
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    docs.sort();
    let readmes = [root().join("README.md"), root().join("examples/quickstart/README.md")];
    for path in readmes.iter().chain(&docs).filter(|p| p.extension().is_some_and(|x| x == "md") && p.exists()) {
        from_markdown(path, &mut examples);
    }
    let from_docs = examples.len();
    from_help(dir, &mut examples);
    assert!(from_docs >= 8 && examples.len() - from_docs >= 20, "{from_docs} from docs, {} in all", examples.len());

    let mut failures = Vec::new();
    for ex in &examples {
        let mut args = ex.args.clone();
        if args.first().is_some_and(|c| AZURE.contains(&c.as_str())) && !args.iter().any(|a| a == "--emulator") {
            args.push("--emulator".into());
        }
        if args.first().is_some_and(|c| c == "export") {
            // Each export example starts from a fresh directory, as its reader's would.
            let _ = std::fs::remove_dir_all(dir.join("ml"));
        }
        let (code, stderr) = if args.first().is_some_and(|c| c == "emulator") {
            run_server(dir, &args)
        } else {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = mlpolicy(dir, &refs);
            (run.code, run.stderr)
        };
        let expected = EXPECTED_FAILURES.iter().any(|(prefix, _)| ex.line.starts_with(prefix));
        let ok = matches!(code, 0 | 2 | 3) || expected;
        if usage_error(&stderr) || stderr.contains("panicked") || !ok {
            failures.push(format!("{} `{}` → mlpolicy {}: exit {code}\n{stderr}", ex.origin, ex.line, args.join(" ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} examples fail:\n\n{}", failures.len(), examples.len(), failures.join("\n"));
}
