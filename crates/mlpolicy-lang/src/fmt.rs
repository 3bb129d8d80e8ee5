//! `mlpolicy fmt`: the canonical layout of a parsed file, printed from the [`ast`] with the
//! file's comments put back by position.
//!
//! Layout: two-space indent; a blank line around every multi-line top-level item (single-line
//! `let` and `grant` keep the author's choice); inside bodies a blank line is kept where the
//! author had one (runs collapse to one); the `=` of consecutive attributes is aligned; lists
//! and maps stay on one line when they fit in [`MAX_WIDTH`] columns and hold no comment, else
//! one element per line with a trailing comma.
//!
//! Comments: a comment on its own line stays above the item, attribute or element that follows
//! it; a comment after code on the same line stays at the end of that line. A comment written
//! inside an expression that is printed on one line moves to its own line just above it. No
//! comment is ever dropped, and the output is a fixed point: formatting it again changes nothing.

use crate::ast::{Attr, BodyItem, Decl, Expr, ExprKind, File, Item, Path, Segment, Spanned, StrLit, StrPart};
use crate::source::Span;
use crate::syntax::{KEYWORDS, is_identifier};

/// Lists and maps are kept on one line when they end at or before this column.
pub const MAX_WIDTH: usize = 100;

/// Formats a file that parsed without errors. `text` is the source it was parsed from (the
/// spans in `file` point into it); it is read for comments and blank lines only.
pub fn format(file: &File, text: &str) -> String {
    let mut p = Printer {
        text,
        comments: &file.comments,
        used: vec![false; file.comments.len()],
        last_end: 0,
        fresh: true,
        force_blank: false,
        in_list: 0,
    };
    let mut out = String::new();
    p.items(&mut out, &file.items, 0);
    p.leading(&mut out, text.len(), 0);
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Where a block is and where its header ends (its `{` follows).
#[derive(Clone, Copy)]
struct Block {
    span: Span,
    header_end: usize,
    empty: bool,
}

struct Printer<'a> {
    text: &'a str,
    comments: &'a [Spanned<String>],
    used: Vec<bool>,
    /// Source offset of the last thing printed, to see whether the author left a blank line.
    last_end: usize,
    /// Nothing printed yet in the current block (no blank line may follow `{`).
    fresh: bool,
    /// The next line must be preceded by a blank line.
    force_blank: bool,
    /// Inside a broken list or map, where blank lines are not kept.
    in_list: usize,
}

