//! The plan as a pull-request comment: a summary line, the access changes as a list (what
//! reviewers read first) and as a Mermaid diagram (`mermaid.rs`), then one collapsed
//! `<details>` per section holding the colour-free text plan in a `diff` block.
//!
//! Inside the `diff` blocks each line's symbol is moved to the first column (the indentation
//! follows it), so GitHub colours additions and removals; the columns of the text are kept.
//! The comment stays under [`BUDGET`] bytes, well inside GitHub's 65,536-character limit:
//! findings, exceptions and drift are given room first, then the changes; what does not fit is
//! left out with a line saying how much and where the full plan is.

use std::fmt::Write as _;

use super::shown;
use super::text::{self, Paint, clean};
use mlpolicy_engine::plan::Plan;

/// Upper bound of the comment, in bytes.
const BUDGET: usize = 60_000;
/// Upper bound of the summary plus the access-change list.
const ACCESS_BUDGET: usize = 30_000;
/// Room for the access diagram beyond what the access list leaves of [`ACCESS_BUDGET`].
const MERMAID_ROOM: usize = super::mermaid::MAX_BYTES;
/// Room kept in a section for its fold note.
const NOTE_ROOM: usize = 300;
/// Where the full plan is when the comment cannot hold it.
const ELSEWHERE: &str = "the full plan is in the job log and in `mlpolicy plan --format json`";

/// Renders the plan as GitHub-flavoured markdown.
pub fn markdown(plan: &Plan) -> String {
    markdown_with(plan, ELSEWHERE)
}

/// [`markdown`] whose fold notes say `elsewhere` for where the full plan is (a pull-request
/// comment points at the run's plan artifact).
pub fn markdown_with(plan: &Plan, elsewhere: &str) -> String {
    let p = Paint { color: false };
    let mut out = summary(plan);
    out.push('\n');

    if !plan.access_changes.is_empty() {
        out.push_str("\n**Access changes**\n\n");
        for (i, a) in plan.access_changes.iter().enumerate() {
            let item = access_item(a);
            if out.len() + item.len() + NOTE_ROOM > ACCESS_BUDGET {
                let left = plan.access_changes.len() - i;
                let _ = writeln!(out, "- … and {left} more access changes not listed here; {elsewhere}");
                break;
            }
            out.push_str(&item);
        }
        // The diagram fits in what the list left of the access budget plus its own room.
        if let Some(diagram) =
            super::mermaid::access_diagram(plan, (ACCESS_BUDGET + MERMAID_ROOM).saturating_sub(out.len()))
        {
            out.push('\n');
            out.push_str(&diagram);
        }
    }

    let changes: Vec<String> = shown(plan).map(|c| text::change_block(c, &p)).collect();
    let lines = |v: Vec<String>| -> Vec<String> { v.into_iter().map(|l| l + "\n").collect() };
    let drift = lines(text::drift_lines(plan, &p));
    let waivers = lines(text::waiver_lines(plan, &p));
    let findings = lines(text::finding_lines(plan));
    let specs = [
        Spec { title: "Changes", what: "changes", entries: &changes, separator: "\n", open: false },
        Spec { title: "Unmanaged drift", what: "drift entries", entries: &drift, separator: "", open: false },
        Spec { title: "Policy exceptions", what: "exceptions", entries: &waivers, separator: "", open: false },
        Spec { title: "Policy findings", what: "findings", entries: &findings, separator: "", open: plan.denied },
    ];
    // The small sections are placed first so a huge list of changes cannot push them out.
    let mut rendered: [String; 4] = Default::default();
    let mut remaining = BUDGET.saturating_sub(out.len());
    for i in [3, 2, 1, 0] {
        if specs[i].entries.is_empty() {
            continue;
        }
        rendered[i] = section(&specs[i], remaining, elsewhere);
        remaining = remaining.saturating_sub(rendered[i].len() + 1);
    }
    for r in rendered.iter().filter(|r| !r.is_empty()) {
        out.push('\n');
        out.push_str(r);
    }
    out
}

/// `**Plan:** 3 to add, 1 to change, 0 to destroy · ⚠ 2 drift · ⛔ policy deny`.
fn summary(plan: &Plan) -> String {
    let s = plan.summary;
    let mut out = if shown(plan).next().is_none() {
        "**Plan:** no changes".to_owned()
    } else {
        format!("**Plan:** {}", s.counts())
    };
    if !plan.drift.is_empty() {
        let _ = write!(out, " · ⚠ {} drift", plan.drift.len());
    }
    if plan.denied {
        out.push_str(" · ⛔ policy deny");
    }
    out
}

/// `- ➕ `alice`, `bob` gain **Role** on `scope` (via `group`)`.
fn access_item(a: &mlpolicy_engine::plan::AccessChange) -> String {
    let who = if a.principals.is_empty() {
        "nobody".to_owned()
    } else {
        a.principals.iter().map(|p| code(p)).collect::<Vec<_>>().join(", ")
    };
    let verb = match (a.gain, a.principals.len() > 1) {
        (true, true) => "gain",
        (true, false) => "gains",
        (false, true) => "lose",
        (false, false) => "loses",
    };
    let mark = if a.gain { "➕" } else { "➖" };
    let mut line = format!("- {mark} {who} {verb} **{}** on {}", escape(&a.role), code(&a.scope));
    if let Some(via) = &a.via {
        let _ = write!(line, " (via {})", code(via));
    }
    line.push('\n');
    line
}

