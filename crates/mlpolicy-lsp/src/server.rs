//! The protocol loop: documents, per-directory analyses with a debounce, and the requests.
//!
//! One thread handles one message at a time. `didOpen`/`didSave`/`didClose` analyse the
//! document's directory at once; `didChange` waits [`DEBOUNCE`] for typing to pause. A request
//! on a directory with a pending analysis runs it first, so answers always match the text.
//! A request that panics is answered with an error and the server carries on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{self as notif, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, CodeActionProviderCapability, CompletionOptions,
    CompletionParams, DiagnosticRelatedInformation, DiagnosticSeverity, DocumentFormattingParams, DocumentSymbolParams,
    GotoDefinitionParams, Hover, HoverContents, HoverParams, HoverProviderCapability, InitializeParams, Location,
    MarkupContent, MarkupKind, MessageType, NumberOrString, OneOf, PositionEncodingKind, PrepareRenameResponse,
    PublishDiagnosticsParams, Range, ReferenceParams, RenameOptions, RenameParams, ServerCapabilities, ServerInfo,
    TextDocumentPositionParams, TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit, Uri, WorkspaceEdit,
};
use mlpolicy_lang::diagnostics::{Diagnostic, Severity};
use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::source::{FileId, Overlay, Span};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::analysis::Analysis;
use crate::text::{Encoding, LineIndex};
use crate::{actions, complete, hover, navigate};

/// How long typing must pause before a changed directory is analysed again.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// An open document.
#[derive(Debug)]
struct Doc {
    uri: Uri,
    /// Its directory and file name, when it is a file.
    place: Option<(PathBuf, String)>,
    text: Arc<str>,
    version: i32,
}

/// A configuration directory with at least one open document.
#[derive(Debug, Default)]
struct Dir {
    analysis: Option<Arc<Analysis>>,
    /// When to analyse again; `None` when the analysis is up to date.
    due: Option<Instant>,
    /// URIs that diagnostics were last published for.
    published: HashSet<String>,
}

struct Server<'c> {
    conn: &'c Connection,
    encoding: Encoding,
    snippets: bool,
    docs: HashMap<String, Doc>,
    dirs: BTreeMap<PathBuf, Dir>,
    overrides: Overrides,
    shutdown: bool,
}

/// An error answer to a request.
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
}

type Answer = Result<serde_json::Value, Failure>;

/// Runs the protocol on a connection: `initialize`, then messages until `exit`.
pub fn run(conn: &Connection) -> Result<(), String> {
    let (id, params) = conn.initialize_start().map_err(|e| format!("mlpolicy lsp: {e}"))?;
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let utf8 = params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_ref())
        .is_some_and(|e| e.contains(&PositionEncodingKind::UTF8));
    let snippets = params
        .capabilities
        .text_document
        .as_ref()
        .and_then(|t| t.completion.as_ref())
        .and_then(|c| c.completion_item.as_ref())
        .and_then(|i| i.snippet_support)
        .unwrap_or(false);
    let encoding = if utf8 { Encoding::Utf8 } else { Encoding::Utf16 };
    let result = serde_json::json!({
        "capabilities": capabilities(encoding),
        "serverInfo": ServerInfo { name: "mlpolicy".into(), version: Some(env!("CARGO_PKG_VERSION").into()) },
    });
    conn.initialize_finish(id, result).map_err(|e| format!("mlpolicy lsp: {e}"))?;
    let mut server = Server {
        conn,
        encoding,
        snippets,
        docs: HashMap::new(),
        dirs: BTreeMap::new(),
        overrides: Overrides::default(),
        shutdown: false,
    };
    server.main_loop()
}

fn capabilities(encoding: Encoding) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(match encoding {
            Encoding::Utf8 => PositionEncodingKind::UTF8,
            Encoding::Utf16 => PositionEncodingKind::UTF16,
        }),
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        completion_provider: Some(CompletionOptions {
            resolve_provider: Some(true),
            trigger_characters: Some(vec![".".into(), "\"".into(), "[".into()]),
            ..CompletionOptions::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: lsp_types::WorkDoneProgressOptions::default(),
        })),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    }
}

