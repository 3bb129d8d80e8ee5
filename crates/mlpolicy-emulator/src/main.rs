//! `mlpolicy-emulator`: the local Azure on its own (`cargo run -p mlpolicy-emulator -- --listen
//! 127.0.0.1:0`). Prints `mlpolicy emulator listening on URL` when ready; stops on Ctrl-C.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "mlpolicy-emulator", version, about)]
struct Cli {
    #[command(flatten)]
    args: mlpolicy_emulator::cli::Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.args.config() {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mlpolicy_emulator::run_cli(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
