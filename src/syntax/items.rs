//! Splitting a file into top-level items, and the nesting limits, from the token stream.
//!
//! An item starts at a depth-0 `use`, `fn`, `layer`, `model`, `train` or `evaluate`
//! (together with the doc comments before it), so that each is parsed on its own. An item
//! nested deeper than [`MAX_NESTING`] brackets, or whose expressions may nest deeper than
//! [`MAX_EXPR_DEPTH`], is reported (E0003) and left out before pest sees it: that bounds
//! the recursion of the parser, the lowering and the AST's drop.

use super::lexer::{Tok, tokenize};
use crate::diag::{Code, Diag};
use crate::source::{FileId, Span};

/// The deepest nesting of brackets the parser accepts.
pub const MAX_NESTING: usize = 128;

/// Splits the text into item chunks and checks nesting depth. Chunks too deep to parse
/// are reported and left out.
pub(super) fn split_items(file: FileId, text: &str, diags: &mut Vec<Diag>) -> Vec<(usize, usize)> {
    let tokens = tokenize(text);
    let mut starts = vec![0];
    let mut depth: usize = 0;
    let mut doc_start: Option<usize> = None;
    // A keyword right after `::` or `.` is a misused name (`use std::layer`), not a new item.
    let mut after_path = false;
    for (i, t) in tokens.iter().enumerate() {
        match t.kind {
            Some(Tok::LParen | Tok::LBracket | Tok::LBrace) => depth += 1,
            Some(Tok::RParen | Tok::RBracket | Tok::RBrace) => depth = depth.saturating_sub(1),
            Some(Tok::DocComment) if depth == 0 => {
                doc_start.get_or_insert(t.start);
            }
            Some(k) if depth == 0 && k.starts_item() && i > 0 && !after_path => {
                starts.push(doc_start.unwrap_or(t.start));
            }
            _ => {}
        }
        if !matches!(t.kind, Some(Tok::DocComment | Tok::Newline)) {
            doc_start = None;
        }
        if !t.kind.is_some_and(Tok::is_trivia) {
            after_path = matches!(t.kind, Some(Tok::PathSep | Tok::Dot));
        }
    }
    starts.dedup();
    let mut chunks: Vec<(usize, usize)> = starts
        .windows(2)
        .map(|w| (w[0], w[1]))
        .chain(std::iter::once((*starts.last().unwrap_or(&0), text.len())))
        .collect();
    chunks.retain(|&(s, e)| s < e || text.is_empty());

    // Refuse chunks nested deeper than the limits. Tokens are sorted, so each chunk's
    // tokens are found by binary search: the whole check is linear in the file.
    chunks.retain(|&(s, e)| {
        let first = tokens.partition_point(|t| t.start < s);
        let last = tokens.partition_point(|t| t.end <= e).max(first);
        match too_deep(file, &tokens[first..last]) {
            Some(d) => {
                diags.push(d);
                false
            }
            None => true,
        }
    });
    chunks
}

/// The most an expression may nest through operators (`a + b + ...`, `- - x`, `f()()`)
/// and brackets together: a bound on the depth of the AST, so that building, lowering and
/// dropping it cannot exhaust the stack.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Why one item nests too deeply, if it does. Bracket depth is limited to [`MAX_NESTING`];
/// the AST depth is bounded above by the brackets open plus the operators seen at each
/// open level since its last separator (`,`, `;`, `=`, `let`), limited to [`MAX_EXPR_DEPTH`].
fn too_deep(file: FileId, tokens: &[super::lexer::Token]) -> Option<Diag> {
    // Operators at each open bracket level; the estimate is their sum plus the depth.
    let mut levels: Vec<usize> = vec![0];
    let mut estimate = 0usize;
    let mut prev: Option<Tok> = None;
    for t in tokens {
        let Some(kind) = t.kind else { continue };
        if kind.is_trivia() || kind == Tok::DocComment {
            continue;
        }
        let postfix_call = kind == Tok::LParen && matches!(prev, Some(Tok::RParen | Tok::RBracket));
        match kind {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                if levels.len() > MAX_NESTING {
                    return Some(
                        Diag::error(
                            Code::E0003,
                            format!("nesting deeper than {MAX_NESTING} levels"),
                            Span::new(file, t.start, t.end),
                            "this bracket is too deep",
                        )
                        .with_help("bind inner parts to names with `let`"),
                    );
                }
                if postfix_call && let Some(top) = levels.last_mut() {
                    *top += 1;
                    estimate += 1;
                }
                levels.push(0);
                estimate += 1;
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace if levels.len() > 1 => {
                estimate -= levels.pop().unwrap_or(0) + 1;
            }
            Tok::Comma | Tok::Semi | Tok::Assign | Tok::Let => {
                if let Some(top) = levels.last_mut() {
                    estimate -= *top;
                    *top = 0;
                }
            }
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
            | Tok::Minus
            | Tok::StarStar
            | Tok::Star
            | Tok::Slash
            | Tok::At
            | Tok::Bang
            | Tok::Dot
            | Tok::Bar => {
                if let Some(top) = levels.last_mut() {
                    *top += 1;
                    estimate += 1;
                }
            }
            _ => {}
        }
        if estimate > MAX_EXPR_DEPTH {
            return Some(
                Diag::error(
                    Code::E0003,
                    format!("expression nested deeper than {MAX_EXPR_DEPTH} levels"),
                    Span::new(file, t.start, t.end),
                    "the expression is too deep here",
                )
                .with_help("split it into parts bound with `let`"),
            );
        }
        prev = Some(kind);
    }
    None
}
