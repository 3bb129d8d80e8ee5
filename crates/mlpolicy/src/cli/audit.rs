//! `mlpolicy audit`

use super::args::{AuditArgs, FindingsFormat};
use super::{ExitStatus, annotate, connect_options, print_diagnostics, runtime};
use crate::render;
use mlpolicy_engine::audit::AuditOptions;
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::{Diagnostic, Diagnostics};
use mlpolicy_vocab::time::parse_rfc3339;

/// Environment variable that fixes "now" (RFC 3339), for reproducible tests and reports.
pub const NOW_VAR: &str = "MLPOLICY_NOW";

fn now() -> Result<i64, Diagnostic> {
    match std::env::var(NOW_VAR) {
        Ok(v) => parse_rfc3339(&v).ok_or_else(|| {
            Diagnostic::error(Code::E0951, format!("`{NOW_VAR}` is not an RFC 3339 date-time: `{v}`"))
                .with_help(format!("write it like `2025-06-01T00:00:00Z`, or unset `{NOW_VAR}` to use the clock"))
        }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
    }
}

pub fn run(args: &AuditArgs) -> ExitStatus {
    let overrides = args.common.overrides();
    let compiled = mlpolicy_lang::compile(&args.dir, &overrides);
    // The desired state's own policy results are not the audit's: the audit judges live state.
    let mut diags = compiled.diagnostics.clone();
    if diags.has_errors() {
        print_diagnostics(&diags, &compiled.sources);
        return ExitStatus::Error;
    }
    let options = match now() {
        Ok(now) => AuditOptions { now, expiring_within: args.expiring_within },
        Err(d) => {
            diags.push(d);
            print_diagnostics(&diags, &compiled.sources);
            return ExitStatus::Error;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(d) => {
            diags.push(d);
            print_diagnostics(&diags, &compiled.sources);
            return ExitStatus::Error;
        }
    };
    let dir = args.dir.display().to_string();
    let result = rt.block_on(async {
        let conn = crate::connect::connect(&args.dir, &compiled.settings, &connect_options(&args.azure))
            .await
            .map_err(Diagnostics::from)?;
        let audited = mlpolicy_engine::audit::audit(&compiled, &conn.client, &options, &dir).await;
        conn.close().await;
        audited
    });
    let report = match result {
        Ok((report, eval_diags)) => {
            // The audit judges declared objects as the compiler did: what both report is shown once.
            for d in eval_diags.items {
                if !diags.items.contains(&d) {
                    diags.push(d);
                }
            }
            report
        }
        Err(d) => {
            diags.extend(d);
            print_diagnostics(&diags, &compiled.sources);
            return ExitStatus::Error;
        }
    };
    print_diagnostics(&diags, &compiled.sources);
    annotate(&report, &args.dir);
    let out = match args.format {
        FindingsFormat::Text => render::findings_text(&report),
        FindingsFormat::Json => render::findings_json(&report),
        FindingsFormat::Sarif => render::findings_sarif(&report),
    };
    print!("{out}");
    if report.denied() > 0 { ExitStatus::PolicyDeny } else { ExitStatus::Success }
}
