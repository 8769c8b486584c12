//! The abstract syntax tree of a `.dnn` file, every node with its span.
//!
//! The AST mirrors the grammar (`grammar/dnn.pest`) without its punctuation. It is what
//! `dnnc ir --stage ast` prints, what `dnnc fmt` must preserve, and what `sema` lowers.

use crate::source::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed file.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Use(UseItem),
    Fn(FnDef),
    Layer(LayerDef),
    Model(ModelDef),
    Train(TrainDef),
}

/// `use std::layers::{Dense, Flatten}` or `use std::activations::relu`.
#[derive(Clone, Debug, PartialEq)]
pub struct UseItem {
    /// The module path: `std::layers`.
    pub path: Vec<Ident>,
    /// The imported names; for `use a::b::c` the path is `a::b` and the name `c`.
    pub names: Vec<Ident>,
    pub span: Span,
}

/// A declared parameter of a function, layer constructor, model or forward.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub doc: Vec<String>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

/// A type annotation: `f32[B, 28, 28]`, `f32` (a scalar tensor), `int`, `fn`.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeExpr {
    /// A dtype with dimensions (`dims` is `None` for a bare name such as `f32` or `int`).
    Named { name: Ident, dims: Option<Vec<DimExpr>>, span: Span },
}

impl TypeExpr {
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Named { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum DimExpr {
    Lit(i64, Span),
    Name(Ident),
    /// `...`: any number of leading dimensions.
    Ellipsis(Span),
}

impl DimExpr {
    pub fn span(&self) -> Span {
        match self {
            DimExpr::Lit(_, s) | DimExpr::Ellipsis(s) => *s,
            DimExpr::Name(i) => i.span,
        }
    }
}

/// `fn name(params) -> ret = body`: a pure, shape-generic function.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    pub doc: Vec<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Expr,
    pub span: Span,
}

/// `layer Name(args) { members }`: parameters, state, sublayers and a forward.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDef {
    pub doc: Vec<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub members: Vec<Member>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Member {
    /// `param w: f32[IN, units] = glorot_uniform` (trainable) or `state ...` (not trained).
    Tensor(TensorDecl),
    /// `let conv = Conv2D(32, 3)`: a sublayer or a constant.
    Let(LetStmt),
    Forward(ForwardDef),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorDecl {
    pub doc: Vec<String>,
    pub trainable: bool,
    pub name: Ident,
    pub ty: TypeExpr,
    pub init: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForwardDef {
    pub doc: Vec<String>,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Expr,
    pub span: Span,
}

/// `model Name(inputs) -> output = body`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    pub doc: Vec<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Expr,
    pub span: Span,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TrainKind {
    Train,
    Evaluate,
}

/// `train Model { ... }` or `evaluate Model { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainDef {
    pub kind: TrainKind,
    pub model: Ident,
    pub entries: Vec<TrainEntry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrainEntry {
    /// `epochs = 5`
    Setting {
        key: Ident,
        value: Expr,
    },
    Let(LetStmt),
    /// `step (x, y) { ... }`: a custom training step.
    Step {
        pattern: Pattern,
        body: Vec<StepStmt>,
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepStmt {
    Let(LetStmt),
    /// `update model with optimizer minimizing loss`
    Update {
        model: Ident,
        optimizer: Ident,
        loss: Expr,
        span: Span,
    },
    Log {
        values: Vec<Expr>,
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct LetStmt {
    pub pattern: Pattern,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pattern {
    Name(Ident),
    Wild(Span),
    Tuple(Vec<Pattern>, Span),
}

impl Pattern {
    pub fn span(&self) -> Span {
        match self {
            Pattern::Name(i) => i.span,
            Pattern::Wild(s) | Pattern::Tuple(_, s) => *s,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BinOp {
    Pipe,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Pipe => "|>",
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "**",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Name(Ident),
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Field(Box<Expr>, Ident),
    Block {
        stmts: Vec<LetStmt>,
        value: Box<Expr>,
    },
    Closure {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
    /// A part that did not parse; lowering skips it silently (its error is reported).
    Error,
}
