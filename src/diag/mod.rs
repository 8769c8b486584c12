//! Diagnostics: what the compiler tells a user about their program.
//!
//! Detecting an error and rendering it stay apart: stages build [`Diag`] values through one
//! constructor per error code (in `syntax.rs`, `names.rs`, `shapes.rs`, `train.rs`), and
//! `render` turns them into codespan-reporting output. Codes are grouped (E00xx syntax,
//! E01xx names and arguments, E02xx shapes and types, E03xx differentiation, E04xx data
//! and training, W0xxx warnings) and never reused; `codes.rs` holds the explanation of each.

mod codes;
mod render;

pub use codes::{Code, explain};
pub use render::{render, render_plain};

use crate::source::Span;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A span with a message. The first label of a diagnostic is the primary one.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diag {
    pub code: Code,
    pub severity: Severity,
    /// Lowercase, no final period, names in backticks.
    pub message: String,
    /// The primary label: the smallest span, saying what is wrong.
    pub primary: Label,
    /// Where the names or shapes involved came from.
    pub secondary: Vec<Label>,
    /// The rule that was broken.
    pub notes: Vec<String>,
    /// A plausible fix.
    pub help: Option<String>,
}

impl Diag {
    pub fn error(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Diag {
        Diag {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label { span, message: label.into() },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Diag {
        Diag { severity: Severity::Warning, ..Diag::error(code, message, span, label) }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diag {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diag {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The closest candidate to `name` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Edit distance over chars where swapping two neighbours counts as one edit (optimal
/// string alignment), so that `rleu` is one typo away from `relu`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j - 1] + cost).min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("Dence", ["Dense", "Dropout", "Flatten"]), Some("Dense"));
        assert_eq!(did_you_mean("relu", ["elu", "selu", "tanh"]), Some("elu"));
        assert_eq!(did_you_mean("Conv9000", ["Dense", "Flatten"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("rleu", "relu"), 1);
        assert_eq!(did_you_mean("Adma", ["SGD", "Adam", "RMSprop"]), Some("Adam"));
    }
}
