//! `mlpolicy fmt`

use super::{ExitStatus, args::FmtArgs, print_diagnostics};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostics;
use mlpolicy_lang::source::{self, Sources};

pub fn run(args: &FmtArgs) -> ExitStatus {
    let mut sources = Sources::default();
    let mut diags = source::load_dir(&args.dir, &mut sources);
    let mut changed = Vec::new();
    let mut outputs = Vec::new();
    for id in sources.mlp_files().collect::<Vec<_>>() {
        let file = sources.get(id);
        let (ast, parse_diags) = mlpolicy_lang::syntax::parse(id, &file.text);
        if parse_diags.has_errors() {
            diags.extend(parse_diags);
            continue;
        }
        let formatted = mlpolicy_lang::fmt::format(&ast, &file.text);
        if formatted != *file.text {
            changed.push(file.name.clone());
            outputs.push((file.path.clone(), formatted));
        }
    }
    diags.sort();
    print_diagnostics(&diags, &sources);
    if diags.has_errors() {
        return ExitStatus::Error;
    }
    if args.check {
        for name in &changed {
            println!("{name}");
        }
        return if changed.is_empty() { ExitStatus::Success } else { ExitStatus::Error };
    }
    let mut write_errors = Diagnostics::default();
    for (path, text) in outputs {
        if let Err(e) = write_atomic(&path, &text) {
            write_errors.push(mlpolicy_lang::diagnostics::Diagnostic::error(
                Code::E0006,
                format!("cannot write `{}`: {e}", path.display()),
            ));
        }
    }
    for name in &changed {
        println!("{name}");
    }
    print_diagnostics(&write_errors, &sources);
    if write_errors.has_errors() { ExitStatus::Error } else { ExitStatus::Success }
}

/// Writes through a temporary file and a rename, so an interrupted `fmt` never leaves half a file.
fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("mlp.fmt-tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
