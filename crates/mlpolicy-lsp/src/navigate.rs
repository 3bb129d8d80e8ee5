//! Go to definition, find references, rename and document symbols, over the [`Index`].
//!
//! Rename rewrites the name's declaration and every reference in the configuration's files.
//! The language has no `moved` block yet, so nothing records the old address: renaming a
//! `group` (whose `uniqueName` holds its local name) or a `federated` block without `name`
//! (whose Azure name is its local name) makes the next plan replace the object in Azure;
//! [`rename_warning`] says so.
//!
//! [`Index`]: crate::index::Index

use lsp_types::{DocumentSymbol, Range, SymbolKind};
use mlpolicy_lang::ast::{self, BodyItem, Item};
use mlpolicy_lang::model::Kind;
use mlpolicy_lang::source::{FileId, Span};

use crate::analysis::Analysis;
use crate::complete::is_name;
use crate::index::Symbol;

/// Where the symbol under the cursor is declared (in `mlpolicy.yaml` for `var.`/`sub.`).
pub fn definition(a: &Analysis, file: FileId, offset: u32) -> Vec<Span> {
    let Some(o) = a.index.at(file, offset) else { return Vec::new() };
    if let Some(span) = settings_span(a, &o.symbol) {
        return vec![span];
    }
    a.index.definitions(&o.symbol).map(|d| d.span).filter(|s| a.path_of(s.file).is_some()).collect()
}

/// Every place the symbol under the cursor is written.
pub fn references(a: &Analysis, file: FileId, offset: u32, include_declaration: bool) -> Vec<Span> {
    let Some(o) = a.index.at(file, offset) else { return Vec::new() };
    let mut out: Vec<Span> = Vec::new();
    if include_declaration {
        out.extend(settings_span(a, &o.symbol));
    }
    out.extend(a.index.of(&o.symbol).filter(|r| include_declaration || !r.def).map(|r| r.span));
    out.retain(|s| a.path_of(s.file).is_some());
    out
}

fn settings_span(a: &Analysis, symbol: &Symbol) -> Option<Span> {
    let path: [&str; 2] = match symbol {
        Symbol::Var(name) => ["vars", name],
        Symbol::Sub(alias) => ["subscriptions", alias],
        _ => return None,
    };
    a.compiled.settings.span_of(&a.compiled.sources, &path)
}

/// The name under the cursor if it can be renamed here: a declaration, `federated` block,
/// `let`, loop variable or policy of this configuration (not `var.`/`sub.`, which live in
/// mlpolicy.yaml, nor a built-in pack's policy).
pub fn rename_target(a: &Analysis, file: FileId, offset: u32) -> Result<(Span, Symbol), String> {
    let Some(o) = a.index.at(file, offset) else { return Err("there is no name to rename here".into()) };
    match &o.symbol {
        Symbol::Var(_) | Symbol::Sub(_) => {
            Err("variables and subscription aliases are named in mlpolicy.yaml; rename them there".into())
        }
        symbol => {
            let defs: Vec<_> = a.index.definitions(symbol).collect();
            if defs.is_empty() {
                return Err(format!("`{}` is not declared in this configuration", a.snippet(o.span)));
            }
            if defs.iter().any(|d| a.path_of(d.span.file).is_none()) {
                return Err("this policy belongs to a built-in pack and cannot be renamed".into());
            }
            Ok((o.span, symbol.clone()))
        }
    }
}

/// The spans a rename of `symbol` to `new_name` rewrites.
pub fn rename(a: &Analysis, symbol: &Symbol, new_name: &str) -> Result<Vec<Span>, String> {
    if !is_name(new_name) {
        return Err(format!(
            "`{new_name}` is not a name: names are lower-case letters, digits and `_`, and not a keyword"
        ));
    }
    Ok(a.index.of(symbol).map(|o| o.span).filter(|s| a.path_of(s.file).is_some()).collect())
}

