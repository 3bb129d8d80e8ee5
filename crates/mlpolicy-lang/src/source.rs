//! Source loading: a configuration directory becomes [`Sources`], the file texts every later
//! stage points into through [`Span`]s.
//!
//! Only regular `*.mlp` files directly inside the directory are read, sorted by name; a symlink
//! is followed only when it stays inside the directory. Unreadable files, invalid UTF-8 and
//! oversized files become diagnostics (E0001–E0005), never panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};

/// Largest `.mlp` or YAML file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Span { file, start: clamp(start), end: clamp(end) }
    }

    /// The smallest span covering both (same file assumed; `self`'s file wins).
    #[must_use]
    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One loaded file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as shown to users: the file name relative to the configuration directory.
    pub name: String,
    /// Absolute or directory-joined path it was read from (empty for in-memory sources).
    pub path: PathBuf,
    pub text: Arc<str>,
    /// Where its lines start, built on first use.
    lines: std::sync::OnceLock<Arc<LineIndex>>,
}

impl SourceFile {
    /// The file's line index: finding the line of an offset takes a binary search, not a scan
    /// from the start of the file (a large file with many diagnostics would be quadratic).
    pub fn lines(&self) -> &LineIndex {
        self.lines.get_or_init(|| Arc::new(LineIndex::new(&self.text)))
    }
}

/// Where the lines of a text start (after each `\n`), and how many lone `\r` (which miette also
/// counts as line breaks) come before each.
#[derive(Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// Lone `\r`s before each line start; `None` when the text has none.
    lone_cr: Option<Vec<usize>>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut lone = 0;
        let mut lone_cr: Vec<usize> = vec![0];
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'\n' => {
                    starts.push(i + 1);
                    lone_cr.push(lone);
                }
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => lone += 1,
                _ => {}
            }
        }
        LineIndex { starts, lone_cr: (lone > 0).then_some(lone_cr) }
    }

    /// The 0-based line (lines end at `\n`) holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|s| *s <= offset).saturating_sub(1)
    }

    /// The byte offset where 0-based `line` starts; the text's length past the last line.
    pub fn start(&self, line: usize, text_len: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(text_len)
    }

    /// Lines that end at `\n`.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Never: a text has at least one line.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Line breaks before 0-based `line` as miette counts them (`\n`, `\r\n` and a lone `\r`).
    pub fn breaks_before(&self, line: usize) -> usize {
        line + self.lone_cr.as_ref().map_or(0, |v| v.get(line).copied().unwrap_or(0))
    }
}

/// All files of one run. `FileId` indexes `files`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    /// Adds an in-memory file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, path: PathBuf, text: impl Into<Arc<str>>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).expect("fewer than 4 billion files"));
        self.files.push(SourceFile { name: name.into(), path, text: text.into(), lines: std::sync::OnceLock::new() });
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn text(&self, span: Span) -> &str {
        self.get(span.file).text.get(span.range()).unwrap_or("")
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, file: FileId, offset: u32) -> (usize, usize) {
        let f = self.get(file);
        let text = &f.text;
        let offset = floor_char_boundary(text, (offset as usize).min(text.len()));
        let line = f.lines().line_of(offset);
        let start = f.lines().start(line, text.len());
        (line + 1, text[start..offset].chars().count() + 1)
    }

    /// Ids of the `.mlp` files, in load order.
    pub fn mlp_files(&self) -> impl Iterator<Item = FileId> + '_ {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| is_mlp(&f.name))
            .map(|(i, _)| FileId(u32::try_from(i).unwrap_or(u32::MAX)))
    }
}

/// Whether a file name is a configuration file: exactly `*.mlp`, as the language defines it.
#[expect(clippy::case_sensitive_file_extension_comparisons, reason = "the language reads `*.mlp` only, not `*.MLP`")]
fn is_mlp(name: &str) -> bool {
    name.ends_with(".mlp")
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Texts that replace files of the configuration directory, by file name (`main.mlp`,
/// `mlpolicy.yaml`): an editor's unsaved buffers. A name that is not on disk is read as if it
/// were (a new file not saved yet). Empty for the command line.
pub type Overlay = std::collections::BTreeMap<String, Arc<str>>;

/// Reads every `*.mlp` file directly inside `dir`, sorted by file name.
///
/// Problems with individual files are collected; the files that could be read are still
/// returned so that one run reports as much as it can.
pub fn load_dir(dir: &Path, sources: &mut Sources) -> Diagnostics {
    load_dir_with(dir, sources, &Overlay::new())
}

/// [`load_dir`], with the texts of `overlay` in place of the files of the same name.
pub fn load_dir_with(dir: &Path, sources: &mut Sources, overlay: &Overlay) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let canonical_dir = match dir.canonicalize() {
        Ok(d) if d.is_dir() => d,
        Ok(_) => {
            diags.push(
                Diagnostic::error(Code::E0001, format!("`{}` is not a directory", dir.display()))
                    .with_help("pass the configuration directory, the one holding the `.mlp` files"),
            );
            return diags;
        }
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::E0001,
                format!("cannot open configuration directory `{}`: {e}", dir.display()),
            ));
            return diags;
        }
    };
    let entries = match std::fs::read_dir(&canonical_dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::error(Code::E0001, format!("cannot list `{}`: {e}", dir.display())));
            return diags;
        }
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            is_mlp(&name).then(|| (name, e.path()))
        })
        .collect();
    for name in overlay.keys().filter(|n| is_mlp(n)) {
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.clone(), canonical_dir.join(name)));
        }
    }
    names.sort();
    if names.is_empty() {
        diags.push(
            Diagnostic::error(Code::E0002, format!("no `.mlp` files in `{}`", dir.display()))
                .with_help("a configuration is a directory of `.mlp` files; sub-folders are not read"),
        );
        return diags;
    }
    for (name, path) in names {
        if let Some(text) = overlay.get(&name) {
            sources.add(name, path, text.clone());
            continue;
        }
        match read_inside(&canonical_dir, &path) {
            Ok(text) => {
                sources.add(name, path, text);
            }
            Err(d) => diags.push(*d),
        }
    }
    diags
}

