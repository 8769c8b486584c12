//! Direct AVX2 + FMA convolutions for a shallow patch (at most `DIRECT_DEPTH` taps ×
//! channels, such as a grey image's 3×3×1) and a filter count that is a multiple of 8: the
//! forward pass and the filter gradient without a patch matrix. Through im2col and the GEMM
//! such a layer is a product of depth 9, too shallow to amortize packing and tile stores,
//! and copying one channel per tap is most of the work.
//!
//! Forward: each output position's filters are accumulated in registers (up to four vectors
//! of 8 filters, two positions at once) from broadcast input values times kernel rows.
//! Filter gradient: kernel rows are accumulated in registers three at a time (four vectors
//! of filters each) over every output position of an image, from broadcast input values
//! times the output gradient's row. Padding taps contribute zero, as im2col's zeros do.
//! The sums run in a different order from the GEMM's, so results agree to rounding.
//!
//! Every load goes through a bounds-checked slice; the only unsafety is running on a CPU
//! without AVX2 and FMA, which the caller in `conv.rs` rules out.

use super::{ConvGeometry, DIRECT_DEPTH};
use crate::kernels::simd::{load, store};
use std::arch::x86_64::*;
use std::ops::Range;

/// Filters per vector.
const V: usize = 8;
/// Most vectors of filters one pass accumulates.
const MAX_VECTORS: usize = 4;
/// Kernel rows (taps × channels) the filter gradient accumulates at once.
const ROWS: usize = 3;

/// Input offset of output column `p`'s tap `j` in an input row starting at `row`, if it
/// is not padding.
#[inline(always)]
fn column(geo: &ConvGeometry, row: usize, p: usize, j: usize) -> Option<usize> {
    geo.cols.source(p, j).map(|w| row + w * geo.channels)
}

/// Output positions `lo..hi` of an axis whose windows lie wholly inside the input.
#[inline(always)]
fn interior(a: &crate::ops::AxisWindow) -> (usize, usize) {
    let span = (a.size - 1) * a.dilation + 1;
    let lo = a.pad_before.div_ceil(a.stride);
    let hi = match (a.input + a.pad_before).checked_sub(span) {
        Some(last) => (last / a.stride + 1).min(a.output),
        None => 0,
    };
    (lo.min(hi), hi)
}

/// The input offsets of an interior window's kernel rows (tap `(i, j)`, channel `ch`, in
/// kernel order), relative to the window's first element.
struct Offsets {
    at: [usize; DIRECT_DEPTH],
}

impl Offsets {
    fn new(geo: &ConvGeometry) -> Offsets {
        let (c, w) = (geo.channels, geo.cols.input);
        let mut at = [0; DIRECT_DEPTH];
        for (r, at) in at.iter_mut().enumerate().take(geo.taps()) {
            let (t, ch) = (r / c, r % c);
            let (i, j) = (t / geo.cols.size, t % geo.cols.size);
            *at = (i * geo.rows.dilation * w + j * geo.cols.dilation) * c + ch;
        }
        Offsets { at }
    }
}

/// The input offset of the first element of interior window `(b, o, p)`.
#[inline(always)]
fn window_start(geo: &ConvGeometry, b: usize, o: usize, p: usize) -> usize {
    let h = o * geo.rows.stride - geo.rows.pad_before;
    let w = p * geo.cols.stride - geo.cols.pad_before;
    ((b * geo.rows.input + h) * geo.cols.input + w) * geo.channels
}

