//! The kernel-expression IR the JIT compiles: a tree of f32 elementwise operations over the
//! inputs of one kernel, and the specs of the two kernel shapes (elementwise, reduction).
//!
//! Semantics, which the compiled code and `KernelExpr::eval` (the scalar reference) share:
//! - Every value is an f32, except that a comparison, `Not`, `And` and `Or` yield a *mask*.
//!   A mask used as a number is 1.0 or 0.0; a number used as a mask (the condition of
//!   `Select`, an operand of `And`/`Or`/`Not`) is true when it is not 0.0 (NaN is true).
//! - Comparisons are ordered: any comparison with NaN is false.
//! - `Max`/`Min` return NaN when either operand is NaN and order -0 below +0, except against
//!   a constant (ReLU's `max(x, 0)`): there `x` is kept unless it is beyond the constant, so
//!   a NaN `x` still passes through but `max(-0, 0)` is -0.
//! - `Sign` is -1, 0 or 1, and NaN for NaN.
//! - `Add(Mul(a, b), c)`, `Add(c, Mul(a, b))`, `Sub(Mul(a, b), c)` and `Sub(c, Mul(a, b))`
//!   are contracted to one fused multiply-add when the target has FMA: the product is not
//!   rounded on its own. This is at least as accurate as the separate operations and differs
//!   from them by at most one rounding of the product.
//! - `Pow(a, b)` is `exp(b·ln|a|)`, negated for a < 0 and odd integer b, NaN for a < 0 and
//!   non-integer b, 1 for b = 0; its relative error grows with |b·ln a|.
//! - Exp, Log, Tanh, Sigmoid are polynomial approximations (see `math.rs`), within a few ULP
//!   of the correctly rounded result; `eval` runs their scalar twins, so it matches the
//!   compiled code bit for bit (up to the payload of NaNs).

use super::scalar_math;
use crate::ir::{BinaryOp, ReduceOp, UnaryOp};
use thiserror::Error;

/// A node of a kernel expression.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelExpr {
    /// The kernel's `i`-th input, read with that input's `Access`.
    Input(usize),
    Const(f32),
    Unary(UnaryOp, Box<KernelExpr>),
    Binary(BinaryOp, Box<KernelExpr>, Box<KernelExpr>),
    /// `Select(cond, a, b)`: `a` where `cond` is true, `b` elsewhere.
    Select(Box<KernelExpr>, Box<KernelExpr>, Box<KernelExpr>),
}

impl KernelExpr {
    pub fn input(i: usize) -> KernelExpr {
        KernelExpr::Input(i)
    }

    pub fn unary(op: UnaryOp, x: KernelExpr) -> KernelExpr {
        KernelExpr::Unary(op, Box::new(x))
    }

    pub fn binary(op: BinaryOp, a: KernelExpr, b: KernelExpr) -> KernelExpr {
        KernelExpr::Binary(op, Box::new(a), Box::new(b))
    }

    pub fn select(cond: KernelExpr, a: KernelExpr, b: KernelExpr) -> KernelExpr {
        KernelExpr::Select(Box::new(cond), Box::new(a), Box::new(b))
    }

    /// True when the node yields a mask rather than a number.
    pub fn is_mask(&self) -> bool {
        match self {
            KernelExpr::Unary(UnaryOp::Not, _) => true,
            KernelExpr::Binary(op, _, _) => op.is_comparison() || op.is_logical(),
            KernelExpr::Select(_, a, b) => a.is_mask() && b.is_mask(),
            _ => false,
        }
    }

    /// The two factors when the node is a product.
    pub fn as_product(&self) -> Option<(&KernelExpr, &KernelExpr)> {
        match self {
            KernelExpr::Binary(BinaryOp::Mul, x, y) => Some((x, y)),
            _ => None,
        }
    }

    /// The largest input index used, if any.
    pub fn max_input(&self) -> Option<usize> {
        match self {
            KernelExpr::Input(i) => Some(*i),
            KernelExpr::Const(_) => None,
            KernelExpr::Unary(_, x) => x.max_input(),
            KernelExpr::Binary(_, a, b) => a.max_input().max(b.max_input()),
            KernelExpr::Select(c, a, b) => c.max_input().max(a.max_input()).max(b.max_input()),
        }
    }

