//! The built-in functions and values of the language: thin, checked fronts over the IR
//! primitives (`exp`, `sum`, `reshape`, ...), initializers, element types and `training`.
//! Everything higher-level is written in `.dnn` in the standard library.

mod nn;
mod seq;
mod slicing;

use super::calls::ArgVal;
use super::lower::{Ctx, Lowered, Lowerer, Reported};
use super::value::Value;
use crate::diag::{Code, Diag};
use crate::ir::{BinaryOp, Distribution, Init, Op, PoolKind, ReduceOp, UnaryOp};
use crate::shape::{DType, Dim, TensorType, const_numel};
use crate::source::Span;

macro_rules! builtins {
    ($($variant:ident = $name:literal ($($param:literal),*) required $req:literal;)*) => {
        /// A built-in function.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Builtin { $($variant,)* }

        impl Builtin {
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(Builtin::$variant => $name,)* }
            }

            pub fn from_name(name: &str) -> Option<Builtin> {
                match name { $($name => Some(Builtin::$variant),)* _ => None }
            }

            /// Parameter names, and how many of them are required.
            pub fn params(self) -> (&'static [&'static str], usize) {
                match self { $(Builtin::$variant => (&[$($param),*], $req),)* }
            }
        }
    };
}

builtins! {
    Exp = "exp" ("x") required 1;
    Log = "log" ("x") required 1;
    Sqrt = "sqrt" ("x") required 1;
    Abs = "abs" ("x") required 1;
    Sign = "sign" ("x") required 1;
    Tanh = "tanh" ("x") required 1;
    Sigmoid = "sigmoid" ("x") required 1;
    Maximum = "maximum" ("a", "b") required 2;
    Minimum = "minimum" ("a", "b") required 2;
    Where = "where" ("cond", "a", "b") required 3;
    Sum = "sum" ("x", "axis", "keep") required 1;
    Max = "max" ("x", "axis", "keep") required 1;
    Mean = "mean" ("x", "axis", "keep") required 1;
    Argmax = "argmax" ("x", "axis") required 1;
    Reshape = "reshape" ("x", "shape") required 2;
    Transpose = "transpose" ("x", "perm") required 1;
    Cast = "cast" ("x", "dtype") required 2;
    OneHot = "one_hot" ("labels", "depth") required 2;
    Zeros = "zeros" ("shape", "dtype") required 1;
    Ones = "ones" ("shape", "dtype") required 1;
    Full = "full" ("shape", "value", "dtype") required 2;
    Uniform = "uniform" ("shape") required 1;
    Normal = "normal" ("shape") required 1;
    Shape = "shape" ("x") required 1;
    Constant = "constant" ("value") required 1;
    RandomUniform = "random_uniform" ("low", "high") required 2;
    RandomNormal = "random_normal" ("mean", "std") required 2;
    Blocks = "blocks" ("values") required 1;
    Conv2d = "conv2d" ("x", "kernel", "stride", "padding", "dilation") required 2;
    MaxPool2d = "max_pool2d" ("x", "window", "stride", "padding") required 2;
    AvgPool2d = "avg_pool2d" ("x", "window", "stride", "padding") required 2;
    UpdateState = "update_state" ("state", "value") required 2;
    Gather = "gather" ("table", "ids") required 2;
    Scan = "scan" ("xs", "init", "step", "last") required 3;
    Slice = "slice" ("x", "start", "stop") required 3;
    Split = "split" ("x", "parts") required 2;
}

/// Names that denote values rather than functions.
pub const VALUE_NAMES: &[&str] = &[
    "training",
    "f32",
    "f64",
    "i64",
    "u8",
    "bool",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "orthogonal",
];

/// The value of a built-in value name.
pub fn value_of(name: &str, training: bool) -> Option<Value> {
    if let Some(dt) = DType::from_name(name) {
        return Some(Value::DType(dt));
    }
    Some(match name {
        "training" => Value::Bool(training),
        "glorot_uniform" => Value::Init(Init::GlorotUniform),
        "glorot_normal" => Value::Init(Init::GlorotNormal),
        "he_uniform" => Value::Init(Init::HeUniform),
        "he_normal" => Value::Init(Init::HeNormal),
        "orthogonal" => Value::Init(Init::Orthogonal),
        _ => return None,
    })
}

