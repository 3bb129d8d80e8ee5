//! The text plan of cli.md: one block per change (header comment, symbol and display line,
//! attribute lines with `=` aligned), then the access changes, unmanaged drift, policy
//! exceptions and findings, then the summary line.
//!
//! Every string that came from the configuration or the tenant passes through [`clean`], so a
//! control character in a description can neither break the layout nor reach the terminal as
//! an escape sequence; colour comes only from [`Paint`] and only when asked for.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::{Style, shown};
use mlpolicy_engine::plan::{AccessChange, Action, AttrValue, Attrs, Change, ObjectKind, Plan};

/// First line of the actions block.
pub(super) const ACTIONS_TITLE: &str = "mlpolicy will perform these actions:";
/// Replaces the actions block when nothing is to be done.
pub(super) const NO_CHANGES: &str = "No changes. The tenant matches the configuration.";
pub(super) const ACCESS_TITLE: &str = "Access changes:";
pub(super) const DRIFT_TITLE: &str = "Unmanaged drift:";
pub(super) const WAIVERS_TITLE: &str = "Policy exceptions:";
pub(super) const FINDINGS_TITLE: &str = "Policy findings:";

/// Strings longer than this (or with a newline) changed in place are shown as a line diff.
const LONG_TEXT: usize = 60;
/// Indentation of attribute lines.
const ATTR_INDENT: &str = "      ";

/// Renders the whole plan as text.
pub fn text(plan: &Plan, style: &Style) -> String {
    let p = Paint { color: style.color };
    let mut out = String::new();
    let changes: Vec<&Change> = shown(plan).collect();
    if changes.is_empty() {
        out.push_str(NO_CHANGES);
        out.push('\n');
    } else {
        out.push_str(&p.bold(ACTIONS_TITLE));
        out.push('\n');
        for c in changes {
            out.push('\n');
            out.push_str(&change_block(c, &p));
        }
    }
    let sections = [
        (ACCESS_TITLE, access_lines(plan, &p)),
        (DRIFT_TITLE, drift_lines(plan, &p)),
        (WAIVERS_TITLE, waiver_lines(plan, &p)),
        (FINDINGS_TITLE, finding_lines(plan)),
    ];
    for (title, lines) in sections {
        if lines.is_empty() {
            continue;
        }
        out.push('\n');
        out.push_str(&p.bold(title));
        out.push('\n');
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&p.bold(&plan.summary_line()));
    out.push('\n');
    out
}

/// ANSI colouring, or none.
pub(super) struct Paint {
    pub color: bool,
}

impl Paint {
    /// Colours an action or attribute symbol.
    fn sym(&self, sym: &str) -> String {
        let code = match sym {
            "+" => "32",
            "~" => "33",
            "-" => "31",
            "-/+" => "35",
            "<=" => "36",
            "&" => "34",
            "!" => "1;31",
            _ => return sym.to_owned(),
        };
        self.wrap(code, sym)
    }

    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }

    fn wrap(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }
}

/// A string from outside made safe to print: control characters become `\u{..}` escapes.
pub(super) fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

/// A string as a quoted literal: `"`, `\` and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value on one line: strings quoted, bools bare, `[a, b]`, `{ k = "v" }`.
fn value(v: &AttrValue) -> String {
    match v {
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Str(s) => quote(s),
        AttrValue::List(items) => {
            let items: Vec<Cow<'_, str>> = items.iter().map(|i| clean(i)).collect();
            format!("[{}]", items.join(", "))
        }
        AttrValue::Map(m) if m.is_empty() => "{}".to_owned(),
        AttrValue::Map(m) => {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{} = {}", clean(k), quote(v))).collect();
            format!("{{ {} }}", pairs.join(", "))
        }
    }
}

/// What follows `name = ` on an attribute line.
enum Body {
    Inline(String),
    /// `open`, then one `(symbol, text)` line each, then `close` under the attribute.
    Block {
        open: &'static str,
        lines: Vec<(&'static str, String)>,
        close: &'static str,
    },
}

struct AttrLine<'a> {
    sym: &'static str,
    name: &'a str,
    body: Body,
    forces: bool,
}

