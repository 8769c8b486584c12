//! The one error type of every data loader.
//!
//! Every variant names the file (or the dataset) it is about and says what is wrong in
//! words a user can act on: the loaders never panic on bad input, they return one of these.

use std::path::PathBuf;

/// What went wrong while finding, reading or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write or rename.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// A gzip stream that does not decompress.
    #[error("{file}: corrupt gzip stream: {detail}")]
    Gzip { file: String, detail: String },

    /// A file that does not start with the magic number of its format.
    #[error("{file}: wrong magic number 0x{found:08X}, expected {expected}")]
    BadMagic { file: String, found: u32, expected: &'static str },

    /// A file shorter than its header promises.
    #[error("{file}: truncated: {detail}")]
    Truncated { file: String, detail: String },

    /// Any other malformed content: bad header fields, trailing bytes, labels out of range.
    #[error("{file}: {detail}")]
    Invalid { file: String, detail: String },

    /// A field of a text file that cannot be read; line and column are 1-based.
    #[error("{file}:{line}:{column}: {detail}")]
    Field { file: String, line: usize, column: usize, detail: String },

    /// Dataset files found nowhere on the search path (and not downloaded).
    #[error("{0}")]
    Missing(String),

    /// A download that failed or delivered the wrong bytes.
    #[error("download of {url} failed: {detail}")]
    Download { url: String, detail: String },

    /// A bad request from the caller: batch size 0, an empty dataset, a bad fraction.
    #[error("{0}")]
    Usage(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DataError {
        DataError::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(file: impl Into<String>, detail: impl Into<String>) -> DataError {
        DataError::Invalid { file: file.into(), detail: detail.into() }
    }
}

/// The short name used in messages: the file name without its folder.
pub(crate) fn file_label(path: &std::path::Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}
