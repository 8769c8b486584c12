//! `dnnc fmt`: the canonical layout of a `.dnn` file, computed from the logos token stream.
//!
//! The formatter never moves a token across a line break: the user's line breaks are kept
//! (runs of blank lines collapse to one), and only the spaces between tokens and the
//! indentation of each line are rewritten. Indentation is four spaces per open bracket
//! (counted once per line however many brackets the line opens), one more level for a
//! line that continues an expression (the previous line ended with `=`, `->` or an infix
//! operator, or this line starts with one), and the `key = value` settings of consecutive
//! lines in a `train` or `evaluate` block are aligned at their `=`. Comments are kept
//! verbatim apart from trailing whitespace.
//!
//! Invariants, checked by `tests/fmt.rs`: formatting is idempotent, and the formatted text
//! parses to the same AST (as printed by `print_ast`, which has no spans). Because the
//! layout depends only on the token sequence and the line structure, both hold by
//! construction; a file with syntax errors is refused rather than guessed at.

use super::lexer::{Tok, Token, tokenize};
use crate::diag::Diag;
use crate::source::FileId;

const INDENT: &str = "    ";

/// Formats a file, or returns its syntax errors (spans in `file`).
pub fn format_source(file: FileId, text: &str) -> Result<String, Vec<Diag>> {
    let parsed = super::parse(file, text);
    let errors: Vec<Diag> = parsed.diags.into_iter().filter(Diag::is_error).collect();
    if errors.is_empty() { Ok(format_tokens(text)) } else { Err(errors) }
}

/// The canonical layout of any token stream; never fails (unknown characters are kept as
/// they are), but preserves the meaning only of text that parses.
pub fn format_tokens(text: &str) -> String {
    let tokens = tokenize(text);
    let mut f = Formatter::default();
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).and_then(|n| n.kind);
        f.token(t, &text[t.start..t.end], next);
    }
    f.finish()
}

/// An open bracket and the indentation its contents get.
struct Open {
    /// Indentation of the line the bracket opened on: where its closer lines up.
    line_indent: usize,
    /// A `use a::{B, C}` group, written without inner spaces.
    use_group: bool,
    /// The body of a `train` or `evaluate` block, whose settings are aligned.
    train_body: bool,
}

struct Line {
    indent: usize,
    text: String,
    /// Length of the setting name when the line starts `name = ...` in a train body.
    setting_key: Option<usize>,
}

#[derive(Default)]
struct Formatter {
    lines: Vec<Option<Line>>,
    cur: Option<Line>,
    stack: Vec<Open>,
    /// The last two code tokens (not comments or newlines), most recent first.
    last_code: [Option<Tok>; 2],
    /// What the previous token on the current line was, with its role.
    prev_on_line: Option<Role>,
    /// Between the bars of a closure's parameter list.
    in_closure_params: bool,
}

/// A token with the role that decides its spacing.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Role {
    Tok(Tok),
    /// `-` or `!` before an operand.
    Unary,
    OpenBar,
    CloseBar,
    Comment,
    Unknown,
}

/// Tokens after which an operand ends, so that a following `-` is binary.
fn ends_operand(t: Tok) -> bool {
    matches!(
        t,
        Tok::Ident
            | Tok::Number
            | Tok::Str
            | Tok::True
            | Tok::False
            | Tok::RParen
            | Tok::RBracket
            | Tok::RBrace
            | Tok::Ellipsis
    )
}

/// Tokens that only ever stand between two operands (`-` is decided by context).
fn is_infix(t: Tok) -> bool {
    matches!(
        t,
        Tok::Pipe
            | Tok::OrOr
            | Tok::AndAnd
            | Tok::EqEq
            | Tok::NotEq
            | Tok::Le
            | Tok::Ge
            | Tok::Lt
            | Tok::Gt
            | Tok::Plus
            | Tok::StarStar
            | Tok::Star
            | Tok::Slash
            | Tok::At
            | Tok::Assign
            | Tok::Arrow
            | Tok::Dot
    )
}

fn is_open(t: Tok) -> bool {
    matches!(t, Tok::LParen | Tok::LBracket | Tok::LBrace)
}

fn is_close(t: Tok) -> bool {
    matches!(t, Tok::RParen | Tok::RBracket | Tok::RBrace)
}

impl Formatter {
    fn token(&mut self, t: &Token, text: &str, next: Option<Tok>) {
        let Some(kind) = t.kind else {
            self.push_text(Role::Unknown, text, None);
            return;
        };
        match kind {
            Tok::Newline => self.newline(),
            Tok::LineComment | Tok::DocComment | Tok::BlockComment => {
                self.push_text(Role::Comment, text.trim_end(), None);
            }
            _ => self.code(kind, text, next),
        }
    }

