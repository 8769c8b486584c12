//! Matrix products: the shape rule, the reference kernel and the derivative.
//!
//! The kernel multiplies 2-D operands with ndarray's `dot`; higher ranks broadcast the
//! batch axes and multiply one matrix pair per batch index, in row-major batch order.

use super::kernel::{KernelError, bad_operands, broadcast_dims, view_as};
use super::value::{Float, Value};
use super::{ShapeError, Vjp};
use crate::ir::{Graph, NodeId};
use crate::shape::{TensorType, broadcast_shapes};
use ndarray::{ArrayD, ArrayView2, Axis, Dimension, Ix2, IxDyn};

/// `[.., M, K] @ [.., K, N] -> [.., M, N]`, the leading axes broadcast.
pub(super) fn infer_matmul(a: &TensorType, b: &TensorType) -> Result<TensorType, ShapeError> {
    let err = |reason: String| ShapeError::MatMul { lhs: a.clone(), rhs: b.clone(), reason };
    if a.dtype != b.dtype {
        return Err(ShapeError::DTypeMismatch { op: "matmul", lhs: a.dtype, rhs: b.dtype });
    }
    if !a.dtype.is_float() {
        return Err(ShapeError::DType { op: "matmul", expected: "a float type", got: a.dtype });
    }
    if a.rank() < 2 || b.rank() < 2 {
        return Err(err("both operands need at least two axes".into()));
    }
    let (m, k1) = (&a.shape[a.rank() - 2], &a.shape[a.rank() - 1]);
    let (k2, n) = (&b.shape[b.rank() - 2], &b.shape[b.rank() - 1]);
    if k1 != k2 {
        return Err(err(format!("inner dimensions differ: {k1} against {k2}")));
    }
    let batch = broadcast_shapes(&a.shape[..a.rank() - 2], &b.shape[..b.rank() - 2])
        .map_err(|e| err(format!("batch dimensions {} and {} do not broadcast", e.lhs, e.rhs)))?;
    let mut shape = batch;
    shape.push(m.clone());
    shape.push(n.clone());
    Ok(TensorType::new(a.dtype, shape))
}

// ---------------------------------------------------------------------------------------
// Reference kernel.

pub(super) fn eval_matmul(a: &Value, b: &Value) -> Result<Value, KernelError> {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => Ok(Value::F32(matmul(x, y)?)),
        (Value::F64(x), Value::F64(y)) => Ok(Value::F64(matmul(x, y)?)),
        _ => Err(bad_operands("matmul", &[a, b])),
    }
}

/// `[.., M, K] @ [.., K, N]`, one `dot` per batch index.
fn matmul<T: Float>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>, KernelError> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra < 2 || rb < 2 || a.shape()[ra - 1] != b.shape()[rb - 2] {
        return Err(bad_shapes(a, b));
    }
    let (m, n) = (a.shape()[ra - 2], b.shape()[rb - 1]);
    let batch = broadcast_dims(&a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let full = |s: &[usize]| [batch.as_slice(), &s[s.len() - 2..]].concat();
    let (av, bv) = (view_as(a, &full(a.shape()))?, view_as(b, &full(b.shape()))?);
    let mut out = Vec::with_capacity(batch.iter().product::<usize>() * m * n);
    for index in ndarray::indices(IxDyn(&batch)) {
        let (mut x, mut y) = (av.view(), bv.view());
        for &i in index.slice() {
            x = x.index_axis_move(Axis(0), i);
            y = y.index_axis_move(Axis(0), i);
        }
        let x: ArrayView2<T> = x.into_dimensionality::<Ix2>().map_err(|_| bad_shapes(a, b))?;
        let y: ArrayView2<T> = y.into_dimensionality::<Ix2>().map_err(|_| bad_shapes(a, b))?;
        out.extend(x.dot(&y).iter().copied());
    }
    let mut shape = batch;
    shape.extend([m, n]);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|_| bad_shapes(a, b))
}

fn bad_shapes<T>(a: &ArrayD<T>, b: &ArrayD<T>) -> KernelError {
    KernelError::BadOperands { op: "matmul", got: format!("{:?} and {:?}", a.shape(), b.shape()) }
}

// ---------------------------------------------------------------------------------------
// Derivative.

/// For C = A·B over the last two axes: dA = g·Bᵀ and dB = Aᵀ·g, each summed over the batch
/// axes its operand was broadcast along (`sum_to`).
pub(super) fn vjp_matmul(graph: &mut Graph, node: NodeId, g: NodeId) -> Vjp {
    let n = graph.node(node);
    let (a, b, span) = (n.inputs[0], n.inputs[1], n.span);
    let swap_last = |rank: usize| {
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 1, rank - 2);
        perm
    };
    let bt = graph.transpose(b, swap_last(graph.ty(b).rank()), span)?;
    let at = graph.transpose(a, swap_last(graph.ty(a).rank()), span)?;
    let da = graph.matmul(g, bt, span)?;
    let db = graph.matmul(at, g, span)?;
    let (sa, sb) = (graph.ty(a).shape.clone(), graph.ty(b).shape.clone());
    Ok(vec![Some(graph.sum_to(da, &sa, span)?), Some(graph.sum_to(db, &sb, span)?)])
}
