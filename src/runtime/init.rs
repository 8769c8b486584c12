//! Parameter initializers: fills a tensor of a given shape as an [`Init`] asks.
//!
//! Fan-in and fan-out follow Keras: a scalar has fans 1; a vector of length `n` has
//! `fan_in = fan_out = n`; a matrix `[in, out]` has `in` and `out`; a kernel
//! `[..receptive, in, out]` has `receptive*in` and `receptive*out`. The normal variants of
//! Glorot and He are truncated at two standard deviations (resampled beyond), and their
//! standard deviation is divided by 0.87962566103423978, the standard deviation of a unit
//! normal truncated to [-2, 2], so the variance is the one the scheme asks for. Every draw
//! goes through the seeded [`Rng`], so a seed gives the same tensor on every machine.

use ndarray::{ArrayD, IxDyn};

use crate::ir::Init;
use crate::runtime::rng::Rng;

/// The standard deviation of a unit normal truncated to [-2, 2].
const TRUNCATED_NORMAL_STD: f64 = 0.879_625_661_034_239_8;

/// Why a tensor could not be initialized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InitError {
    #[error("the `orthogonal` initializer needs a tensor of rank 2 or more, got shape {shape:?}")]
    OrthogonalRank { shape: Vec<usize> },
    #[error("initializer `{init}` is invalid: {reason}")]
    BadArgument { init: String, reason: String },
}

/// Fan-in and fan-out of a parameter of this shape, as Keras computes them.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [fan_in, fan_out] => (*fan_in, *fan_out),
        [receptive @ .., fan_in, fan_out] => {
            let receptive: usize = receptive.iter().product();
            (receptive * fan_in, receptive * fan_out)
        }
    }
}

/// A tensor of `shape` filled as `init` says, drawing from `rng`.
pub fn init_tensor(init: &Init, shape: &[usize], rng: &mut Rng) -> Result<ArrayD<f32>, InitError> {
    let len: usize = shape.iter().product();
    let (fan_in, fan_out) = fans(shape);
    let values: Vec<f32> = match init {
        Init::Zeros => vec![0.0; len],
        Init::Ones => vec![1.0; len],
        Init::Constant(value) => {
            check_finite(init, "value", *value)?;
            vec![*value as f32; len]
        }
        Init::GlorotUniform => uniform(len, glorot_limit(fan_in, fan_out), rng),
        Init::HeUniform => uniform(len, he_limit(fan_in), rng),
        Init::GlorotNormal => {
            let std = (2.0 / (fan_in + fan_out).max(1) as f64).sqrt();
            truncated_normal(len, std / TRUNCATED_NORMAL_STD, rng)
        }
        Init::HeNormal => {
            let std = (2.0 / fan_in.max(1) as f64).sqrt();
            truncated_normal(len, std / TRUNCATED_NORMAL_STD, rng)
        }
        Init::Uniform { low, high } => {
            check_finite(init, "low", *low)?;
            check_finite(init, "high", *high)?;
            if low > high {
                return Err(bad(init, format!("`low` ({low}) is greater than `high` ({high})")));
            }
            (0..len).map(|_| (low + (high - low) * rng.uniform()) as f32).collect()
        }
        Init::Normal { mean, std } => {
            check_finite(init, "mean", *mean)?;
            check_finite(init, "std", *std)?;
            if *std < 0.0 {
                return Err(bad(init, format!("`std` ({std}) is negative")));
            }
            (0..len).map(|_| (mean + std * rng.normal()) as f32).collect()
        }
        Init::Orthogonal => orthogonal(shape, rng)?,
        Init::Blocks(blocks) => {
            let width = shape.last().copied().unwrap_or(1);
            if blocks.is_empty() || width % blocks.len() != 0 {
                let n = blocks.len();
                return Err(bad(init, format!("a last axis of {width} does not cut into {n} equal blocks")));
            }
            for &v in blocks {
                check_finite(init, "value", v)?;
            }
            let block = width / blocks.len();
            (0..len).map(|i| blocks[(i % width) / block] as f32).collect()
        }
    };
    ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| bad(init, format!("cannot build a tensor of shape {shape:?}: {e}")))
}

