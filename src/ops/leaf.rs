//! Leaves: graph inputs, parameters, constants and random draws. They have no operands,
//! so their type is an attribute, and no derivative flows through them. Inputs and
//! parameters are supplied by the interpreter; this file computes constants and draws.
//!
//! A random node draws from `Rng::derive(Rng::derive(seed, stream).next_u64(), step)`:
//! the run's seed, the node's stream id and the step counter, so a step is reproducible
//! and different steps and streams differ. Elements are drawn in row-major order as f64
//! and rounded to the node's type; a uniform draw that rounds up to 1 becomes the largest
//! value below 1, keeping the interval [0, 1).

use super::ShapeError;
use super::kernel::{EvalCtx, KernelError};
use super::value::Value;
use crate::ir::{Distribution, Op};
use crate::runtime::rng::Rng;
use crate::shape::{DType, TensorType};
use ndarray::{ArrayD, IxDyn};

pub(super) fn infer(op: &Op, target: Option<&TensorType>) -> Result<TensorType, ShapeError> {
    let ty = target.ok_or(ShapeError::MissingTarget { op: op.name() })?;
    if let Op::Random { .. } = op
        && !ty.dtype.is_float()
    {
        return Err(ShapeError::DType { op: op.name(), expected: "a float type", got: ty.dtype });
    }
    Ok(ty.clone())
}

pub(super) fn eval_fill(value: f64, ctx: &EvalCtx) -> Result<Value, KernelError> {
    Ok(Value::filled(ctx.dtype, ctx.target_shape("fill")?, value))
}

pub(super) fn eval_random(dist: Distribution, stream: u32, ctx: &EvalCtx) -> Result<Value, KernelError> {
    let shape = ctx.target_shape("random")?;
    let mut rng = Rng::derive(Rng::derive(ctx.seed, u64::from(stream)).next_u64(), ctx.step);
    let n = shape.iter().product();
    let draws: Vec<f64> = (0..n)
        .map(|_| match dist {
            Distribution::Uniform => rng.uniform(),
            Distribution::Normal => rng.normal(),
        })
        .collect();
    let array = |v: Vec<f64>| {
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|_| KernelError::UnresolvedShape { op: "random" })
    };
    match ctx.dtype {
        DType::F64 => Ok(Value::F64(array(draws)?)),
        DType::F32 => {
            let below_one = 1.0 - f64::from(f32::EPSILON) / 2.0;
            let rounded = draws.into_iter().map(|v| match dist {
                Distribution::Uniform if v as f32 >= 1.0 => below_one,
                _ => v,
            });
            Ok(Value::F64(array(rounded.collect())?).cast(DType::F32))
        }
        other => Err(KernelError::BadOperands { op: "random", got: format!("a result of type {other}") }),
    }
}
