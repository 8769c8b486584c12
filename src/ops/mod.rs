//! The op registry: for every primitive, its shape rule, its derivative and its reference
//! kernel, side by side in one file per family of ops. [`infer`], [`eval`] and [`vjp`]
//! dispatch to them; `value.rs` holds the interpreter's values and `kernel.rs` what the
//! kernels share.
//!
//! | family        | file             | ops |
//! |---------------|------------------|-----|
//! | leaves        | `leaf.rs`        | input, param, fill, random |
//! | elementwise   | `elementwise.rs` | unary, binary, select, cast |
//! | reductions    | `reduce.rs`      | reduce, argmax, size_of |
//! | layout        | `layout.rs`      | reshape, transpose, broadcast, one_hot |
//! | slicing       | `slice.rs`       | slice, pad (along the last axis) |
//! | linear algebra| `linalg.rs`      | matmul |
//! | convolution   | `conv.rs`        | conv2d, conv2d_backprop_input, conv2d_backprop_filter |
//! | pooling       | `pool.rs`        | pool2d (max, avg), pool2d_grad |
//! | lookup        | `gather.rs`      | gather, scatter_add |
//! | recurrence    | `scan.rs`, `scan_vjp.rs` | scan |
//!
//! `window.rs` holds the sliding-window geometry (output sizes, padding) that convolution
//! and pooling share.
//!
//! Consumers dispatch with an exhaustive `match` on [`Op`], so a new op that lacks a rule
//! somewhere does not compile.

mod conv;
mod elementwise;
mod gather;
mod kernel;
mod layout;
mod leaf;
mod linalg;
mod pool;
mod reduce;
mod scan;
mod scan_outer;
mod scan_residuals;
mod scan_vjp;
mod slice;
mod value;
mod window;

pub use kernel::{EvalCtx, KernelError, broadcast_dims};
pub use layout::same_numel;
pub use leaf::draw_f32;
pub use scan::{ScanResults, eval_all as eval_scan};
pub use value::{Element, Float, Int, Value};
pub use window::{AxisWindow, Window2D, window_span};

use crate::ir::{Graph, NodeId, Op};
use crate::shape::{BroadcastError, DType, Shape, TensorType, fmt_shape};
use std::fmt;

/// Why an op cannot take the types it was given. Rendered into a diagnostic by the caller,
/// which knows the spans.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeError {
    /// The op got the wrong number of operands.
    Arity {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    /// Two operands' shapes do not broadcast.
    Broadcast {
        op: &'static str,
        lhs: TensorType,
        rhs: TensorType,
        err: BroadcastError,
    },
    /// Two operands must share an element type.
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },
    /// An operand's element type is not one the op accepts.
    DType {
        op: &'static str,
        expected: &'static str,
        got: DType,
    },
    /// Inner dimensions of a matrix product differ, or an operand has rank < 2.
    MatMul {
        lhs: TensorType,
        rhs: TensorType,
        reason: String,
    },
    /// An axis outside `0..rank`.
    Axis {
        op: &'static str,
        axis: i64,
        rank: usize,
    },
    /// A reshape that changes the number of elements.
    Reshape {
        from: Shape,
        to: Shape,
    },
    /// A broadcast to a shape the operand cannot broadcast to.
    BroadcastTo {
        from: Shape,
        to: Shape,
    },
    /// A transpose permutation that is not a permutation of the axes.
    Permutation {
        perm: Vec<usize>,
        rank: usize,
    },
    /// The op needs its result type as an attribute and got none.
    MissingTarget {
        op: &'static str,
    },
    /// A convolution or pooling got operands it cannot slide over (wrong rank, channels
    /// that differ, symbolic spatial sizes, a gradient of the wrong shape).
    Window {
        op: &'static str,
        input: TensorType,
        reason: String,
    },
    /// A `valid` convolution or pooling window spans more than its input along `axis`.
    WindowTooLarge {
        op: &'static str,
        input: TensorType,
        axis: usize,
        window: usize,
    },
    /// A scan whose operands or body break the body's contract (see `ops::scan`).
    Scan {
        reason: String,
    },
    Slice {
        op: &'static str,
        input: TensorType,
        reason: String,
    },
    /// A derivative that no rule provides.
    NotDifferentiable {
        op: &'static str,
        reason: &'static str,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Arity { op, expected, got } => {
                write!(f, "`{op}` takes {expected} operand(s), got {got}")
            }
            ShapeError::Broadcast { op, lhs, rhs, err } => write!(
                f,
                "`{op}` cannot broadcast {lhs} with {rhs}: dimension {} against {}",
                err.lhs, err.rhs
            ),
            ShapeError::DTypeMismatch { op, lhs, rhs } => {
                write!(f, "`{op}` needs operands of one element type, got {lhs} and {rhs}")
            }
            ShapeError::DType { op, expected, got } => {
                write!(f, "`{op}` expects {expected}, got {got}")
            }
            ShapeError::MatMul { lhs, rhs, reason } => {
                write!(f, "matrix product of {lhs} and {rhs}: {reason}")
            }
            ShapeError::Axis { op, axis, rank } => {
                write!(f, "`{op}`: axis {axis} is out of range for rank {rank}")
            }
            ShapeError::Reshape { from, to } => write!(
                f,
                "cannot reshape {} into {}: the element counts differ",
                fmt_shape(from),
                fmt_shape(to)
            ),
            ShapeError::BroadcastTo { from, to } => {
                write!(f, "cannot broadcast {} to {}", fmt_shape(from), fmt_shape(to))
            }
            ShapeError::Permutation { perm, rank } => {
                write!(f, "{perm:?} is not a permutation of {rank} axes")
            }
            ShapeError::MissingTarget { op } => write!(f, "`{op}` needs its result type"),
            ShapeError::Window { op, input, reason } => write!(f, "`{op}` of {input}: {reason}"),
            ShapeError::WindowTooLarge { op, input, axis, window } => write!(
                f,
                "`{op}`: a window spanning {window} does not fit in {} {} of {input}",
                input.shape[*axis],
                if *axis == 1 { "rows" } else { "columns" }
            ),
            ShapeError::Scan { reason } => write!(f, "`scan`: {reason}"),
            ShapeError::Slice { op, input, reason } => write!(f, "`{op}` of {input}: {reason}"),
            ShapeError::NotDifferentiable { op, reason } => write!(f, "`{op}`: {reason}"),
        }
    }
}