/// What a rename does in Azure, when it does more than edit text.
pub fn rename_warning(a: &Analysis, symbol: &Symbol) -> Option<String> {
    let note = "`moved` blocks do not exist yet, so the next plan will";
    match symbol {
        Symbol::Decl { kind: Kind::Group, name } => Some(format!(
            "Renamed group `{name}`: a group's uniqueName holds its local name; {note} replace the group in Entra ID (delete and re-create)."
        )),
        Symbol::Federated { name, .. } => {
            let named = a.index.definitions(symbol).any(|d| {
                a.snippet(d.extent)
                    .lines()
                    .any(|l| l.trim_start().starts_with("name ") || l.trim_start().starts_with("name="))
            });
            (!named).then(|| format!(
                "Renamed federated credential `{name}`: its Azure name is its local name (no `name` attribute); {note} replace it."
            ))
        }
        _ => None,
    }
}

/// The outline of one file.
pub fn symbols(a: &Analysis, file: FileId, range: &dyn Fn(Span) -> Range) -> Vec<DocumentSymbol> {
    a.tree(file).map(|t| items(a, &t.items, range)).unwrap_or_default()
}

#[expect(deprecated, reason = "DocumentSymbol's `deprecated` field must still be given")]
fn symbol(
    name: String,
    detail: Option<String>,
    kind: SymbolKind,
    span: Span,
    selection: Span,
    range: &dyn Fn(Span) -> Range,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    DocumentSymbol {
        name,
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: range(span),
        selection_range: range(selection),
        children: (!children.is_empty()).then_some(children),
    }
}

fn items(a: &Analysis, items: &[Item], range: &dyn Fn(Span) -> Range) -> Vec<DocumentSymbol> {
    items
        .iter()
        .map(|item| match item {
            Item::Decl(d) => decl(a, d, range),
            Item::Grant(g) => {
                let line = a
                    .snippet(Span { end: g.scope.span.end, ..g.span })
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                let children = g.body.as_deref().map(|b| body(a, b, range)).unwrap_or_default();
                symbol(line, None, SymbolKind::EVENT, g.span, g.span, range, children)
            }
            Item::Let(l) => symbol(
                l.name.node.clone(),
                Some("let".into()),
                SymbolKind::VARIABLE,
                l.span,
                l.name.span,
                range,
                Vec::new(),
            ),
            Item::Moved(m) => {
                let line = format!("moved {} → {}", a.snippet(m.from.span), a.snippet(m.to.span));
                symbol(line, None, SymbolKind::EVENT, m.span, m.to_span, range, Vec::new())
            }
            Item::For(f) => {
                let header = a.snippet(Span { end: f.iterable.span.end, ..f.span }).to_owned();
                symbol(header, None, SymbolKind::NAMESPACE, f.span, f.key.span, range, self::items(a, &f.items, range))
            }
            Item::Policy(p) => {
                let children = p
                    .rules
                    .iter()
                    .map(|r| {
                        symbol(
                            a.snippet(r.span).to_owned(),
                            None,
                            SymbolKind::BOOLEAN,
                            r.span,
                            r.subject.span,
                            range,
                            Vec::new(),
                        )
                    })
                    .collect();
                symbol(
                    p.name.node.clone(),
                    Some("policy".into()),
                    SymbolKind::INTERFACE,
                    p.span,
                    p.name.span,
                    range,
                    children,
                )
            }
        })
        .collect()
}

fn decl(a: &Analysis, d: &ast::Decl, range: &dyn Fn(Span) -> Range) -> DocumentSymbol {
    let kind = match Kind::from_keyword(&d.kind.node) {
        Some(Kind::ResourceGroup) => SymbolKind::PACKAGE,
        Some(Kind::Identity | Kind::Federated) => SymbolKind::KEY,
        Some(Kind::Workspace) => SymbolKind::MODULE,
        Some(Kind::Group) => SymbolKind::STRUCT,
        _ => SymbolKind::OBJECT,
    };
    symbol(d.name.node.clone(), Some(d.kind.node.clone()), kind, d.span, d.name.span, range, body(a, &d.body, range))
}

fn body(a: &Analysis, body: &[BodyItem], range: &dyn Fn(Span) -> Range) -> Vec<DocumentSymbol> {
    body.iter()
        .map(|b| match b {
            BodyItem::Attr(at) => {
                symbol(at.name.node.clone(), None, SymbolKind::PROPERTY, at.span, at.name.span, range, Vec::new())
            }
            BodyItem::Block(d) => decl(a, d, range),
            BodyItem::Allow(al) => symbol(
                format!("allow {}", al.policy.node),
                None,
                SymbolKind::KEY,
                al.span,
                al.policy.span,
                range,
                Vec::new(),
            ),
        })
        .collect()
}
