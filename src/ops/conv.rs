//! 2-D convolution and its two gradients: `conv2d`, `conv2d_backprop_input` and
//! `conv2d_backprop_filter`. For each: the shape rule, the reference kernel and the
//! derivative.
//!
//! Layouts are Keras': input `[B, H, W, C]`, kernel `[KH, KW, C, F]`, result
//! `[B, H', W', F]` (see `window.rs` for H', W' and the padding). The convolution is a
//! cross-correlation:
//!
//! y[b, o, p, f] = Σ_{i, j, c} x[b, o·sh − pt + i·dh, p·sw − pl + j·dw, c] · k[i, j, c, f]
//!
//! with zeros read outside the input. It is linear in x and in k; writing y = A_k x, the
//! input gradient is the transposed map A_kᵀ g (`conv2d_backprop_input(g, k)`) and the
//! kernel gradient is Σ_{b,o,p} x[b, ..] g[b, o, p, f] (`conv2d_backprop_filter(x, g)`).
//! The three ops are bilinear forms of one trilinear sum T(x, k, g) = ⟨A_k x, g⟩, so each
//! one's derivative is another of the three and derivatives of any order exist.
//!
//! The kernels use im2col: the input windows are copied into a matrix of rows
//! `[B·H'·W', KH·KW·C]` (zeros for padding) and multiplied with the kernel seen as
//! `[KH·KW·C, F]` by ndarray's `dot`; the input gradient scatters the rows back (col2im).

use super::kernel::{KernelError, bad_operands};
use super::value::{Float, Value};
use super::window::{AxisWindow, Window2D, window_span};
use super::{ShapeError, Vjp};
use crate::ir::{Graph, NodeId, Op, Padding};
use crate::shape::{Dim, TensorType};
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use std::borrow::Cow;

/// The attributes every convolution op shares.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct ConvAttrs {
    pub stride: [usize; 2],
    pub padding: Padding,
    pub dilation: [usize; 2],
}

impl ConvAttrs {
    pub(super) fn of(op: &Op) -> Option<ConvAttrs> {
        match *op {
            Op::Conv2D { stride, padding, dilation }
            | Op::Conv2DBackpropInput { stride, padding, dilation }
            | Op::Conv2DBackpropFilter { stride, padding, dilation } => {
                Some(ConvAttrs { stride, padding, dilation })
            }
            _ => None,
        }
    }
}

/// The four dimensions of an NHWC tensor (or a `[KH, KW, C, F]` kernel).
pub(super) fn dims4<'a>(op: &'static str, what: &str, t: &'a TensorType) -> Result<&'a [Dim], ShapeError> {
    if !t.dtype.is_float() {
        return Err(ShapeError::DType { op, expected: "a float tensor", got: t.dtype });
    }
    if t.rank() != 4 {
        let reason = format!("the {what} must have 4 axes, it has {}", t.rank());
        return Err(ShapeError::Window { op, input: t.clone(), reason });
    }
    Ok(&t.shape)
}

/// A dimension that must be a literal to size the result.
pub(super) fn literal(
    op: &'static str,
    t: &TensorType,
    axis: usize,
    what: &str,
) -> Result<usize, ShapeError> {
    match t.shape[axis].as_const().map(usize::try_from) {
        Some(Ok(n)) => Ok(n),
        _ => {
            let reason = format!("the {what} must be a literal size, not `{}`", t.shape[axis]);
            Err(ShapeError::Window { op, input: t.clone(), reason })
        }
    }
}

/// The output size along one spatial axis of `x` (axis 1 or 2), or the error a window
/// that does not fit gives.
pub(super) fn out_dim(
    op: &'static str,
    x: &TensorType,
    axis: usize,
    (size, stride, dilation): (usize, usize, usize),
    padding: Padding,
) -> Result<Dim, ShapeError> {
    let input = literal(op, x, axis, if axis == 1 { "height" } else { "width" })?;
    if stride == 0 || dilation == 0 || size == 0 {
        let reason = "window sizes, strides and dilations must be positive".to_string();
        return Err(ShapeError::Window { op, input: x.clone(), reason });
    }
    match AxisWindow::new(input, size, stride, dilation, padding) {
        Some(a) => Ok(Dim::Const(a.output as i64)),
        None => Err(ShapeError::WindowTooLarge {
            op,
            input: x.clone(),
            axis,
            window: window_span(size, dilation),
        }),
    }
}

