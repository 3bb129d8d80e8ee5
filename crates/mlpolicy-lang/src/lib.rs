//! The `.mlp` language and `mlpolicy.yaml`: a configuration directory → a typed model, its
//! dependency graph and its findings. No async, no HTTP.
//!
//! The stages read top to bottom, one module each:
//! source → syntax → resolve (eval) → check → policy → graph, with settings beside them.
//! [`compile`] runs them all and collects every diagnostic.

pub mod ast;
pub mod check;
pub mod code;
pub mod diagnostics;
pub mod eval;
pub mod findings;
pub mod fmt;
pub mod graph;
pub mod limits;
pub mod model;
pub mod packs;
pub mod policy;
pub mod resolve;
pub mod settings;
pub mod source;
pub mod syntax;
pub mod synth;

pub use mlpolicy_vocab::suggest;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::diagnostics::Code;
use diagnostics::Diagnostics;
use graph::DepGraph;
use model::{Model, Value};
use settings::{Overrides, Settings};
use source::Sources;

/// Everything the compile stages produce for one configuration directory.
#[derive(Debug)]
pub struct Compiled {
    pub sources: Sources,
    pub settings: Settings,
    pub files: Vec<ast::File>,
    pub model: Model,
    pub policies: Vec<ast::Policy>,
    /// `None` when the configuration had errors before the graph stage, or a cycle.
    pub graph: Option<DepGraph>,
    /// Policy results over the model: the violations, kept only here.
    pub evaluation: policy::Evaluation,
    /// Every diagnostic of every stage, sorted by position; policy violations are not among
    /// them (see [`Compiled::report`]).
    pub diagnostics: Diagnostics,
}

impl Compiled {
    /// Whether a stage found an error; a policy `deny` is not one (see `evaluation.denied`).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.has_errors()
    }

    /// Everything to show a person: every stage's diagnostics and every policy violation (as
    /// E0401/W0401), sorted by position.
    pub fn report(&self) -> Diagnostics {
        let mut all = self.diagnostics.clone();
        all.items.extend(self.evaluation.violations.iter().map(policy::Violation::to_diagnostic));
        all.sort();
        all
    }
}

/// source → syntax → resolve → check → graph, collecting diagnostics from every stage that
/// can run. Stages after one with errors still run where their input is meaningful, so one run
/// reports as much as possible.
pub fn compile(dir: &Path, overrides: &Overrides) -> Compiled {
    compile_with(dir, overrides, &source::Overlay::new())
}

/// [`compile`], reading the files `overlay` holds from it instead of the disk (an editor's
/// unsaved buffers; see [`source::Overlay`]).
pub fn compile_with(dir: &Path, overrides: &Overrides, overlay: &source::Overlay) -> Compiled {
    let mut sources = Sources::default();
    let mut diagnostics = source::load_dir_with(dir, &mut sources, overlay);
    let (settings, settings_diags) = settings::load_with(dir, overrides, &mut sources, overlay);
    diagnostics.extend(settings_diags);
    let mut files = Vec::new();
    for (file, diags) in parse_all(&sources) {
        diagnostics.extend(diags);
        files.push(file);
    }
    let vars: BTreeMap<String, Value> = settings.vars.iter().map(|(k, v)| (k.clone(), v.to_value())).collect();
    // One evaluation budget for the configuration and its policies.
    let meter = limits::Meter::new(settings.limits);
    let (resolved, resolve_diags) = resolve::resolve_within(&files, &vars, &settings.subscriptions, &meter);
    diagnostics.extend(resolve_diags);
    let let_map: std::collections::HashMap<String, &ast::Let> = files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|i| if let ast::Item::Let(l) = i { Some((l.name.node.clone(), l)) } else { None })
        .collect();
    let lets: HashSet<String> = let_map.keys().cloned().collect();
    let resolve::Resolved { decls, mut policies, moves } = resolved;
    policies.extend(load_packs(&settings, &mut sources, &mut diagnostics));
    // Packs read variables that have defaults; the configuration's own values win.
    let mut policy_vars = vars.clone();
    for (name, value) in packs::default_vars() {
        policy_vars.entry(name.to_owned()).or_insert(value);
    }
    diagnostics.extend(check::check_policies(&policies, &policy_vars, &lets));
    let known: HashSet<String> = policies.iter().map(|p| p.name.node.clone()).collect();
    let (mut model, check_diags) = check::check(&decls, &known);
    model.moves = moves;
    diagnostics.extend(check_diags);
    // Policies and the graph both only read the model: build them side by side (and free the
    // resolved declarations meanwhile).
    let (evaluation, graph) = std::thread::scope(|scope| {
        let graph = scope.spawn(|| DepGraph::build(&model));
        drop(decls);
        let evaluation = policy::evaluate(&policies, &model, &policy_vars, &settings.subscriptions, &let_map, &meter);
        // INVARIANT: building the graph does not panic on a checked model.
        (evaluation, graph.join().expect("graph builder"))
    });
    diagnostics.extend(evaluation.diagnostics.clone());
    let graph = match graph {
        Ok(g) => Some(g),
        Err(d) => {
            diagnostics.push(d);
            None
        }
    };
    diagnostics.sort();
    Compiled { sources, settings, files, model, policies, graph, evaluation, diagnostics }
}

/// Parses every `.mlp` file, spread over the machine's cores; results in file order.
fn parse_all(sources: &Sources) -> Vec<(ast::File, Diagnostics)> {
    let ids: Vec<source::FileId> = sources.mlp_files().collect();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(ids.len()).max(1);
    let mut results: Vec<Option<(ast::File, Diagnostics)>> = ids.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let ids = &ids;
                scope.spawn(move || {
                    ids.iter()
                        .enumerate()
                        .skip(w)
                        .step_by(workers)
                        .map(|(i, id)| (i, syntax::parse(*id, &sources.get(*id).text)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // INVARIANT: `syntax::parse` catches its own panics; a worker cannot panic.
            for (i, r) in h.join().expect("parse worker") {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// Parses the built-in packs the settings select (E0223 for an unknown name).
fn load_packs(settings: &Settings, sources: &mut Sources, diagnostics: &mut Diagnostics) -> Vec<ast::Policy> {
    for name in &settings.policies {
        if packs::find(name).is_none() {
            let mut d =
                diagnostics::Diagnostic::error(Code::E0223, format!("there is no built-in policy pack `{name}`"));
            if let Some(span) = settings.span_of(sources, &["policies"]) {
                d = d.with_label(span, "selected here");
            }
            d.help = suggest::did_you_mean(name, packs::PACKS.iter().map(|p| p.name)).or_else(|| {
                Some(format!(
                    "the packs are {}",
                    packs::PACKS.iter().map(|p| format!("`{}`", p.name)).collect::<Vec<_>>().join(", ")
                ))
            });
            diagnostics.push(d);
        }
    }
    let mut out = Vec::new();
    for pack in packs::expand(&settings.policies) {
        let id = sources.add(pack.file, std::path::PathBuf::new(), pack.text);
        let (file, diags) = syntax::parse(id, pack.text);
        diagnostics.extend(diags);
        out.extend(file.items.into_iter().filter_map(|i| if let ast::Item::Policy(p) = i { Some(p) } else { None }));
    }
    out
}
