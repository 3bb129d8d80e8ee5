//! Apply: carries out a plan's changes against Azure through the project's client.
//!
//! Changes run in fixed dependency layers, which is a valid topological order of everything
//! the language can express: resource groups → identities → workspaces → federated credentials
//! → group upserts → group memberships (owners before members) → role assignments, then the
//! deletions in reverse (role assignments, groups, federated credentials, workspaces,
//! identities, resource groups). Within a layer up to `parallelism` operations run at once. A
//! failed object fails only itself: later objects that depend on it — by ARM id containment, by
//! naming it as a principal, or by using it as a workspace identity — are skipped, and
//! independent ones continue.
//!
//! Every operation is idempotent (PUT, upsert by `uniqueName`, `$ref` adds where "already
//! exists" counts as done, DELETE where "already gone" counts as done), and group memberships
//! are computed from a fresh read of the group, so a rerun after an interruption at any point
//! converges without duplicates.
//!
//! Workspaces: a deletion soft-deletes (`forceToPurge=false`, recoverable for Azure's retention
//! period); a replacement, which must reuse the name, purges (`forceToPurge=true`).
//!
//! Files: `schedule` orders the changes and runs them, `execute` carries out one operation,
//! `lockout` refuses self-lock-out, `audit_log` writes `--audit-log`, and `stale` refuses stale,
//! altered, unsigned or re-derived-differently saved plans.
//!
//! Codes: E0701 (an object failed), E0702 (self-lock-out refused), E0703 (stale saved plan),
//! E0704 (altered or invalid plan file), E0705 (audit log cannot be written), E0706 (a saved
//! plan differs from the one re-derived), E0707 (a saved plan's signature).

mod audit_log;
mod execute;
mod lockout;
mod schedule;
mod stale;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::plan::{Action, Change};
use mlpolicy_azure::AzureError;
use mlpolicy_lang::diagnostics::Code;
use mlpolicy_lang::diagnostics::Diagnostic;

pub use execute::workspace_body;
pub use lockout::{ACCESS_ADMIN_ROLES, check_self_lockout};
pub use schedule::apply;
pub use stale::{check_saved, saved_plan_error};

/// Default operations in flight at once.
pub const DEFAULT_PARALLELISM: usize = 10;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Operations in flight at once within a layer (at least 1).
    pub parallelism: usize,
    /// Allow removing the running principal's last access-managing role assignment at a scope.
    pub allow_self_lockout: bool,
    /// Append one JSON line per change made to this file.
    pub audit_log: Option<PathBuf>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self { parallelism: DEFAULT_PARALLELISM, allow_self_lockout: false, audit_log: None }
    }
}

/// Progress of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyEvent {
    Started {
        address: String,
        action: Action,
    },
    Finished {
        address: String,
        action: Action,
        azure_id: String,
        elapsed: Duration,
        request_id: Option<String>,
        correlation_id: Option<String>,
    },
    Failed {
        address: String,
        error: String,
    },
    Skipped {
        address: String,
        reason: String,
    },
}

/// One object apply changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub address: String,
    pub action: Action,
    /// The object in Azure after the change (a group's object id).
    pub azure_id: String,
}

/// What apply did.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    pub done: Vec<Done>,
    /// One E0701 per failed object (or one E0702 / E0705 that stopped apply before it began).
    pub failed: Vec<Diagnostic>,
    /// Address and reason of each object not attempted.
    pub skipped: Vec<(String, String)>,
    /// `Apply complete: 3 added, 1 changed, 0 destroyed.` or `Apply failed: ...`.
    pub summary: String,
}

impl ApplyReport {
    /// Whether every change was made.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

fn failure(c: &Change, e: &AzureError) -> Diagnostic {
    let status = if e.status == 0 { "no response".to_owned() } else { format!("HTTP {}", e.status) };
    let code = if e.code.is_empty() { String::new() } else { format!(" {}", e.code) };
    let mut d = Diagnostic::error(Code::E0701, format!("{} failed: {status}{code}: {}", c.address, e.message));
    let mut help = e.hint.clone().unwrap_or_else(|| {
        "fix the cause and run apply again: finished objects are kept, and it continues where it stopped".into()
    });
    match (&e.request_id, &e.correlation_id) {
        (Some(r), Some(co)) => {
            let _ = write!(help, " (request id {r}, correlation id {co})");
        }
        (Some(r), None) => {
            let _ = write!(help, " (request id {r})");
        }
        _ => {}
    }
    d = d.with_help(help);
    d
}

/// `3 added, 1 changed, 0 destroyed`, with `, 2 adopted` when there were adoptions.
fn summary_counts(done: &[Done]) -> String {
    let (mut add, mut change, mut destroy, mut adopt) = (0, 0, 0, 0);
    for d in done {
        match d.action {
            Action::Create => add += 1,
            Action::Update => change += 1,
            Action::Replace => {
                add += 1;
                destroy += 1;
            }
            Action::Delete => destroy += 1,
            Action::Adopt => adopt += 1,
            Action::Read | Action::NoOp | Action::Move => {}
        }
    }
    let mut out = format!("{add} added, {change} changed, {destroy} destroyed");
    if adopt > 0 {
        let _ = write!(out, ", {adopt} adopted");
    }
    out
}

fn finish(mut report: ApplyReport) -> ApplyReport {
    let counts = summary_counts(&report.done);
    report.summary = if report.failed.is_empty() && report.skipped.is_empty() {
        format!("Apply complete: {counts}.")
    } else {
        format!("Apply failed: {} failed, {} skipped; {counts}.", report.failed.len(), report.skipped.len())
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let r = finish(ApplyReport {
            done: vec![
                Done { address: "a".into(), action: Action::Create, azure_id: String::new() },
                Done { address: "b".into(), action: Action::Replace, azure_id: String::new() },
            ],
            ..ApplyReport::default()
        });
        assert_eq!(r.summary, "Apply complete: 2 added, 0 changed, 1 destroyed.");
        let r = finish(ApplyReport { skipped: vec![("x".into(), "y".into())], ..ApplyReport::default() });
        assert!(r.summary.starts_with("Apply failed: 0 failed, 1 skipped"));
    }
}
