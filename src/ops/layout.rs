//! Layout ops: reshape, transpose, broadcast and one-hot encoding.

use super::{ShapeError, check_axis};
use crate::shape::{DType, Dim, Shape, TensorType, broadcast_shapes, const_numel};

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
