//! `mlpolicy apply [DIR | PLANFILE]`: plan, confirm and apply a configuration directory, or
//! apply a saved plan after checking that it is intact (and signed, when `MLPOLICY_PLAN_KEY` is
//! set), not stale, and the same as the plan re-derived from its configuration now. Progress goes to stdout
//! one line per event, Terraform style, so CI logs and terminals read the same; on a terminal
//! (stderr a TTY, outside CI) a progress bar on stderr below the lines shows done/total and the
//! object last started.

use std::collections::BTreeSet;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use super::args::ApplyArgs;
use super::{ExitStatus, print_diagnostics};
use crate::connect::{ConnectOptions, Connection, connect, stderr_log};
use mlpolicy_engine::apply::saved_plan_error;
use mlpolicy_engine::apply::{ApplyEvent, ApplyOptions, ApplyReport};
use mlpolicy_engine::diff::DiffOptions;
use mlpolicy_engine::plan::{Action, Plan, PlanKey, SavedPlan, SavedPlanError};
use mlpolicy_lang::diagnostics::{Code, Diagnostic, Diagnostics};
use mlpolicy_lang::source::Sources;

/// Runs `apply`.
pub fn run(args: &ApplyArgs) -> ExitStatus {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitStatus::Error;
        }
    };
    runtime.block_on(async { if args.target.is_file() { apply_saved(args).await } else { apply_dir(args).await } })
}

fn report(d: Diagnostic) {
    print_diagnostics(&Diagnostics::from(d), &Sources::default());
}

fn diff_options(args: &ApplyArgs) -> DiffOptions {
    DiffOptions {
        allow_replace: args.allow_replace.iter().cloned().collect::<BTreeSet<String>>(),
        allow_mass_removal: args.allow_mass_removal,
    }
}

/// `--parallelism` bounds the operations apply runs at once (`ApplyOptions`); the client may
/// have more requests in flight, for the plan's reads (one list per identity) and batches.
fn connect_options(args: &ApplyArgs, emulator: bool) -> ConnectOptions {
    let concurrency = (args.parallelism.max(1) * 2).max(mlpolicy_azure::ClientOptions::default().concurrency);
    ConnectOptions {
        emulator,
        emulator_profile: args.emulator_profile,
        log: args.verbose.then(stderr_log),
        concurrency: Some(concurrency),
    }
}

fn apply_options(args: &ApplyArgs) -> ApplyOptions {
    ApplyOptions {
        parallelism: args.parallelism.max(1),
        allow_self_lockout: args.allow_self_lockout,
        audit_log: args.audit_log.clone(),
    }
}

async fn apply_dir(args: &ApplyArgs) -> ExitStatus {
    let overrides = args.common.overrides();
    let compiled = mlpolicy_lang::compile(&args.target, &overrides);
    print_diagnostics(&compiled.report(), &compiled.sources);
    if compiled.has_errors() {
        return ExitStatus::Error;
    }
    let conn = match connect(&args.target, &compiled.settings, &connect_options(args, args.emulator)).await {
        Ok(c) => c,
        Err(d) => {
            report(d);
            return ExitStatus::Error;
        }
    };
    let status = plan_and_apply(args, &compiled, &overrides, &conn).await;
    conn.close().await;
    status
}

async fn plan_and_apply(
    args: &ApplyArgs,
    compiled: &mlpolicy_lang::Compiled,
    overrides: &mlpolicy_lang::settings::Overrides,
    conn: &Connection,
) -> ExitStatus {
    let planned = match mlpolicy_engine::plan(compiled, overrides, &conn.client, &diff_options(args)).await {
        Ok(p) => p,
        Err(diags) => {
            print_diagnostics(&diags, &compiled.sources);
            return ExitStatus::Error;
        }
    };
    let mut diags = planned.diagnostics.clone();
    if args.emulator {
        crate::connect::emulator_help(&mut diags, &args.target);
    }
    print_diagnostics(&diags, &compiled.sources);
    if planned.diagnostics.has_errors() {
        return ExitStatus::Error;
    }
    print!("{}", render_text(&planned.plan));
    if planned.plan.denied {
        eprintln!(
            "error: a policy denies this configuration; apply refuses (the plan above is what would have happened)"
        );
        return ExitStatus::PolicyDeny;
    }
    if !planned.plan.has_work() {
        return ExitStatus::Success;
    }
    if !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            eprintln!("error: stdin is not a terminal, so apply cannot ask for confirmation; pass `--auto-approve`");
            return ExitStatus::Error;
        }
        print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            println!("\nApply cancelled.");
            return ExitStatus::Error;
        }
    }
    println!();
    let report = run_apply(args, &planned.plan, &planned.desired, conn).await;
    finish(&report)
}

