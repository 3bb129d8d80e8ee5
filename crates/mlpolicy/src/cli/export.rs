//! `mlpolicy export`: reads the live estate under a scope and writes it as a configuration
//! directory (`--out`). With `--emulator` the emulator's state is `--out`/.mlpolicy/, as for
//! every command, so `plan DIR --emulator` afterwards reads the same tenant.

use std::path::Path;

use super::args::ExportArgs;
use super::{ExitStatus, connect_options, print_diagnostics, runtime};
use mlpolicy_engine::export::{ExportOptions, Scope};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::{Diagnostic, Diagnostics};
use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::source::Sources;

fn fail(d: Diagnostic, sources: &Sources) -> ExitStatus {
    print_diagnostics(&d.into(), sources);
    ExitStatus::Error
}

/// The `.mlp` files directly in `dir`, sorted.
fn mlp_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "mlp"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

pub fn run(args: &ExportArgs) -> ExitStatus {
    let dir = &args.out;
    let none = Sources::default();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(Diagnostic::error(Code::E0801, format!("cannot create `{}`: {e}", dir.display())), &none);
    }
    let existing = mlp_files(dir);
    if !existing.is_empty() && !args.force {
        return fail(
            Diagnostic::error(
                Code::E0801,
                format!("`{}` already holds .mlp files: {}", dir.display(), existing.join(", ")),
            )
            .with_help("export into an empty directory, or pass `--force` to replace them"),
            &none,
        );
    }
    let mut sources = Sources::default();
    let (mut settings, diags) = mlpolicy_lang::settings::load(dir, &Overrides::default(), &mut sources);
    if diags.has_errors() {
        print_diagnostics(&diags, &sources);
        return ExitStatus::Error;
    }
    if let Some(t) = &args.tenant {
        settings.tenant = Some(t.trim().to_ascii_lowercase());
    }
    if !args.policies.is_empty() {
        settings.policies.clone_from(&args.policies);
    }
    if let Some(state) = &args.emulator_state
        && let Err(d) = use_emulator_state(state, dir, args.force)
    {
        return fail(d, &sources);
    }
    let options = ExportOptions {
        scope: Scope {
            resource_groups: args.resource_groups.clone(),
            group_prefixes: args.group_prefixes.clone(),
            owner: args.owner.clone(),
        },
        subscriptions: args.subscriptions.clone(),
        compact: args.compact,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(d) => return fail(d, &sources),
    };
    let result = rt.block_on(async {
        let conn = crate::connect::connect(dir, &settings, &connect_options(&args.azure)).await?;
        let tenant = settings.tenant.clone().unwrap_or_else(|| conn.client.tenant_id().to_owned());
        let exported = mlpolicy_engine::export::export(&conn.client, &options, &settings, &tenant).await;
        conn.close().await;
        exported
    });
    let export = match result {
        Ok(e) => e,
        Err(d) => return fail(d, &sources),
    };
    for old in &existing {
        if let Err(e) = std::fs::remove_file(dir.join(old)) {
            return fail(Diagnostic::error(Code::E0801, format!("cannot replace `{old}`: {e}")), &sources);
        }
    }
    for (name, text) in &export.files {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            return fail(Diagnostic::error(Code::E0801, format!("cannot write `{name}`: {e}")), &sources);
        }
    }
    // The policy packs in force judge what was read: grants they deny are held back.
    let reviewed = mlpolicy_engine::export::review::review(&mlpolicy_lang::compile(dir, &Overrides::default()));
    for (name, text) in &reviewed.files {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            return fail(Diagnostic::error(Code::E0801, format!("cannot write `{name}`: {e}")), &sources);
        }
    }
    // The export must be a valid configuration; anything else is a bug worth a loud error.
    let compiled = mlpolicy_lang::compile(dir, &Overrides::default());
    let errors: Vec<Diagnostic> = compiled.diagnostics.items.iter().filter(|d| d.is_error()).cloned().collect();
    if !errors.is_empty() {
        print_diagnostics(&Diagnostics { items: errors }, &compiled.sources);
        return fail(
            Diagnostic::error(
                Code::E0803,
                format!("the configuration exported to `{}` does not validate", dir.display()),
            )
            .with_help("this is a bug in mlpolicy export; please report it with the estate's shape"),
            &none,
        );
    }
    report(dir, &export, &reviewed, args.azure.emulator);
    ExitStatus::Success
}

