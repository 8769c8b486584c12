//! Leaves: graph inputs, parameters, constants and random draws. They have no operands,
//! so their type is an attribute, and no derivative flows through them.

use super::ShapeError;
use crate::ir::Op;
use crate::shape::TensorType;

pub(super) fn infer(op: &Op, target: Option<&TensorType>) -> Result<TensorType, ShapeError> {
    let ty = target.ok_or(ShapeError::MissingTarget { op: op.name() })?;
    if let Op::Random { .. } = op
        && !ty.dtype.is_float()
    {
        return Err(ShapeError::DType { op: op.name(), expected: "a float type", got: ty.dtype });
    }
    Ok(ty.clone())
}