/// Text as an inline code span, which also keeps `@name` from mentioning anyone.
fn code(s: &str) -> String {
    let s = clean(s);
    let fence = "`".repeat(longest_backtick_run(&s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// Text with markdown's punctuation escaped.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in clean(s).chars() {
        if "\\`*_[]<>#|~!&".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// One `<details>` section.
struct Spec<'a> {
    title: &'static str,
    /// Plural noun for the fold note.
    what: &'static str,
    entries: &'a [String],
    /// Between two entries.
    separator: &'static str,
    open: bool,
}

/// The section with as many entries as fit in `budget` bytes, and a note for the rest.
fn section(spec: &Spec<'_>, budget: usize, elsewhere: &str) -> String {
    let entries: Vec<String> = spec.entries.iter().map(|e| symbols_first(e)).collect();
    let fence = "`".repeat(entries.iter().map(|e| longest_backtick_run(e)).max().unwrap_or(0).max(2) + 1);
    let open = if spec.open { " open" } else { "" };
    let total = spec.entries.len();
    // Room for the longest summary, `(N, N shown)`.
    let head_len =
        format!("<details open><summary>{} ({total}, {total} shown)</summary>\n\n{fence}diff\n", spec.title).len();
    let tail_len = fence.len() + "\n\n</details>\n".len() + NOTE_ROOM;
    let mut body = String::new();
    let mut shown = 0;
    for e in &entries {
        let sep = if shown == 0 { "" } else { spec.separator };
        if head_len + body.len() + sep.len() + e.len() + tail_len > budget {
            break;
        }
        body.push_str(sep);
        body.push_str(e);
        shown += 1;
    }
    let left = total - shown;
    let note = format!("_{left} more {} not shown here (comment size limit); {elsewhere}._\n", spec.what);
    if shown == 0 {
        return format!("<details><summary>{} ({total}, none shown)</summary>\n\n{note}\n</details>\n", spec.title);
    }
    let count = if left > 0 { format!("{total}, {shown} shown") } else { total.to_string() };
    let head = format!("<details{open}><summary>{} ({count})</summary>\n\n{fence}diff\n", spec.title);
    let mut out = head;
    out.push_str(&body);
    let _ = writeln!(out, "{fence}");
    if left > 0 {
        out.push('\n');
        out.push_str(&note);
    }
    out.push_str("\n</details>\n");
    out
}

/// Moves each line's leading symbol to the first column: `  + group` becomes `+   group`.
fn symbols_first(block: &str) -> String {
    let mut out = String::with_capacity(block.len());
    for line in block.split_inclusive('\n') {
        let rest = line.trim_start_matches(' ');
        let indent = line.len() - rest.len();
        let sym = ["-/+ ", "<= ", "+ ", "- ", "~ ", "! ", "& "].into_iter().find(|s| rest.starts_with(s));
        match sym {
            Some(sym) if indent > 0 => {
                out.push_str(sym.trim_end());
                out.push_str(&" ".repeat(indent));
                out.push_str(&rest[sym.len() - 1..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::*;
    use crate::render::fixtures;

    const GITHUB_LIMIT: usize = 65_536;

    #[test]
    fn snapshots() {
        for (name, plan) in fixtures::all() {
            assert_snapshot!(name, markdown(&plan));
        }
    }

    #[test]
    fn symbols_move_to_the_first_column_keeping_columns() {
        let block = "  # a will be created\n  + group \"g\"\n      ~ members = [\n          - x\n        ]\n  -/+ w\n";
        assert_eq!(
            symbols_first(block),
            "  # a will be created\n+   group \"g\"\n~       members = [\n-           x\n        ]\n-/+   w\n"
        );
    }

    #[test]
    fn five_thousand_changes_fold_under_the_limit() {
        let plan = fixtures::large(5000, 40);
        let out = markdown(&plan);
        assert!(out.chars().count() < GITHUB_LIMIT, "{} chars", out.chars().count());
        assert!(out.starts_with("**Plan:** 5000 to add, 0 to change, 0 to destroy · ⚠ 1 drift\n"));
        for i in 0..40 {
            assert!(out.contains(&format!("on `mlw-{i:05}`")), "access change {i}");
        }
        assert!(out.contains("not shown here (comment size limit); the full plan is in the job log"));
        assert!(out.contains("<summary>Unmanaged drift (1)</summary>"));
        assert!(out.contains("<summary>Changes (5000, "));
        assert!(out.contains("Owner → mallory@contoso.com"));
        assert_eq!(out, markdown(&plan));
    }

    #[test]
    fn too_many_access_changes_are_counted() {
        let plan = fixtures::large(5000, 5000);
        let out = markdown(&plan);
        assert!(out.chars().count() < GITHUB_LIMIT, "{} chars", out.chars().count());
        let listed = out.lines().filter(|l| l.starts_with("- ➕")).count();
        assert!(out.contains(&format!("- … and {} more access changes not listed here", 5000 - listed)));
    }

    #[test]
    fn small_plans_are_not_folded() {
        let out = markdown(&fixtures::large(20, 3));
        assert!(!out.contains("not shown"));
        assert_eq!(out.matches("+   group \"ml-team-").count(), 20);
    }

    #[test]
    fn code_spans_survive_backticks_and_markup_is_escaped() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a"), "`` `a ``");
        assert_eq!(escape("Role *x* <y>"), "Role \\*x\\* \\<y\\>");
    }

    #[test]
    fn no_escape_byte() {
        assert!(!markdown(&fixtures::hostile()).contains('\x1b'));
    }
}
