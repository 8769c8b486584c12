//! Native 2-D max and average pooling and their gradients on f32 slices, NHWC: the
//! compiled step's kernels for `max_pool2d`, `avg_pool2d` and their `_grad` ops (the
//! rules and the reference kernels are in `ops/pool.rs`).
//!
//! Pooling has no dilation, so the taps of a window that lie inside the input form a
//! rectangle of rows `h0..h1` and columns `w0..w1`; padding never takes part. The results
//! equal the reference kernels' exactly: the max is the first largest element in row-major
//! tap order with a NaN winning, the gradient of a max goes to that element alone, and an
//! average sums in tap order and divides by the number of taps inside the input.
//! Max pooling and its gradient run eight channels at a time on AVX2 (`pool_avx2.rs`) when
//! the CPU has it; with `threads > 1` the images are split into runs that write disjoint
//! parts of the output. Invariant: nothing here allocates; slice lengths are checked first.

use super::simd::Isa;
use crate::ir::{Padding, PoolKind};
use crate::ops::AxisWindow;
use std::ops::Range;

/// Why a pooling kernel cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("pooling an input of shape {input:?} with a {window:?} window: {reason}")]
    Shape { input: Vec<usize>, window: [usize; 2], reason: &'static str },
    #[error("pooling: the {what} has {got} elements, expected {expected}")]
    Length { what: &'static str, got: usize, expected: usize },
}

/// The geometry of one pooling op with concrete sizes: `[B, H, W, C] -> [B, H', W', C]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub kind: PoolKind,
    pub batch: usize,
    pub channels: usize,
    pub rows: AxisWindow,
    pub cols: AxisWindow,
}

impl PoolGeometry {
    pub fn new(
        kind: PoolKind,
        input: &[usize],
        window: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    ) -> Result<PoolGeometry, PoolError> {
        let bad = |reason| PoolError::Shape { input: input.to_vec(), window, reason };
        let Ok([b, h, w, c]) = <[usize; 4]>::try_from(input) else {
            return Err(bad("the input must have 4 axes"));
        };
        let rows = AxisWindow::new(h, window[0], stride[0], 1, padding);
        let cols = AxisWindow::new(w, window[1], stride[1], 1, padding);
        let (Some(rows), Some(cols)) = (rows, cols) else {
            return Err(bad("the window does not fit, or a size or stride is zero"));
        };
        Ok(PoolGeometry { kind, batch: b, channels: c, rows, cols })
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.rows.input * self.cols.input * self.channels
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.rows.output * self.cols.output * self.channels
    }

    /// Calls `f(output offset, h0..h1, w0..w1, image offset)` for every output position:
    /// the window's rows and columns inside the input and the offset of its image.
    #[inline]
    fn for_each_window(&self, mut f: impl FnMut(usize, (usize, usize), (usize, usize), usize)) {
        let (rows, cols, c) = (self.rows, self.cols, self.channels);
        let mut out = 0;
        for b in 0..self.batch {
            let image = b * rows.input * cols.input * c;
            for o in 0..rows.output {
                let hr = clip(&rows, o);
                for p in 0..cols.output {
                    f(out, hr, clip(&cols, p), image);
                    out += c;
                }
            }
        }
    }

    #[inline(always)]
    fn at(&self, image: usize, h: usize, w: usize) -> usize {
        image + (h * self.cols.input + w) * self.channels
    }
}

/// The input rows (or columns) `lo..hi` that window `o` of axis `a` covers.
#[inline(always)]
fn clip(a: &AxisWindow, o: usize) -> (usize, usize) {
    let start = o * a.stride;
    let lo = start.max(a.pad_before) - a.pad_before;
    let hi = (start + a.size).saturating_sub(a.pad_before).min(a.input);
    (lo, hi)
}

fn check(what: &'static str, got: usize, expected: usize) -> Result<(), PoolError> {
    if got < expected { Err(PoolError::Length { what, got, expected }) } else { Ok(()) }
}

/// Whether `v` replaces `best` as the running max: larger, or a NaN, unless `best` is NaN.
#[inline]
fn beats(v: f32, best: f32) -> bool {
    !best.is_nan() & ((v > best) | v.is_nan())
}