fn bad(init: &Init, reason: String) -> InitError {
    InitError::BadArgument { init: init.name(), reason }
}

fn check_finite(init: &Init, what: &str, value: f64) -> Result<(), InitError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(bad(init, format!("`{what}` is {value}, not a finite number")))
    }
}

fn glorot_limit(fan_in: usize, fan_out: usize) -> f64 {
    (6.0 / (fan_in + fan_out).max(1) as f64).sqrt()
}

fn he_limit(fan_in: usize) -> f64 {
    (6.0 / fan_in.max(1) as f64).sqrt()
}

/// `len` draws from U(-limit, limit).
fn uniform(len: usize, limit: f64, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| ((2.0 * rng.uniform() - 1.0) * limit) as f32).collect()
}

/// `len` draws from N(0, std²) with every draw beyond two standard deviations redrawn.
fn truncated_normal(len: usize, std: f64, rng: &mut Rng) -> Vec<f32> {
    (0..len)
        .map(|_| {
            loop {
                let z = rng.normal();
                if z.abs() <= 2.0 {
                    break (z * std) as f32;
                }
            }
        })
        .collect()
}

/// A (semi-)orthogonal tensor: the shape is flattened to `[rows, cols]` with `cols` the last
/// axis; the Q factor of a QR decomposition of a normal matrix of shape
/// `[max(rows, cols), min(rows, cols)]`, with R's diagonal made positive (which makes Q
/// uniformly distributed), transposed when `rows < cols`. Then the rows (or the columns,
/// whichever are fewer) are orthonormal.
fn orthogonal(shape: &[usize], rng: &mut Rng) -> Result<Vec<f32>, InitError> {
    let Some((&cols, lead)) = shape.split_last() else {
        return Err(InitError::OrthogonalRank { shape: shape.to_vec() });
    };
    if lead.is_empty() {
        return Err(InitError::OrthogonalRank { shape: shape.to_vec() });
    }
    let rows: usize = lead.iter().product();
    let (tall, narrow) = (rows.max(cols), rows.min(cols));
    if narrow == 0 {
        return Ok(Vec::new());
    }
    let q = loop {
        let a: Vec<f64> = (0..tall * narrow).map(|_| rng.normal()).collect();
        // A rank-deficient normal matrix has probability zero; redraw if one ever comes.
        if let Some(q) = thin_q(&a, tall, narrow) {
            break q;
        }
    };
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // `q` is `tall x narrow`, row-major; transpose it when the tensor is wide.
            let v = if rows >= cols { q[r * narrow + c] } else { q[c * narrow + r] };
            out[r * cols + c] = v as f32;
        }
    }
    Ok(out)
}

