//! Bad input of any kind gets diagnostics, never a panic or a stack overflow: random text,
//! mutations of real configurations, and pathological nesting, through parse, resolve and check.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use mlpolicy_lang::source::FileId;
use proptest::prelude::*;

use crate::support::root;

/// Runs the compile stages on in-memory text.
fn compile_text(text: &str) {
    let (file, _) = mlpolicy_lang::syntax::parse(FileId(0), text);
    let _ = mlpolicy_lang::fmt::format(&file, text);
    let mut vars = BTreeMap::new();
    vars.insert("env".to_owned(), mlpolicy_lang::model::Value::Str("prod".into()));
    let subs: BTreeMap<String, String> =
        [("prod".to_owned(), "11111111-1111-1111-1111-111111111111".to_owned())].into();
    let (resolved, _) = mlpolicy_lang::resolve::resolve(std::slice::from_ref(&file), &vars, &subs);
    let _ = mlpolicy_lang::check::check_policies(&resolved.policies, &vars, &HashSet::new());
    let (model, _) = mlpolicy_lang::check::check(&resolved.decls, &HashSet::new());
    let _ = mlpolicy_lang::graph::DepGraph::build(&model);
}

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [root().join("examples/contoso-ml"), root().join("examples/quickstart")] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "mlp") {
                    out.push(std::fs::read_to_string(p).unwrap());
                }
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        compile_text(&text);
    }

    #[test]
    fn random_tokens_never_panic(tokens in proptest::collection::vec(prop_oneof![
        Just("group"), Just("grant"), Just("for"), Just("in"), Just("let"), Just("policy"), Just("{"), Just("}"),
        Just("["), Just("]"), Just("("), Just(")"), Just("="), Just(","), Just("."), Just("\""), Just("${"),
        Just("x"), Just("var"), Just("sub"), Just("to"), Just("on"), Just("\n"), Just("#"), Just("deny"), Just("when"),
        Just("==") , Just("1"), Just("true"), Just("user(\"a@b.c\")"), Just("group.x"), Just("workspace.w.identity"),
        Just("moved"), Just("from"), Just("identity.i.federated.f"),
    ], 0..80)) {
        compile_text(&tokens.join(" "));
    }

    #[test]
    fn mutated_examples_never_panic(seed in 0usize..10_000, cuts in proptest::collection::vec((0usize..100_000, 0usize..40, any::<char>()), 1..6)) {
        let corpus = corpus();
        prop_assume!(!corpus.is_empty());
        let mut text: Vec<char> = corpus[seed % corpus.len()].chars().collect();
        for (at, len, ch) in cuts {
            if text.is_empty() { break; }
            let at = at % text.len();
            let end = (at + len).min(text.len());
            text.splice(at..end, std::iter::once(ch));
        }
        compile_text(&text.into_iter().collect::<String>());
    }
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
    for open in ["[", "(", "{", "\"${"] {
        let text = format!("let x = {}", open.repeat(100_000));
        let (_, diags) = mlpolicy_lang::syntax::parse(FileId(0), &text);
        assert!(diags.has_errors(), "{open}");
        compile_text(&text);
    }
    let deep_not = format!("policy p {{\n deny grant when {} true\n}}", "not ".repeat(50_000));
    compile_text(&deep_not);
}

#[test]
fn huge_flat_file_parses() {
    let mut text = String::new();
    for i in 0..20_000 {
        let _ = writeln!(text, "let v{i} = [\"a\", \"b\", {i}]");
    }
    let (file, diags) = mlpolicy_lang::syntax::parse(FileId(0), &text);
    assert!(!diags.has_errors());
    assert_eq!(file.items.len(), 20_000);
}
