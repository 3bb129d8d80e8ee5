//! `mlpolicy completions SHELL`: a completion script generated from the command definition, so
//! it always knows every command and flag of this binary.

use clap::CommandFactory as _;

use super::ExitStatus;
use super::args::{Cli, CompletionsArgs};

/// The completion script for `shell`.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mlpolicy", &mut out);
    out
}

pub fn run(args: &CompletionsArgs) -> ExitStatus {
    use std::io::Write as _;
    match std::io::stdout().write_all(&script(args.shell)) {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            eprintln!("error: cannot write the completion script: {e}");
            ExitStatus::Error
        }
    }
}
