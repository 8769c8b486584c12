//! What every reference kernel shares: its context, its error type and NumPy broadcasting
//! over concrete shapes.
//!
//! Kernels take owned-or-borrowed [`Value`]s and return a new one; they never panic on a
//! shape or type they were not built for but return [`KernelError`] (the interpreter
//! verifies types beforehand, so such an error is an interpreter bug or a bad graph).

use super::value::Value;
use crate::shape::DType;
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

/// What a kernel knows besides its operands.
#[derive(Clone, Debug)]
pub struct EvalCtx {
    /// The element type of the result (after f32 → f64 promotion, if the run promotes).
    pub dtype: DType,
    /// The result's shape with every symbol resolved, when the interpreter could resolve
    /// it. Ops whose result shape is an attribute (fill, random, reshape, broadcast) need it.
    pub shape: Option<Vec<usize>>,
    /// The run's seed and step, for random ops.
    pub seed: u64,
    pub step: u64,
}

impl EvalCtx {
    pub(super) fn target_shape(&self, op: &'static str) -> Result<&[usize], KernelError> {
        self.shape.as_deref().ok_or(KernelError::UnresolvedShape { op })
    }
}

/// Why a kernel could not compute its result.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("integer division by zero")]
    IntDivByZero,
    #[error("`{op}` needs its result shape, which has an unbound dimension")]
    UnresolvedShape { op: &'static str },
    #[error("`{op}` cannot take {got}")]
    BadOperands { op: &'static str, got: String },
    #[error("shapes {lhs:?} and {rhs:?} do not broadcast")]
    Broadcast { lhs: Vec<usize>, rhs: Vec<usize> },
    #[error("cannot reshape {from:?} into {to:?}")]
    Reshape { from: Vec<usize>, to: Vec<usize> },
    #[error("`{op}`: axis {axis} is out of range for rank {rank}")]
    Axis { op: &'static str, axis: usize, rank: usize },
    #[error("`{op}`: id {id} is out of range for a table of {rows} rows")]
    IdOutOfRange { op: &'static str, id: i64, rows: usize },
    /// A scan body failed at one step.
    #[error("`scan` step {step}: {message}")]
    ScanStep { step: usize, message: String },
}

/// The error for operand element types a kernel does not accept.
pub(super) fn bad_operands(op: &'static str, values: &[&Value]) -> KernelError {
    let got: Vec<String> = values.iter().map(|v| format!("{}{:?}", v.dtype(), v.shape())).collect();
    KernelError::BadOperands { op, got: got.join(", ") }
}

/// NumPy broadcasting of concrete shapes.
pub fn broadcast_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, KernelError> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], k: usize| if k <= s.len() { s[s.len() - k] } else { 1 };
    (1..=rank)
        .rev()
        .map(|k| match (dim(a, k), dim(b, k)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(KernelError::Broadcast { lhs: a.to_vec(), rhs: b.to_vec() }),
        })
        .collect()
}

/// A read-only view of `a` broadcast to `shape`.
pub(super) fn view_as<'a, T>(a: &'a ArrayD<T>, shape: &[usize]) -> Result<ArrayViewD<'a, T>, KernelError> {
    a.broadcast(IxDyn(shape))
        .ok_or_else(|| KernelError::Broadcast { lhs: a.shape().to_vec(), rhs: shape.to_vec() })
}

/// `f` applied elementwise to `a` and `b` broadcast together.
pub(super) fn zip2<A: Copy, B: Copy, R>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    mut f: impl FnMut(A, B) -> R,
) -> Result<ArrayD<R>, KernelError> {
    let shape = broadcast_dims(a.shape(), b.shape())?;
    let (av, bv) = (view_as(a, &shape)?, view_as(b, &shape)?);
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// `f` applied elementwise to three arrays broadcast together.
pub(super) fn zip3<A: Copy, B: Copy, C: Copy, R>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    c: &ArrayD<C>,
    mut f: impl FnMut(A, B, C) -> R,
) -> Result<ArrayD<R>, KernelError> {
    let shape = broadcast_dims(&broadcast_dims(a.shape(), b.shape())?, c.shape())?;
    let (av, bv, cv) = (view_as(a, &shape)?, view_as(b, &shape)?, view_as(c, &shape)?);
    Ok(Zip::from(&av).and(&bv).and(&cv).map_collect(|&x, &y, &z| f(x, y, z)))
}

/// The elements of `a` in row-major order, laid out in `shape` (same element count).
pub(super) fn reshaped<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, KernelError> {
    ArrayD::from_shape_vec(IxDyn(shape), a.iter().cloned().collect())
        .map_err(|_| KernelError::Reshape { from: a.shape().to_vec(), to: shape.to_vec() })
}
