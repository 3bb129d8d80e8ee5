//! Where every name of a configuration is declared and used, read off the compiler's syntax
//! trees (no second parser): declarations, `federated` blocks, `let` bindings, loop variables,
//! policies, `var.NAME` and `sub.ALIAS`. Names resolve the way `eval` resolves them: loop
//! variables and `let`s inside a loop body first, then top-level `let`s, then `var`, `sub` and
//! the declaration kinds; inside a policy rule, the subject's attributes come first.

use std::collections::HashSet;

use mlpolicy_lang::ast::{self, BodyItem, Expr, ExprKind, Item, Segment, StrPart};
use mlpolicy_lang::check;
use mlpolicy_lang::model::Kind;
use mlpolicy_lang::source::{FileId, Span};

/// A name that can be declared once and used in many places.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Symbol {
    /// `KIND NAME { ... }` at top level (or in a `for` body).
    Decl {
        kind: Kind,
        name: String,
    },
    /// `federated NAME { ... }` inside `identity IDENTITY`.
    Federated {
        identity: String,
        name: String,
    },
    /// A top-level `let`: one namespace over every file.
    Let(String),
    /// A loop variable or a `let` inside a loop body; `scope` tells bindings of one name apart.
    Local {
        scope: u32,
        name: String,
    },
    Policy(String),
    /// `var.NAME`, given in `mlpolicy.yaml` (or a policy pack's default).
    Var(String),
    /// `sub.ALIAS`, from `subscriptions:` in `mlpolicy.yaml`.
    Sub(String),
}

/// One place a symbol is written.
#[derive(Debug, Clone)]
pub struct Occurrence {
    /// The name itself (what a rename rewrites).
    pub span: Span,
    pub symbol: Symbol,
    /// The declaring occurrence; `extent` is then the whole declaration.
    pub def: bool,
    pub extent: Span,
}

/// Other things a hover can explain.
#[derive(Debug, Clone)]
pub enum Note {
    /// A string literal naming a built-in role.
    Role(String),
    /// The kind word of a declaration (`workspace` in `workspace x {`).
    Kind(Kind),
    /// An attribute name inside a declaration of this kind.
    Attribute(Kind, String),
    /// A name a policy rule reads off its subject (`role`, `principal`).
    SubjectAttribute(String, String),
}

/// Every occurrence and note of a configuration's files, in file and position order.
#[derive(Debug, Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
    pub notes: Vec<(Span, Note)>,
}

impl Index {
    /// Indexes parsed files; `files` pairs each tree with its file id.
    pub fn build(files: &[(FileId, &ast::File)]) -> Index {
        let lets: HashSet<&str> = files
            .iter()
            .flat_map(|(_, f)| &f.items)
            .filter_map(|i| if let Item::Let(l) = i { Some(l.name.node.as_str()) } else { None })
            .collect();
        let mut w = Walker { lets: &lets, index: Index::default(), locals: Vec::new(), next_scope: 0, subject: None };
        for (_, file) in files {
            w.items(&file.items, true);
        }
        let mut index = w.index;
        index.occurrences.sort_by_key(|o| (o.span.file, o.span.start));
        index.notes.sort_by_key(|(s, _)| (s.file, s.start));
        index
    }

    /// The occurrence under a byte offset of a file (the end of a name counts, so that a cursor
    /// right after a word finds it).
    pub fn at(&self, file: FileId, offset: u32) -> Option<&Occurrence> {
        self.occurrences.iter().find(|o| o.span.file == file && o.span.start <= offset && offset <= o.span.end)
    }

    pub fn note_at(&self, file: FileId, offset: u32) -> Option<&Note> {
        self.notes.iter().find(|(s, _)| s.file == file && s.start <= offset && offset <= s.end).map(|(_, n)| n)
    }

    /// Every occurrence of a symbol, declarations first.
    pub fn of<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        let defs = self.occurrences.iter().filter(move |o| o.def && &o.symbol == symbol);
        defs.chain(self.occurrences.iter().filter(move |o| !o.def && &o.symbol == symbol))
    }

    pub fn definitions<'a>(&'a self, symbol: &'a Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        self.occurrences.iter().filter(move |o| o.def && &o.symbol == symbol)
    }
}

