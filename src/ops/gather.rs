//! Embedding lookups: `gather` and its gradient `scatter_add`. For each: the shape rule,
//! the reference kernel and the derivative.
//!
//! gather(table, ids)[i, ..] = table[ids[i], ..] for every index `i` of `ids`, and
//! scatter_add(ids, g)[v, ..] = Σ_{i : ids[i] = v} g[i, ..]. The two are adjoint linear
//! maps in the float operand: ⟨gather(t, ids), g⟩ = ⟨t, scatter_add(ids, g)⟩, so the
//! derivative of each is the other. Ids are integers and get no gradient. An id outside
//! `0..V` is a [`KernelError::IdOutOfRange`], never a panic.

use super::kernel::{KernelError, bad_operands};
use super::value::{Float, Value};
use super::{ShapeError, Vjp};
use crate::ir::{Graph, NodeId, Op};
use crate::shape::{DType, TensorType};
use ndarray::{ArrayD, Axis, IxDyn};

/// `[V, ..rest]` and `i64[..idx]` to `[..idx, ..rest]`.
pub(super) fn infer_gather(table: &TensorType, ids: &TensorType) -> Result<TensorType, ShapeError> {
    if !table.dtype.is_float() {
        return Err(ShapeError::DType { op: "gather", expected: "a float table", got: table.dtype });
    }
    if ids.dtype != DType::I64 {
        return Err(ShapeError::DType { op: "gather", expected: "i64 ids", got: ids.dtype });
    }
    if table.rank() == 0 {
        return Err(ShapeError::Axis { op: "gather", axis: 0, rank: 0 });
    }
    let shape = ids.shape.iter().chain(&table.shape[1..]).cloned().collect();
    Ok(TensorType::new(table.dtype, shape))
}

/// `i64[..idx]` and `[..idx, ..rest]` to the given `[V, ..rest]`.
pub(super) fn infer_scatter_add(
    ids: &TensorType,
    g: &TensorType,
    target: Option<&TensorType>,
) -> Result<TensorType, ShapeError> {
    let target = target.ok_or(ShapeError::MissingTarget { op: "scatter_add" })?;
    if ids.dtype != DType::I64 {
        return Err(ShapeError::DType { op: "scatter_add", expected: "i64 ids", got: ids.dtype });
    }
    if !g.dtype.is_float() || g.dtype != target.dtype {
        return Err(ShapeError::DTypeMismatch { op: "scatter_add", lhs: g.dtype, rhs: target.dtype });
    }
    let expected = infer_gather(target, ids)?;
    if expected.shape != g.shape {
        return Err(ShapeError::BroadcastTo { from: g.shape.clone(), to: expected.shape });
    }
    Ok(target.clone())
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

pub(super) fn eval_gather(table: &Value, ids: &Value) -> Result<Value, KernelError> {
    match (table, ids) {
        (Value::F32(t), Value::I64(i)) => Ok(Value::F32(gather(t, i)?)),
        (Value::F64(t), Value::I64(i)) => Ok(Value::F64(gather(t, i)?)),
        _ => Err(bad_operands("gather", &[table, ids])),
    }
}

/// The row index of `id` in a table of `rows` rows.
fn row(op: &'static str, id: i64, rows: usize) -> Result<usize, KernelError> {
    usize::try_from(id).ok().filter(|&r| r < rows).ok_or(KernelError::IdOutOfRange { op, id, rows })
}

fn gather<T: Float>(table: &ArrayD<T>, ids: &ArrayD<i64>) -> Result<ArrayD<T>, KernelError> {
    if table.ndim() == 0 {
        return Err(KernelError::BadOperands { op: "gather", got: "a scalar table".into() });
    }
    let rows = table.shape()[0];
    let rest = &table.shape()[1..];
    let width: usize = rest.iter().product();
    let mut out = Vec::with_capacity(ids.len() * width);
    for &id in ids.iter() {
        out.extend(table.index_axis(Axis(0), row("gather", id, rows)?).iter().copied());
    }
    let shape: Vec<usize> = ids.shape().iter().chain(rest).copied().collect();
    ArrayD::from_shape_vec(IxDyn(&shape), out)
        .map_err(|_| KernelError::BadOperands { op: "gather", got: format!("table {:?}", table.shape()) })
}

/// `target` is the table's concrete shape `[V, ..rest]`.
pub(super) fn eval_scatter_add(ids: &Value, g: &Value, target: &[usize]) -> Result<Value, KernelError> {
    match (ids, g) {
        (Value::I64(i), Value::F32(g)) => Ok(Value::F32(scatter_add(i, g, target)?)),
        (Value::I64(i), Value::F64(g)) => Ok(Value::F64(scatter_add(i, g, target)?)),
        _ => Err(bad_operands("scatter_add", &[ids, g])),
    }
}

fn scatter_add<T: Float>(
    ids: &ArrayD<i64>,
    g: &ArrayD<T>,
    target: &[usize],
) -> Result<ArrayD<T>, KernelError> {
    let bad = || KernelError::BadOperands {
        op: "scatter_add",
        got: format!("ids {:?} and gradient {:?} for a table {target:?}", ids.shape(), g.shape()),
    };
    let (&rows, rest) = target.split_first().ok_or_else(bad)?;
    let width: usize = rest.iter().product();
    let expected: Vec<usize> = ids.shape().iter().chain(rest).copied().collect();
    if g.shape() != expected.as_slice() {
        return Err(bad());
    }
    let mut out = ArrayD::<T>::zeros(IxDyn(target));
    let g = g.as_standard_layout();
    let (Some(src), Some(dst)) = (g.as_slice(), out.as_slice_mut()) else { return Err(bad()) };
    for (k, &id) in ids.iter().enumerate() {
        let r = row("scatter_add", id, rows)?;
        for (d, s) in dst[r * width..(r + 1) * width].iter_mut().zip(&src[k * width..(k + 1) * width]) {
            *d = *d + *s;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Derivatives.

/// d table = scatter_add(ids, g); the ids get none.
pub(super) fn vjp_gather(graph: &mut Graph, node: NodeId, grad_out: NodeId) -> Vjp {
    let n = graph.node(node).clone();
    let table_ty = graph.ty(n.inputs[0]).clone();
    let d_table = graph.add(Op::ScatterAdd, &[n.inputs[1], grad_out], Some(table_ty), n.span)?;
    Ok(vec![Some(d_table), None])
}

/// d g = gather(grad_out, ids); the ids get none.
pub(super) fn vjp_scatter_add(graph: &mut Graph, node: NodeId, grad_out: NodeId) -> Vjp {
    let n = graph.node(node).clone();
    let d_g = graph.add(Op::Gather, &[grad_out, n.inputs[0]], None, n.span)?;
    Ok(vec![None, Some(d_g)])
}