/// `[B, H, W, C] ⋆ [KH, KW, C, F] -> [B, H', W', F]`.
pub(super) fn infer_conv2d(x: &TensorType, k: &TensorType, a: ConvAttrs) -> Result<TensorType, ShapeError> {
    let op = "conv2d";
    let xd = dims4(op, "input", x)?;
    let kd = dims4(op, "kernel", k)?;
    if x.dtype != k.dtype {
        return Err(ShapeError::DTypeMismatch { op, lhs: x.dtype, rhs: k.dtype });
    }
    if xd[3] != kd[2] {
        let reason = format!("the kernel {k} expects {} input channels, the input has {}", kd[2], xd[3]);
        return Err(ShapeError::Window { op, input: x.clone(), reason });
    }
    let (kh, kw) = (literal(op, k, 0, "kernel height")?, literal(op, k, 1, "kernel width")?);
    let h = out_dim(op, x, 1, (kh, a.stride[0], a.dilation[0]), a.padding)?;
    let w = out_dim(op, x, 2, (kw, a.stride[1], a.dilation[1]), a.padding)?;
    Ok(TensorType::new(x.dtype, vec![xd[0].clone(), h, w, kd[3].clone()]))
}

/// `(g [B, H', W', F], k [KH, KW, C, F])` to the target `[B, H, W, C]`, when convolving
/// the target with `k` gives the shape of `g`.
pub(super) fn infer_backprop_input(
    g: &TensorType,
    k: &TensorType,
    target: Option<&TensorType>,
    a: ConvAttrs,
) -> Result<TensorType, ShapeError> {
    let op = "conv2d_backprop_input";
    let x = target.ok_or(ShapeError::MissingTarget { op })?;
    let x = TensorType::new(g.dtype, x.shape.clone());
    let y = infer_conv2d(&x, k, a)?;
    expect_shape(op, &y, g)?;
    Ok(x)
}

/// `(x [B, H, W, C], g [B, H', W', F])` to the target `[KH, KW, C, F]`, when convolving
/// `x` with a kernel of the target's shape gives the shape of `g`.
pub(super) fn infer_backprop_filter(
    x: &TensorType,
    g: &TensorType,
    target: Option<&TensorType>,
    a: ConvAttrs,
) -> Result<TensorType, ShapeError> {
    let op = "conv2d_backprop_filter";
    let k = target.ok_or(ShapeError::MissingTarget { op })?;
    let k = TensorType::new(x.dtype, k.shape.clone());
    let y = infer_conv2d(x, &k, a)?;
    expect_shape(op, &y, g)?;
    Ok(k)
}

