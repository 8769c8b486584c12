//! Elementwise ops: unary math, binary arithmetic and comparisons with NumPy broadcasting,
//! `select`, and casts.

use super::ShapeError;
use crate::ir::{BinaryOp, Op, UnaryOp};
use crate::shape::{DType, TensorType, broadcast_shapes};

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