fn pad(indent: usize) -> String {
    "  ".repeat(indent)
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// The column after appending `s` at column `col`.
fn col_after(col: usize, s: &str) -> usize {
    match s.rfind('\n') {
        Some(i) => width(&s[i + 1..]),
        None => col + width(s),
    }
}

fn start(s: Span) -> usize {
    s.start as usize
}

fn end(s: Span) -> usize {
    s.end as usize
}

fn is_block(item: &Item) -> bool {
    match item {
        Item::Let(_) => false,
        Item::Grant(g) => g.body.is_some(),
        Item::Decl(_) | Item::For(_) | Item::Policy(_) | Item::Moved(_) => true,
    }
}

impl Printer<'_> {
    fn slice(&self, a: usize, b: usize) -> &str {
        let b = b.min(self.text.len());
        self.text.get(a.min(b)..b).unwrap_or("")
    }

    fn blank_between(&self, a: usize, b: usize) -> bool {
        a <= b && self.slice(a, b).matches('\n').count() >= 2
    }

    fn maybe_blank(&mut self, out: &mut String, pos: usize) {
        if self.in_list > 0 {
            return;
        }
        let blank = self.force_blank || (!self.fresh && self.blank_between(self.last_end, pos));
        self.force_blank = false;
        if blank && !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
    }

    /// Prints every unprinted comment that starts before `pos`, each on its own line.
    fn leading(&mut self, out: &mut String, pos: usize, indent: usize) {
        for i in 0..self.comments.len() {
            let c = &self.comments[i];
            if self.used[i] || start(c.span) >= pos {
                continue;
            }
            self.maybe_blank(out, start(c.span));
            out.push_str(&pad(indent));
            out.push_str(&c.node);
            out.push('\n');
            self.used[i] = true;
            self.last_end = end(c.span);
            self.fresh = false;
        }
        self.maybe_blank(out, pos);
    }

    /// Prints, without blank-line logic, the unprinted comments that start before `pos`.
    fn hoist(&mut self, out: &mut String, pos: usize, indent: usize) {
        for i in 0..self.comments.len() {
            if !self.used[i] && start(self.comments[i].span) < pos {
                out.push_str(&pad(indent));
                out.push_str(&self.comments[i].node);
                out.push('\n');
                self.used[i] = true;
            }
        }
    }

    /// The comment that ends the line of code ending at `pos`, if any, marked printed.
    fn trailing(&mut self, pos: usize) -> Option<String> {
        let i = (0..self.comments.len()).find(|&i| !self.used[i] && start(self.comments[i].span) >= pos)?;
        let c = &self.comments[i];
        if !self.slice(pos, start(c.span)).chars().all(|ch| ch == ' ' || ch == '\t' || ch == ',') {
            return None;
        }
        self.used[i] = true;
        self.last_end = end(c.span);
        Some(c.node.clone())
    }

    fn has_comment_in(&self, span: Span) -> bool {
        self.comments.iter().any(|c| (start(span)..end(span)).contains(&start(c.span)))
    }

    /// Ends a line of code that ends at source offset `pos`, with its trailing comment.
    fn end_line(&mut self, out: &mut String, pos: usize) {
        self.last_end = pos;
        if let Some(c) = self.trailing(pos) {
            out.push_str("  ");
            out.push_str(&c);
        }
        out.push('\n');
        self.fresh = false;
    }

    /// One line-level node (attribute, `let`, rule, list element...): leading comments, the
    /// rendered node, comments from inside it that had no place, then its trailing comment.
    fn line(
        &mut self,
        out: &mut String,
        indent: usize,
        span: Span,
        suffix: &str,
        render: impl FnOnce(&mut Self, &mut String, usize),
    ) {
        self.leading(out, start(span), indent);
        let mut buf = String::new();
        render(self, &mut buf, indent * 2);
        self.hoist(out, end(span), indent);
        out.push_str(&pad(indent));
        out.push_str(&buf);
        out.push_str(suffix);
        self.end_line(out, end(span));
    }

    /// Offset of the `{` that opens a block whose header ends at `from`.
    fn brace_after(&self, from: usize) -> usize {
        let bytes = self.text.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => return i,
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        }
        from
    }

    /// A block: `header {`, the body, `}`; `header {}` when empty.
    fn block(
        &mut self,
        out: &mut String,
        indent: usize,
        shape: Block,
        header: impl FnOnce(&mut Self, &mut String, usize),
        body: impl FnOnce(&mut Self, &mut String, usize),
    ) {
        let Block { span, header_end, empty } = shape;
        self.leading(out, start(span), indent);
        let mut buf = String::new();
        header(self, &mut buf, indent * 2);
        let brace = self.brace_after(header_end);
        self.hoist(out, brace, indent);
        out.push_str(&pad(indent));
        out.push_str(&buf);
        let close = end(span).saturating_sub(1);
        if empty && !self.has_comment_in(Span::new(span.file, brace, close)) {
            out.push_str(" {}");
            self.end_line(out, end(span));
            return;
        }
        out.push_str(" {");
        self.end_line(out, brace + 1);
        self.fresh = true;
        body(self, out, indent + 1);
        self.fresh = true;
        self.leading(out, close, indent + 1);
        out.push_str(&pad(indent));
        out.push('}');
        self.end_line(out, end(span));
    }

    fn items(&mut self, out: &mut String, items: &[Item], indent: usize) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 && (is_block(item) || is_block(&items[i - 1])) {
                self.force_blank = true;
            }
            self.item(out, item, indent);
        }
    }

    fn item(&mut self, out: &mut String, item: &Item, indent: usize) {
        match item {
            Item::Let(l) => self.line(out, indent, l.span, "", |p, buf, col| {
                let head = format!("let {} = ", l.name.node);
                buf.push_str(&head);
                p.expr(buf, &l.value, indent, col + width(&head));
            }),
            Item::Grant(g) => {
                let header = |p: &mut Self, buf: &mut String, col: usize| {
                    buf.push_str("grant ");
                    p.expr(buf, &g.role, indent, col + 6);
                    buf.push_str(" to ");
                    let c = col_after(col, buf);
                    p.expr(buf, &g.principal, indent, c);
                    buf.push_str(" on ");
                    let c = col_after(col, buf);
                    p.expr(buf, &g.scope, indent, c);
                };
                match &g.body {
                    None => self.line(out, indent, g.span, "", header),
                    Some(body) => {
                        let shape = Block { span: g.span, header_end: end(g.scope.span), empty: body.is_empty() };
                        self.block(out, indent, shape, header, |p, o, i| {
                            p.body(o, body, i);
                        });
                    }
                }
            }
            Item::Decl(d) => self.decl(out, d, indent),
            Item::Moved(m) => self.moved(out, m, indent),
            Item::For(f) => {
                let shape = Block { span: f.span, header_end: end(f.iterable.span), empty: f.items.is_empty() };
                self.block(
                    out,
                    indent,
                    shape,
                    |p, buf, col| {
                        buf.push_str("for ");
                        buf.push_str(&f.key.node);
                        if let Some(v) = &f.value {
                            buf.push_str(", ");
                            buf.push_str(&v.node);
                        }
                        buf.push_str(" in ");
                        let c = col_after(col, buf);
                        p.expr(buf, &f.iterable, indent, c);
                    },
                    |p, o, i| p.items(o, &f.items, i),
                );
            }
            Item::Policy(pol) => {
                let header = format!("policy {}", pol.name.node);
                let empty = pol.rules.is_empty() && pol.attrs.is_empty();
                let shape = Block { span: pol.span, header_end: end(pol.name.span), empty };
                self.block(
                    out,
                    indent,
                    shape,
                    |_, b, _| b.push_str(&header),
                    |p, o, i| {
                        enum Line<'x> {
                            Rule(&'x crate::ast::Rule),
                            Attr(&'x Attr),
                        }
                        let mut lines: Vec<(usize, Line<'_>)> =
                            pol.rules.iter().map(|r| (start(r.span), Line::Rule(r))).collect();
                        lines.extend(pol.attrs.iter().map(|a| (start(a.span), Line::Attr(a))));
                        lines.sort_by_key(|l| l.0);
                        let attrs: Vec<Option<&Attr>> = lines
                            .iter()
                            .map(|l| match l.1 {
                                Line::Attr(a) => Some(a),
                                Line::Rule(_) => None,
                            })
                            .collect();
                        let widths = p.align(&attrs);
                        for (k, (_, line)) in lines.iter().enumerate() {
                            match line {
                                Line::Attr(a) => p.attr(o, a, i, widths[k]),
                                Line::Rule(r) => p.line(o, i, r.span, "", |p, buf, col| {
                                    let effect = match r.effect.node {
                                        crate::ast::Effect::Deny => "deny",
                                        crate::ast::Effect::Warn => "warn",
                                    };
                                    let head = format!("{effect} {} when ", r.subject.node);
                                    buf.push_str(&head);
                                    p.expr(buf, &r.condition, i, col + width(&head));
                                }),
                            }
                        }
                    },
                );
            }
        }
    }

    /// `moved {`, then `from` and `to` on their own lines with `=` aligned, then `}`.
    fn moved(&mut self, out: &mut String, m: &crate::ast::Moved, indent: usize) {
        let shape = Block { span: m.span, header_end: start(m.span) + "moved".len(), empty: false };
        self.block(
            out,
            indent,
            shape,
            |_, b, _| b.push_str("moved"),
            |p, o, i| {
                for (head, span, value) in [("from = ", m.from_span, &m.from), ("to   = ", m.to_span, &m.to)] {
                    p.line(o, i, span, "", |p, buf, col| {
                        buf.push_str(head);
                        p.expr(buf, value, i, col + head.len());
                    });
                }
            },
        );
    }

    fn decl(&mut self, out: &mut String, d: &Decl, indent: usize) {
        let header = format!("{} {}", d.kind.node, d.name.node);
        let shape = Block { span: d.span, header_end: end(d.name.span), empty: d.body.is_empty() };
        self.block(
            out,
            indent,
            shape,
            |_, b, _| b.push_str(&header),
            |p, o, i| {
                p.body(o, &d.body, i);
            },
        );
    }

    /// The padded name width of each attribute: consecutive attributes not separated by a
    /// blank line or by another kind of line share the widest name.
    fn align(&self, attrs: &[Option<&Attr>]) -> Vec<usize> {
        let mut widths = vec![0; attrs.len()];
        let mut i = 0;
        while i < attrs.len() {
            let Some(first) = attrs[i] else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            let mut prev_end = end(first.span);
            while let Some(Some(a)) = attrs.get(j) {
                if self.blank_between(prev_end, start(a.span)) {
                    break;
                }
                prev_end = end(a.span);
                j += 1;
            }
            let w = attrs[i..j].iter().flatten().map(|a| width(&a.name.node)).max().unwrap_or(0);
            widths[i..j].iter_mut().for_each(|x| *x = w);
            i = j;
        }
        widths
    }

    fn body(&mut self, out: &mut String, body: &[BodyItem], indent: usize) {
        let attrs: Vec<Option<&Attr>> = body
            .iter()
            .map(|b| match b {
                BodyItem::Attr(a) => Some(a),
                _ => None,
            })
            .collect();
        let widths = self.align(&attrs);
        for (k, item) in body.iter().enumerate() {
            match item {
                BodyItem::Attr(a) => self.attr(out, a, indent, widths[k]),
                BodyItem::Block(d) => self.decl(out, d, indent),
                BodyItem::Allow(a) => self.line(out, indent, a.span, "", |p, buf, col| {
                    let head = format!("allow {} because ", a.policy.node);
                    buf.push_str(&head);
                    p.str_lit(buf, &a.reason.node, indent, col + width(&head));
                }),
            }
        }
    }

    fn attr(&mut self, out: &mut String, a: &Attr, indent: usize, name_width: usize) {
        self.line(out, indent, a.span, "", |p, buf, col| {
            let head = format!("{:<name_width$} = ", a.name.node);
            buf.push_str(&head);
            p.expr(buf, &a.value, indent, col + width(&head));
        });
    }

    // -----------------------------------------------------------------------------------------
    // Expressions

    /// The one-line form, or `None` when some list or map inside holds a comment.
    fn flat(&self, e: &Expr) -> Option<String> {
        Some(match &e.kind {
            ExprKind::Str(s) => self.flat_str(s)?,
            ExprKind::Int(n) => n.to_string(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::List(items) => {
                if self.has_comment_in(e.span) {
                    return None;
                }
                let items: Option<Vec<String>> = items.iter().map(|i| self.flat(i)).collect();
                format!("[{}]", items?.join(", "))
            }
            ExprKind::Map(entries) => {
                if self.has_comment_in(e.span) {
                    return None;
                }
                if entries.is_empty() {
                    return Some("{}".to_owned());
                }
                let entries: Option<Vec<String>> =
                    entries.iter().map(|(k, v)| Some(format!("{} = {}", map_key(&k.node), self.flat(v)?))).collect();
                format!("{{ {} }}", entries?.join(", "))
            }
            ExprKind::Path(path) => self.flat_path(path)?,
            ExprKind::Call { name, args } => {
                let args: Option<Vec<String>> = args.iter().map(|a| self.flat(a)).collect();
                format!("{}({})", name.node, args?.join(", "))
            }
            ExprKind::Unary { operand, .. } => format!("not {}", self.flat(operand)?),
            ExprKind::Binary { op, lhs, rhs } => {
                format!("{} {} {}", self.flat(lhs)?, op.node.symbol(), self.flat(rhs)?)
            }
            ExprKind::Paren(inner) => format!("({})", self.flat(inner)?),
        })
    }

    fn flat_path(&self, path: &Path) -> Option<String> {
        let mut s = path.root.node.clone();
        for seg in &path.segments {
            match seg {
                Segment::Field(f) => {
                    s.push('.');
                    s.push_str(&f.node);
                }
                Segment::Index(i) => {
                    s.push('[');
                    s.push_str(&self.flat(i)?);
                    s.push(']');
                }
            }
        }
        Some(s)
    }

    fn flat_str(&self, s: &StrLit) -> Option<String> {
        let mut out = String::from('"');
        for (i, part) in s.parts.iter().enumerate() {
            match part {
                StrPart::Lit(t) => {
                    let before_interp = matches!(s.parts.get(i + 1), Some(StrPart::Interp(_)));
                    escape_into(&mut out, t, before_interp);
                }
                StrPart::Interp(e) => {
                    out.push_str("${");
                    out.push_str(&self.flat(e)?);
                    out.push('}');
                }
            }
        }
        out.push('"');
        Some(out)
    }

    /// Appends `e` starting at column `col`; lists and maps that do not fit (or hold comments)
    /// are broken one element per line at `indent + 1`.
    fn expr(&mut self, out: &mut String, e: &Expr, indent: usize, col: usize) {
        if let Some(f) = self.flat(e)
            && col + width(&f) <= MAX_WIDTH
        {
            out.push_str(&f);
            return;
        }
        let base = out.len();
        let here = |out: &String| col_after(col, &out[base..]);
        match &e.kind {
            ExprKind::List(items) => {
                out.push_str("[\n");
                self.in_list += 1;
                for item in items {
                    self.line(out, indent + 1, item.span, ",", |p, buf, c| p.expr(buf, item, indent + 1, c));
                }
                self.leading(out, end(e.span).saturating_sub(1), indent + 1);
                self.in_list -= 1;
                out.push_str(&pad(indent));
                out.push(']');
            }
            ExprKind::Map(entries) => {
                out.push_str("{\n");
                self.in_list += 1;
                let w = entries.iter().map(|(k, _)| width(&map_key(&k.node))).max().unwrap_or(0);
                for (k, v) in entries {
                    let span = k.span.to(v.span);
                    self.line(out, indent + 1, span, ",", |p, buf, c| {
                        let head = format!("{:<w$} = ", map_key(&k.node));
                        buf.push_str(&head);
                        p.expr(buf, v, indent + 1, c + width(&head));
                    });
                }
                self.leading(out, end(e.span).saturating_sub(1), indent + 1);
                self.in_list -= 1;
                out.push_str(&pad(indent));
                out.push('}');
            }
            ExprKind::Str(s) => self.str_lit(out, s, indent, col),
            ExprKind::Int(_) | ExprKind::Bool(_) => out.push_str(&self.flat(e).unwrap_or_default()),
            ExprKind::Path(path) => {
                out.push_str(&path.root.node);
                for seg in &path.segments {
                    match seg {
                        Segment::Field(f) => {
                            out.push('.');
                            out.push_str(&f.node);
                        }
                        Segment::Index(i) => {
                            out.push('[');
                            let c = here(out);
                            self.expr(out, i, indent, c);
                            out.push(']');
                        }
                    }
                }
            }
            ExprKind::Call { name, args } => {
                out.push_str(&name.node);
                out.push('(');
                for (k, a) in args.iter().enumerate() {
                    if k > 0 {
                        out.push_str(", ");
                    }
                    let c = here(out);
                    self.expr(out, a, indent, c);
                }
                out.push(')');
            }
            ExprKind::Unary { operand, .. } => {
                out.push_str("not ");
                let c = here(out);
                self.expr(out, operand, indent, c);
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.expr(out, lhs, indent, col);
                out.push(' ');
                out.push_str(op.node.symbol());
                out.push(' ');
                let c = here(out);
                self.expr(out, rhs, indent, c);
            }
            ExprKind::Paren(inner) => {
                out.push('(');
                let c = here(out);
                self.expr(out, inner, indent, c);
                out.push(')');
            }
        }
    }

    fn str_lit(&mut self, out: &mut String, s: &StrLit, indent: usize, col: usize) {
        let base = out.len();
        out.push('"');
        for (i, part) in s.parts.iter().enumerate() {
            match part {
                StrPart::Lit(t) => {
                    let before_interp = matches!(s.parts.get(i + 1), Some(StrPart::Interp(_)));
                    escape_into(out, t, before_interp);
                }
                StrPart::Interp(e) => {
                    out.push_str("${");
                    let c = col_after(col, &out[base..]);
                    self.expr(out, e, indent, c);
                    out.push('}');
                }
            }
        }
        out.push('"');
    }
}

/// A map key as written: bare when it is a name, quoted otherwise.
fn map_key(k: &str) -> String {
    if is_identifier(k) && !KEYWORDS.contains(&k) {
        k.to_owned()
    } else {
        let mut s = String::from('"');
        escape_into(&mut s, k, false);
        s.push('"');
        s
    }
}

/// Appends literal string text with the canonical escapes.
pub fn escape_into(out: &mut String, text: &str, before_interp: bool) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("$$"),
            '$' if chars.peek().is_none() && before_interp => out.push_str("\\u{24}"),
            c if c.is_control() => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;
    use crate::syntax::parse;
    use crate::syntax::tests::{all_examples, mutations};

    fn fmt(text: &str) -> String {
        let (f, d) = parse(FileId(0), text);
        assert!(d.is_empty(), "{text}\n{d:#?}");
        format(&f, text)
    }

    fn comment_texts(text: &str) -> Vec<String> {
        let (f, _) = parse(FileId(0), text);
        let mut c: Vec<String> = f.comments.into_iter().map(|c| c.node).collect();
        c.sort();
        c
    }

    /// Idempotence, comment preservation and an unchanged tree, for one input that parses.
    fn check_stable(text: &str) {
        let once = fmt(text);
        let (f1, d1) = parse(FileId(0), &once);
        assert!(d1.is_empty(), "formatted output does not parse:\n{once}\n{d1:#?}");
        let twice = format(&f1, &once);
        assert_eq!(once, twice, "not idempotent; input:\n{text}");
        assert_eq!(comment_texts(text), comment_texts(&once), "comments changed:\n{once}");
        let (f0, _) = parse(FileId(0), text);
        assert_eq!(without_spans(&f0.items), without_spans(&f1.items), "tree changed:\n{once}");
    }

    /// The debug form of a tree with every span removed.
    fn without_spans(items: &[Item]) -> String {
        let s = format!("{items:?}");
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find("Span { file:") {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            let close = after.find('}').unwrap();
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn examples_are_stable() {
        for e in all_examples() {
            check_stable(e);
        }
    }

    #[test]
    fn examples_in_the_language_doc_are_formatted() {
        let doc = include_str!("../../../docs/language.md");
        let blocks: Vec<&str> = doc.split("```").skip(1).step_by(2).collect();
        assert!(blocks.len() >= 3);
        for b in blocks {
            let b = b.strip_prefix('\n').unwrap_or(b);
            assert_eq!(fmt(b), b);
        }
    }

    #[test]
    fn moved_blocks_get_a_line_per_address_and_keep_comments() {
        let text = "group viewers {}\nmoved { from = group.readers  to = group.viewers }  # renamed\n# keys\nmoved {\n  # old\n  from = group.ds[\"a\"], to = group.ds[\"b\"]\n}\n";
        let out = fmt(text);
        assert_eq!(
            out,
            "group viewers {}\n\nmoved {\n  from = group.readers\n  to   = group.viewers\n}  # renamed\n\n# keys\nmoved {\n  # old\n  from = group.ds[\"a\"]\n  to   = group.ds[\"b\"]\n}\n"
        );
        check_stable(text);
        // `moved` and `from` stay names elsewhere.
        check_stable("group moved {\n  name = \"from\"\n}\n\nlet from = 1\n");
    }

    #[test]
    fn aligns_attributes_and_keeps_trailing_comments() {
        let out = fmt("group g {\n  name = \"n\"  # the name\n  description=\"d\"\n\n  owners = []\n}\n");
        assert_eq!(out, "group g {\n  name        = \"n\"  # the name\n  description = \"d\"\n\n  owners = []\n}\n");
    }

    #[test]
    fn spec_declarations_layout() {
        let out = fmt(crate::syntax::tests::SPEC_DECLS);
        assert!(
            out.contains(
                "  public_network_access = false\n  tags                  = { team = \"fraud\", env = var.env }\n"
            ),
            "{out}"
        );
        assert!(out.contains("identity trainer {  # user-assigned managed identity\n"), "{out}");
        assert!(
            out.contains(
                "grant \"AzureML Data Scientist\" to group.fraud_ds on workspace.fraud\ngrant \"AzureML Compute"
            ),
            "{out}"
        );
    }

    #[test]
    fn long_lists_break_one_element_per_line() {
        let long = format!("let x = [{}]\n", (0..30).map(|i| format!("\"item{i}\"")).collect::<Vec<_>>().join(", "));
        let out = fmt(&long);
        assert!(out.starts_with("let x = [\n  \"item0\",\n  \"item1\",\n"), "{out}");
        assert!(out.ends_with("  \"item29\",\n]\n"), "{out}");
        check_stable(&long);
        assert_eq!(fmt("let x = [\n  1,\n  2\n]\n"), "let x = [1, 2]\n");
    }

    #[test]
    fn comments_inside_lists_keep_them_broken() {
        let text = "let x = [ # first\n  1, # one\n  # before two\n  2\n  # at the end\n]\n";
        let out = fmt(text);
        assert_eq!(out, "let x = [\n  # first\n  1,  # one\n  # before two\n  2,\n  # at the end\n]\n");
        check_stable(text);
    }

    #[test]
    fn blank_lines_around_blocks_and_collapsed() {
        let out = fmt("let a = 1\n\n\n\nlet b = 2\nlet c = 3\ngroup g {\n\n\n  x = 1\n\n}\n# end\n");
        assert_eq!(out, "let a = 1\n\nlet b = 2\nlet c = 3\n\ngroup g {\n  x = 1\n}\n# end\n");
    }

    #[test]
    fn comment_inside_an_expression_moves_above() {
        let text = "let x = a or # why\n  b\n";
        assert_eq!(fmt(text), "# why\nlet x = a or b\n");
        check_stable(text);
    }

    #[test]
    fn strings_are_re_escaped() {
        let text = "let x = \"a\\u{9}b\\u{1}\\\"$${c}${d}\\u{24}${e}\"\n";
        assert_eq!(fmt(text), "let x = \"a\\tb\\u{1}\\\"$${c}${d}\\u{24}${e}\"\n");
        check_stable(text);
    }

    #[test]
    fn maps_and_empty_bodies() {
        assert_eq!(fmt("let m = {a=1,\"b c\"=2, \"d\" = {}}\n"), "let m = { a = 1, \"b c\" = 2, d = {} }\n");
        assert_eq!(fmt("group g {\n}\n"), "group g {}\n");
        assert_eq!(fmt("group g { # why\n}\n"), "group g {  # why\n}\n");
        check_stable("group g { # why\n}\n");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        #[test]
        fn mutated_files_format_stably(s in mutations()) {
            let (f, d) = parse(FileId(0), &s);
            if d.is_empty() {
                let _ = f;
                check_stable(&s);
            }
        }
    }
}
