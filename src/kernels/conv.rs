//! Native 2-D convolution and its two gradients on f32 slices, NHWC, through the tuned
//! GEMM: the compiled step's kernels for `conv2d`, `conv2d_backprop_input` and
//! `conv2d_backprop_filter` (the math and the reference kernels are in `ops/conv.rs`).
//!
//! Scheme: im2col in chunks. The output positions `[B·H'·W']` are cut into chunks of rows
//! whose patch matrix (`rows × KH·KW·C`) fits in the caller's scratch, so the copy stays in
//! cache; each chunk is one GEMM. The forward pass is `y[chunk] = patches · k`, the input
//! gradient `patches = g[chunk] · kᵀ` scattered back into `dx` (col2im), the filter
//! gradient `dk += patchesᵀ · g[chunk]`. A 1×1 convolution with stride 1 and no padding
//! needs no copy: the input already is its patch matrix. Two other schemes take the shapes
//! they are faster for: a 3×3 convolution with stride 1 and 16 or more channels and filters
//! runs through Winograd's F(2×2, 3×3) (`conv_winograd.rs`, 2.25× fewer multiplies), a
//! shallow patch through the direct kernels (`conv_direct.rs`).
//!
//! Threads: with `threads > 1` the images are split into that many contiguous runs, each
//! with its own scratch part (and, for the filter gradient, its own accumulator, summed at
//! the end); runs never write the same element. Invariants: nothing here allocates except
//! the GEMM's per-thread packing buffers, made once; every slice length is checked first
//! (an `Err`, not a panic).

use super::gemm::{GemmError, Layout, MatMut, MatRef, Parallelism, gemm};
use super::simd::Isa;
use crate::ir::Padding;
use crate::ops::AxisWindow;
use std::ops::Range;

/// Scratch elements one chunk's patch matrix may take (256 KiB: a core's L2 holds it).
const CHUNK_ELEMS: usize = 1 << 16;
/// Deepest patch (taps × channels) the direct kernels take. Measured with
/// `benches/window.rs` (loaded machine, 1 thread): at depth 9 (3×3×1) the direct forward
/// pass took 535 µs against 830 through im2col and the GEMM, the filter gradient 480
/// against 640; at depth 27 (3×3×3) the GEMM was ahead (1.57 ms against 1.72 forward).
const DIRECT_DEPTH: usize = 16;
/// Fewest rows a chunk has, so that each GEMM call amortizes packing the kernel.
const MIN_CHUNK_ROWS: usize = 128;

/// Why a convolution cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    #[error("convolution of input {input:?} with kernel {kernel:?}: {reason}")]
    Shape { input: Vec<usize>, kernel: Vec<usize>, reason: &'static str },
    #[error("convolution: the {what} has {got} elements, expected {expected}")]
    Length { what: &'static str, got: usize, expected: usize },
    #[error(transparent)]
    Gemm(#[from] GemmError),
}

/// Which of the three convolution ops.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConvOp {
    Forward,
    BackpropInput,
    BackpropFilter,
}

/// The geometry of one convolution with concrete sizes: input `[B, H, W, C]`, kernel
/// `[KH, KW, C, F]`, output `[B, H', W', F]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub channels: usize,
    pub filters: usize,
    pub rows: AxisWindow,
    pub cols: AxisWindow,
}

impl ConvGeometry {
    /// Checks the shapes and resolves the windows (TensorFlow's `same` padding).
    pub fn new(
        input: &[usize],
        kernel: &[usize],
        stride: [usize; 2],
        padding: Padding,
        dilation: [usize; 2],
    ) -> Result<ConvGeometry, ConvError> {
        let bad = |reason| ConvError::Shape { input: input.to_vec(), kernel: kernel.to_vec(), reason };
        let (Ok([b, h, w, c]), Ok([kh, kw, kc, f])) =
            (<[usize; 4]>::try_from(input), <[usize; 4]>::try_from(kernel))
        else {
            return Err(bad("both must have 4 axes"));
        };
        if c != kc {
            return Err(bad("the kernel's input channels differ from the input's"));
        }
        let rows = AxisWindow::new(h, kh, stride[0], dilation[0], padding);
        let cols = AxisWindow::new(w, kw, stride[1], dilation[1], padding);
        let (Some(rows), Some(cols)) = (rows, cols) else {
            return Err(bad("the window does not fit, or a size, stride or dilation is zero"));
        };
        Ok(ConvGeometry { batch: b, channels: c, filters: f, rows, cols })
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.rows.input * self.cols.input * self.channels
    }