async fn run_apply(
    args: &ApplyArgs,
    plan: &Plan,
    desired: &mlpolicy_engine::lower::DesiredState,
    conn: &Connection,
) -> ApplyReport {
    let progress = Progress::new(plan.actions().count());
    let report = mlpolicy_engine::apply::apply(&plan.changes, desired, &conn.client, &apply_options(args), &|e| {
        progress.event(e);
    })
    .await;
    progress.finish();
    report
}

fn finish(report: &ApplyReport) -> ExitStatus {
    if !report.failed.is_empty() {
        let diags = Diagnostics { items: report.failed.clone() };
        print_diagnostics(&diags, &Sources::default());
    }
    println!("\n{}", report.summary);
    if report.ok() { ExitStatus::Success } else { ExitStatus::Error }
}

/// Where a saved plan's configuration is, as `plan` was given it.
fn config_dir_of(saved: &SavedPlan) -> Option<PathBuf> {
    let dir = PathBuf::from(&saved.config_dir);
    dir.is_dir().then_some(dir)
}

/// Reads a saved plan: intact (E0704) and, when `MLPOLICY_PLAN_KEY` is set, signed with it
/// (E0707).
fn read_saved(args: &ApplyArgs, path: &str) -> Result<SavedPlan, Diagnostic> {
    let text = std::fs::read_to_string(&args.target)
        .map_err(|e| saved_plan_error(path, &SavedPlanError::Invalid(e.to_string())))?;
    let key = PlanKey::from_env().map_err(|e| saved_plan_error(path, &e))?;
    SavedPlan::from_signed_file_text(&text, key.as_ref()).map_err(|e| saved_plan_error(path, &e))
}

/// `apply PLANFILE`: the plan is re-derived from the configuration it names and the live
/// tenant, policies included, and only the re-derived plan is applied, after it was found equal
/// to the saved one (stale: E0703; different: E0706).
async fn apply_saved(args: &ApplyArgs) -> ExitStatus {
    let path = args.target.display().to_string();
    let saved = match read_saved(args, &path) {
        Ok(s) => s,
        Err(d) => {
            report(d);
            return ExitStatus::Error;
        }
    };
    if saved.plan.denied {
        eprintln!("error: a policy denies this plan; apply refuses");
        return ExitStatus::PolicyDeny;
    }
    let Some(dir) = config_dir_of(&saved) else {
        report(
            Diagnostic::error(
                Code::E0706,
                format!(
                    "the configuration `{}` that `{path}` was planned from is not there, so the plan cannot be re-derived",
                    saved.config_dir
                ),
            )
            .with_help("apply a saved plan from where `mlpolicy plan --out` ran, with the configuration checked out"),
        );
        return ExitStatus::Error;
    };
    let overrides = args.common.overrides();
    let compiled = mlpolicy_lang::compile(&dir, &overrides);
    print_diagnostics(&compiled.report(), &compiled.sources);
    if compiled.has_errors() {
        return ExitStatus::Error;
    }
    let conn = match connect(&dir, &compiled.settings, &connect_options(args, saved.emulator || args.emulator)).await {
        Ok(c) => c,
        Err(d) => {
            report(d);
            return ExitStatus::Error;
        }
    };
    let status = async {
        let now = match mlpolicy_engine::plan(&compiled, &overrides, &conn.client, &diff_options(args)).await {
            Ok(p) => p,
            Err(diags) => {
                print_diagnostics(&diags, &compiled.sources);
                return ExitStatus::Error;
            }
        };
        print_diagnostics(&now.diagnostics, &compiled.sources);
        if now.diagnostics.has_errors() {
            return ExitStatus::Error;
        }
        if now.plan.denied {
            eprintln!("error: a policy of the configuration denies this plan; apply refuses");
            return ExitStatus::PolicyDeny;
        }
        if let Err(d) = mlpolicy_engine::apply::check_saved(&saved, &path, &now) {
            report(*d);
            return ExitStatus::Error;
        }
        print!("{}", render_text(&now.plan));
        if !now.plan.has_work() {
            return ExitStatus::Success;
        }
        println!();
        let report = run_apply(args, &now.plan, &now.desired, &conn).await;
        finish(&report)
    }
    .await;
    conn.close().await;
    status
}

