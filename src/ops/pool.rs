//! 2-D pooling and its gradient: `max_pool2d` / `avg_pool2d` and `max_pool2d_grad` /
//! `avg_pool2d_grad`. For each: the shape rule, the reference kernel and the derivative.
//!
//! Pooling runs over `[B, H, W, C]` channel by channel, with the window geometry of
//! `window.rs` (no dilation). Padding never takes part, as in Keras: a max ignores it and
//! an average divides by the number of elements inside the input, so a `same` border
//! window averages fewer elements. The max is the first largest element of its window in
//! row-major order, a NaN winning (as `max` reduces); the gradient goes to that element
//! alone.

use super::conv::{contiguous, dims4, expect_shape, out_dim};
use super::kernel::{KernelError, bad_operands};
use super::value::{Float, Value};
use super::window::{AxisWindow, Window2D};
use super::{ShapeError, Vjp};
use crate::ir::{Graph, NodeId, Op, Padding, PoolKind};
use crate::shape::TensorType;
use ndarray::{ArrayD, IxDyn};

/// The attributes of the pooling ops.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct PoolAttrs {
    pub kind: PoolKind,
    pub window: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Padding,
}

impl PoolAttrs {
    pub(super) fn of(op: &Op) -> Option<PoolAttrs> {
        match *op {
            Op::Pool2D { kind, window, stride, padding }
            | Op::Pool2DGrad { kind, window, stride, padding } => {
                Some(PoolAttrs { kind, window, stride, padding })
            }
            _ => None,
        }
    }

    fn op_name(self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool2d",
            PoolKind::Avg => "avg_pool2d",
        }
    }
}

/// `[B, H, W, C] -> [B, H', W', C]`.
pub(super) fn infer_pool(x: &TensorType, a: PoolAttrs) -> Result<TensorType, ShapeError> {
    let op = a.op_name();
    let d = dims4(op, "input", x)?;
    let h = out_dim(op, x, 1, (a.window[0], a.stride[0], 1), a.padding)?;
    let w = out_dim(op, x, 2, (a.window[1], a.stride[1], 1), a.padding)?;
    Ok(TensorType::new(x.dtype, vec![d[0].clone(), h, w, d[3].clone()]))
}

/// `(x, g)` to the type of `x`, when `g` has the type of the pooled `x`.
pub(super) fn infer_pool_grad(
    x: &TensorType,
    g: &TensorType,
    a: PoolAttrs,
) -> Result<TensorType, ShapeError> {
    let y = infer_pool(x, a)?;
    expect_shape(if a.kind == PoolKind::Max { "max_pool2d_grad" } else { "avg_pool2d_grad" }, &y, g)?;
    Ok(x.clone())
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

fn geometry(op: &'static str, x: &[usize], a: PoolAttrs) -> Result<Window2D, KernelError> {
    let bad = || KernelError::BadOperands { op, got: format!("an input of shape {x:?}") };
    let [b, h, w, c] = <[usize; 4]>::try_from(x).map_err(|_| bad())?;
    let rows = AxisWindow::new(h, a.window[0], a.stride[0], 1, a.padding).ok_or_else(bad)?;
    let cols = AxisWindow::new(w, a.window[1], a.stride[1], 1, a.padding).ok_or_else(bad)?;
    Ok(Window2D { batch: b, channels: c, rows, cols })
}

/// Calls `f(output offset, input offsets of the window)` for every output position; the
/// offsets are those of channel 0 (channels follow contiguously).
fn for_each_window(win: &Window2D, mut f: impl FnMut(usize, &[usize])) {
    let Window2D { batch, channels: c, rows, cols } = *win;
    let mut taps = Vec::with_capacity(rows.size * cols.size);
    for b in 0..batch {
        for o in 0..rows.output {
            for p in 0..cols.output {
                taps.clear();
                for i in 0..rows.size {
                    let Some(h) = rows.source(o, i) else { continue };
                    for j in 0..cols.size {
                        let Some(w) = cols.source(p, j) else { continue };
                        taps.push(((b * rows.input + h) * cols.input + w) * c);
                    }
                }
                f(((b * rows.output + o) * cols.output + p) * c, &taps);
            }
        }
    }
}

/// The offset of the first largest element of channel `ch` among `taps` (never empty: a
/// window always overlaps the input).
#[inline]
fn argmax<T: Float>(x: &[T], taps: &[usize], ch: usize) -> usize {
    let mut best = taps[0] + ch;
    for &t in &taps[1..] {
        let (v, b) = (x[t + ch], x[best]);
        if !b.is_nan() && (v > b || v.is_nan()) {
            best = t + ch;
        }
    }
    best
}

fn pool<T: Float>(x: &ArrayD<T>, a: PoolAttrs) -> Result<ArrayD<T>, KernelError> {
    let win = geometry(a.op_name(), x.shape(), a)?;
    let xs = contiguous(x);
    let c = win.channels;
    let mut y = vec![T::zero(); win.batch * win.rows.output * win.cols.output * c];
    for_each_window(&win, |out, taps| {
        for ch in 0..c {
            y[out + ch] = match a.kind {
                PoolKind::Max => xs[argmax(&xs, taps, ch)],
                PoolKind::Avg => {
                    let sum = taps.iter().fold(T::zero(), |acc, &t| acc + xs[t + ch]);
                    sum / T::from_f64(taps.len() as f64)
                }
            };
        }
    });
    let shape = [win.batch, win.rows.output, win.cols.output, c];
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), y).expect("one element per output position"))
}

