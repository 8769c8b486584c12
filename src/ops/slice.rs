//! `slice` and `pad` along the last axis: the shape rules, the reference kernels and the
//! derivatives. Each is the other's derivative: `slice` keeps elements `start..start +
//! len` of the last axis, `pad` puts its operands back at their starts of a longer last
//! axis (disjoint windows) and fills the rest with zeros; the sum of pads with disjoint
//! windows is one pad (`simplify` merges them), a concatenation when they cover the axis.
//!
//! Invariant: the last axis of a slice's operand, and the padded length, are literal
//! sizes, and the kept window lies inside them (checked by the shape rules), so the
//! kernels index in bounds.

use super::kernel::{KernelError, bad_operands};
use super::value::{Value, with_array};
use super::{ShapeError, Vjp};
use crate::ir::{Graph, NodeId, Op};
use crate::shape::{Dim, TensorType};
use ndarray::{Axis, Slice};

fn error(op: &'static str, input: &TensorType, reason: String) -> ShapeError {
    ShapeError::Slice { op, input: input.clone(), reason }
}

/// The literal size of the last axis of `x`.
fn last_axis(op: &'static str, x: &TensorType) -> Result<usize, ShapeError> {
    match x.shape.last() {
        None => Err(error(op, x, "a scalar has no last axis".into())),
        Some(Dim::Const(n)) if *n >= 0 => Ok(*n as usize),
        Some(d) => Err(error(op, x, format!("the last axis `{d}` must have a size known while compiling"))),
    }
}

/// `x [.., N]` to `[.., len]`, with `start + len <= N` and `len > 0`.
pub(super) fn infer_slice(x: &TensorType, start: usize, len: usize) -> Result<TensorType, ShapeError> {
    let n = last_axis("slice", x)?;
    if len == 0 || start.checked_add(len).is_none_or(|end| end > n) {
        return Err(error(
            "slice",
            x,
            format!("elements {start}..{} are not a non-empty part of 0..{n}", start + len),
        ));
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("checked above") = Dim::Const(len as i64);
    Ok(TensorType::new(x.dtype, shape))
}

/// Operands `[.., len_i]` (one element type, one leading shape) to `[.., total]`, with the
/// windows `starts[i]..starts[i] + len_i` disjoint and inside `0..total`.
pub(super) fn infer_pad(
    xs: &[&TensorType],
    starts: &[usize],
    total: usize,
) -> Result<TensorType, ShapeError> {
    let Some(first) = xs.first() else {
        return Err(ShapeError::Arity { op: "pad", expected: starts.len().max(1), got: 0 });
    };
    let mut windows = Vec::with_capacity(xs.len());
    for (x, &start) in xs.iter().zip(starts) {
        let len = last_axis("pad", x)?;
        if x.dtype != first.dtype || x.shape[..x.rank() - 1] != first.shape[..first.rank() - 1] {
            return Err(error("pad", x, format!("its leading axes or element type differ from {first}")));
        }
        if start.checked_add(len).is_none_or(|end| end > total) {
            return Err(error("pad", x, format!("{len} elements at {start} do not fit in {total}")));
        }
        windows.push((start, start + len));
    }
    windows.sort_unstable();
    if windows.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(error("pad", first, format!("the windows {windows:?} overlap")));
    }
    let mut shape = first.shape.clone();
    *shape.last_mut().expect("checked above") = Dim::Const(total as i64);
    Ok(TensorType::new(first.dtype, shape))
}

pub(super) fn eval_slice(x: &Value, start: usize, len: usize) -> Result<Value, KernelError> {
    let shape = x.shape();
    let Some(&n) = shape.last() else { return Err(bad_operands("slice", &[x])) };
    if start + len > n {
        return Err(bad_operands("slice", &[x]));
    }
    let axis = Axis(shape.len() - 1);
    Ok(with_array!(x, a => a.slice_axis(axis, Slice::from(start..start + len)).to_owned().into()))
}

pub(super) fn eval_pad(xs: &[&Value], starts: &[usize], total: usize) -> Result<Value, KernelError> {
    let bad = || bad_operands("pad", xs);
    let first = xs.first().ok_or_else(bad)?;
    let mut shape = first.shape().to_vec();
    let axis = Axis(shape.len().checked_sub(1).ok_or_else(bad)?);
    *shape.last_mut().ok_or_else(bad)? = total;
    let mut out = Value::filled(first.dtype(), &shape, 0.0);
    for (x, &start) in xs.iter().zip(starts) {
        let len = *x.shape().last().ok_or_else(bad)?;
        if start + len > total || x.dtype() != out.dtype() {
            return Err(bad());
        }
        let window = Slice::from(start..start + len);
        match (&mut out, x) {
            (Value::F32(o), Value::F32(a)) => o.slice_axis_mut(axis, window).assign(a),
            (Value::F64(o), Value::F64(a)) => o.slice_axis_mut(axis, window).assign(a),
            (Value::I64(o), Value::I64(a)) => o.slice_axis_mut(axis, window).assign(a),
            (Value::U8(o), Value::U8(a)) => o.slice_axis_mut(axis, window).assign(a),
            (Value::Bool(o), Value::Bool(a)) => o.slice_axis_mut(axis, window).assign(a),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// d slice(x) = g padded back to the last axis of x.
pub(super) fn vjp_slice(graph: &mut Graph, node: NodeId, start: usize, g: NodeId) -> Vjp {
    let (x, span) = (graph.node(node).inputs[0], graph.node(node).span);
    let total = last_axis("slice", graph.ty(x))?;
    Ok(vec![Some(graph.add(Op::Pad { starts: vec![start], total }, &[g], None, span)?)])
}

/// d pad(x_1, .., x_n) = for each x_i, the window of g where it was placed.
pub(super) fn vjp_pad(graph: &mut Graph, node: NodeId, starts: &[usize], g: NodeId) -> Vjp {
    let (xs, span) = (graph.node(node).inputs.clone(), graph.node(node).span);
    let mut grads = Vec::with_capacity(xs.len());
    for (&x, &start) in xs.iter().zip(starts) {
        let len = last_axis("pad", graph.ty(x))?;
        grads.push(Some(graph.add(Op::Slice { start, len }, &[g], None, span)?));
    }
    Ok(grads)
}
