//! `mlpolicy plan`

use super::args::{PlanArgs, PlanFormat};
use super::{ExitStatus, connect_options, print_diagnostics, runtime};
use crate::render;
use mlpolicy_engine::plan::{PlanKey, SavedPlan};
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::{Diagnostic, Diagnostics};

pub fn run(args: &PlanArgs) -> ExitStatus {
    let overrides = args.common.overrides();
    let compiled = mlpolicy_lang::compile(&args.dir, &overrides);
    if compiled.has_errors() {
        print_diagnostics(&compiled.report(), &compiled.sources);
        return ExitStatus::Error;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(d) => {
            print_diagnostics(&d.into(), &compiled.sources);
            return ExitStatus::Error;
        }
    };
    let options = mlpolicy_engine::diff::DiffOptions {
        allow_replace: args.allow_replace.iter().cloned().collect(),
        allow_mass_removal: args.allow_mass_removal,
    };
    let result = rt.block_on(async {
        let conn = crate::connect::connect(&args.dir, &compiled.settings, &connect_options(&args.azure))
            .await
            .map_err(Diagnostics::from)?;
        let planned = mlpolicy_engine::plan(&compiled, &overrides, &conn.client, &options).await;
        let endpoints = conn.endpoints.clone();
        conn.close().await;
        planned.map(|p| (p, endpoints))
    });
    let (planned, endpoints) = match result {
        Ok(p) => p,
        Err(d) => {
            let mut all = compiled.report();
            all.extend(d);
            print_diagnostics(&all, &compiled.sources);
            return ExitStatus::Error;
        }
    };
    let mut diags = compiled.report();
    diags.extend(planned.diagnostics.clone());
    if args.azure.emulator {
        crate::connect::emulator_help(&mut diags, &args.dir);
    }
    print_diagnostics(&diags, &compiled.sources);
    let mut violations = mlpolicy_lang::findings::from_compiled(&compiled, &args.dir.display().to_string());
    violations.findings.retain(|f| f.rule.contains('/'));
    super::annotate(&violations, &args.dir);
    let plan_errors = planned.diagnostics.has_errors();
    let out = match args.format {
        PlanFormat::Text => render::text(&planned.plan, &render::Style { color: super::stdout_color(), width: 100 }),
        PlanFormat::Markdown => render::markdown(&planned.plan),
        PlanFormat::Json => render::json(&planned.plan),
    };
    print!("{out}");
    if plan_errors {
        return ExitStatus::Error;
    }
    if let Some(path) = &args.out {
        let key = match PlanKey::from_env() {
            Ok(k) => k,
            Err(e) => {
                let d = mlpolicy_engine::apply::saved_plan_error(&path.display().to_string(), &e);
                print_diagnostics(&d.into(), &compiled.sources);
                return ExitStatus::Error;
            }
        };
        let saved = SavedPlan {
            format_version: mlpolicy_engine::plan::FORMAT_VERSION,
            created_by: format!("mlpolicy {}", env!("CARGO_PKG_VERSION")),
            config_dir: args.dir.display().to_string(),
            tenant: compiled.settings.tenant.clone(),
            cloud: endpoints,
            subscriptions: compiled.settings.subscriptions.values().cloned().collect(),
            emulator: args.azure.emulator,
            desired: planned.desired.clone(),
            plan: planned.plan.clone(),
        };
        if let Err(e) = std::fs::write(path, saved.to_signed_file_text(key.as_ref())) {
            let d = Diagnostic::error(Code::E0602, format!("cannot write the plan to `{}`: {e}", path.display()));
            print_diagnostics(&d.into(), &compiled.sources);
            return ExitStatus::Error;
        }
    }
    if args.pr_comment {
        pr_comment(&rt, &planned.plan, args);
    }
    if planned.plan.denied {
        ExitStatus::PolicyDeny
    } else if args.detailed_exitcode && planned.plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    }
}

/// Posts or updates the pull-request comment; a failure is printed and does not change the
/// exit code (the plan was printed, and is what the job is judged by).
fn pr_comment(rt: &tokio::runtime::Runtime, plan: &mlpolicy_engine::plan::Plan, args: &PlanArgs) {
    let env = crate::publish::process_env;
    let dir = args.dir.display().to_string();
    match rt.block_on(crate::publish::pr_comment(plan, &dir, &env)) {
        Ok(done) => {
            for note in done.notes {
                eprintln!("mlpolicy: {note}");
            }
        }
        Err(e) => eprintln!("error: --pr-comment: {e}"),
    }
}
