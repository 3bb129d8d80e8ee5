//! Two `--emulator` commands on one configuration directory: the emulator's state file is
//! locked for one process at a time, so the second waits (saying so on stderr), then sees
//! everything the first wrote; it fails clearly when the wait runs out; and a killed holder
//! never leaves the lock behind.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlpolicy_emulator::Tenant;

use crate::support::{copy_to_temp, mlpolicy, root};

const SEED: &str = "users:\n  - user_principal_name: alice@contoso.com\n  - user_principal_name: bob@contoso.com\n";

fn quickstart() -> tempfile::TempDir {
    let dir = copy_to_temp(&root().join("examples/quickstart"));
    std::fs::write(dir.path().join("emulator-seed.yaml"), SEED).unwrap();
    dir
}

fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlpolicy"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1").env_remove("GITHUB_ACTIONS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Reads a child's stdout until a line containing `marker`, then keeps draining it on a
/// thread; returns everything read when the child ends.
fn wait_for_line(child: &mut Child, marker: &str) -> std::thread::JoinHandle<String> {
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            break;
        }
    }
    assert!(seen.contains(marker), "`{marker}` never printed:\n{seen}");
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    })
}

/// Kills a child that runs until stopped (an emulator) when dropped, so that a failing
/// assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Done {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn finish(mut child: Child, stdout: Option<std::thread::JoinHandle<String>>) -> Done {
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let stdout = if let Some(h) = stdout {
        h.join().unwrap()
    } else {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut s).unwrap();
        s
    };
    let ok = child.wait().unwrap().success();
    Done { ok, stdout, stderr }
}

/// Text with miette's wrapping undone: words joined by single spaces, no frame characters.
fn flat(text: &str) -> String {
    text.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ")
}

fn state(dir: &Path) -> Tenant {
    Tenant::load(&dir.join(".mlpolicy/emulator.yaml")).unwrap()
}

const APPLY: [&str; 4] = ["apply", ".", "--emulator", "--auto-approve"];
const SLOW_APPLY: [&str; 6] = ["apply", ".", "--emulator", "--auto-approve", "--emulator-profile", "azure"];

#[test]
fn a_second_apply_on_one_directory_waits_then_plans_nothing() {
    let dir = quickstart();
    // The first apply runs at Azure's pace (replication delay, LRO polls): seconds.
    let mut first = spawn(dir.path(), &SLOW_APPLY, &[]);
    let first_out = wait_for_line(&mut first, "Creating...");
    let second = spawn(dir.path(), &APPLY, &[]);
    let first = finish(first, Some(first_out));
    let second = finish(second, None);
    for run in [&first, &second] {
        assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
        assert!(!run.stderr.contains("No such file"), "{}", run.stderr);
    }
    assert!(first.stdout.contains("Apply complete: 7 added"), "{}", first.stdout);
    assert!(
        second.stdout.contains("No changes."),
        "the second apply did not see the first's writes:\n{}",
        second.stdout
    );
    let t = state(dir.path());
    assert_eq!(t.groups.len(), 1);
    assert_eq!(t.identities.len(), 1);
    assert_eq!(t.role_assignments.len(), 2);
    let plan = mlpolicy(dir.path(), &["plan", ".", "--emulator", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(second.stderr.contains("is in use by another emulator (pid "), "{}", second.stderr);
    assert!(second.stderr.contains("waiting up to 2m"), "{}", second.stderr);
}

#[test]
fn two_configurations_sharing_one_emulator_state_keep_both_applies_writes() {
    // Two configurations, different owners and names, whose `.mlpolicy` is one directory:
    // without the lock the apply that saves last erases the other's objects.
    let a = quickstart();
    let b = quickstart();
    let yaml = std::fs::read_to_string(b.path().join("mlpolicy.yaml")).unwrap();
    std::fs::write(
        b.path().join("mlpolicy.yaml"),
        yaml.replace("owner: quickstart-dev", "owner: quickstart-test").replace("env: dev", "env: test"),
    )
    .unwrap();
    std::fs::create_dir(a.path().join(".mlpolicy")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(a.path().join(".mlpolicy"), b.path().join(".mlpolicy")).unwrap();
    #[cfg(not(unix))]
    return;
    let mut first = spawn(a.path(), &SLOW_APPLY, &[]);
    let first_out = wait_for_line(&mut first, "Creating...");
    let second = spawn(b.path(), &APPLY, &[]);
    let first = finish(first, Some(first_out));
    let second = finish(second, None);
    for run in [&first, &second] {
        assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("Apply complete: 7 added"), "{}", run.stdout);
    }
    let t = state(a.path());
    let mut groups: Vec<&str> = t.resource_groups.iter().map(|r| r.name.as_str()).collect();
    groups.sort_unstable();
    assert_eq!(groups, ["rg-ml-quickstart-dev", "rg-ml-quickstart-test"]);
    assert_eq!(t.groups.len(), 2, "{:?}", t.groups);
    assert_eq!(t.role_assignments.len(), 4);
    for dir in [a.path(), b.path()] {
        let plan = mlpolicy(dir, &["plan", ".", "--emulator", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "{}", plan.transcript());
    }
    assert!(second.stderr.contains("waiting up to"), "{}", second.stderr);
}

#[test]
fn a_held_state_fails_clearly_after_the_wait_and_a_killed_holder_releases_it() {
    let dir = quickstart();
    std::fs::create_dir(dir.path().join(".mlpolicy")).unwrap();
    // A standalone emulator on the directory's state file holds it while it runs.
    let mut holder = KillOnDrop(spawn(
        dir.path(),
        &["emulator", "--state", ".mlpolicy/emulator.yaml", "--seed", "emulator-seed.yaml"],
        &[],
    ));
    let holder_out = wait_for_line(&mut holder.0, "listening on");
    let started = Instant::now();
    let run = finish(spawn(dir.path(), &APPLY, &[("MLPOLICY_EMULATOR_LOCK_TIMEOUT", "1s")]), None);
    assert!(!run.ok, "{}", run.stdout);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let pid = format!("pid {}", holder.0.id());
    let said = flat(&run.stderr);
    assert!(said.contains("waiting up to 1s"), "{said}");
    assert!(said.contains(&format!("is still in use by another emulator ({pid}) after waiting 1s")), "{said}");
    assert!(said.contains("MLPOLICY_EMULATOR_LOCK_TIMEOUT"), "{said}");
    // So does a second standalone emulator, with its own flag.
    let second = finish(
        spawn(dir.path(), &["emulator", "--state", ".mlpolicy/emulator.yaml", "--lock-timeout", "300ms"], &[]),
        None,
    );
    assert!(!second.ok && flat(&second.stderr).contains("still in use"), "{}", second.stderr);
    // SIGKILL: the operating system drops the lock with the process.
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();
    drop(holder_out);
    let run = finish(spawn(dir.path(), &APPLY, &[("MLPOLICY_EMULATOR_LOCK_TIMEOUT", "5s")]), None);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("waiting"), "{}", run.stderr);
}
