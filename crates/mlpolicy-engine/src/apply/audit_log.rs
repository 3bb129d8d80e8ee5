//! The `--audit-log`: one JSON line per change made or failed, flushed as it is written.

use std::io::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::diff::fingerprint;
use crate::plan::{Action, Change};
use mlpolicy_lang::diagnostics::{Code, Diagnostic};
use mlpolicy_vocab::time::rfc3339_now;

/// One line of the audit log.
#[derive(Debug, Serialize)]
struct AuditEntry<'a> {
    time: String,
    principal: Option<&'a str>,
    address: &'a str,
    azure_id: &'a str,
    action: Action,
    before_digest: Option<String>,
    after_digest: Option<String>,
    request_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Appends to the audit log, one flushed line per change.
pub(super) struct Audit {
    file: std::fs::File,
    path: PathBuf,
    principal: Option<String>,
}

impl Audit {
    pub(super) fn open(path: &PathBuf, principal: Option<String>) -> Result<Audit, Diagnostic> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Diagnostic::error(Code::E0705, format!("cannot open the audit log `{}`: {e}", path.display()))
                .with_help("check the path and permissions; nothing was applied")
        })?;
        Ok(Audit { file, path: path.clone(), principal })
    }

    pub(super) fn write(
        &mut self,
        change: &Change,
        azure_id: &str,
        ids: (Option<&str>, Option<&str>),
        error: Option<String>,
    ) -> Result<(), Diagnostic> {
        let entry = AuditEntry {
            time: rfc3339_now(),
            principal: self.principal.as_deref(),
            address: &change.address,
            azure_id,
            action: change.action,
            before_digest: change.before.as_ref().map(fingerprint),
            after_digest: change.after.as_ref().map(fingerprint),
            request_id: ids.0,
            correlation_id: ids.1,
            outcome: if error.is_some() { "failed" } else { "succeeded" },
            error,
        };
        let mut line = serde_json::to_string(&entry).unwrap_or_default();
        line.push('\n');
        self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush()).map_err(|e| {
            Diagnostic::error(Code::E0705, format!("cannot write the audit log `{}`: {e}", self.path.display()))
                .with_help("apply stopped before its next change; rerun it once the log is writable")
        })
    }
}
