//! Findings: policy violations, other diagnostics of `validate`, and the results of
//! `mlpolicy audit`, as one data shape that every output format renders (text, JSON, SARIF,
//! GitHub annotations; see `render::findings`).
//!
//! A finding names a stable rule id: `<pack>/<policy>` for a built-in pack's policy
//! (`baseline/no_standing_admin`), `policy/<name>` for a policy of the configuration,
//! `audit/<kind>` for what only live state shows, and the diagnostic code (`E0103`) for other
//! problems `validate` reports. A finding points at a declaration (file relative to the
//! configuration directory, 1-based line and column) or, for live objects the configuration
//! does not declare, at an Azure id.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ast::{self, Effect};
use crate::diagnostics::Diagnostic;
use crate::source::{Sources, Span};

/// Version of the JSON of `--format json` (docs/findings.md).
pub const FORMAT_VERSION: u32 = 1;

/// How bad a finding is: `deny` fails the command with exit code 3, `warn` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Deny,
    Warn,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Deny => "deny",
            Level::Warn => "warn",
        }
    }
}

impl From<Effect> for Level {
    fn from(e: Effect) -> Self {
        match e {
            Effect::Deny => Level::Deny,
            Effect::Warn => Level::Warn,
        }
    }
}

/// A place in a configuration file. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub struct Location {
    /// The file, relative to the configuration directory (`main.mlp`, `mlpolicy.yaml`).
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Location {
    /// The location of a span; `None` for built-in files (packs) that are not on disk.
    pub fn of(sources: &Sources, span: Span) -> Option<Location> {
        let file = sources.files.get(span.file.0 as usize)?;
        if file.path.as_os_str().is_empty() {
            return None;
        }
        let (line, column) = sources.line_col(span.file, span.start);
        let (end_line, end_column) = sources.line_col(span.file, span.end);
        Some(Location { file: file.name.clone(), line, column, end_line, end_column })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// Stable rule id (`baseline/no_standing_admin`, `audit/expired-secret`, `E0103`).
    pub rule: String,
    pub level: Level,
    /// What is wrong, in one line.
    pub message: String,
    /// The object: a declaration's address, or how a live object is shown.
    pub subject: String,
    /// Where the object is declared, when it is.
    pub location: Option<Location>,
    /// The Azure id (ARM) or Graph path (`/applications/{id}`) of a live object.
    pub azure_id: Option<String>,
    /// Other rules that matched the same object (reported here, not as findings of their own).
    pub also: Vec<String>,
    /// Facts that explain the finding (role, principal id, expiry, ...).
    pub properties: BTreeMap<String, String>,
}

/// What a rule is about and how to fix what it finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RuleInfo {
    pub id: String,
    /// The level of its findings unless a finding says otherwise.
    pub level: Level,
    /// One line: what the rule keeps out.
    pub summary: String,
    /// How to fix a finding (a policy's `message`).
    pub help: String,
}

/// The findings of one command, with the rules they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `validate` or `audit`.
    pub command: String,
    /// The configuration directory as given on the command line.
    pub config_dir: String,
    /// The time findings were judged at (audit), RFC 3339.
    pub now: Option<String>,
    /// Sorted: deny first, then by location, rule and subject.
    pub findings: Vec<Finding>,
    /// Every rule a finding names (primary or `also`), sorted by id.
    pub rules: Vec<RuleInfo>,
    /// What was examined, for the summary line (e.g. `role assignments` → 12).
    pub examined: BTreeMap<String, usize>,
}

impl Report {
    pub fn denied(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Deny).count()
    }

    pub fn warned(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Warn).count()
    }

    /// Sorts the findings and keeps only the rules they name.
    pub fn finish(&mut self, catalog: &[RuleInfo]) {
        self.findings.sort_by(|a, b| {
            (a.level, &a.location, &a.rule, &a.subject, &a.azure_id).cmp(&(
                b.level,
                &b.location,
                &b.rule,
                &b.subject,
                &b.azure_id,
            ))
        });
        let mut rules: BTreeMap<&str, RuleInfo> = BTreeMap::new();
        for f in &self.findings {
            for id in std::iter::once(&f.rule).chain(&f.also) {
                if rules.contains_key(id.as_str()) {
                    continue;
                }
                let info = catalog.iter().find(|r| r.id == *id).cloned().unwrap_or_else(|| RuleInfo {
                    id: id.clone(),
                    level: f.level,
                    summary: id.clone(),
                    help: String::new(),
                });
                rules.insert(id, info);
            }
        }
        self.rules = rules.into_values().collect();
    }
}

/// The rule id of a policy declared at `span`: `<pack>/<name>` for a built-in pack,
/// `policy/<name>` for the configuration's own.
pub fn policy_rule_id(sources: &Sources, span: Span, name: &str) -> String {
    let file = sources.files.get(span.file.0 as usize).map(|f| f.name.as_str()).unwrap_or_default();
    match crate::packs::PACKS.iter().find(|p| p.file == file) {
        Some(pack) => format!("{}/{name}", pack.name),
        None => format!("policy/{name}"),
    }
}

