//! The syntax tree as written, produced by [`crate::syntax`] and read by `resolve`, `check` and
//! `fmt`. Every node carries its byte [`Span`]; comments are kept beside the tree (in
//! [`File::comments`]) so that `fmt` can put them back.
//!
//! Nothing here is resolved: a [`Path`] is just the dotted/indexed name as typed. Keywords of a
//! declaration's kind are not checked here either (`workspase x {}` parses as a declaration of
//! kind `workspase`), so that `resolve` can suggest the right kind.

use crate::source::Span;

/// A value with the span it was written at. Equality ignores the span, so tree tests do not
/// hinge on offsets.
#[derive(Debug, Clone)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// An identifier (`[a-z_][a-z0-9_]*`) or other name as written.
pub type Ident = Spanned<String>;

/// One `.mlp` file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
    /// Every `# ...` comment of the file, in order, with the `#` and without the newline.
    pub comments: Vec<Spanned<String>>,
}

/// A top-level (or `for`-body) item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Decl(Decl),
    Grant(Grant),
    Let(Let),
    For(For),
    Policy(Policy),
    Moved(Moved),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Decl(d) => d.span,
            Item::Grant(g) => g.span,
            Item::Let(l) => l.span,
            Item::For(f) => f.span,
            Item::Policy(p) => p.span,
            Item::Moved(m) => m.span,
        }
    }
}

/// `KIND NAME { body }`: `resource_group`, `identity`, `workspace`, `group`, and `federated`
/// nested inside an identity. The kind is whatever identifier was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    pub kind: Ident,
    pub name: Ident,
    pub body: Vec<BodyItem>,
    pub span: Span,
}

/// A statement inside a declaration or grant body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyItem {
    /// `name = expr`
    Attr(Attr),
    /// A nested block, e.g. `federated github_prod { ... }`.
    Block(Decl),
    /// `allow POLICY because "reason"`
    Allow(Allow),
}

impl BodyItem {
    pub fn span(&self) -> Span {
        match self {
            BodyItem::Attr(a) => a.span,
            BodyItem::Block(d) => d.span,
            BodyItem::Allow(a) => a.span,
        }
    }
}

/// `name = value`
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `allow POLICY because "reason"`
#[derive(Debug, Clone, PartialEq)]
pub struct Allow {
    pub policy: Ident,
    pub reason: Spanned<StrLit>,
    pub span: Span,
}

/// `grant ROLE to PRINCIPAL on SCOPE [{ body }]`
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub role: Expr,
    pub principal: Expr,
    pub scope: Expr,
    /// `None` when written without braces; `Some(vec![])` for `{}`.
    pub body: Option<Vec<BodyItem>>,
    pub span: Span,
}

/// `let NAME = EXPR`
#[derive(Debug, Clone, PartialEq)]
pub struct Let {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `for KEY in EXPR { items }` or `for KEY, VALUE in EXPR { items }`
#[derive(Debug, Clone, PartialEq)]
pub struct For {
    pub key: Ident,
    pub value: Option<Ident>,
    pub iterable: Expr,
    pub items: Vec<Item>,
    pub span: Span,
}

/// `policy NAME { rules, message = "..." }`
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: Ident,
    pub rules: Vec<Rule>,
    /// `message = "..."`, and any other attribute written in the block (checked later).
    pub attrs: Vec<Attr>,
    pub span: Span,
}

/// `moved { from = ADDRESS  to = ADDRESS }`: the object declared at `to` was declared at
/// `from` before. Both are paths as written (`group.readers`, `group.ds["fraud"]`,
/// `identity.t.federated.gh`), checked in `resolve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub from: Expr,
    pub to: Expr,
    /// `from = ...` and `to = ...`, each whole.
    pub from_span: Span,
    pub to_span: Span,
    pub span: Span,
}

/// `deny|warn SUBJECT when CONDITION`
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub effect: Spanned<Effect>,
    /// `grant`, `group`, `identity`, `federated`, `workspace` (checked in `check`).
    pub subject: Ident,
    pub condition: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    Deny,
    Warn,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Str(StrLit),
    Int(i64),
    Bool(bool),
    List(Vec<Expr>),
    /// `{ key = value, ... }`; keys are identifiers or strings, kept in source order.
    Map(Vec<(Spanned<String>, Expr)>),
    /// A name: `teams`, `var.env`, `group.ds[team]`, `workspace.fraud.identity`, `principal.kind`.
    Path(Path),
    /// `user(...)`, `service_principal(...)`, `existing_group(...)`, `scope(...)`, `count(...)`.
    Call {
        name: Ident,
        args: Vec<Expr>,
    },
    Unary {
        op: Spanned<UnaryOp>,
        operand: Box<Expr>,
    },
    Binary {
        op: Spanned<BinaryOp>,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `( expr )`, kept so that `fmt` preserves the parentheses the author wrote.
    Paren(Box<Expr>),
}

/// A string literal: literal text (escapes already decoded) and `${expr}` interpolations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StrLit {
    pub parts: Vec<StrPart>,
}

impl StrLit {
    /// The text when the literal has no interpolation.
    pub fn as_plain(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                StrPart::Lit(t) => s.push_str(t),
                StrPart::Interp(_) => return None,
            }
        }
        Some(s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Lit(String),
    Interp(Expr),
}

/// `root.seg.seg[index]...`
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub root: Ident,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Field(Ident),
    Index(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Matches,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::NotIn => "!in",
            BinaryOp::Matches => "matches",
        }
    }

    /// Binding strength: `or` < `and` < comparisons.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            _ => 3,
        }
    }
}
