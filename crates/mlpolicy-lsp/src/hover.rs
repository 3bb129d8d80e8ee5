//! `textDocument/hover`: a role's description and permissions; a reference's declaration (and
//! the addresses it expands to); a variable's or `let`'s value; a loop variable's keys; a
//! policy's message and rules; what a kind or an attribute is.

use mlpolicy_lang::ast;
use mlpolicy_lang::check;
use mlpolicy_lang::model::{Address, Kind};
use mlpolicy_lang::packs;
use mlpolicy_lang::policy;
use mlpolicy_lang::source::{FileId, Span};
use std::fmt::Write as _;

use crate::analysis::{Analysis, render_value};
use crate::docs;
use crate::index::{Note, Occurrence, Symbol};
use crate::roles;

/// Lines of a declaration shown before it is cut.
const MAX_LINES: usize = 25;
/// Addresses listed for a declaration inside loops.
const MAX_LISTED: usize = 10;

/// Markdown for what is under a byte offset, with the span it explains.
pub fn hover(a: &Analysis, file: FileId, offset: u32) -> Option<(Span, String)> {
    if let Some(o) = a.index.at(file, offset) {
        return Some((o.span, symbol(a, o)));
    }
    let (span, note) = a.index.notes.iter().find(|(s, _)| s.file == file && s.start <= offset && offset <= s.end)?;
    let text = match note {
        Note::Role(name) => roles::markdown(roles::find(name)?),
        Note::Kind(kind) => {
            let attrs: Vec<String> = check::attributes(*kind).iter().map(|n| format!("`{n}`")).collect();
            format!("**{kind}**: {}\n\nAttributes: {}.", docs::kind(*kind), attrs.join(", "))
        }
        Note::Attribute(kind, name) => {
            format!(
                "`{name}`: attribute of `{kind}`.\n\n{}",
                docs::attribute(*kind, name).unwrap_or("Not an attribute of this kind.")
            )
        }
        Note::SubjectAttribute(subject, attr) => {
            let mut s = format!("`{attr}`: what the policy reads of each `{subject}`.");
            if let Some(fields) = check::sub_attributes(subject, attr) {
                let fields: Vec<String> = fields.iter().map(|f| format!("`{attr}.{f}`")).collect();
                let _ = write!(s, "\n\nFields: {}.", fields.join(", "));
            }
            s
        }
    };
    Some((*span, text))
}

fn symbol(a: &Analysis, o: &Occurrence) -> String {
    match &o.symbol {
        Symbol::Decl { kind, name } => declaration(a, &o.symbol, *kind, name),
        Symbol::Federated { identity, name } => {
            let mut s = format!("**federated** `identity.{identity}.federated.{name}`\n");
            if let Some(d) = a.index.definitions(&o.symbol).next() {
                s.push_str(&source_block(a, d.extent));
            }
            s
        }
        Symbol::Let(name) => {
            let mut s = format!("**let** `{name}`\n");
            let lets = a.lets();
            if let Some(l) = lets.get(name) {
                s.push_str(&source_block(a, l.span));
                if let Some(v) = a.evaluate(&l.value) {
                    let _ = writeln!(s, "\nValue: `{}`", render_value(&v));
                }
            }
            s
        }
        Symbol::Local { name, .. } => local(a, &o.symbol, name),
        Symbol::Policy(name) => policy_doc(a, name),
        Symbol::Var(name) => variable(a, name),
        Symbol::Sub(alias) => match a.compiled.settings.subscriptions.get(alias) {
            Some(id) => format!("**sub** `{alias}`: subscription `{id}` (mlpolicy.yaml)"),
            None => format!("**sub** `{alias}`: not under `subscriptions:` in mlpolicy.yaml"),
        },
    }
}