/// The rules of every policy in play.
pub fn policy_rules(sources: &Sources, policies: &[ast::Policy]) -> Vec<RuleInfo> {
    policies
        .iter()
        .map(|p| {
            let id = policy_rule_id(sources, p.name.span, &p.name.node);
            let level = if p.rules.iter().any(|r| r.effect.node == Effect::Deny) { Level::Deny } else { Level::Warn };
            let origin = match id.split_once('/') {
                Some(("policy", _)) => "of the configuration".to_owned(),
                Some((pack, _)) => format!("of the built-in `{pack}` pack"),
                None => String::new(),
            };
            let help = crate::policy::message_of(p).unwrap_or_else(|| {
                format!("change the declaration, or waive it with `allow {} because \"...\"`", p.name.node)
            });
            RuleInfo { id, level, summary: format!("policy `{}` {origin}", p.name.node), help }
        })
        .collect()
}

/// `validate`'s report: every policy violation under its rule id, and every other diagnostic
/// under its code.
pub fn from_compiled(compiled: &crate::Compiled, config_dir: &str) -> Report {
    let sources = &compiled.sources;
    let mut catalog = policy_rules(sources, &compiled.policies);
    let mut report = Report { command: "validate".into(), config_dir: config_dir.into(), ..Report::default() };
    for v in &compiled.evaluation.violations {
        let rule = policy_rule_id(sources, v.policy_span, &v.policy);
        report.findings.push(Finding {
            rule,
            level: v.effect.into(),
            message: v.headline(),
            subject: v.address.clone(),
            location: Location::of(sources, v.span),
            azure_id: None,
            also: Vec::new(),
            properties: BTreeMap::new(),
        });
    }
    for d in &compiled.diagnostics.items {
        report.findings.push(from_diagnostic(sources, d));
        if !catalog.iter().any(|r| r.id == d.code.as_str()) {
            catalog.push(RuleInfo {
                id: d.code.to_string(),
                level: if d.is_error() { Level::Deny } else { Level::Warn },
                summary: format!("mlpolicy diagnostic {} (docs/diagnostics.md)", d.code),
                help: format!("see `## {}` in docs/diagnostics.md", d.code),
            });
        }
    }
    report.examined.insert("declarations".into(), compiled.model.len());
    report.finish(&catalog);
    report
}

/// A diagnostic as a finding under its code.
pub fn from_diagnostic(sources: &Sources, d: &Diagnostic) -> Finding {
    let mut message = d.message.clone();
    if let Some(l) = d.labels.iter().find(|l| l.primary).filter(|l| !l.message.is_empty()) {
        message = format!("{message}: {}", l.message);
    }
    let mut properties = BTreeMap::new();
    if let Some(h) = &d.help {
        properties.insert("help".into(), h.clone());
    }
    Finding {
        rule: d.code.to_string(),
        level: if d.is_error() { Level::Deny } else { Level::Warn },
        message,
        subject: String::new(),
        location: d.span().and_then(|s| Location::of(sources, s)),
        azure_id: None,
        also: Vec::new(),
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    #[test]
    fn locations_are_one_based_and_skip_builtin_files() {
        let mut sources = Sources::default();
        let f = sources.add("main.mlp", "dir/main.mlp".into(), "a\n  bc\n");
        let pack = sources.add("policies/baseline.mlp", std::path::PathBuf::new(), "x");
        let loc = Location::of(&sources, Span::new(f, 4, 6)).unwrap();
        assert_eq!((loc.file.as_str(), loc.line, loc.column, loc.end_line, loc.end_column), ("main.mlp", 2, 3, 2, 5));
        assert!(Location::of(&sources, Span::new(pack, 0, 1)).is_none());
        assert!(Location::of(&sources, Span::new(FileId(9), 0, 1)).is_none());
    }

    #[test]
    fn pack_policies_get_the_pack_prefix() {
        let mut sources = Sources::default();
        let own = sources.add("policies.mlp", "x/policies.mlp".into(), "");
        let pack = sources.add("policies/strict.mlp", std::path::PathBuf::new(), "");
        assert_eq!(policy_rule_id(&sources, Span::new(own, 0, 0), "mine"), "policy/mine");
        assert_eq!(
            policy_rule_id(&sources, Span::new(pack, 0, 0), "grants_are_described"),
            "strict/grants_are_described"
        );
    }

    #[test]
    fn finish_sorts_deny_first_and_collects_named_rules() {
        let f = |rule: &str, level, also: &[&str]| Finding {
            rule: rule.into(),
            level,
            message: String::new(),
            subject: rule.into(),
            location: None,
            azure_id: None,
            also: also.iter().map(|s| (*s).to_owned()).collect(),
            properties: BTreeMap::new(),
        };
        let mut r = Report {
            findings: vec![f("audit/x", Level::Warn, &[]), f("b/y", Level::Deny, &["audit/z"])],
            ..Report::default()
        };
        r.finish(&[]);
        assert_eq!(r.findings[0].rule, "b/y");
        let ids: Vec<&str> = r.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["audit/x", "audit/z", "b/y"]);
        assert_eq!((r.denied(), r.warned()), (1, 1));
    }
}
