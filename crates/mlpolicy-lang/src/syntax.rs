//! Text → [`ast::File`]: the pest grammar (`grammar/mlpolicy.pest`), the conversion of its parse
//! tree into the syntax tree, and the conversion of pest's errors into [`Diagnostic`]s. This is
//! the only module that names pest's `Rule` or `Pair`.
//!
//! Before pest sees the text, a small scanner walks it once: it rejects nesting deeper than
//! [`MAX_NESTING`] (pest parses by recursive descent, so unbounded nesting would overflow the
//! stack), finds unterminated strings, and notes the lines where a top-level item may start.
//! When pest fails, the items before the error are kept and parsing resumes at the next such
//! line, so that each broken item gets its own diagnostic. The conversion itself bounds the
//! depth of the tree it builds ([`MAX_EXPR_DEPTH`]), so later recursive stages are safe too.
//!
//! Codes: E0010 unexpected token, E0011 unterminated string, E0012 invalid escape, E0013
//! nesting too deep, E0014 keyword used as a name, E0015 invalid name, E0016 integer out of
//! range, E0017 interpolation in a map key.

use pest::Parser as _;
use pest::error::InputLocation;
use pest::iterators::Pair;

use crate::ast::{
    Allow, Attr, BinaryOp, BodyItem, Decl, Effect, Expr, ExprKind, File, For, Grant, Ident, Item, Let, Moved, Path,
    Policy, Rule as PolicyRule, Segment, Spanned, StrLit, StrPart, UnaryOp,
};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::source::{FileId, Span};

/// Deepest nesting of `(`, `[`, `{` and `${` accepted in a file.
pub const MAX_NESTING: usize = 64;

/// Deepest expression tree accepted (brackets, operators and `not` all count).
pub const MAX_EXPR_DEPTH: usize = 200;

/// The words that cannot be used as names.
pub const KEYWORDS: &[&str] = &[
    "let", "for", "in", "grant", "to", "on", "policy", "deny", "warn", "when", "allow", "because", "true", "false",
    "and", "or", "not", "matches",
];

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/mlpolicy.pest"]
struct Grammar;

/// Stack for the parsing thread: pest's recursive descent over [`MAX_NESTING`] levels needs
/// about 4 MiB in a debug build, more than a test thread has.
const PARSE_STACK_BYTES: usize = 32 * 1024 * 1024;

/// Parses one `.mlp` file. Always returns a tree (possibly partial) and the problems found;
/// the tree is complete exactly when no error was reported.
///
/// The work runs on a scoped thread with a [`PARSE_STACK_BYTES`] stack, so callers on small
/// stacks (test threads, async workers) are safe too.
pub fn parse(file: FileId, text: &str) -> (File, Diagnostics) {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("mlpolicy-parse".to_owned())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, || parse_here(file, text));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                let d = Diagnostic::error(Code::E0010, "the parser failed on this file")
                    .with_label(Span::new(file, 0, 0), "")
                    .with_help("this is a bug in mlpolicy; please report it with the file");
                (File::default(), d.into())
            }),
            Err(_) => parse_here(file, text),
        }
    })
}

fn parse_here(file: FileId, text: &str) -> (File, Diagnostics) {
    let mut conv = Converter { file, offset: 0, text, diags: Diagnostics::default(), comments: Vec::new() };
    let scan = match prescan(text) {
        Ok(scan) => scan,
        Err(at) => {
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            conv.diags.push(
                Diagnostic::error(Code::E0013, format!("nesting is deeper than {MAX_NESTING} levels"))
                    .with_label(Span::new(file, at, end), "too deep here")
                    .with_help("split the value into `let` bindings; nothing needs this much nesting"),
            );
            return (File::default(), conv.diags);
        }
    };
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        let seg = &text[pos..];
        conv.offset = pos;
        match Grammar::parse(Rule::file, seg) {
            Ok(mut pairs) => {
                if let Some(p) = pairs.next() {
                    conv.items_into(p, &mut items);
                }
                break;
            }
            Err(err) => {
                let err_pos = pos
                    + match err.location {
                        InputLocation::Pos(p) | InputLocation::Span((p, _)) => p,
                    };
                if let Ok(mut pairs) = Grammar::parse(Rule::prefix, seg)
                    && let Some(p) = pairs.next()
                {
                    conv.items_into(p, &mut items);
                }
                let next = scan.starts.iter().copied().find(|&b| b > pos && b >= err_pos);
                let seg_end = next.unwrap_or(text.len());
                let lexical: Vec<&Diagnostic> = scan
                    .errors
                    .iter()
                    .filter(|d| d.span().is_some_and(|s| (pos..seg_end).contains(&(s.start as usize))))
                    .collect();
                let first_lexical = lexical.first().and_then(|d| d.span()).map(|s| s.start as usize);
                if first_lexical.is_none_or(|l| err_pos < l) {
                    conv.diags.push(unexpected(file, text, err_pos, &err));
                }
                for d in lexical {
                    let mut d = d.clone();
                    d.labels.iter_mut().for_each(|l| l.span.file = file);
                    conv.diags.push(d);
                }
                match next {
                    Some(n) => pos = n,
                    None => break,
                }
            }
        }
    }
    conv.comments.sort_by_key(|c| c.span.start);
    conv.comments.dedup_by_key(|c| c.span.start);
    let comments = conv.comments;
    (File { items, comments }, conv.diags)
}

// ---------------------------------------------------------------------------------------------
// Pre-scan

struct Scan {
    /// Byte offsets of lines that look like the start of a top-level item.
    starts: Vec<usize>,
    /// Unterminated strings (E0011), with a placeholder file id.
    errors: Vec<Diagnostic>,
}

#[derive(Clone, Copy, PartialEq)]
enum Frame {
    Bracket,
    Interp,
    Str(usize),
}