    /// Evaluates the expression on one element, `inputs[i]` being input `i`'s value there,
    /// with the semantics of the module header; `contract` says whether multiply-adds are
    /// fused (pass `Jit::contracts()`). It is the scalar reference the compiled code is
    /// tested against. Inputs out of range read NaN.
    pub fn eval(&self, inputs: &[f32], contract: bool) -> f32 {
        match self {
            KernelExpr::Input(i) => inputs.get(*i).copied().unwrap_or(f32::NAN),
            KernelExpr::Const(v) => *v,
            KernelExpr::Unary(op, x) => eval_unary(*op, x.eval(inputs, contract), contract),
            KernelExpr::Binary(op, a, b) => {
                if contract && let Some(v) = eval_contracted(*op, a, b, inputs) {
                    return v;
                }
                if let Some((v, c)) = extremum_with_constant(*op, a, b) {
                    let v = v.eval(inputs, contract);
                    let beyond = if *op == BinaryOp::Max { v < c } else { v > c };
                    return if beyond { c } else { v };
                }
                eval_binary(*op, a.eval(inputs, contract), b.eval(inputs, contract), contract)
            }
            KernelExpr::Select(c, a, b) => {
                if truth(c.eval(inputs, contract)) {
                    a.eval(inputs, contract)
                } else {
                    b.eval(inputs, contract)
                }
            }
        }
    }
}

/// A number used as a mask.
fn truth(x: f32) -> bool {
    x != 0.0
}

fn mask(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// The multiply-add contraction of the header, in the reference evaluator.
fn eval_contracted(op: BinaryOp, a: &KernelExpr, b: &KernelExpr, inputs: &[f32]) -> Option<f32> {
    let product = |e: &KernelExpr| e.as_product().map(|(x, y)| (x.eval(inputs, true), y.eval(inputs, true)));
    match op {
        BinaryOp::Add => {
            if let Some((x, y)) = product(a) {
                Some(x.mul_add(y, b.eval(inputs, true)))
            } else {
                product(b).map(|(x, y)| x.mul_add(y, a.eval(inputs, true)))
            }
        }
        BinaryOp::Sub => {
            if let Some((x, y)) = product(a) {
                Some(x.mul_add(y, -b.eval(inputs, true)))
            } else {
                product(b).map(|(x, y)| (-x).mul_add(y, a.eval(inputs, true)))
            }
        }
        _ => None,
    }
}

fn eval_unary(op: UnaryOp, x: f32, fused: bool) -> f32 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => scalar_math::exp(fused, x),
        UnaryOp::Log => scalar_math::log(fused, x),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x.is_nan() || x == 0.0 {
                x
            } else {
                x.signum()
            }
        }
        UnaryOp::Tanh => scalar_math::tanh(fused, x),
        UnaryOp::Sigmoid => scalar_math::sigmoid(fused, x),
        UnaryOp::Not => mask(!truth(x)),
    }
}

/// IEEE 754-2019 maximum/minimum: NaN if either is NaN, +0 above -0.
fn extremum(is_max: bool, a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a == b {
        // Only the signs of zeros can differ: max keeps a set sign only if both have it.
        let bits = if is_max { a.to_bits() & b.to_bits() } else { a.to_bits() | b.to_bits() };
        f32::from_bits(bits)
    } else if (a > b) == is_max {
        a
    } else {
        b
    }
}

fn eval_binary(op: BinaryOp, a: f32, b: f32, fused: bool) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => scalar_math::pow(fused, a, b),
        BinaryOp::Max => extremum(true, a, b),
        BinaryOp::Min => extremum(false, a, b),
        BinaryOp::Eq => mask(a == b),
        BinaryOp::Lt => mask(a < b),
        BinaryOp::Le => mask(a <= b),
        BinaryOp::Gt => mask(a > b),
        BinaryOp::Ge => mask(a >= b),
        BinaryOp::And => mask(truth(a) && truth(b)),
        BinaryOp::Or => mask(truth(a) || truth(b)),
    }
}

/// `max(v, c)`/`min(v, c)` against a non-NaN constant `c`, which the JIT compiles to a
/// compare and select: `c` where `v` is beyond it, else `v` (so a NaN `v` passes through).
fn extremum_with_constant<'a>(
    op: BinaryOp,
    a: &'a KernelExpr,
    b: &'a KernelExpr,
) -> Option<(&'a KernelExpr, f32)> {
    if !matches!(op, BinaryOp::Max | BinaryOp::Min) {
        return None;
    }
    match (a, b) {
        (v, KernelExpr::Const(c)) | (KernelExpr::Const(c), v) if !c.is_nan() => Some((v, *c)),
        _ => None,
    }
}