/// A value used as an initializer: an `Init`, or `zeros` / `ones` named without a call.
pub fn as_init(v: &Value) -> Option<Init> {
    match v {
        Value::Init(i) => Some(i.clone()),
        Value::Func { def: super::scope::DefRef::Builtin(Builtin::Zeros), .. } => Some(Init::Zeros),
        Value::Func { def: super::scope::DefRef::Builtin(Builtin::Ones), .. } => Some(Init::Ones),
        _ => None,
    }
}

/// Arguments bound to a built-in's parameters by position or name.
struct Bound {
    values: Vec<Option<(Value, Span)>>,
}

impl Bound {
    fn get(&self, i: usize) -> Option<&(Value, Span)> {
        self.values.get(i).and_then(Option::as_ref)
    }

    fn take(&mut self, i: usize) -> (Value, Span) {
        self.values[i].take().expect("required arguments are checked when binding")
    }
}

fn bind(lw: &mut Lowerer, b: Builtin, args: Vec<ArgVal>, span: Span) -> Result<Bound, Reported> {
    let (names, required) = b.params();
    let mut values: Vec<Option<(Value, Span)>> = vec![None; names.len()];
    let mut pos = 0;
    for a in args {
        let slot = match &a.name {
            None => {
                pos += 1;
                pos - 1
            }
            Some(n) => match names.iter().position(|p| *p == n.name) {
                Some(i) => i,
                None => {
                    return Err(lw.report(
                        Diag::error(
                            Code::E0105,
                            format!("`{}` has no parameter named `{}`", b.name(), n.name),
                            n.span,
                            "unknown argument",
                        )
                        .with_note(format!(
                            "`{}` takes ({})",
                            b.name(),
                            names.join(", ")
                        )),
                    ));
                }
            },
        };
        if slot >= names.len() {
            return Err(lw.report(
                Diag::error(
                    Code::E0104,
                    format!(
                        "`{}` takes at most {} argument{}",
                        b.name(),
                        names.len(),
                        if names.len() == 1 { "" } else { "s" }
                    ),
                    a.span,
                    "unexpected argument",
                )
                .with_note(format!("`{}` takes ({})", b.name(), names.join(", "))),
            ));
        }
        if values[slot].is_some() {
            return Err(lw.report(Diag::error(
                Code::E0106,
                format!("argument `{}` is given twice", names[slot]),
                a.span,
                "given again here",
            )));
        }
        values[slot] = Some((a.value, a.span));
    }
    if let Some(missing) = (0..required).find(|&i| values[i].is_none()) {
        return Err(lw.report(
            Diag::error(
                Code::E0104,
                format!("missing argument `{}` in call to `{}`", names[missing], b.name()),
                span,
                "argument missing",
            )
            .with_note(format!("`{}` takes ({})", b.name(), names.join(", "))),
        ));
    }
    Ok(Bound { values })
}