    pub fn output_len(&self) -> usize {
        self.positions() * self.filters
    }

    pub fn kernel_len(&self) -> usize {
        self.taps() * self.filters
    }

    /// Output positions per image.
    fn positions_per_image(&self) -> usize {
        self.rows.output * self.cols.output
    }

    /// Rows of the whole patch matrix.
    fn positions(&self) -> usize {
        self.batch * self.positions_per_image()
    }

    /// Columns of the patch matrix: taps × channels.
    pub fn taps(&self) -> usize {
        self.rows.size * self.cols.size * self.channels
    }

    /// Multiply-adds of any of the three ops.
    pub fn flops(&self) -> usize {
        self.positions() * self.taps() * self.filters
    }

    /// The patch matrix is the input itself (1×1, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        let unit = |a: &AxisWindow| a.size == 1 && a.stride == 1 && a.pad_before == 0;
        unit(&self.rows) && unit(&self.cols)
    }

    /// Whether the direct kernels of `conv_direct.rs` run this convolution: AVX2, a shallow
    /// patch and whole vectors of filters.
    fn is_direct(&self, isa: Isa) -> bool {
        cfg!(target_arch = "x86_64")
            && isa == Isa::Avx2
            && self.taps() <= DIRECT_DEPTH
            && self.filters.is_multiple_of(8)
            && self.filters > 0
    }

    /// Whether `conv_winograd.rs` runs this convolution: a 3×3 kernel, stride 1, no
    /// dilation, and channels and filters deep enough for its products to pay for the
    /// transforms.
    fn is_winograd(&self) -> bool {
        let three = |a: &AxisWindow| a.size == 3 && a.stride == 1 && a.dilation == 1;
        three(&self.rows)
            && three(&self.cols)
            && self.channels >= winograd::MIN_DEPTH
            && self.filters >= winograd::MIN_DEPTH
    }

    /// Rows of one chunk of the patch matrix.
    fn chunk_rows(&self) -> usize {
        (CHUNK_ELEMS / self.taps().max(1)).max(MIN_CHUNK_ROWS).min(self.positions().max(1))
    }

    /// Runs the images are split into for `threads` threads.
    fn parts(&self, threads: usize) -> usize {
        threads.clamp(1, self.batch.max(1))
    }

    /// Scratch elements one thread's part needs.
    fn part_scratch(&self, op: ConvOp) -> usize {
        if self.is_winograd() {
            return winograd::part_len(self, op);
        }
        let patches = if self.is_pointwise() && op != ConvOp::BackpropInput {
            0
        } else {
            self.chunk_rows() * self.taps()
        };
        match op {
            ConvOp::BackpropFilter => patches + self.kernel_len(),
            _ => patches,
        }
    }

    /// Scratch elements `op` needs with `threads` threads.
    pub fn scratch_len(&self, op: ConvOp, threads: usize) -> usize {
        let shared = if self.is_winograd() { winograd::shared_len(self, op) } else { 0 };
        shared + self.part_scratch(op) * self.parts(threads)
    }

    /// The products one thread's run over `images` makes, as `(A, B, C)` layouts, in
    /// order (what the GEMM is called with; tests count its allocations from them).
    pub fn products(&self, op: ConvOp, images: Range<usize>) -> impl Iterator<Item = [Layout; 3]> + '_ {
        let (taps, f) = (self.taps(), self.filters);
        let per = self.positions_per_image();
        let total = images.len() * per;
        let chunk =
            if self.is_pointwise() && op != ConvOp::BackpropInput { total.max(1) } else { self.chunk_rows() };
        (0..total).step_by(chunk.max(1)).map(move |r0| {
            let n = chunk.min(total - r0);
            match op {
                ConvOp::Forward => {
                    [Layout::row_major(n, taps), Layout::row_major(taps, f), Layout::row_major(n, f)]
                }
                ConvOp::BackpropInput => {
                    [Layout::row_major(n, f), Layout::row_major(taps, f).t(), Layout::row_major(n, taps)]
                }
                ConvOp::BackpropFilter => {
                    [Layout::row_major(n, taps).t(), Layout::row_major(n, f), Layout::row_major(taps, f)]
                }
            }
        })
    }

    /// Input element offset of image `b`, row `h`, column `w`, channel 0.
    #[inline]
    fn input_at(&self, b: usize, h: usize, w: usize) -> usize {
        ((b * self.rows.input + h) * self.cols.input + w) * self.channels
    }

    /// Visits the taps of patch-matrix rows `rows` in runs: `f(patch offset, count,
    /// Some(input offset))` stands for `count` taps at patch offsets `taps` apart reading
    /// `C` elements each at input offsets `stride · C` apart, `f(patch offset, count, None)`
    /// for `count` taps in the padding. Offsets are relative to the first row. Rows are
    /// visited in segments of one image row, tap by tap, so that the runs are long and the
    /// caller's inner loop has fixed strides.
    #[inline]
    fn for_each_run(&self, rows: Range<usize>, mut f: impl FnMut(usize, usize, Option<usize>)) {
        let (rw, cw, c, taps) = (self.rows, self.cols, self.channels, self.taps());
        let ow = cw.output.max(1);
        let mut r = rows.start;
        while r < rows.end {
            let (b, o, p0) = (r / (ow * rw.output), (r / ow) % rw.output, r % ow);
            let p1 = ow.min(p0 + rows.end - r);
            let k0 = r - rows.start;
            for i in 0..rw.size {
                let h = rw.source(o, i);
                for j in 0..cw.size {
                    let at = |p: usize| (k0 + p - p0) * taps + (i * cw.size + j) * c;
                    // Column p reads input column p·stride + j·dilation − pad: inside for
                    // p in lo..hi.
                    let reach = j * cw.dilation;
                    let lo =
                        if cw.pad_before > reach { (cw.pad_before - reach).div_ceil(cw.stride) } else { 0 };
                    let hi = match (cw.input + cw.pad_before).checked_sub(reach + 1) {
                        Some(last) => last / cw.stride + 1,
                        None => 0,
                    };
                    let (lo, hi) = (lo.clamp(p0, p1), hi.clamp(p0, p1).max(lo.clamp(p0, p1)));
                    let Some(h) = h else {
                        f(at(p0), p1 - p0, None);
                        continue;
                    };
                    if lo > p0 {
                        f(at(p0), lo - p0, None);
                    }
                    if hi > lo {
                        f(at(lo), hi - lo, Some(self.input_at(b, h, lo * cw.stride + reach - cw.pad_before)));
                    }
                    if p1 > hi {
                        f(at(hi), p1 - hi, None);
                    }
                }
            }
            r += p1 - p0;
        }
    }

    /// Copies patch-matrix rows `rows` of `x` into `patches` (row-major, `taps` columns).
    fn im2col(&self, x: &[f32], rows: Range<usize>, patches: &mut [f32]) {
        match self.channels {
            1 => self.im2col_fixed::<1>(x, rows, patches),
            2 => self.im2col_fixed::<2>(x, rows, patches),
            3 => self.im2col_fixed::<3>(x, rows, patches),
            4 => self.im2col_fixed::<4>(x, rows, patches),
            _ => self.im2col_fixed::<0>(x, rows, patches),
        }
    }

    /// `im2col` for `C` channels (0: any number, known at run time only).
    #[inline(always)]
    fn im2col_fixed<const C: usize>(&self, x: &[f32], rows: Range<usize>, patches: &mut [f32]) {
        let (taps, step) = (self.taps(), self.cols.stride * self.channels);
        let c = if C == 0 { self.channels } else { C };
        self.for_each_run(rows, |at, count, src| {
            for k in 0..count {
                let dst = &mut patches[at + k * taps..][..c];
                match src {
                    Some(src) => copy_channels(dst, &x[src + k * step..][..c]),
                    None => dst.fill(0.0),
                }
            }
        });
    }

    /// Adds patch-matrix rows `rows` back into the input positions they read; `dx` starts
    /// at input offset `base`.
    fn col2im(&self, patches: &[f32], rows: Range<usize>, dx: &mut [f32], base: usize) {
        let (taps, step, c) = (self.taps(), self.cols.stride * self.channels, self.channels);
        self.for_each_run(rows, |at, count, to| {
            let Some(to) = to else { return };
            for k in 0..count {
                let d = &mut dx[to - base + k * step..][..c];
                for (d, s) in d.iter_mut().zip(&patches[at + k * taps..][..c]) {
                    *d += s;
                }
            }
        });
    }
}

