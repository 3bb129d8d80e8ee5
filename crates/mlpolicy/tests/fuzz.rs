//! Fuzzing on stable Rust: every entry point of `mlpolicy::fuzz` (the ones the cargo-fuzz
//! targets in `fuzz/` call) fed random bytes, token soup and mutations of the seed corpus in
//! `fuzz/corpus/<target>/`, for a bounded number of cases, asserting no panic, no broken
//! invariant, and an answer within a time bound. `PROPTEST_CASES=N` sets the cases per target
//! (default 1000: a few seconds for all five in a debug build); docs/fuzzing.md has the longer
//! runs and what they found. The regression tests at the end hold every input that ever failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// Cases per target when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 1000;

/// The slowest one input may be, in a debug build on a loaded machine.
const TIME_LIMIT: Duration = Duration::from_secs(5);

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        // Failures become the named regression tests at the end of this file instead.
        failure_persistence: None,
        ..Config::default()
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One edit of an input; positions are taken modulo the input's length.
#[derive(Debug, Clone)]
enum Edit {
    /// XOR one byte.
    Flip(usize, u8),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Delete up to `len` bytes.
    Delete(usize, usize),
    /// Copy a range somewhere else (repeats structure: nesting, long lists).
    Duplicate(usize, usize, usize),
    /// Insert a token of the target's dictionary.
    Token(usize, usize),
    /// Replace the tail with the tail of another seed.
    Splice(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Edit::Flip(at, x)),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Edit::Insert(at, b)),
        2 => (any::<usize>(), 1..64usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        2 => (any::<usize>(), 1..256usize, any::<usize>()).prop_map(|(at, n, to)| Edit::Duplicate(at, n, to)),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(at, t)| Edit::Token(at, t)),
        1 => (any::<usize>(), any::<usize>(), any::<usize>()).prop_map(|(s, from, at)| Edit::Splice(s, from, at)),
    ]
}

/// The largest input built (the libFuzzer default `-max_len` is 4096; seeds may be larger).
const MAX_LEN: usize = 64 * 1024;

fn apply(seed: &[u8], edits: &[Edit], seeds: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for e in edits {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
        match e {
            Edit::Flip(p, x) if !out.is_empty() => {
                let i = p % out.len();
                out[i] ^= x;
            }
            Edit::Flip(..) => {}
            Edit::Insert(p, bytes) => {
                let i = at(*p, out.len());
                out.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(p, n) => {
                let i = at(*p, out.len());
                let end = (i + n).min(out.len());
                out.drain(i..end);
            }
            Edit::Duplicate(p, n, to) => {
                let i = at(*p, out.len());
                let end = (i + n).min(out.len());
                let chunk: Vec<u8> = out[i..end].to_vec();
                let j = at(*to, out.len());
                out.splice(j..j, chunk);
            }
            Edit::Token(p, t) => {
                let i = at(*p, out.len());
                out.splice(i..i, dict[t % dict.len()].bytes());
            }
            Edit::Splice(s, from, p) => {
                let other = &seeds[s % seeds.len()];
                let i = at(*p, out.len());
                let k = at(*from, other.len());
                out.truncate(i);
                out.extend_from_slice(&other[k..]);
            }
        }
        out.truncate(MAX_LEN);
    }
    out
}

/// How a seed's text is a tree: JSON, YAML, or neither (`.mlp` source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Json,
    Yaml,
    Text,
}

/// One edit of a parsed seed, at the `node`-th value in depth-first order (among the
/// scalars only, when `leaf`: that is where most of a file's meaning is).
#[derive(Debug, Clone)]
struct TreeEdit {
    leaf: bool,
    node: usize,
    op: u8,
    pick: usize,
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    (any::<bool>(), any::<usize>(), 0..9u8, any::<usize>()).prop_map(|(leaf, node, op, pick)| TreeEdit {
        leaf,
        node,
        op,
        pick,
    })
}

fn count(v: &Value, leaves: bool) -> usize {
    let here = usize::from(!leaves || !(v.is_array() || v.is_object()));
    here + match v {
        Value::Array(a) => a.iter().map(|x| count(x, leaves)).sum(),
        Value::Object(m) => m.values().map(|x| count(x, leaves)).sum(),
        _ => 0,
    }
}

