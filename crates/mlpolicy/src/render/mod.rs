//! Renderers: pure functions from a [`Plan`] to the text a reviewer or a program reads.
//!
//! [`text`] is the terminal and job-log form of cli.md, [`markdown`] wraps the same text for a
//! pull-request comment and folds it under GitHub's size limit, and [`json`] is the versioned
//! schema of `docs/plan-json.md`. None of them reads the environment, the clock or Azure:
//! the same plan gives the same bytes. No-op changes are never shown; read-only changes are.
//!
//! [`findings_text`], [`findings_json`], [`findings_sarif`] and [`github_annotations`] render the
//! findings of `validate` and `audit` (docs/findings.md) under the same rules.

mod access;
mod json;
mod markdown;
mod mermaid;
mod schema;
mod text;

pub use self::access::{ACCESS_FORMAT_VERSION, access_json, access_text};
pub use self::json::json;
pub use self::markdown::{markdown, markdown_with};
pub use self::schema::schemas;
pub use self::text::text;

// Findings of `validate` and `audit` (not plans).
mod findings;
pub use self::findings::{
    azure_devops_issues, escape_data, escape_property, findings_json, findings_sarif, findings_text,
    github_annotations, vso_escape_data, vso_escape_property,
};

use mlpolicy_engine::plan::{Action, Change, Plan};

/// How the text plan is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colour; with `false` the output holds no escape byte at all.
    pub color: bool,
    /// Terminal width. The plan is never wrapped (reviewers diff it), so this is advisory.
    pub width: usize,
}

impl Default for Style {
    fn default() -> Self {
        Style { color: false, width: 100 }
    }
}

/// The changes every renderer shows: everything but no-ops, in plan order.
fn shown(plan: &Plan) -> impl Iterator<Item = &Change> {
    plan.changes.iter().filter(|c| c.action != Action::NoOp)
}

#[cfg(test)]
pub(crate) mod fixtures;
