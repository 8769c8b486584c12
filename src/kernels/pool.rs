//! Native 2-D max and average pooling and their gradients on f32 slices, NHWC: the
//! compiled step's kernels for `max_pool2d`, `avg_pool2d` and their `_grad` ops (the
//! rules and the reference kernels are in `ops/pool.rs`).
//!
//! Pooling has no dilation, so the taps of a window that lie inside the input form a
//! rectangle of rows `h0..h1` and columns `w0..w1`; padding never takes part. The results
//! equal the reference kernels' exactly: the max is the first largest element in row-major
//! tap order with a NaN winning, the gradient of a max goes to that element alone, and an
//! average sums in tap order and divides by the number of taps inside the input.
//! Invariant: nothing here allocates; slice lengths are checked first.

use crate::ir::{Padding, PoolKind};
use crate::ops::AxisWindow;

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
        let clip = |a: &AxisWindow, o: usize| {
            let start = o * a.stride;
            let lo = start.max(a.pad_before) - a.pad_before;
            let hi = (start + a.size).saturating_sub(a.pad_before).min(a.input);
            (lo, hi)
        };
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

    #[inline]
    fn at(&self, image: usize, h: usize, w: usize) -> usize {
        image + (h * self.cols.input + w) * self.channels
    }
}

/// Channels the max gradient tracks at once (on the stack).
const LANES: usize = 16;

fn check(what: &'static str, got: usize, expected: usize) -> Result<(), PoolError> {
    if got < expected { Err(PoolError::Length { what, got, expected }) } else { Ok(()) }
}

/// Whether `v` replaces `best` as the running max: larger, or a NaN, unless `best` is NaN.
/// Non-short-circuit operators keep it branch-free, so channel loops vectorize.
#[inline]
fn beats(v: f32, best: f32) -> bool {
    !best.is_nan() & ((v > best) | v.is_nan())
}

/// `y = pool(x)`.
pub fn pool2d(geo: &PoolGeometry, x: &[f32], y: &mut [f32]) -> Result<(), PoolError> {
    check("input", x.len(), geo.input_len())?;
    check("output", y.len(), geo.output_len())?;
    let c = geo.channels;
    geo.for_each_window(|out, (h0, h1), (w0, w1), image| {
        let y = &mut y[out..out + c];
        let first = geo.at(image, h0, w0);
        y.copy_from_slice(&x[first..first + c]);
        for h in h0..h1 {
            for w in w0..w1 {
                if (h, w) == (h0, w0) {
                    continue;
                }
                let src = &x[geo.at(image, h, w)..][..c];
                match geo.kind {
                    PoolKind::Max => {
                        for (b, &v) in y.iter_mut().zip(src) {
                            *b = if beats(v, *b) { v } else { *b };
                        }
                    }
                    PoolKind::Avg => y.iter_mut().zip(src).for_each(|(b, &v)| *b += v),
                }
            }
        }
        if geo.kind == PoolKind::Avg {
            let count = ((h1 - h0) * (w1 - w0)) as f32;
            y.iter_mut().for_each(|v| *v /= count);
        }
    });
    Ok(())
}

/// The max gradient of `n ≤ LANES` channels of one window starting at element `base`:
/// first the max of each channel, then the first tap in tap order that holds it (a NaN
/// when the max is NaN) receives the gradient. Branch-free per lane.
#[inline(always)]
fn max_grad_block(
    geo: &PoolGeometry,
    x: &[f32],
    g: &[f32],
    dx: &mut [f32],
    (base, (h0, h1), (w0, w1)): (usize, (usize, usize), (usize, usize)),
    n: usize,
    disjoint: bool,
) {
    let mut best = [f32::NEG_INFINITY; LANES];
    for h in h0..h1 {
        for w in w0..w1 {
            let src = &x[geo.at(base, h, w)..][..n];
            for (b, &v) in best[..n].iter_mut().zip(src) {
                *b = if beats(v, *b) { v } else { *b };
            }
        }
    }
    if disjoint {
        // Every tap belongs to this window alone: write each element of the gradient once.
        // `pending` is 1 until a lane's max is found (float selects vectorize well).
        let mut pending = [1.0f32; LANES];
        for h in h0..h1 {
            for w in w0..w1 {
                let at = geo.at(base, h, w);
                let (src, d) = (&x[at..at + n], &mut dx[at..at + n]);
                for ((((d, &v), &b), p), &g) in d.iter_mut().zip(src).zip(&best).zip(&mut pending).zip(g) {
                    let hit = ((v == b) | (v.is_nan() & b.is_nan())) & (*p != 0.0);
                    *d = if hit { g } else { 0.0 };
                    *p = if hit { 0.0 } else { *p };
                }
            }
        }
        return;
    }
    // Taps in reverse order, so that the last hit kept is the first in tap order.
    let width = w1 - w0;
    let mut winner = [0u32; LANES];
    for h in (h0..h1).rev() {
        for w in (w0..w1).rev() {
            let t = ((h - h0) * width + (w - w0)) as u32;
            let src = &x[geo.at(base, h, w)..][..n];
            for ((k, &v), &b) in winner[..n].iter_mut().zip(src).zip(&best[..n]) {
                let hit = (v == b) | (v.is_nan() & b.is_nan());
                *k = if hit { t } else { *k };
            }
        }
    }
    for (l, (&t, &g)) in winner[..n].iter().zip(g).enumerate() {
        let t = t as usize;
        dx[geo.at(base, h0 + t / width, w0 + t % width) + l] += g;
    }
}

/// `dx = pool_grad(x, g)`: the input gradient from the input and the output gradient.
pub fn pool2d_grad(geo: &PoolGeometry, x: &[f32], g: &[f32], dx: &mut [f32]) -> Result<(), PoolError> {
    check("input", x.len(), geo.input_len())?;
    check("gradient", g.len(), geo.output_len())?;
    check("input gradient", dx.len(), geo.input_len())?;
    let c = geo.channels;
    // Windows that tile the input exactly write every gradient element once (max) and
    // need no zeroing first.
    let tiles = |a: &AxisWindow| a.stride == a.size && a.pad_before == 0 && a.output * a.stride == a.input;
    let disjoint = geo.kind == PoolKind::Max && tiles(&geo.rows) && tiles(&geo.cols);
    if !disjoint {
        dx[..geo.input_len()].fill(0.0);
    }
    geo.for_each_window(|out, (h0, h1), (w0, w1), image| match geo.kind {
        PoolKind::Max => {
            for ch0 in (0..c).step_by(LANES) {
                let n = LANES.min(c - ch0);
                let window = (image + ch0, (h0, h1), (w0, w1));
                let g = &g[out + ch0..out + ch0 + n];
                // A full block gets the constant lane count, so its loops vectorize.
                if n == LANES {
                    max_grad_block(geo, x, g, dx, window, LANES, disjoint);
                } else {
                    max_grad_block(geo, x, g, dx, window, n, disjoint);
                }
            }
        }
        PoolKind::Avg => {
            let count = ((h1 - h0) * (w1 - w0)) as f32;
            for h in h0..h1 {
                for w in w0..w1 {
                    let at = geo.at(image, h, w);
                    for (d, &v) in dx[at..at + c].iter_mut().zip(&g[out..out + c]) {
                        *d += v / count;
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
