//! The token stream of a `.dnn` file, with logos.
//!
//! The parser proper is pest (`grammar/dnn.pest`); tokens matter on their own where the
//! layout matters: `dnnc fmt`, `dnnc tokens` for editors, and splitting a file into
//! top-level items so that a syntax error in one item does not hide errors in the next.
//! Comments, doc comments and newlines are tokens here; nothing is skipped but spaces.

use logos::Logos;

#[derive(Logos, Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[logos(skip r"[ \t\r\x0C]+")]
pub enum Tok {
    #[token("\n")]
    Newline,
    #[regex(r"///[^\n]*", allow_greedy = true)]
    DocComment,
    #[regex(r"//([^/\n][^\n]*)?", allow_greedy = true)]
    LineComment,
    #[regex(r"/\*([^*]|\*+[^*/])*\*+/")]
    BlockComment,

    #[token("use")]
    Use,
    #[token("fn")]
    Fn,
    #[token("layer")]
    Layer,
    #[token("param")]
    Param,
    #[token("state")]
    State,
    #[token("forward")]
    Forward,
    #[token("model")]
    Model,
    #[token("train")]
    Train,
    #[token("evaluate")]
    Evaluate,
    #[token("let")]
    Let,
    #[token("step")]
    Step,
    #[token("update")]
    Update,
    #[token("with")]
    With,
    #[token("minimizing")]
    Minimizing,
    #[token("true")]
    True,
    #[token("false")]
    False,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    #[regex(r"[0-9][0-9_]*(\.[0-9]+)?([eE][+-]?[0-9]+)?")]
    Number,
    #[regex(r#""([^"\\\n]|\\.)*""#)]
    Str,

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token("::")]
    PathSep,
    #[token(":")]
    Colon,
    #[token("...")]
    Ellipsis,
    #[token(".")]
    Dot,
    #[token("->")]
    Arrow,
    #[token("|>")]
    Pipe,
    #[token("||")]
    OrOr,
    #[token("&&")]
    AndAnd,
    #[token("|")]
    Bar,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("=")]
    Assign,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("**")]
    StarStar,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("!")]
    Bang,
}

impl Tok {
    /// Whether the token opens a top-level item when it appears at nesting depth 0.
    pub fn starts_item(self) -> bool {
        matches!(self, Tok::Use | Tok::Fn | Tok::Layer | Tok::Model | Tok::Train | Tok::Evaluate)
    }

    pub fn is_trivia(self) -> bool {
        matches!(self, Tok::Newline | Tok::LineComment | Tok::BlockComment)
    }
}

/// One token: its kind (`None` for text no token matches) and byte range.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: Option<Tok>,
    pub start: usize,
    pub end: usize,
}

/// Lexes the whole text; unknown characters become tokens of kind `None`.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut lexer = Tok::lexer(text);
    let mut out = Vec::new();
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        out.push(Token { kind: result.ok(), start: span.start, end: span.end });
    }
    out
}