/// `y` for the output positions of `images` (`y` starts at the first of them).
///
/// # Safety
/// The CPU must have AVX2 and FMA; the filters must be a multiple of 8 and the slices long
/// enough for the geometry (checked by the caller).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward(geo: &ConvGeometry, x: &[f32], k: &[f32], y: &mut [f32], images: Range<usize>) {
    let f = geo.filters;
    let offsets = Offsets::new(geo);
    let (rows_in, cols_in) = (interior(&geo.rows), interior(&geo.cols));
    let mut out = 0;
    for b in images {
        for o in 0..geo.rows.output {
            let row_inside = (rows_in.0..rows_in.1).contains(&o);
            let mut p = 0;
            while p < geo.cols.output {
                // Interior windows take the offset table, two at a time when both are.
                let inside = row_inside && (cols_in.0..cols_in.1).contains(&p);
                let step = if inside && p + 1 < cols_in.1 { 2 } else { 1 };
                let mut f0 = 0;
                while f0 < f {
                    let n = MAX_VECTORS.min((f - f0) / V);
                    let at = (b, o, p);
                    match (inside, step, n) {
                        (true, 2, 4) => interior_block::<2, 4>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, 2, 3) => interior_block::<2, 3>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, 2, 2) => interior_block::<2, 2>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, 2, _) => interior_block::<2, 1>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, _, 4) => interior_block::<1, 4>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, _, 3) => interior_block::<1, 3>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, _, 2) => interior_block::<1, 2>(geo, &offsets, (x, k, y), at, f0, out),
                        (true, _, _) => interior_block::<1, 1>(geo, &offsets, (x, k, y), at, f0, out),
                        (false, _, 4) => border_block::<4>(geo, x, k, y, at, f0, out),
                        (false, _, 3) => border_block::<3>(geo, x, k, y, at, f0, out),
                        (false, _, 2) => border_block::<2>(geo, x, k, y, at, f0, out),
                        (false, _, _) => border_block::<1>(geo, x, k, y, at, f0, out),
                    }
                    f0 += n * V;
                }
                out += step * f;
                p += step;
            }
        }
    }
}

/// Filters `f0..f0 + 8·N` of the `P` interior output positions from `(b, o, p)` on,
/// stored at `y[out..]`.
#[inline(always)]
fn interior_block<const P: usize, const N: usize>(
    geo: &ConvGeometry,
    offsets: &Offsets,
    (x, k, y): (&[f32], &[f32], &mut [f32]),
    (b, o, p): (usize, usize, usize),
    f0: usize,
    out: usize,
) {
    let f = geo.filters;
    let start = window_start(geo, b, o, p);
    let next = geo.cols.stride * geo.channels;
    let depth = geo.taps();
    // Safety (of the intrinsics): only reached from `forward`, which has AVX2 and FMA.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); N]; P];
        for (r, &at) in offsets.at[..depth].iter().enumerate() {
            let kv: [__m256; N] = std::array::from_fn(|n| load(k, r * f + f0 + n * V));
            for (q, acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_set1_ps(x[start + q * next + at]);
                for n in 0..N {
                    acc[n] = _mm256_fmadd_ps(xv, kv[n], acc[n]);
                }
            }
        }
        for (q, acc) in acc.iter().enumerate() {
            for (n, &v) in acc.iter().enumerate() {
                store(y, out + q * f + f0 + n * V, v);
            }
        }
    }
}

/// Filters `f0..f0 + 8·N` of the output position `(b, o, p)` whose window reaches into
/// the padding, stored at `y[out..]`.
#[inline(always)]
fn border_block<const N: usize>(
    geo: &ConvGeometry,
    x: &[f32],
    k: &[f32],
    y: &mut [f32],
    (b, o, p): (usize, usize, usize),
    f0: usize,
    out: usize,
) {
    let (c, f) = (geo.channels, geo.filters);
    // Safety (of the intrinsics): only reached from `forward`, which has AVX2 and FMA.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        for i in 0..geo.rows.size {
            let Some(h) = geo.rows.source(o, i) else { continue };
            let row = (b * geo.rows.input + h) * geo.cols.input * c;
            for j in 0..geo.cols.size {
                let Some(first) = column(geo, row, p, j) else { continue };
                let krow = (i * geo.cols.size + j) * c;
                for ch in 0..c {
                    let kv: [__m256; N] = std::array::from_fn(|n| load(k, (krow + ch) * f + f0 + n * V));
                    let xv = _mm256_set1_ps(x[first + ch]);
                    for n in 0..N {
                        acc[n] = _mm256_fmadd_ps(xv, kv[n], acc[n]);
                    }
                }
            }
        }
        for (n, &v) in acc.iter().enumerate() {
            store(y, out + f0 + n * V, v);
        }
    }
}

