//! `textDocument/codeAction`: the fixes diagnostics suggest, as edits. A help that says "did you
//! mean `X`?" replaces the misspelt word (re-quoted when it is a string, without the `kind.` or
//! `var.` prefix already written); "add `NAME = VALUE`" (E0202) inserts the attribute; a policy
//! violation (E0401/W0401) offers the waiver its help names.

use mlpolicy_lang::diagnostics::{Code, Diagnostic};
use mlpolicy_lang::model::quote;
use mlpolicy_lang::source::{FileId, Span};
use mlpolicy_vocab::suggest;

use crate::analysis::Analysis;

/// One edit that fixes one diagnostic.
#[derive(Debug, Clone)]
pub struct Fix {
    pub title: String,
    /// Replaced by `new_text` (empty for an insertion).
    pub span: Span,
    pub new_text: String,
    pub diagnostic: Diagnostic,
    /// Whether this is the fix the diagnostic asks for, not one choice of several.
    pub preferred: bool,
}

/// The fixes for diagnostics of `file` whose primary span touches `start..=end`.
pub fn fixes(a: &Analysis, file: FileId, start: u32, end: u32) -> Vec<Fix> {
    let mut out = Vec::new();
    for d in &a.report.items {
        let Some(span) = d.span() else { continue };
        if span.file != file || span.end < start || span.start > end {
            continue;
        }
        let text = a.text(file);
        let help = d.help.as_deref().unwrap_or("");
        if let Some(suggestion) = did_you_mean(help) {
            if let Some((span, new_text)) = replacement(text, span, suggestion) {
                let title = format!("Replace with `{new_text}`");
                out.push(Fix { title, span, new_text, diagnostic: d.clone(), preferred: true });
            }
        } else if d.code == Code::E0202 {
            let line = help.strip_prefix("add `").and_then(|h| h.strip_suffix('`'));
            if let (Some(line), Some((at, indent))) = (line, body_start(text, span)) {
                let title = format!("Add `{line}`");
                let new_text = format!("{indent}{line}\n");
                out.push(Fix {
                    title,
                    span: Span { start: at, end: at, ..span },
                    new_text,
                    diagnostic: d.clone(),
                    preferred: true,
                });
            }
        }
        if matches!(d.code, Code::E0401 | Code::W0401)
            && let Some(policy) = help.split("`allow ").nth(1).and_then(|h| h.split(' ').next())
            && let Some((at, new_text)) = waiver(text, span, policy)
        {
            let title = format!("Waive policy `{policy}` for this object");
            out.push(Fix {
                title,
                span: Span { start: at, end: at, ..span },
                new_text,
                diagnostic: d.clone(),
                preferred: false,
            });
        }
    }
    out
}

/// The `X` of a help that says "did you mean `X`?".
fn did_you_mean(help: &str) -> Option<&str> {
    let rest = &help[help.find("did you mean `")? + "did you mean `".len()..];
    rest.split('`').next().filter(|s| !s.is_empty())
}

/// What to replace, and with what, to write `suggestion` at `span`.
fn replacement(text: &str, span: Span, suggestion: &str) -> Option<(Span, String)> {
    let written = text.get(span.range())?;
    let before = &text[..span.start as usize];
    if written.starts_with('"') {
        return Some((span, quote(suggestion)));
    }
    if let Some(dot) = suggestion.rfind('.') {
        let (prefix, last) = (&suggestion[..=dot], &suggestion[dot + 1..]);
        if before.ends_with(prefix) && !written.contains('.') {
            return Some((span, last.to_owned()));
        }
        return Some((span, suggestion.to_owned()));
    }
    if written.contains(char::is_whitespace) {
        // A label over several words (`allow X because "..."`): replace the word closest to
        // the suggestion.
        let words = written.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty());
        let word = suggest::closest(suggestion, words)?;
        let at = written.match_indices(word).map(|(i, _)| i).find(|&i| {
            let end = i + word.len();
            !written[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && !written[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })?;
        let start = span.start + u32::try_from(at).ok()?;
        let end = start + u32::try_from(word.len()).ok()?;
        return Some((Span { start, end, ..span }, suggestion.to_owned()));
    }
    Some((span, suggestion.to_owned()))
}

/// Where to write `allow POLICY because "REASON"` for the declaration named at `span`, and
/// what: a line at the top of its body, or a body for a grant written without one.
fn waiver(text: &str, span: Span, policy: &str) -> Option<(u32, String)> {
    let line = format!("allow {policy} because \"REASON\"");
    if let Some((at, indent)) = body_start(text, span) {
        return Some((at, format!("{indent}{line}\n")));
    }
    let after = span.end as usize;
    let rest = text[after..].split('\n').next().unwrap_or("").trim();
    let grant = text.get(span.range()).is_some_and(|t| t.starts_with("grant"));
    if !grant || !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    let line_start = text[..after].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect();
    Some((span.end, format!(" {{\n{indent}  {line}\n{indent}}}")))
}

/// Where a new line goes at the top of the body of the declaration named at `span`: the start
/// of the line after its `{`, and the indentation to write. `None` without a multi-line body.
fn body_start(text: &str, span: Span) -> Option<(u32, String)> {
    let after = span.end as usize;
    let line_end = text[after..].find('\n').map_or(text.len(), |i| after + i);
    let brace = after + text[after..line_end].find('{')?;
    let rest = text[brace + 1..line_end].trim();
    if !(rest.is_empty() || rest.starts_with('#')) || line_end == text.len() {
        return None;
    }
    let line_start = text[..after].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect();
    Some((u32::try_from(line_end + 1).ok()?, format!("{indent}  ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(text: &str, wrong: &str, suggestion: &str) -> String {
        let at = text.find(wrong).unwrap();
        let span = Span::new(FileId(0), at, at + wrong.len());
        let (span, new) = replacement(text, span, suggestion).unwrap();
        format!("{}{new}{}", &text[..span.start as usize], &text[span.end as usize..])
    }

    #[test]
    fn replacements_keep_what_is_already_written() {
        assert_eq!(fix("x = var.envv", "envv", "var.env"), "x = var.env");
        assert_eq!(fix("x = group.dss", "dss", "group.ds"), "x = group.ds");
        assert_eq!(fix("grant \"Readr\" to", "\"Readr\"", "Reader"), "grant \"Reader\" to");
        assert_eq!(fix("  nme = 1", "nme", "name"), "  name = 1");
        assert_eq!(
            fix("  allow no_admn because \"x\"", "allow no_admn because \"x\"", "no_admin"),
            "  allow no_admin because \"x\""
        );
        assert_eq!(did_you_mean("names are lower-case; did you mean `ml_prod`?"), Some("ml_prod"));
        assert_eq!(did_you_mean("add `name = \"x\"`"), None);
    }

    #[test]
    fn inserts_after_the_opening_brace() {
        let text = "group g {\n  name = \"x\"\n}\n";
        let (at, indent) = body_start(text, Span::new(FileId(0), 6, 7)).unwrap();
        assert_eq!((at, indent.as_str()), (10, "  "));
        assert!(body_start("group g {}\n", Span::new(FileId(0), 6, 7)).is_none());
        let grant = "  grant \"Owner\" to user(\"a\") on sub.x  # why\n";
        let (at, text) = waiver(grant, Span::new(FileId(0), 2, 37), "p").unwrap();
        assert_eq!((at, text.as_str()), (37, " {\n    allow p because \"REASON\"\n  }"));
    }
}
