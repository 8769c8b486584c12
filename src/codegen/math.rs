//! Vector (`f32x4`) building blocks for the JIT: constants, masks, and the transcendental
//! functions Cranelift has no instruction for (exp, log, tanh, sigmoid, pow), written as
//! range reduction plus polynomial so that they vectorize and never branch.
//!
//! The polynomials are the classic Cephes single-precision ones (Moshier). Invariants of
//! every function here: NaN in gives NaN out, overflow gives ±inf, underflow goes through
//! the subnormals to 0, and no input makes the code trap. Measured errors against Rust's
//! f32 functions are asserted in `tests/codegen_math.rs`.

// The coefficients are quoted as published (Cephes); Rust rounds them to the same f32s
// clippy's shorter forms would.
#![allow(clippy::excessive_precision)]

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32X4, I32X4};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

/// Emits f32x4 code into a function builder.
pub(crate) struct Vx<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    /// Whether `fma` is a native instruction (otherwise a multiply and an add).
    pub fma: bool,
}

impl Vx<'_, '_> {
    pub fn f(&mut self, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        self.b.ins().splat(F32X4, s)
    }

    pub fn i(&mut self, v: i32) -> Value {
        let s = self.b.ins().iconst(cranelift_codegen::ir::types::I32, v as i64);
        self.b.ins().splat(I32X4, s)
    }

    /// A scalar shift amount for the lanes of an i32x4.
    fn shift_amount(&mut self, bits: i64) -> Value {
        self.b.ins().iconst(cranelift_codegen::ir::types::I32, bits)
    }

    /// Reinterprets the bits of an f32x4 as i32x4.
    pub fn bits(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(I32X4, MemFlagsData::new(), x)
    }

    /// Reinterprets the bits of an i32x4 as f32x4.
    pub fn float(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(F32X4, MemFlagsData::new(), x)
    }

    /// `a·b + c`, fused when the target has FMA.
    pub fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// The polynomial with `coeffs` (highest degree first) at `x`, by Horner's rule.
    pub fn horner(&mut self, x: Value, coeffs: &[f32]) -> Value {
        let mut acc = self.f(coeffs[0]);
        for &c in &coeffs[1..] {
            let c = self.f(c);
            acc = self.mul_add(acc, x, c);
        }
        acc
    }

    /// An i32x4 mask (all ones where true) comparing two f32x4.
    pub fn cmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    /// `t` where the i32x4 `mask` is set, `f` elsewhere, for f32x4 `t` and `f`.
    pub fn sel(&mut self, mask: Value, t: Value, f: Value) -> Value {
        let m = self.float(mask);
        self.b.ins().bitselect(m, t, f)
    }

    /// A mask as a number: 1.0 where set, 0.0 elsewhere.
    pub fn mask_to_float(&mut self, mask: Value) -> Value {
        let one = self.i(1.0f32.to_bits() as i32);
        let bits = self.b.ins().band(mask, one);
        self.float(bits)
    }

    /// |t| with the sign of `s`.
    pub fn copysign(&mut self, t: Value, s: Value) -> Value {
        let (tb, sb) = (self.bits(t), self.bits(s));
        let magnitude_bits = self.i(0x7fff_ffff);
        let sign_bit = self.i(i32::MIN);
        let magnitude = self.b.ins().band(tb, magnitude_bits);
        let sign = self.b.ins().band(sb, sign_bit);
        let r = self.b.ins().bor(magnitude, sign);
        self.float(r)
    }

    /// 2^n for an i32x4 `n` in [-126, 127], as f32x4.
    fn pow2i(&mut self, n: Value) -> Value {
        let bias = self.i(127);
        let biased = self.b.ins().iadd(n, bias);
        let shift = self.shift_amount(23);
        let shifted = self.b.ins().ishl(biased, shift);
        self.float(shifted)
    }