/// A file URI's path.
fn path_of(uri: &Uri) -> Option<PathBuf> {
    url::Url::parse(uri.as_str()).ok()?.to_file_path().ok()
}

fn uri_of(path: &Path) -> Option<Uri> {
    Uri::from_str(url::Url::from_file_path(path).ok()?.as_str()).ok()
}

fn params<P: DeserializeOwned>(req: &Request) -> Result<P, Failure> {
    serde_json::from_value(req.params.clone()).map_err(|e| Failure::new(ErrorCode::InvalidParams, e.to_string()))
}

fn json<T: Serialize>(value: T) -> Answer {
    serde_json::to_value(value).map_err(|e| Failure::new(ErrorCode::InternalError, e.to_string()))
}

impl Server<'_> {
    fn main_loop(&mut self) -> Result<(), String> {
        loop {
            let due = self.dirs.values().filter_map(|d| d.due).min();
            let msg = match due {
                Some(due) => match self.conn.receiver.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(msg) => Some(msg),
                    Err(e) if e.is_timeout() => None,
                    Err(_) => return Err("mlpolicy lsp: the client went away without `exit`".into()),
                },
                None => match self.conn.receiver.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => return Err("mlpolicy lsp: the client went away without `exit`".into()),
                },
            };
            match msg {
                Some(Message::Request(r)) => self.request(r),
                Some(Message::Notification(n)) if n.method == notif::Exit::METHOD => {
                    return if self.shutdown { Ok(()) } else { Err("mlpolicy lsp: `exit` before `shutdown`".into()) };
                }
                Some(Message::Notification(n)) => self.notification(&n),
                Some(Message::Response(_)) | None => {}
            }
            self.analyse_due();
        }
    }

    fn send(&self, msg: Message) {
        // The writer thread is gone only when the client is: the loop notices on its next read.
        let _ = self.conn.sender.send(msg);
    }

    fn notify<N: notif::Notification>(&self, params: N::Params) {
        self.send(Message::Notification(Notification::new(N::METHOD.to_owned(), params)));
    }

    fn log(&self, typ: MessageType, message: String) {
        self.notify::<notif::LogMessage>(lsp_types::LogMessageParams { typ, message });
    }

    // -----------------------------------------------------------------------------------------
    // Documents and analyses

    fn notification(&mut self, n: &Notification) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.document_event(n)));
        if outcome.is_err() {
            self.log(MessageType::ERROR, format!("mlpolicy lsp failed on `{}` (a bug: please report it)", n.method));
        }
    }

    fn document_event(&mut self, n: &Notification) {
        let now = Instant::now();
        match n.method.as_str() {
            notif::DidOpenTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params.clone()) else {
                    return;
                };
                let doc = p.text_document;
                let place = path_of(&doc.uri).and_then(|path| {
                    Some((path.parent()?.to_owned(), path.file_name()?.to_string_lossy().into_owned()))
                });
                let key = doc.uri.as_str().to_owned();
                self.docs
                    .insert(key.clone(), Doc { uri: doc.uri, place, text: Arc::from(doc.text), version: doc.version });
                self.schedule(&key, now);
            }
            notif::DidChangeTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params.clone()) else {
                    return;
                };
                let key = p.text_document.uri.as_str().to_owned();
                let Some(doc) = self.docs.get_mut(&key) else { return };
                // Full sync: the last change holds the whole text.
                if let Some(change) = p.content_changes.into_iter().last() {
                    doc.text = Arc::from(change.text);
                    doc.version = p.text_document.version;
                }
                self.schedule(&key, now + DEBOUNCE);
            }
            notif::DidSaveTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidSaveTextDocumentParams>(n.params.clone()) else {
                    return;
                };
                self.schedule(p.text_document.uri.as_str(), now);
            }
            notif::DidChangeWatchedFiles::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidChangeWatchedFilesParams>(n.params.clone()) else {
                    return;
                };
                for change in p.changes {
                    let dir = path_of(&change.uri).and_then(|p| p.parent().map(Path::to_owned));
                    if let Some(state) = dir.and_then(|d| self.dirs.get_mut(&d)) {
                        state.due = Some(now);
                    }
                }
            }
            notif::DidCloseTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params.clone()) else {
                    return;
                };
                let Some(doc) = self.docs.remove(p.text_document.uri.as_str()) else { return };
                let Some((dir, _)) = doc.place else { return };
                if self.docs.values().any(|d| d.place.as_ref().is_some_and(|(d, _)| *d == dir)) {
                    if let Some(state) = self.dirs.get_mut(&dir) {
                        state.due = Some(now);
                    }
                } else if let Some(state) = self.dirs.remove(&dir) {
                    for uri in state.published {
                        if let Ok(uri) = Uri::from_str(&uri) {
                            self.publish(uri, Vec::new(), None);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Marks the directory of a document for analysis at `when`: a later change postpones a
    /// pending analysis (the debounce).
    fn schedule(&mut self, key: &str, when: Instant) {
        let Some((dir, _)) = self.docs.get(key).and_then(|d| d.place.clone()) else { return };
        self.dirs.entry(dir).or_default().due = Some(when);
    }

    fn analyse_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> =
            self.dirs.iter().filter(|(_, d)| d.due.is_some_and(|t| t <= now)).map(|(p, _)| p.clone()).collect();
        for dir in due {
            self.analyse(&dir);
        }
    }

    /// Compiles a directory with its open documents and publishes the diagnostics.
    fn analyse(&mut self, dir: &Path) {
        let overlay: Overlay = self
            .docs
            .values()
            .filter_map(|d| d.place.as_ref().filter(|(p, _)| p == dir).map(|(_, name)| (name.clone(), d.text.clone())))
            .collect();
        let overrides = self.overrides.clone();
        let analysis = std::panic::catch_unwind(|| Analysis::run(dir, &overrides, &overlay));
        let Some(state) = self.dirs.get_mut(dir) else { return };
        state.due = None;
        let Ok(analysis) = analysis.map(Arc::new) else {
            self.log(
                MessageType::ERROR,
                format!("mlpolicy lsp: the compiler failed on {} (a bug: please report it)", dir.display()),
            );
            return;
        };
        state.analysis = Some(analysis.clone());
        self.publish_all(dir, &analysis);
        let (errors, warnings) = (analysis.report.errors(), analysis.report.warnings());
        self.log(
            MessageType::LOG,
            format!(
                "analysed {} in {:.1} ms: {errors} errors, {warnings} warnings",
                dir.display(),
                analysis.elapsed.as_secs_f64() * 1000.0
            ),
        );
    }

    /// The URI diagnostics and locations of a file use: the open document's, or its path's.
    fn file_uri(&self, a: &Analysis, file: FileId) -> Option<Uri> {
        let name = &a.compiled.sources.files.get(file.0 as usize)?.name;
        let path = a.path_of(file)?;
        self.docs
            .values()
            .find(|d| d.place.as_ref().is_some_and(|(dir, n)| dir == &a.dir && n == name))
            .map(|d| d.uri.clone())
            .or_else(|| uri_of(&path))
    }

    fn publish_all(&mut self, dir: &Path, a: &Analysis) {
        let mut by_file: BTreeMap<String, (Uri, Vec<lsp_types::Diagnostic>)> = BTreeMap::new();
        let first_open =
            self.docs.values().filter(|d| d.place.as_ref().is_some_and(|(p, _)| p == dir)).map(|d| d.uri.clone()).min();
        for d in &a.report.items {
            let (uri, diag) = match d.span() {
                Some(span) => match self.file_uri(a, span.file) {
                    Some(uri) => (uri, self.diagnostic(a, d, self.range(a, span))),
                    None => continue,
                },
                // Problems of the whole directory (no `.mlp` file, say) go on an open document.
                None => match &first_open {
                    Some(uri) => (uri.clone(), self.diagnostic(a, d, Range::default())),
                    None => continue,
                },
            };
            by_file.entry(uri.as_str().to_owned()).or_insert_with(|| (uri, Vec::new())).1.push(diag);
        }
        for d in self.docs.values().filter(|d| d.place.as_ref().is_some_and(|(p, _)| p == dir)) {
            by_file.entry(d.uri.as_str().to_owned()).or_insert_with(|| (d.uri.clone(), Vec::new()));
        }
        let previous = self.dirs.get_mut(dir).map(|s| std::mem::take(&mut s.published)).unwrap_or_default();
        for stale in previous.iter().filter(|u| !by_file.contains_key(*u)) {
            if let Ok(uri) = Uri::from_str(stale) {
                self.publish(uri, Vec::new(), None);
            }
        }
        let published: HashSet<String> = by_file.keys().cloned().collect();
        for (key, (uri, diags)) in by_file {
            let version = self.docs.get(&key).map(|d| d.version);
            self.publish(uri, diags, version);
        }
        if let Some(state) = self.dirs.get_mut(dir) {
            state.published = published;
        }
    }

    fn publish(&self, uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        self.notify::<notif::PublishDiagnostics>(PublishDiagnosticsParams { uri, diagnostics, version });
    }

    /// A compiler diagnostic as the protocol's: code, severity, message with the primary
    /// label and the help (as `mlpolicy validate` prints them), secondary labels and related
    /// diagnostics as related information.
    fn diagnostic(&self, a: &Analysis, d: &Diagnostic, range: Range) -> lsp_types::Diagnostic {
        let mut message = d.message.clone();
        let primary = d.labels.iter().find(|l| l.primary).or(d.labels.first());
        if let Some(label) = primary.filter(|l| !l.message.is_empty()) {
            let _ = write!(message, "\n{}", label.message);
        }
        let mut related = Vec::new();
        let mut add = |span: Span, text: &str, message: &mut String| {
            if let Some(location) = self.location(a, span) {
                related.push(DiagnosticRelatedInformation { location, message: text.to_owned() });
            } else {
                let file = &a.compiled.sources.get(span.file).name;
                let (line, col) = a.compiled.sources.line_col(span.file, span.start);
                let _ = write!(message, "\n{text} ({file}:{line}:{col})");
            }
        };
        for l in d.labels.iter().filter(|l| primary.is_none_or(|p| !std::ptr::eq(*l, p))) {
            add(l.span, &l.message, &mut message);
        }
        for r in &d.related {
            if let Some(span) = r.span() {
                let label = r.labels.first().map_or("", |l| l.message.as_str());
                add(span, &format!("{}: {label}", r.message), &mut message);
            }
        }
        if let Some(help) = &d.help {
            let _ = write!(message, "\nhelp: {help}");
        }
        lsp_types::Diagnostic {
            range,
            severity: Some(match d.severity {
                Severity::Error => DiagnosticSeverity::ERROR,
                Severity::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.code.to_string())),
            source: Some("mlpolicy".into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..lsp_types::Diagnostic::default()
        }
    }

    fn range(&self, a: &Analysis, span: Span) -> Range {
        LineIndex::new(a.text(span.file), self.encoding).range(span.start as usize, span.end as usize)
    }

    fn location(&self, a: &Analysis, span: Span) -> Option<Location> {
        Some(Location { uri: self.file_uri(a, span.file)?, range: self.range(a, span) })
    }

    // -----------------------------------------------------------------------------------------
    // Requests

    fn request(&mut self, r: Request) {
        if self.shutdown {
            let msg = "the server is shutting down".to_owned();
            self.send(Response::new_err(r.id, ErrorCode::InvalidRequest as i32, msg).into());
            return;
        }
        let id: RequestId = r.id.clone();
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| self.dispatch(&r)));
        let response = match answer {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err(f)) => Response::new_err(id, f.code as i32, f.message),
            Err(_) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!("mlpolicy lsp failed on `{}` (a bug: please report it)", r.method),
            ),
        };
        self.send(response.into());
    }

    fn dispatch(&mut self, r: &Request) -> Answer {
        match r.method.as_str() {
            req::Shutdown::METHOD => {
                self.shutdown = true;
                Ok(serde_json::Value::Null)
            }
            req::Completion::METHOD => self.completion(&params(r)?),
            req::ResolveCompletionItem::METHOD => json(complete::resolve(params(r)?)),
            req::HoverRequest::METHOD => self.hover(&params(r)?),
            req::GotoDefinition::METHOD => {
                let p: GotoDefinitionParams = params(r)?;
                self.spans(&p.text_document_position_params, navigate::definition)
            }
            req::References::METHOD => {
                let p: ReferenceParams = params(r)?;
                let include = p.context.include_declaration;
                self.spans(&p.text_document_position, |a, f, o| navigate::references(a, f, o, include))
            }
            req::DocumentSymbolRequest::METHOD => self.document_symbols(&params(r)?),
            req::Formatting::METHOD => self.formatting(&params(r)?),
            req::PrepareRenameRequest::METHOD => self.prepare_rename(&params(r)?),
            req::Rename::METHOD => self.rename(&params(r)?),
            req::CodeActionRequest::METHOD => self.code_actions(&params(r)?),
            _ => Err(Failure::new(ErrorCode::MethodNotFound, format!("mlpolicy lsp does not serve `{}`", r.method))),
        }
    }

    /// The fresh analysis of a document's directory and the document's file in it.
    fn fresh(&mut self, uri: &Uri) -> Option<(Arc<Analysis>, FileId)> {
        let (dir, name) = self.docs.get(uri.as_str())?.place.clone()?;
        if self.dirs.get(&dir).is_none_or(|d| d.due.is_some() || d.analysis.is_none()) {
            self.dirs.entry(dir.clone()).or_default();
            self.analyse(&dir);
        }
        let a = self.dirs.get(&dir)?.analysis.clone()?;
        let file = a.file_id(&name)?;
        Some((a, file))
    }

    fn position(&mut self, p: &TextDocumentPositionParams) -> Option<(Arc<Analysis>, FileId, usize)> {
        let (a, file) = self.fresh(&p.text_document.uri)?;
        let offset = LineIndex::new(a.text(file), self.encoding).offset(p.position);
        Some((a, file, offset))
    }

    fn completion(&mut self, p: &CompletionParams) -> Answer {
        let Some((a, file, offset)) = self.position(&p.text_document_position) else {
            return Ok(serde_json::Value::Null);
        };
        let index = LineIndex::new(a.text(file), self.encoding);
        json(complete::complete(&a, file, offset, &index, self.snippets))
    }

    fn hover(&mut self, p: &HoverParams) -> Answer {
        let Some((a, file, offset)) = self.position(&p.text_document_position_params) else {
            return Ok(serde_json::Value::Null);
        };
        let Some((span, value)) = hover::hover(&a, file, u32::try_from(offset).unwrap_or(u32::MAX)) else {
            return Ok(serde_json::Value::Null);
        };
        json(Hover {
            contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value }),
            range: Some(self.range(&a, span)),
        })
    }

    fn spans(&mut self, p: &TextDocumentPositionParams, find: impl Fn(&Analysis, FileId, u32) -> Vec<Span>) -> Answer {
        let Some((a, file, offset)) = self.position(p) else { return Ok(serde_json::Value::Null) };
        let locations: Vec<Location> = find(&a, file, u32::try_from(offset).unwrap_or(u32::MAX))
            .into_iter()
            .filter_map(|s| self.location(&a, s))
            .collect();
        if locations.is_empty() { Ok(serde_json::Value::Null) } else { json(locations) }
    }

    fn document_symbols(&mut self, p: &DocumentSymbolParams) -> Answer {
        let Some((a, file)) = self.fresh(&p.text_document.uri) else { return Ok(serde_json::Value::Null) };
        let index = LineIndex::new(a.text(file), self.encoding);
        let range = |s: Span| index.range(s.start as usize, s.end as usize);
        json(navigate::symbols(&a, file, &range))
    }

    /// The whole document as `mlpolicy fmt` writes it; no edit when it does not parse (as
    /// `fmt` refuses such files) or is already formatted.
    fn formatting(&mut self, p: &DocumentFormattingParams) -> Answer {
        let Some(doc) = self.docs.get(p.text_document.uri.as_str()) else { return Ok(serde_json::Value::Null) };
        let text = doc.text.clone();
        let (tree, diags) = mlpolicy_lang::syntax::parse(FileId(0), &text);
        if diags.has_errors() {
            let msg = "mlpolicy fmt: the file has syntax errors; fix them to format it";
            self.log(MessageType::INFO, msg.into());
            return Ok(serde_json::Value::Null);
        }
        let formatted = mlpolicy_lang::fmt::format(&tree, &text);
        if formatted == *text {
            return json(Vec::<TextEdit>::new());
        }
        let range = LineIndex::new(&text, self.encoding).full_range();
        json(vec![TextEdit { range, new_text: formatted }])
    }

    fn prepare_rename(&mut self, p: &TextDocumentPositionParams) -> Answer {
        let Some((a, file, offset)) = self.position(p) else { return Ok(serde_json::Value::Null) };
        match navigate::rename_target(&a, file, u32::try_from(offset).unwrap_or(u32::MAX)) {
            Ok((span, _)) => json(PrepareRenameResponse::RangeWithPlaceholder {
                range: self.range(&a, span),
                placeholder: a.snippet(span).to_owned(),
            }),
            Err(why) => Err(Failure::new(ErrorCode::InvalidRequest, why)),
        }
    }

    #[expect(clippy::mutable_key_type, reason = "`WorkspaceEdit` keys its changes by `Uri`")]
    fn rename(&mut self, p: &RenameParams) -> Answer {
        let Some((a, file, offset)) = self.position(&p.text_document_position) else {
            return Ok(serde_json::Value::Null);
        };
        let (_, symbol) = navigate::rename_target(&a, file, u32::try_from(offset).unwrap_or(u32::MAX))
            .map_err(|why| Failure::new(ErrorCode::InvalidRequest, why))?;
        let spans =
            navigate::rename(&a, &symbol, &p.new_name).map_err(|why| Failure::new(ErrorCode::InvalidParams, why))?;
        let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
        for span in spans {
            if let Some(loc) = self.location(&a, span) {
                changes.entry(loc.uri).or_default().push(TextEdit { range: loc.range, new_text: p.new_name.clone() });
            }
        }
        if let Some(warning) = navigate::rename_warning(&a, &symbol) {
            self.notify::<notif::ShowMessage>(lsp_types::ShowMessageParams {
                typ: MessageType::WARNING,
                message: warning,
            });
        }
        json(WorkspaceEdit { changes: Some(changes), ..WorkspaceEdit::default() })
    }

    fn code_actions(&mut self, p: &CodeActionParams) -> Answer {
        let Some((a, file)) = self.fresh(&p.text_document.uri) else { return Ok(serde_json::Value::Null) };
        let index = LineIndex::new(a.text(file), self.encoding);
        let (start, end) = (index.offset(p.range.start), index.offset(p.range.end));
        let (start, end) = (u32::try_from(start).unwrap_or(u32::MAX), u32::try_from(end).unwrap_or(u32::MAX));
        let mut out = Vec::new();
        for fix in actions::fixes(&a, file, start, end) {
            let Some(uri) = self.file_uri(&a, fix.span.file) else { continue };
            let edit = TextEdit { range: self.range(&a, fix.span), new_text: fix.new_text };
            let range = fix.diagnostic.span().map_or_else(Range::default, |s| self.range(&a, s));
            out.push(CodeActionOrCommand::CodeAction(CodeAction {
                title: fix.title,
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![self.diagnostic(&a, &fix.diagnostic, range)]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri, vec![edit])])),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(fix.preferred),
                ..CodeAction::default()
            }));
        }
        json(out)
    }
}