    fn code(&mut self, kind: Tok, text: &str, next: Option<Tok>) {
        let after_operand = self.last_code[0].is_some_and(ends_operand) || self.in_closure_params;
        let role = match kind {
            Tok::Minus if !after_operand => Role::Unary,
            Tok::Bang => Role::Unary,
            Tok::Bar if self.in_closure_params => Role::CloseBar,
            Tok::Bar if !after_operand => Role::OpenBar,
            _ => Role::Tok(kind),
        };
        let continues = is_infix(kind) || (kind == Tok::Minus && after_operand);
        let setting = (kind == Tok::Ident && next == Some(Tok::Assign)).then_some(text.len());
        self.push_text(role, text, Some((continues, setting)));
        match role {
            Role::OpenBar => self.in_closure_params = true,
            Role::CloseBar => self.in_closure_params = false,
            _ => {}
        }
        if is_open(kind) {
            let line_indent = self.cur.as_ref().map_or(0, |l| l.indent);
            let use_group = kind == Tok::LBrace && self.last_code[0] == Some(Tok::PathSep);
            let train_body = kind == Tok::LBrace
                && self.last_code[0] == Some(Tok::Ident)
                && matches!(self.last_code[1], Some(Tok::Train | Tok::Evaluate));
            self.stack.push(Open { line_indent, use_group, train_body });
        } else if is_close(kind) {
            self.stack.pop();
        }
        self.last_code = [Some(kind), self.last_code[0]];
    }

    /// Appends a token to the current line, starting the line (and choosing its
    /// indentation) if needed. `code` is `(continues, setting_key)` for code tokens.
    fn push_text(&mut self, role: Role, text: &str, code: Option<(bool, Option<usize>)>) {
        match self.cur.as_mut() {
            Some(line) => {
                if self.prev_on_line.is_some_and(|p| space_between(p, role, &self.stack)) {
                    line.text.push(' ');
                }
                line.text.push_str(text);
            }
            None => {
                let indent = self.line_indent(role, code.is_some_and(|c| c.0));
                let in_train_body = self.stack.last().is_some_and(|o| o.train_body);
                let setting_key = code.and_then(|c| c.1).filter(|_| in_train_body);
                self.cur = Some(Line { indent, text: text.to_string(), setting_key });
            }
        }
        self.prev_on_line = Some(role);
    }

    /// The indentation of a line whose first token has `role`.
    fn line_indent(&self, role: Role, starts_with_infix: bool) -> usize {
        if let Role::Tok(k) = role
            && is_close(k)
        {
            return self.stack.last().map_or(0, |o| o.line_indent);
        }
        let base = self.stack.last().map_or(0, |o| o.line_indent + 1);
        base + usize::from(starts_with_infix || self.prev_code_was_infix())
    }

    /// Whether the last code token stood between operands (a trailing `-` is binary only
    /// when an operand came before it).
    fn prev_code_was_infix(&self) -> bool {
        match self.last_code {
            [Some(Tok::Minus), before] => before.is_some_and(ends_operand),
            [Some(k), _] => is_infix(k),
            _ => false,
        }
    }

    fn newline(&mut self) {
        match self.cur.take() {
            Some(line) => self.lines.push(Some(line)),
            // A blank line; runs collapse to one, and none lead the file.
            None if matches!(self.lines.last(), Some(Some(_))) => self.lines.push(None),
            None => {}
        }
        self.prev_on_line = None;
    }