/// The block of one change, without the blank line before it.
pub(super) fn change_block(c: &Change, p: &Paint) -> String {
    let mut out = String::new();
    if c.action == Action::Move {
        // Nothing changes in Azure: the object and its new address.
        let from = c.moved_from.as_deref().unwrap_or_default();
        let _ = writeln!(out, "  {}", p.bold(&format!("# {} {}", clean(&c.display), c.action.phrase())));
        let _ = writeln!(out, "  {} {} → {} (moved)", p.sym(c.action.symbol()), clean(from), clean(&c.address));
        return out;
    }
    let mut header = format!("# {} {}", clean(&c.address), c.action.phrase());
    let reason = match (&c.moved_from, &c.reason) {
        (Some(from), Some(r)) => Some(format!("moved from {from}; {r}")),
        (Some(from), None) => Some(format!("moved from {from}")),
        (None, r) => r.clone(),
    };
    if let Some(reason) = &reason {
        let _ = write!(header, " ({})", clean(reason));
    }
    let _ = writeln!(out, "  {}", p.bold(&header));
    let _ = writeln!(out, "  {} {}", p.sym(c.action.symbol()), clean(&c.display));
    let lines = attr_lines(c);
    let width = lines.iter().map(|l| l.name.chars().count()).max().unwrap_or(0);
    for line in &lines {
        let forces = if line.forces { " # forces replacement" } else { "" };
        let name = clean(line.name);
        match &line.body {
            Body::Inline(v) => {
                let _ = writeln!(out, "{ATTR_INDENT}{} {name:<width$} = {v}{forces}", p.sym(line.sym));
            }
            Body::Block { open, lines, close } => {
                let _ = writeln!(out, "{ATTR_INDENT}{} {name:<width$} = {open}{forces}", p.sym(line.sym));
                for (sym, text) in lines {
                    let _ = writeln!(out, "{ATTR_INDENT}    {} {text}", p.sym(sym));
                }
                let _ = writeln!(out, "{ATTR_INDENT}  {close}");
            }
        }
    }
    if matches!(c.action, Action::Replace | Action::Delete) {
        for item in &c.blast_radius {
            let _ = writeln!(out, "{ATTR_INDENT}# also removes: {}", clean(item));
        }
    }
    out
}

/// The attribute lines of a change, in the order the plan holds them.
fn attr_lines(c: &Change) -> Vec<AttrLine<'_>> {
    let whole_object = c.kind != ObjectKind::RoleAssignment;
    match c.action {
        Action::Create if whole_object => all(c.after.as_ref(), "+"),
        Action::Delete if whole_object => all(c.before.as_ref(), "-"),
        Action::Update | Action::Replace | Action::Adopt => c
            .changes
            .iter()
            .filter_map(|ch| {
                let (sym, body) = match (&ch.before, &ch.after) {
                    (None, None) => return None,
                    (None, Some(a)) => ("+", Body::Inline(value(a))),
                    (Some(b), None) => ("-", Body::Inline(value(b))),
                    (Some(b), Some(a)) => ("~", changed(b, a)),
                };
                Some(AttrLine { sym, name: &ch.name, body, forces: ch.forces_replacement })
            })
            .collect(),
        Action::Create | Action::Delete | Action::Read | Action::NoOp | Action::Move => Vec::new(),
    }
}

/// Every attribute of a whole object, each marked `sym`.
fn all<'a>(attrs: Option<&'a Attrs>, sym: &'static str) -> Vec<AttrLine<'a>> {
    attrs
        .into_iter()
        .flatten()
        .map(|(name, v)| AttrLine { sym, name, body: Body::Inline(value(v)), forces: false })
        .collect()
}

/// How an attribute that has a value before and after is shown.
fn changed(before: &AttrValue, after: &AttrValue) -> Body {
    match (before, after) {
        (AttrValue::List(b), AttrValue::List(a)) => list_diff(b, a).unwrap_or_else(|| inline_change(before, after)),
        (AttrValue::Map(b), AttrValue::Map(a)) => map_diff(b, a),
        (AttrValue::Str(b), AttrValue::Str(a)) if is_long(b) || is_long(a) => {
            line_diff(b, a).unwrap_or_else(|| inline_change(before, after))
        }
        _ => inline_change(before, after),
    }
}

fn inline_change(before: &AttrValue, after: &AttrValue) -> Body {
    Body::Inline(format!("{} -> {}", value(before), value(after)))
}

fn is_long(s: &str) -> bool {
    s.chars().count() > LONG_TEXT || s.contains('\n')
}