impl std::error::Error for ShapeError {}

/// The result type of `op` applied to operands of types `inputs`. `target` is the result
/// type for ops whose result is an attribute (fill, random, reshape, broadcast, input, param).
pub fn infer(op: &Op, inputs: &[&TensorType], target: Option<&TensorType>) -> Result<TensorType, ShapeError> {
    let arity = arity(op);
    if inputs.len() != arity {
        return Err(ShapeError::Arity { op: op.name(), expected: arity, got: inputs.len() });
    }
    match op {
        Op::Input { .. } | Op::Param { .. } | Op::Fill { .. } | Op::Random { .. } => leaf::infer(op, target),
        Op::Unary(u) => elementwise::infer_unary(*u, inputs[0]),
        Op::Binary(b) => elementwise::infer_binary(*b, inputs[0], inputs[1]),
        Op::Select => elementwise::infer_select(inputs[0], inputs[1], inputs[2]),
        Op::Cast { to } => Ok(TensorType::new(*to, inputs[0].shape.clone())),
        Op::Reduce { axes, keep, .. } => reduce::infer_reduce(op.name(), inputs[0], axes, *keep),
        Op::ArgMax { axis } => reduce::infer_argmax(inputs[0], *axis),
        Op::SizeOf { axes } => reduce::infer_size_of(inputs[0], axes, target),
        Op::Reshape => layout::infer_reshape(inputs[0], target),
        Op::Transpose { perm } => layout::infer_transpose(inputs[0], perm),
        Op::Broadcast => layout::infer_broadcast(inputs[0], target),
        Op::Slice { start, len } => slice::infer_slice(inputs[0], *start, *len),
        Op::Pad { starts, total } => slice::infer_pad(inputs, starts, *total),
        Op::OneHot { depth } => layout::infer_one_hot(inputs[0], *depth, target),
        Op::MatMul => linalg::infer_matmul(inputs[0], inputs[1]),
        Op::Conv2D { stride, padding, dilation } => conv::infer_conv2d(
            inputs[0],
            inputs[1],
            conv::ConvAttrs { stride: *stride, padding: *padding, dilation: *dilation },
        ),
        Op::Conv2DBackpropInput { stride, padding, dilation } => conv::infer_backprop_input(
            inputs[0],
            inputs[1],
            target,
            conv::ConvAttrs { stride: *stride, padding: *padding, dilation: *dilation },
        ),
        Op::Conv2DBackpropFilter { stride, padding, dilation } => conv::infer_backprop_filter(
            inputs[0],
            inputs[1],
            target,
            conv::ConvAttrs { stride: *stride, padding: *padding, dilation: *dilation },
        ),
        Op::Pool2D { kind, window, stride, padding } => pool::infer_pool(
            inputs[0],
            pool::PoolAttrs { kind: *kind, window: *window, stride: *stride, padding: *padding },
        ),
        Op::Pool2DGrad { kind, window, stride, padding } => pool::infer_pool_grad(
            inputs[0],
            inputs[1],
            pool::PoolAttrs { kind: *kind, window: *window, stride: *stride, padding: *padding },
        ),
        Op::Gather => gather::infer_gather(inputs[0], inputs[1]),
        Op::ScatterAdd => gather::infer_scatter_add(inputs[0], inputs[1], target),
        Op::Scan { .. } => scan::infer_scan(op, inputs),
    }
}

