//! The primitive operations of the IR.
//!
//! This is the whole set of things the back ends must know how to compute; everything else
//! (layers, activations, losses) is written in `.dnn` in the standard library and inlined
//! into these. Each op's shape rule, derivative and reference kernel live in `src/ops/`,
//! one match arm per op, so adding an op here is a compile error everywhere it is missing.

use crate::shape::DType;
use std::fmt;

/// Elementwise functions of one argument.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    /// -1, 0 or 1; its derivative is zero almost everywhere.
    Sign,
    Tanh,
    /// 1 / (1 + exp(-x)), kept primitive for its stable derivative y (1 - y).
    Sigmoid,
    /// Logical not of a bool tensor.
    Not,
}

/// Elementwise functions of two arguments, with NumPy broadcasting.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// a^b for float tensors.
    Pow,
    Max,
    Min,
    /// Comparisons produce `bool`.
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }

    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }
}

/// Reductions over a set of axes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
}

/// Random distributions, sampled from the step's seeded stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Uniform on [0, 1).
    Uniform,
    /// Standard normal.
    Normal,
}

/// How a sliding window treats the border, as in Keras: `valid` uses only windows that
/// fit inside the input; `same` pads with zeros (ignored by pooling) so that the output
/// has ceil(size / stride) positions, the odd extra padding going at the bottom and right.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    Valid,
    Same,
}

impl Padding {
    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// What a pooling window computes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// The largest element (padding never wins).
    Max,
    /// The mean of the elements inside the input (padding is not counted).
    Avg,
}

/// A primitive operation. Attributes that shape the result live here; the result's type
/// lives on the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The graph's `index`-th input (data fed by the caller).
    Input {
        index: usize,
    },
    /// The graph's `index`-th parameter or state tensor (see `Graph::params`).
    Param {
        index: usize,
    },
    /// A tensor of the node's type, every element `value`.
    Fill {
        value: f64,
    },
    /// Random numbers of the node's type; `stream` tells independent draws apart.
    Random {
        dist: Distribution,
        stream: u32,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `select(cond, a, b)`: a where cond is true, b elsewhere; broadcasts all three.
    Select,
    /// Converts the element type; bool becomes 0 or 1.
    Cast {
        to: DType,
    },
    /// Reduces over `axes` (sorted, distinct); `keep` leaves them as size 1.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep: bool,
    },
    /// Index of the largest element along `axis`, as i64; the axis is removed.
    ArgMax {
        axis: usize,
    },
    /// The number of elements in `axes` of the input, as a scalar of the node's dtype.
    /// It exists because symbolic sizes (the batch) are known only at run time.
    SizeOf {
        axes: Vec<usize>,
    },
    /// Same elements, the node's shape (equal element count).
    Reshape,
    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// Broadcasts the input to the node's shape (NumPy rules).
    Broadcast,
    /// Elements `start..start + len` of the last axis: `[.., N]` to `[.., len]`.
    Slice {
        start: usize,
        len: usize,
    },
    /// Operand `i` (`[.., len_i]`) placed at `starts[i]..starts[i] + len_i` of a last axis
    /// of `total` elements, the windows disjoint, zeros elsewhere: the derivative of
    /// `slice` (one operand), and the sum of such derivatives (a concatenation when the
    /// windows cover the axis).
    Pad {
        starts: Vec<usize>,
        total: usize,
    },
    /// Matrix product over the last two axes: `[.., M, K] @ [.., K, N]`, batch axes broadcast.
    /// A rank-1 right operand is not allowed; the front end reshapes it.
    MatMul,
    /// `one_hot(labels, depth)`: an i64 tensor to a float tensor with a new last axis.
    OneHot {
        depth: usize,
    },
    /// 2-D convolution (cross-correlation, as in Keras): input `[B, H, W, C]` (NHWC),
    /// kernel `[KH, KW, C, F]`, result `[B, H', W', F]`.
    Conv2D {
        stride: [usize; 2],
        padding: Padding,
        dilation: [usize; 2],
    },
    /// The gradient of `conv2d` with respect to its input: `(g [B, H', W', F], kernel
    /// [KH, KW, C, F])` to the input's type `[B, H, W, C]`, given as the result type.
    Conv2DBackpropInput {
        stride: [usize; 2],
        padding: Padding,
        dilation: [usize; 2],
    },
    /// The gradient of `conv2d` with respect to its kernel: `(x [B, H, W, C], g
    /// [B, H', W', F])` to the kernel's type `[KH, KW, C, F]`, given as the result type.
    Conv2DBackpropFilter {
        stride: [usize; 2],
        padding: Padding,
        dilation: [usize; 2],
    },
    /// Max or average pooling of `[B, H, W, C]` over `window`, channel by channel.
    Pool2D {
        kind: PoolKind,
        window: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    },
    /// The gradient of `pool2d` with respect to its input: `(x, g)` to the type of `x`.
    Pool2DGrad {
        kind: PoolKind,
        window: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    },
    /// Embedding lookup: `(table [V, ..rest], ids i64[..idx])` to `[..idx, ..rest]`, row
    /// `ids[i]` of the table at every index `i`. An id outside `0..V` is a kernel error.
    Gather,
    /// The gradient of `gather` with respect to its table: `(ids i64[..idx], g [..idx,
    /// ..rest])` to the table's type `[V, ..rest]` (given as the result type), row `v` the
    /// sum of the rows of `g` whose id is `v`.
    ScatterAdd,
    /// A loop over axis 1 of its sequences with a carried state (see `crate::ops::scan`
    /// for the body's contract). Operands: `carries` initial carries, `sequences` tensors
    /// `[B, T, ..]`, then the body's captured tensors. The body runs once per step.
    Scan {
        body: Box<super::Graph>,
        carries: usize,
        sequences: usize,
        /// Steps run from `T - 1` down to 0; stacked results stay indexed by step.
        reverse: bool,
        output: ScanOutput,
    },
}

