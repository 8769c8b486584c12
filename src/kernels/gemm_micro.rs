//! The register-blocked inner kernel of the matrix product: an `R × 16` tile of C
//! (`R ≤ 6`) accumulated over `k` steps from a packed panel of A and a panel of B.
//!
//! Operand formats (built by `gemm_blocked.rs`): the A panel holds step `p`'s six row values
//! at `a[6p .. 6p + 6]` (rows past `R` are never read); the B panel holds step `p`'s sixteen
//! column values contiguously at `b[p·b_stride ..]`. The tile is returned as accumulators,
//! scaled and stored by the caller, so this file only multiplies and adds.
//!
//! Two implementations compute the same sums, rounded differently (fused multiply-adds,
//! split accumulators for skinny tiles), so they agree to rounding: AVX2 + FMA intrinsics
//! (12 ymm accumulators at `R = 6`, the shape that keeps both FMA pipes of a Zen or Haswell
//! core busy), chosen at run time when the CPU has them, and portable Rust that the compiler
//! vectorizes with whatever the target has. With `R ≤ 2` the AVX2 kernel alternates two sets
//! of accumulators over even and odd steps, so the FMA latency does not bound a skinny
//! product (the batch-1 prediction).

/// Rows of the packed A panel.
pub(crate) const MR: usize = 6;
/// Columns of a B panel.
pub(crate) const NR: usize = 16;

/// An `MR × NR` accumulator tile.
pub(crate) type Tile = [[f32; NR]; MR];

/// Whether the AVX2 kernels can run here (checked once).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `tile[i][j] = Σ_p a[6p + i]·b[p·b_stride + j]` for `i < rows`, `j < 16`, `p < k`.
///
/// Panics (a programming error in the caller, not bad input) when a panel is shorter than
/// `k` steps need or `rows` is not in `1..=6`.
pub(crate) fn kernel(k: usize, a: &[f32], b: &[f32], b_stride: usize, rows: usize, tile: &mut Tile) {
    assert!((1..=MR).contains(&rows), "tile rows {rows}");
    assert!(a.len() >= k * MR, "A panel of {} for {k} steps", a.len());
    assert!(k == 0 || b.len() >= (k - 1) * b_stride + NR, "B panel of {} for {k} steps", b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // Safety: the CPU has AVX2 and FMA (checked above), and the asserts give every
        // load of the kernels its bounds: A is read at `6p + i < 6k` and B at
        // `p·b_stride + j ≤ (k - 1)·b_stride + 15`.
        unsafe {
            match rows {
                1 => avx2::kernel::<1, 2>(k, a.as_ptr(), b.as_ptr(), b_stride, tile),
                2 => avx2::kernel::<2, 2>(k, a.as_ptr(), b.as_ptr(), b_stride, tile),
                3 => avx2::kernel::<3, 1>(k, a.as_ptr(), b.as_ptr(), b_stride, tile),
                4 => avx2::kernel::<4, 1>(k, a.as_ptr(), b.as_ptr(), b_stride, tile),
                5 => avx2::kernel::<5, 1>(k, a.as_ptr(), b.as_ptr(), b_stride, tile),
                _ => avx2::kernel::<6, 1>(k, a.as_ptr(), b.as_ptr(), b_stride, tile),
            }
        }
        return;
    }
    portable(k, a, b, b_stride, rows, tile);
}

/// `out[j] = Σ_p a[p·a_stride]·b[p·b_stride + j]` for `j < out.len()`: a one-row product
/// (a batch-1 prediction), streaming B's rows once with the sums of 64 columns in registers.
///
/// Panics (a caller's programming error) when A or B is shorter than `k` steps need.
pub(crate) fn row_times_matrix(
    k: usize,
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    out: &mut [f32],
) {
    let n = out.len();
    assert!(k == 0 || a.len() > (k - 1) * a_stride, "A row of {} for {k} steps", a.len());
    assert!(k == 0 || n == 0 || b.len() >= (k - 1) * b_stride + n, "B of {} for {k} steps", b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        let mut j = 0;
        while j + 64 <= n {
            // Safety: AVX2 and FMA are present; columns `j..j + 64` are below `n`, so the
            // asserts above bound every load and store.
            unsafe {
                avx2::row_block::<8>(
                    k,
                    a.as_ptr(),
                    a_stride,
                    b.as_ptr().add(j),
                    b_stride,
                    out.as_mut_ptr().add(j),
                )
            };
            j += 64;
        }
        while j + 8 <= n {
            // Safety: as above, for columns `j..j + 8`.
            unsafe {
                avx2::row_block::<1>(
                    k,
                    a.as_ptr(),
                    a_stride,
                    b.as_ptr().add(j),
                    b_stride,
                    out.as_mut_ptr().add(j),
                )
            };
            j += 8;
        }
        for (jj, o) in out.iter_mut().enumerate().skip(j) {
            *o = (0..k).map(|p| a[p * a_stride] * b[p * b_stride + jj]).sum();
        }
        return;
    }
    out.fill(0.0);
    for p in 0..k {
        let ap = a[p * a_stride];
        for (o, &bj) in out.iter_mut().zip(&b[p * b_stride..p * b_stride + n]) {
            *o += ap * bj;
        }
    }
}

