//! `mlpolicy validate`

use super::args::{FindingsFormat, ValidateArgs};
use super::{ExitStatus, annotate, print_diagnostics};
use crate::render;
use mlpolicy_lang::findings;

pub fn run(args: &ValidateArgs) -> ExitStatus {
    let compiled = mlpolicy_lang::compile(&args.dir, &args.common.overrides());
    print_diagnostics(&compiled.report(), &compiled.sources);
    let report = findings::from_compiled(&compiled, &args.dir.display().to_string());
    annotate(&report, &args.dir);
    match args.format {
        FindingsFormat::Text => {}
        FindingsFormat::Json => print!("{}", render::findings_json(&report)),
        FindingsFormat::Sarif => print!("{}", render::findings_sarif(&report)),
    }
    if compiled.has_errors() {
        return ExitStatus::Error;
    }
    if compiled.evaluation.denied > 0 {
        return ExitStatus::PolicyDeny;
    }
    if args.format != FindingsFormat::Text {
        return ExitStatus::Success;
    }
    let m = &compiled.model;
    println!(
        "The configuration is valid: {} resource groups, {} workspaces, {} identities ({} federated credentials), {} groups, {} grants.",
        m.resource_groups.len(),
        m.workspaces.len(),
        m.identities.len(),
        m.federated.len(),
        m.groups.len(),
        m.grants.len()
    );
    ExitStatus::Success
}