fn nth_mut<'a>(v: &'a mut Value, n: &mut usize, leaves: bool) -> Option<&'a mut Value> {
    let counts = !leaves || !(v.is_array() || v.is_object());
    if counts {
        if *n == 0 {
            return Some(v);
        }
        *n -= 1;
    }
    match v {
        Value::Array(a) => a.iter_mut().find_map(|x| nth_mut(x, n, leaves)),
        Value::Object(m) => m.values_mut().find_map(|x| nth_mut(x, n, leaves)),
        _ => None,
    }
}

/// Text that tends to break what handles strings: multi-byte and zero-width characters,
/// control characters, separators of paths, ids, URLs, `OData` and YAML, quotes and escapes.
const STRANGE: &[&str] = &[
    "é",
    "\u{0}",
    "\u{7f}",
    "\u{200b}",
    "\u{feff}",
    "\u{10ffff}",
    "🦀",
    " ",
    "\t",
    "\n",
    "\r\n",
    "/",
    "//",
    "%",
    "%2F",
    "'",
    "''",
    "\"",
    "\\",
    "#",
    "?",
    "&",
    "=",
    "${",
    "}",
    ":",
    ": ",
    "- ",
    "@",
    "*",
    ",",
    "(",
    ")",
    "..",
    "~",
];

/// A dictionary token as a bare word (quotes and punctuation trimmed).
fn word(dict: &[&str], pick: usize) -> String {
    dict[pick % dict.len()].trim_matches(|c: char| c == '"' || c == ':' || c.is_whitespace()).to_owned()
}

fn scalar(dict: &[&str], pick: usize) -> Value {
    match pick % 10 {
        0 => Value::Null,
        1 => Value::Bool(pick % 20 < 10),
        2 => serde_json::json!(-1),
        3 => serde_json::json!(u64::MAX),
        4 => serde_json::json!(1.5),
        5 => Value::String(String::new()),
        6 => Value::String(word(dict, pick / 10).repeat(1 + pick % 2000)),
        _ => Value::String(word(dict, pick / 10)),
    }
}

/// Edits a JSON value in place: replace, empty, delete, duplicate, grow, wrap, rename.
fn edit_tree(root: &mut Value, e: &TreeEdit, dict: &[&str]) {
    let total = count(root, false);
    let donor = {
        let mut k = e.pick % total;
        nth_mut(&mut root.clone(), &mut k, false).cloned().unwrap_or(Value::Null)
    };
    let targets = count(root, e.leaf);
    if targets == 0 {
        return;
    }
    let mut k = e.node % targets;
    let Some(v) = nth_mut(root, &mut k, e.leaf) else { return };
    match (e.op, v) {
        (0, v) => *v = scalar(dict, e.pick),
        (1, v) => {
            *v = if e.pick.is_multiple_of(2) { Value::Array(Vec::new()) } else { Value::Object(serde_json::Map::new()) }
        }
        (2, Value::Object(m)) if !m.is_empty() => {
            let key = m.keys().nth(e.pick % m.len()).cloned().unwrap_or_default();
            m.remove(&key);
        }
        (2, Value::Array(a)) if !a.is_empty() => {
            a.remove(e.pick % a.len());
        }
        (3, Value::Array(a)) if !a.is_empty() => {
            let item = a[e.pick % a.len()].clone();
            a.extend(std::iter::repeat_n(item, 1 + e.pick % 64));
        }
        (3, Value::Object(m)) => {
            m.insert(word(dict, e.pick), donor);
        }
        (4 | 8, Value::String(s)) => {
            let mut at = e.pick % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            let token = if e.pick.is_multiple_of(3) {
                dict[(e.pick / 7) % dict.len()]
            } else {
                STRANGE[(e.pick / 7) % STRANGE.len()]
            };
            s.insert_str(at, token);
        }
        (5, v) => {
            let inner = v.take();
            *v = if e.pick.is_multiple_of(2) {
                Value::Array(vec![inner])
            } else {
                serde_json::json!({ word(dict, e.pick): inner })
            };
        }
        (6, Value::Object(m)) if !m.is_empty() => {
            let key = m.keys().nth(e.pick % m.len()).cloned().unwrap_or_default();
            if let Some(x) = m.remove(&key) {
                m.insert(format!("{key}{}", word(dict, e.pick / 7)), x);
            }
        }
        (7, v) => *v = donor,
        _ => {}
    }
}

