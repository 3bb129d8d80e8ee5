//! `mlpolicy lsp`

use super::ExitStatus;

pub fn run() -> ExitStatus {
    match mlpolicy_lsp::run_stdio() {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            eprintln!("{e}");
            ExitStatus::Error
        }
    }
}
