//! Gradient clipping: by value, by norm per tensor, and by global norm.
//!
//! The norm-based clips follow TensorFlow: `tf.clip_by_norm` scales a tensor by
//! `max_norm / max(norm, max_norm)` and `tf.clip_by_global_norm` scales every tensor by
//! `max_norm / max(global_norm, max_norm)`, where the global norm is the L2 norm of all the
//! tensors taken together. Every function returns the global norm *before* clipping, which
//! the training loop uses to detect non-finite gradients. Norms are accumulated in f64.
//! When the norm is not finite the gradients are left as they are (scaling by NaN would
//! only hide where the problem came from) and the non-finite norm is returned.

use ndarray::ArrayD;

/// A clipping threshold that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClipError {
    #[error("`{what}` must be a positive finite number, got {value}")]
    BadThreshold { what: &'static str, value: f32 },
}

/// The sum of squares of one tensor, in f64.
pub fn sum_of_squares(t: &ArrayD<f32>) -> f64 {
    match t.as_slice_memory_order() {
        Some(s) => s.iter().map(|&x| (x as f64) * (x as f64)).sum(),
        None => t.iter().map(|&x| (x as f64) * (x as f64)).sum(),
    }
}

/// The L2 norm of all the tensors taken together.
pub fn global_norm(grads: &[ArrayD<f32>]) -> f32 {
    grads.iter().map(sum_of_squares).sum::<f64>().sqrt() as f32
}

/// The factor that brings a tensor of norm `norm` down to at most `max_norm`: 1 when it is
/// already within, `max_norm / norm` otherwise, and 1 when `norm` is not finite.
pub fn norm_scale(norm: f32, max_norm: f32) -> f32 {
    if norm.is_finite() && norm > max_norm { max_norm / norm } else { 1.0 }
}

fn check(what: &'static str, value: f32) -> Result<(), ClipError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(ClipError::BadThreshold { what, value }) }
}

/// Clamps every gradient element into `[-limit, limit]`.
pub fn clip_by_value(grads: &mut [ArrayD<f32>], limit: f32) -> Result<f32, ClipError> {
    check("clipvalue", limit)?;
    let norm = global_norm(grads);
    for g in grads.iter_mut() {
        g.mapv_inplace(|x| x.clamp(-limit, limit));
    }
    Ok(norm)
}

/// Scales each tensor whose own L2 norm exceeds `max_norm` down to norm `max_norm`.
pub fn clip_by_norm(grads: &mut [ArrayD<f32>], max_norm: f32) -> Result<f32, ClipError> {
    check("clipnorm", max_norm)?;
    let mut total = 0.0f64;
    for g in grads.iter_mut() {
        let sq = sum_of_squares(g);
        total += sq;
        let scale = norm_scale(sq.sqrt() as f32, max_norm);
        if scale != 1.0 {
            g.mapv_inplace(|x| x * scale);
        }
    }
    Ok(total.sqrt() as f32)
}

/// Scales all tensors by one factor so that their global norm is at most `max_norm`.
pub fn clip_by_global_norm(grads: &mut [ArrayD<f32>], max_norm: f32) -> Result<f32, ClipError> {
    check("global_clipnorm", max_norm)?;
    let norm = global_norm(grads);
    let scale = norm_scale(norm, max_norm);
    if scale != 1.0 {
        for g in grads.iter_mut() {
            g.mapv_inplace(|x| x * scale);
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    fn t(v: &[f32]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).expect("vector")
    }

    #[test]
    fn global_norm_is_the_norm_of_the_concatenation() {
        // [3, 4] and [12]: sqrt(9 + 16 + 144) = 13.
        assert!((global_norm(&[t(&[3.0, 4.0]), t(&[12.0])]) - 13.0).abs() < 1e-6);
    }

    #[test]
    fn by_value_clamps_each_element() {
        let mut g = vec![t(&[-5.0, 0.5, 2.0])];
        let norm = clip_by_value(&mut g, 1.0).expect("valid");
        assert_eq!(g[0], t(&[-1.0, 0.5, 1.0]));
        assert!((norm - (25.0f32 + 0.25 + 4.0).sqrt()).abs() < 1e-5);
    }

    #[test]
    fn by_norm_scales_only_the_tensors_over_the_limit() {
        let mut g = vec![t(&[3.0, 4.0]), t(&[0.3, 0.4])];
        let norm = clip_by_norm(&mut g, 1.0).expect("valid");
        // The first has norm 5, so it becomes [0.6, 0.8]; the second has norm 0.5 and stays.
        assert!((g[0][[0]] - 0.6).abs() < 1e-6 && (g[0][[1]] - 0.8).abs() < 1e-6);
        assert_eq!(g[1], t(&[0.3, 0.4]));
        assert!((norm - (25.0f32 + 0.25).sqrt()).abs() < 1e-5);
    }

    #[test]
    fn by_global_norm_matches_tf_formula() {
        let before = vec![t(&[3.0, 4.0]), t(&[12.0])];
        let mut g = before.clone();
        let norm = clip_by_global_norm(&mut g, 6.5).expect("valid");
        assert!((norm - 13.0).abs() < 1e-6);
        // t * clip / max(global, clip) = t * 0.5, computed here directly.
        for (a, b) in g.iter().zip(&before) {
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y * 6.5 / 13.0).abs() < 1e-6);
            }
        }
        assert!((global_norm(&g) - 6.5).abs() < 1e-5);
        // Under the limit nothing changes.
        let mut small = before.clone();
        clip_by_global_norm(&mut small, 100.0).expect("valid");
        assert_eq!(small, before);
    }

    #[test]
    fn non_finite_norm_is_reported_and_gradients_kept() {
        let mut g = vec![t(&[f32::INFINITY, 1.0])];
        let norm = clip_by_global_norm(&mut g, 1.0).expect("valid");
        assert!(!norm.is_finite());
        assert_eq!(g[0][[1]], 1.0);
    }

    #[test]
    fn bad_thresholds_are_errors() {
        let mut g = vec![t(&[1.0])];
        assert!(clip_by_value(&mut g, 0.0).is_err());
        assert!(clip_by_norm(&mut g, -1.0).is_err());
        assert!(clip_by_global_norm(&mut g, f32::NAN).is_err());
    }
}
