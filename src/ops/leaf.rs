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

/// The generator of random node `stream` at `step` of a run seeded with `seed`.
fn stream_rng(seed: u64, stream: u32, step: u64) -> Rng {
    Rng::derive(Rng::derive(seed, u64::from(stream)).next_u64(), step)
}

/// Fills `out` with the f32 draws of random node `stream` at `step`, exactly the values
/// `eval` gives that node (the compiled step calls this on its own buffer).
pub fn draw_f32(dist: Distribution, stream: u32, seed: u64, step: u64, out: &mut [f32]) {
    let mut rng = stream_rng(seed, stream, step);
    let below_one = (1.0 - f64::from(f32::EPSILON) / 2.0) as f32;
    for o in out {
        *o = match dist {
            Distribution::Uniform => {
                let v = rng.uniform() as f32;
                if v >= 1.0 { below_one } else { v }
            }
            Distribution::Normal => rng.normal() as f32,
        };
    }
}

pub(super) fn eval_random(dist: Distribution, stream: u32, ctx: &EvalCtx) -> Result<Value, KernelError> {
    let shape = ctx.target_shape("random")?;
    let n = shape.iter().product();
    if ctx.dtype == DType::F32 {
        let mut out = vec![0.0f32; n];
        draw_f32(dist, stream, ctx.seed, ctx.step, &mut out);
        let array = ArrayD::from_shape_vec(IxDyn(shape), out);
        return array.map(Value::F32).map_err(|_| KernelError::UnresolvedShape { op: "random" });
    }
    let mut rng = stream_rng(ctx.seed, stream, ctx.step);
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
        other => Err(KernelError::BadOperands { op: "random", got: format!("a result of type {other}") }),
    }
}
