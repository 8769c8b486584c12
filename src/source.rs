//! Source files and spans.
//!
//! Every diagnostic and every IR node points back into a source file through a [`Span`]:
//! a file id plus a byte range. The [`SourceMap`] owns the text of every file the compiler
//! read (user files and the embedded standard library) and hands them to the renderer.

use codespan_reporting::files::{Files, SimpleFiles};

/// Index of a file in the [`SourceMap`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range `start..end` inside one file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }

    /// A span that points nowhere in particular; used for compiler-made nodes.
    pub fn dummy() -> Span {
        Span::default()
    }

    /// The smallest span covering both (they must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// All source files of one compilation.
#[derive(Default)]
pub struct SourceMap {
    files: SimpleFiles<String, String>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        FileId(self.files.add(name.into(), text.into()) as u32)
    }

    pub fn name(&self, file: FileId) -> String {
        self.files.get(file.0 as usize).map(|f| f.name().clone()).unwrap_or_default()
    }

    pub fn text(&self, file: FileId) -> &str {
        self.files.get(file.0 as usize).map(|f| f.source().as_str()).unwrap_or("")
    }

    /// The text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        self.text(span.file).get(span.range()).unwrap_or("")
    }

    /// 1-based line and column of a span's start.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let id = span.file.0 as usize;
        match self.files.location(id, span.start as usize) {
            Ok(loc) => (loc.line_number, loc.column_number),
            Err(_) => (0, 0),
        }
    }

    /// The files in the form codespan-reporting renders from.
    pub fn files(&self) -> &SimpleFiles<String, String> {
        &self.files
    }
}