/// Walks the text once as a lexer would; returns the offset of the first opener past
/// [`MAX_NESTING`] as an error.
fn prescan(text: &str) -> Result<Scan, usize> {
    let bytes = text.as_bytes();
    let mut scan = Scan { starts: Vec::new(), errors: Vec::new() };
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(&Frame::Str(open)) = stack.last() {
            match b {
                b'\\' if !matches!(bytes.get(i + 1), None | Some(b'\n' | b'\r')) => i += 2,
                b'"' => {
                    stack.pop();
                    i += 1;
                }
                b'$' if bytes[i + 1..].starts_with(b"${") => i += 3,
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(i);
                    }
                    stack.push(Frame::Interp);
                    i += 2;
                }
                b'\n' | b'\r' => {
                    scan.errors.push(unterminated(open, i));
                    stack.pop();
                }
                _ => i += 1,
            }
            if i >= bytes.len()
                && let Some(&Frame::Str(open)) = stack.last()
            {
                scan.errors.push(unterminated(open, bytes.len()));
            }
            continue;
        }
        if line_start && stack.iter().all(|f| *f == Frame::Bracket) && looks_like_item(&bytes[i..]) {
            scan.starts.push(i);
        }
        line_start = false;
        match b {
            b'\n' => line_start = true,
            b'#' => {
                while i + 1 < bytes.len() && !matches!(bytes[i + 1], b'\n' | b'\r') {
                    i += 1;
                }
            }
            b'"' => {
                stack.push(Frame::Str(i));
                if i + 1 >= bytes.len() {
                    scan.errors.push(unterminated(i, bytes.len()));
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(i);
                }
                stack.push(Frame::Bracket);
            }
            b')' | b']' | b'}' => {
                if matches!(stack.last(), Some(Frame::Bracket | Frame::Interp)) {
                    stack.pop();
                    depth -= 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(scan)
}

fn unterminated(open: usize, end: usize) -> Diagnostic {
    Diagnostic::error(Code::E0011, "unterminated string")
        .with_label(Span::new(FileId(0), open, end), "this string is not closed on its line")
        .with_help(
            "add the closing `\"` (and the `}` of any `${`); strings cannot span lines (write `\\n` for a line break)",
        )
}

/// Whether a line (at column 0) starts like a top-level item: a keyword that starts one, or
/// `word word {`.
fn looks_like_item(rest: &[u8]) -> bool {
    let word = |s: &[u8]| -> usize {
        if s.first().is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
            s.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-').count()
        } else {
            0
        }
    };
    let spaces = |s: &[u8]| s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    let n = word(rest);
    if n == 0 {
        return false;
    }
    if matches!(&rest[..n], b"let" | b"for" | b"grant" | b"policy") {
        return true;
    }
    if &rest[..n] == b"moved" && rest[n..].iter().find(|b| !b" \t".contains(b)) == Some(&b'{') {
        return true;
    }
    let mut i = n + spaces(&rest[n..]);
    let m = word(&rest[i..]);
    if m == 0 {
        return false;
    }
    i += m;
    i += spaces(&rest[i..]);
    rest.get(i) == Some(&b'{')
}

// ---------------------------------------------------------------------------------------------
// Pest errors

/// E0010 for a pest failure at `at`, naming what was expected in plain words.
fn unexpected(file: FileId, text: &str, at: usize, err: &pest::error::Error<Rule>) -> Diagnostic {
    let mut expected: Vec<&str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &err.variant {
        for r in positives {
            if let Some(w) = describe(*r)
                && !expected.contains(&w)
            {
                expected.push(w);
            }
        }
    }
    let (found, len) = found_at(text, at);
    let what = match expected.len() {
        0 => String::new(),
        1 => expected[0].to_owned(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let help = if expected.contains(&"`}`") {
        "every `{` needs a matching `}`; each attribute is `name = value` on its own line"
    } else if expected.contains(&"an expression") {
        "a value is a string, number, `true`/`false`, list, map, name like `var.env` or call like `user(\"...\")`"
    } else if expected.contains(&"`=`") {
        "an attribute is written `name = value`, a block `kind name { ... }`"
    } else {
        "see docs/language.md for the syntax of `.mlp` files"
    };
    let message =
        if expected.is_empty() { format!("unexpected {found}") } else { format!("expected {what}, found {found}") };
    Diagnostic::error(Code::E0010, message)
        .with_label(Span::new(file, at, at + len), format!("{found} is not allowed here"))
        .with_help(help)
}

/// A plain-words description of what starts at `at`, and its length in bytes.
fn found_at(text: &str, at: usize) -> (String, usize) {
    let rest = &text[at..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".to_owned(), 0);
    };
    if c.is_ascii_alphabetic() || c == '_' {
        let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
        return (format!("`{}`", &rest[..n]), n);
    }
    if c.is_ascii_digit() {
        let n = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        return ("a number".to_owned(), n);
    }
    match c {
        '"' => ("a string".to_owned(), 1),
        '\n' | '\r' => ("end of line".to_owned(), 1),
        _ => (format!("`{c}`"), c.len_utf8()),
    }
}

fn describe(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::assign => "`=`",
        Rule::comma => "`,`",
        Rule::dot | Rule::field => "`.`",
        Rule::lbrace | Rule::grant_body => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket | Rule::index => "`[`",
        Rule::rbracket => "`]`",
        Rule::lparen | Rule::call_args => "`(`",
        Rule::rparen => "`)`",
        Rule::kw_let | Rule::let_item => "`let`",
        Rule::kw_for | Rule::for_item => "`for`",
        Rule::kw_in => "`in`",
        Rule::kw_grant | Rule::grant_item => "`grant`",
        Rule::kw_to | Rule::moved_to => "`to`",
        Rule::kw_on => "`on`",
        Rule::kw_policy | Rule::policy_item => "`policy`",
        Rule::kw_deny | Rule::kw_warn | Rule::policy_rule | Rule::effect => "`deny` or `warn`",
        Rule::kw_when => "`when`",
        Rule::kw_allow | Rule::allow => "`allow`",
        Rule::kw_because => "`because`",
        Rule::kw_moved | Rule::moved_item => "`moved`",
        Rule::kw_from | Rule::moved_from => "`from`",
        Rule::name | Rule::keyword => "a name",
        Rule::decl => "a declaration",
        Rule::attr => "an attribute",
        Rule::map_entry => "a map entry",
        Rule::string => "a string",
        Rule::EOI => "end of file",
        Rule::cmp_op | Rule::op_and | Rule::op_or => "an operator",
        Rule::expr
        | Rule::comparison
        | Rule::op_not
        | Rule::paren
        | Rule::list
        | Rule::map
        | Rule::named
        | Rule::bool
        | Rule::int => "an expression",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Parse tree → syntax tree

struct Converter<'t> {
    file: FileId,
    /// Where the segment being converted starts in the file.
    offset: usize,
    text: &'t str,
    diags: Diagnostics,
    comments: Vec<Spanned<String>>,
}

/// The meaningful children of a pair: comments (collected up front), punctuation and keywords
/// are dropped.
fn kids(p: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    p.into_inner().filter(|k| {
        !matches!(
            k.as_rule(),
            Rule::COMMENT
                | Rule::assign
                | Rule::comma
                | Rule::dot
                | Rule::lbrace
                | Rule::rbrace
                | Rule::lbracket
                | Rule::rbracket
                | Rule::lparen
                | Rule::rparen
                | Rule::kw_let
                | Rule::kw_for
                | Rule::kw_in
                | Rule::kw_grant
                | Rule::kw_to
                | Rule::kw_on
                | Rule::kw_policy
                | Rule::kw_when
                | Rule::kw_allow
                | Rule::kw_because
                | Rule::kw_moved
                | Rule::kw_from
                | Rule::EOI
        )
    })
}

/// A placeholder for an expression that was reported as an error.
fn error_expr(span: Span) -> Expr {
    Expr { kind: ExprKind::Bool(false), span }
}

impl Converter<'_> {
    /// The span of a pair without the whitespace and comments pest lets a rule swallow after
    /// its last token.
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        Span::new(self.file, self.offset + p.as_span().start(), self.offset + Self::end_of(p))
    }

    fn end_of(p: &Pair<'_, Rule>) -> usize {
        // Only rules that end in a repetition, an option or an expression can swallow any.
        if !matches!(
            p.as_rule(),
            Rule::file
                | Rule::prefix
                | Rule::let_item
                | Rule::grant_item
                | Rule::policy_rule
                | Rule::moved_from
                | Rule::moved_to
                | Rule::attr
                | Rule::map_entry
                | Rule::expr
                | Rule::comparison
        ) {
            return p.as_span().end();
        }
        let last = p.clone().into_inner().rev().find(|k| k.as_rule() != Rule::COMMENT);
        let Some(last) = last else {
            return p.as_span().end();
        };
        let e = Self::end_of(&last);
        let tail = &p.get_input()[e..p.as_span().end()];
        e + tail.find(|c: char| c.is_whitespace() || c == '#').unwrap_or(tail.len())
    }

    /// Every comment in the tree of `p`, collected up front so that conversion can skip them.
    fn collect_comments(&mut self, p: &Pair<'_, Rule>) {
        for c in p.clone().into_inner().flatten().filter(|k| k.as_rule() == Rule::COMMENT) {
            let span = self.span(&c);
            self.comments.push(Spanned::new(c.as_str().trim_end().to_owned(), span));
        }
    }

    fn items_into(&mut self, p: Pair<'_, Rule>, items: &mut Vec<Item>) {
        self.collect_comments(&p);
        let first = items.len();
        for k in kids(p) {
            if let Some(item) = self.item(k) {
                items.push(item);
            }
        }
        self.require_line_breaks(items[first.saturating_sub(1)..].iter().map(Item::span), "item");
    }

    /// E0010 when two items, attributes or rules share a line.
    fn require_line_breaks(&mut self, spans: impl Iterator<Item = Span>, what: &str) {
        let mut prev: Option<Span> = None;
        for s in spans {
            if let Some(p) = prev
                && p.end <= s.start
                && !self.text[p.range().end..s.start as usize].contains(['\n', '\r'])
            {
                self.diags.push(
                    Diagnostic::error(Code::E0010, format!("expected a line break before this {what}"))
                        .with_label(s, format!("this {what} starts on the line of the previous one"))
                        .with_help(format!("put each {what} on its own line")),
                );
            }
            prev = Some(s);
        }
    }

    fn item(&mut self, p: Pair<'_, Rule>) -> Option<Item> {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::let_item => {
                let mut k = kids(p);
                let name = self.local_name(&k.next()?, "binding");
                let value = self.expr(k.next()?, 0);
                Some(Item::Let(Let { name, value, span }))
            }
            Rule::for_item => {
                let mut names = Vec::new();
                let mut rest = Vec::new();
                for k in kids(p) {
                    if k.as_rule() == Rule::name && rest.is_empty() {
                        names.push(k);
                    } else {
                        rest.push(k);
                    }
                }
                let mut names = names.into_iter();
                let key = self.local_name(&names.next()?, "loop variable");
                let value = names.next().map(|n| self.local_name(&n, "loop variable"));
                let mut rest = rest.into_iter();
                let iterable = self.expr(rest.next()?, 0);
                let mut items = Vec::new();
                let mut inner = Vec::new();
                for k in rest {
                    if let Some(i) = self.item(k) {
                        inner.push(i);
                    }
                }
                self.require_line_breaks(inner.iter().map(Item::span), "item");
                items.extend(inner);
                Some(Item::For(For { key, value, iterable, items, span }))
            }
            Rule::grant_item => {
                let mut k = kids(p);
                let role = self.expr(k.next()?, 0);
                let principal = self.expr(k.next()?, 0);
                let scope = self.expr(k.next()?, 0);
                let body = k.next().map(|b| self.body(b));
                Some(Item::Grant(Grant { role, principal, scope, body, span }))
            }
            Rule::policy_item => {
                let mut k = kids(p);
                let name = self.local_name(&k.next()?, "policy");
                let mut rules = Vec::new();
                let mut attrs = Vec::new();
                let mut spans = Vec::new();
                for r in k {
                    spans.push(self.span(&r));
                    if r.as_rule() == Rule::policy_rule {
                        if let Some(rule) = self.rule(r) {
                            rules.push(rule);
                        }
                    } else if let Some(a) = self.attr(r) {
                        attrs.push(a);
                    }
                }
                self.require_line_breaks(spans.into_iter(), "rule");
                Some(Item::Policy(Policy { name, rules, attrs, span }))
            }
            Rule::moved_item => {
                let mut k = kids(p);
                let (from_pair, to_pair) = (k.next()?, k.next()?);
                let (from_span, to_span) = (self.span(&from_pair), self.span(&to_pair));
                let from = self.expr(kids(from_pair).next()?, 0);
                let to = self.expr(kids(to_pair).next()?, 0);
                Some(Item::Moved(Moved { from, to, from_span, to_span, span }))
            }
            Rule::decl => self.decl(p).map(Item::Decl),
            _ => None,
        }
    }

    fn rule(&mut self, p: Pair<'_, Rule>) -> Option<PolicyRule> {
        let span = self.span(&p);
        let mut k = kids(p);
        let effect_pair = k.next()?;
        let effect_span = self.span(&effect_pair);
        let effect = if effect_pair.as_str() == "deny" { Effect::Deny } else { Effect::Warn };
        let subject = self.ident(&k.next()?);
        let condition = self.expr(k.next()?, 0);
        Some(PolicyRule { effect: Spanned::new(effect, effect_span), subject, condition, span })
    }

    fn decl(&mut self, p: Pair<'_, Rule>) -> Option<Decl> {
        let span = self.span(&p);
        let mut k = kids(p);
        let kind = self.checked_name(&k.next()?);
        let name = self.local_name(&k.next()?, "declaration");
        let body = self.body_items(k);
        Some(Decl { kind, name, body, span })
    }

    fn body(&mut self, p: Pair<'_, Rule>) -> Vec<BodyItem> {
        self.body_items(kids(p))
    }

    fn body_items<'i>(&mut self, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> Vec<BodyItem> {
        let mut out = Vec::new();
        for k in pairs {
            let item = match k.as_rule() {
                Rule::attr => self.attr(k).map(BodyItem::Attr),
                Rule::decl => self.decl(k).map(BodyItem::Block),
                Rule::allow => {
                    let span = self.span(&k);
                    let mut kk = kids(k);
                    let policy = kk.next().map(|n| self.local_name(&n, "policy"));
                    let reason = kk.next().map(|s| {
                        let sp = self.span(&s);
                        Spanned::new(self.string(s, 0), sp)
                    });
                    policy.zip(reason).map(|(policy, reason)| BodyItem::Allow(Allow { policy, reason, span }))
                }
                _ => None,
            };
            out.extend(item);
        }
        self.require_line_breaks(out.iter().map(BodyItem::span), "attribute");
        out
    }

    fn attr(&mut self, p: Pair<'_, Rule>) -> Option<Attr> {
        let span = self.span(&p);
        let mut k = kids(p);
        let name = self.local_name(&k.next()?, "attribute");
        let value = self.expr(k.next()?, 0);
        Some(Attr { name, value, span })
    }

    fn ident(&self, p: &Pair<'_, Rule>) -> Ident {
        Spanned::new(p.as_str().to_owned(), self.span(p))
    }

    /// A name that must be a valid identifier (E0015) but may be a keyword (path fields,
    /// declaration kinds).
    fn checked_name(&mut self, p: &Pair<'_, Rule>) -> Ident {
        let id = self.ident(p);
        if !is_identifier(&id.node) {
            let fixed = id.node.to_ascii_lowercase().replace('-', "_");
            self.diags.push(
                Diagnostic::error(Code::E0015, format!("invalid name `{}`", id.node))
                    .with_label(id.span, "names are lower-case letters, digits and `_`")
                    .with_help(format!(
                        "names are lower-case, with `_` between words (display names go in a string attribute); did you mean `{fixed}`?"
                    )),
            );
        }
        id
    }

    /// A name being declared: a valid identifier (E0015) that is not a keyword (E0014).
    fn local_name(&mut self, p: &Pair<'_, Rule>, what: &str) -> Ident {
        let id = self.ident(p);
        if KEYWORDS.contains(&id.node.as_str()) {
            self.diags.push(
                Diagnostic::error(
                    Code::E0014,
                    format!("`{}` is a keyword and cannot be used as a {what} name", id.node),
                )
                .with_label(id.span, "reserved keyword")
                .with_help(format!("choose another name, e.g. `{}_`", id.node)),
            );
            return id;
        }
        self.checked_name(p)
    }

    fn too_deep(&mut self, span: Span) -> Expr {
        self.diags.push(
            Diagnostic::error(Code::E0013, format!("expression is nested deeper than {MAX_EXPR_DEPTH} levels"))
                .with_label(span, "too deep")
                .with_help("split the expression into `let` bindings or several rules"),
        );
        error_expr(span)
    }

    /// An expression: an `expr` pair, whose flat run of operands and operators is grouped here
    /// by precedence, or a single operand.
    fn expr(&mut self, p: Pair<'_, Rule>, depth: usize) -> Expr {
        if p.as_rule() != Rule::expr {
            return self.operand(p, depth);
        }
        let mut run = kids(p);
        let first = run.next();
        match run.next() {
            None => self.chain(first.as_slice(), depth, BinaryOp::Or),
            Some(second) => {
                let run: Vec<_> = first.into_iter().chain([second]).chain(run).collect();
                self.chain(&run, depth, BinaryOp::Or)
            }
        }
    }

    /// The span of a run of operands and operators.
    fn run_span(&self, run: &[Pair<'_, Rule>]) -> Span {
        match (run.first(), run.last()) {
            (Some(first), Some(last)) => {
                Span::new(self.file, self.offset + first.as_span().start(), self.offset + Self::end_of(last))
            }
            _ => Span::new(self.file, self.offset, self.offset),
        }
    }

    /// `a or b or c` (each side an `and` chain) or `a and b` (each side a negation): a
    /// left-leaning chain, refused beyond [`MAX_EXPR_DEPTH`].
    fn chain(&mut self, run: &[Pair<'_, Rule>], depth: usize, op: BinaryOp) -> Expr {
        let rule = if op == BinaryOp::Or { Rule::op_or } else { Rule::op_and };
        let ops: Vec<&Pair<'_, Rule>> = run.iter().filter(|k| k.as_rule() == rule).collect();
        if ops.len() + depth > MAX_EXPR_DEPTH {
            let span = self.run_span(run);
            return self.too_deep(span);
        }
        let mut sides = run.split(|k| k.as_rule() == rule);
        let first = sides.next().unwrap_or_default();
        let mut lhs = self.chain_side(first, depth + usize::from(!ops.is_empty()), op);
        for (op_pair, side) in ops.into_iter().zip(sides) {
            let op_span = self.span(op_pair);
            let rhs = self.chain_side(side, depth + 1, op);
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary { op: Spanned::new(op, op_span), lhs: Box::new(lhs), rhs: Box::new(rhs) },
                span,
            };
        }
        lhs
    }

    /// One side of an `op` chain: the next tighter level.
    fn chain_side(&mut self, run: &[Pair<'_, Rule>], depth: usize, op: BinaryOp) -> Expr {
        if op == BinaryOp::Or { self.chain(run, depth, BinaryOp::And) } else { self.negation(run, depth) }
    }

    /// `not not a == b`: prefix `not`s over a `comparison` pair.
    fn negation(&mut self, run: &[Pair<'_, Rule>], depth: usize) -> Expr {
        let nots = run.iter().take_while(|k| k.as_rule() == Rule::op_not).count();
        if nots + depth > MAX_EXPR_DEPTH {
            let span = self.run_span(run);
            return self.too_deep(span);
        }
        let Some(cmp) = run.get(nots) else {
            return error_expr(self.run_span(run));
        };
        let mut e = self.comparison(cmp.clone(), depth + nots);
        for op in run[..nots].iter().rev() {
            let op_span = self.span(op);
            let span = op_span.to(e.span);
            e = Expr { kind: ExprKind::Unary { op: Spanned::new(UnaryOp::Not, op_span), operand: Box::new(e) }, span };
        }
        e
    }

    /// `a OP b` with one comparison operator at most (the grammar does not chain them).
    fn comparison(&mut self, p: Pair<'_, Rule>, depth: usize) -> Expr {
        if depth > MAX_EXPR_DEPTH {
            let span = self.span(&p);
            return self.too_deep(span);
        }
        let whole = p.clone();
        let mut k = kids(p);
        match (k.next(), k.next(), k.next()) {
            (Some(only), None, None) => self.operand(only, depth),
            (Some(lhs), Some(op), Some(rhs)) => {
                let lhs = self.operand(lhs, depth + 1);
                let op_span = self.span(&op);
                let op = match op.as_str() {
                    "==" => BinaryOp::Eq,
                    "!=" => BinaryOp::Ne,
                    "<" => BinaryOp::Lt,
                    "<=" => BinaryOp::Le,
                    ">" => BinaryOp::Gt,
                    ">=" => BinaryOp::Ge,
                    "in" => BinaryOp::In,
                    "!in" => BinaryOp::NotIn,
                    _ => BinaryOp::Matches,
                };
                let rhs = self.operand(rhs, depth + 1);
                let span = lhs.span.to(rhs.span);
                Expr {
                    kind: ExprKind::Binary { op: Spanned::new(op, op_span), lhs: Box::new(lhs), rhs: Box::new(rhs) },
                    span,
                }
            }
            _ => error_expr(self.span(&whole)),
        }
    }

    /// A value: literal, bracketed expression, list, map, call or path.
    fn operand(&mut self, p: Pair<'_, Rule>, depth: usize) -> Expr {
        let span = self.span(&p);
        if depth > MAX_EXPR_DEPTH {
            return self.too_deep(span);
        }
        match p.as_rule() {
            Rule::paren => {
                let inner = kids(p).next();
                let e = inner.map_or_else(|| error_expr(span), |i| self.expr(i, depth + 1));
                Expr { kind: ExprKind::Paren(Box::new(e)), span }
            }
            Rule::list => {
                let kids = kids(p);
                let items = kids.into_iter().map(|k| self.expr(k, depth + 1)).collect();
                Expr { kind: ExprKind::List(items), span }
            }
            Rule::map => self.map(p, depth),
            Rule::string => Expr { kind: ExprKind::Str(self.string(p, depth)), span },
            Rule::int => {
                let kind = if let Ok(n) = p.as_str().parse::<i64>() {
                    ExprKind::Int(n)
                } else {
                    self.diags.push(
                        Diagnostic::error(Code::E0016, format!("integer `{}` is out of range", p.as_str()))
                            .with_label(span, "does not fit in 64 bits")
                            .with_help(format!("integers are between {} and {}", i64::MIN, i64::MAX)),
                    );
                    ExprKind::Int(0)
                };
                Expr { kind, span }
            }
            Rule::bool => Expr { kind: ExprKind::Bool(p.as_str() == "true"), span },
            Rule::named => {
                let mut k = kids(p).peekable();
                let Some(name) = k.next() else {
                    return error_expr(span);
                };
                let name = self.checked_name(&name);
                if let Some(args) = k.next_if(|a| a.as_rule() == Rule::call_args) {
                    let args = kids(args).map(|e| self.expr(e, depth + 1)).collect();
                    return Expr { kind: ExprKind::Call { name, args }, span };
                }
                let mut segments = Vec::new();
                for s in k {
                    if s.as_rule() == Rule::field {
                        if let Some(n) = kids(s).next() {
                            segments.push(Segment::Field(self.checked_name(&n)));
                        }
                    } else if let Some(e) = kids(s).next() {
                        segments.push(Segment::Index(self.expr(e, depth + 1)));
                    }
                }
                Expr { kind: ExprKind::Path(Path { root: name, segments }), span }
            }
            _ => error_expr(span),
        }
    }

    fn map(&mut self, p: Pair<'_, Rule>, depth: usize) -> Expr {
        let span = self.span(&p);
        let mut entries = Vec::new();
        let mut prev_end: Option<usize> = None;
        let mut comma_seen = false;
        for k in p.into_inner() {
            match k.as_rule() {
                Rule::comma => comma_seen = true,
                Rule::map_entry => {
                    let entry_span = self.span(&k);
                    if let Some(end) = prev_end
                        && !comma_seen
                        && !self.text[end..entry_span.start as usize].contains(['\n', '\r'])
                    {
                        self.diags.push(
                            Diagnostic::error(Code::E0010, "expected `,` or a line break between map entries")
                                .with_label(entry_span, "this entry follows the previous one without a separator")
                                .with_help("separate map entries with `,` or put each on its own line"),
                        );
                    }
                    prev_end = Some(entry_span.end as usize);
                    comma_seen = false;
                    let mut kk = kids(k);
                    let (Some(key), Some(value)) = (kk.next(), kk.next()) else {
                        continue;
                    };
                    let key = if key.as_rule() == Rule::string {
                        let key_span = self.span(&key);
                        let lit = self.string(key, depth + 1);
                        if let Some(s) = lit.as_plain() {
                            Spanned::new(s, key_span)
                        } else {
                            self.diags.push(
                                Diagnostic::error(Code::E0017, "a map key cannot contain `${...}`")
                                    .with_label(key_span, "interpolated key")
                                    .with_help("map keys are fixed names or plain strings"),
                            );
                            Spanned::new(String::new(), key_span)
                        }
                    } else {
                        self.local_name(&key, "map key")
                    };
                    let value = self.expr(value, depth + 1);
                    entries.push((key, value));
                }
                _ => {}
            }
        }
        Expr { kind: ExprKind::Map(entries), span }
    }

    fn string(&mut self, p: Pair<'_, Rule>, depth: usize) -> StrLit {
        let mut parts: Vec<StrPart> = Vec::new();
        let mut lit = String::new();
        for k in p.into_inner() {
            match k.as_rule() {
                Rule::str_text | Rule::dollar => lit.push_str(k.as_str()),
                Rule::dollar_esc => lit.push_str("${"),
                Rule::escape => {
                    if let Some(c) = decode_escape(k.as_str()) {
                        lit.push(c);
                    } else {
                        let span = self.span(&k);
                        self.bad_escape(span, k.as_str());
                    }
                }
                Rule::bad_escape => {
                    let span = self.span(&k);
                    self.bad_escape(span, k.as_str());
                }
                Rule::interp => {
                    if let Some(e) = kids(k).next() {
                        if !lit.is_empty() {
                            parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                        }
                        let e = self.expr(e, depth + 1);
                        parts.push(StrPart::Interp(e));
                    }
                }
                _ => {}
            }
        }
        if !lit.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        StrLit { parts }
    }

    fn bad_escape(&mut self, span: Span, text: &str) {
        self.diags.push(
            Diagnostic::error(Code::E0012, format!("invalid escape `{text}`"))
                .with_label(span, "not a known escape")
                .with_help("the escapes are `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{...}` (a Unicode scalar value in hex); write `$${` for a literal `${`"),
        );
    }
}

/// Decodes an escape accepted by the grammar; `None` for `\u{...}` that is not a character.
fn decode_escape(s: &str) -> Option<char> {
    match s {
        "\\\"" => Some('"'),
        "\\\\" => Some('\\'),
        "\\n" => Some('\n'),
        "\\t" => Some('\t'),
        _ => {
            let hex = s.strip_prefix("\\u{")?.strip_suffix('}')?;
            char::from_u32(u32::from_str_radix(hex, 16).ok()?)
        }
    }
}

/// Whether `s` is a valid name: `[a-z_][a-z0-9_]*`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Section 3 of the language spec.
    pub(crate) const SPEC_DECLS: &str = r#"resource_group ml_prod {
  subscription = sub.prod                # alias from mlpolicy.yaml
  name         = "rg-ml-prod"
  location     = "westeurope"
}

identity trainer {                       # user-assigned managed identity
  resource_group = resource_group.ml_prod
  name           = "id-fraud-training"   # location defaults to the group's
  federated github_prod {                # federated identity credential
    issuer    = "https://token.actions.githubusercontent.com"
    subject   = "repo:contoso/fraud-model:environment:prod"
    audiences = ["api://AzureADTokenExchange"]   # the default
  }
}

workspace fraud {                        # Azure Machine Learning workspace
  resource_group       = resource_group.ml_prod
  name                 = "mlw-fraud-prod"
  identity             = identity.trainer    # or `system` (the default)
  storage_account      = "/subscriptions/.../storageAccounts/stfraud"
  key_vault            = "/subscriptions/.../vaults/kv-fraud"
  application_insights = "/subscriptions/.../components/appi-fraud"
  container_registry   = "/subscriptions/.../registries/crfraud"   # optional
  public_network_access = false
  tags = { team = "fraud", env = var.env }
}

group fraud_ds {                         # Entra ID security group
  name        = "ml-fraud-data-scientists"
  description = "Data scientists of the fraud team"
  members     = [user("alice@contoso.com"), user("bob@contoso.com"),
                 group.fraud_leads, identity.trainer]
  owners      = [user("lead@contoso.com")]
}

grant "AzureML Data Scientist" to group.fraud_ds on workspace.fraud
grant "AzureML Compute Operator" to identity.trainer on workspace.fraud
grant "Storage Blob Data Reader" to workspace.fraud.identity on workspace.fraud.storage_account
"#;

    /// Section 5 of the language spec.
    pub(crate) const SPEC_FOR: &str = r#"let teams = ["fraud", "risk", "pricing"]
for team in teams {
  group ds {
    name    = "ml-${team}-data-scientists"
    members = [user(var.members[team])]
  }
  grant "AzureML Data Scientist" to group.ds[team] on workspace.shared
}
"#;

    /// Section 6 of the language spec.
    pub(crate) const SPEC_POLICIES: &str = r#"policy no_standing_admin {
  deny grant when role in ["Owner", "User Access Administrator"]
  message = "Broad roles are activated through PIM, never granted standing"
}
policy groups_not_people {
  warn grant when principal.kind == "user"
  message = "Grant to groups, so that membership changes propagate"
}
policy no_pr_tokens_in_prod {
  deny federated when subject matches "*:pull_request" and var.env == "prod"
}
"#;

    /// Everything else the grammar accepts, in one file.
    pub(crate) const KITCHEN_SINK: &str = r#"# leading comment of the file

