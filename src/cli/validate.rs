//! `mlpolicy validate`

use super::{ExitStatus, args::ConfigArgs, print_diagnostics};

pub fn run(args: &ConfigArgs) -> ExitStatus {
    let compiled = crate::compile(&args.dir, &args.common.overrides());
    print_diagnostics(&compiled.diagnostics, &compiled.sources);
    let other_errors = compiled.diagnostics.items.iter().any(|d| d.is_error() && d.code != "E0401");
    if other_errors {
        return ExitStatus::Error;
    }
    if compiled.evaluation.denied > 0 {
        return ExitStatus::PolicyDeny;
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
