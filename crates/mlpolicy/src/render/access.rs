//! `mlpolicy access` answers, as text and as versioned JSON (`docs/access-json.md`).
//!
//! Each entry is one line, a path read left to right: the holder, the groups it is in (innermost
//! first), then the role and the scope, `alice → ml-fraud-leads → ml-fraud-ds → AzureML Data
//! Scientist @ mlw-fraud-prod`. Pure functions of the report: the same answer, the same bytes.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::text::clean;
use mlpolicy_engine::access::{Entry, Report};

/// Version of the JSON answer.
pub const ACCESS_FORMAT_VERSION: u32 = 1;

/// The answer as text.
pub fn access_text(r: &Report) -> String {
    let source = if r.source == "live" { "as the tenant has it" } else { "as the configuration would make it" };
    let subject = if r.query == "scope" {
        format!("Access to {}", clean(&r.subject))
    } else {
        format!("{} ({})", clean(&r.subject), r.subject_kind.replace('_', " "))
    };
    let subject = match &r.at {
        Some(at) => format!("{subject} at {}", clean(at)),
        None => subject,
    };
    let mut out = String::new();
    if r.entries.is_empty() {
        let none = if r.query == "scope" { "nobody has access" } else { "holds no role" };
        let _ = writeln!(out, "{subject}: {none}, {source}.");
        return out;
    }
    let count = if r.query == "scope" {
        let n = r.entries.iter().map(|e| &e.principal_id).collect::<BTreeSet<_>>().len();
        format!("{n} {} with access", if n == 1 { "principal" } else { "principals" })
    } else {
        let roles = r.entries.iter().map(|e| (&e.role, &e.scope_id)).collect::<BTreeSet<_>>().len();
        let scopes = r.entries.iter().map(|e| &e.scope_id).collect::<BTreeSet<_>>().len();
        format!(
            "{roles} {} on {scopes} {}",
            if roles == 1 { "role" } else { "roles" },
            if scopes == 1 { "scope" } else { "scopes" }
        )
    };
    let _ = writeln!(out, "{subject}: {count}, {source}.\n");
    for e in &r.entries {
        let _ = writeln!(out, "  {}", line(e, r.source == "live"));
    }
    out
}

fn line(e: &Entry, live: bool) -> String {
    let mut path: Vec<String> = e.path.iter().map(|p| clean(p).into_owned()).collect();
    if e.principal_kind == "existing_group" {
        path[0].push_str(" (members not known without --live)");
    }
    let mut s = format!("{} → {} @ {}", path.join(" → "), clean(&e.role), clean(&e.scope));
    if e.inherited {
        s.push_str(" (inherited)");
    }
    if !e.covers.is_empty() {
        let _ =
            write!(s, " (covers {})", e.covers.iter().map(|c| clean(c).into_owned()).collect::<Vec<_>>().join(", "));
    }
    if live && !e.managed {
        s.push_str("  [not managed]");
    }
    s
}

/// The answer of `mlpolicy access --format json` (docs/access.md).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(title = "mlpolicy access")]
pub(crate) struct JsonReport<'a> {
    /// Schema version: check it first and refuse versions you do not know.
    #[schemars(extend("const" = 1))]
    format_version: u32,
    #[serde(flatten)]
    report: &'a Report,
}

/// The answer as JSON: `format_version`, the query, and one object per entry.
pub fn access_json(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&JsonReport { format_version: ACCESS_FORMAT_VERSION, report: r })
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
