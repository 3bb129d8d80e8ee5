//! Findings ([`Report`]) as text, as the JSON of `docs/findings.md`, as SARIF 2.1.0, and as
//! GitHub Actions workflow commands. Pure functions: the same report gives the same bytes.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use mlpolicy_lang::findings::{FORMAT_VERSION, Finding, Level, Report};

/// The report for a terminal or a job log.
pub fn findings_text(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(out, "{}[{}]: {}", f.level.word(), f.rule, f.message);
        if let Some(l) = &f.location {
            let _ = writeln!(out, "  --> {}:{}:{}", l.file, l.line, l.column);
        }
        if let Some(id) = &f.azure_id {
            let _ = writeln!(out, "  id: {id}");
        }
        for (k, v) in &f.properties {
            if k != "help" {
                let _ = writeln!(out, "  {k}: {v}");
            }
        }
        if !f.also.is_empty() {
            let _ = writeln!(out, "  also: {}", f.also.join(", "));
        }
        if let Some(help) = help_of(report, f) {
            let _ = writeln!(out, "  help: {help}");
        }
        out.push('\n');
    }
    let examined: Vec<String> = report.examined.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let examined = if examined.is_empty() { String::new() } else { format!(" (examined {})", examined.join(", ")) };
    if report.findings.is_empty() {
        let _ = writeln!(out, "{}: no findings{examined}.", capitalised(&report.command));
    } else {
        let _ = writeln!(
            out,
            "{}: {} denied, {} {}{examined}.",
            capitalised(&report.command),
            report.denied(),
            report.warned(),
            if report.warned() == 1 { "warning" } else { "warnings" }
        );
    }
    out
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// The help of a finding: its own (a diagnostic's), else its rule's.
fn help_of<'a>(report: &'a Report, f: &'a Finding) -> Option<&'a str> {
    f.properties
        .get("help")
        .map(String::as_str)
        .or_else(|| report.rules.iter().find(|r| r.id == f.rule).map(|r| r.help.as_str()))
        .filter(|h| !h.is_empty())
}

/// The findings of `mlpolicy validate --format json` and `mlpolicy audit --format json`
/// (docs/findings.md).
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(title = "mlpolicy findings")]
pub(crate) struct JsonReport<'a> {
    /// Schema version: check it first and refuse versions you do not know.
    #[schemars(extend("const" = 1))]
    format_version: u32,
    /// `mlpolicy` and its version.
    tool: String,
    /// `validate` or `audit`.
    command: &'a str,
    /// The configuration directory as given on the command line.
    config_dir: &'a str,
    /// The time findings were judged at (audit), RFC 3339; `null` for validate.
    now: Option<&'a str>,
    /// How many findings deny and how many warn.
    summary: JsonSummary,
    /// What was examined (e.g. `role assignments` → 12).
    examined: &'a std::collections::BTreeMap<String, usize>,
    /// Every rule a finding names, sorted by id.
    rules: &'a [mlpolicy_lang::findings::RuleInfo],
    /// The findings: deny first, then by location, rule and subject.
    findings: &'a [Finding],
}

/// Counts of findings by level.
#[derive(Serialize, schemars::JsonSchema)]
struct JsonSummary {
    /// Findings that deny (exit code 3).
    deny: usize,
    /// Findings that warn.
    warn: usize,
}

/// The report as the versioned JSON of `docs/findings.md`.
pub fn findings_json(report: &Report) -> String {
    let doc = JsonReport {
        format_version: FORMAT_VERSION,
        tool: format!("mlpolicy {}", env!("CARGO_PKG_VERSION")),
        command: &report.command,
        config_dir: &report.config_dir,
        now: report.now.as_deref(),
        summary: JsonSummary { deny: report.denied(), warn: report.warned() },
        examined: &report.examined,
        rules: &report.rules,
        findings: &report.findings,
    };
    // INVARIANT: the structs serialise to JSON without fail (string keys, no floats).
    let mut s = serde_json::to_string_pretty(&doc).expect("report serialises");
    s.push('\n');
    s
}

fn sarif_level(l: Level) -> &'static str {
    match l {
        Level::Deny => "error",
        Level::Warn => "warning",
    }
}

