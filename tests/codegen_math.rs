//! Accuracy of the JIT's exp, log, tanh and sigmoid against f64 (the truth, rounded once)
//! and against Rust's f32 functions, on sweeps over each function's useful range, and
//! their special values.
//!
//! Measured on an AMD EPYC with FMA (the bounds asserted leave a little room):
//! max error vs f64 in ULP of the f32 result: exp 1.22, log 0.77, tanh 1.29, sigmoid 2.31;
//! vs Rust's f32 functions: exp 1, log 1, tanh 2 ULP, and sigmoid 3 ULP from the naive
//! `1/(1 + e^-x)` in f32 above x = -16 (below it the naive formula is the inaccurate one).
//! `pow` is `exp(b·ln a)`: its relative error grows with |b·ln a| (tested separately).

use dnnc::codegen::{Access, Jit, KernelExpr, KernelSpec};
use dnnc::ir::{BinaryOp, UnaryOp};
use dnnc::runtime::rng::Rng;

const FUNCTIONS: [UnaryOp; 4] = [UnaryOp::Exp, UnaryOp::Log, UnaryOp::Tanh, UnaryOp::Sigmoid];

/// The four functions of one input, as one four-output kernel.
fn run_all(xs: &[f32]) -> Vec<Vec<f32>> {
    let mut jit = Jit::new().unwrap();
    let outputs = FUNCTIONS.iter().map(|&op| KernelExpr::unary(op, KernelExpr::Input(0))).collect();
    let kernel = jit.compile(&KernelSpec::elementwise(vec![Access::Full], outputs)).unwrap();
    let mut results = vec![vec![0.0; xs.len()]; 4];
    let mut refs: Vec<&mut [f32]> = results.iter_mut().map(|v| v.as_mut_slice()).collect();
    kernel.run(&[xs], &mut refs, 1, xs.len()).unwrap();
    results
}

fn truth(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        _ => 1.0 / (1.0 + (-x).exp()),
    }
}

fn rust_f32(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Tanh => x.tanh(),
        _ => 1.0 / (1.0 + (-x).exp()),
    }
}

/// The spacing of f32 values at `y` (the subnormal spacing below the normal range).
fn ulp(y: f64) -> f64 {
    let a = (y.abs() as f32).max(f32::MIN_POSITIVE);
    if a == f32::MAX {
        (a - f32::from_bits(a.to_bits() - 1)) as f64
    } else {
        (f32::from_bits(a.to_bits() + 1) - a) as f64
    }
}

/// Inputs for `op`: a uniform sweep of its useful range plus a dense one near zero (or one).
fn sweep(op: UnaryOp, rng: &mut Rng) -> Vec<f32> {
    let mut xs = Vec::new();
    for i in 0..40_000 {
        let u = rng.uniform();
        let x = match op {
            UnaryOp::Exp => -103.9 + u * (88.7 + 103.9),
            // Log-uniform over all positive floats, subnormals included.
            UnaryOp::Log => (-149.0 + u * 277.0).exp2(),
            UnaryOp::Tanh => -12.0 + u * 24.0,
            _ => -103.0 + u * 133.0,
        };
        let near = match op {
            UnaryOp::Log => 0.5 + 1.5 * u,
            _ => (u - 0.5) * 2.0 * if i % 2 == 0 { 1.0 } else { 1e-3 },
        };
        xs.push(x as f32);
        xs.push(near as f32);
    }
    xs
}

#[test]
fn transcendentals_are_within_a_few_ulp() {
    let mut rng = Rng::new(3);
    let bounds_vs_f64 = [1.5, 1.5, 2.0, 3.0];
    let bounds_vs_rust = [2.0, 2.0, 3.0, 4.0];
    for (k, &op) in FUNCTIONS.iter().enumerate() {
        let xs = sweep(op, &mut rng);
        let got = &run_all(&xs)[k];
        let (mut worst, mut worst_rust, mut at) = (0.0f64, 0.0f64, 0.0f32);
        for (&x, &y) in xs.iter().zip(got) {
            let want = truth(op, x as f64);
            let err = (y as f64 - want).abs() / ulp(want);
            if err > worst {
                (worst, at) = (err, x);
            }
            // Rust has no sigmoid, and the naive 1/(1 + e^-x) loses all accuracy below
            // x = -16 (it rounds 1 + e^-x), so compare with it only above.
            if op != UnaryOp::Sigmoid || x > -16.0 {
                let rust = rust_f32(op, x) as f64;
                worst_rust = worst_rust.max((y as f64 - rust).abs() / ulp(rust));
            }
        }
        println!("{op:?}: max {worst:.2} ULP vs f64 (at x = {at:e}), {worst_rust:.2} ULP vs Rust's f32");
        assert!(worst <= bounds_vs_f64[k], "{op:?}: {worst} ULP at x = {at:e}");
        assert!(worst_rust <= bounds_vs_rust[k], "{op:?}: {worst_rust} ULP from Rust's f32");
    }
}