struct Walker<'a> {
    lets: &'a HashSet<&'a str>,
    index: Index,
    /// Loop variables and in-loop `let`s in scope, innermost last.
    locals: Vec<(String, u32)>,
    next_scope: u32,
    /// The subject of the policy rule being walked.
    subject: Option<String>,
}

impl Walker<'_> {
    fn occurrence(&mut self, span: Span, symbol: Symbol, def: bool, extent: Span) {
        self.index.occurrences.push(Occurrence { span, symbol, def, extent });
    }

    fn local(&mut self, name: &ast::Ident, extent: Span) {
        let scope = self.next_scope;
        self.next_scope += 1;
        self.locals.push((name.node.clone(), scope));
        self.occurrence(name.span, Symbol::Local { scope, name: name.node.clone() }, true, extent);
    }

    fn items(&mut self, items: &[Item], top: bool) {
        let depth = self.locals.len();
        for item in items {
            match item {
                Item::Decl(d) => self.decl(d),
                Item::Grant(g) => {
                    for e in [&g.role, &g.principal, &g.scope] {
                        self.expr(e);
                    }
                    if let Some(body) = &g.body {
                        self.body(body, Kind::Grant, None);
                    }
                }
                Item::Let(l) => {
                    self.expr(&l.value);
                    if top {
                        self.occurrence(l.name.span, Symbol::Let(l.name.node.clone()), true, l.span);
                    } else {
                        self.local(&l.name, l.span);
                    }
                }
                Item::For(f) => {
                    self.expr(&f.iterable);
                    let inner = self.locals.len();
                    self.local(&f.key, f.span);
                    if let Some(v) = &f.value {
                        self.local(v, f.span);
                    }
                    self.items(&f.items, false);
                    self.locals.truncate(inner);
                }
                Item::Policy(p) => self.policy(p),
                // `to` names a declaration (a reference); `from` names what is no longer declared.
                Item::Moved(m) => self.expr(&m.to),
            }
        }
        self.locals.truncate(depth);
    }

    fn decl(&mut self, d: &ast::Decl) {
        let kind = Kind::from_keyword(&d.kind.node).filter(|k| Kind::TOP_LEVEL.contains(k));
        if let Some(kind) = kind {
            self.index.notes.push((d.kind.span, Note::Kind(kind)));
            self.occurrence(d.name.span, Symbol::Decl { kind, name: d.name.node.clone() }, true, d.span);
        }
        self.body(&d.body, kind.unwrap_or(Kind::Grant), (kind == Some(Kind::Identity)).then_some(&d.name.node));
    }

    fn body(&mut self, body: &[BodyItem], kind: Kind, identity: Option<&String>) {
        for item in body {
            match item {
                BodyItem::Attr(a) => {
                    self.index.notes.push((a.name.span, Note::Attribute(kind, a.name.node.clone())));
                    self.expr(&a.value);
                }
                BodyItem::Allow(a) => {
                    self.occurrence(a.policy.span, Symbol::Policy(a.policy.node.clone()), false, a.span);
                }
                BodyItem::Block(b) => {
                    if let (Some(identity), "federated") = (identity, b.kind.node.as_str()) {
                        self.index.notes.push((b.kind.span, Note::Kind(Kind::Federated)));
                        let symbol = Symbol::Federated { identity: identity.clone(), name: b.name.node.clone() };
                        self.occurrence(b.name.span, symbol, true, b.span);
                    }
                    self.body(&b.body, Kind::Federated, None);
                }
            }
        }
    }

    fn policy(&mut self, p: &ast::Policy) {
        self.occurrence(p.name.span, Symbol::Policy(p.name.node.clone()), true, p.span);
        for rule in &p.rules {
            self.subject = Some(rule.subject.node.clone());
            self.expr(&rule.condition);
            self.subject = None;
        }
        for a in &p.attrs {
            self.expr(&a.value);
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Str(s) => {
                if let Some(text) = s.as_plain()
                    && crate::roles::find(&text).is_some()
                {
                    self.index.notes.push((e.span, Note::Role(text)));
                }
                for part in &s.parts {
                    if let StrPart::Interp(inner) = part {
                        self.expr(inner);
                    }
                }
            }
            ExprKind::Int(_) | ExprKind::Bool(_) => {}
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i)),
            ExprKind::Map(entries) => entries.iter().for_each(|(_, v)| self.expr(v)),
            ExprKind::Path(p) => self.path(p),
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.expr(a)),
            ExprKind::Unary { operand, .. } => self.expr(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Paren(inner) => self.expr(inner),
        }
    }

    fn path(&mut self, p: &ast::Path) {
        let root = p.root.node.as_str();
        let first = match p.segments.first() {
            Some(Segment::Field(f)) => Some(f),
            _ => None,
        };
        let extent = p.root.span;
        if let Some((_, scope)) = self.locals.iter().rev().find(|(n, _)| n == root) {
            let symbol = Symbol::Local { scope: *scope, name: root.to_owned() };
            self.occurrence(p.root.span, symbol, false, extent);
        } else if let Some(subject) =
            self.subject.as_deref().filter(|s| check::subject_attributes(s).is_some_and(|a| a.contains(&root)))
        {
            self.index.notes.push((p.root.span, Note::SubjectAttribute(subject.to_owned(), root.to_owned())));
        } else if self.lets.contains(root) {
            self.occurrence(p.root.span, Symbol::Let(root.to_owned()), false, extent);
        } else if let Some(f) = first {
            let symbol = match root {
                "var" => Some(Symbol::Var(f.node.clone())),
                "sub" => Some(Symbol::Sub(f.node.clone())),
                _ => Kind::from_keyword(root)
                    .filter(|k| Kind::TOP_LEVEL.contains(k))
                    .map(|kind| Symbol::Decl { kind, name: f.node.clone() }),
            };
            if let Some(symbol) = symbol {
                self.occurrence(f.span, symbol, false, extent);
            }
        }
        for seg in &p.segments {
            if let Segment::Index(i) = seg {
                self.expr(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlpolicy_lang::syntax;

    fn index(text: &str) -> Index {
        let (file, diags) = syntax::parse(FileId(0), text);
        assert!(!diags.has_errors(), "{diags:?}");
        Index::build(&[(FileId(0), &file)])
    }

    fn names(index: &Index, text: &str, symbol: &Symbol) -> Vec<(String, bool)> {
        index.of(symbol).map(|o| (text[o.span.range()].to_owned(), o.def)).collect()
    }

    #[test]
    fn resolves_names_as_eval_does() {
        let text = r#"let teams = ["a"]
for team in teams {
  group ds {
    name = "g-${team}"
  }
  let who = team
  grant "Reader" to group.ds[who] on sub.prod
}
grant "Reader" to group.ds["a"] on workspace.w
policy p {
  deny grant when role == "Owner" and var.env == "prod"
}
"#;
        let idx = index(text);
        let teams = Symbol::Let("teams".into());
        assert_eq!(names(&idx, text, &teams), [("teams".into(), true), ("teams".into(), false)]);
        let ds = Symbol::Decl { kind: Kind::Group, name: "ds".into() };
        assert_eq!(idx.of(&ds).count(), 3);
        let team =
            idx.occurrences.iter().find(|o| o.def && matches!(&o.symbol, Symbol::Local { name, .. } if name == "team"));
        let team = team.expect("loop variable").symbol.clone();
        assert_eq!(idx.of(&team).count(), 3, "definition, interpolation, let");
        assert_eq!(idx.of(&Symbol::Var("env".into())).count(), 1);
        assert_eq!(idx.of(&Symbol::Sub("prod".into())).count(), 1);
        assert!(
            idx.notes.iter().any(|(_, n)| matches!(n, Note::SubjectAttribute(s, a) if s == "grant" && a == "role"))
        );
        assert!(idx.notes.iter().any(|(_, n)| matches!(n, Note::Role(r) if r == "Owner")));
    }

    #[test]
    fn loop_scopes_end_with_the_loop() {
        let text = "for k in [\"a\"] {\n  let x = k\n}\nlet y = x\n";
        let idx = index(text);
        assert!(idx.of(&Symbol::Let("x".into())).next().is_none(), "the outer `x` is no top-level let");
        let uses: Vec<_> = idx.occurrences.iter().filter(|o| &text[o.span.range()] == "x").collect();
        assert_eq!(uses.len(), 1, "only the definition inside the loop: {uses:?}");
    }
}