fn verbs(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("Creating...", "Creation complete"),
        Action::Update => ("Modifying...", "Modifications complete"),
        Action::Replace => ("Replacing...", "Replacement complete"),
        Action::Delete => ("Destroying...", "Destruction complete"),
        Action::Adopt => ("Adopting...", "Adoption complete"),
        Action::Read | Action::NoOp | Action::Move => ("Reading...", "Read complete"),
    }
}

/// Whether apply draws a progress bar: only for a person watching a terminal. Anything else —
/// CI (`CI` set to anything but `false` or `0`), a `dumb` terminal, stderr redirected — gets
/// the plain lines alone.
fn wants_progress_bar(stderr_is_terminal: bool, ci: Option<&str>, term: Option<&str>) -> bool {
    let ci = ci.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"));
    stderr_is_terminal && !ci && term != Some("dumb")
}

/// How apply reports progress: one line per object on stdout always, and on a terminal a bar
/// on stderr below them (done/total and the object last started).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let env = |k: &str| std::env::var(k).ok();
        let wanted = wants_progress_bar(std::io::stderr().is_terminal(), env("CI").as_deref(), env("TERM").as_deref());
        let bar = wanted.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(u64::try_from(total).unwrap_or(u64::MAX)),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}") {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar }
    }

    fn event(&self, e: ApplyEvent) {
        let Some(bar) = &self.bar else {
            print_event(e);
            return;
        };
        match &e {
            ApplyEvent::Started { address, .. } => bar.set_message(address.clone()),
            ApplyEvent::Finished { .. } | ApplyEvent::Failed { .. } | ApplyEvent::Skipped { .. } => bar.inc(1),
        }
        // The line goes to stdout as without a bar; the bar steps aside while it is written.
        bar.suspend(|| print_event(e));
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One progress line per event, flushed at once (CI logs and the interruption tests read them).
fn print_event(e: ApplyEvent) {
    let line = match e {
        ApplyEvent::Started { address, action } => format!("{address}: {}", verbs(action).0),
        ApplyEvent::Finished { address, action, azure_id, elapsed, .. } => {
            format!("{address}: {} after {}s [id={azure_id}]", verbs(action).1, elapsed.as_secs())
        }
        ApplyEvent::Failed { address, error } => {
            format!("{address}: Failed: {}", error.lines().next().unwrap_or_default())
        }
        ApplyEvent::Skipped { address, reason } => format!("{address}: Skipped: {reason}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The plan as text, coloured on a terminal.
pub(crate) fn render_text(plan: &Plan) -> String {
    crate::render::text(plan, &crate::render::Style { color: super::stdout_color(), width: 100 })
}

#[cfg(test)]
mod tests {
    use super::wants_progress_bar;

    #[test]
    fn progress_bar_only_for_a_terminal_outside_ci() {
        assert!(wants_progress_bar(true, None, Some("xterm-256color")));
        assert!(wants_progress_bar(true, None, None));
        assert!(!wants_progress_bar(false, None, Some("xterm")), "stderr redirected");
        assert!(!wants_progress_bar(true, Some("true"), Some("xterm")), "CI");
        assert!(!wants_progress_bar(true, Some("1"), None), "CI");
        assert!(wants_progress_bar(true, Some("false"), None), "CI=false is not CI");
        assert!(wants_progress_bar(true, Some("0"), None));
        assert!(wants_progress_bar(true, Some(""), None), "an empty CI is unset");
        assert!(!wants_progress_bar(true, None, Some("dumb")));
    }
}
