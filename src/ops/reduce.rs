//! Reductions: sum and max over axes, argmax, and the element count of axes. For each: the
//! shape rule, the reference kernel and the derivative.
//!
//! Kernel conventions: sums add along each reduced axis in index order, the last axis
//! first; a float max propagates NaN and is -inf over an empty axis (an integer max is the
//! type's minimum); argmax returns the first largest index, a NaN counting as largest, and
//! 0 over an empty axis.

use super::kernel::{KernelError, bad_operands};
use super::value::{Element, Float, Int, Value};
use super::{ShapeError, Vjp, check_axis};
use crate::ir::{BinaryOp, Graph, NodeId, ReduceOp};
use crate::shape::{DType, Dim, Shape, TensorType};
use ndarray::{ArrayD, Axis};

pub(super) fn infer_reduce(
    op: &'static str,
    x: &TensorType,
    axes: &[usize],
    keep: bool,
) -> Result<TensorType, ShapeError> {
    for &a in axes {
        check_axis(op, a, x.rank())?;
    }
    if x.dtype == DType::Bool {
        return Err(ShapeError::DType { op, expected: "a numeric type", got: x.dtype });
    }
    let shape = x
        .shape
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Const(1)),
            (true, false) => None,
        })
        .collect();
    Ok(TensorType::new(x.dtype, shape))
}

pub(super) fn infer_argmax(x: &TensorType, axis: usize) -> Result<TensorType, ShapeError> {
    check_axis("argmax", axis, x.rank())?;
    let mut shape = x.shape.clone();
    shape.remove(axis);
    Ok(TensorType::new(DType::I64, shape))
}

pub(super) fn infer_size_of(
    x: &TensorType,
    axes: &[usize],
    target: Option<&TensorType>,
) -> Result<TensorType, ShapeError> {
    for &a in axes {
        check_axis("size_of", a, x.rank())?;
    }
    let dtype = target.map(|t| t.dtype).unwrap_or(DType::F32);
    Ok(TensorType::scalar(dtype))
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

pub(super) fn eval_reduce(op: ReduceOp, axes: &[usize], keep: bool, x: &Value) -> Result<Value, KernelError> {
    let name = if op == ReduceOp::Sum { "sum" } else { "max" };
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if let Some(&axis) = sorted.iter().find(|&&a| a >= x.shape().len()) {
        return Err(KernelError::Axis { op: name, axis, rank: x.shape().len() });
    }
    Ok(match x {
        Value::F32(a) => Value::F32(reduce_with(a, &sorted, keep, float_fold(op))),
        Value::F64(a) => Value::F64(reduce_with(a, &sorted, keep, float_fold(op))),
        Value::I64(a) => Value::I64(reduce_with(a, &sorted, keep, int_fold(op))),
        Value::U8(a) => Value::U8(reduce_with(a, &sorted, keep, int_fold(op))),
        Value::Bool(_) => return Err(bad_operands(name, &[x])),
    })
}

/// The initial value and step of a fold.
type Fold<T> = (T, fn(T, T) -> T);

fn float_fold<T: Float>(op: ReduceOp) -> Fold<T> {
    match op {
        ReduceOp::Sum => (T::zero(), |acc, v| acc + v),
        ReduceOp::Max => (T::neg_infinity(), |acc, v| if v > acc || v.is_nan() { v } else { acc }),
    }
}

fn int_fold<T: Int>(op: ReduceOp) -> Fold<T> {
    match op {
        ReduceOp::Sum => (T::ZERO, T::wrapping_add),
        ReduceOp::Max => (T::MIN, |acc, v| acc.max(v)),
    }
}

/// Folds `a` along each of `axes` (sorted, distinct, in range), the last axis first.
fn reduce_with<T: Element>(a: &ArrayD<T>, axes: &[usize], keep: bool, (init, step): Fold<T>) -> ArrayD<T> {
    let mut out = a.clone();
    for &axis in axes.iter().rev() {
        out = out.fold_axis(Axis(axis), init, |&acc, &v| step(acc, v));
    }
    if keep {
        for &axis in axes {
            out = out.insert_axis(Axis(axis));
        }
    }
    out
}

pub(super) fn eval_argmax(axis: usize, x: &Value) -> Result<Value, KernelError> {
    let rank = x.shape().len();
    if axis >= rank {
        return Err(KernelError::Axis { op: "argmax", axis, rank });
    }
    fn first_max<T: Element>(a: &ArrayD<T>, axis: usize) -> ArrayD<i64> {
        a.map_axis(Axis(axis), |lane| {
            let mut best = 0;
            for (i, &v) in lane.iter().enumerate().skip(1) {
                let b = lane[best];
                // `b != b` holds only for NaN, which wins and stays.
                #[allow(clippy::eq_op)]
                let best_is_nan = b != b;
                #[allow(clippy::eq_op)]
                let v_is_nan = v != v;
                if !best_is_nan && (v > b || v_is_nan) {
                    best = i;
                }
            }
            best as i64
        })
    }
    Ok(Value::I64(match x {
        Value::F32(a) => first_max(a, axis),
        Value::F64(a) => first_max(a, axis),
        Value::I64(a) => first_max(a, axis),
        Value::U8(a) => first_max(a, axis),
        Value::Bool(a) => first_max(a, axis),
    }))
}

pub(super) fn eval_size_of(axes: &[usize], x: &Value, dtype: DType) -> Result<Value, KernelError> {
    let shape = x.shape();
    let mut n = 1usize;
    for &axis in axes {
        let d = shape.get(axis).ok_or(KernelError::Axis { op: "size_of", axis, rank: shape.len() })?;
        n *= d;
    }
    Ok(Value::scalar(dtype, n as f64))
}

// ---------------------------------------------------------------------------------------
// Derivatives.

/// The shape of `x` with the reduced axes kept as size 1.
fn kept_shape(x: &[Dim], axes: &[usize]) -> Shape {
    x.iter().enumerate().map(|(i, d)| if axes.contains(&i) { Dim::Const(1) } else { d.clone() }).collect()
}

pub(super) fn vjp_reduce(graph: &mut Graph, node: NodeId, op: ReduceOp, axes: &[usize], g: NodeId) -> Vjp {
    let (x, y, span) = (graph.node(node).inputs[0], node, graph.node(node).span);
    let x_shape = graph.ty(x).shape.clone();
    let kept = kept_shape(&x_shape, axes);
    let g_kept = graph.reshape(g, &kept, span)?;
    let dx = match op {
        // d sum(x) = g broadcast back over the reduced axes.
        ReduceOp::Sum => graph.broadcast_to(g_kept, &x_shape, span)?,
        // d max(x) = g·mask / count, mask = (x = max) and count = the number of maximal
        // elements in each reduced group: ties share the gradient equally.
        ReduceOp::Max => {
            let y_kept = graph.reshape(y, &kept, span)?;
            let is_max = graph.binary(BinaryOp::Eq, x, y_kept, span)?;
            let mask = graph.cast(is_max, graph.ty(x).dtype, span)?;
            let count = graph.reduce(ReduceOp::Sum, mask, axes.to_vec(), true, span)?;
            let share = graph.binary(BinaryOp::Div, g_kept, count, span)?;
            graph.binary(BinaryOp::Mul, mask, share, span)?
        }
    };
    Ok(vec![Some(dx)])
}
