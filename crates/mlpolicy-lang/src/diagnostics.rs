//! Diagnostics as data: every problem mlpolicy reports — in `.mlp` files, YAML, flags, plan
//! files or Azure's answers — is a [`Diagnostic`] with a stable code (`E0xxx` error, `W0xxx`
//! warning), a one-line lowercase message, labelled spans and an optional `help`.
//!
//! Stages collect diagnostics into [`Diagnostics`] instead of stopping at the first; rendering
//! goes through miette ([`render`]), with or without colour. Every code used in `src/` is
//! documented in `docs/diagnostics.md` (a test enforces it).

use std::fmt::{self, Write as _};

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

pub use crate::code::Code;
use crate::source::{Sources, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A span with the text that explains it. The first primary label is where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

/// One problem, with everything needed to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    /// Other places that explain this one (e.g. the policy a declaration violates),
    /// possibly in other files.
    pub related: Vec<Diagnostic>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    /// Adds the primary label.
    #[must_use]
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into(), primary: true });
        self
    }

    /// Adds a secondary label (same file as the primary one is best).
    #[must_use]
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into(), primary: false });
        self
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn with_related(mut self, related: Diagnostic) -> Self {
        self.related.push(related);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).or(self.labels.first()).map(|l| l.span)
    }
}

/// The diagnostics of one run, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn errors(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.items.len() - self.errors()
    }

    /// Sorts by file, then position, then code, so that output is stable whatever order the
    /// stages found things in. Diagnostics without a span come first.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.span().map(|s| (s.file, s.start, s.end));
            key(a).cmp(&key(b)).then_with(|| a.code.cmp(&b.code)).then_with(|| a.message.cmp(&b.message))
        });
        self.items.dedup();
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics { items: vec![d] }
    }
}

/// How to render.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { color: false, width: 100 }
    }
}

/// Renders every diagnostic followed by a one-line count, as the CLI prints them.
pub fn render_all(diags: &Diagnostics, sources: &Sources, opts: RenderOptions) -> String {
    let mut out = String::new();
    for d in &diags.items {
        out.push_str(&render(d, sources, opts));
    }
    let (e, w) = (diags.errors(), diags.warnings());
    if e + w > 0 {
        let plural = |n: usize, s: &str| if n == 1 { format!("{n} {s}") } else { format!("{n} {s}s") };
        let _ = writeln!(out, "{}, {}", plural(e, "error"), plural(w, "warning"));
    }
    out
}

/// Renders one diagnostic with miette's graphical handler.
pub fn render(d: &Diagnostic, sources: &Sources, opts: RenderOptions) -> String {
    let theme = if opts.color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(opts.width).with_urls(false).with_links(false);
    let report = Report::new(d, sources);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        // Rendering into a String only fails on a formatter error; fall back to plain text.
        out = format!("{}[{}]: {}\n", severity_word(d.severity), d.code, d.message);
    }
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// A borrowed view of a [`Diagnostic`] that miette can render.
struct Report<'a> {
    diag: &'a Diagnostic,
    /// Shown under another diagnostic: no code or severity of its own.
    related_only: bool,
    source: Option<NamedSource<String>>,
    related: Vec<Report<'a>>,
}

impl<'a> Report<'a> {
    fn new(diag: &'a Diagnostic, sources: &Sources) -> Self {
        let source = diag.span().map(|s| {
            let f = sources.get(s.file);
            NamedSource::new(f.name.clone(), f.text.to_string()).with_language("mlpolicy")
        });
        let related = diag.related.iter().map(|r| Report { related_only: true, ..Report::new(r, sources) }).collect();
        Report { diag, related_only: false, source, related }
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        (!self.related_only).then(|| Box::new(self.diag.code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        if self.related_only {
            return Some(miette::Severity::Advice);
        }
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let file = self.diag.span()?.file;
        let labels = self.diag.labels.iter().filter(move |l| l.span.file == file).map(|l| {
            let span = SourceSpan::new((l.span.start as usize).into(), (l.span.end - l.span.start) as usize);
            let text = (!l.message.is_empty()).then(|| l.message.clone());
            if l.primary {
                LabeledSpan::new_primary_with_span(text, span)
            } else {
                LabeledSpan::new_with_span(text, span)
            }
        });
        Some(Box::new(labels))
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn renders_code_label_and_help_without_colour() {
        let mut sources = Sources::default();
        let f = sources.add("main.mlp", PathBuf::new(), "group ds {\n  nme = \"x\"\n}\n");
        let d = Diagnostic::error(Code::E0201, "unknown attribute `nme` on group")
            .with_label(Span::new(f, 13, 16), "not an attribute of group")
            .with_help("did you mean `name`?");
        let out = render(&d, &sources, RenderOptions::default());
        assert!(out.contains("E0201"), "{out}");
        assert!(out.contains("main.mlp:2:3"), "{out}");
        assert!(out.contains("not an attribute of group"), "{out}");
        assert!(out.contains("help: did you mean `name`?"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out}");
    }

    #[test]
    fn sort_orders_by_position_and_dedups() {
        let mut sources = Sources::default();
        let f = sources.add("a.mlp", PathBuf::new(), "0123456789");
        let late = Diagnostic::error(Code::E0101, "b").with_label(Span::new(f, 5, 6), "");
        let early = Diagnostic::error(Code::E0102, "a").with_label(Span::new(f, 1, 2), "");
        let mut ds = Diagnostics { items: vec![late.clone(), early.clone(), late.clone()] };
        ds.sort();
        assert_eq!(ds.items, vec![early, late]);
    }
}
