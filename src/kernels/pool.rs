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

fn check(what: &'static str, got: usize, expected: usize) -> Result<(), PoolError> {
    if got < expected { Err(PoolError::Length { what, got, expected }) } else { Ok(()) }
}

/// Whether `v` replaces `best` as the running max: larger, or a NaN, unless `best` is NaN.
#[inline]
fn beats(v: f32, best: f32) -> bool {
    !best.is_nan() && (v > best || v.is_nan())
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
                            if beats(v, *b) {
                                *b = v;
                            }
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

/// `dx = pool_grad(x, g)`: the input gradient from the input and the output gradient.
pub fn pool2d_grad(geo: &PoolGeometry, x: &[f32], g: &[f32], dx: &mut [f32]) -> Result<(), PoolError> {
    check("input", x.len(), geo.input_len())?;
    check("gradient", g.len(), geo.output_len())?;
    check("input gradient", dx.len(), geo.input_len())?;
    let c = geo.channels;
    dx[..geo.input_len()].fill(0.0);
    geo.for_each_window(|out, (h0, h1), (w0, w1), image| match geo.kind {
        PoolKind::Max => {
            for ch in 0..c {
                let mut best = geo.at(image, h0, w0) + ch;
                for h in h0..h1 {
                    for w in w0..w1 {
                        let at = geo.at(image, h, w) + ch;
                        if beats(x[at], x[best]) {
                            best = at;
                        }
                    }
                }
                dx[best] += g[out + ch];
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