/// `dk` (`taps·C × F`, overwritten) from the images `images` of `x` and their output
/// gradient rows in `g` (all of `g`, indexed from the first image's first position).
///
/// # Safety
/// As [`forward`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn filter(geo: &ConvGeometry, x: &[f32], g: &[f32], dk: &mut [f32], images: Range<usize>) {
    let (f, depth) = (geo.filters, geo.taps());
    let offsets = Offsets::new(geo);
    dk[..depth * f].fill(0.0);
    for b in images {
        let mut r0 = 0;
        while r0 < depth {
            let rows = ROWS.min(depth - r0);
            let mut f0 = 0;
            while f0 < f {
                let n = MAX_VECTORS.min((f - f0) / V);
                match (rows, n) {
                    (3, 4) => filter_block::<3, 4>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (3, 3) => filter_block::<3, 3>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (3, 2) => filter_block::<3, 2>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (3, _) => filter_block::<3, 1>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (2, 4) => filter_block::<2, 4>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (2, 3) => filter_block::<2, 3>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (2, 2) => filter_block::<2, 2>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (2, _) => filter_block::<2, 1>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (_, 4) => filter_block::<1, 4>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (_, 3) => filter_block::<1, 3>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (_, 2) => filter_block::<1, 2>(geo, &offsets, (x, g, dk), b, r0, f0),
                    (_, _) => filter_block::<1, 1>(geo, &offsets, (x, g, dk), b, r0, f0),
                }
                f0 += n * V;
            }
            r0 += rows;
        }
    }
}

/// Adds image `b`'s contribution to kernel rows `r0..r0 + R`, filters `f0..f0 + 8·N`.
#[inline(always)]
fn filter_block<const R: usize, const N: usize>(
    geo: &ConvGeometry,
    offsets: &Offsets,
    (x, g, dk): (&[f32], &[f32], &mut [f32]),
    b: usize,
    r0: usize,
    f0: usize,
) {
    let (c, f, kw) = (geo.channels, geo.filters, geo.cols.size);
    // Kernel row r is tap (i, j), channel ch.
    let tap: [(usize, usize, usize); R] = std::array::from_fn(|r| {
        let (t, ch) = ((r0 + r) / c, (r0 + r) % c);
        (t / kw, t % kw, ch)
    });
    let per = geo.rows.output * geo.cols.output;
    // Safety (of the intrinsics): only reached from `filter`, which has AVX2 and FMA.
    unsafe {
        let mut acc: [[__m256; N]; R] =
            std::array::from_fn(|r| std::array::from_fn(|n| load(dk, (r0 + r) * f + f0 + n * V)));
        let mut pos = b * per;
        let (rows_in, cols_in) = (interior(&geo.rows), interior(&geo.cols));
        for o in 0..geo.rows.output {
            let row_inside = (rows_in.0..rows_in.1).contains(&o);
            // Each kernel row's input row start, or None in the padding.
            let rows: [Option<usize>; R] = std::array::from_fn(|r| {
                geo.rows.source(o, tap[r].0).map(|h| (b * geo.rows.input + h) * geo.cols.input * c + tap[r].2)
            });
            for p in 0..geo.cols.output {
                let gv: [__m256; N] = std::array::from_fn(|n| load(g, pos * f + f0 + n * V));
                let xs: [f32; R] = if row_inside && (cols_in.0..cols_in.1).contains(&p) {
                    let start = window_start(geo, b, o, p);
                    std::array::from_fn(|r| x[start + offsets.at[r0 + r]])
                } else {
                    std::array::from_fn(|r| {
                        rows[r].and_then(|row| column(geo, row, p, tap[r].1)).map_or(0.0, |at| x[at])
                    })
                };
                for (r, &xv) in xs.iter().enumerate() {
                    let xv = _mm256_set1_ps(xv);
                    for n in 0..N {
                        acc[r][n] = _mm256_fmadd_ps(xv, gv[n], acc[r][n]);
                    }
                }
                pos += 1;
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (n, &v) in acc.iter().enumerate() {
                store(dk, (r0 + r) * f + f0 + n * V, v);
            }
        }
    }
}
