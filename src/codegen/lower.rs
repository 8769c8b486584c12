//! Lowers a `KernelExpr` to f32x4 CLIF for one vector of four elements.
//!
//! Numbers are f32x4 values, masks are i32x4 values with all bits set where true (what
//! `fcmp` yields). Conversions between the two follow the rules of `kexpr`'s header. The
//! scalar tail of a kernel uses the same lowering on a splatted element, so the tail and the
//! vector body compute bit-identical results.

use super::kexpr::KernelExpr;
use super::math::Vx;
use crate::ir::{BinaryOp, UnaryOp};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value};

/// Subexpressions lowered so far in one chunk, with their values.
pub(crate) type Memo<'e> = Vec<(&'e KernelExpr, Lv)>;

/// A lowered value: a number (f32x4) or a mask (i32x4).
#[derive(Copy, Clone, Debug)]
pub(crate) enum Lv {
    Num(Value),
    Mask(Value),
}

impl Vx<'_, '_> {
    pub fn num(&mut self, v: Lv) -> Value {
        match v {
            Lv::Num(x) => x,
            Lv::Mask(m) => self.mask_to_float(m),
        }
    }

    pub fn mask(&mut self, v: Lv) -> Value {
        match v {
            Lv::Mask(m) => m,
            Lv::Num(x) => {
                // `NotEqual` is unordered-or-not-equal: NaN counts as true.
                let zero = self.f(0.0);
                self.cmp(FloatCC::NotEqual, x, zero)
            }
        }
    }

