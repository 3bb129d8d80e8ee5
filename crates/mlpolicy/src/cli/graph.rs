//! `mlpolicy graph`

use super::{ExitStatus, args::ConfigArgs, print_diagnostics};

pub fn run(args: &ConfigArgs) -> ExitStatus {
    let compiled = mlpolicy_lang::compile(&args.dir, &args.common.overrides());
    print_diagnostics(&compiled.report(), &compiled.sources);
    match (&compiled.graph, compiled.has_errors()) {
        (Some(g), false) => {
            print!("{}", g.to_dot());
            ExitStatus::Success
        }
        _ => ExitStatus::Error,
    }
}