/// Computes `op` on `inputs` (already checked against the op's operand types). `ctx`
/// gives the result's element type and, where it could be resolved, its shape.
///
/// Leaves other than `fill` and `random` (inputs, parameters) are supplied by the caller;
/// asking for them here is an error.
pub fn eval(op: &Op, inputs: &[&Value], ctx: &EvalCtx) -> Result<Value, KernelError> {
    let arity = arity(op);
    if inputs.len() != arity {
        return Err(KernelError::BadOperands { op: op.name(), got: format!("{} operand(s)", inputs.len()) });
    }
    match op {
        Op::Input { .. } | Op::Param { .. } => {
            Err(KernelError::BadOperands { op: op.name(), got: "a request to compute a leaf".into() })
        }
        Op::Fill { value } => leaf::eval_fill(*value, ctx),
        Op::Random { dist, stream } => leaf::eval_random(*dist, *stream, ctx),
        Op::Unary(u) => elementwise::eval_unary(*u, inputs[0]),
        Op::Binary(b) => elementwise::eval_binary(*b, inputs[0], inputs[1]),
        Op::Select => elementwise::eval_select(inputs[0], inputs[1], inputs[2]),
        Op::Cast { .. } => Ok(inputs[0].cast(ctx.dtype)),
        Op::Reduce { op, axes, keep } => reduce::eval_reduce(*op, axes, *keep, inputs[0]),
        Op::ArgMax { axis } => reduce::eval_argmax(*axis, inputs[0]),
        Op::SizeOf { axes } => reduce::eval_size_of(axes, inputs[0], ctx.dtype),
        Op::Reshape => layout::eval_reshape(inputs[0], ctx.target_shape("reshape")?),
        Op::Transpose { perm } => layout::eval_transpose(inputs[0], perm),
        Op::Broadcast => layout::eval_broadcast(inputs[0], ctx.target_shape("broadcast")?),
        Op::Slice { start, len } => slice::eval_slice(inputs[0], *start, *len),
        Op::Pad { starts, total } => slice::eval_pad(inputs, starts, *total),
        Op::OneHot { depth } => layout::eval_one_hot(inputs[0], *depth, ctx.dtype),
        Op::MatMul => linalg::eval_matmul(inputs[0], inputs[1]),
        Op::Conv2D { .. } | Op::Conv2DBackpropInput { .. } | Op::Conv2DBackpropFilter { .. } => {
            conv::eval(op, inputs[0], inputs[1], ctx.shape.as_deref())
        }
        Op::Pool2D { .. } => pool::eval_pool(op, inputs[0]),
        Op::Pool2DGrad { .. } => pool::eval_pool_grad(op, inputs[0], inputs[1]),
        Op::Gather => gather::eval_gather(inputs[0], inputs[1]),
        Op::ScatterAdd => gather::eval_scatter_add(inputs[0], inputs[1], ctx.target_shape("scatter_add")?),
        Op::Scan { .. } => scan::eval(op, inputs, ctx),
    }
}

/// The result of a derivative rule: one gradient per operand, `None` where the operand
/// gets none (it is an integer or bool, or the op is piecewise constant in it).
pub type Vjp = Result<Vec<Option<NodeId>>, ShapeError>;