/// A seed parsed as a tree, edited, and written back in its own syntax.
fn apply_tree(seed: &[u8], shape: Shape, edits: &[TreeEdit], dict: &[&str]) -> Vec<u8> {
    let parsed: Option<Value> = match shape {
        Shape::Json => serde_json::from_slice(seed).ok(),
        Shape::Yaml => serde_norway::from_slice(seed).ok(),
        Shape::Text => None,
    };
    let Some(mut root) = parsed else { return seed.to_vec() };
    for e in edits {
        edit_tree(&mut root, e, dict);
    }
    let text = match shape {
        Shape::Yaml => serde_norway::to_string(&root).unwrap_or_default(),
        _ => serde_json::to_string_pretty(&root).unwrap_or_default(),
    };
    text.into_bytes()
}

/// A seed's shape for structured edits: JSON if it parses as JSON, else YAML if it parses
/// as a YAML map or list, else text. `.mlp` seeds are always text.
fn shape_of(target: &str, seed: &[u8]) -> Shape {
    if target == "parser" {
        Shape::Text
    } else if serde_json::from_slice::<Value>(seed).is_ok() {
        Shape::Json
    } else if serde_norway::from_slice::<Value>(seed).is_ok_and(|v| v.is_object() || v.is_array()) {
        Shape::Yaml
    } else {
        Shape::Text
    }
}