/// Reads one file of the configuration directory as UTF-8, refusing anything whose real path
/// lies outside `dir` (configurations are untrusted input).
pub fn read_inside(canonical_dir: &Path, path: &Path) -> Result<String, Box<Diagnostic>> {
    let shown = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let real = path
        .canonicalize()
        .map_err(|e| Box::new(Diagnostic::error(Code::E0003, format!("cannot read `{shown}`: {e}"))))?;
    if !real.starts_with(canonical_dir) {
        return Err(Box::new(
            Diagnostic::error(Code::E0004, format!("`{shown}` links to a file outside the configuration directory"))
                .with_help(
                    "configurations are read from their own directory only; copy the file in instead of linking it",
                ),
        ));
    }
    let meta = std::fs::metadata(&real)
        .map_err(|e| Box::new(Diagnostic::error(Code::E0003, format!("cannot read `{shown}`: {e}"))))?;
    if !meta.is_file() {
        return Err(Box::new(Diagnostic::error(Code::E0003, format!("cannot read `{shown}`: not a regular file"))));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Box::new(Diagnostic::error(
            Code::E0005,
            format!(
                "`{shown}` is {} bytes, more than the {MAX_FILE_BYTES} bytes a configuration file may hold",
                meta.len()
            ),
        )));
    }
    let bytes = std::fs::read(&real)
        .map_err(|e| Box::new(Diagnostic::error(Code::E0003, format!("cannot read `{shown}`: {e}"))))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].split(|b| *b == b'\n').count();
        Box::new(
            Diagnostic::error(Code::E0003, format!("`{shown}` is not valid UTF-8 (line {line}, byte {at})"))
                .with_help("save the file as UTF-8"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let mut s = Sources::default();
        let f = s.add("a.mlp", PathBuf::new(), "ab\ncé d");
        assert_eq!(s.line_col(f, 0), (1, 1));
        assert_eq!(s.line_col(f, 3), (2, 1));
        assert_eq!(s.line_col(f, 6), (2, 3));
    }

    #[test]
    fn overlay_replaces_and_adds_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mlp"), "let x = 1").unwrap();
        let mut overlay = Overlay::new();
        overlay.insert("a.mlp".into(), Arc::from("let x = 2"));
        overlay.insert("b.mlp".into(), Arc::from("let y = 3"));
        overlay.insert("notes.txt".into(), Arc::from("not read"));
        let mut s = Sources::default();
        let d = load_dir_with(dir.path(), &mut s, &overlay);
        assert!(d.is_empty(), "{d:?}");
        let texts: Vec<(&str, &str)> = s.files.iter().map(|f| (f.name.as_str(), &*f.text)).collect();
        assert_eq!(texts, [("a.mlp", "let x = 2"), ("b.mlp", "let y = 3")]);
    }

    #[test]
    fn empty_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sources::default();
        let d = load_dir(dir.path(), &mut s);
        assert_eq!(d.items[0].code, Code::E0002);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_dir_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.mlp"), "let x = 1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.mlp"), dir.path().join("a.mlp")).unwrap();
        let mut s = Sources::default();
        let d = load_dir(dir.path(), &mut s);
        assert_eq!(d.items[0].code, Code::E0004);
        assert!(s.files.is_empty());
    }

    #[test]
    fn invalid_utf8_is_reported_with_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mlp"), b"let x = 1\n\xff\xfe").unwrap();
        let mut s = Sources::default();
        let d = load_dir(dir.path(), &mut s);
        assert_eq!(d.items[0].code, Code::E0003);
        assert!(d.items[0].message.contains("line 2"), "{}", d.items[0].message);
    }
}