/// Checks that a gradient operand has the type of the forward result it belongs to.
pub(super) fn expect_shape(op: &'static str, forward: &TensorType, g: &TensorType) -> Result<(), ShapeError> {
    if forward == g {
        return Ok(());
    }
    let reason = format!("the gradient is {g} but the forward result is {forward}");
    Err(ShapeError::Window { op, input: g.clone(), reason })
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

/// The geometry of a convolution of concrete shapes, checked.
struct Conv {
    win: Window2D,
    kh: usize,
    kw: usize,
    filters: usize,
}

impl Conv {
    fn new(op: &'static str, x: &[usize], k: &[usize], a: ConvAttrs) -> Result<Conv, KernelError> {
        let bad = || KernelError::BadOperands { op, got: format!("input {x:?} and kernel {k:?}") };
        let (Ok([b, h, w, c]), Ok([kh, kw, kc, f])) = (<[usize; 4]>::try_from(x), <[usize; 4]>::try_from(k))
        else {
            return Err(bad());
        };
        if c != kc {
            return Err(bad());
        }
        let rows = AxisWindow::new(h, kh, a.stride[0], a.dilation[0], a.padding).ok_or_else(bad)?;
        let cols = AxisWindow::new(w, kw, a.stride[1], a.dilation[1], a.padding).ok_or_else(bad)?;
        Ok(Conv { win: Window2D { batch: b, channels: c, rows, cols }, kh, kw, filters: f })
    }

    fn input_shape(&self) -> [usize; 4] {
        let w = &self.win;
        [w.batch, w.rows.input, w.cols.input, w.channels]
    }

    fn output_shape(&self) -> [usize; 4] {
        let w = &self.win;
        [w.batch, w.rows.output, w.cols.output, self.filters]
    }

    fn kernel_shape(&self) -> [usize; 4] {
        [self.kh, self.kw, self.win.channels, self.filters]
    }

    /// The number of im2col rows (output positions) and columns (taps × channels).
    fn patch_dims(&self) -> (usize, usize) {
        let w = &self.win;
        (w.batch * w.rows.output * w.cols.output, self.kh * self.kw * w.channels)
    }

    /// Calls `f(row, column, input offset)` for every tap of every output position that
    /// reads the input (not padding); `C` consecutive elements start at both offsets.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let Window2D { batch, channels: c, rows, cols } = self.win;
        let mut row = 0;
        for b in 0..batch {
            for o in 0..rows.output {
                for p in 0..cols.output {
                    for i in 0..self.kh {
                        let Some(h) = rows.source(o, i) else { continue };
                        for j in 0..self.kw {
                            let Some(w) = cols.source(p, j) else { continue };
                            f(row, (i * self.kw + j) * c, ((b * rows.input + h) * cols.input + w) * c);
                        }
                    }
                    row += 1;
                }
            }
        }
    }

    /// The im2col matrix of `x` (row-major `[B, H, W, C]`).
    fn im2col<T: Float>(&self, x: &[T]) -> Array2<T> {
        let (n, taps) = self.patch_dims();
        let c = self.win.channels;
        let mut cols = vec![T::zero(); n * taps];
        self.for_each_tap(|row, col, src| {
            let dst = row * taps + col;
            cols[dst..dst + c].copy_from_slice(&x[src..src + c]);
        });
        Array2::from_shape_vec((n, taps), cols).expect("the buffer has n × taps elements")
    }

    /// The inverse gather of `im2col`: adds every row back to the input positions it read.
    fn col2im<T: Float>(&self, cols: &Array2<T>) -> Vec<T> {
        let (_, taps) = self.patch_dims();
        let c = self.win.channels;
        let [b, h, w, _] = self.input_shape();
        let mut x = vec![T::zero(); b * h * w * c];
        let cols = cols.as_standard_layout();
        let flat = cols.as_slice().expect("standard layout is contiguous");
        self.for_each_tap(|row, col, dst| {
            let src = row * taps + col;
            for (d, &s) in x[dst..dst + c].iter_mut().zip(&flat[src..src + c]) {
                *d = *d + s;
            }
        });
        x
    }
}

/// The elements of `a` in row-major order, borrowed when `a` is laid out so already.
pub(super) fn contiguous<T: Float>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// Row-major elements seen as a matrix of `rows` × `cols` (callers check the count).
fn matrix<T: Float>(flat: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), flat).expect("callers check the element count")
}

fn to_array<T: Float>(shape: [usize; 4], m: Array2<T>) -> ArrayD<T> {
    let flat =
        if m.is_standard_layout() { m.into_raw_vec_and_offset().0 } else { m.iter().copied().collect() };
    ArrayD::from_shape_vec(IxDyn(&shape), flat).expect("the product has the result's element count")
}

fn conv2d<T: Float>(x: &ArrayD<T>, k: &ArrayD<T>, a: ConvAttrs) -> Result<ArrayD<T>, KernelError> {
    let conv = Conv::new("conv2d", x.shape(), k.shape(), a)?;
    let (_, taps) = conv.patch_dims();
    let cols = conv.im2col(&contiguous(x));
    let y = cols.dot(&matrix(&contiguous(k), taps, conv.filters));
    Ok(to_array(conv.output_shape(), y))
}