pub fn call(lw: &mut Lowerer, _ctx: &mut Ctx, b: Builtin, args: Vec<ArgVal>, span: Span) -> Lowered {
    let mut a = bind(lw, b, args, span)?;
    match b {
        Builtin::Exp
        | Builtin::Log
        | Builtin::Sqrt
        | Builtin::Abs
        | Builtin::Sign
        | Builtin::Tanh
        | Builtin::Sigmoid => {
            let (v, s) = a.take(0);
            if let Some(x) = v.as_f64() {
                return Ok(Value::Float(fold_unary(b, x)));
            }
            let x = lw.expect_tensor(v, s)?;
            let op = match b {
                Builtin::Exp => UnaryOp::Exp,
                Builtin::Log => UnaryOp::Log,
                Builtin::Sqrt => UnaryOp::Sqrt,
                Builtin::Abs => UnaryOp::Abs,
                Builtin::Sign => UnaryOp::Sign,
                Builtin::Tanh => UnaryOp::Tanh,
                _ => UnaryOp::Sigmoid,
            };
            lw.node(Op::Unary(op), &[x], None, span, &[s])
        }
        Builtin::Maximum | Builtin::Minimum => {
            let (x, sx) = a.take(0);
            let (y, sy) = a.take(1);
            if let (Some(p), Some(q)) = (x.as_f64(), y.as_f64()) {
                return Ok(Value::Float(if b == Builtin::Maximum { p.max(q) } else { p.min(q) }));
            }
            let (x, y) = lw.tensor_pair(x, y, sx, sy)?;
            let op = if b == Builtin::Maximum { BinaryOp::Max } else { BinaryOp::Min };
            lw.node(Op::Binary(op), &[x, y], None, span, &[sx, sy])
        }
        Builtin::Where => {
            let (c, sc) = a.take(0);
            let (x, sx) = a.take(1);
            let (y, sy) = a.take(2);
            match c {
                // A condition known while compiling picks a branch; the other is dropped.
                Value::Bool(true) => Ok(x),
                Value::Bool(false) => Ok(y),
                Value::Tensor(c) => {
                    let (x, y) = lw.tensor_pair(x, y, sx, sy)?;
                    lw.node(Op::Select, &[c, x, y], None, span, &[sc, sx, sy])
                }
                other => Err(kind_error(lw, "a bool tensor or a bool", &other, sc)),
            }
        }
        Builtin::Sum | Builtin::Max | Builtin::Mean => reduce(lw, b, a, span),
        Builtin::Argmax => {
            let (v, s) = a.take(0);
            let x = lw.expect_tensor(v, s)?;
            let rank = lw.ty(x).rank();
            let axis = match a.get(1) {
                Some((v, s)) => axis_arg(lw, v, *s, rank)?,
                None => rank.saturating_sub(1),
            };
            lw.node(Op::ArgMax { axis }, &[x], None, span, &[s])
        }
        Builtin::Reshape => {
            let (v, s) = a.take(0);
            let x = lw.expect_tensor(v, s)?;
            let (shape_v, ss) = a.take(1);
            let ty = lw.ty(x).clone();
            let target = reshape_target(lw, &ty, &shape_v, ss)?;
            lw.node(Op::Reshape, &[x], Some(TensorType::new(ty.dtype, target)), span, &[s])
        }
        Builtin::Transpose => {
            let (v, s) = a.take(0);
            let x = lw.expect_tensor(v, s)?;
            let rank = lw.ty(x).rank();
            let perm = match a.get(1) {
                Some((Value::List(items), ps)) => {
                    let ps = *ps;
                    let mut perm = Vec::new();
                    for it in items.clone() {
                        perm.push(axis_arg(lw, &it, ps, rank)?);
                    }
                    perm
                }
                Some((other, ps)) => return Err(kind_error(lw, "a list of axes", &other.clone(), *ps)),
                None => (0..rank).rev().collect(),
            };
            lw.node(Op::Transpose { perm }, &[x], None, span, &[s])
        }
        Builtin::Cast => {
            let (v, s) = a.take(0);
            let x = lw.expect_tensor(v, s)?;
            match a.take(1) {
                (Value::DType(to), _) => lw.node(Op::Cast { to }, &[x], None, span, &[s]),
                (other, ds) => Err(kind_error(lw, "an element type such as `f32`", &other, ds)),
            }
        }
        Builtin::OneHot => {
            let (v, s) = a.take(0);
            let x = lw.expect_tensor(v, s)?;
            let (d, ds) = a.take(1);
            let depth = match d.as_int() {
                Some(n) if n > 0 => n as usize,
                _ => {
                    return Err(lw.report(
                        Diag::error(
                            Code::E0108,
                            "`one_hot` needs a positive number of classes known while compiling",
                            ds,
                            format!("this is {}", describe(&d)),
                        )
                        .with_note("the depth is usually bound from the predictions' last dimension"),
                    ));
                }
            };
            lw.node(Op::OneHot { depth }, &[x], Some(TensorType::scalar(DType::F32)), span, &[s])
        }
        Builtin::Zeros | Builtin::Ones | Builtin::Full => {
            let (shape_v, ss) = a.take(0);
            let shape = dims_arg(lw, &shape_v, ss)?;
            let (value, dtype_slot) = match b {
                Builtin::Zeros => (0.0, 1),
                Builtin::Ones => (1.0, 1),
                _ => {
                    let (v, vs) = a.take(1);
                    match v.as_f64() {
                        Some(x) => (x, 2),
                        None => return Err(kind_error(lw, "a number", &v, vs)),
                    }
                }
            };
            let dtype = match a.get(dtype_slot) {
                Some((Value::DType(d), _)) => *d,
                Some((other, s)) => return Err(kind_error(lw, "an element type", &other.clone(), *s)),
                None => DType::F32,
            };
            Ok(Value::Tensor(lw.graph.fill(value, dtype, shape, span)))
        }
        Builtin::Uniform | Builtin::Normal => {
            let (shape_v, ss) = a.take(0);
            let shape = dims_arg(lw, &shape_v, ss)?;
            let dist = if b == Builtin::Uniform { Distribution::Uniform } else { Distribution::Normal };
            let stream = lw.next_stream;
            lw.next_stream += 1;
            lw.node(Op::Random { dist, stream }, &[], Some(TensorType::new(DType::F32, shape)), span, &[])
        }
        Builtin::Shape => {
            let (v, s) = a.take(0);
            let x = lw.expect_tensor(v, s)?;
            Ok(Value::List(lw.ty(x).shape.iter().map(super::types::dim_value).collect()))
        }
        Builtin::Constant => {
            let (v, s) = a.take(0);
            match v.as_f64() {
                Some(x) => Ok(Value::Init(Init::Constant(x))),
                None => Err(kind_error(lw, "a number", &v, s)),
            }
        }
        Builtin::Blocks => {
            let (v, s) = a.take(0);
            let values = match &v {
                Value::List(items) if !items.is_empty() => items.iter().map(Value::as_f64).collect(),
                _ => None,
            };
            match values {
                Some(values) => Ok(Value::Init(Init::Blocks(values))),
                None => Err(kind_error(lw, "a non-empty list of numbers", &v, s)),
            }
        }
        Builtin::Conv2d => nn::conv2d(lw, a, span),
        Builtin::MaxPool2d => nn::pool(lw, PoolKind::Max, a, span),
        Builtin::AvgPool2d => nn::pool(lw, PoolKind::Avg, a, span),
        Builtin::UpdateState => nn::update_state(lw, a),
        Builtin::Gather => seq::gather(lw, a, span),
        Builtin::Scan => seq::scan(lw, a, span),
        Builtin::Slice => slicing::slice(lw, a, span),
        Builtin::Split => slicing::split(lw, a, span),
        Builtin::RandomUniform | Builtin::RandomNormal => {
            let (p, ps) = a.take(0);
            let (q, qs) = a.take(1);
            let Some(p) = p.as_f64() else { return Err(kind_error(lw, "a number", &p, ps)) };
            let Some(q) = q.as_f64() else { return Err(kind_error(lw, "a number", &q, qs)) };
            Ok(Value::Init(if b == Builtin::RandomUniform {
                Init::Uniform { low: p, high: q }
            } else {
                Init::Normal { mean: p, std: q }
            }))
        }
    }
}