fn declaration(a: &Analysis, symbol: &Symbol, kind: Kind, name: &str) -> String {
    let mut s = format!("**{kind}** `{kind}.{name}`: {}\n", docs::kind(kind));
    let addresses: Vec<&Address> = a
        .compiled
        .model
        .metas()
        .map(|m| &m.address)
        .filter(
            |ad| matches!(ad, Address::Decl { kind: k, name: n, keys } if *k == kind && n == name && !keys.is_empty()),
        )
        .collect();
    if !addresses.is_empty() {
        let shown: Vec<String> = addresses.iter().take(MAX_LISTED).map(|ad| format!("`{ad}`")).collect();
        let more = if addresses.len() > MAX_LISTED {
            format!(" and {} more", addresses.len() - MAX_LISTED)
        } else {
            String::new()
        };
        let _ = writeln!(s, "\n{} objects: {}{more}", addresses.len(), shown.join(", "));
    }
    match a.index.definitions(symbol).next() {
        Some(d) => {
            let file = &a.compiled.sources.get(d.span.file).name;
            let (line, _) = a.compiled.sources.line_col(d.span.file, d.span.start);
            let _ = writeln!(s, "\nDeclared in {file}:{line}");
            s.push_str(&source_block(a, d.extent));
        }
        None => {
            let _ = writeln!(s, "\nNo `{kind} {name} {{ ... }}` in this configuration.");
        }
    }
    s
}

fn local(a: &Analysis, symbol: &Symbol, name: &str) -> String {
    let Some(def) = a.index.definitions(symbol).next() else { return format!("`{name}`") };
    let tree = a.tree(def.span.file);
    let for_loop = tree.and_then(|t| find_for(&t.items, def.extent));
    match for_loop {
        Some(f) => {
            let header = a.snippet(Span { end: f.iterable.span.end, ..f.span });
            let mut s = format!("**loop variable** `{name}` of `{header}`\n");
            if let Some(v) = a.evaluate(&f.iterable) {
                let _ = writeln!(s, "\nOver: `{}`", render_value(&v));
            }
            s
        }
        None => format!("**let** `{name}` (inside a loop)\n{}", source_block(a, def.extent)),
    }
}

/// The `for` item whose span is `span`.
fn find_for(items: &[ast::Item], span: Span) -> Option<&ast::For> {
    items.iter().find_map(|i| match i {
        ast::Item::For(f) if f.span == span => Some(f),
        ast::Item::For(f) => find_for(&f.items, span),
        _ => None,
    })
}

fn policy_doc(a: &Analysis, name: &str) -> String {
    let Some(p) = a.compiled.policies.iter().find(|p| p.name.node == name) else {
        return format!("**policy** `{name}`: no such policy in this configuration or its packs");
    };
    let file = &a.compiled.sources.get(p.name.span.file);
    let origin = if file.path.as_os_str().is_empty() {
        let pack = packs::PACKS.iter().find(|pk| pk.file == file.name).map_or("", |pk| pk.name);
        format!("built-in pack `{pack}`")
    } else {
        file.name.clone()
    };
    let mut s = format!("**policy** `{name}` ({origin})\n");
    if let Some(m) = policy::message_of(p) {
        let _ = writeln!(s, "\n{m}");
    }
    s.push_str(&source_block(a, p.span));
    s
}

fn variable(a: &Analysis, name: &str) -> String {
    if let Some(v) = a.compiled.settings.vars.get(name) {
        return format!("**var** `{name}` = `{}` (mlpolicy.yaml)", render_value(&v.to_value()));
    }
    if let Some((_, v)) = packs::default_vars().into_iter().find(|(n, _)| *n == name) {
        return format!("**var** `{name}` = `{}` (default of the policy packs)", render_value(&v));
    }
    format!("**var** `{name}`: not given; add it under `vars:` in mlpolicy.yaml")
}

/// The source of a span as a fenced block, cut after [`MAX_LINES`] lines, its indentation
/// removed (a declaration inside a `for` starts at its own column).
fn source_block(a: &Analysis, span: Span) -> String {
    let text = a.snippet(span);
    let full = a.text(span.file);
    let start = (span.start as usize).min(full.len());
    let line_start = full[..start].rfind('\n').map_or(0, |i| i + 1);
    let indent = full[line_start..start].len() - full[line_start..start].trim_start().len();
    let strip = |l: &'_ str| -> String {
        let spaces = l.len() - l.trim_start_matches([' ', '\t']).len();
        l[spaces.min(indent)..].to_owned()
    };
    let mut lines: Vec<String> =
        text.lines().take(MAX_LINES).enumerate().map(|(i, l)| if i == 0 { l.to_owned() } else { strip(l) }).collect();
    if text.lines().count() > MAX_LINES {
        lines.push("  # …".to_owned());
    }
    format!("\n```mlpolicy\n{}\n```\n", lines.join("\n"))
}