fn backprop_input<T: Float>(
    g: &ArrayD<T>,
    k: &ArrayD<T>,
    x_shape: &[usize],
    a: ConvAttrs,
) -> Result<ArrayD<T>, KernelError> {
    let op = "conv2d_backprop_input";
    let conv = Conv::new(op, x_shape, k.shape(), a)?;
    if g.shape() != conv.output_shape() {
        return Err(KernelError::BadOperands { op, got: format!("gradient {:?}", g.shape()) });
    }
    let (n, taps) = conv.patch_dims();
    let (g, k) = (contiguous(g), contiguous(k));
    let cols = matrix(&g, n, conv.filters).dot(&matrix(&k, taps, conv.filters).t());
    let x = conv.col2im(&cols);
    Ok(ArrayD::from_shape_vec(IxDyn(&conv.input_shape()), x).expect("col2im fills the input"))
}

fn backprop_filter<T: Float>(
    x: &ArrayD<T>,
    g: &ArrayD<T>,
    k_shape: &[usize],
    a: ConvAttrs,
) -> Result<ArrayD<T>, KernelError> {
    let op = "conv2d_backprop_filter";
    let conv = Conv::new(op, x.shape(), k_shape, a)?;
    if g.shape() != conv.output_shape() {
        return Err(KernelError::BadOperands { op, got: format!("gradient {:?}", g.shape()) });
    }
    let (n, _) = conv.patch_dims();
    let cols = conv.im2col(&contiguous(x));
    let dk = cols.t().dot(&matrix(&contiguous(g), n, conv.filters));
    Ok(to_array(conv.kernel_shape(), dk))
}

/// Runs a convolution op on two float operands of one element type.
pub(super) fn eval(op: &Op, a: &Value, b: &Value, target: Option<&[usize]>) -> Result<Value, KernelError> {
    let attrs = ConvAttrs::of(op).ok_or_else(|| bad_operands(op.name(), &[a, b]))?;
    let need = || target.ok_or(KernelError::UnresolvedShape { op: op.name() });
    macro_rules! run {
        ($x:expr, $y:expr) => {
            match op {
                Op::Conv2D { .. } => conv2d($x, $y, attrs),
                Op::Conv2DBackpropInput { .. } => backprop_input($x, $y, need()?, attrs),
                _ => backprop_filter($x, $y, need()?, attrs),
            }
        };
    }
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => Ok(Value::F32(run!(x, y)?)),
        (Value::F64(x), Value::F64(y)) => Ok(Value::F64(run!(x, y)?)),
        _ => Err(bad_operands(op.name(), &[a, b])),
    }
}

// ---------------------------------------------------------------------------------------
// Derivatives. With T(x, k, g) = ⟨conv2d(x, k), g⟩ = ⟨x, backprop_input(g, k)⟩ =
// ⟨k, backprop_filter(x, g)⟩, the gradient of each op with respect to one operand, given
// the upstream gradient G, is the op that pairs G with the other operand.

pub(super) fn vjp(graph: &mut Graph, node: NodeId, g: NodeId) -> Vjp {
    let n = graph.node(node);
    let (op, a, b, span) = (n.op.clone(), n.inputs[0], n.inputs[1], n.span);
    let Some(ConvAttrs { stride, padding, dilation }) = ConvAttrs::of(&op) else {
        return Err(ShapeError::Arity { op: "conv2d", expected: 2, got: n.inputs.len() });
    };
    let conv = Op::Conv2D { stride, padding, dilation };
    let input = Op::Conv2DBackpropInput { stride, padding, dilation };
    let filter = Op::Conv2DBackpropFilter { stride, padding, dilation };
    let (ta, tb) = (graph.ty(a).clone(), graph.ty(b).clone());
    let (da, db) = match op {
        // y = conv2d(x, k): dx = backprop_input(G, k), dk = backprop_filter(x, G).
        Op::Conv2D { .. } => {
            (graph.add(input, &[g, b], Some(ta), span)?, graph.add(filter, &[a, g], Some(tb), span)?)
        }
        // z = backprop_input(g, k): dg = conv2d(G, k), dk = backprop_filter(G, g).
        Op::Conv2DBackpropInput { .. } => {
            (graph.add(conv, &[g, b], None, span)?, graph.add(filter, &[g, a], Some(tb), span)?)
        }
        // z = backprop_filter(x, g): dx = backprop_input(g, G), dg = conv2d(x, G).
        _ => (graph.add(input, &[b, g], Some(ta), span)?, graph.add(conv, &[a, g], None, span)?),
    };
    Ok(vec![Some(da), Some(db)])
}