/// The kernel in plain Rust.
fn portable(k: usize, a: &[f32], b: &[f32], b_stride: usize, rows: usize, tile: &mut Tile) {
    *tile = [[0.0; NR]; MR];
    for p in 0..k {
        let bp: &[f32; NR] = b[p * b_stride..p * b_stride + NR].try_into().unwrap_or(&[0.0; NR]);
        for (i, row) in tile.iter_mut().enumerate().take(rows) {
            let ai = a[p * MR + i];
            for (t, &bj) in row.iter_mut().zip(bp) {
                *t += ai * bj;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR, Tile};
    use std::arch::x86_64::*;

    /// `out[..8V] = Σ_p a[p·a_stride]·b[p·b_stride ..][..8V]`.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a` readable at `p·a_stride`, `b` at
    /// `p·b_stride + j` and `out` writable at `j`, for `p < k`, `j < 8V`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_block<const V: usize>(
        k: usize,
        a: *const f32,
        a_stride: usize,
        b: *const f32,
        b_stride: usize,
        out: *mut f32,
    ) {
        let mut acc = [_mm256_setzero_ps(); V];
        for p in 0..k {
            // Safety: `p < k`, inside the caller's bounds.
            unsafe {
                let ap = _mm256_broadcast_ss(&*a.add(p * a_stride));
                let bp = b.add(p * b_stride);
                for (v, s) in acc.iter_mut().enumerate() {
                    *s = _mm256_fmadd_ps(ap, _mm256_loadu_ps(bp.add(8 * v)), *s);
                }
            }
        }
        for (v, s) in acc.iter().enumerate() {
            // Safety: `8v + 8 ≤ 8V`, inside the caller's bounds.
            unsafe { _mm256_storeu_ps(out.add(8 * v), *s) };
        }
    }

    /// `R` rows, `U` interleaved accumulator sets (their sums are added at the end).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a` must be readable for `6k` floats and `b` at
    /// `p·b_stride + j` for every `p < k`, `j < 16`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel<const R: usize, const U: usize>(
        k: usize,
        a: *const f32,
        b: *const f32,
        b_stride: usize,
        tile: &mut Tile,
    ) {
        let mut acc = [[[_mm256_setzero_ps(); 2]; R]; U];
        let mut p = 0;
        while p + U <= k {
            for (u, set) in acc.iter_mut().enumerate() {
                // Safety: `p + u < k`, inside the bounds the caller guarantees.
                unsafe {
                    let bp = b.add((p + u) * b_stride);
                    let (b0, b1) = (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)));
                    let ap = a.add((p + u) * MR);
                    for (i, row) in set.iter_mut().enumerate() {
                        let ai = _mm256_broadcast_ss(&*ap.add(i));
                        row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                        row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                    }
                }
            }
            p += U;
        }
        while p < k {
            // Safety: as above, `p < k`.
            unsafe {
                let bp = b.add(p * b_stride);
                let (b0, b1) = (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)));
                let ap = a.add(p * MR);
                for (i, row) in acc[0].iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*ap.add(i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
            }
            p += 1;
        }
        for i in 0..R {
            let mut sum = acc[0][i];
            for set in &acc[1..] {
                sum = [_mm256_add_ps(sum[0], set[i][0]), _mm256_add_ps(sum[1], set[i][1])];
            }
            let out: &mut [f32; NR] = &mut tile[i];
            // Safety: `out` holds 16 floats, two unaligned 8-float stores.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), sum[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), sum[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rng::Rng;

    #[test]
    fn the_dispatched_kernel_agrees_with_the_portable_one_for_every_tile_height() {
        let mut rng = Rng::new(3);
        for k in [0usize, 1, 2, 7, 256] {
            for rows in 1..=MR {
                let stride = NR + 5;
                let a: Vec<f32> = (0..k * MR).map(|_| rng.uniform() as f32 - 0.5).collect();
                let b: Vec<f32> = (0..k * stride + NR).map(|_| rng.uniform() as f32 - 0.5).collect();
                let (mut got, mut want) = ([[f32::NAN; NR]; MR], [[f32::NAN; NR]; MR]);
                kernel(k, &a, &b, stride, rows, &mut got);
                portable(k, &a, &b, stride, rows, &mut want);
                for i in 0..rows {
                    for j in 0..NR {
                        let exact: f64 =
                            (0..k).map(|p| f64::from(a[p * MR + i]) * f64::from(b[p * stride + j])).sum();
                        for (what, v) in [("dispatched", got[i][j]), ("portable", want[i][j])] {
                            assert!(
                                (f64::from(v) - exact).abs() <= 1e-5 * (k as f64 + 1.0),
                                "{what} k={k} rows={rows} ({i},{j}): {v} vs {exact}"
                            );
                        }
                    }
                }
            }
        }
    }
}
