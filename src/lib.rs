//! mlpolicy: identity and access for Azure Machine Learning as reviewed code.
//!
//! The pipeline reads top to bottom, one module per stage:
//! source → syntax → resolve → check → lower → graph → live → diff → plan → render → apply.

pub mod access;
pub mod ast;
pub mod azure;
pub mod check;
pub mod cli;
pub mod diagnostics;
pub mod emulator;
pub mod eval;
pub mod fmt;
pub mod graph;
pub mod live;
pub mod lower;
pub mod model;
pub mod plan;
pub mod policy;
pub mod resolve;
pub mod roles;
pub mod settings;
pub mod source;
pub mod suggest;
pub mod synth;
pub mod syntax;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

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
    /// Policy results over the model (violations are also in `diagnostics`).
    pub evaluation: policy::Evaluation,
    /// Every diagnostic of every stage, sorted by position.
    pub diagnostics: Diagnostics,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.has_errors()
    }
}

/// source → syntax → resolve → check → graph, collecting diagnostics from every stage that
/// can run. Stages after one with errors still run where their input is meaningful, so one run
/// reports as much as possible.
pub fn compile(dir: &Path, overrides: &Overrides) -> Compiled {
    let mut sources = Sources::default();
    let mut diagnostics = source::load_dir(dir, &mut sources);
    let (settings, settings_diags) = settings::load(dir, overrides, &mut sources);
    diagnostics.extend(settings_diags);
    let files: Vec<ast::File> = sources
        .mlp_files()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|id| {
            let (file, diags) = syntax::parse(id, &sources.get(id).text);
            diagnostics.extend(diags);
            file
        })
        .collect();
    let vars: BTreeMap<String, Value> = settings.vars.iter().map(|(k, v)| (k.clone(), v.to_value())).collect();
    let (resolved, resolve_diags) = resolve::resolve(&files, &vars, &settings.subscriptions);
    diagnostics.extend(resolve_diags);
    let lets: HashSet<String> = files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|i| if let ast::Item::Let(l) = i { Some(l.name.node.clone()) } else { None })
        .collect();
    diagnostics.extend(check::check_policies(&resolved.policies, &vars, &lets));
    let known: HashSet<String> = resolved.policies.iter().map(|p| p.name.node.clone()).collect();
    let (model, check_diags) = check::check(&resolved.decls, &known);
    diagnostics.extend(check_diags);
    let let_map: std::collections::HashMap<String, &ast::Let> = files
        .iter()
        .flat_map(|f| &f.items)
        .filter_map(|i| if let ast::Item::Let(l) = i { Some((l.name.node.clone(), l)) } else { None })
        .collect();
    let evaluation = policy::evaluate(&resolved.policies, &model, &vars, &settings.subscriptions, &let_map);
    diagnostics.extend(evaluation.diagnostics.clone());
    let graph = match DepGraph::build(&model) {
        Ok(g) => Some(g),
        Err(d) => {
            diagnostics.push(d);
            None
        }
    };
    diagnostics.sort();
    Compiled { sources, settings, files, model, policies: resolved.policies, graph, evaluation, diagnostics }
}