fn fold_unary(b: Builtin, x: f64) -> f64 {
    match b {
        Builtin::Exp => x.exp(),
        Builtin::Log => x.ln(),
        Builtin::Sqrt => x.sqrt(),
        Builtin::Abs => x.abs(),
        Builtin::Sign => x.signum(),
        Builtin::Tanh => x.tanh(),
        _ => 1.0 / (1.0 + (-x).exp()),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Dim(d) => format!("the symbolic dimension `{d}`"),
        other => other.kind().to_string(),
    }
}

fn kind_error(lw: &mut Lowerer, expected: &str, got: &Value, span: Span) -> Reported {
    lw.report(Diag::error(
        Code::E0108,
        format!("expected {expected}, got {}", got.kind()),
        span,
        format!("this is {}", got.kind()),
    ))
}

/// An axis argument: negative axes count from the end.
fn axis_arg(lw: &mut Lowerer, v: &Value, span: Span, rank: usize) -> Result<usize, Reported> {
    let Some(n) = v.as_int() else { return Err(kind_error(lw, "an axis (an integer)", v, span)) };
    let r = rank as i64;
    if n < -r || n >= r {
        return Err(lw.report(
            Diag::error(
                Code::E0206,
                format!("axis {n} is out of range for a tensor of rank {rank}"),
                span,
                "no such axis",
            )
            .with_note(format!("valid axes are {} to {}", -r, r - 1)),
        ));
    }
    Ok(if n < 0 { (n + r) as usize } else { n as usize })
}