/// Added elements, then removed ones; `None` when only the order changed.
fn list_diff(before: &[String], after: &[String]) -> Option<Body> {
    let b: BTreeSet<&str> = before.iter().map(String::as_str).collect();
    let a: BTreeSet<&str> = after.iter().map(String::as_str).collect();
    let mut lines = Vec::new();
    let mut seen = BTreeSet::new();
    for item in after.iter().filter(|i| !b.contains(i.as_str())) {
        if seen.insert(("+", item)) {
            lines.push(("+", clean(item).into_owned()));
        }
    }
    for item in before.iter().filter(|i| !a.contains(i.as_str())) {
        if seen.insert(("-", item)) {
            lines.push(("-", clean(item).into_owned()));
        }
    }
    (!lines.is_empty()).then_some(Body::Block { open: "[", lines, close: "]" })
}

/// One line per key that appears, disappears or changes, keys aligned.
fn map_diff(
    before: &std::collections::BTreeMap<String, String>,
    after: &std::collections::BTreeMap<String, String>,
) -> Body {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let entries: Vec<(&'static str, Cow<'_, str>, String)> = keys
        .into_iter()
        .filter_map(|k| match (before.get(k), after.get(k)) {
            (None, Some(a)) => Some(("+", clean(k), quote(a))),
            (Some(b), None) => Some(("-", clean(k), quote(b))),
            (Some(b), Some(a)) if b != a => Some(("~", clean(k), format!("{} -> {}", quote(b), quote(a)))),
            _ => None,
        })
        .collect();
    let width = entries.iter().map(|(_, k, _)| k.chars().count()).max().unwrap_or(0);
    let lines = entries.into_iter().map(|(sym, k, v)| (sym, format!("{k:<width$} = {v}"))).collect();
    Body::Block { open: "{", lines, close: "}" }
}

/// A line diff of two texts with three lines of context; `None` when they differ only in a
/// trailing newline.
fn line_diff(before: &str, after: &str) -> Option<Body> {
    let with_newline = |s: &str| if s.ends_with('\n') { s.to_owned() } else { format!("{s}\n") };
    let (before, after) = (with_newline(before), with_newline(after));
    let diff = TextDiff::from_lines(&before, &after);
    let mut lines = Vec::new();
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            lines.push((" ", "...".to_owned()));
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let sym = match change.tag() {
                    ChangeTag::Delete => "-",
                    ChangeTag::Insert => "+",
                    ChangeTag::Equal => " ",
                };
                lines.push((sym, clean(change.value().trim_end_matches(['\n', '\r'])).into_owned()));
            }
        }
    }
    (!lines.is_empty()).then_some(Body::Block { open: "<<EOT", lines, close: "EOT" })
}

/// `+ P1, P2 gain ROLE on SCOPE (via GROUP)`, one line per access change.
pub(super) fn access_lines(plan: &Plan, p: &Paint) -> Vec<String> {
    plan.access_changes
        .iter()
        .map(|a| format!("  {} {}", p.sym(if a.gain { "+" } else { "-" }), access_sentence(a)))
        .collect()
}

/// The sentence of an access change, without its symbol.
pub(super) fn access_sentence(a: &AccessChange) -> String {
    let who = if a.principals.is_empty() {
        "nobody".to_owned()
    } else {
        a.principals.iter().map(|p| clean(p)).collect::<Vec<_>>().join(", ")
    };
    let verb = match (a.gain, a.principals.len() > 1) {
        (true, true) => "gain",
        (true, false) => "gains",
        (false, true) => "lose",
        (false, false) => "loses",
    };
    let mut line = format!("{who} {verb} {} on {}", clean(&a.role), clean(&a.scope));
    if let Some(via) = &a.via {
        let _ = write!(line, " (via {})", clean(via));
    }
    line
}

/// Widening drift first, marked `!`; the rest after, in plan order.
pub(super) fn drift_lines(plan: &Plan, p: &Paint) -> Vec<String> {
    let widening = plan.drift.iter().filter(|d| d.widens_access);
    let other = plan.drift.iter().filter(|d| !d.widens_access);
    widening
        .map(|d| format!("  {} {} (widens access)", p.sym("!"), clean(&d.summary)))
        .chain(other.map(|d| format!("    {}", clean(&d.summary))))
        .collect()
}

