//! Seeded synthetic datasets for examples and tests.
//!
//! Each is generated from a seed alone, through [`Rng`]: features first, then a fixed
//! random "teacher" that labels them, so a model of the right kind can learn the labels
//! exactly. Streams: `Rng::derive(seed, 0)` draws the teacher, `derive(seed, 1)` the inputs.

use ndarray::{Array2, ArrayD, IxDyn};

use super::{Dataset, HostArray};
use crate::runtime::rng::Rng;

fn uniform_features(rng: &mut Rng, shape: &[usize], low: f32, high: f32) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || low + (high - low) * rng.uniform() as f32)
}

fn normal_vector(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn dataset(name: String, x: ArrayD<f32>, y: HostArray, classes: Option<usize>) -> Dataset {
    Dataset { name, x: HostArray::F32(x), y, x_scale: 1.0, classes }
}

/// Two classes: x ~ U(0, 1) `[N, F]`, y = 1 where w·x + b > 0 for a random teacher w ~ N(0, 1),
/// with the bias b set to minus the median score so that the classes are balanced.
pub fn binary(samples: usize, features: usize, seed: u64) -> Dataset {
    let w = normal_vector(&mut Rng::derive(seed, 0), features);
    let x = uniform_features(&mut Rng::derive(seed, 1), &[samples, features], 0.0, 1.0);
    let scores: Vec<f32> = x.rows().into_iter().map(|r| r.iter().zip(&w).map(|(a, b)| a * b).sum()).collect();
    let mut sorted = scores.clone();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(samples / 2).copied().unwrap_or(0.0);
    // Samples at or above the median are positive: exactly ceil(N/2) of them without ties.
    let y: Vec<i64> = scores.iter().map(|&s| i64::from(s >= median)).collect();
    let y = ArrayD::from_shape_vec(IxDyn(&[samples]), y).expect("one label per sample");
    dataset(format!("random binary (seed {seed})"), x.into_dyn(), HostArray::I64(y), Some(2))
}

/// `classes` classes: x ~ U(0, 1) `[N, F]`, y = argmax over c of w_c·(x − ½) for a random
/// teacher W ~ N(0, 1) `[C, F]`; centring the inputs keeps the classes roughly balanced.
pub fn classes(samples: usize, features: usize, classes: usize, seed: u64) -> Dataset {
    let mut teacher_rng = Rng::derive(seed, 0);
    let w = Array2::from_shape_simple_fn((classes, features), || teacher_rng.normal() as f32);
    let x = uniform_features(&mut Rng::derive(seed, 1), &[samples, features], 0.0, 1.0);
    let y: Vec<i64> = x
        .rows()
        .into_iter()
        .map(|r| {
            let score = |c: usize| w.row(c).iter().zip(r.iter()).map(|(a, b)| a * (b - 0.5)).sum::<f32>();
            (0..classes).max_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap_or(0) as i64
        })
        .collect();
    let y = ArrayD::from_shape_vec(IxDyn(&[samples]), y).expect("one label per sample");
    dataset(format!("random {classes} classes (seed {seed})"), x.into_dyn(), HostArray::I64(y), Some(classes))
}

/// Regression: x ~ U(0, 1) `[N, F]`, y = w·x + b + 0.01·noise as `f32 [N, 1]` (the shape
/// of a one-unit output layer), w ~ N(0, 1), b ~ N(0, 1).
pub fn regression(samples: usize, features: usize, seed: u64) -> Dataset {
    let mut teacher = Rng::derive(seed, 0);
    let w = normal_vector(&mut teacher, features);
    let b = teacher.normal() as f32;
    let mut rng = Rng::derive(seed, 1);
    let x = uniform_features(&mut rng, &[samples, features], 0.0, 1.0);
    let y: Vec<f32> = x
        .rows()
        .into_iter()
        .map(|r| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + b + 0.01 * rng.normal() as f32)
        .collect();
    let y = ArrayD::from_shape_vec(IxDyn(&[samples, 1]), y).expect("one target per sample");
    dataset(format!("random regression (seed {seed})"), x.into_dyn(), HostArray::F32(y), None)
}

/// Sequences: x ~ U(−1, 1) `[N, T, F]`, y = 1 where Σ_t Σ_f a_t v_f x[t, f] > 0, with
/// v ~ N(0, 1) and a_t = (t + 1)/T weighting recent steps more (as a recurrent model can).
/// The rule is symmetric about 0, so the classes are balanced in expectation.
pub fn sequences(samples: usize, steps: usize, features: usize, seed: u64) -> Dataset {
    let v = normal_vector(&mut Rng::derive(seed, 0), features);
    let x = uniform_features(&mut Rng::derive(seed, 1), &[samples, steps, features], -1.0, 1.0);
    let y: Vec<i64> = (0..samples)
        .map(|n| {
            let mut sum = 0.0f32;
            for t in 0..steps {
                let a = (t + 1) as f32 / steps as f32;
                sum += a * (0..features).map(|f| v[f] * x[[n, t, f]]).sum::<f32>();
            }
            i64::from(sum > 0.0)
        })
        .collect();
    let y = ArrayD::from_shape_vec(IxDyn(&[samples]), y).expect("one label per sample");
    dataset(format!("random sequences (seed {seed})"), x, HostArray::I64(y), Some(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ds: &Dataset) -> Vec<i64> {
        match &ds.y {
            HostArray::I64(y) => y.iter().copied().collect(),
            _ => panic!("labels are not i64"),
        }
    }

    fn features(ds: &Dataset) -> &ArrayD<f32> {
        match &ds.x {
            HostArray::F32(x) => x,
            _ => panic!("features are not f32"),
        }
    }

    /// Accuracy of the nearest-class-mean rule fitted on the data: an independent learner
    /// that only does well when the labels are a simple function of the features.
    fn nearest_mean_accuracy(ds: &Dataset, classes: usize) -> f64 {
        let x = features(ds)
            .view()
            .into_shape_with_order((ds.x.len(), ds.x.shape()[1..].iter().product::<usize>()))
            .unwrap();
        let y = labels(ds);
        let width = x.ncols();
        let mut means = vec![vec![0.0f64; width]; classes];
        let mut counts = vec![0usize; classes];
        for (row, &l) in x.rows().into_iter().zip(&y) {
            counts[l as usize] += 1;
            for (m, &v) in means[l as usize].iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        for (m, &c) in means.iter_mut().zip(&counts) {
            m.iter_mut().for_each(|v| *v /= c.max(1) as f64);
        }
        let dist = |row: ndarray::ArrayView1<f32>, m: &[f64]| -> f64 {
            row.iter().zip(m).map(|(&a, b)| (a as f64 - b).powi(2)).sum()
        };
        let right = x
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(row, l)| {
                (0..classes).min_by(|&a, &b| dist(*row, &means[a]).total_cmp(&dist(*row, &means[b])))
                    == Some(**l as usize)
            })
            .count();
        right as f64 / y.len() as f64
    }

    #[test]
    fn binary_is_balanced_reproducible_and_learnable() {
        let ds = binary(1000, 5, 7);
        assert_eq!(ds.x.shape(), &[1000, 5]);
        assert_eq!(labels(&ds).iter().sum::<i64>(), 500);
        assert_eq!(ds, binary(1000, 5, 7));
        assert_ne!(ds.x, binary(1000, 5, 8).x);
        assert!(features(&ds).iter().all(|v| (0.0..1.0).contains(v)));
        assert!(nearest_mean_accuracy(&ds, 2) > 0.8);
    }

    #[test]
    fn classes_all_occur_and_are_learnable() {
        let ds = classes(2000, 8, 4, 3);
        let mut counts = [0usize; 4];
        labels(&ds).iter().for_each(|&l| counts[l as usize] += 1);
        assert!(counts.iter().all(|&c| c > 100), "{counts:?}");
        assert!(nearest_mean_accuracy(&ds, 4) > 0.6);
    }

    #[test]
    fn regression_targets_follow_a_linear_rule() {
        let ds = regression(200, 3, 5);
        assert_eq!(ds.y.shape(), &[200, 1]);
        let HostArray::F32(y) = &ds.y else { panic!("targets are not f32") };
        let x = features(&ds);
        // y is linear in x: y(a) + y(b) − y(c) − y(d) equals the same combination of rows
        // under the teacher, so the least-squares fit by normal equations must be near-exact.
        let n = 200;
        let mut design = Array2::<f64>::ones((n, 4));
        for i in 0..n {
            for f in 0..3 {
                design[[i, f]] = x[[i, f]] as f64;
            }
        }
        let target: Vec<f64> = y.iter().map(|&v| v as f64).collect();
        let residual = least_squares_residual(&design, &target);
        assert!(residual < 0.02, "rms residual {residual}");
    }

    /// RMS residual of the least-squares fit, by Gaussian elimination on the normal equations.
    fn least_squares_residual(a: &Array2<f64>, b: &[f64]) -> f64 {
        let k = a.ncols();
        let mut m = a.t().dot(a);
        let mut rhs: Vec<f64> = (0..k).map(|j| a.column(j).iter().zip(b).map(|(x, y)| x * y).sum()).collect();
        for p in 0..k {
            for r in p + 1..k {
                let f = m[[r, p]] / m[[p, p]];
                for c in p..k {
                    m[[r, c]] -= f * m[[p, c]];
                }
                rhs[r] -= f * rhs[p];
            }
        }
        let mut coef = vec![0.0; k];
        for p in (0..k).rev() {
            coef[p] = (rhs[p] - (p + 1..k).map(|c| m[[p, c]] * coef[c]).sum::<f64>()) / m[[p, p]];
        }
        let pred = a.dot(&ndarray::Array1::from(coef));
        (pred.iter().zip(b).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / b.len() as f64).sqrt()
    }

    #[test]
    fn sequences_are_balanced_and_depend_on_the_sequence() {
        let ds = sequences(1000, 6, 3, 11);
        assert_eq!(ds.x.shape(), &[1000, 6, 3]);
        let positives = labels(&ds).iter().sum::<i64>();
        assert!((400..600).contains(&positives), "{positives}");
        assert!(nearest_mean_accuracy(&ds, 2) > 0.7);
        assert_eq!(ds, sequences(1000, 6, 3, 11));
    }
}
