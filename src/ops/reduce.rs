//! Reductions: sum and max over axes, argmax, and the element count of axes.

use super::{ShapeError, check_axis};
use crate::shape::{DType, Dim, TensorType};

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
