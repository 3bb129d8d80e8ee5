//! `mlpolicy emulator`

use super::ExitStatus;
use mlpolicy_emulator::cli::Args;

pub fn run(args: &Args) -> ExitStatus {
    let cfg = match args.config() {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitStatus::Error;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitStatus::Error;
        }
    };
    match runtime.block_on(mlpolicy_emulator::run_cli(cfg)) {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            eprintln!("error: {e}");
            ExitStatus::Error
        }
    }
}