/// The report as a SARIF 2.1.0 log with one run.
///
/// Rules carry their help (`help.text`, the policy's message) and default level. A finding
/// declared in the configuration has a physical location: the file relative to the
/// configuration directory (`uriBaseId` `CONFIGDIR`, whose `originalUriBaseIds` entry is the
/// directory as given on the command line) and the region of the declaration's name. A live
/// object gets a logical location named by its Azure id, which also appears in the message and
/// in `properties.azureId`.
pub fn findings_sarif(report: &Report) -> String {
    let rules: Vec<Value> = report
        .rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id.rsplit('/').next().unwrap_or(&r.id),
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": if r.help.is_empty() { &r.summary } else { &r.help }},
                "help": {"text": if r.help.is_empty() { &r.summary } else { &r.help }},
                "defaultConfiguration": {"level": sarif_level(r.level)},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let rule_index = report.rules.iter().position(|r| r.id == f.rule).unwrap_or(0);
            let mut text = f.message.clone();
            if let Some(id) = &f.azure_id {
                let _ = write!(text, " ({id})");
            }
            let mut location = serde_json::Map::new();
            if let Some(l) = &f.location {
                location.insert(
                    "physicalLocation".into(),
                    json!({
                        "artifactLocation": {"uri": uri_path(&l.file), "uriBaseId": "CONFIGDIR"},
                        "region": {
                            "startLine": l.line,
                            "startColumn": l.column,
                            "endLine": l.end_line,
                            "endColumn": l.end_column,
                        },
                    }),
                );
            }
            let logical = f.azure_id.clone().or_else(|| (!f.subject.is_empty()).then(|| f.subject.clone()));
            if let Some(name) = logical {
                let kind = if f.azure_id.is_some() { "resource" } else { "declaration" };
                location.insert("logicalLocations".into(), json!([{"fullyQualifiedName": name, "kind": kind}]));
            }
            let mut properties = serde_json::Map::new();
            if let Some(id) = &f.azure_id {
                properties.insert("azureId".into(), json!(id));
            }
            if !f.subject.is_empty() {
                properties.insert("subject".into(), json!(f.subject));
            }
            if !f.also.is_empty() {
                properties.insert("alsoMatched".into(), json!(f.also));
            }
            for (k, v) in &f.properties {
                properties.insert(k.clone(), json!(v));
            }
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index,
                "level": sarif_level(f.level),
                "message": {"text": text},
                "partialFingerprints": {"mlpolicyFinding/v1": fingerprint(f)},
            });
            if !location.is_empty() {
                result["locations"] = json!([Value::Object(location)]);
            }
            if !properties.is_empty() {
                result["properties"] = Value::Object(properties);
            }
            result
        })
        .collect();
    let dir = if report.config_dir.is_empty() { "." } else { report.config_dir.as_str() };
    let mut base = uri_path(dir);
    if !base.ends_with('/') {
        base.push('/');
    }
    let mut run = json!({
        "tool": {"driver": {
            "name": "mlpolicy",
            "version": env!("CARGO_PKG_VERSION"),
            "semanticVersion": env!("CARGO_PKG_VERSION"),
            "rules": rules,
        }},
        "originalUriBaseIds": {"CONFIGDIR": {
            "uri": base,
            "description": {"text": "The configuration directory, relative to the directory mlpolicy ran in."},
        }},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {"command": report.command},
    });
    if let Some(now) = &report.now {
        run["properties"]["now"] = json!(now);
    }
    let log = json!({
        "$schema": "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    // INVARIANT: a `Value` always serialises.
    let mut s = serde_json::to_string_pretty(&log).expect("SARIF serialises");
    s.push('\n');
    s
}

/// A relative path as a URI reference: forward slashes, reserved characters percent-encoded.
fn uri_path(path: &str) -> String {
    let mut out = String::new();
    for c in path.replace('\\', "/").chars() {
        if c.is_ascii_alphanumeric() || "-._~/!$&'()*+,;=@".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A stable fingerprint of a finding: its rule and object, not its wording or line.
fn fingerprint(f: &Finding) -> String {
    use sha2::Digest;
    let key = format!("{}|{}|{}", f.rule, f.subject, f.azure_id.as_deref().unwrap_or_default());
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
}

/// GitHub Actions workflow commands (`::error file=...,line=...::message`), one per finding.
/// `path_prefix` is the configuration directory as given, joined before each file so that
/// GitHub finds it from the repository root; `.` adds nothing.
pub fn github_annotations(report: &Report, path_prefix: &str) -> String {
    let prefix = path_prefix.trim_start_matches("./").trim_end_matches('/');
    let prefix = if prefix == "." { "" } else { prefix };
    let mut out = String::new();
    for f in &report.findings {
        let command = match f.level {
            Level::Deny => "error",
            Level::Warn => "warning",
        };
        let mut props: Vec<String> = Vec::new();
        if let Some(l) = &f.location {
            let file = if prefix.is_empty() { l.file.clone() } else { format!("{prefix}/{}", l.file) };
            props.push(format!("file={}", escape_property(&file)));
            props.push(format!("line={}", l.line));
            props.push(format!("col={}", l.column));
            props.push(format!("endLine={}", l.end_line));
            props.push(format!("endColumn={}", l.end_column));
        }
        props.push(format!("title={}", escape_property(&format!("mlpolicy {}", f.rule))));
        let mut message = f.message.clone();
        if let Some(id) = &f.azure_id {
            let _ = write!(message, "\n{id}");
        }
        if let Some(help) = help_of(report, f) {
            let _ = write!(message, "\nhelp: {help}");
        }
        let _ = writeln!(out, "::{command} {}::{}", props.join(","), escape_data(&message));
    }
    out
}

/// Azure Pipelines logging commands
/// (`##vso[task.logissue type=error;sourcepath=...;linenumber=...;columnnumber=...;code=...]message`),
/// one per finding; `path_prefix` as for [`github_annotations`]. Values are escaped by the
/// agent's rules ([`vso_escape_property`], [`vso_escape_data`]), so no text can end the command
/// or start another.
pub fn azure_devops_issues(report: &Report, path_prefix: &str) -> String {
    let prefix = path_prefix.trim_start_matches("./").trim_end_matches('/');
    let prefix = if prefix == "." { "" } else { prefix };
    let mut out = String::new();
    for f in &report.findings {
        let kind = match f.level {
            Level::Deny => "error",
            Level::Warn => "warning",
        };
        let mut props = vec![format!("type={kind}")];
        if let Some(l) = &f.location {
            let file = if prefix.is_empty() { l.file.clone() } else { format!("{prefix}/{}", l.file) };
            props.push(format!("sourcepath={}", vso_escape_property(&file)));
            props.push(format!("linenumber={}", l.line));
            props.push(format!("columnnumber={}", l.column));
        }
        props.push(format!("code={}", vso_escape_property(&f.rule)));
        let mut message = format!("mlpolicy {}: {}", f.rule, f.message);
        if let Some(id) = &f.azure_id {
            let _ = write!(message, "\n{id}");
        }
        if let Some(help) = help_of(report, f) {
            let _ = write!(message, "\nhelp: {help}");
        }
        let _ = writeln!(out, "##vso[task.logissue {}]{}", props.join(";"), vso_escape_data(&message));
    }
    out
}

/// Escapes an Azure Pipelines logging command's message: `%` (as `%AZP25`), `\r`, `\n`.
pub fn vso_escape_data(s: &str) -> String {
    s.replace('%', "%AZP25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a logging command's property value: as [`vso_escape_data`], and `]` and `;`.
pub fn vso_escape_property(s: &str) -> String {
    vso_escape_data(s).replace(']', "%5D").replace(';', "%3B")
}

/// Escapes a workflow command's message: `%`, `\r`, `\n`.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value: as [`escape_data`], and `:` and `,`.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use mlpolicy_lang::findings::{Location, RuleInfo};

    fn report() -> Report {
        let mut r = Report {
            command: "audit".into(),
            config_dir: "infra/ml".into(),
            now: Some("2025-01-01T00:00:00Z".into()),
            findings: vec![
                Finding {
                    rule: "baseline/no_standing_admin".into(),
                    level: Level::Deny,
                    message: "grant Owner, 100% bad".into(),
                    subject: "grant.x".into(),
                    location: Some(Location { file: "a b.mlp".into(), line: 3, column: 1, end_line: 3, end_column: 9 }),
                    azure_id: None,
                    also: vec!["audit/unexplained-access".into()],
                    properties: BTreeMap::new(),
                },
                Finding {
                    rule: "audit/orphaned-assignment".into(),
                    level: Level::Warn,
                    message: "orphaned".into(),
                    subject: "role assignment".into(),
                    location: None,
                    azure_id: Some("/subscriptions/s/x".into()),
                    also: Vec::new(),
                    properties: BTreeMap::from([("principal_id".into(), "p".into())]),
                },
            ],
            ..Report::default()
        };
        r.finish(&[RuleInfo {
            id: "baseline/no_standing_admin".into(),
            level: Level::Deny,
            summary: "s".into(),
            help: "use PIM: now".into(),
        }]);
        r
    }

    #[test]
    fn annotations_escape_data_and_properties() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        let text = github_annotations(&report(), "./infra/ml/");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "::error file=infra/ml/a b.mlp,line=3,col=1,endLine=3,endColumn=9,title=mlpolicy baseline/no_standing_admin::grant Owner, 100%25 bad%0Ahelp: use PIM: now"
        );
        assert_eq!(lines[1], "::warning title=mlpolicy audit/orphaned-assignment::orphaned%0A/subscriptions/s/x");
    }

    #[test]
    fn azure_devops_issues_escape_by_the_agent_rules() {
        assert_eq!(vso_escape_data("a%b\r\nc]d;"), "a%AZP25b%0D%0Ac]d;");
        assert_eq!(vso_escape_property("a%b\r\nc]d;"), "a%AZP25b%0D%0Ac%5Dd%3B");
        let text = azure_devops_issues(&report(), "./infra/ml/");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "##vso[task.logissue type=error;sourcepath=infra/ml/a b.mlp;linenumber=3;columnnumber=1;code=baseline/no_standing_admin]mlpolicy baseline/no_standing_admin: grant Owner, 100%AZP25 bad%0Ahelp: use PIM: now"
        );
        assert_eq!(
            lines[1],
            "##vso[task.logissue type=warning;code=audit/orphaned-assignment]mlpolicy audit/orphaned-assignment: orphaned%0A/subscriptions/s/x"
        );
        // A hostile file name cannot close the properties or add a command.
        let mut r = report();
        r.findings[0].location.as_mut().unwrap().file = "x];code=fake]\n##vso[task.complete result=Failed]".into();
        let text = azure_devops_issues(&r, ".");
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.starts_with(
                "##vso[task.logissue type=error;sourcepath=x%5D%3Bcode=fake%5D%0A##vso[task.complete result=Failed%5D;"
            ),
            "{text}"
        );
    }

    #[test]
    fn sarif_has_rules_levels_and_locations() {
        let v: Value = serde_json::from_str(&findings_sarif(&report())).unwrap();
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][2]["help"]["text"], "use PIM: now");
        let r0 = &run["results"][0];
        assert_eq!(r0["level"], "error");
        assert_eq!(r0["ruleId"], "baseline/no_standing_admin");
        assert_eq!(
            run["tool"]["driver"]["rules"][usize::try_from(r0["ruleIndex"].as_u64().unwrap()).unwrap()]["id"],
            r0["ruleId"]
        );
        let loc = &r0["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "a%20b.mlp");
        assert_eq!(loc["region"]["startLine"], 3);
        let r1 = &run["results"][1];
        assert!(r1["locations"][0].get("physicalLocation").is_none());
        assert_eq!(r1["locations"][0]["logicalLocations"][0]["fullyQualifiedName"], "/subscriptions/s/x");
        assert_eq!(r1["properties"]["azureId"], "/subscriptions/s/x");
        assert_eq!(run["originalUriBaseIds"]["CONFIGDIR"]["uri"], "infra/ml/");
    }

    #[test]
    fn text_and_json_show_each_finding() {
        let r = report();
        let t = findings_text(&r);
        assert!(t.contains("deny[baseline/no_standing_admin]: grant Owner, 100% bad\n  --> a b.mlp:3:1\n"), "{t}");
        assert!(t.ends_with("Audit: 1 denied, 1 warning.\n"), "{t}");
        let j: Value = serde_json::from_str(&findings_json(&r)).unwrap();
        assert_eq!(j["format_version"], FORMAT_VERSION);
        assert_eq!(j["summary"]["deny"], 1);
        assert_eq!(j["findings"][1]["location"], Value::Null);
    }
}
