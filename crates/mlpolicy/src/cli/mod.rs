//! The command line: clap argument types and a dispatcher. Each command lives in its own file
//! and only calls the library, picks a renderer and writes to stdout/stderr.

mod access;
mod apply;
mod args;
mod audit;
mod completions;
mod emulator;
mod export;
mod fmt;
mod graph;
mod lsp;
mod man;
mod plan;
mod show;
mod validate;

use std::io::IsTerminal;

pub use args::{Cli, Command, CommonArgs, VERSION};

use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::{self, Diagnostics, RenderOptions};
use mlpolicy_lang::source::Sources;

/// Process exit codes (cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Success (with `--detailed-exitcode`: and no changes).
    Success = 0,
    /// An error in the input, the tenant or mlpolicy.
    Error = 1,
    /// With `--detailed-exitcode`: success, and changes are present.
    Changes = 2,
    /// A policy `deny` (the plan is still printed).
    PolicyDeny = 3,
}

/// Runs one command line.
pub fn run(cli: Cli) -> ExitStatus {
    match cli.command {
        Command::Validate(a) => validate::run(&a),
        Command::Audit(a) => audit::run(&a),
        Command::Fmt(a) => fmt::run(&a),
        Command::Graph(a) => graph::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Apply(a) => apply::run(&a),
        Command::Show(a) => show::run(&a),
        Command::Access(a) => access::run(&a),
        Command::Export(a) => export::run(&a),
        Command::Emulator(a) => emulator::run(&a),
        Command::Completions(a) => completions::run(&a),
        Command::Man(a) => man::run(&a),
        Command::Lsp(_) => lsp::run(),
    }
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset.
pub(crate) fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Prints diagnostics to stderr as miette renders them.
pub(crate) fn print_diagnostics(diags: &Diagnostics, sources: &Sources) {
    if diags.is_empty() {
        return;
    }
    let width = terminal_width();
    eprint!("{}", diagnostics::render_all(diags, sources, RenderOptions { color: stderr_color(), width }));
}

/// On GitHub Actions (`GITHUB_ACTIONS=true`), prints each finding to stderr as a workflow
/// command (`::error file=...,line=...::message`); on Azure Pipelines (`TF_BUILD=True`), as a
/// logging command (`##vso[task.logissue type=error;sourcepath=...]message`; the agent reads
/// both streams, so stdout stays the command's output).
pub(crate) fn annotate(report: &mlpolicy_lang::findings::Report, dir: &std::path::Path) {
    if std::env::var("TF_BUILD").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        // Paths from the repository root: the checkout is BUILD_SOURCESDIRECTORY.
        let sources = std::env::var_os("BUILD_SOURCESDIRECTORY").map(std::path::PathBuf::from);
        let dir = sources.as_deref().and_then(|w| dir.strip_prefix(w).ok()).unwrap_or(dir);
        let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
        eprint!("{}", crate::render::azure_devops_issues(report, &dir.display().to_string()));
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        // Annotations name files from the repository root: an absolute directory inside the
        // workspace is made relative to it.
        let workspace = std::env::var_os("GITHUB_WORKSPACE").map(std::path::PathBuf::from);
        let dir = workspace.as_deref().and_then(|w| dir.strip_prefix(w).ok()).unwrap_or(dir);
        let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
        eprint!("{}", crate::render::github_annotations(report, &dir.display().to_string()));
    }
}

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset.
pub(crate) fn stdout_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).filter(|w| *w >= 40).unwrap_or(100)
}

/// A runtime for the commands that talk to Azure.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, mlpolicy_lang::diagnostics::Diagnostic> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        mlpolicy_lang::diagnostics::Diagnostic::error(Code::E0601, format!("cannot start the async runtime: {e}"))
    })
}

/// Connection options from the shared Azure flags.
pub(crate) fn connect_options(a: &args::AzureArgs) -> crate::connect::ConnectOptions {
    crate::connect::ConnectOptions {
        emulator: a.emulator,
        emulator_profile: a.emulator_profile,
        log: a.verbose.then(crate::connect::stderr_log),
        concurrency: None,
    }
}
