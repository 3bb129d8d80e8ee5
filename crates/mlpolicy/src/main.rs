use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the compiler and the live read allocate many small strings; glibc's allocator
/// took a quarter of `plan`'s CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match mlpolicy::cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // Usage errors exit 1: exit code 2 means "changes present" (cli.md).
            let _ = e.print();
            return ExitCode::from(u8::from(e.use_stderr()));
        }
    };
    ExitCode::from(mlpolicy::cli::run(args) as u8)
}