    /// e^x: x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, then two
    /// power-of-two scalings so that results down to the smallest subnormal are right.
    pub fn exp(&mut self, x: Value) -> Value {
        // Clamp first (NaN passes through: the comparisons are false for it). Below -104
        // the result rounds to 0, above 89 it overflows to inf.
        let (lo, hi) = (self.f(-104.0), self.f(89.0));
        let below = self.cmp(FloatCC::LessThan, x, lo);
        let x = self.sel(below, lo, x);
        let above = self.cmp(FloatCC::GreaterThan, x, hi);
        let x = self.sel(above, hi, x);
        // Adding 1.5·2^23 rounds x·log2(e) to an integer held in the low mantissa bits.
        let magic = self.f(12_582_912.0);
        let log2e = self.f(std::f32::consts::LOG2_E);
        let t = self.mul_add(x, log2e, magic);
        let nf = self.b.ins().fsub(t, magic);
        let t_bits = self.bits(t);
        let magic_bits = self.i(0x4b40_0000);
        let n = self.b.ins().isub(t_bits, magic_bits);
        // Cody–Waite: ln2 = 0.693359375 - 2.12194440e-4, the first part exact in few bits.
        let (ln2_hi, ln2_lo) = (self.f(-0.693_359_375), self.f(2.121_944_4e-4));
        let r = self.mul_add(nf, ln2_hi, x);
        let r = self.mul_add(nf, ln2_lo, r);
        let q = self.horner(
            r,
            &[1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1],
        );
        let r2 = self.b.ins().fmul(r, r);
        let one = self.f(1.0);
        let r_plus_one = self.b.ins().fadd(r, one);
        let p = self.mul_add(q, r2, r_plus_one);
        // n lies in [-150, 129]; split it in two halves that are each a normal power of two.
        let one_bit = self.shift_amount(1);
        let n1 = self.b.ins().sshr(n, one_bit);
        let n2 = self.b.ins().isub(n, n1);
        let (s1, s2) = (self.pow2i(n1), self.pow2i(n2));
        let p = self.b.ins().fmul(p, s1);
        self.b.ins().fmul(p, s2)
    }

    /// ln x: x = 2^e·m with m in [√½, √2), ln m = f - f²/2 + f³·P(f) for f = m - 1.
    pub fn log(&mut self, x: Value) -> Value {
        // Subnormals are scaled by 2^23 into the normal range first.
        let min_normal = self.f(f32::MIN_POSITIVE);
        let subnormal = self.cmp(FloatCC::LessThan, x, min_normal);
        let two23 = self.f(8_388_608.0);
        let scaled = self.b.ins().fmul(x, two23);
        let xs = self.sel(subnormal, scaled, x);
        let bits = self.bits(xs);
        // frexp: m in [0.5, 1), exponent e + 1.
        let shift = self.shift_amount(23);
        let exp_bits = self.b.ins().ushr(bits, shift);
        let bias = self.i(-126);
        let e_int = self.b.ins().iadd(exp_bits, bias);
        let mant_mask = self.i(0x007f_ffff);
        let half_bits = self.i(0x3f00_0000);
        let mant = self.b.ins().band(bits, mant_mask);
        let m_bits = self.b.ins().bor(mant, half_bits);
        let m = self.float(m_bits);
        let e = self.b.ins().fcvt_from_sint(F32X4, e_int);
        let sub_adjust = {
            let mut twenty_three_bits = self.f(23.0);
            twenty_three_bits = self.bits(twenty_three_bits);
            let masked = self.b.ins().band(subnormal, twenty_three_bits);
            self.float(masked)
        };
        let e = self.b.ins().fsub(e, sub_adjust);
        let sqrt_half = self.f(std::f32::consts::FRAC_1_SQRT_2);
        let small = self.cmp(FloatCC::LessThan, m, sqrt_half);
        let m2 = self.b.ins().fadd(m, m);
        let m_adj = self.sel(small, m2, m);
        let one = self.f(1.0);
        let f = self.b.ins().fsub(m_adj, one);
        let one_if_small = self.mask_to_float(small);
        let e = self.b.ins().fsub(e, one_if_small);
        let z = self.b.ins().fmul(f, f);
        let p = self.horner(
            f,
            &[
                7.037_683_6e-2,
                -1.151_461e-1,
                1.167_699_9e-1,
                -1.242_014_1e-1,
                1.424_932_3e-1,
                -1.666_805_8e-1,
                2.000_071_4e-1,
                -2.499_999_4e-1,
                3.333_333e-1,
            ],
        );
        let fz = self.b.ins().fmul(f, z);
        let y = self.b.ins().fmul(fz, p);
        let ln2_lo = self.f(-2.121_944_4e-4);
        let y = self.mul_add(e, ln2_lo, y);
        let minus_half = self.f(-0.5);
        let y = self.mul_add(z, minus_half, y);
        let r = self.b.ins().fadd(f, y);
        let ln2_hi = self.f(0.693_359_375);
        let r = self.mul_add(e, ln2_hi, r);
        // Special values: ln(+inf) = inf, ln(±0) = -inf, ln(x < 0) = ln(NaN) = NaN.
        let inf = self.f(f32::INFINITY);
        let is_inf = self.cmp(FloatCC::Equal, x, inf);
        let r = self.sel(is_inf, inf, r);
        let zero = self.f(0.0);
        let is_zero = self.cmp(FloatCC::Equal, x, zero);
        let neg_inf = self.f(f32::NEG_INFINITY);
        let r = self.sel(is_zero, neg_inf, r);
        // Not (x >= 0): true for negative x and for NaN.
        let nonnegative = self.cmp(FloatCC::GreaterThanOrEqual, x, zero);
        let invalid = self.b.ins().bnot(nonnegative);
        let nan = self.f(f32::NAN);
        self.sel(invalid, nan, r)
    }