    /// Lowers `e`, reading input `i` as the f32x4 `inputs[i]` (every index `e` uses must be
    /// `Some`: the caller loads exactly the inputs the expression reads). `memo` holds the
    /// subexpressions already lowered for this chunk: an equal subexpression (fused
    /// producers inlined into several outputs repeat them) reuses their value.
    pub fn lower<'e>(&mut self, e: &'e KernelExpr, inputs: &[Option<Value>], memo: &mut Memo<'e>) -> Lv {
        if let Some((_, v)) = memo.iter().find(|(k, _)| *k == e) {
            return *v;
        }
        let v = self.lower_new(e, inputs, memo);
        if !matches!(e, KernelExpr::Input(_) | KernelExpr::Const(_)) {
            memo.push((e, v));
        }
        v
    }

    fn lower_new<'e>(&mut self, e: &'e KernelExpr, inputs: &[Option<Value>], memo: &mut Memo<'e>) -> Lv {
        match e {
            KernelExpr::Input(i) => match inputs.get(*i).copied().flatten() {
                Some(v) => Lv::Num(v),
                None => unreachable!("input {i} was validated and loaded"),
            },
            KernelExpr::Const(c) => Lv::Num(self.f(*c)),
            KernelExpr::Unary(op, x) => {
                let x = self.lower(x, inputs, memo);
                self.unary(*op, x)
            }
            KernelExpr::Binary(op, a, b) => {
                if let Some(v) = self.contracted(*op, a, b, inputs, memo) {
                    return Lv::Num(v);
                }
                let (a, b) = (self.lower(a, inputs, memo), self.lower(b, inputs, memo));
                self.binary(*op, a, b, e)
            }
            KernelExpr::Select(c, a, b) => {
                let c = self.lower(c, inputs, memo);
                let (a, b) = (self.lower(a, inputs, memo), self.lower(b, inputs, memo));
                let m = self.mask(c);
                match (a, b) {
                    (Lv::Mask(a), Lv::Mask(b)) => Lv::Mask(self.b.ins().bitselect(m, a, b)),
                    _ => {
                        let (a, b) = (self.num(a), self.num(b));
                        Lv::Num(self.sel(m, a, b))
                    }
                }
            }
        }
    }

    /// `a ± x·y` and `x·y ± b` as one fused multiply-add, when the target has FMA.
    fn contracted<'e>(
        &mut self,
        op: BinaryOp,
        a: &'e KernelExpr,
        b: &'e KernelExpr,
        inputs: &[Option<Value>],
        memo: &mut Memo<'e>,
    ) -> Option<Value> {
        if !self.fma || !matches!(op, BinaryOp::Add | BinaryOp::Sub) {
            return None;
        }
        let (x, y, addend, negate_product) = if let Some((x, y)) = a.as_product() {
            (x, y, b, false)
        } else {
            let (x, y) = b.as_product()?;
            (x, y, a, op == BinaryOp::Sub)
        };
        let x = self.lower(x, inputs, memo);
        let y = self.lower(y, inputs, memo);
        let addend = self.lower(addend, inputs, memo);
        let (mut x, y, mut addend) = (self.num(x), self.num(y), self.num(addend));
        if negate_product {
            x = self.b.ins().fneg(x);
        } else if op == BinaryOp::Sub {
            addend = self.b.ins().fneg(addend);
        }
        Some(self.b.ins().fma(x, y, addend))
    }

    fn unary(&mut self, op: UnaryOp, x: Lv) -> Lv {
        if op == UnaryOp::Not {
            let m = self.mask(x);
            return Lv::Mask(self.b.ins().bnot(m));
        }
        let x = self.num(x);
        Lv::Num(match op {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Exp => self.exp(x),
            UnaryOp::Log => self.log(x),
            UnaryOp::Tanh => self.tanh(x),
            UnaryOp::Sigmoid => self.sigmoid(x),
            UnaryOp::Sign => {
                // ±1 with x's sign where x != 0 (or NaN), then x itself where x is 0 or NaN.
                let one = self.f(1.0);
                let signed_one = self.copysign(one, x);
                let zero = self.f(0.0);
                let is_zero = self.cmp(FloatCC::Equal, x, zero);
                let is_nan = self.cmp(FloatCC::NotEqual, x, x);
                let zero_or_nan = self.b.ins().bor(is_zero, is_nan);
                self.sel(zero_or_nan, x, signed_one)
            }
            UnaryOp::Not => unreachable!("handled above"),
        })
    }

    fn binary(&mut self, op: BinaryOp, a: Lv, b: Lv, e: &KernelExpr) -> Lv {
        if op.is_logical() {
            let (a, b) = (self.mask(a), self.mask(b));
            return Lv::Mask(match op {
                BinaryOp::And => self.b.ins().band(a, b),
                _ => self.b.ins().bor(a, b),
            });
        }
        let (x, y) = (self.num(a), self.num(b));
        let cc = match op {
            BinaryOp::Eq => Some(FloatCC::Equal),
            BinaryOp::Lt => Some(FloatCC::LessThan),
            BinaryOp::Le => Some(FloatCC::LessThanOrEqual),
            BinaryOp::Gt => Some(FloatCC::GreaterThan),
            BinaryOp::Ge => Some(FloatCC::GreaterThanOrEqual),
            _ => None,
        };
        if let Some(cc) = cc {
            return Lv::Mask(self.cmp(cc, x, y));
        }
        Lv::Num(match op {
            BinaryOp::Add => self.b.ins().fadd(x, y),
            BinaryOp::Sub => self.b.ins().fsub(x, y),
            BinaryOp::Mul => self.b.ins().fmul(x, y),
            BinaryOp::Div => self.b.ins().fdiv(x, y),
            BinaryOp::Pow => self.pow(x, y),
            BinaryOp::Max | BinaryOp::Min => self.extremum(op == BinaryOp::Max, x, y, e),
            _ => unreachable!("comparisons and logical ops are handled above"),
        })
    }

    /// max/min. Against a non-NaN constant (ReLU's `max(x, 0)`), a compare and a select
    /// suffice and still pass a NaN `x` through; otherwise Cranelift's NaN-propagating
    /// `fmax`/`fmin` sequence.
    fn extremum(&mut self, is_max: bool, x: Value, y: Value, e: &KernelExpr) -> Value {
        let constant_side = match e {
            KernelExpr::Binary(_, _, c) if matches!(**c, KernelExpr::Const(v) if !v.is_nan()) => Some((x, y)),
            KernelExpr::Binary(_, c, _) if matches!(**c, KernelExpr::Const(v) if !v.is_nan()) => Some((y, x)),
            _ => None,
        };
        match constant_side {
            Some((v, c)) => {
                let cc = if is_max { FloatCC::LessThan } else { FloatCC::GreaterThan };
                let take_constant = self.cmp(cc, v, c);
                self.sel(take_constant, c, v)
            }
            None if is_max => self.b.ins().fmax(x, y),
            None => self.b.ins().fmin(x, y),
        }
    }
}
