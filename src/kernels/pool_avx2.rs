//! The AVX2 paths of max pooling and its gradient: eight channels of a window at a time,
//! with the portable path's exact semantics (the first largest tap in row-major order, a
//! NaN winning; the gradient to that tap alone). The callers in `pool.rs` have checked the
//! slice lengths and run the portable path on the channels past the last whole vector.
//!
//! Every load and store goes through a bounds-checked slice of exactly eight elements, so
//! the only unsafety is calling these functions on a CPU without AVX2.

use super::{GradWrite, PoolGeometry, clip};
use crate::kernels::simd::{load, store};
use std::arch::x86_64::*;

/// Channels per vector.
const V: usize = 8;

/// The lanes where `v` replaces `best` as the running max: larger, or a NaN, unless `best`
/// is already NaN.
#[inline(always)]
fn beats(v: __m256, best: __m256) -> __m256 {
    // Safety (of the intrinsics): only reached from the `avx2` functions below.
    unsafe {
        let nan_best = _mm256_cmp_ps::<_CMP_UNORD_Q>(best, best);
        let wins = _mm256_or_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, best), _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        _mm256_andnot_ps(nan_best, wins)
    }
}

/// The max of channels `ch..ch + 8·N` over the window `(h0..h1, w0..w1)` of image `image`,
/// as `N` vectors: independent running maxima, so that one's latency hides another's.
#[inline(always)]
fn window_max<const N: usize>(
    geo: &PoolGeometry,
    x: &[f32],
    image: usize,
    (h0, h1): (usize, usize),
    (w0, w1): (usize, usize),
    ch: usize,
) -> [__m256; N] {
    let first = geo.at(image, h0, w0) + ch;
    let mut best: [__m256; N] = std::array::from_fn(|n| load(x, first + n * V));
    for h in h0..h1 {
        for w in w0..w1 {
            if (h, w) == (h0, w0) {
                continue;
            }
            let at = geo.at(image, h, w) + ch;
            for (n, best) in best.iter_mut().enumerate() {
                let v = load(x, at + n * V);
                // Safety: only reached from the `avx2` functions below.
                *best = unsafe { _mm256_blendv_ps(*best, v, beats(v, *best)) };
            }
        }
    }
    best
}

/// Max pooling of the channels in whole vectors; returns how many channels that is.
///
/// # Safety
/// The CPU must have AVX2; `x` and `y` must have the geometry's lengths.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn max_pool(geo: &PoolGeometry, x: &[f32], y: &mut [f32]) -> usize {
    let (rows, cols, c) = (geo.rows, geo.cols, geo.channels);
    let mut out = 0;
    for b in 0..geo.batch {
        let image = b * rows.input * cols.input * c;
        for o in 0..rows.output {
            let hr = clip(&rows, o);
            for p in 0..cols.output {
                let wr = clip(&cols, p);
                let mut ch = 0;
                while ch + 4 * V <= c {
                    let best = window_max::<4>(geo, x, image, hr, wr, ch);
                    best.iter().enumerate().for_each(|(n, &v)| store(y, out + ch + n * V, v));
                    ch += 4 * V;
                }
                while ch + V <= c {
                    store(y, out + ch, window_max::<1>(geo, x, image, hr, wr, ch)[0]);
                    ch += V;
                }
                out += c;
            }
        }
    }
    c / V * V
}

/// The max gradient of channels `ch..ch + 8·N` of one window whose output gradient starts
/// at `g[out]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn window_grad<const N: usize>(
    geo: &PoolGeometry,
    (x, g, dx): (&[f32], &[f32], &mut [f32]),
    image: usize,
    out: usize,
    (h0, h1): (usize, usize),
    (w0, w1): (usize, usize),
    ch: usize,
    write: GradWrite,
) {
    let best = window_max::<N>(geo, x, image, (h0, h1), (w0, w1), ch);
    // Safety (of the intrinsics): only reached from the `avx2` functions below.
    unsafe {
        let zero = _mm256_setzero_ps();
        // `0 + g`, as the reference sums into zeros (a -0 gradient becomes +0).
        let grad: [__m256; N] = std::array::from_fn(|n| _mm256_add_ps(load(g, out + ch + n * V), zero));
        // Lanes whose max is still to be met, in tap order.
        let mut pending = [_mm256_castsi256_ps(_mm256_set1_epi32(-1)); N];
        for h in h0..h1 {
            for w in w0..w1 {
                let at = geo.at(image, h, w) + ch;
                for n in 0..N {
                    let at = at + n * V;
                    let v = load(x, at);
                    // Equal to the max, or a NaN (then the max is NaN too).
                    let is_max = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_EQ_OQ>(v, best[n]),
                        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
                    );
                    let hit = _mm256_and_ps(is_max, pending[n]);
                    pending[n] = _mm256_andnot_ps(hit, pending[n]);
                    let share = _mm256_and_ps(hit, grad[n]);
                    match write {
                        GradWrite::Store => store(dx, at, share),
                        GradWrite::Add => store(dx, at, _mm256_add_ps(load(dx, at), share)),
                    }
                }
            }
        }
    }
}

/// The max gradient of the channels in whole vectors; returns how many channels that is.
/// With [`GradWrite::Add`] `dx` must hold zeros (or earlier windows' sums) first.
///
/// # Safety
/// The CPU must have AVX2; the slices must have the geometry's lengths.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn max_grad(
    geo: &PoolGeometry,
    x: &[f32],
    g: &[f32],
    dx: &mut [f32],
    write: GradWrite,
) -> usize {
    let (rows, cols, c) = (geo.rows, geo.cols, geo.channels);
    let mut out = 0;
    for b in 0..geo.batch {
        let image = b * rows.input * cols.input * c;
        for o in 0..rows.output {
            let hr = clip(&rows, o);
            for p in 0..cols.output {
                let wr = clip(&cols, p);
                let mut ch = 0;
                while ch + 4 * V <= c {
                    window_grad::<4>(geo, (x, g, dx), image, out, hr, wr, ch, write);
                    ch += 4 * V;
                }
                while ch + V <= c {
                    window_grad::<1>(geo, (x, g, dx), image, out, hr, wr, ch, write);
                    ch += V;
                }
                out += c;
            }
        }
    }
    c / V * V
}
