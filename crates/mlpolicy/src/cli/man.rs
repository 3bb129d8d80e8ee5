//! `mlpolicy man [--out DIR]`: man pages (roff) generated from the command definition with
//! `clap_mangen`: `mlpolicy.1` for the program and `mlpolicy-COMMAND.1` for each command.

use std::path::Path;

use clap::CommandFactory as _;

use super::ExitStatus;
use super::args::{Cli, ManArgs};

/// `(file name, roff text)` of every page: `mlpolicy.1` first, then one per command, sorted.
pub fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = vec![("mlpolicy.1".to_owned(), render(&cmd)?)];
    let mut subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| s.get_name() != "help").collect();
    subs.sort_by_key(|s| s.get_name());
    for sub in subs {
        // The page names the command as it is typed: `mlpolicy plan`, `mlpolicy-plan(1)`.
        let name = format!("mlpolicy-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).bin_name(format!("mlpolicy {}", sub.get_name()));
        out.push((format!("{name}.1"), render(&page)?));
    }
    Ok(out)
}

fn render(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    Ok(buf)
}

fn write_all(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let pages = pages()?;
    for (name, text) in &pages {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(pages.len())
}

pub fn run(args: &ManArgs) -> ExitStatus {
    use std::io::Write as _;
    let result = match &args.out {
        Some(dir) => write_all(dir).map(|n| eprintln!("wrote {n} man pages to {}", dir.display())),
        None => pages().and_then(|p| std::io::stdout().write_all(&p[0].1)),
    };
    match result {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            eprintln!("error: cannot write the man pages: {e}");
            ExitStatus::Error
        }
    }
}
