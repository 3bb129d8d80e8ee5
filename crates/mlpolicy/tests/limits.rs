//! Hostile configurations — a few KB that would make gigabytes — answer quickly with the budget
//! diagnostic at the offending expression (language spec §4.1), run under a 1 GiB address-space
//! limit so that a budget that fails to hold aborts the process instead of passing; and
//! `limits:` in mlpolicy.yaml lifts a budget.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Run, assert_golden};

/// `validate .` in `dir` with at most 1 GiB of address space; the run and its wall time.
fn validate_bounded(dir: &Path) -> (Run, Duration) {
    let started = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" validate .")
        .arg(env!("CARGO_BIN_EXE_mlpolicy"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run mlpolicy under sh");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, started.elapsed())
}

fn config(main: &str, yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.mlp"), main).unwrap();
    std::fs::write(
        dir.path().join("mlpolicy.yaml"),
        format!("subscriptions:\n  prod: 11111111-2222-3333-4444-555555555555\n{yaml}"),
    )
    .unwrap();
    dir
}

/// `let NAME0 = first` and `let NAMEi = step(NAME(i-1))` for i in 1..=n, one per line.
fn chain(name: &str, first: &str, n: usize, step: impl Fn(&str) -> String) -> String {
    let mut out = format!("let {name}0 = {first}\n");
    for i in 1..=n {
        let _ = writeln!(out, "let {name}{i} = {}", step(&format!("{name}{}", i - 1)));
    }
    out
}

/// `line(0)` to `line(n - 1)`, each followed by a line break.
fn numbered(n: usize, line: impl Fn(usize) -> String) -> String {
    let mut out = String::new();
    for i in 0..n {
        let _ = writeln!(out, "{}", line(i));
    }
    out
}

/// A list literal of `n` items, one per line.
fn list(items: impl Iterator<Item = String>) -> String {
    let mut out = String::from("[\n");
    for item in items {
        let _ = writeln!(out, "  {item},");
    }
    out.push(']');
    out
}

/// The hostile cases: name, `main.mlp`, and the code each must answer with.
fn hostile() -> Vec<(&'static str, String, &'static str)> {
    let group = |value: &str| format!("\ngroup g {{\n  name        = \"g\"\n  description = {value}\n}}\n");
    let thousand = list((0..1000).map(|i| i.to_string()));
    vec![
        (
            "interpolation-doubling",
            chain("a", "\"0123456789abcdef\"", 60, |p| format!("\"${{{p}}}${{{p}}}\"")) + &group("a60"),
            "E0116",
        ),
        ("list-doubling", chain("l", "[\"x\"]", 60, |p| format!("[{p}, {p}]")) + &group("\"${count(l60)}\""), "E0117"),
        (
            "map-doubling",
            chain("m", "{ a = \"x\" }", 60, |p| format!("{{ a = {p}, b = {p} }}")) + &group("\"${count(m60)}\""),
            "E0120",
        ),
        (
            "three-nested-loops",
            format!(
                "let items = {thousand}\n\nfor a in items {{\n  for b in items {{\n    for c in items {{\n      \
                 group g {{\n        name = \"g-${{a}}-${{b}}-${{c}}\"\n      }}\n    }}\n  }}\n}}\n"
            ),
            "E0118",
        ),
        (
            "copies-of-a-long-string",
            chain("s", "\"0123456789abcdef\"", 16, |p| format!("\"${{{p}}}${{{p}}}\""))
                + &format!("let copies = {}\n", list(std::iter::repeat_n("s16".to_owned(), 2000)))
                + &group("\"${count(copies)}\""),
            "E0120",
        ),
        (
            "policy-over-a-large-let",
            chain("s", "\"0123456789abcdef\"", 16, |p| format!("\"${{{p}}}${{{p}}}\""))
                + &format!("let big = {}\n", list(std::iter::repeat_n("s16".to_owned(), 50)))
                + &format!(
                    "let names = {}\n\nfor n in names {{\n  group g {{\n    name = n\n  }}\n}}\n\n\
                     policy p {{\n  deny group when name in big\n}}\n",
                    list((0..2000).map(|i| format!("\"g{i}\"")))
                ),
            "E0120",
        ),
        (
            "objects-from-nested-loops",
            format!(
                "let xs = {}\nlet ys = {}\n\nfor x in xs {{\n  for y in ys {{\n    group g {{\n      \
                 name = \"g-${{x}}-${{y}}\"\n    }}\n\n    group h {{\n      name = \"h-${{x}}-${{y}}\"\n    }}\n  }}\n}}\n",
                list((0..300).map(|i| format!("\"x{i}\""))),
                list((0..200).map(|i| format!("\"y{i}\"")))
            ),
            "E0119",
        ),
        (
            "deep-values-through-lets",
            chain("d", "\"x\"", 20_000, |p| format!("[{p}]")) + &group("\"${count(d20000)}\""),
            "E0120",
        ),
        ("long-let-cycle", chain("c", "c1000", 1000, ToOwned::to_owned) + &group("c1000"), "E0109"),
        (
            "many-lookups-through-loop-lets",
            format!(
                "let xs = {}\n\nfor x in xs {{\n{}}}\n",
                list((0..1000).map(|i| format!("\"x{i}\""))),
                numbered(1000, |i| format!("  let v{i} = \"${{x}}\""))
            ),
            "E0120",
        ),
        (
            "long-keys-copied-into-addresses",
            chain("s", "\"0123456789abcdef\"", 15, |p| format!("\"${{{p}}}${{{p}}}\""))
                + &format!(
                    "let keys = {}\n\nfor k in keys {{\n  for j in [\"a\", \"b\", \"c\"] {{\n{}  }}\n}}\n",
                    list((0..8).map(|i| format!("\"${{s15}}{i}\""))),
                    numbered(300, |i| format!("    group g{i} {{\n      name = \"g{i}\"\n    }}"))
                ),
            "E0120",
        ),
    ]
}

#[cfg(target_os = "linux")]
#[test]
fn hostile_inputs_answer_quickly_with_the_budget_diagnostic() {
    for (name, main, code) in hostile() {
        let dir = config(&main, "");
        let (run, elapsed) = validate_bounded(dir.path());
        assert_eq!(
            run.code,
            1,
            "{name} did not end with diagnostics (killed?) after {elapsed:?}:\n{}",
            run.transcript()
        );
        assert!(run.stderr.contains(code), "{name} does not report {code}:\n{}", run.transcript());
        assert!(elapsed < Duration::from_secs(10), "{name} took {elapsed:?}");
        eprintln!("{name}: {code} in {elapsed:?} ({} bytes of input)", main.len());
        assert_golden("limits", name, &run.transcript(), &[]);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_override_in_mlpolicy_yaml_lifts_a_limit() {
    // A string of 2 MiB, over the 1 MiB default.
    let long = chain("a", "\"0123456789abcdef\"", 17, |p| format!("\"${{{p}}}${{{p}}}\""))
        + "\ngroup g {\n  name = \"g\"\n}\n";
    let (run, _) = validate_bounded(config(&long, "").path());
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0116"), "{}", run.transcript());
    let (run, _) = validate_bounded(config(&long, "limits:\n  string_bytes: 4194304\n").path());
    assert_eq!(run.code, 0, "{}", run.transcript());

    // 400 + 400 × 300 = 120,400 instances, over the 100,000 default.
    let loops = format!(
        "let xs = {}\nlet ys = {}\n\nfor x in xs {{\n  for y in ys {{\n    let z = \"${{x}}-${{y}}\"\n  }}\n}}\n\n\
         group g {{\n  name = \"g\"\n}}\n",
        list((0..400).map(|i| format!("\"x{i}\""))),
        list((0..300).map(|i| format!("\"y{i}\"")))
    );
    let (run, _) = validate_bounded(config(&loops, "").path());
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0118"), "{}", run.transcript());
    let (run, _) = validate_bounded(config(&loops, "limits:\n  for_instances: 200000\n").path());
    assert_eq!(run.code, 0, "{}", run.transcript());

    // And a lower budget is as easy to set.
    let small = "let l = [1, 2, 3]\n\ngroup g {\n  name = \"g\"\n}\n";
    let (run, _) = validate_bounded(config(small, "limits:\n  collection_elements: 2\n").path());
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("E0117"), "{}", run.transcript());
}

/// A loop body's `let`s each add a binding: 1,000 instances of 1,000 `let`s took 26 s when
/// every binding copied the ones before it; it is linear now. (Looking names up through those
/// bindings is paid for: `many-lookups-through-loop-lets` above.)
#[cfg(target_os = "linux")]
#[test]
fn many_lets_in_a_loop_body_stay_linear() {
    let lets = numbered(1000, |i| format!("  let v{i} = \"v\""));
    let main = format!(
        "let xs = {}\n\nfor x in xs {{\n{lets}}}\n\ngroup g {{\n  name = \"g\"\n}}\n",
        list((0..1000).map(|i| format!("\"x{i}\"")))
    );
    let (run, elapsed) = validate_bounded(config(&main, "").path());
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// `matches` with long patterns made by interpolation: 2,000 patterns of 32 KB each compiled
/// to regular expressions took 56 s and 8.8 GB; globs are matched without compiling now.
#[cfg(target_os = "linux")]
#[test]
fn long_glob_patterns_are_matched_without_compiling() {
    let main = chain("p", "\"*a*b*c*d\"", 12, |p| format!("\"${{{p}}}${{{p}}}\""))
        + &format!(
            "let ys = {}\n\nfor y in ys {{\n  group g {{\n    name = \"g-${{y}}\"\n  }}\n}}\n\n\
             policy p {{\n  deny group when name matches \"${{p12}}${{name}}\"\n}}\n",
            list((0..2000).map(|i| format!("\"b{i}\"")))
        );
    let (run, elapsed) = validate_bounded(config(&main, "").path());
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// Many diagnostics: 20,000 unknown names among 20,000 `let`s took 223 s (a suggestion compared
/// every name with every `let`, and each rendering copied and scanned the whole file), and a
/// line of 20,000 of them printed that line once per diagnostic. Now suggestions stop at a
/// budget, the first 100 diagnostics are rendered through a line index, and an overlong line
/// is named, not shown.
#[cfg(target_os = "linux")]
#[test]
fn many_diagnostics_answer_quickly_and_briefly() {
    let lines = numbered(20_000, |i| format!("let v{i} = nope{i}"));
    let (run, elapsed) = validate_bounded(config(&lines, "").path());
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(run.stderr.contains("… 19900 more not shown") && run.stderr.contains("20000 errors"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("E0106").count(), 100);

    let one_line = format!("let x = [{}]\n", (0..20_000).map(|i| format!("nope{i}")).collect::<Vec<_>>().join(", "));
    let (run, elapsed) = validate_bounded(config(&one_line, "").path());
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(run.stderr.len() < 100_000, "{} bytes of diagnostics", run.stderr.len());
    assert!(run.stderr.contains("(main.mlp:1:10; the line is too long to show)"), "{}", &run.stderr[..2000]);
}
