//! The `--audit-log`: a first line when apply starts, then one JSON line per change made or
//! failed, each flushed as it is written.
//!
//! The first line (`"event": "apply_started"`, with the principal and the number of changes) is
//! written before any change, so a log that cannot be written — a full disk, `/dev/full` —
//! stops apply before it changes anything. When a later line fails, apply starts nothing more;
//! the changes already in flight finish, and the one E0705 names those that are not in the log.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::diff::fingerprint;
use crate::plan::{Action, Change};
use mlpolicy_lang::diagnostics::{Code, Diagnostic};
use mlpolicy_vocab::time::rfc3339_now;

/// The first line of the audit log of one apply.
#[derive(Debug, Serialize)]
struct StartEntry<'a> {
    time: String,
    principal: Option<&'a str>,
    event: &'static str,
    changes: usize,
}

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
    out: Box<dyn Write + Send>,
    path: PathBuf,
    principal: Option<String>,
    /// A line could not be written (reported once); what finished after is listed here.
    broken: bool,
    unlogged: Vec<String>,
}

impl Audit {
    /// Opens `path` for appending and writes the first line, for an apply of `changes` changes.
    pub(super) fn open(path: &PathBuf, principal: Option<String>, changes: usize) -> Result<Audit, Diagnostic> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Diagnostic::error(Code::E0705, format!("cannot open the audit log `{}`: {e}", path.display()))
                .with_help("check the path and permissions; nothing was applied")
        })?;
        Audit::start(Box::new(file), path.clone(), principal, changes)
    }

    fn start(
        out: Box<dyn Write + Send>,
        path: PathBuf,
        principal: Option<String>,
        changes: usize,
    ) -> Result<Audit, Diagnostic> {
        let mut audit = Audit { out, path, principal, broken: false, unlogged: Vec::new() };
        let entry =
            StartEntry { time: rfc3339_now(), principal: audit.principal.as_deref(), event: "apply_started", changes };
        let line = serde_json::to_string(&entry).unwrap_or_default();
        audit.line(&line).map_err(|e| {
            Diagnostic::error(Code::E0705, format!("cannot write the audit log `{}`: {e}", audit.path.display()))
                .with_help("check free space and permissions; nothing was applied")
        })?;
        Ok(audit)
    }

    fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.out.write_all(line.as_bytes()).and_then(|()| self.out.write_all(b"\n")).and_then(|()| self.out.flush())
    }

    /// Writes the line of one change. The first failure is E0705 (apply then starts nothing
    /// more); after it, changes are only remembered as not logged (see [`Self::amend`]).
    pub(super) fn write(
        &mut self,
        change: &Change,
        azure_id: &str,
        ids: (Option<&str>, Option<&str>),
        error: Option<String>,
    ) -> Result<(), Diagnostic> {
        if self.broken {
            self.unlogged.push(change.address.clone());
            return Ok(());
        }
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
        let line = serde_json::to_string(&entry).unwrap_or_default();
        self.line(&line).map_err(|e| {
            self.broken = true;
            self.unlogged.push(change.address.clone());
            Diagnostic::error(Code::E0705, format!("cannot write the audit log `{}`: {e}", self.path.display()))
                .with_help("apply stopped: no further change was started; rerun it once the log is writable")
        })
    }

    /// Names, in the E0705 that stopped apply, the changes that were made but are not in
    /// the log.
    pub(super) fn amend(&self, failed: &mut [Diagnostic]) {
        if self.unlogged.is_empty() {
            return;
        }
        if let Some(d) = failed.iter_mut().find(|d| d.code == Code::E0705) {
            let help = d.help.take().unwrap_or_default();
            d.help = Some(format!(
                "{help}. Made or attempted but not in the log: {}",
                self.unlogged.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails as a full disk does.
    struct Disk {
        room: usize,
        lines: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.room {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            self.room -= buf.len();
            self.lines.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn change(address: &str) -> Change {
        Change::for_test(address, crate::plan::ObjectKind::Group, "u", Action::Create)
    }

    fn disk(room: usize) -> (Box<dyn Write + Send>, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let lines = std::sync::Arc::default();
        (Box::new(Disk { room, lines: std::sync::Arc::clone(&lines) }), lines)
    }

    #[test]
    fn a_full_disk_stops_apply_before_the_first_change() {
        let (out, _) = disk(0);
        let Err(d) = Audit::start(out, "/dev/full".into(), Some("p".into()), 3) else { panic!("opened") };
        assert_eq!(d.code, Code::E0705);
        assert!(d.message.contains("No space left on device"), "{}", d.message);
        assert!(d.help.unwrap().contains("nothing was applied"));
    }

    #[test]
    fn a_disk_that_fills_up_is_reported_once_naming_what_is_not_logged() {
        let (out, lines) = disk(400);
        let mut audit = Audit::start(out, "audit.jsonl".into(), Some("p".into()), 3).unwrap();
        let first: serde_json::Value =
            serde_json::from_slice(lines.lock().unwrap().split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(first["event"], "apply_started");
        assert_eq!(first["changes"], 3);
        assert!(audit.write(&change("group.a"), "a", (None, None), None).is_ok());
        let mut failed = vec![audit.write(&change("group.b"), "b", (None, None), None).unwrap_err()];
        assert!(audit.write(&change("group.c"), "c", (None, None), None).is_ok(), "reported once");
        audit.amend(&mut failed);
        let help = failed[0].help.clone().unwrap();
        assert!(help.ends_with("not in the log: `group.b`, `group.c`"), "{help}");
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
