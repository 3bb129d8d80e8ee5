//! The TextMate grammar (`editors/vscode/syntaxes/mlpolicy.tmLanguage.json`) over real files:
//! every `.mlp` file of `examples/`, the built-in policy packs and the test cases that parse.
//! The compiler's own parser is the oracle: its syntax tree says where the comments, strings,
//! interpolations, numbers, keywords, declarations and attributes are, and the grammar must give
//! each of them its scope.
//!
//! syntect (a Rust highlighter) reads Sublime's `.sublime-syntax`, not TextMate grammars, so the
//! grammar is translated here: top-level `patterns` become the `main` context, each repository
//! entry a context, `begin`/`end` a pushed context whose `end` is tried first (TextMate's rule)
//! and whose `name`/`contentName` become `meta_scope`/`meta_content_scope`. The translation
//! refuses what it does not know (`while`, `\G`, injections, back-references in `end`), so the
//! grammar cannot silently use a feature this test would not check.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mlpolicy_lang::ast::{self, BodyItem, Expr, ExprKind, Item, Segment, StrPart};
use mlpolicy_lang::source::{FileId, Span};
use serde_json::Value;
use syntect::parsing::{ParseState, ScopeStack, SyntaxDefinition, SyntaxSet, SyntaxSetBuilder};
use syntect::util::LinesWithEndings;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn grammar() -> Value {
    let path = repo().join("editors/vscode/syntaxes/mlpolicy.tmLanguage.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("grammar")).expect("grammar is JSON")
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

fn regex(v: &Value) -> String {
    let r = v.as_str().expect("a regex is a string");
    assert!(!r.contains("\\G"), "\\G is not supported: {r}");
    r.to_owned()
}

fn captures(out: &mut String, indent: &str, caps: Option<&Value>) {
    let Some(caps) = caps.and_then(Value::as_object) else { return };
    let _ = writeln!(out, "{indent}captures:");
    for (k, v) in caps {
        let name = v["name"].as_str().expect("a capture has a name");
        let _ = writeln!(out, "{indent}  {k}: {}", q(name));
    }
}

/// Appends the sublime-syntax list entries of one TextMate rule.
fn rule(out: &mut String, indent: &str, r: &Value) {
    let known = [
        "match",
        "name",
        "captures",
        "begin",
        "end",
        "beginCaptures",
        "endCaptures",
        "patterns",
        "include",
        "contentName",
    ];
    for key in r.as_object().expect("a rule is an object").keys() {
        assert!(known.contains(&key.as_str()), "the translation does not know `{key}`");
    }
    if let Some(inc) = r.get("include").and_then(Value::as_str) {
        let target = match inc {
            "$self" | "$base" => "main".to_owned(),
            _ => inc.strip_prefix('#').expect("only local includes").to_owned(),
        };
        let _ = writeln!(out, "{indent}- include: {target}");
    } else if let Some(m) = r.get("match") {
        let _ = writeln!(out, "{indent}- match: {}", q(&regex(m)));
        if let Some(name) = r.get("name").and_then(Value::as_str) {
            let _ = writeln!(out, "{indent}  scope: {}", q(name));
        }
        captures(out, &format!("{indent}  "), r.get("captures"));
    } else if let Some(begin) = r.get("begin") {
        let end = regex(&r["end"]);
        assert!(!end.contains("\\1"), "back-references in `end` are not supported");
        let _ = writeln!(out, "{indent}- match: {}", q(&regex(begin)));
        captures(out, &format!("{indent}  "), r.get("beginCaptures").or(r.get("captures")));
        let _ = writeln!(out, "{indent}  push:");
        let inner = format!("{indent}    ");
        if let Some(name) = r.get("name").and_then(Value::as_str) {
            let _ = writeln!(out, "{inner}- meta_scope: {}", q(name));
        }
        if let Some(name) = r.get("contentName").and_then(Value::as_str) {
            let _ = writeln!(out, "{inner}- meta_content_scope: {}", q(name));
        }
        let _ = writeln!(out, "{inner}- match: {}", q(&end));
        captures(out, &format!("{inner}  "), r.get("endCaptures").or(r.get("captures")));
        let _ = writeln!(out, "{inner}  pop: true");
        for p in r.get("patterns").and_then(Value::as_array).into_iter().flatten() {
            rule(out, &inner, p);
        }
    } else if let Some(ps) = r.get("patterns").and_then(Value::as_array) {
        for p in ps {
            rule(out, indent, p);
        }
    } else {
        panic!("a rule without match, begin, include or patterns: {r}");
    }
}

fn translate(g: &Value) -> String {
    for key in g.as_object().expect("object").keys() {
        assert!(
            ["$schema", "name", "scopeName", "fileTypes", "patterns", "repository"].contains(&key.as_str()),
            "the translation does not know the grammar key `{key}`"
        );
    }
    let mut out = format!(
        "%YAML 1.2\n---\nname: {}\nscope: {}\nfile_extensions: [mlp]\ncontexts:\n  main:\n",
        q(g["name"].as_str().unwrap()),
        q(g["scopeName"].as_str().unwrap())
    );
    for p in g["patterns"].as_array().expect("patterns") {
        rule(&mut out, "    ", p);
    }
    for (name, r) in g["repository"].as_object().expect("repository") {
        let _ = writeln!(out, "  {name}:");
        rule(&mut out, "    ", r);
    }
    out
}

fn syntax_set() -> SyntaxSet {
    let yaml = translate(&grammar());
    let def = SyntaxDefinition::load_from_str(&yaml, true, None).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut builder = SyntaxSetBuilder::new();
    builder.add(def);
    builder.build()
}

/// The scopes at every byte of `text`, innermost last, as one space-separated string.
fn scopes(ss: &SyntaxSet, text: &str) -> Vec<String> {
    let syntax = ss.find_syntax_by_name("mlpolicy").expect("syntax");
    let mut state = ParseState::new(syntax);
    let mut stack = ScopeStack::new();
    let mut out = Vec::with_capacity(text.len());
    for line in LinesWithEndings::from(text) {
        let ops = state.parse_line(line, ss).expect("tokenise");
        let mut ops = ops.into_iter().peekable();
        for i in 0..line.len() {
            while let Some((_, op)) = ops.next_if(|(at, _)| *at <= i) {
                stack.apply(&op).expect("scope op");
            }
            out.push(stack.as_slice().iter().map(ToString::to_string).collect::<Vec<_>>().join(" "));
        }
        for (_, op) in ops {
            stack.apply(&op).expect("scope op");
        }
    }
    out
}

/// What the parser says must be highlighted: (span, scope that every byte of it must carry).
struct Expect<'t> {
    text: &'t str,
    out: Vec<(Span, &'static str)>,
}

impl Expect<'_> {
    fn word(&mut self, at: Span, word: &str, scope: &'static str) {
        let start = at.start as usize;
        assert!(self.text[start..].starts_with(word), "`{word}` at {start}");
        self.out.push((Span::new(at.file, start, start + word.len()), scope));
    }

    fn items(&mut self, items: &[Item]) {
        for item in items {
            match item {
                Item::Decl(d) => self.decl(d),
                Item::Grant(g) => {
                    self.word(g.span, "grant", "storage.type.grant");
                    for e in [&g.role, &g.principal, &g.scope] {
                        self.expr(e);
                    }
                    g.body.iter().flatten().for_each(|b| self.body(b));
                }
                Item::Let(l) => {
                    self.word(l.span, "let", "storage.type.let");
                    self.out.push((l.name.span, "variable.other.definition"));
                    self.expr(&l.value);
                }
                Item::For(f) => {
                    self.word(f.span, "for", "keyword.control.loop");
                    self.out.push((f.key.span, "variable.other.definition"));
                    self.expr(&f.iterable);
                    self.items(&f.items);
                }
                Item::Moved(m) => {
                    self.word(m.span, "moved", "storage.type.moved");
                    self.expr(&m.from);
                    self.expr(&m.to);
                }
                Item::Policy(p) => {
                    self.word(p.span, "policy", "storage.type.policy");
                    self.out.push((p.name.span, "entity.name.function.policy"));
                    for r in &p.rules {
                        self.out.push((r.effect.span, "keyword.control.policy"));
                        self.out.push((r.subject.span, "support.type.subject"));
                        self.expr(&r.condition);
                    }
                    for a in &p.attrs {
                        self.out.push((a.name.span, "variable.other.property"));
                        self.expr(&a.value);
                    }
                }
            }
        }
    }

    fn decl(&mut self, d: &ast::Decl) {
        self.out.push((d.kind.span, "storage.type.declaration"));
        self.out.push((d.name.span, "entity.name.type.declaration"));
        d.body.iter().for_each(|b| self.body(b));
    }

    fn body(&mut self, b: &BodyItem) {
        match b {
            BodyItem::Attr(a) => {
                self.out.push((a.name.span, "variable.other.property"));
                self.expr(&a.value);
            }
            BodyItem::Block(d) => self.decl(d),
            BodyItem::Allow(a) => {
                self.word(a.span, "allow", "keyword.control.waiver");
                self.out.push((a.policy.span, "entity.name.function.policy"));
                self.out.push((a.reason.span, "string.quoted.double"));
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Str(s) => {
                self.out.push((e.span, "string.quoted.double"));
                for part in &s.parts {
                    if let StrPart::Interp(inner) = part {
                        self.out.push((inner.span, "source.mlpolicy.embedded"));
                        self.expr(inner);
                    }
                }
            }
            ExprKind::Int(_) => self.out.push((e.span, "constant.numeric.integer")),
            ExprKind::Bool(_) => self.out.push((e.span, "constant.language.boolean")),
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Map(entries) => {
                for (k, v) in entries {
                    let bare = self.text.as_bytes()[k.span.start as usize] != b'"';
                    self.out.push((k.span, if bare { "variable.other.property" } else { "string.quoted.double" }));
                    self.expr(v);
                }
            }
            ExprKind::Path(p) => {
                let root = p.root.node.as_str();
                if ["var", "sub", "system"].contains(&root) {
                    self.out.push((p.root.span, "variable.language"));
                } else if ["resource_group", "identity", "workspace", "group"].contains(&root) && !p.segments.is_empty()
                {
                    self.out.push((p.root.span, "support.type.reference"));
                }
                for s in &p.segments {
                    if let Segment::Index(i) = s {
                        self.expr(i);
                    }
                }
            }
            ExprKind::Call { name, args } => {
                if ["user", "service_principal", "existing_group", "scope", "count"].contains(&name.node.as_str()) {
                    self.out.push((name.span, "support.function"));
                }
                for a in args {
                    self.expr(a);
                }
            }
            ExprKind::Unary { op, operand } => {
                self.out.push((op.span, "keyword.operator.logical"));
                self.expr(operand);
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let scope = match op.node.symbol() {
                    "and" | "or" => "keyword.operator.logical",
                    "in" | "!in" | "matches" => "keyword.operator.word",
                    _ => "keyword.operator.comparison",
                };
                self.out.push((op.span, scope));
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Paren(inner) => self.expr(inner),
        }
    }
}

/// Every `.mlp` file the test reads: examples, packs, and test cases that parse.
fn files() -> Vec<PathBuf> {
    let mut dirs = vec![repo().join("crates/mlpolicy-lang/policies")];
    for top in ["examples", "crates/mlpolicy/tests/cases/diagnostics", "crates/mlpolicy/tests/cases/policies"] {
        for e in std::fs::read_dir(repo().join(top)).expect(top) {
            dirs.push(e.expect("entry").path());
        }
    }
    let mut out: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| d.is_dir())
        .flat_map(|d| std::fs::read_dir(d).expect("dir").map(|e| e.expect("entry").path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mlp"))
        .collect();
    out.sort();
    out
}

#[test]
fn the_grammar_scopes_what_the_parser_sees() {
    let ss = syntax_set();
    let (mut checked, mut examples) = (0, 0);
    let files = files();
    let example_files = files.iter().filter(|p| p.starts_with(repo().join("examples"))).count();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let (tree, diags) = mlpolicy_lang::syntax::parse(FileId(0), &text);
        let is_example = path.starts_with(repo().join("examples"));
        if diags.has_errors() {
            assert!(!is_example, "{} does not parse", path.display());
            continue;
        }
        examples += usize::from(is_example);
        let found = scopes(&ss, &text);
        let mut expect = Expect { text: &text, out: Vec::new() };
        expect.items(&tree.items);
        for c in &tree.comments {
            expect.out.push((c.span, "comment.line.number-sign"));
        }
        for (span, scope) in &expect.out {
            for i in span.range() {
                let at = &found[i];
                assert!(
                    at.split(' ').any(|s| s.starts_with(scope)),
                    "{}: `{}` (byte {i}, `{}`) is not `{scope}` but `{at}`",
                    path.display(),
                    &text[span.range()],
                    &text[i..=i.min(text.len() - 1)],
                );
            }
            checked += 1;
        }
        // Code outside strings and comments is never taken for either.
        let mut inside = vec![false; text.len()];
        for (span, scope) in &expect.out {
            if matches!(*scope, "string.quoted.double" | "comment.line.number-sign") {
                inside[span.range()].iter_mut().for_each(|b| *b = true);
            }
        }
        for (i, scopes) in found.iter().enumerate() {
            if !inside[i] && !text.as_bytes()[i].is_ascii_whitespace() {
                assert!(
                    !scopes.contains("string.quoted") && !scopes.contains("comment.line"),
                    "{}: byte {i} (`{}`) outside any string or comment is `{scopes}`",
                    path.display(),
                    &text[i..=i],
                );
            }
        }
    }
    assert!(example_files >= 5 && examples == example_files, "{examples} of {example_files} example files");
    assert!(checked > 1000, "only {checked} spans checked");
}

#[test]
fn the_grammar_survives_broken_text() {
    let ss = syntax_set();
    for text in
        ["grant \"unterminated\nlet x = 1\n", "x = \"${ \"${ a }\" \n# c\n", "}}}]]]\n", "\"\\q \\u{110000}\"\n"]
    {
        let found = scopes(&ss, text);
        let last_line = text.trim_end().rfind('\n').map_or(0, |i| i + 1);
        // An unterminated string ends at its line: the next line is code again.
        if text.starts_with("grant") {
            assert!(!found[last_line].contains("string"), "{text:?}: {}", found[last_line]);
            assert!(found[last_line].contains("storage.type.let"), "{text:?}: {}", found[last_line]);
        }
        if text.contains("# c") {
            assert!(found[text.find("# c").unwrap()].contains("comment"), "{text:?}");
        }
    }
}
