//! Rendering diagnostics with codespan-reporting: colour on a terminal, plain text else.

use super::{Diag, Severity};
use crate::source::SourceMap;
use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::term::{
    self,
    termcolor::{ColorChoice, StandardStream},
};

fn to_codespan(d: &Diag) -> Diagnostic<usize> {
    let base = match d.severity {
        Severity::Error => Diagnostic::error(),
        Severity::Warning => Diagnostic::warning(),
    };
    let mut labels = vec![
        Label::primary(d.primary.span.file.0 as usize, d.primary.span.range())
            .with_message(&d.primary.message),
    ];
    labels.extend(
        d.secondary
            .iter()
            .map(|l| Label::secondary(l.span.file.0 as usize, l.span.range()).with_message(&l.message)),
    );
    let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
    if let Some(h) = &d.help {
        notes.push(format!("help: {h}"));
    }
    base.with_code(d.code.as_str()).with_message(&d.message).with_labels(labels).with_notes(notes)
}

/// Renders diagnostics as plain text (no colour): what tests snapshot.
pub fn render_plain(diags: &[Diag], sources: &SourceMap) -> String {
    let config = term::Config::default();
    let mut out = String::new();
    for d in diags {
        let _ = term::emit_to_string(&mut out, &config, sources.files(), &to_codespan(d));
    }
    out
}

/// Writes diagnostics to stderr, in colour when stderr is a terminal.
pub fn render(diags: &[Diag], sources: &SourceMap) {
    use std::io::IsTerminal;
    let choice = if std::io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
    let stream = StandardStream::stderr(choice);
    let config = term::Config::default();
    for d in diags {
        let _ = term::emit_to_write_style(&mut stream.lock(), &config, sources.files(), &to_codespan(d));
    }
}
