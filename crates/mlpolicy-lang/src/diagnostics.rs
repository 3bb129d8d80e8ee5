//! Diagnostics as data: every problem mlpolicy reports — in `.mlp` files, YAML, flags, plan
//! files or Azure's answers — is a [`Diagnostic`] with a stable code (`E0xxx` error, `W0xxx`
//! warning), a one-line lowercase message, labelled spans and an optional `help`.
//!
//! Stages collect diagnostics into [`Diagnostics`] instead of stopping at the first; rendering
//! goes through miette ([`render`]), with or without colour. Every code used in `src/` is
//! documented in `docs/diagnostics.md` (a test enforces it).

use std::fmt::{self, Write as _};

use std::borrow::Cow;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan,
    SpanContents,
};

pub use crate::code::Code;
use crate::source::{SourceFile, Sources, Span};

/// Diagnostics rendered as text at most; the rest are counted (`--format json` lists them all).
pub const MAX_RENDERED: usize = 100;

/// Source lines longer than this are not shown: the diagnostic names the line and column.
pub const MAX_SHOWN_LINE: usize = 1_000;

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

/// Renders the diagnostics (the first [`MAX_RENDERED`]) followed by a one-line count, as the
/// CLI prints them.
pub fn render_all(diags: &Diagnostics, sources: &Sources, opts: RenderOptions) -> String {
    let mut out = String::new();
    for d in diags.items.iter().take(MAX_RENDERED) {
        out.push_str(&render(d, sources, opts));
    }
    if diags.items.len() > MAX_RENDERED {
        let _ = writeln!(
            out,
            "… {} more not shown (the first {MAX_RENDERED} are; `validate --format json` lists every one)",
            diags.items.len() - MAX_RENDERED
        );
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
    /// The message, with the place appended when the source is not shown.
    message: Cow<'a, str>,
    /// Shown under another diagnostic: no code or severity of its own.
    related_only: bool,
    source: Option<IndexedSource<'a>>,
    related: Vec<Report<'a>>,
}

impl<'a> Report<'a> {
    fn new(diag: &'a Diagnostic, sources: &'a Sources) -> Self {
        let mut message = Cow::Borrowed(diag.message.as_str());
        let source = diag.span().and_then(|span| {
            let file = sources.get(span.file);
            let lines = file.lines();
            let longest = diag
                .labels
                .iter()
                .filter(|l| l.span.file == span.file)
                .flat_map(|l| lines.line_of(l.span.start as usize)..=lines.line_of(l.span.end as usize))
                .map(|line| lines.start(line + 1, file.text.len()) - lines.start(line, file.text.len()))
                .max()
                .unwrap_or(0);
            if longest > MAX_SHOWN_LINE {
                let (line, col) = sources.line_col(span.file, span.start);
                message =
                    Cow::Owned(format!("{} ({}:{line}:{col}; the line is too long to show)", diag.message, file.name));
                return None;
            }
            Some(IndexedSource { file })
        });
        let related = diag.related.iter().map(|r| Report { related_only: true, ..Report::new(r, sources) }).collect();
        Report { diag, message, related_only: false, source, related }
    }
}

/// A file as miette reads it: the lines around a span are found through the file's line index
/// (miette's own reading scans from the start of the file for every diagnostic).
struct IndexedSource<'a> {
    file: &'a SourceFile,
}

impl SourceCode for IndexedSource<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let text: &'b str = &self.file.text;
        let lines = self.file.lines();
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end > text.len() {
            return Err(MietteError::OutOfBounds);
        }
        // A window of whole lines around the span, a line wider than miette looks: it reads
        // the window as it would the file, and the window's place is added back.
        let first = lines.line_of(start).saturating_sub(before + 1);
        let last = lines.line_of(end.saturating_sub(1).max(start)) + after + 2;
        let (w0, w1) = (lines.start(first, text.len()), lines.start(last, text.len()));
        let inner = text[w0..w1].read_span(&SourceSpan::new((start - w0).into(), span.len()), before, after)?;
        let first_line = lines.breaks_before(first);
        let contents = MietteSpanContents::new_named(
            self.file.name.clone(),
            inner.data(),
            SourceSpan::new((inner.span().offset() + w0).into(), inner.span().len()),
            inner.line() + first_line,
            inner.column(),
            inner.line_count() + first_line,
        )
        .with_language("mlpolicy");
        Ok(Box::new(contents))
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