/// How the max gradient writes `dx`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum GradWrite {
    /// No two windows share an element: each tap of a window is stored once (`0 + g` at
    /// the max, `0` elsewhere), as the reference's sum into zeros gives.
    Store,
    /// Windows overlap: `dx` is zeroed first and each window adds `g` at its max.
    Add,
}

impl PoolGeometry {
    /// The same pooling over `n` images.
    fn with_batch(&self, n: usize) -> PoolGeometry {
        PoolGeometry { batch: n, ..*self }
    }

    fn input_per_image(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }

    fn output_per_image(&self) -> usize {
        self.rows.output * self.cols.output * self.channels
    }
}

/// Splits the images into `parts` runs and calls `work(run's geometry, images, out part)`
/// on each, in parallel; `out` holds `out_per_image` elements per image.
fn in_parts<W>(
    geo: &PoolGeometry,
    images: Range<usize>,
    parts: usize,
    (out, per): (&mut [f32], usize),
    work: &W,
) where
    W: Fn(&PoolGeometry, Range<usize>, &mut [f32]) + Sync,
{
    if parts <= 1 || images.len() <= 1 {
        return work(&geo.with_batch(images.len()), images, out);
    }
    let left = parts / 2;
    let mid = images.start + images.len() * left / parts;
    let (out_l, out_r) = out.split_at_mut((mid - images.start) * per);
    super::team::join(
        || in_parts(geo, images.start..mid, left, (out_l, per), work),
        || in_parts(geo, mid..images.end, parts - left, (out_r, per), work),
    );
}

/// `y = pool(x)`, the images split over `threads` threads.
pub fn pool2d(geo: &PoolGeometry, x: &[f32], y: &mut [f32], threads: usize) -> Result<(), PoolError> {
    pool2d_on(Isa::best(), geo, x, y, threads)
}

/// `pool2d` with the given instruction set.
fn pool2d_on(
    isa: Isa,
    geo: &PoolGeometry,
    x: &[f32],
    y: &mut [f32],
    threads: usize,
) -> Result<(), PoolError> {
    check("input", x.len(), geo.input_len())?;
    check("output", y.len(), geo.output_len())?;
    let (xi, yi) = (geo.input_per_image(), geo.output_per_image());
    let work = |part: &PoolGeometry, images: Range<usize>, y: &mut [f32]| {
        pool_images(isa, part, &x[images.start * xi..images.end * xi], y);
    };
    in_parts(geo, 0..geo.batch, threads, (&mut y[..geo.output_len()], yi), &work);
    Ok(())
}

/// `pool2d` of every image of `geo` (lengths checked).
fn pool_images(isa: Isa, geo: &PoolGeometry, x: &[f32], y: &mut [f32]) {
    let c = geo.channels;
    if geo.kind == PoolKind::Max {
        let vectors = match isa {
            Isa::Avx2 => simd_max_pool(geo, x, y),
            Isa::Portable => 0,
        };
        geo.for_each_window(|out, (h0, h1), (w0, w1), image| {
            for ch in vectors..c {
                let mut best = x[geo.at(image, h0, w0) + ch];
                for h in h0..h1 {
                    for w in w0..w1 {
                        let v = x[geo.at(image, h, w) + ch];
                        best = if beats(v, best) { v } else { best };
                    }
                }
                y[out + ch] = best;
            }
        });
        return;
    }
    geo.for_each_window(|out, (h0, h1), (w0, w1), image| {
        // The sum starts from zero, as the reference's (a lone -0 tap averages to +0).
        let y = &mut y[out..out + c];
        y.fill(0.0);
        for h in h0..h1 {
            for w in w0..w1 {
                let src = &x[geo.at(image, h, w)..][..c];
                y.iter_mut().zip(src).for_each(|(b, &v)| *b += v);
            }
        }
        let count = ((h1 - h0) * (w1 - w0)) as f32;
        y.iter_mut().for_each(|v| *v /= count);
    });
}

/// The AVX2 max pooling of the channels it covers (whole vectors of 8); returns how many.
fn simd_max_pool(geo: &PoolGeometry, x: &[f32], y: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if Isa::best() == Isa::Avx2 {
        // Safety: the CPU has AVX2 (checked just above).
        return unsafe { avx2::max_pool(geo, x, y) };
    }
    let _ = (geo, x, y);
    0
}

