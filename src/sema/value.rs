//! Compile-time values of the lowering evaluator.
//!
//! Lowering runs a `.dnn` program abstractly: numbers, strings, lists, functions and layers
//! are known while compiling, and tensors are IR nodes. Shapes are therefore static, and a
//! layer's hyperparameters (`units`, `act`) are plain values folded into the graph.

use super::scope::DefRef;
use crate::ir::{Init, NodeId};
use crate::shape::{DType, Dim};
use crate::source::Span;

/// Index of a layer instance in the lowering's instance table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceId(pub usize);

#[derive(Clone, Debug)]
pub enum Value {
    Tensor(NodeId),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A symbolic dimension used as a value, such as `B` in `reshape(x, [B, -1])`.
    Dim(Dim),
    DType(DType),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A function, possibly with some arguments already bound (`binary_crossentropy(from_logits: true)`).
    Func {
        def: DefRef,
        bound: Vec<(String, Value)>,
    },
    /// A layer instance, created by calling a layer's constructor.
    Instance(InstanceId),
    Init(Init),
    /// A closure `|a, b| body` with the scope it was written in; only `scan` calls one.
    Closure(std::rc::Rc<Closure>),
}

/// A closure value: its parameters, its body and the bindings it captured.
pub struct Closure {
    pub params: Vec<crate::syntax::ast::Ident>,
    pub body: crate::syntax::ast::Expr,
    pub ctx: super::lower::Ctx,
    pub span: Span,
}

impl std::fmt::Debug for Closure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        write!(f, "|{}| ..", names.join(", "))
    }
}

/// A runtime object named in a `train` block (data source, optimizer, metric), checked
/// by the compiler and interpreted by the runtime.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeValue {
    pub kind: RuntimeKind,
    pub name: String,
    pub args: Vec<(String, Literal)>,
    pub span: Span,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Data,
    Optimizer,
    Metric,
    Schedule,
}

/// A plain literal argument handed to the runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    List(Vec<Literal>),
}

impl Literal {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Literal::Int(n) => Some(*n as f64),
            Literal::Float(v) => Some(*v),
            _ => None,
        }
    }
}

impl Value {
    /// What kind of value this is, for messages: "a tensor", "an integer".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Tensor(_) => "a tensor",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a bool",
            Value::Str(_) => "a string",
            Value::Dim(_) => "a dimension",
            Value::DType(_) => "an element type",
            Value::List(_) => "a list",
            Value::Tuple(_) => "a tuple",
            Value::Func { .. } => "a function",
            Value::Instance(_) => "a layer instance",
            Value::Init(_) => "an initializer",
            Value::Closure(_) => "a closure",
        }
    }

    /// The value as a literal for the runtime, if it is one.
    pub fn to_literal(&self) -> Option<Literal> {
        Some(match self {
            Value::Int(n) => Literal::Int(*n),
            Value::Float(v) => Literal::Float(*v),
            Value::Bool(b) => Literal::Bool(*b),
            Value::Str(s) => Literal::Str(s.clone()),
            Value::Dim(Dim::Const(n)) => Literal::Int(*n),
            Value::List(items) => Literal::List(items.iter().map(|v| v.to_literal()).collect::<Option<_>>()?),
            _ => return None,
        })
    }

    /// An integer or a literal dimension as i64.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) | Value::Dim(Dim::Const(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) | Value::Dim(Dim::Const(n)) => Some(*n as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a dimension (an integer or a symbol).
    pub fn as_dim(&self) -> Option<Dim> {
        match self {
            Value::Int(n) => Some(Dim::Const(*n)),
            Value::Dim(d) => Some(d.clone()),
            _ => None,
        }
    }
}