    fn finish(mut self) -> String {
        self.newline();
        while matches!(self.lines.last(), Some(None)) {
            self.lines.pop();
        }
        align_settings(&mut self.lines);
        let mut out = String::new();
        for line in &self.lines {
            if let Some(l) = line {
                let body = format!("{}{}", INDENT.repeat(l.indent), l.text);
                // Block comments may span lines; every line loses its trailing whitespace.
                for (i, part) in body.split('\n').enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str(part.trim_end());
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Whether a space separates two tokens on one line.
fn space_between(prev: Role, next: Role, stack: &[Open]) -> bool {
    let top_is_use_group = stack.last().is_some_and(|o| o.use_group);
    match (prev, next) {
        (_, Role::Comment) | (Role::Comment, _) => true,
        (Role::Unary | Role::OpenBar, _) => false,
        (_, Role::CloseBar) => false,
        (Role::CloseBar, _) => true,
        (Role::Tok(Tok::LParen | Tok::LBracket), _) => false,
        (Role::Tok(Tok::PathSep), _) | (_, Role::Tok(Tok::PathSep)) => false,
        (Role::Tok(Tok::Dot), _) => false,
        // `top_is_use_group` refers to the brace just opened (prev) or being closed (next).
        (Role::Tok(Tok::LBrace), Role::Tok(Tok::RBrace)) => false,
        (Role::Tok(Tok::LBrace), _) => !top_is_use_group,
        (_, Role::Tok(Tok::RBrace)) => !top_is_use_group,
        (_, Role::Tok(Tok::RParen | Tok::RBracket | Tok::Comma | Tok::Semi | Tok::Colon | Tok::Dot)) => false,
        (Role::Tok(p), Role::Tok(Tok::LParen)) => {
            !matches!(p, Tok::Ident | Tok::RParen | Tok::RBracket | Tok::Forward)
        }
        (Role::Tok(p), Role::Tok(Tok::LBracket)) => p != Tok::Ident,
        _ => true,
    }
}

/// Pads the names of consecutive `name = value` settings so that their `=` line up.
fn align_settings(lines: &mut [Option<Line>]) {
    let mut i = 0;
    while i < lines.len() {
        let run_end = (i..lines.len())
            .find(|&j| !matches!(&lines[j], Some(l) if l.setting_key.is_some() && same_indent(lines, i, j)))
            .unwrap_or(lines.len());
        if run_end > i + 1 {
            let width = lines[i..run_end].iter().flatten().filter_map(|l| l.setting_key).max().unwrap_or(0);
            for l in lines[i..run_end].iter_mut().flatten() {
                if let Some(k) = l.setting_key {
                    // The line reads `name = ...`: widen the single space after the name.
                    let pad = " ".repeat(width - k);
                    l.text.insert_str(k, &pad);
                }
            }
        }
        i = run_end.max(i + 1);
    }
}

fn same_indent(lines: &[Option<Line>], a: usize, b: usize) -> bool {
    match (&lines[a], &lines[b]) {
        (Some(x), Some(y)) => x.indent == y.indent,
        _ => false,
    }
}

/// One token for editors: 1-based line and column (in characters), kind and text.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenInfo {
    pub line: usize,
    pub col: usize,
    pub start: usize,
    pub end: usize,
    pub kind: String,
    pub text: String,
}

/// Every token of a file with its position, for `dnnc tokens`.
pub fn token_infos(text: &str) -> Vec<TokenInfo> {
    let mut out = Vec::new();
    let (mut line, mut line_start, mut scanned) = (1, 0, 0);
    for t in tokenize(text) {
        for (i, c) in text[scanned..t.start].char_indices() {
            if c == '\n' {
                line += 1;
                line_start = scanned + i + 1;
            }
        }
        scanned = t.start;
        let col = text[line_start..t.start].chars().count() + 1;
        let kind = t.kind.map_or_else(|| "Error".to_string(), |k| format!("{k:?}"));
        out.push(TokenInfo {
            line,
            col,
            start: t.start,
            end: t.end,
            kind,
            text: text[t.start..t.end].into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format_tokens;

    #[test]
    fn normalizes_spaces_and_indentation() {
        let src = "fn  f( x :f32[B ,10] ,y: int=2)->f32[B,10]={\nlet z=x*-y\n  z|>g( a:1 )\n}\n\n\n";
        let want =
            "fn f(x: f32[B, 10], y: int = 2) -> f32[B, 10] = {\n    let z = x * -y\n    z |> g(a: 1)\n}\n";
        assert_eq!(format_tokens(src), want);
    }

    #[test]
    fn continuation_lines_and_use_groups() {
        let src =
            "use std::layers::{ Dense ,Flatten }\nmodel M(x: f32[B, 2]) =\nx |> Dense(1)\n  |> Flatten()\n";
        let want = "use std::layers::{Dense, Flatten}\nmodel M(x: f32[B, 2]) =\n    x |> Dense(1)\n    |> Flatten()\n";
        assert_eq!(format_tokens(src), want);
    }

    #[test]
    fn aligns_settings_and_keeps_comments() {
        let src = "train M {\n  data = d() // the data\n\n\n  epochs=5\n  validation = 0.2\n}\n";
        let want = "train M {\n    data = d() // the data\n\n    epochs     = 5\n    validation = 0.2\n}\n";
        assert_eq!(format_tokens(src), want);
    }

    #[test]
    fn closures_and_minus() {
        assert_eq!(format_tokens("f(x, |h,xt| h-xt, -1)"), "f(x, |h, xt| h - xt, -1)\n");
    }
}
