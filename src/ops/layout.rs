//! Layout ops: reshape, transpose, broadcast and one-hot encoding. For each: the shape
//! rule, the reference kernel and the derivative.
//!
//! Kernel conventions: reshape keeps the row-major element order; `one_hot` gives an
//! all-zero row for a label outside `0..depth` (as TensorFlow does), so a negative label
//! can mark a sample to ignore.

use super::kernel::{KernelError, bad_operands, reshaped, view_as};
use super::value::{Value, with_array};
use super::{ShapeError, Vjp, check_axis};
use crate::ir::{Graph, NodeId};
use crate::shape::{DType, Dim, Shape, TensorType, broadcast_shapes, const_numel};
use ndarray::{ArrayD, IxDyn};

pub(super) fn infer_reshape(x: &TensorType, target: Option<&TensorType>) -> Result<TensorType, ShapeError> {
    let to = target.ok_or(ShapeError::MissingTarget { op: "reshape" })?;
    if !same_numel(&x.shape, &to.shape) {
        return Err(ShapeError::Reshape { from: x.shape.clone(), to: to.shape.clone() });
    }
    Ok(TensorType::new(x.dtype, to.shape.clone()))
}

/// Whether two shapes provably hold the same number of elements: the literal parts have
/// equal products and the symbols match as multisets.
pub fn same_numel(a: &[Dim], b: &[Dim]) -> bool {
    let split = |s: &[Dim]| {
        let lits: Vec<Dim> = s.iter().filter(|d| d.as_const().is_some()).cloned().collect();
        let mut syms: Vec<Dim> = s.iter().filter(|d| d.as_const().is_none()).cloned().collect();
        syms.sort();
        (const_numel(&lits), syms)
    };
    split(a) == split(b)
}

pub(super) fn infer_transpose(x: &TensorType, perm: &[usize]) -> Result<TensorType, ShapeError> {
    let mut seen = vec![false; x.rank()];
    let valid = perm.len() == x.rank()
        && perm.iter().all(|&p| p < x.rank() && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(ShapeError::Permutation { perm: perm.to_vec(), rank: x.rank() });
    }
    let shape = perm.iter().map(|&p| x.shape[p].clone()).collect();
    Ok(TensorType::new(x.dtype, shape))
}

pub(super) fn infer_broadcast(x: &TensorType, target: Option<&TensorType>) -> Result<TensorType, ShapeError> {
    let to = target.ok_or(ShapeError::MissingTarget { op: "broadcast" })?;
    let err = || ShapeError::BroadcastTo { from: x.shape.clone(), to: to.shape.clone() };
    match broadcast_shapes(&x.shape, &to.shape) {
        Ok(s) if s == to.shape => Ok(TensorType::new(x.dtype, to.shape.clone())),
        _ => Err(err()),
    }
}

pub(super) fn infer_one_hot(
    labels: &TensorType,
    depth: usize,
    target: Option<&TensorType>,
) -> Result<TensorType, ShapeError> {
    if labels.dtype != DType::I64 {
        return Err(ShapeError::DType { op: "one_hot", expected: "i64 labels", got: labels.dtype });
    }
    let dtype = target.map(|t| t.dtype).unwrap_or(DType::F32);
    let mut shape: Shape = labels.shape.clone();
    shape.push(Dim::Const(depth as i64));
    let _ = check_axis;
    Ok(TensorType::new(dtype, shape))
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

pub(super) fn eval_reshape(x: &Value, shape: &[usize]) -> Result<Value, KernelError> {
    Ok(with_array!(x, a => reshaped(a, shape)?.into()))
}

pub(super) fn eval_transpose(x: &Value, perm: &[usize]) -> Result<Value, KernelError> {
    let rank = x.shape().len();
    let mut seen = vec![false; rank];
    if perm.len() != rank || !perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)) {
        return Err(bad_operands("transpose", &[x]));
    }
    Ok(with_array!(x, a => a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned().into()))
}

pub(super) fn eval_broadcast(x: &Value, shape: &[usize]) -> Result<Value, KernelError> {
    Ok(with_array!(x, a => view_as(a, shape)?.to_owned().into()))
}

pub(super) fn eval_one_hot(labels: &Value, depth: usize, dtype: DType) -> Result<Value, KernelError> {
    let Value::I64(l) = labels else { return Err(bad_operands("one_hot", &[labels])) };
    let mut shape = l.shape().to_vec();
    shape.push(depth);
    let mut out = ArrayD::<f64>::zeros(IxDyn(&shape));
    if let Some(flat) = out.as_slice_mut() {
        for (row, &label) in l.iter().enumerate() {
            if let Ok(k) = usize::try_from(label)
                && k < depth
            {
                flat[row * depth + k] = 1.0;
            }
        }
    }
    Ok(Value::F64(out).cast(dtype))
}

// ---------------------------------------------------------------------------------------
// Derivatives: each layout op's gradient is its inverse applied to `g`.

/// d reshape(x) = reshape(g) back to the shape of x.
pub(super) fn vjp_reshape(graph: &mut Graph, node: NodeId, g: NodeId) -> Vjp {
    let (x, span) = (graph.node(node).inputs[0], graph.node(node).span);
    let shape = graph.ty(x).shape.clone();
    Ok(vec![Some(graph.reshape(g, &shape, span)?)])
}

/// d transpose(x, perm) = transpose(g, perm⁻¹), where perm⁻¹[perm[i]] = i.
pub(super) fn vjp_transpose(graph: &mut Graph, node: NodeId, perm: &[usize], g: NodeId) -> Vjp {
    let span = graph.node(node).span;
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(vec![Some(graph.transpose(g, inverse, span)?)])
}

/// d broadcast(x) = g summed over the broadcast axes (`sum_to` the shape of x).
pub(super) fn vjp_broadcast(graph: &mut Graph, node: NodeId, g: NodeId) -> Vjp {
    let (x, span) = (graph.node(node).inputs[0], graph.node(node).span);
    let shape = graph.ty(x).shape.clone();
    Ok(vec![Some(graph.sum_to(g, &shape, span)?)])
}