/// Inputs for one target: mutated seeds (bytes, and for JSON and YAML seeds also their
/// values, so that edits reach past the parser), some token soup, some random bytes.
fn inputs(target: &'static str, dict: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    let shapes: Vec<Shape> = seeds.iter().map(|s| shape_of(target, s)).collect();
    let n = seeds.len();
    let tree_seeds = seeds.clone();
    let mutated =
        (0..n, prop::collection::vec(edit(), 1..12)).prop_map(move |(i, edits)| apply(&seeds[i], &edits, &seeds, dict));
    let structured = (0..n, prop::collection::vec(tree_edit(), 1..5))
        .prop_map(move |(i, edits)| apply_tree(&tree_seeds[i], shapes[i], &edits, dict));
    let soup = prop::collection::vec(0..dict.len(), 0..200)
        .prop_map(move |picks| picks.into_iter().flat_map(|i| dict[i].bytes()).collect::<Vec<u8>>());
    prop_oneof![
        4 => mutated,
        4 => structured,
        2 => soup,
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn timed(what: &str, data: &[u8], f: impl FnOnce()) {
    let started = Instant::now();
    f();
    let took = started.elapsed();
    assert!(took < TIME_LIMIT, "{what} took {took:?} on a {}-byte input", data.len());
}

const MLP_TOKENS: &[&str] = &[
    "resource_group ",
    "workspace ",
    "group ",
    "identity ",
    "grant ",
    "policy ",
    "let ",
    "for ",
    " in ",
    "if ",
    "federated ",
    "deny ",
    "warn ",
    "waive ",
    " to ",
    " on ",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "${",
    "\\",
    "\\n",
    "\\u{41}",
    "=",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    ".",
    ",",
    ":",
    "?",
    "\n",
    " ",
    "#",
    "//",
    "/*",
    "*/",
    "x",
    "a_1",
    "var.env",
    "sub.main",
    "group.a",
    "user(\"a@b.c\")",
    "0",
    "-1",
    "99999999999999999999",
    "true",
    "null",
    "\t",
    "\u{feff}",
    "é",
    "\r\n",
];

const YAML_TOKENS: &[&str] = &[
    "tenant: ",
    "cloud: ",
    "subscriptions:",
    "vars:",
    "policies: ",
    "owner: ",
    "\n",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "!!str ",
    "!x ",
    "? ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "~",
    "null",
    "true",
    "1.5",
    "0x1F",
    "-",
    "env",
    "x",
    "=",
    "arm: ",
    "graph: ",
    "authority: ",
    "https://",
    "http://127.0.0.1:1",
    "user:pw@",
    "6c1e9a42-3b7d-4f05-8e2a-9d4b1c7f3e60",
    "\t",
    "\u{feff}",
    "é",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\\"",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e999",
    "1.5",
    "\"id\"",
    "\"name\"",
    "\"properties\"",
    "\"value\"",
    "\"error\"",
    "\"code\"",
    "\"message\"",
    "\"details\"",
    "\"@odata.type\"",
    "\"#microsoft.graph.group\"",
    "\"roleDefinitionId\"",
    "\"principalId\"",
    "\"scope\"",
    "\"responses\"",
    "\"status\"",
    "\"body\"",
    "\"content\"",
    "\"integrity\"",
    "\"plan\"",
    "\"changes\"",
    "\"desired\"",
    "\"format_version\"",
    "\"action\"",
    "\"create\"",
    "\"delete\"",
    "\"replace\"",
    "/subscriptions/",
    "RoleAssignmentExists",
    "The role assignment already exists. The ID of the existing role assignment is 0123456789abcdef0123456789abcdef.",
    "eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.",
    ".",
    " ",
    "\n",
];

const STATE_TOKENS: &[&str] = &[
    "tenant_id: ",
    "subscriptions:",
    "resource_groups:",
    "workspaces:",
    "identities:",
    "federated_credentials:",
    "role_assignments:",
    "users:",
    "groups:",
    "service_principals:",
    "applications:",
    "\n",
    "  ",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "#",
    "&a ",
    "*a",
    "<<: ",
    "!!binary ",
    "!!python/object:os.system ",
    "!x ",
    "? ",
    "|\n",
    "---\n",
    "~",
    "null",
    "true",
    "1",
    "-1",
    "18446744073709551616",
    "id: ",
    "name: ",
    "display_name: ",
    "user_principal_name: ",
    "members: ",
    "owners: ",
    "principal: ",
    "role: Reader",
    "scope: /",
    "identity: ",
    "created_ms: ",
    "properties: ",
    "{\"latency_ms\": ",
    "\"fault_rate\": ",
    "\"throttle\": ",
    "1.5",
    "é",
];

fn run_target(name: &'static str, dict: &'static [&'static str], f: impl Fn(&[u8])) {
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let started = Instant::now();
    let result = runner.run(&inputs(name, dict), |data| {
        timed(name, &data, || f(&data));
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz target `{name}` failed: {e}");
    }
    eprintln!("fuzz {name}: {} cases in {:?}", config().cases, started.elapsed());
}

#[test]
fn fuzz_parser() {
    run_target("parser", MLP_TOKENS, mlpolicy::fuzz::parser);
}

#[test]
fn fuzz_settings() {
    let dir = tempfile::tempdir().unwrap();
    run_target("settings", YAML_TOKENS, |data| mlpolicy::fuzz::settings(dir.path(), data));
}

#[test]
fn fuzz_saved_plan() {
    run_target("saved_plan", JSON_TOKENS, mlpolicy::fuzz::saved_plan);
}

#[test]
fn fuzz_emulator_state() {
    run_target("emulator_state", STATE_TOKENS, mlpolicy::fuzz::emulator_state);
}

#[test]
fn fuzz_azure_response() {
    run_target("azure_response", JSON_TOKENS, mlpolicy::fuzz::azure_response);
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_target() {
    let fuzz = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz"));
    for target in mlpolicy::fuzz::TARGETS {
        assert!(!corpus(target).is_empty());
        let source = std::fs::read_to_string(fuzz.join("fuzz_targets").join(format!("{target}.rs"))).unwrap();
        assert!(source.contains(&format!("mlpolicy::fuzz::{target}")), "{target}.rs does not call its entry point");
    }
}

/// Every seed goes through its target unchanged, too (the invariants hold on real files).
#[test]
fn every_seed_passes_its_target() {
    let dir = tempfile::tempdir().unwrap();
    for seed in corpus("parser") {
        mlpolicy::fuzz::parser(&seed);
    }
    for seed in corpus("settings") {
        mlpolicy::fuzz::settings(dir.path(), &seed);
    }
    for seed in corpus("saved_plan") {
        mlpolicy::fuzz::saved_plan(&seed);
    }
    for seed in corpus("emulator_state") {
        mlpolicy::fuzz::emulator_state(&seed);
    }
    for seed in corpus("azure_response") {
        mlpolicy::fuzz::azure_response(&seed);
    }
}

// ---- Regressions: every input a fuzzing run found, kept forever ---------------------------

/// `mlpolicy.yaml` whose only key is a tagged empty scalar: locating the key `""` for the
/// E0021 diagnostic searched past the end of the text and panicked (`validate` crashed).
/// Found by `fuzz_settings` in a 150,000-case run (docs/fuzzing.md).
#[test]
fn regression_settings_empty_key_in_flow_search() {
    let dir = tempfile::tempdir().unwrap();
    for input in [&b"!!binary : subscriptions:{"[..], b": {", b"{\xc3\xa9", b"vars: {a: 1}\n: {"] {
        mlpolicy::fuzz::settings(dir.path(), input);
    }
}