/// Which result of a scan a `scan` node stands for. Nodes differing only here share one
/// run of the loop in the interpreter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScanOutput {
    /// Body output `j` of every step, stacked along axis 1: `[B, T, ..]`.
    Stacked(usize),
    /// Carry `j` after the last step.
    Final(usize),
}

impl Op {
    /// The op's name in the text form of the IR.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Param { .. } => "param",
            Op::Fill { .. } => "fill",
            Op::Random { dist: Distribution::Uniform, .. } => "random_uniform",
            Op::Random { dist: Distribution::Normal, .. } => "random_normal",
            Op::Unary(u) => match u {
                UnaryOp::Neg => "neg",
                UnaryOp::Exp => "exp",
                UnaryOp::Log => "log",
                UnaryOp::Sqrt => "sqrt",
                UnaryOp::Abs => "abs",
                UnaryOp::Sign => "sign",
                UnaryOp::Tanh => "tanh",
                UnaryOp::Sigmoid => "sigmoid",
                UnaryOp::Not => "not",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "sub",
                BinaryOp::Mul => "mul",
                BinaryOp::Div => "div",
                BinaryOp::Pow => "pow",
                BinaryOp::Max => "maximum",
                BinaryOp::Min => "minimum",
                BinaryOp::Eq => "eq",
                BinaryOp::Lt => "lt",
                BinaryOp::Le => "le",
                BinaryOp::Gt => "gt",
                BinaryOp::Ge => "ge",
                BinaryOp::And => "and",
                BinaryOp::Or => "or",
            },
            Op::Select => "select",
            Op::Cast { .. } => "cast",
            Op::Reduce { op: ReduceOp::Sum, .. } => "sum",
            Op::Reduce { op: ReduceOp::Max, .. } => "max",
            Op::ArgMax { .. } => "argmax",
            Op::SizeOf { .. } => "size_of",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Broadcast => "broadcast",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::MatMul => "matmul",
            Op::OneHot { .. } => "one_hot",
            Op::Conv2D { .. } => "conv2d",
            Op::Conv2DBackpropInput { .. } => "conv2d_backprop_input",
            Op::Conv2DBackpropFilter { .. } => "conv2d_backprop_filter",
            Op::Pool2D { kind: PoolKind::Max, .. } => "max_pool2d",
            Op::Pool2D { kind: PoolKind::Avg, .. } => "avg_pool2d",
            Op::Pool2DGrad { kind: PoolKind::Max, .. } => "max_pool2d_grad",
            Op::Pool2DGrad { kind: PoolKind::Avg, .. } => "avg_pool2d_grad",
            Op::Gather => "gather",
            Op::ScatterAdd => "scatter_add",
            Op::Scan { .. } => "scan",
        }
    }

    /// True for ops whose output does not depend on an input's value differentiably
    /// (integer results, comparisons, sizes): autodiff stops there.
    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Input { .. } | Op::Param { .. } | Op::Fill { .. } | Op::Random { .. })
    }
}

impl fmt::Display for Op {
    /// The op with its attributes, as the text form prints it: `sum{axes=[1], keep}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Op::Input { index } | Op::Param { index } => write!(f, "{{{index}}}"),
            Op::Fill { value } => write!(f, "{{{}}}", fmt_f64(*value)),
            Op::Random { stream, .. } => write!(f, "{{stream={stream}}}"),
            Op::Cast { to } => write!(f, "{{{to}}}"),
            Op::Reduce { axes, keep, .. } => {
                write!(f, "{{axes={axes:?}{}}}", if *keep { ", keep" } else { "" })
            }
            Op::ArgMax { axis } => write!(f, "{{axis={axis}}}"),
            Op::SizeOf { axes } => write!(f, "{{axes={axes:?}}}"),
            Op::Transpose { perm } => write!(f, "{{perm={perm:?}}}"),
            Op::OneHot { depth } => write!(f, "{{depth={depth}}}"),
            Op::Slice { start, len } => write!(f, "{{start={start}, len={len}}}"),
            Op::Pad { starts, total } => write!(f, "{{starts={starts:?}, total={total}}}"),
            Op::Conv2D { stride, padding, dilation }
            | Op::Conv2DBackpropInput { stride, padding, dilation }
            | Op::Conv2DBackpropFilter { stride, padding, dilation } => {
                write!(f, "{{stride={stride:?}, padding={}, dilation={dilation:?}}}", padding.name())
            }
            Op::Pool2D { window, stride, padding, .. } | Op::Pool2DGrad { window, stride, padding, .. } => {
                write!(f, "{{window={window:?}, stride={stride:?}, padding={}}}", padding.name())
            }
            Op::Scan { body, carries, sequences, reverse, output } => {
                let output = match output {
                    ScanOutput::Stacked(j) => format!("stacked={j}"),
                    ScanOutput::Final(j) => format!("final={j}"),
                };
                let reverse = if *reverse { ", reverse" } else { "" };
                write!(
                    f,
                    "{{body={}, carries={carries}, sequences={sequences}{reverse}, {output}}}",
                    body.name
                )
            }
            _ => Ok(()),
        }
    }
}

/// Prints a float so that it reads back exactly and integers keep a `.0`.
pub fn fmt_f64(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 { format!("{v:.1}") } else { format!("{v:?}") }
}