/// The Q factor (`m x n`, row-major, `m >= n`) of the QR decomposition of the row-major
/// `m x n` matrix `a` with R's diagonal positive, by modified Gram–Schmidt with one
/// reorthogonalization pass per column (enough for full working precision). `None` when
/// the columns are linearly dependent.
fn thin_q(a: &[f64], m: usize, n: usize) -> Option<Vec<f64>> {
    // Work column by column: column j of `a` is `cols[j]`.
    let mut cols: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| a[i * n + j]).collect()).collect();
    for j in 0..n {
        let (done, rest) = cols.split_at_mut(j);
        let v = &mut rest[0];
        let original_norm = dot(v, v).sqrt();
        for _pass in 0..2 {
            for qk in done.iter() {
                let r = dot(qk, v);
                v.iter_mut().zip(qk).for_each(|(x, q)| *x -= r * q);
            }
        }
        let norm = dot(v, v).sqrt();
        if norm.is_nan() || norm <= 1e-10 * original_norm.max(f64::MIN_POSITIVE) {
            return None;
        }
        v.iter_mut().for_each(|x| *x /= norm);
    }
    let mut q = vec![0.0; m * n];
    for (j, col) in cols.iter().enumerate() {
        for (i, x) in col.iter().enumerate() {
            q[i * n + j] = *x;
        }
    }
    Some(q)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(a: &ArrayD<f32>) -> (f64, f64) {
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    fn init(i: Init, shape: &[usize], seed: u64) -> ArrayD<f32> {
        init_tensor(&i, shape, &mut Rng::new(seed)).expect("valid initializer")
    }

    #[test]
    fn fans_follow_keras() {
        assert_eq!(fans(&[]), (1, 1));
        assert_eq!(fans(&[7]), (7, 7));
        assert_eq!(fans(&[3, 5]), (3, 5));
        // A 3x3 convolution from 4 to 8 channels: receptive field 9.
        assert_eq!(fans(&[3, 3, 4, 8]), (36, 72));
    }

    #[test]
    fn constants_fill_every_element() {
        assert!(init(Init::Zeros, &[3, 4], 0).iter().all(|&x| x == 0.0));
        assert!(init(Init::Ones, &[5], 0).iter().all(|&x| x == 1.0));
        let c = init(Init::Constant(0.25), &[2, 2, 2], 0);
        assert_eq!(c.shape(), &[2, 2, 2]);
        assert!(c.iter().all(|&x| x == 0.25));
    }

    #[test]
    fn glorot_and_he_uniform_have_the_uniform_variance_and_bounds() {
        // U(-l, l) has variance l²/3; for [200, 300] Glorot l² = 6/500.
        let cases: [(Init, f64); 2] = [(Init::GlorotUniform, 6.0 / 500.0), (Init::HeUniform, 6.0 / 200.0)];
        for (i, limit_sq) in cases {
            let a = init(i.clone(), &[200, 300], 3);
            let (mean, var) = stats(&a);
            let limit = limit_sq.sqrt();
            assert!(a.iter().all(|&x| (x as f64).abs() <= limit), "{i:?} exceeds its limit");
            assert!(a.iter().any(|&x| (x as f64).abs() > 0.95 * limit), "{i:?} never nears its limit");
            assert!(mean.abs() < 0.01 * limit, "{i:?} mean {mean}");
            assert!((var / (limit_sq / 3.0) - 1.0).abs() < 0.02, "{i:?} var {var}");
        }
    }

    #[test]
    fn truncated_normals_have_the_scheme_variance_and_stay_within_two_sigma() {
        // Kernel [3, 3, 32, 128]: fan_in 288, fan_out 1152; 36864 draws give the variance
        // to about 0.6% (one standard error).
        let cases: [(Init, f64); 2] = [(Init::GlorotNormal, 2.0 / 1440.0), (Init::HeNormal, 2.0 / 288.0)];
        for (i, target_var) in cases {
            let a = init(i.clone(), &[3, 3, 32, 128], 5);
            let (mean, var) = stats(&a);
            let sigma = target_var.sqrt() / TRUNCATED_NORMAL_STD;
            assert!(a.iter().all(|&x| (x as f64).abs() <= 2.0 * sigma + 1e-6), "{i:?} not truncated");
            assert!(mean.abs() < 0.02 * sigma, "{i:?} mean {mean}");
            assert!((var / target_var - 1.0).abs() < 0.025, "{i:?} var {var} want {target_var}");
        }
    }

    #[test]
    fn truncated_normal_constant_is_the_std_of_a_truncated_unit_normal() {
        // Var of N(0,1) truncated to [-a, a] is 1 - 2a·φ(a)/(2Φ(a) - 1); Φ(2) from erf by series.
        let a = 2.0f64;
        let phi = (-a * a / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        // erf(√2) by its Taylor series, which converges quickly at this argument.
        let x = a / 2f64.sqrt();
        let mut erf = 0.0;
        let mut term = x;
        for n in 0..60 {
            erf += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        erf *= 2.0 / std::f64::consts::PI.sqrt();
        let var = 1.0 - 2.0 * a * phi / erf;
        assert!((var.sqrt() - TRUNCATED_NORMAL_STD).abs() < 1e-12);
    }

    #[test]
    fn uniform_and_normal_use_their_arguments() {
        let u = init(Init::Uniform { low: 2.0, high: 4.0 }, &[100_000], 1);
        let (mean, var) = stats(&u);
        assert!(u.iter().all(|&x| (2.0..=4.0).contains(&x)));
        assert!((mean - 3.0).abs() < 0.01 && (var - 4.0 / 12.0).abs() < 0.01, "{mean} {var}");
        let n = init(Init::Normal { mean: -1.0, std: 0.5 }, &[100_000], 2);
        let (mean, var) = stats(&n);
        assert!((mean + 1.0).abs() < 0.01 && (var - 0.25).abs() < 0.01, "{mean} {var}");
    }

    fn gram(a: &[f32], rows: usize, cols: usize, over_columns: bool) -> Vec<f64> {
        // Over columns: AᵀA (cols x cols); over rows: AAᵀ (rows x rows).
        let (k, n) = if over_columns { (cols, rows) } else { (rows, cols) };
        let at = |i: usize, j: usize| if over_columns { a[j * cols + i] } else { a[i * cols + j] } as f64;
        let mut g = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                g[i * k + j] = (0..n).map(|t| at(i, t) * at(j, t)).sum();
            }
        }
        g
    }

    #[test]
    fn orthogonal_is_orthonormal_along_the_shorter_side() {
        // Tall kernel [2, 30, 20] flattens to 60 x 20: QᵀQ = I. Wide [8, 24]: QQᵀ = I.
        for (shape, rows, cols) in [(vec![2, 30, 20], 60, 20), (vec![8, 24], 8, 24), (vec![16, 16], 16, 16)] {
            let q = init(Init::Orthogonal, &shape, 9);
            let flat = q.as_slice().expect("standard layout");
            let k = rows.min(cols);
            let g = gram(flat, rows, cols, rows >= cols);
            for i in 0..k {
                for j in 0..k {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((g[i * k + j] - want).abs() < 1e-5, "{shape:?} gram[{i},{j}] = {}", g[i * k + j]);
                }
            }
        }
    }

    #[test]
    fn orthogonal_rejects_vectors() {
        let err = init_tensor(&Init::Orthogonal, &[5], &mut Rng::new(0)).unwrap_err();
        assert_eq!(err, InitError::OrthogonalRank { shape: vec![5] });
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut rng = Rng::new(0);
        assert!(init_tensor(&Init::Uniform { low: 1.0, high: 0.0 }, &[2], &mut rng).is_err());
        assert!(init_tensor(&Init::Normal { mean: 0.0, std: -1.0 }, &[2], &mut rng).is_err());
        assert!(init_tensor(&Init::Constant(f64::NAN), &[2], &mut rng).is_err());
    }

    #[test]
    fn same_seed_same_tensor_and_different_seed_differs() {
        let all =
            [Init::GlorotUniform, Init::GlorotNormal, Init::HeUniform, Init::HeNormal, Init::Orthogonal];
        for i in all {
            let a = init(i.clone(), &[6, 4], 11);
            assert_eq!(a, init(i.clone(), &[6, 4], 11), "{i:?}");
            assert_ne!(a, init(i.clone(), &[6, 4], 12), "{i:?}");
        }
    }

    #[test]
    fn empty_shapes_give_empty_tensors() {
        for i in [Init::GlorotUniform, Init::HeNormal, Init::Orthogonal] {
            assert_eq!(init(i, &[0, 4], 1).len(), 0);
        }
    }

    /// An LSTM's bias: the forget block (the second quarter of every row) is 1.
    #[test]
    fn blocks_fill_equal_parts_of_the_last_axis() {
        let b = Init::Blocks(vec![0.0, 1.0, 0.0, 0.0]);
        let v = init_tensor(&b, &[2, 8], &mut Rng::new(0)).expect("8 cuts into 4 blocks");
        let row = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(v.iter().copied().collect::<Vec<f32>>(), [row, row].concat());
        let err = init_tensor(&b, &[6], &mut Rng::new(0)).unwrap_err();
        assert!(err.to_string().contains("4 equal blocks"), "{err}");
    }
}