/// `dst.copy_from_slice(src)` in runs of 8: a length known only at run time makes
/// `copy_from_slice` a call to `memmove`, which costs more than copying one tap's 32 or 64
/// channels (in `perf`, memmove's share of the CIFAR CNN's step fell from 5.8 % to 3.6 %).
#[inline(always)]
fn copy_channels(dst: &mut [f32], src: &[f32]) {
    let (mut d, mut s) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

fn check(what: &'static str, got: usize, expected: usize) -> Result<(), ConvError> {
    if got < expected { Err(ConvError::Length { what, got, expected }) } else { Ok(()) }
}

/// Splits `images` into `parts` runs and calls `work(run, out part, scratch part)` on
/// each, in parallel; `out` holds `out_per_image` elements per image of the run.
fn split_images<W>(
    images: Range<usize>,
    parts: usize,
    (out, out_per_image): (&mut [f32], usize),
    (scratch, scratch_per_part): (&mut [f32], usize),
    work: &W,
) -> Result<(), ConvError>
where
    W: Fn(Range<usize>, &mut [f32], &mut [f32]) -> Result<(), ConvError> + Sync,
{
    if parts <= 1 {
        return work(images, out, scratch);
    }
    let left = parts / 2;
    let mid = images.start + images.len() * left / parts;
    let (out_l, out_r) = out.split_at_mut((mid - images.start) * out_per_image);
    let (scratch_l, scratch_r) = scratch.split_at_mut(left * scratch_per_part);
    let (a, b) = super::team::join(
        || split_images(images.start..mid, left, (out_l, out_per_image), (scratch_l, scratch_per_part), work),
        || {
            split_images(
                mid..images.end,
                parts - left,
                (out_r, out_per_image),
                (scratch_r, scratch_per_part),
                work,
            )
        },
    );
    a.and(b)
}

/// `y = conv2d(x, k)`.
pub fn conv2d(
    geo: &ConvGeometry,
    x: &[f32],
    k: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) -> Result<(), ConvError> {
    conv2d_on(Isa::best(), geo, x, k, y, scratch, threads)
}

/// `conv2d` with the given instruction set.
fn conv2d_on(
    isa: Isa,
    geo: &ConvGeometry,
    x: &[f32],
    k: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) -> Result<(), ConvError> {
    let (taps, f, per) = (geo.taps(), geo.filters, geo.positions_per_image());
    check("input", x.len(), geo.input_len())?;
    check("kernel", k.len(), geo.kernel_len())?;
    check("output", y.len(), geo.output_len())?;
    let parts = geo.parts(threads);
    let part = geo.part_scratch(ConvOp::Forward);
    check("scratch", scratch.len(), geo.scratch_len(ConvOp::Forward, threads))?;
    if geo.is_winograd() {
        return winograd::forward(isa, geo, (x, k, y), scratch, parts);
    }
    let kernel = MatRef::row_major(&k[..taps * f], taps, f)?;
    let direct = geo.is_direct(isa);
    let work = |images: Range<usize>, y: &mut [f32], scratch: &mut [f32]| {
        #[cfg(target_arch = "x86_64")]
        if direct {
            // Safety: `is_direct` holds only on a CPU with AVX2 and FMA, for filters in
            // whole vectors; the lengths are checked above.
            unsafe { direct::forward(geo, x, k, y, images) };
            return Ok(());
        }
        let first = images.start * per;
        let mut out_rows = 0;
        for [la, _, lc] in geo.products(ConvOp::Forward, images) {
            let rows = first + out_rows..first + out_rows + la.rows;
            let patches = if geo.is_pointwise() {
                MatRef::new(&x[rows.start * taps..], la)?
            } else {
                geo.im2col(x, rows.clone(), &mut scratch[..la.rows * taps]);
                MatRef::new(&scratch[..la.rows * taps], la)?
            };
            let out = MatMut::new(&mut y[out_rows * f..(out_rows + la.rows) * f], lc)?;
            gemm(1.0, patches, kernel, 0.0, out, Parallelism::Sequential)?;
            out_rows += la.rows;
        }
        Ok(())
    };
    split_images(0..geo.batch, parts, (&mut y[..geo.output_len()], per * f), (scratch, part), &work)
}

/// `dx = conv2d_backprop_input(g, k)`: the input gradient from the output gradient `g`.
pub fn conv2d_backprop_input(
    geo: &ConvGeometry,
    g: &[f32],
    k: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) -> Result<(), ConvError> {
    let (taps, f, per) = (geo.taps(), geo.filters, geo.positions_per_image());
    check("gradient", g.len(), geo.output_len())?;
    check("kernel", k.len(), geo.kernel_len())?;
    check("input gradient", dx.len(), geo.input_len())?;
    let parts = geo.parts(threads);
    let part = geo.part_scratch(ConvOp::BackpropInput);
    check("scratch", scratch.len(), geo.scratch_len(ConvOp::BackpropInput, threads))?;
    if geo.is_winograd() {
        return winograd::backprop_input(Isa::best(), geo, (g, k, dx), scratch, parts);
    }
    let kernel_t = MatRef::row_major(&k[..taps * f], taps, f)?.t();
    let image_len = geo.rows.input * geo.cols.input * geo.channels;
    let work = |images: Range<usize>, dx: &mut [f32], scratch: &mut [f32]| {
        dx.fill(0.0);
        let (first, base) = (images.start * per, images.start * image_len);
        let mut done = 0;
        for [la, _, lc] in geo.products(ConvOp::BackpropInput, images) {
            let rows = first + done..first + done + la.rows;
            let grad = MatRef::new(&g[rows.start * f..rows.end * f], la)?;
            let patches = &mut scratch[..la.rows * taps];
            gemm(1.0, grad, kernel_t, 0.0, MatMut::new(patches, lc)?, Parallelism::Sequential)?;
            geo.col2im(patches, rows, dx, base);
            done += la.rows;
        }
        Ok(())
    };
    split_images(0..geo.batch, parts, (&mut dx[..geo.input_len()], image_len), (scratch, part), &work)
}

/// `dk = conv2d_backprop_filter(x, g)`: the kernel gradient from the input `x` and the
/// output gradient `g`.
pub fn conv2d_backprop_filter(
    geo: &ConvGeometry,
    x: &[f32],
    g: &[f32],
    dk: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) -> Result<(), ConvError> {
    conv2d_backprop_filter_on(Isa::best(), geo, x, g, dk, scratch, threads)
}

/// `conv2d_backprop_filter` with the given instruction set.
fn conv2d_backprop_filter_on(
    isa: Isa,
    geo: &ConvGeometry,
    x: &[f32],
    g: &[f32],
    dk: &mut [f32],
    scratch: &mut [f32],
    threads: usize,
) -> Result<(), ConvError> {
    let (taps, f, per) = (geo.taps(), geo.filters, geo.positions_per_image());
    let klen = geo.kernel_len();
    check("input", x.len(), geo.input_len())?;
    check("gradient", g.len(), geo.output_len())?;
    check("kernel gradient", dk.len(), klen)?;
    let parts = geo.parts(threads);
    let part = geo.part_scratch(ConvOp::BackpropFilter);
    check("scratch", scratch.len(), geo.scratch_len(ConvOp::BackpropFilter, threads))?;
    if geo.is_winograd() {
        return winograd::backprop_filter(isa, geo, (x, g, dk), scratch, parts);
    }
    // Each part accumulates into the last `klen` elements of its scratch.
    let direct = geo.is_direct(isa);
    let work = |images: Range<usize>, _: &mut [f32], scratch: &mut [f32]| {
        let (patches, acc) = scratch.split_at_mut(part - klen);
        #[cfg(target_arch = "x86_64")]
        if direct {
            // Safety: as in `conv2d_on`.
            unsafe { direct::filter(geo, x, g, acc, images) };
            return Ok(());
        }
        let first = images.start * per;
        let mut done = 0;
        for [la, lb, lc] in geo.products(ConvOp::BackpropFilter, images) {
            let n = la.cols;
            let rows = first + done..first + done + n;
            let cols = if geo.is_pointwise() {
                MatRef::new(&x[rows.start * taps..], la)?
            } else {
                geo.im2col(x, rows.clone(), &mut patches[..n * taps]);
                MatRef::new(&patches[..n * taps], la)?
            };
            let grad = MatRef::new(&g[rows.start * f..rows.end * f], lb)?;
            let beta = if done == 0 { 0.0 } else { 1.0 };
            gemm(1.0, cols, grad, beta, MatMut::new(&mut acc[..klen], lc)?, Parallelism::Sequential)?;
            done += n;
        }
        if done == 0 {
            acc[..klen].fill(0.0);
        }
        Ok(())
    };
    split_images(0..geo.batch, parts, (&mut [], 0), (&mut scratch[..part * parts], part), &work)?;
    let dk = &mut dk[..klen];
    dk.copy_from_slice(&scratch[part - klen..part]);
    for p in 1..parts {
        for (d, s) in dk.iter_mut().zip(&scratch[(p + 1) * part - klen..(p + 1) * part]) {
            *d += s;
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[path = "conv_direct.rs"]
mod direct;

#[path = "conv_winograd.rs"]
mod winograd;

#[cfg(test)]
#[path = "conv_tests.rs"]
mod tests;