/// `~ ADDRESS: allow POLICY because "REASON"`, one line per waiver.
pub(super) fn waiver_lines(plan: &Plan, p: &Paint) -> Vec<String> {
    plan.waivers
        .iter()
        .map(|w| {
            format!("  {} {}: allow {} because {}", p.sym("~"), clean(&w.address), clean(&w.policy), quote(&w.reason))
        })
        .collect()
}

/// Policy findings as given, one per line.
pub(super) fn finding_lines(plan: &Plan) -> Vec<String> {
    plan.policy_findings.iter().map(|f| format!("  {}", clean(f))).collect()
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::*;
    use crate::render::fixtures;

    fn plain(plan: &Plan) -> String {
        text(plan, &Style::default())
    }

    #[test]
    fn snapshots() {
        for (name, plan) in fixtures::all() {
            assert_snapshot!(name, plain(&plan));
        }
    }

    /// cli.md's example says "3 to add" for two creations; the summary here is computed.
    #[test]
    fn example_of_cli_md_is_reproduced() {
        assert_snapshot!(plain(&fixtures::cli_example()), @r#"
        mlpolicy will perform these actions:

          # group.fraud_ds will be created
          + group "ml-fraud-data-scientists"
              + description = "Data scientists of the fraud team"
              + members     = [alice@contoso.com, bob@contoso.com]

          # group.risk_ds will be updated in place
          ~ group "ml-risk-data-scientists"
              ~ members = [
                  + carol@contoso.com
                  - mallory@contoso.com
                ]

          # grant "AzureML Data Scientist" to group.fraud_ds on workspace.fraud will be created
          + role assignment AzureML Data Scientist → ml-fraud-data-scientists @ mlw-fraud-prod

        Access changes:
          + alice@contoso.com, bob@contoso.com gain AzureML Data Scientist on mlw-fraud-prod (via ml-fraud-data-scientists)
          - mallory@contoso.com loses AzureML Data Scientist on mlw-risk-prod

        Plan: 2 to add, 1 to change, 0 to destroy.
        "#);
    }

    #[test]
    fn no_escape_byte_without_colour() {
        for (name, plan) in fixtures::all() {
            assert!(!plain(&plan).contains('\x1b'), "{name}");
        }
    }

    #[test]
    fn control_characters_from_the_tenant_are_escaped() {
        let plan = fixtures::hostile();
        let out = plain(&plan);
        assert!(!out.contains('\x1b'));
        assert!(out.contains("\\u{1b}[2J"));
    }

    #[test]
    fn colour_marks_symbols_and_headers() {
        let out = text(&fixtures::cli_example(), &Style { color: true, width: 80 });
        assert!(out.contains("\x1b[32m+\x1b[0m group"));
        assert!(out.contains("\x1b[33m~\x1b[0m group"));
        assert!(out.contains("\x1b[1mmlpolicy will perform these actions:\x1b[0m"));
        let stripped = out.replace("\x1b[32m", "").replace("\x1b[33m", "").replace("\x1b[31m", "");
        assert_eq!(stripped.replace("\x1b[1m", "").replace("\x1b[0m", ""), plain(&fixtures::cli_example()));
    }

    #[test]
    fn long_single_line_text_is_a_line_diff_and_short_text_is_inline() {
        let long_before = "Condition: @Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] == 'a'";
        let long_after = "Condition: @Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] == 'b'";
        let Body::Block { lines, .. } =
            changed(&AttrValue::Str(long_before.into()), &AttrValue::Str(long_after.into()))
        else {
            panic!("expected a block")
        };
        assert_eq!(lines, vec![("-", long_before.to_owned()), ("+", long_after.to_owned())]);
        let Body::Inline(v) = changed(&AttrValue::Str("a".into()), &AttrValue::Str("b".into())) else {
            panic!("expected inline")
        };
        assert_eq!(v, r#""a" -> "b""#);
    }

    #[test]
    fn verbs_agree_with_the_number_of_principals() {
        let one = AccessChange {
            gain: true,
            principals: vec!["alice".into()],
            role: "Reader".into(),
            scope: "rg".into(),
            via: None,
        };
        assert_eq!(access_sentence(&one), "alice gains Reader on rg");
        let two = AccessChange { gain: false, principals: vec!["a".into(), "b".into()], ..one };
        assert_eq!(access_sentence(&two), "a, b lose Reader on rg");
    }
}