    /// tanh x: an odd polynomial below |x| = 0.625, 1 - 2/(e^{2|x|} + 1) above.
    pub fn tanh(&mut self, x: Value) -> Value {
        let z = self.b.ins().fmul(x, x);
        let p = self
            .horner(z, &[-5.704_988_7e-3, 2.063_908_9e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328_2e-1]);
        let xz = self.b.ins().fmul(x, z);
        let small_result = self.mul_add(xz, p, x);
        let a = self.b.ins().fabs(x);
        let two_a = self.b.ins().fadd(a, a);
        let e = self.exp(two_a);
        let one = self.f(1.0);
        let two = self.f(2.0);
        let e1 = self.b.ins().fadd(e, one);
        let q = self.b.ins().fdiv(two, e1);
        let t = self.b.ins().fsub(one, q);
        let threshold = self.f(0.625);
        let small = self.cmp(FloatCC::LessThan, a, threshold);
        let magnitude_or_small = self.sel(small, small_result, t);
        // tanh is odd: the sign of x, also for -0 (which the polynomial turns into +0).
        self.copysign(magnitude_or_small, x)
    }

    /// 1/(1 + e^-x), computed from e = e^-|x| as 1/(1+e) or e/(1+e) so that neither tail
    /// loses relative accuracy.
    pub fn sigmoid(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let neg_a = self.b.ins().fneg(a);
        let e = self.exp(neg_a);
        let one = self.f(1.0);
        let denom = self.b.ins().fadd(one, e);
        let s = self.b.ins().fdiv(one, denom);
        let es = self.b.ins().fmul(e, s);
        let zero = self.f(0.0);
        let nonneg = self.cmp(FloatCC::GreaterThanOrEqual, x, zero);
        self.sel(nonneg, s, es)
    }

    /// a^b as `exp(b·ln|a|)` with the sign rules of `kexpr`'s header.
    pub fn pow(&mut self, a: Value, b: Value) -> Value {
        let abs_a = self.b.ins().fabs(a);
        let l = self.log(abs_a);
        let bl = self.b.ins().fmul(b, l);
        let y = self.exp(bl);
        let rounded = self.b.ins().nearest(b);
        let is_int = self.cmp(FloatCC::Equal, b, rounded);
        let half = self.f(0.5);
        let half_b = self.b.ins().fmul(b, half);
        let rounded_half = self.b.ins().nearest(half_b);
        let half_not_int = self.cmp(FloatCC::NotEqual, half_b, rounded_half);
        let is_odd = self.b.ins().band(is_int, half_not_int);
        let zero = self.f(0.0);
        let negative = self.cmp(FloatCC::LessThan, a, zero);
        let flip = self.b.ins().band(negative, is_odd);
        let neg_y = self.b.ins().fneg(y);
        let y = self.sel(flip, neg_y, y);
        let not_int = self.b.ins().bnot(is_int);
        let invalid = self.b.ins().band(negative, not_int);
        let nan = self.f(f32::NAN);
        let y = self.sel(invalid, nan, y);
        let b_zero = self.cmp(FloatCC::Equal, b, zero);
        let one = self.f(1.0);
        self.sel(b_zero, one, y)
    }
}
