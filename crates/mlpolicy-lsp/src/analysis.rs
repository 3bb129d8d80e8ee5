//! One compile of a configuration directory, with the editor's unsaved buffers in place of
//! the files on disk: the compiler's own output ([`Compiled`]), the diagnostics `mlpolicy
//! validate` prints ([`Compiled::report`]) and the [`Index`] of names.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlpolicy_lang::ast;
use mlpolicy_lang::diagnostics::Diagnostics;
use mlpolicy_lang::eval::{Env, Evaluator};
use mlpolicy_lang::model::Value;
use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::source::{FileId, Overlay, Span};
use mlpolicy_lang::{Compiled, packs};

use crate::index::Index;

/// The result of compiling one directory.
#[derive(Debug)]
pub struct Analysis {
    pub dir: PathBuf,
    pub compiled: Compiled,
    /// What `mlpolicy validate` shows: every stage's diagnostics and every policy violation.
    pub report: Diagnostics,
    pub index: Index,
    /// How long the compile and the index took.
    pub elapsed: Duration,
}

impl Analysis {
    pub fn run(dir: &Path, overrides: &Overrides, overlay: &Overlay) -> Analysis {
        let started = Instant::now();
        let compiled = mlpolicy_lang::compile_with(dir, overrides, overlay);
        let report = compiled.report();
        let files: Vec<(FileId, &ast::File)> = compiled.sources.mlp_files().zip(&compiled.files).collect();
        let index = Index::build(&files);
        Analysis { dir: dir.to_owned(), compiled, report, index, elapsed: started.elapsed() }
    }

    /// The id of a configuration file by name (`main.mlp`, `mlpolicy.yaml`); policy packs have
    /// no path and are never found here.
    pub fn file_id(&self, name: &str) -> Option<FileId> {
        self.compiled
            .sources
            .files
            .iter()
            .position(|f| f.name == name && !f.path.as_os_str().is_empty())
            .and_then(|i| u32::try_from(i).ok())
            .map(FileId)
    }

    /// The path of a file the editor can open, `None` for policy packs.
    pub fn path_of(&self, file: FileId) -> Option<PathBuf> {
        let f = self.compiled.sources.files.get(file.0 as usize)?;
        (!f.path.as_os_str().is_empty()).then(|| self.dir.join(&f.name))
    }

    pub fn text(&self, file: FileId) -> &str {
        self.compiled.sources.files.get(file.0 as usize).map_or("", |f| &f.text)
    }

    /// The syntax tree of a configuration file.
    pub fn tree(&self, file: FileId) -> Option<&ast::File> {
        self.compiled.sources.mlp_files().zip(&self.compiled.files).find(|(id, _)| *id == file).map(|(_, f)| f)
    }

    /// The variables policies and expressions see: `mlpolicy.yaml`'s, then the packs' defaults.
    pub fn vars(&self) -> BTreeMap<String, Value> {
        let mut vars: BTreeMap<String, Value> =
            self.compiled.settings.vars.iter().map(|(k, v)| (k.clone(), v.to_value())).collect();
        if !self.compiled.settings.policies.is_empty() {
            for (name, value) in packs::default_vars() {
                vars.entry(name.to_owned()).or_insert(value);
            }
        }
        vars
    }

    /// Every top-level `let` of the configuration, by name.
    pub fn lets(&self) -> HashMap<String, &ast::Let> {
        self.compiled
            .files
            .iter()
            .flat_map(|f| &f.items)
            .filter_map(|i| if let ast::Item::Let(l) = i { Some((l.name.node.clone(), l)) } else { None })
            .collect()
    }

    /// Evaluates an expression outside any loop (a top-level `let`, a loop's list), without
    /// reporting anything; `None` when it needs a loop variable or has an error.
    pub fn evaluate(&self, expr: &ast::Expr) -> Option<Value> {
        let vars = self.vars();
        let lets = self.lets();
        let evaluator = Evaluator::new(&vars, &self.compiled.settings.subscriptions, &lets, None);
        evaluator.eval(expr, &Env::default())
    }

    /// The source text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        self.compiled.sources.text(span)
    }
}

/// A value written the way the language writes it (`["a", "b"]`, `{ k = 1 }`, `group.x`).
pub fn render_value(v: &Value) -> String {
    match v {
        Value::Str(s) => mlpolicy_lang::model::quote(s),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => format!("[{}]", items.iter().map(render_value).collect::<Vec<_>>().join(", ")),
        Value::Map(m) if m.is_empty() => "{}".to_owned(),
        Value::Map(m) => {
            let entries: Vec<String> = m.iter().map(|(k, v)| format!("{} = {}", map_key(k), render_value(v))).collect();
            format!("{{ {} }}", entries.join(", "))
        }
        Value::Ref(r) => r.to_string(),
    }
}

fn map_key(k: &str) -> String {
    let bare = k.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !mlpolicy_lang::syntax::KEYWORDS.contains(&k);
    if bare { k.to_owned() } else { mlpolicy_lang::model::quote(k) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn overlay_texts_are_compiled_instead_of_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.mlp"), "let x = 1\n").unwrap();
        let mut overlay = Overlay::new();
        overlay.insert("main.mlp".into(), Arc::from("let x = \n"));
        let a = Analysis::run(dir.path(), &Overrides::default(), &overlay);
        assert!(a.report.has_errors(), "the unsaved text is half-typed");
        let a = Analysis::run(dir.path(), &Overrides::default(), &Overlay::new());
        assert!(!a.report.has_errors(), "{:?}", a.report);
        let id = a.file_id("main.mlp").unwrap();
        assert_eq!(a.text(id), "let x = 1\n");
    }

    #[test]
    fn values_render_as_source() {
        let v = Value::Map(
            [("env".to_owned(), Value::Str("prod".into())), ("in".to_owned(), Value::List(vec![Value::Int(1)]))]
                .into_iter()
                .collect(),
        );
        assert_eq!(render_value(&v), "{ env = \"prod\", \"in\" = [1] }");
    }
}
