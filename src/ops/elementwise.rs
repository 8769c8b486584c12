//! Elementwise ops: unary math, binary arithmetic and comparisons with NumPy broadcasting,
//! `select`, and casts. For each: the shape rule, the reference kernel and the derivative.
//!
//! Kernel conventions (the JIT must match them): `sign` keeps ±0 and NaN; `sigmoid` is
//! evaluated as `1 / (1 + exp(-x))` for x ≥ 0 and `exp(x) / (1 + exp(x))` below, so it
//! never overflows; float `maximum`/`minimum` propagate NaN from either side and return the
//! second operand on ties; integer arithmetic wraps, integer division truncates toward
//! zero and fails on a zero divisor.

use super::kernel::{KernelError, bad_operands, zip2, zip3};
use super::value::{Element, Float, Int, Value};
use super::{ShapeError, Vjp};
use crate::ir::{BinaryOp, Graph, NodeId, Op, UnaryOp};
use crate::shape::{DType, TensorType, broadcast_shapes};
use ndarray::ArrayD;

pub(super) fn infer_unary(op: UnaryOp, x: &TensorType) -> Result<TensorType, ShapeError> {
    let name = Op::Unary(op).name();
    match op {
        UnaryOp::Not if x.dtype != DType::Bool => {
            Err(ShapeError::DType { op: name, expected: "bool", got: x.dtype })
        }
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign if x.dtype == DType::Bool => {
            Err(ShapeError::DType { op: name, expected: "a numeric type", got: x.dtype })
        }
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Tanh | UnaryOp::Sigmoid
            if !x.dtype.is_float() =>
        {
            Err(ShapeError::DType { op: name, expected: "a float type", got: x.dtype })
        }
        _ => Ok(x.clone()),
    }
}

pub(super) fn infer_binary(op: BinaryOp, a: &TensorType, b: &TensorType) -> Result<TensorType, ShapeError> {
    let name = Op::Binary(op).name();
    if a.dtype != b.dtype {
        return Err(ShapeError::DTypeMismatch { op: name, lhs: a.dtype, rhs: b.dtype });
    }
    if op.is_logical() && a.dtype != DType::Bool {
        return Err(ShapeError::DType { op: name, expected: "bool", got: a.dtype });
    }
    if !op.is_logical() && !op.is_comparison() && a.dtype == DType::Bool {
        return Err(ShapeError::DType { op: name, expected: "a numeric type", got: a.dtype });
    }
    if op == BinaryOp::Pow && !a.dtype.is_float() {
        return Err(ShapeError::DType { op: name, expected: "a float type", got: a.dtype });
    }
    let shape = broadcast_shapes(&a.shape, &b.shape).map_err(|err| ShapeError::Broadcast {
        op: name,
        lhs: a.clone(),
        rhs: b.clone(),
        err,
    })?;
    let dtype = if op.is_comparison() { DType::Bool } else { a.dtype };
    Ok(TensorType::new(dtype, shape))
}