fn pool_grad<T: Float>(x: &ArrayD<T>, g: &ArrayD<T>, a: PoolAttrs) -> Result<ArrayD<T>, KernelError> {
    let op = if a.kind == PoolKind::Max { "max_pool2d_grad" } else { "avg_pool2d_grad" };
    let win = geometry(op, x.shape(), a)?;
    let c = win.channels;
    if g.shape() != [win.batch, win.rows.output, win.cols.output, c] {
        return Err(KernelError::BadOperands { op, got: format!("a gradient of shape {:?}", g.shape()) });
    }
    let (xs, gs) = (contiguous(x), contiguous(g));
    let mut dx = vec![T::zero(); xs.len()];
    for_each_window(&win, |out, taps| {
        for ch in 0..c {
            let g = gs[out + ch];
            match a.kind {
                PoolKind::Max => {
                    let at = argmax(&xs, taps, ch);
                    dx[at] = dx[at] + g;
                }
                PoolKind::Avg => {
                    let share = g / T::from_f64(taps.len() as f64);
                    for &t in taps {
                        dx[t + ch] = dx[t + ch] + share;
                    }
                }
            }
        }
    });
    Ok(ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("one element per input position"))
}

pub(super) fn eval_pool(op: &Op, x: &Value) -> Result<Value, KernelError> {
    let a = PoolAttrs::of(op).ok_or_else(|| bad_operands(op.name(), &[x]))?;
    match x {
        Value::F32(v) => Ok(Value::F32(pool(v, a)?)),
        Value::F64(v) => Ok(Value::F64(pool(v, a)?)),
        _ => Err(bad_operands(op.name(), &[x])),
    }
}

pub(super) fn eval_pool_grad(op: &Op, x: &Value, g: &Value) -> Result<Value, KernelError> {
    let a = PoolAttrs::of(op).ok_or_else(|| bad_operands(op.name(), &[x, g]))?;
    match (x, g) {
        (Value::F32(x), Value::F32(g)) => Ok(Value::F32(pool_grad(x, g, a)?)),
        (Value::F64(x), Value::F64(g)) => Ok(Value::F64(pool_grad(x, g, a)?)),
        _ => Err(bad_operands(op.name(), &[x, g])),
    }
}

// ---------------------------------------------------------------------------------------
// Derivatives.

/// y = pool(x): dx = pool_grad(x, G). For a max, dx[p] = Σ_o G[o]·[p = argmax of window
/// o]; for an average, dx[p] = Σ_{o ∋ p} G[o] / count(o).
pub(super) fn vjp_pool(graph: &mut Graph, node: NodeId, a: PoolAttrs, g: NodeId) -> Vjp {
    let (x, span) = (graph.node(node).inputs[0], graph.node(node).span);
    let op = Op::Pool2DGrad { kind: a.kind, window: a.window, stride: a.stride, padding: a.padding };
    Ok(vec![Some(graph.add(op, &[x, g], None, span)?)])
}

/// z = pool_grad(x, g): z is piecewise constant in x (the argmax positions; an average
/// does not read x at all), so x gets no gradient. It is linear in g: for an average,
/// ⟨z, G⟩ = Σ_o g[o] Σ_{p ∈ o} G[p] / count(o), so dg = avg_pool2d(G). For a max, dg[o] =
/// G[argmax of window o], a gather no primitive expresses: the second derivative of max
/// pooling is not supported.
pub(super) fn vjp_pool_grad(graph: &mut Graph, node: NodeId, a: PoolAttrs, g: NodeId) -> Vjp {
    let span = graph.node(node).span;
    match a.kind {
        PoolKind::Avg => {
            let op = Op::Pool2D { kind: a.kind, window: a.window, stride: a.stride, padding: a.padding };
            Ok(vec![None, Some(graph.add(op, &[g], None, span)?)])
        }
        PoolKind::Max => Err(ShapeError::NotDifferentiable {
            op: "max_pool2d_grad",
            reason: "the second derivative of max pooling is not supported",
        }),
    }
}
