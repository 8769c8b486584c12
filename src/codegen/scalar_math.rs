//! Scalar twins of the vector approximations in `math.rs`: the same operations in the same
//! order, so `KernelExpr::eval` gives bit-for-bit the JIT's results (an interpreter and the
//! compiled code can then never disagree). `fused` mirrors `Vx::fma`: whether `mul_add`
//! is one rounding or two. Keep every change here in step with `math.rs`; the differential
//! tests compare the two exactly.

// The coefficients are quoted as published (Cephes); Rust rounds them to the same f32s
// clippy's shorter forms would.
#![allow(clippy::excessive_precision)]

fn mul_add(fused: bool, a: f32, b: f32, c: f32) -> f32 {
    if fused { a.mul_add(b, c) } else { a * b + c }
}

fn horner(fused: bool, x: f32, coeffs: &[f32]) -> f32 {
    coeffs[1..].iter().fold(coeffs[0], |acc, &c| mul_add(fused, acc, x, c))
}

/// The vector select on a comparison that is false for NaN.
fn sel(cond: bool, t: f32, f: f32) -> f32 {
    if cond { t } else { f }
}

fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

pub(crate) fn exp(fused: bool, x: f32) -> f32 {
    let x = sel(x < -104.0, -104.0, x);
    let x = sel(x > 89.0, 89.0, x);
    let magic = 12_582_912.0f32;
    let t = mul_add(fused, x, std::f32::consts::LOG2_E, magic);
    let nf = t - magic;
    let n = (t.to_bits() as i32).wrapping_sub(0x4b40_0000);
    let r = mul_add(fused, nf, -0.693_359_375, x);
    let r = mul_add(fused, nf, 2.121_944_4e-4, r);
    let q = horner(
        fused,
        r,
        &[1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1],
    );
    let p = mul_add(fused, q, r * r, r + 1.0);
    if x.is_nan() {
        return p;
    }
    let n1 = n >> 1;
    let n2 = n - n1;
    p * pow2i(n1) * pow2i(n2)
}

pub(crate) fn log(fused: bool, x: f32) -> f32 {
    let subnormal = x < f32::MIN_POSITIVE;
    let xs = sel(subnormal, x * 8_388_608.0, x);
    let bits = xs.to_bits();
    let e_int = (bits >> 23) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let e = e_int as f32 - sel(subnormal, 23.0, 0.0);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let f = sel(small, m + m, m) - 1.0;
    let e = e - sel(small, 1.0, 0.0);
    let z = f * f;
    let p = horner(
        fused,
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
    let y = f * z * p;
    let y = mul_add(fused, e, -2.121_944_4e-4, y);
    let y = mul_add(fused, z, -0.5, y);
    let r = mul_add(fused, e, 0.693_359_375, f + y);
    let r = sel(x == f32::INFINITY, f32::INFINITY, r);
    let r = sel(x == 0.0, f32::NEG_INFINITY, r);
    sel(x.is_nan() || x < 0.0, f32::NAN, r)
}

pub(crate) fn tanh(fused: bool, x: f32) -> f32 {
    let z = x * x;
    let p = horner(
        fused,
        z,
        &[-5.704_988_7e-3, 2.063_908_9e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328_2e-1],
    );
    let small_result = mul_add(fused, x * z, p, x);
    let a = x.abs();
    let e = exp(fused, a + a);
    let t = 1.0 - 2.0 / (e + 1.0);
    let r = sel(a < 0.625, small_result, t);
    f32::from_bits((r.to_bits() & 0x7fff_ffff) | (x.to_bits() & 0x8000_0000))
}

pub(crate) fn sigmoid(fused: bool, x: f32) -> f32 {
    let e = exp(fused, -x.abs());
    let s = 1.0 / (1.0 + e);
    sel(x >= 0.0, s, e * s)
}

pub(crate) fn pow(fused: bool, a: f32, b: f32) -> f32 {
    let y = exp(fused, b * log(fused, a.abs()));
    let is_int = b == b.round_ties_even();
    let half_b = b * 0.5;
    let is_odd = is_int && half_b != half_b.round_ties_even();
    let negative = a < 0.0;
    let y = sel(negative && is_odd, -y, y);
    let y = sel(negative && !is_int, f32::NAN, y);
    sel(b == 0.0, 1.0, y)
}