pub(super) fn infer_select(
    cond: &TensorType,
    a: &TensorType,
    b: &TensorType,
) -> Result<TensorType, ShapeError> {
    if cond.dtype != DType::Bool {
        return Err(ShapeError::DType { op: "select", expected: "a bool condition", got: cond.dtype });
    }
    let ab = infer_binary(BinaryOp::Add, a, b).map_err(|e| match e {
        ShapeError::Broadcast { lhs, rhs, err, .. } => ShapeError::Broadcast { op: "select", lhs, rhs, err },
        ShapeError::DTypeMismatch { lhs, rhs, .. } => ShapeError::DTypeMismatch { op: "select", lhs, rhs },
        other => other,
    });
    let ab = match ab {
        Ok(t) => t,
        // `select` also chooses between bools, which `add` refuses.
        Err(ShapeError::DType { .. }) => TensorType::new(
            a.dtype,
            broadcast_shapes(&a.shape, &b.shape).map_err(|err| ShapeError::Broadcast {
                op: "select",
                lhs: a.clone(),
                rhs: b.clone(),
                err,
            })?,
        ),
        Err(e) => return Err(e),
    };
    let shape = broadcast_shapes(&cond.shape, &ab.shape).map_err(|err| ShapeError::Broadcast {
        op: "select",
        lhs: cond.clone(),
        rhs: ab.clone(),
        err,
    })?;
    Ok(TensorType::new(ab.dtype, shape))
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

pub(super) fn eval_unary(op: UnaryOp, x: &Value) -> Result<Value, KernelError> {
    let name = Op::Unary(op).name();
    let out = match x {
        Value::F32(a) => float_unary(op, a).map(Value::F32),
        Value::F64(a) => float_unary(op, a).map(Value::F64),
        Value::I64(a) => int_unary(op, a).map(Value::I64),
        Value::U8(a) => int_unary(op, a).map(Value::U8),
        Value::Bool(a) if op == UnaryOp::Not => Some(Value::Bool(a.mapv(|v| !v))),
        Value::Bool(_) => None,
    };
    out.ok_or_else(|| bad_operands(name, &[x]))
}

fn float_unary<T: Float>(op: UnaryOp, a: &ArrayD<T>) -> Option<ArrayD<T>> {
    let f: fn(T) -> T = match op {
        UnaryOp::Neg => |v| -v,
        UnaryOp::Exp => T::exp,
        UnaryOp::Log => T::ln,
        UnaryOp::Sqrt => T::sqrt,
        UnaryOp::Abs => T::abs,
        UnaryOp::Sign => |v| {
            if v > T::zero() {
                T::one()
            } else if v < T::zero() {
                -T::one()
            } else {
                v
            }
        },
        UnaryOp::Tanh => T::tanh,
        UnaryOp::Sigmoid => |v| {
            if v >= T::zero() {
                T::one() / (T::one() + (-v).exp())
            } else {
                let e = v.exp();
                e / (T::one() + e)
            }
        },
        UnaryOp::Not => return None,
    };
    Some(a.mapv(f))
}

fn int_unary<T: Int>(op: UnaryOp, a: &ArrayD<T>) -> Option<ArrayD<T>> {
    match op {
        UnaryOp::Neg => Some(a.mapv(T::wrapping_neg)),
        UnaryOp::Abs => Some(a.mapv(T::wrapping_abs)),
        UnaryOp::Sign => Some(a.mapv(T::signum)),
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Not => None,
    }
}

pub(super) fn eval_binary(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, KernelError> {
    let out = match (a, b) {
        (Value::F32(x), Value::F32(y)) => float_binary(op, x, y)?,
        (Value::F64(x), Value::F64(y)) => float_binary(op, x, y)?,
        (Value::I64(x), Value::I64(y)) => int_binary(op, x, y)?,
        (Value::U8(x), Value::U8(y)) => int_binary(op, x, y)?,
        (Value::Bool(x), Value::Bool(y)) => bool_binary(op, x, y)?,
        _ => None,
    };
    out.ok_or_else(|| bad_operands(Op::Binary(op).name(), &[a, b]))
}

/// Comparisons, shared by every element type; `None` for other ops.
fn compare<T: Element>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Option<Value>, KernelError> {
    let f: fn(T, T) -> bool = match op {
        BinaryOp::Eq => |x, y| x == y,
        BinaryOp::Lt => |x, y| x < y,
        BinaryOp::Le => |x, y| x <= y,
        BinaryOp::Gt => |x, y| x > y,
        BinaryOp::Ge => |x, y| x >= y,
        _ => return Ok(None),
    };
    Ok(Some(Value::Bool(zip2(a, b, f)?)))
}

fn float_binary<T: Float>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Option<Value>, KernelError> {
    let f: fn(T, T) -> T = match op {
        BinaryOp::Add => |x, y| x + y,
        BinaryOp::Sub => |x, y| x - y,
        BinaryOp::Mul => |x, y| x * y,
        BinaryOp::Div => |x, y| x / y,
        BinaryOp::Pow => T::powf,
        BinaryOp::Max => |x, y| if x > y || x.is_nan() { x } else { y },
        BinaryOp::Min => |x, y| if x < y || x.is_nan() { x } else { y },
        BinaryOp::And | BinaryOp::Or => return Ok(None),
        BinaryOp::Eq | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => return compare(op, a, b),
    };
    Ok(Some(T::wrap(zip2(a, b, f)?)))
}

fn int_binary<T: Int>(op: BinaryOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Option<Value>, KernelError> {
    let f: fn(T, T) -> T = match op {
        BinaryOp::Add => T::wrapping_add,
        BinaryOp::Sub => T::wrapping_sub,
        BinaryOp::Mul => T::wrapping_mul,
        BinaryOp::Div => {
            let mut by_zero = false;
            let q = zip2(a, b, |x, y| {
                if y == T::ZERO {
                    by_zero = true;
                    T::ZERO
                } else {
                    x.wrapping_div(y)
                }
            })?;
            return if by_zero { Err(KernelError::IntDivByZero) } else { Ok(Some(T::wrap(q))) };
        }
        BinaryOp::Max => |x, y| x.max(y),
        BinaryOp::Min => |x, y| x.min(y),
        BinaryOp::Pow | BinaryOp::And | BinaryOp::Or => return Ok(None),
        BinaryOp::Eq | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => return compare(op, a, b),
    };
    Ok(Some(T::wrap(zip2(a, b, f)?)))
}

fn bool_binary(op: BinaryOp, a: &ArrayD<bool>, b: &ArrayD<bool>) -> Result<Option<Value>, KernelError> {
    match op {
        BinaryOp::And => Ok(Some(Value::Bool(zip2(a, b, |x, y| x && y)?))),
        BinaryOp::Or => Ok(Some(Value::Bool(zip2(a, b, |x, y| x || y)?))),
        _ => compare(op, a, b),
    }
}

pub(super) fn eval_select(cond: &Value, a: &Value, b: &Value) -> Result<Value, KernelError> {
    let Value::Bool(c) = cond else { return Err(bad_operands("select", &[cond, a, b])) };
    fn pick<T: Copy>(c: bool, x: T, y: T) -> T {
        if c { x } else { y }
    }
    Ok(match (a, b) {
        (Value::F32(x), Value::F32(y)) => Value::F32(zip3(c, x, y, pick)?),
        (Value::F64(x), Value::F64(y)) => Value::F64(zip3(c, x, y, pick)?),
        (Value::I64(x), Value::I64(y)) => Value::I64(zip3(c, x, y, pick)?),
        (Value::U8(x), Value::U8(y)) => Value::U8(zip3(c, x, y, pick)?),
        (Value::Bool(x), Value::Bool(y)) => Value::Bool(zip3(c, x, y, pick)?),
        _ => return Err(bad_operands("select", &[cond, a, b])),
    })
}

// ---------------------------------------------------------------------------------------
// Derivatives. `g` is the gradient of the result, `y` the result; every operand's
// gradient is summed back to the operand's shape (`sum_to`) where the op broadcasts.

pub(super) fn vjp_unary(graph: &mut Graph, node: NodeId, op: UnaryOp, g: NodeId) -> Vjp {
    let (x, y, span) = (graph.node(node).inputs[0], node, graph.node(node).span);
    let dx = match op {
        // d(-x) = -g.
        UnaryOp::Neg => graph.unary(UnaryOp::Neg, g, span)?,
        // d exp(x) = g·y.
        UnaryOp::Exp => graph.binary(BinaryOp::Mul, g, y, span)?,
        // d log(x) = g / x.
        UnaryOp::Log => graph.binary(BinaryOp::Div, g, x, span)?,
        // d sqrt(x) = g / (2·y).
        UnaryOp::Sqrt => {
            let two_y = graph.binary(BinaryOp::Add, y, y, span)?;
            graph.binary(BinaryOp::Div, g, two_y, span)?
        }
        // d |x| = g·sign(x); at the kink x = 0 this picks the subgradient 0.
        UnaryOp::Abs => {
            let s = graph.unary(UnaryOp::Sign, x, span)?;
            graph.binary(BinaryOp::Mul, g, s, span)?
        }
        // d tanh(x) = g·(1 − y²).
        UnaryOp::Tanh => {
            let one = graph.scalar_like(1.0, y, span);
            let y2 = graph.binary(BinaryOp::Mul, y, y, span)?;
            let d = graph.binary(BinaryOp::Sub, one, y2, span)?;
            graph.binary(BinaryOp::Mul, g, d, span)?
        }
        // d sigmoid(x) = g·y·(1 − y).
        UnaryOp::Sigmoid => {
            let one = graph.scalar_like(1.0, y, span);
            let one_minus_y = graph.binary(BinaryOp::Sub, one, y, span)?;
            let d = graph.binary(BinaryOp::Mul, y, one_minus_y, span)?;
            graph.binary(BinaryOp::Mul, g, d, span)?
        }
        // sign is piecewise constant (derivative 0 almost everywhere); not is boolean.
        UnaryOp::Sign | UnaryOp::Not => return Ok(vec![None]),
    };
    Ok(vec![Some(dx)])
}

pub(super) fn vjp_binary(graph: &mut Graph, node: NodeId, op: BinaryOp, g: NodeId) -> Vjp {
    let n = graph.node(node);
    let (a, b, y, span) = (n.inputs[0], n.inputs[1], node, n.span);
    let (da, db) = match op {
        // d(a + b) = (g, g).
        BinaryOp::Add => (g, g),
        // d(a − b) = (g, −g).
        BinaryOp::Sub => (g, graph.unary(UnaryOp::Neg, g, span)?),
        // d(a·b) = (g·b, g·a).
        BinaryOp::Mul => (graph.binary(BinaryOp::Mul, g, b, span)?, graph.binary(BinaryOp::Mul, g, a, span)?),
        // d(a / b) = (g / b, −g·a / b²) = (g / b, −(g·y) / b).
        BinaryOp::Div => {
            let da = graph.binary(BinaryOp::Div, g, b, span)?;
            let gy = graph.binary(BinaryOp::Mul, g, y, span)?;
            let gy_b = graph.binary(BinaryOp::Div, gy, b, span)?;
            (da, graph.unary(UnaryOp::Neg, gy_b, span)?)
        }
        // d(a^b) = (g·b·a^(b−1), g·y·ln a). ln a is taken as 0 where a ≤ 0: the real power
        // has no derivative in b there, and 0^b has derivative 0 in b for b > 0. The
        // guard is applied before the log so that no NaN is ever computed.
        BinaryOp::Pow => {
            let one = graph.scalar_like(1.0, b, span);
            let b_minus_1 = graph.binary(BinaryOp::Sub, b, one, span)?;
            let p = graph.binary(BinaryOp::Pow, a, b_minus_1, span)?;
            let bp = graph.binary(BinaryOp::Mul, b, p, span)?;
            let da = graph.binary(BinaryOp::Mul, g, bp, span)?;
            let zero = graph.scalar_like(0.0, a, span);
            let positive = graph.binary(BinaryOp::Gt, a, zero, span)?;
            let one_a = graph.scalar_like(1.0, a, span);
            let safe_a = graph.select(positive, a, one_a, span)?;
            let ln_a = graph.unary(UnaryOp::Log, safe_a, span)?;
            let y_ln_a = graph.binary(BinaryOp::Mul, y, ln_a, span)?;
            (da, graph.binary(BinaryOp::Mul, g, y_ln_a, span)?)
        }
        // d max(a, b) routes g to the operand that was selected; on ties (a = b) all of g
        // goes to `a`, as in TensorFlow: mask = a ≥ b, (g·mask, g·¬mask).
        // d min(a, b) likewise with mask = a ≤ b.
        BinaryOp::Max | BinaryOp::Min => {
            let cmp = if op == BinaryOp::Max { BinaryOp::Ge } else { BinaryOp::Le };
            let mask = graph.binary(cmp, a, b, span)?;
            let zero = graph.scalar_like(0.0, g, span);
            (graph.select(mask, g, zero, span)?, graph.select(mask, zero, g, span)?)
        }
        // Comparisons and logic produce bools: no gradient.
        BinaryOp::Eq
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::And
        | BinaryOp::Or => return Ok(vec![None, None]),
    };
    let (sa, sb) = (graph.ty(a).shape.clone(), graph.ty(b).shape.clone());
    Ok(vec![Some(graph.sum_to(da, &sa, span)?), Some(graph.sum_to(db, &sb, span)?)])
}

/// d select(c, a, b) = (none, select(c, g, 0), select(c, 0, g)), each summed to its operand.
pub(super) fn vjp_select(graph: &mut Graph, node: NodeId, g: NodeId) -> Vjp {
    let n = graph.node(node);
    let (c, a, b, span) = (n.inputs[0], n.inputs[1], n.inputs[2], n.span);
    let zero = graph.scalar_like(0.0, g, span);
    let da = graph.select(c, g, zero, span)?;
    let db = graph.select(c, zero, g, span)?;
    let (sa, sb) = (graph.ty(a).shape.clone(), graph.ty(b).shape.clone());
    Ok(vec![None, Some(graph.sum_to(da, &sa, span)?), Some(graph.sum_to(db, &sb, span)?)])
}

/// A float-to-float cast passes the gradient through, cast back: d cast(x) = cast(g).
/// Casts from or to integers and bools have no gradient.
pub(super) fn vjp_cast(graph: &mut Graph, node: NodeId, g: NodeId) -> Vjp {
    let (x, span) = (graph.node(node).inputs[0], graph.node(node).span);
    let from = graph.ty(x).dtype;
    if !from.is_float() || !graph.ty(node).dtype.is_float() {
        return Ok(vec![None]);
    }
    Ok(vec![Some(graph.cast(g, from, span)?)])
}