/// Appends to `graph` the nodes computing the gradient of each operand of `node`, given
/// `grad_out`, the gradient of the loss with respect to `node` (same type as `node`).
/// The returned gradients have their operands' types. The rules are written with other
/// primitives, their math in a comment next to each, in the family files.
pub fn vjp(graph: &mut Graph, node: NodeId, grad_out: NodeId) -> Vjp {
    let op = graph.node(node).op.clone();
    let operands = graph.node(node).inputs.clone();
    if !graph.ty(node).dtype.is_float() {
        return Ok(vec![None; operands.len()]);
    }
    let mut grads = match &op {
        // Leaves have no operands.
        Op::Input { .. } | Op::Param { .. } | Op::Fill { .. } | Op::Random { .. } => Vec::new(),
        Op::Unary(u) => elementwise::vjp_unary(graph, node, *u, grad_out)?,
        Op::Binary(b) => elementwise::vjp_binary(graph, node, *b, grad_out)?,
        Op::Select => elementwise::vjp_select(graph, node, grad_out)?,
        Op::Cast { .. } => elementwise::vjp_cast(graph, node, grad_out)?,
        Op::Reduce { op, axes, .. } => reduce::vjp_reduce(graph, node, *op, axes, grad_out)?,
        // Integer results and sizes: no gradient.
        Op::ArgMax { .. } | Op::SizeOf { .. } | Op::OneHot { .. } => vec![None; operands.len()],
        Op::Reshape => layout::vjp_reshape(graph, node, grad_out)?,
        Op::Transpose { perm } => layout::vjp_transpose(graph, node, perm, grad_out)?,
        Op::Broadcast => layout::vjp_broadcast(graph, node, grad_out)?,
        Op::Slice { start, .. } => slice::vjp_slice(graph, node, *start, grad_out)?,
        Op::Pad { starts, .. } => slice::vjp_pad(graph, node, starts, grad_out)?,
        Op::MatMul => linalg::vjp_matmul(graph, node, grad_out)?,
        Op::Conv2D { .. } | Op::Conv2DBackpropInput { .. } | Op::Conv2DBackpropFilter { .. } => {
            conv::vjp(graph, node, grad_out)?
        }
        Op::Pool2D { kind, window, stride, padding } => {
            let attrs = pool::PoolAttrs { kind: *kind, window: *window, stride: *stride, padding: *padding };
            pool::vjp_pool(graph, node, attrs, grad_out)?
        }
        Op::Pool2DGrad { kind, window, stride, padding } => {
            let attrs = pool::PoolAttrs { kind: *kind, window: *window, stride: *stride, padding: *padding };
            pool::vjp_pool_grad(graph, node, attrs, grad_out)?
        }
        Op::Gather => gather::vjp_gather(graph, node, grad_out)?,
        Op::ScatterAdd => gather::vjp_scatter_add(graph, node, grad_out)?,
        Op::Scan { .. } => scan_vjp::vjp_scan(graph, node, grad_out)?,
    };
    // An operand that is not a float carries no gradient, whatever the rule built.
    for (grad, operand) in grads.iter_mut().zip(&operands) {
        if !graph.ty(*operand).dtype.is_float() {
            *grad = None;
        }
    }
    Ok(grads)
}

/// The number of operands an op takes.
pub fn arity(op: &Op) -> usize {
    match op {
        Op::Input { .. } | Op::Param { .. } | Op::Fill { .. } | Op::Random { .. } => 0,
        Op::Unary(_)
        | Op::Cast { .. }
        | Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::SizeOf { .. }
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Broadcast
        | Op::Slice { .. }
        | Op::OneHot { .. }
        | Op::Pool2D { .. } => 1,
        Op::Binary(_)
        | Op::MatMul
        | Op::Conv2D { .. }
        | Op::Conv2DBackpropInput { .. }
        | Op::Conv2DBackpropFilter { .. }
        | Op::Pool2DGrad { .. }
        | Op::Gather
        | Op::ScatterAdd => 2,
        Op::Select => 3,
        Op::Pad { starts, .. } => starts.len(),
        Op::Scan { body, .. } => body.inputs.len(),
    }
}

/// Checks that `axis` is a valid axis of a rank-`rank` tensor.
fn check_axis(op: &'static str, axis: usize, rank: usize) -> Result<(), ShapeError> {
    if axis < rank { Ok(()) } else { Err(ShapeError::Axis { op, axis: axis as i64, rank }) }
}