/// `--emulator-state FILE`: the tenant to export is that state, copied to where `--emulator`
/// runs keep it for DIR.
fn use_emulator_state(state: &Path, dir: &Path, force: bool) -> Result<(), Diagnostic> {
    let target = dir.join(".mlpolicy").join("emulator.yaml");
    let text = std::fs::read(state).map_err(|e| {
        Diagnostic::error(Code::E0801, format!("cannot read the emulator state `{}`: {e}", state.display()))
            .with_help("name the state file of a configuration that ran with `--emulator`: DIR/.mlpolicy/emulator.yaml")
    })?;
    if mlpolicy_emulator::Tenant::from_yaml(&String::from_utf8_lossy(&text), &state.display().to_string()).is_err() {
        return Err(Diagnostic::error(Code::E0801, format!("`{}` is not an emulator state file", state.display()))
            .with_help(
                "name the state file of a configuration that ran with `--emulator`: DIR/.mlpolicy/emulator.yaml",
            ));
    }
    let same = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if same(state, &target) {
        return Ok(());
    }
    if target.exists() && !force && std::fs::read(&target).ok().as_deref() != Some(&text[..]) {
        return Err(Diagnostic::error(
            Code::E0801,
            format!("`{}` already holds another emulator state", target.display()),
        )
        .with_help("export into another directory, or pass `--force` to replace that state"));
    }
    std::fs::create_dir_all(dir.join(".mlpolicy"))
        .and_then(|()| std::fs::write(&target, &text))
        .map_err(|e| Diagnostic::error(Code::E0801, format!("cannot write `{}`: {e}", target.display())))
}

/// A path as one shell word: quoted when it holds anything but plain characters.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn report(
    dir: &Path,
    export: &mlpolicy_engine::export::Export,
    reviewed: &mlpolicy_engine::export::review::Reviewed,
    emulator: bool,
) {
    let count = |k: &str| export.counts.get(k).copied().unwrap_or(0);
    println!(
        "Exported to {} (owner `{}`): {} resource groups, {} identities ({} federated credentials), {} workspaces, {} groups, {} grants.",
        dir.display(),
        export.owner,
        count("resource_group"),
        count("identity"),
        count("federated"),
        count("workspace"),
        count("group"),
        count("grant"),
    );
    if let Some(teams) = &export.teams {
        const SHOWN: usize = 12;
        if teams.len() > SHOWN {
            println!("Teams ({}): {}, and {} more.", teams.len(), teams[..SHOWN].join(", "), teams.len() - SHOWN);
        } else {
            println!("Teams: {}.", teams.join(", "));
        }
    }
    println!("Wrote {}.", export.files.keys().cloned().collect::<Vec<_>>().join(", "));
    for n in &export.notes {
        println!("note: {n}");
    }
    for s in &export.skipped {
        println!("kept as a comment: {s}");
    }
    for s in &reviewed.held_back {
        println!("held back for review: {s}");
    }
    for s in &reviewed.flagged {
        println!("review: {s}");
    }
    let commented = export.skipped.len() + reviewed.held_back.len();
    if commented > 0 {
        let d = Diagnostic::warning(
            Code::W0801,
            format!("{commented} object(s) in scope are kept as comments, not declarations"),
        )
        .with_help("each is written commented out with the reason (held-back grants where they were, the rest at the end of their file); review them by hand");
        print_diagnostics(&d.into(), &Sources::default());
    }
    let flag = if emulator { " --emulator" } else { "" };
    println!(
        "Next: `mlpolicy plan {}{flag}` shows no changes; objects made outside mlpolicy are adopted{}.",
        shell_word(dir),
        if reviewed.held_back.is_empty() { "" } else { ", held-back grants show as drift" }
    );
}
