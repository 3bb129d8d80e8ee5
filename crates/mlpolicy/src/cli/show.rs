//! `mlpolicy show PLANFILE`: prints a saved plan, refusing an altered or foreign file (E0704).

use super::ExitStatus;
use super::apply::render_text;
use super::args::{PlanFormat, ShowArgs};
use mlpolicy_engine::plan::{SavedPlan, SavedPlanError};
use mlpolicy_lang::diagnostics::Diagnostics;
use mlpolicy_lang::source::Sources;

/// Runs `show`.
pub fn run(args: &ShowArgs) -> ExitStatus {
    let path = args.plan_file.display().to_string();
    let saved = std::fs::read_to_string(&args.plan_file)
        .map_err(|e| SavedPlanError::Invalid(e.to_string()))
        .and_then(|text| SavedPlan::from_file_text(&text));
    let saved = match saved {
        Ok(s) => s,
        Err(e) => {
            let d = mlpolicy_engine::apply::saved_plan_error(&path, &e);
            super::print_diagnostics(&Diagnostics::from(d), &Sources::default());
            return ExitStatus::Error;
        }
    };
    match args.format {
        PlanFormat::Text => print!("{}", render_text(&saved.plan)),
        PlanFormat::Markdown => print!("{}", crate::render::markdown(&saved.plan)),
        PlanFormat::Json => print!("{}", crate::render::json(&saved.plan)),
    }
    ExitStatus::Success
}