let x = 1   # trailing
let m = {
  "quoted key" = "a\"b\\c\n\t\u{e9}"
  plain = [1, 2,]  # after plain
}
for k, v in var.teams {
  for inner in v.list {
    identity id {
      name = "${k}-${inner}-$${literal}"
      allow no_pr_tokens_in_prod because "the ${"nested"} reason"
    }
  }
}
grant "Reader" to existing_group("Ops") on scope("/subscriptions/x") {
  description = "why"
  condition   = "true"
}
grant "Reader" to service_principal(["a", "b"]) on sub.prod {}
policy p {
  # about the rule
  deny group when not (count(members) > 10 or name !in ["a"]) and not not true
  warn workspace when tags.env != "prod" and public_network_access == true
  message = "m"
}
"#;

    pub(crate) fn all_examples() -> Vec<&'static str> {
        vec![SPEC_DECLS, SPEC_FOR, SPEC_POLICIES, KITCHEN_SINK]
    }

    fn ok(text: &str) -> File {
        let (f, d) = parse(FileId(0), text);
        assert!(d.is_empty(), "{text}\n{d:#?}");
        f
    }

    fn errs(text: &str) -> Vec<(Code, String, String)> {
        let (_, d) = parse(FileId(0), text);
        d.items
            .iter()
            .map(|d| {
                let s = d.span().unwrap();
                (d.code, d.message.clone(), text[s.range()].to_owned())
            })
            .collect()
    }

    fn one_err(text: &str) -> (Code, String, String) {
        let mut e = errs(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        let (_, d) = parse(FileId(0), text);
        assert!(d.items[0].help.is_some());
        e.remove(0)
    }

    fn decl(item: &Item) -> &Decl {
        match item {
            Item::Decl(d) => d,
            other => panic!("not a declaration: {other:?}"),
        }
    }

    fn attr<'a>(d: &'a Decl, name: &str) -> &'a Expr {
        d.body
            .iter()
            .find_map(|b| match b {
                BodyItem::Attr(a) if a.name.node == name => Some(&a.value),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no attribute {name}"))
    }

    fn path_text(e: &Expr) -> String {
        let ExprKind::Path(p) = &e.kind else { panic!("not a path: {e:?}") };
        let mut s = p.root.node.clone();
        for seg in &p.segments {
            match seg {
                Segment::Field(f) => s = format!("{s}.{}", f.node),
                Segment::Index(i) => s = format!("{s}[{}]", path_text(i)),
            }
        }
        s
    }

    #[test]
    fn spec_declarations_parse() {
        let f = ok(SPEC_DECLS);
        assert_eq!(f.items.len(), 7);
        let rg = decl(&f.items[0]);
        assert_eq!((rg.kind.node.as_str(), rg.name.node.as_str()), ("resource_group", "ml_prod"));
        assert_eq!(path_text(attr(rg, "subscription")), "sub.prod");
        let id = decl(&f.items[1]);
        let BodyItem::Block(fed) = &id.body[2] else { panic!("{:?}", id.body[2]) };
        assert_eq!(fed.kind.node, "federated");
        assert!(matches!(&attr(fed, "audiences").kind, ExprKind::List(l) if l.len() == 1));
        let ws = decl(&f.items[2]);
        assert_eq!(attr(ws, "public_network_access").kind, ExprKind::Bool(false));
        let ExprKind::Map(tags) = &attr(ws, "tags").kind else { panic!() };
        assert_eq!(tags[0].0.node, "team");
        assert_eq!(path_text(&tags[1].1), "var.env");
        let g = decl(&f.items[3]);
        let ExprKind::List(members) = &attr(g, "members").kind else { panic!() };
        assert_eq!(members.len(), 4);
        assert!(matches!(&members[0].kind, ExprKind::Call { name, args } if name.node == "user" && args.len() == 1));
        let Item::Grant(gr) = &f.items[6] else { panic!() };
        assert_eq!(path_text(&gr.principal), "workspace.fraud.identity");
        assert_eq!(path_text(&gr.scope), "workspace.fraud.storage_account");
        assert!(gr.body.is_none());
        assert_eq!(f.comments.len(), 9);
        assert_eq!(f.comments[0].node, "# alias from mlpolicy.yaml");
    }

    #[test]
    fn spec_repetition_parses() {
        let f = ok(SPEC_FOR);
        let Item::Let(l) = &f.items[0] else { panic!() };
        assert_eq!(l.name.node, "teams");
        let Item::For(fo) = &f.items[1] else { panic!() };
        assert_eq!((fo.key.node.as_str(), fo.value.is_none()), ("team", true));
        let ds = decl(&fo.items[0]);
        let ExprKind::Str(s) = &attr(ds, "name").kind else { panic!() };
        assert_eq!(s.parts.len(), 3);
        assert!(matches!(&s.parts[1], StrPart::Interp(e) if path_text(e) == "team"));
        let Item::Grant(g) = &fo.items[1] else { panic!() };
        assert_eq!(path_text(&g.principal), "group.ds[team]");
    }

    #[test]
    fn spec_policies_parse() {
        let f = ok(SPEC_POLICIES);
        assert_eq!(f.items.len(), 3);
        let Item::Policy(p) = &f.items[0] else { panic!() };
        assert_eq!(p.rules[0].effect.node, Effect::Deny);
        assert_eq!(p.rules[0].subject.node, "grant");
        assert!(matches!(&p.rules[0].condition.kind, ExprKind::Binary { op, .. } if op.node == BinaryOp::In));
        assert_eq!(p.attrs[0].name.node, "message");
        let Item::Policy(p) = &f.items[2] else { panic!() };
        let ExprKind::Binary { op, lhs, rhs } = &p.rules[0].condition.kind else { panic!() };
        assert_eq!(op.node, BinaryOp::And);
        assert!(matches!(&lhs.kind, ExprKind::Binary { op, .. } if op.node == BinaryOp::Matches));
        assert!(matches!(&rhs.kind, ExprKind::Binary { op, .. } if op.node == BinaryOp::Eq));
    }

    #[test]
    fn kitchen_sink_parses() {
        let file = ok(KITCHEN_SINK);
        let Item::Let(map) = &file.items[1] else { panic!() };
        let ExprKind::Map(entries) = &map.value.kind else { panic!() };
        assert_eq!(entries[0].0.node, "quoted key");
        let ExprKind::Str(s) = &entries[0].1.kind else { panic!() };
        assert_eq!(s.as_plain().unwrap(), "a\"b\\c\n\t\u{e9}");
        let Item::For(fo) = &file.items[2] else { panic!() };
        assert_eq!(fo.value.as_ref().unwrap().node, "v");
        let Item::For(inner) = &fo.items[0] else { panic!() };
        let id = decl(&inner.items[0]);
        let ExprKind::Str(s) = &attr(id, "name").kind else { panic!() };
        assert_eq!(s.parts.last(), Some(&StrPart::Lit("-${literal}".to_owned())));
        assert!(matches!(&id.body[1], BodyItem::Allow(a) if a.policy.node == "no_pr_tokens_in_prod"));
        let Item::Grant(g) = &file.items[4] else { panic!() };
        assert_eq!(g.body, Some(vec![]));
        let Item::Policy(policy) = &file.items[5] else { panic!() };
        let ExprKind::Binary { op, lhs, rhs } = &policy.rules[0].condition.kind else { panic!() };
        assert_eq!(op.node, BinaryOp::And);
        assert!(matches!(&lhs.kind, ExprKind::Unary { operand, .. } if matches!(operand.kind, ExprKind::Paren(_))));
        assert!(matches!(&rhs.kind, ExprKind::Unary { operand, .. } if matches!(operand.kind, ExprKind::Unary { .. })));
    }

    #[test]
    fn not_binds_looser_than_comparison() {
        let f = ok("policy p {\n  deny grant when not a == b\n}\n");
        let Item::Policy(p) = &f.items[0] else { panic!() };
        let ExprKind::Unary { operand, .. } = &p.rules[0].condition.kind else { panic!() };
        assert!(matches!(operand.kind, ExprKind::Binary { .. }));
    }

    #[test]
    fn misspelt_kind_still_parses() {
        let f = ok("workspase x {}\n");
        assert_eq!(decl(&f.items[0]).kind.node, "workspase");
    }

    #[test]
    fn unexpected_token_says_what_was_expected() {
        let (code, msg, under) = one_err("group x {\n  name \"a\"\n}\n");
        assert_eq!(code, Code::E0010);
        assert_eq!(msg, "expected a name or `=`, found a string");
        assert!(msg.ends_with("found a string"), "{msg}");
        assert_eq!(under, "\"");
    }

    /// The grammar keeps only `expr` and `comparison` as pairs; a missing operand after an
    /// operator must still read as one expected "expression", not as every token that starts one.
    #[test]
    fn missing_operand_is_an_expression() {
        for (text, found) in [
            ("let x = not\n", "end of file"),
            ("let x = not not\n", "end of file"),
            ("let x = a and\n", "end of file"),
            ("let x = a or\n", "end of file"),
            ("let x = (a or)\n", "`)`"),
            ("let x = [a, not]\n", "`]`"),
        ] {
            let (code, msg, _) = one_err(text);
            assert_eq!((code, msg), (Code::E0010, format!("expected an expression, found {found}")), "{text}");
        }
    }

    #[test]
    fn comparisons_do_not_chain() {
        let (code, msg, under) = one_err("let x = a == b == c\n");
        assert_eq!(code, Code::E0010);
        assert_eq!(under, "=", "{msg}");
    }

    #[test]
    fn two_attributes_on_one_line_are_an_error() {
        let (code, _, under) = one_err("group x { a = 1 b = 2 }\n");
        assert_eq!((code, under.as_str()), (Code::E0010, "b = 2"));
    }

    #[test]
    fn two_broken_declarations_give_two_diagnostics() {
        let e = errs("group a {\n  x =\n}\n\nlet ok = 1\n\ngroup b {\n  y = = 2\n}\n");
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e.iter().all(|e| e.0 == Code::E0010));
        let (f, _) = parse(FileId(0), "group a {\n  x =\n}\nlet ok = 1\ngroup b {\n  y = = 2\n}\nlet z = 2\n");
        assert_eq!(f.items.len(), 2);
    }

    #[test]
    fn unterminated_string() {
        let (code, msg, under) = one_err("let x = \"abc\nlet y = 1\n");
        assert_eq!((code, msg.as_str(), under.as_str()), (Code::E0011, "unterminated string", "\"abc"));
        let (f, _) = parse(FileId(0), "let x = \"abc\nlet y = 1\n");
        assert_eq!(f.items.len(), 1);
    }

    #[test]
    fn unclosed_interpolation() {
        let e = errs("let x = \"${a\"\nlet y = 1\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].0, Code::E0011);
        ok("let x = \"$ and $$ and $${\"\n");
    }

    #[test]
    fn invalid_escape() {
        let (code, msg, under) = one_err("let x = \"a\\qb\"\n");
        assert_eq!((code, msg.as_str(), under.as_str()), (Code::E0012, "invalid escape `\\q`", "\\q"));
        let (code, _, under) = one_err("let x = \"\\u{d800}\"\n");
        assert_eq!((code, under.as_str()), (Code::E0012, "\\u{d800}"));
    }

    #[test]
    fn deep_nesting_is_refused_without_crashing() {
        for open in ["[", "(", "{", "\"${"] {
            let text = format!("let x = {}", open.repeat(10_000));
            let (code, msg, _) = one_err(&text);
            assert_eq!(code, Code::E0013, "{msg}");
        }
        let nots = format!("let x = {}true\n", "not ".repeat(10_000));
        assert_eq!(one_err(&nots).0, Code::E0013);
        let ors = format!("let x = a{}\n", " or a".repeat(10_000));
        assert_eq!(one_err(&ors).0, Code::E0013);
        let ok_depth = format!("let x = {}1{}\n", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        ok(&ok_depth);
    }

    #[test]
    fn keyword_as_name() {
        let (code, msg, under) = one_err("let for = 1\n");
        assert_eq!((code, under.as_str()), (Code::E0014, "for"));
        assert!(msg.contains("keyword"), "{msg}");
        assert_eq!(one_err("group when {}\n").0, Code::E0014);
    }

    #[test]
    fn invalid_name_suggests_lower_case() {
        let (_, d) = parse(FileId(0), "resource_group ML-Prod {}\n");
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].code, Code::E0015);
        assert!(d.items[0].help.as_deref().unwrap().contains("did you mean `ml_prod`"));
        assert_eq!(one_err("let x = Var.env\n").2, "Var");
    }

    #[test]
    fn integer_out_of_range() {
        let (code, _, under) = one_err("let x = 99999999999999999999\n");
        assert_eq!((code, under.as_str()), (Code::E0016, "99999999999999999999"));
    }

    #[test]
    fn interpolated_map_key() {
        assert_eq!(one_err("let x = { \"${a}\" = 1 }\n").0, Code::E0017);
    }

    #[test]
    fn map_entries_need_a_separator_on_one_line() {
        assert_eq!(one_err("let x = { a = 1 b = 2 }\n").0, Code::E0010);
        ok("let x = {\n  a = 1\n  b = 2\n}\n");
    }

    #[test]
    fn comments_inside_strings_are_text() {
        let f = ok("let x = \"# not a comment\" # a comment\n");
        assert_eq!(f.comments.len(), 1);
        assert_eq!(f.comments[0].node, "# a comment");
    }

    /// Valid files with random characters deleted or inserted.
    pub(crate) fn mutations() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let sources = prop::sample::select(all_examples());
        (
            sources,
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<bool>(),
                    prop::sample::select(vec![
                        '{', '}', '[', ']', '(', ')', '"', '\\', '$', '#', '\n', ' ', '=', ',', '.', 'a', 'Z', '-',
                        '1', 'é',
                    ]),
                ),
                1..4,
            ),
        )
            .prop_map(|(src, edits)| {
                let mut chars: Vec<char> = src.chars().collect();
                for (at, insert, ch) in edits {
                    let pos = at.index(chars.len() + 1);
                    if insert {
                        chars.insert(pos, ch);
                    } else if pos < chars.len() {
                        chars.remove(pos);
                    }
                }
                chars.into_iter().collect()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn random_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse(FileId(0), &s);
        }

        #[test]
        fn random_grammar_soup_never_panics(s in "[a-z \\n{}\\[\\]()\"=,.#$\\\\]{0,120}") {
            let _ = parse(FileId(0), &s);
        }

        #[test]
        fn mutated_files_never_panic(s in mutations()) {
            let (f, d) = parse(FileId(0), &s);
            if d.is_empty() {
                proptest::prop_assert!(!f.items.is_empty() || s.trim().is_empty() || s.trim_start().starts_with('#'));
            }
        }
    }
}