#[test]
fn special_values() {
    let inf = f32::INFINITY;
    let xs = [f32::NAN, inf, -inf, 0.0, -0.0, 89.0, 88.8, -104.0, -103.0, -1.0, f32::from_bits(1), 1e-30];
    let r = run_all(&xs);
    let (exp, log, tanh, sigmoid) = (&r[0], &r[1], &r[2], &r[3]);
    for f in [exp, log, tanh, sigmoid] {
        assert!(f[0].is_nan(), "NaN in gives NaN out");
    }
    assert_eq!(exp[1..5], [inf, 0.0, 1.0, 1.0]);
    assert_eq!(exp[5], inf, "exp(89) overflows");
    assert_eq!(exp[6], inf, "exp(88.8) overflows");
    assert_eq!(exp[7], 0.0, "exp(-104) underflows to 0");
    assert!(exp[8] > 0.0 && exp[8] < f32::MIN_POSITIVE, "exp(-103) is subnormal: {}", exp[8]);
    assert_eq!(log[1], inf);
    assert!(log[2].is_nan() && log[9].is_nan(), "log of a negative number is NaN");
    assert_eq!((log[3], log[4]), (-inf, -inf));
    assert!(
        (log[10] as f64 - (-149.0 * std::f64::consts::LN_2)).abs() < 1e-4,
        "log of the smallest subnormal: {}",
        log[10]
    );
    assert_eq!((tanh[1], tanh[2], tanh[3]), (1.0, -1.0, 0.0));
    assert!(tanh[4] == 0.0 && tanh[4].is_sign_negative(), "tanh(-0) = -0");
    assert_eq!(tanh[11], 1e-30);
    assert_eq!((sigmoid[1], sigmoid[2], sigmoid[3]), (1.0, 0.0, 0.5));
    assert!(sigmoid[8] > 0.0, "sigmoid(-103) is a positive subnormal, not 0");
}

#[test]
fn pow_is_accurate_relative_to_its_exponent() {
    let mut rng = Rng::new(5);
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..20_000 {
        a.push((rng.uniform() * 10.0 + 0.01) as f32);
        b.push(((rng.uniform() - 0.5) * 8.0) as f32);
    }
    // Negative bases with integer exponents (odd and even), and one without.
    a.extend([-2.0, -2.0, -3.0, -2.0, 0.0, 0.0, 5.0]);
    b.extend([3.0, 2.0, -1.0, 0.5, 2.0, -1.0, 0.0]);
    let mut jit = Jit::new().unwrap();
    let pow = KernelExpr::binary(BinaryOp::Pow, KernelExpr::Input(0), KernelExpr::Input(1));
    let kernel = jit.compile(&KernelSpec::elementwise(vec![Access::Full, Access::Full], vec![pow])).unwrap();
    let mut out = vec![0.0; a.len()];
    kernel.run(&[&a, &b], &mut [&mut out], 1, a.len()).unwrap();
    let n = a.len();
    assert_eq!(out[n - 7..n - 5], [-8.0, 4.0]);
    assert!((out[n - 5] + 1.0 / 3.0).abs() <= 2.0 * f32::EPSILON, "(-3)^-1: got {}", out[n - 5]);
    assert!(out[n - 4].is_nan(), "(-2)^0.5 is NaN");
    assert_eq!(out[n - 3..], [0.0, f32::INFINITY, 1.0]);
    for i in 0..n - 7 {
        let want = (a[i] as f64).powf(b[i] as f64);
        // ln a is accurate to about 1 ULP and b·ln a adds one rounding: both are magnified
        // by |b·ln a| in the exponential, which adds its own couple of ULP.
        let magnification = (b[i] as f64 * (a[i] as f64).ln()).abs();
        let tol = (3.0 + 2.0 * magnification) * f32::EPSILON as f64 * want;
        assert!((out[i] as f64 - want).abs() <= tol, "{}^{}: got {}, want {want}", a[i], b[i], out[i]);
    }
}