/// The AVX2 max gradient of the channels it covers; returns how many.
fn simd_max_grad(geo: &PoolGeometry, x: &[f32], g: &[f32], dx: &mut [f32], write: GradWrite) -> usize {
    #[cfg(target_arch = "x86_64")]
    if Isa::best() == Isa::Avx2 {
        // Safety: the CPU has AVX2 (checked just above).
        return unsafe { avx2::max_grad(geo, x, g, dx, write) };
    }
    let _ = (geo, x, g, dx, write);
    0
}

/// `dx = pool_grad(x, g)`: the input gradient from the input and the output gradient, the
/// images split over `threads` threads.
pub fn pool2d_grad(
    geo: &PoolGeometry,
    x: &[f32],
    g: &[f32],
    dx: &mut [f32],
    threads: usize,
) -> Result<(), PoolError> {
    pool2d_grad_on(Isa::best(), geo, x, g, dx, threads)
}

/// `pool2d_grad` with the given instruction set.
fn pool2d_grad_on(
    isa: Isa,
    geo: &PoolGeometry,
    x: &[f32],
    g: &[f32],
    dx: &mut [f32],
    threads: usize,
) -> Result<(), PoolError> {
    check("input", x.len(), geo.input_len())?;
    check("gradient", g.len(), geo.output_len())?;
    check("input gradient", dx.len(), geo.input_len())?;
    let (xi, gi) = (geo.input_per_image(), geo.output_per_image());
    let work = |part: &PoolGeometry, images: Range<usize>, dx: &mut [f32]| {
        let (x, g) = (&x[images.start * xi..images.end * xi], &g[images.start * gi..images.end * gi]);
        pool_grad_images(isa, part, x, g, dx);
    };
    in_parts(geo, 0..geo.batch, threads, (&mut dx[..geo.input_len()], xi), &work);
    Ok(())
}

/// `pool2d_grad` of every image of `geo` (lengths checked).
fn pool_grad_images(isa: Isa, geo: &PoolGeometry, x: &[f32], g: &[f32], dx: &mut [f32]) {
    let c = geo.channels;
    let disjoint = |a: &AxisWindow| a.stride >= a.size;
    let tiles = |a: &AxisWindow| a.stride == a.size && a.pad_before == 0 && a.output * a.stride == a.input;
    let max = geo.kind == PoolKind::Max;
    let write =
        if max && disjoint(&geo.rows) && disjoint(&geo.cols) { GradWrite::Store } else { GradWrite::Add };
    // Stored windows that tile the input write every element; anything else needs zeros.
    if !(write == GradWrite::Store && tiles(&geo.rows) && tiles(&geo.cols)) {
        dx[..geo.input_len()].fill(0.0);
    }
    if max {
        let vectors = match isa {
            Isa::Avx2 => simd_max_grad(geo, x, g, dx, write),
            Isa::Portable => 0,
        };
        geo.for_each_window(|out, (h0, h1), (w0, w1), image| {
            for ch in vectors..c {
                let mut at = geo.at(image, h0, w0) + ch;
                for h in h0..h1 {
                    for w in w0..w1 {
                        let t = geo.at(image, h, w) + ch;
                        at = if beats(x[t], x[at]) { t } else { at };
                    }
                }
                match write {
                    GradWrite::Add => dx[at] += g[out + ch],
                    GradWrite::Store => {
                        for h in h0..h1 {
                            for w in w0..w1 {
                                let t = geo.at(image, h, w) + ch;
                                dx[t] = if t == at { 0.0 + g[out + ch] } else { 0.0 };
                            }
                        }
                    }
                }
            }
        });
        return;
    }
    geo.for_each_window(|out, (h0, h1), (w0, w1), image| {
        let count = ((h1 - h0) * (w1 - w0)) as f32;
        for h in h0..h1 {
            for w in w0..w1 {
                let at = geo.at(image, h, w);
                for (d, &v) in dx[at..at + c].iter_mut().zip(&g[out..out + c]) {
                    *d += v / count;
                }
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[path = "pool_avx2.rs"]
mod avx2;

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
