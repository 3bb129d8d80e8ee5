//! `mlpolicy graph`

use super::args::{GraphArgs, GraphFormat};
use super::{ExitStatus, print_diagnostics};

pub fn run(args: &GraphArgs) -> ExitStatus {
    let compiled = mlpolicy_lang::compile(&args.dir, &args.common.overrides());
    print_diagnostics(&compiled.report(), &compiled.sources);
    match (&compiled.graph, compiled.has_errors()) {
        (Some(g), false) => {
            match args.format {
                GraphFormat::Dot => print!("{}", g.to_dot()),
                GraphFormat::Mermaid => print!("{}", g.to_mermaid()),
            }
            ExitStatus::Success
        }
        _ => ExitStatus::Error,
    }
}
