//! Syntax: the logos lexer, the pest parser (the only code that touches pest) and the AST.

pub mod ast;
mod format;
mod items;
pub mod lexer;
mod parser;
mod print;

pub use format::{TokenInfo, format_source, format_tokens, token_infos};
pub use items::{MAX_EXPR_DEPTH, MAX_NESTING};
pub use parser::{Parsed, parse};
pub use print::{expr_text, print_ast, type_text};