fn reduce(lw: &mut Lowerer, b: Builtin, mut a: Bound, span: Span) -> Lowered {
    let (v, s) = a.take(0);
    let x = lw.expect_tensor(v, s)?;
    let rank = lw.ty(x).rank();
    let mut axes: Vec<usize> = match a.get(1) {
        None => (0..rank).collect(),
        Some((Value::List(items), ls)) => {
            let (items, ls) = (items.clone(), *ls);
            let mut out = Vec::new();
            for it in &items {
                out.push(axis_arg(lw, it, ls, rank)?);
            }
            out
        }
        Some((v, vs)) => {
            let (v, vs) = (v.clone(), *vs);
            vec![axis_arg(lw, &v, vs, rank)?]
        }
    };
    axes.sort_unstable();
    axes.dedup();
    let keep = match a.get(2) {
        None => false,
        Some((Value::Bool(k), _)) => *k,
        Some((other, ks)) => return Err(kind_error(lw, "a bool", &other.clone(), *ks)),
    };
    let op = if b == Builtin::Max { ReduceOp::Max } else { ReduceOp::Sum };
    let total = lw.node(Op::Reduce { op, axes: axes.clone(), keep }, &[x], None, span, &[s])?;
    if b != Builtin::Mean {
        return Ok(total);
    }
    // mean = sum / count; the count is a node because symbolic sizes are known only at run time.
    let Value::Tensor(total) = total else { unreachable!("reduce yields a tensor") };
    let dtype = lw.ty(x).dtype;
    let count = lw.node(Op::SizeOf { axes }, &[x], Some(TensorType::scalar(dtype)), span, &[s])?;
    let Value::Tensor(count) = count else { unreachable!("size_of yields a tensor") };
    lw.node(Op::Binary(BinaryOp::Div), &[total, count], None, span, &[span, span])
}

/// A list of dimensions given as a value (`[B, units]`).
fn dims_arg(lw: &mut Lowerer, v: &Value, span: Span) -> Result<Vec<Dim>, Reported> {
    let Value::List(items) = v else { return Err(kind_error(lw, "a shape (a list of dimensions)", v, span)) };
    let mut out = Vec::new();
    for it in items {
        match it.as_dim() {
            Some(Dim::Const(n)) if n < 0 => {
                return Err(lw.report(Diag::error(
                    Code::E0208,
                    format!("a dimension cannot be negative ({n})"),
                    span,
                    "in this shape",
                )));
            }
            Some(d) => out.push(d),
            None => return Err(kind_error(lw, "a dimension", it, span)),
        }
    }
    Ok(out)
}

/// The target shape of `reshape`, with one `-1` inferred from the element count.
fn reshape_target(lw: &mut Lowerer, from: &TensorType, v: &Value, span: Span) -> Result<Vec<Dim>, Reported> {
    let Value::List(items) = v else { return Err(kind_error(lw, "a shape (a list of dimensions)", v, span)) };
    let mut dims: Vec<Option<Dim>> = Vec::new();
    for it in items {
        match it.as_dim() {
            Some(Dim::Const(-1)) => dims.push(None),
            Some(Dim::Const(n)) if n < 0 => {
                return Err(lw.report(
                    Diag::error(Code::E0208, format!("a dimension cannot be {n}"), span, "in this shape")
                        .with_note("only -1 may stand for an inferred dimension"),
                ));
            }
            Some(d) => dims.push(Some(d)),
            None => return Err(kind_error(lw, "a dimension", it, span)),
        }
    }
    let holes = dims.iter().filter(|d| d.is_none()).count();
    if holes > 1 {
        return Err(lw.report(Diag::error(
            Code::E0208,
            "a shape may contain at most one `-1`",
            span,
            "several `-1`",
        )));
    }
    if holes == 0 {
        return Ok(dims.into_iter().flatten().collect());
    }
    // The hole is what remains of the input's elements after the known target dimensions:
    // literal parts divide, symbols must cancel exactly.
    let mut syms: Vec<Dim> = from.shape.iter().filter(|d| d.as_const().is_none()).cloned().collect();
    let from_lit =
        const_numel(&from.shape.iter().filter(|d| d.as_const().is_some()).cloned().collect::<Vec<_>>())
            .unwrap_or(0);
    let mut to_lit: i64 = 1;
    for d in dims.iter().flatten() {
        match d {
            Dim::Const(n) => to_lit = to_lit.saturating_mul(*n),
            Dim::Sym(_) => match syms.iter().position(|s| s == d) {
                Some(i) => {
                    syms.remove(i);
                }
                None => {
                    return Err(lw.report(Diag::error(
                        Code::E0204,
                        format!("cannot reshape {from}: `{d}` is not a dimension of it"),
                        span,
                        "in this shape",
                    )));
                }
            },
        }
    }
    if !syms.is_empty() || to_lit == 0 || from_lit % to_lit != 0 {
        return Err(lw.report(
            Diag::error(
                Code::E0204,
                format!("cannot infer `-1` when reshaping {from}"),
                span,
                "in this shape",
            )
            .with_note("the remaining elements must be a whole number of literal size"),
        ));
    }
    Ok(dims.into_iter().map(|d| d.unwrap_or(Dim::Const(from_lit / to_lit))).collect())
}
