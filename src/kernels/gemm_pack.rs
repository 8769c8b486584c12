//! Packing of B for the blocked product: a panel of `NR` columns of B over `kc` depth steps,
//! stored step after step (`out[p·NR + j] = B[pc + p, j0 + j]`), zero-padded past B's last
//! column, so the micro-kernel reads it with unit stride.
//!
//! A row-major B is copied a row at a time. A transposed B (a weight read as `Wᵀ` in the
//! input gradient `dY·Wᵀ`, B's columns contiguous) is the case that matters: packing it
//! element by element cost as much as the product when A has few rows (a training batch,
//! or one step of a recurrence), since the panel is used only a few times. Under AVX2 it is
//! transposed in 8 × 8 blocks in registers instead.

use super::gemm::Layout;
use super::gemm_micro::NR;

/// Packs columns `j0..j0 + NR` (fewer at B's edge) of depth steps `pc..pc + kc` into `out`
/// (`kc · NR` elements).
pub(crate) fn pack_b(b: &[f32], bl: Layout, pc: usize, kc: usize, j0: usize, out: &mut [f32]) {
    let cols = NR.min(bl.cols - j0);
    let out = &mut out[..kc * NR];
    if bl.col_stride == 1 {
        // A row-major B: one contiguous copy per step.
        for (p, step) in out.chunks_exact_mut(NR).enumerate() {
            let base = (pc + p) * bl.row_stride + j0;
            step[..cols].copy_from_slice(&b[base..base + cols]);
            step[cols..].fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if bl.row_stride == 1 && cols == NR && super::has_avx2_fma() {
        let base = pc + j0 * bl.col_stride;
        let needed = base + (NR - 1) * bl.col_stride + kc;
        assert!(needed <= b.len(), "pack_b: B's view was checked to lie in its slice");
        // Safety: AVX2 is present, and every column read (`base + j·col_stride + p` for
        // `j < NR`, `p < kc`) lies below `needed ≤ b.len()`.
        unsafe { avx2::transposed(b, base, bl.col_stride, kc, out) };
        return;
    }
    // Any other strides: column by column, each read in order.
    if cols < NR {
        out.fill(0.0);
    }
    for j in 0..cols {
        let base = pc * bl.row_stride + (j0 + j) * bl.col_stride;
        for (p, step) in out.chunks_exact_mut(NR).enumerate() {
            step[j] = b[base + p * bl.row_stride];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::NR;
    use std::arch::x86_64::*;

    /// `out[p·NR + j] = b[base + j·stride + p]` for `j < NR`, `p < kc`.
    ///
    /// # Safety
    /// AVX2 must be present; `base + (NR - 1)·stride + kc ≤ b.len()`; `out.len() ≥ kc·NR`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transposed(b: &[f32], base: usize, stride: usize, kc: usize, out: &mut [f32]) {
        let src = b.as_ptr();
        let dst = out.as_mut_ptr();
        let full = kc - kc % 8;
        for half in 0..NR / 8 {
            // The block's eight columns of B (no closure: it would not inherit AVX2).
            let c0 = unsafe { src.add(base + half * 8 * stride) };
            for p in (0..full).step_by(8) {
                // Row j of the block: eight depth steps of column j.
                let mut r = [_mm256_setzero_ps(); 8];
                for (j, row) in r.iter_mut().enumerate() {
                    *row = unsafe { _mm256_loadu_ps(c0.add(j * stride + p)) };
                }
                let t = transpose8(r);
                for (i, v) in t.into_iter().enumerate() {
                    unsafe { _mm256_storeu_ps(dst.add((p + i) * NR + half * 8), v) };
                }
            }
            for p in full..kc {
                for j in 0..8 {
                    unsafe { *dst.add(p * NR + half * 8 + j) = *c0.add(j * stride + p) };
                }
            }
        }
    }

    /// The 8 × 8 transpose of the rows `r`.
    #[target_feature(enable = "avx2")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout packs to `B[pc + p, j0 + j]`, zeros past the last column.
    #[test]
    fn every_layout_packs_the_panel_of_its_elements() {
        let (k, n) = (37, 41);
        let data: Vec<f32> = (0..k * n + 5).map(|i| i as f32 * 0.5 - 3.0).collect();
        let layouts = [
            ("row-major", Layout::row_major(k, n)),
            ("transposed", Layout::row_major(n, k).t()),
            ("strided", Layout { rows: k, cols: n / 2, row_stride: 2, col_stride: 2 * k + 1 }),
        ];
        for (name, bl) in layouts {
            for (pc, kc) in [(0, k), (3, 8), (5, 29), (0, 1)] {
                for j0 in (0..bl.cols).step_by(NR) {
                    let mut out = vec![f32::NAN; kc * NR];
                    pack_b(&data, bl, pc, kc, j0, &mut out);
                    for p in 0..kc {
                        for j in 0..NR {
                            let expected = if j0 + j < bl.cols {
                                data[(pc + p) * bl.row_stride + (j0 + j) * bl.col_stride]
                            } else {
                                0.0
                            };
                            assert_eq!(
                                out[p * NR + j],
                                expected,
                                "{name}: pc {pc} kc {kc} j0 {j0} ({p}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }
}