/// How a kernel reads one input over its 2-D domain `[rows, cols]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Row-major `[rows, cols]`: element `r·cols + c`.
    Full,
    /// One value per column, the same for every row (a bias vector): element `c`.
    Row,
    /// One value per row, the same for every column: element `r`.
    Col,
    /// One value for the whole domain: element 0.
    Scalar,
}

impl Access {
    /// The exact number of elements an input with this access must have.
    pub fn len(self, rows: usize, cols: usize) -> Option<usize> {
        match self {
            Access::Full => rows.checked_mul(cols),
            Access::Row => Some(cols),
            Access::Col => Some(rows),
            Access::Scalar => Some(1),
        }
    }
}

/// The axis a reduction kernel reduces.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReduceAxis {
    /// Over the columns of each row: the output has `rows` elements.
    Cols,
    /// Over the rows of each column: the output has `cols` elements (a bias gradient).
    Rows,
}

/// What a kernel computes.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelKind {
    /// Each output `k` is `outputs[k]` at every element of the domain, row-major.
    Elementwise { outputs: Vec<KernelExpr> },
    /// The sum or max of `expr` along `axis`. An empty sum is 0, an empty max is -inf, and
    /// the max is NaN when any term is NaN.
    Reduce { expr: KernelExpr, op: ReduceOp, axis: ReduceAxis },
}

/// One kernel: its inputs' access patterns and what it computes.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSpec {
    pub inputs: Vec<Access>,
    pub kind: KernelKind,
}

/// An error compiling or running a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    #[error("kernel expression reads input {index}, but the kernel has {count} inputs")]
    InputOutOfRange { index: usize, count: usize },
    #[error("an elementwise kernel needs at least one output")]
    NoOutputs,
    #[error("kernel takes {expected} {what} slices, got {got}")]
    SliceCount { what: &'static str, expected: usize, got: usize },
    #[error(
        "{what} {index} ({access}) must have {expected} elements for a {rows}×{cols} domain, it has {got}"
    )]
    SliceLength {
        what: &'static str,
        index: usize,
        access: String,
        expected: usize,
        got: usize,
        rows: usize,
        cols: usize,
    },
    #[error("a {rows}×{cols} domain is too large to address")]
    DomainTooLarge { rows: usize, cols: usize },
    #[error("the host machine is not supported by Cranelift: {0}")]
    UnsupportedHost(String),
    #[error("cranelift failed to compile a kernel: {0}")]
    Cranelift(String),
}

impl KernelSpec {
    pub fn elementwise(inputs: Vec<Access>, outputs: Vec<KernelExpr>) -> KernelSpec {
        KernelSpec { inputs, kind: KernelKind::Elementwise { outputs } }
    }

    pub fn reduce(inputs: Vec<Access>, expr: KernelExpr, op: ReduceOp, axis: ReduceAxis) -> KernelSpec {
        KernelSpec { inputs, kind: KernelKind::Reduce { expr, op, axis } }
    }

    /// The expressions the kernel evaluates per element.
    pub fn exprs(&self) -> &[KernelExpr] {
        match &self.kind {
            KernelKind::Elementwise { outputs } => outputs,
            KernelKind::Reduce { expr, .. } => std::slice::from_ref(expr),
        }
    }

    /// Checks that every input index exists and that there is something to compute.
    pub fn validate(&self) -> Result<(), KernelError> {
        if self.exprs().is_empty() {
            return Err(KernelError::NoOutputs);
        }
        for e in self.exprs() {
            if let Some(index) = e.max_input().filter(|&i| i >= self.inputs.len()) {
                return Err(KernelError::InputOutOfRange { index, count: self.inputs.len() });
            }
        }
        Ok(())
    }

    /// The exact lengths of the output slices for a `[rows, cols]` domain.
    pub fn output_lens(&self, rows: usize, cols: usize) -> Option<Vec<usize>> {
        match &self.kind {
            KernelKind::Elementwise { outputs } => Some(vec![rows.checked_mul(cols)?; outputs.len()]),
            KernelKind::Reduce { axis: ReduceAxis::Cols, .. } => Some(vec![rows]),
            KernelKind::Reduce { axis: ReduceAxis::Rows, .. } => Some(vec![cols]),
        }
    }

    /// True when some input depends on the row or the column alone, so the domain cannot
    /// be flattened into one long row.
    pub fn needs_2d(&self) -> bool {
        self.inputs.iter().any(|a| matches!(a, Access::Row | Access::Col))
            || matches!(self.kind, KernelKind::Reduce { .. })
    }
}
