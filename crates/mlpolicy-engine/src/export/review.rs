//! An export never launders risk: the policy packs in force are evaluated over what was
//! written, and a grant a pack denies is held back — written commented out, with the finding
//! above it — instead of being adopted by the first apply; a grant a pack warns about keeps the
//! finding as a comment above it. A held-back assignment stays in Azure untouched: plans show
//! it as drift that widens access until someone declares it (with a waiver) or removes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mlpolicy_lang::Compiled;
use mlpolicy_lang::ast::{Effect, Item};
use mlpolicy_lang::model::Kind;
use mlpolicy_lang::source::Span;

/// What [`review`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reviewed {
    /// File name → new text, for the files that changed.
    pub files: BTreeMap<String, String>,
    /// `address: finding` of every grant written commented out.
    pub held_back: Vec<String>,
    /// `address: finding` of every grant kept with a finding beside it.
    pub flagged: Vec<String>,
}

/// One grant statement of the source with the findings about its instances.
struct Finding<'c> {
    /// The whole statement (a grant with a body included).
    statement: Span,
    deny: Vec<&'c mlpolicy_lang::policy::Violation>,
    warn: Vec<&'c mlpolicy_lang::policy::Violation>,
}

/// Reviews the exported configuration `compiled` (read back from the files just written).
pub fn review(compiled: &Compiled) -> Reviewed {
    let mut by_statement: BTreeMap<(u32, u32), Finding<'_>> = BTreeMap::new();
    for v in compiled.evaluation.violations.iter().filter(|v| v.subject == Kind::Grant.keyword()) {
        let Some(statement) = grant_statement(&compiled.files, v.span) else { continue };
        let f = by_statement.entry((statement.file.0, statement.start)).or_insert_with(|| Finding {
            statement,
            deny: Vec::new(),
            warn: Vec::new(),
        });
        if v.effect == Effect::Deny { f.deny.push(v) } else { f.warn.push(v) }
    }
    let mut out = Reviewed::default();
    let mut edits: BTreeMap<u32, Vec<(Span, String, bool)>> = BTreeMap::new();
    for f in by_statement.values() {
        // A statement inside a `for` stands for several grants: it is held back only when every
        // one of them is denied; otherwise the denial stays loud (plans refuse) and is noted.
        let instances = compiled.model.grants.values().filter(|g| g.meta.name_span.start == f.statement.start).count();
        let denied: std::collections::BTreeSet<&str> = f.deny.iter().map(|v| v.address.as_str()).collect();
        let hold = !f.deny.is_empty() && denied.len() >= instances.max(1);
        let mut lines = Vec::new();
        let mut per_address: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for v in &f.deny {
            per_address.entry(&v.address).or_default().push(format!("`{}` denies it", v.policy));
            lines.push(format!("policy `{}` denies {}: {}", v.policy, v.address, v.explanation()));
        }
        for v in &f.warn {
            per_address.entry(&v.address).or_default().push(format!("`{}` warns", v.policy));
            lines.push(format!("policy `{}` warns about {}: {}", v.policy, v.address, v.explanation()));
        }
        for (address, why) in per_address {
            let line = format!("{address} ({})", why.join(", "));
            if hold && denied.contains(address) { out.held_back.push(line) } else { out.flagged.push(line) }
        }
        lines.dedup();
        let mut note = String::new();
        if hold {
            note.push_str(
                "# HELD BACK FOR REVIEW (mlpolicy export): not adopted, the assignment stays in Azure as drift.\n",
            );
        } else {
            note.push_str("# REVIEW (mlpolicy export):\n");
        }
        for l in &lines {
            note.push_str("#   ");
            note.push_str(&l.replace('\n', " "));
            note.push('\n');
        }
        if hold {
            note.push_str("#   To keep it, uncomment it and add `allow POLICY because \"...\"` in a body; or remove it in Azure.\n");
        }
        edits.entry(f.statement.file.0).or_default().push((f.statement, note, hold));
    }
    for (file, mut list) in edits {
        let source = compiled.sources.get(mlpolicy_lang::source::FileId(file));
        let mut text = source.text.to_string();
        // From the end, so earlier offsets stay valid.
        list.sort_by_key(|(s, _, _)| std::cmp::Reverse(s.start));
        for (span, note, hold) in list {
            let line_start = text[..span.start as usize].rfind('\n').map_or(0, |i| i + 1);
            let indent: String = text[line_start..].chars().take_while(|c| *c == ' ').collect();
            let line_end = text[span.end as usize..].find('\n').map_or(text.len(), |i| span.end as usize + i);
            let body = &text[line_start..line_end];
            let mut replacement = String::new();
            for l in note.lines() {
                let _ = writeln!(replacement, "{indent}{l}");
            }
            if hold {
                for l in body.lines() {
                    let rest = l.strip_prefix(indent.as_str()).unwrap_or(l);
                    let _ = writeln!(replacement, "{indent}# {rest}");
                }
                replacement.pop();
            } else {
                replacement.push_str(body);
            }
            text.replace_range(line_start..line_end, &replacement);
        }
        out.files.insert(source.name.clone(), text);
    }
    out
}

/// The span of the whole grant statement whose `grant` line starts where `line` does.
fn grant_statement(files: &[mlpolicy_lang::ast::File], line: Span) -> Option<Span> {
    fn find(items: &[Item], line: Span) -> Option<Span> {
        items.iter().find_map(|i| match i {
            Item::Grant(g) if g.span.file == line.file && g.span.start == line.start => Some(g.span),
            Item::For(f) => find(&f.items, line),
            _ => None,
        })
    }
    files.iter().find_map(|f| find(&f.items, line))
}
