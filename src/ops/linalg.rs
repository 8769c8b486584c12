//! Matrix products.

use super::ShapeError;
use crate::shape::{TensorType, broadcast_shapes};

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
