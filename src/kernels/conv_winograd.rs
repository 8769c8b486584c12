//! Winograd F(2×2, 3×3) convolutions (Lavin and Gray, 2015) for 3×3 kernels with stride 1
//! and no dilation, NHWC: the forward pass and both gradients in 16 multiply-adds per
//! channel pair and 2×2 output tile instead of im2col's 36, 2.25× fewer.
//!
//! Forward: `Y_t = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d_t B)]A` for every 2×2 output tile `t` with its 4×4
//! input patch `d_t` (zeros in the padding), summed over channels as 16 matrix products
//! `M[ξ] = V[ξ]·U[ξ]` (tiles × C times C × F), one per position `ξ` of a transformed tile.
//! The gradients are this linear map's transposes, so they reuse the same transforms: with
//! `Z_t = A dY_t Aᵀ`, the input gradient is `B[Z·Uᵀ]Bᵀ` added back into the overlapping
//! patches and the kernel gradient is `Gᵀ[Σ_t Vᵀ·Z]G`.
//!
//! Tiles are taken in blocks whose transformed inputs and products stay in L2; the
//! transformed kernel is made once per call and shared by the threads. The sums run in a
//! different order from im2col's, so results agree with it to rounding; F(2, 3)'s transforms
//! only add, subtract and halve, which keeps that rounding close to im2col's. Every access
//! goes through a bounds-checked slice; the caller in `conv.rs` checks the lengths first.

use super::{ConvError, ConvGeometry, ConvOp, split_images};
use crate::kernels::gemm::{BatchLayout, Layout, Parallelism, gemm_batched};
use crate::kernels::simd::Isa;
use lanes::{Lanes, a, at, b, bt, g, gather, gt, offsets, on, put, sandwich, tile};
use std::ops::Range;

#[path = "conv_winograd_lanes.rs"]
mod lanes;

/// Positions of a transformed tile (4 × 4).
const XI: usize = 16;
/// Fewest input channels and filters taken this way. The shallowest layer measured is the
/// CIFAR CNN's 32 → 64 (a clear gain); shallower products amortize the transforms and the
/// micro-kernel's stores over fewer multiply-adds, and 16 is a guess between that and the
/// 3-channel first layer, which stays with im2col.
pub(super) const MIN_DEPTH: usize = 16;
/// Elements one block's transformed tiles and products may take (256 KiB, half of L2).
const BLOCK_ELEMS: usize = 1 << 16;
/// Fewest and most tiles of one block: the products' rows (at most 48 rows read B in place).
const BLOCK_TILES: Range<usize> = 8..48;

/// Calls `work::<8>(at)` on each whole run of 8 lanes of `0..n` and `work::<1>(at)` on the
/// rest, so the lane loops have a fixed length.
macro_rules! by_lanes {
    ($n:expr, |$at:ident, $lanes:ident| $body:expr) => {{
        let n = $n;
        let mut $at = 0;
        while $at + 8 <= n {
            {
                type $lanes = Lanes<8>;
                $body;
            }
            $at += 8;
        }
        while $at < n {
            {
                type $lanes = Lanes<1>;
                $body;
            }
            $at += 1;
        }
    }};
}

/// The 2×2 output tiles of a convolution, counted image by image, row by row.
#[derive(Copy, Clone)]
struct Tiles {
    rows: usize,
    cols: usize,
}

impl Tiles {
    fn of(geo: &ConvGeometry) -> Tiles {
        Tiles { rows: geo.rows.output.div_ceil(2), cols: geo.cols.output.div_ceil(2) }
    }

    fn per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// `(row in the block, image, first output row, first output column)` of each tile
    /// of `tiles`, in order (one division for the first, counters after it).
    fn walk(&self, tiles: Range<usize>) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let (cols, per) = (self.cols.max(1), self.per_image().max(1));
        let (mut image, mut ty, mut tx) = (tiles.start / per, (tiles.start % per) / cols, tiles.start % cols);
        (0..tiles.len()).map(move |row| {
            let here = (row, image, 2 * ty, 2 * tx);
            tx += 1;
            if tx == cols {
                tx = 0;
                ty += 1;
                if ty == self.rows {
                    ty = 0;
                    image += 1;
                }
            }
            here
        })
    }
}

/// Tiles per block for this geometry.
fn block_tiles(geo: &ConvGeometry) -> usize {
    let widest = geo.channels + geo.filters;
    (BLOCK_ELEMS / (XI * widest.max(1))).clamp(BLOCK_TILES.start, BLOCK_TILES.end)
}

/// Elements shared by all threads: the transformed kernel (none for the kernel gradient).
pub(super) fn shared_len(geo: &ConvGeometry, op: ConvOp) -> usize {
    match op {
        ConvOp::BackpropFilter => 0,
        _ => XI * geo.channels * geo.filters,
    }
}

/// Elements one thread's part needs: a block of transformed inputs and one of products
/// (and, for the kernel gradient, its transformed accumulator at the end).
pub(super) fn part_len(geo: &ConvGeometry, op: ConvOp) -> usize {
    let blocks = XI * block_tiles(geo) * (geo.channels + geo.filters);
    match op {
        ConvOp::BackpropFilter => blocks + XI * geo.channels * geo.filters,
        _ => blocks,
    }
}

/// The 16 row-major matrices of `rows` rows and `cols` columns a block of room for `size`
/// tiles holds, one after another: row `row` of matrix `ξ` at `in_block(size, cols, ξ, row)`.
/// (Interleaving them row by row, so that a tile's transform writes one contiguous run,
/// measured 10-20 % slower: the products then read and write strided rows.)
fn block(rows: usize, cols: usize, size: usize) -> BatchLayout {
    BatchLayout { batch: XI, batch_stride: in_block(size, cols, 1, 0), matrix: Layout::row_major(rows, cols) }
}

/// Offset of row `row` of matrix `ξ` in `block`'s layout.
#[inline(always)]
fn in_block(size: usize, cols: usize, xi: usize, row: usize) -> usize {
    (xi * size + row) * cols
}

/// Offset of input element `(image, h, w, 0)`, or `None` in the padding.
#[inline(always)]
fn input_at(geo: &ConvGeometry, image: usize, h: isize, w: isize) -> Option<usize> {
    let (rows, cols) = (geo.rows.input as isize, geo.cols.input as isize);
    ((0..rows).contains(&h) && (0..cols).contains(&w))
        .then(|| ((image * geo.rows.input + h as usize) * geo.cols.input + w as usize) * geo.channels)
}

/// First input row and column of the patch of the tile at output `(oh, ow)`.
#[inline(always)]
fn patch_origin(geo: &ConvGeometry, oh: usize, ow: usize) -> (isize, isize) {
    (oh as isize - geo.rows.pad_before as isize, ow as isize - geo.cols.pad_before as isize)
}

/// Writes `V = Bᵀ d B` of tiles `tiles` into rows `0..` of a block (`block`'s layout).
#[inline(always)]
fn transform_input(
    geo: &ConvGeometry,
    grid: Tiles,
    x: &[f32],
    tiles: Range<usize>,
    (v, size): (&mut [f32], usize),
) {
    let c = geo.channels;
    for (row, image, oh, ow) in grid.walk(tiles) {
        let (h0, w0) = patch_origin(geo, oh, ow);
        let at = offsets::<4>(|i, j| input_at(geo, image, h0 + i as isize, w0 + j as isize));
        by_lanes!(c, |ch, L| {
            let d: [[L; 4]; 4] = gather(x, &at, ch);
            put(v, &sandwich(&d, bt), |i, j| in_block(size, c, i * 4 + j, row) + ch);
        });
    }
}

/// Writes `Z = A dY Aᵀ` of tiles `tiles` into rows `0..` of a block (`block`'s layout)
/// (the outputs past the last row or column, which no tile computes, count as zero).
#[inline(always)]
fn transform_grad(
    geo: &ConvGeometry,
    grid: Tiles,
    dy: &[f32],
    tiles: Range<usize>,
    (z, size): (&mut [f32], usize),
) {
    let (f, (oh_n, ow_n)) = (geo.filters, (geo.rows.output, geo.cols.output));
    for (row, image, oh, ow) in grid.walk(tiles) {
        let at = offsets::<2>(|i, j| {
            (oh + i < oh_n && ow + j < ow_n).then(|| ((image * oh_n + oh + i) * ow_n + ow + j) * f)
        });
        by_lanes!(f, |fi, L| {
            let y: [[L; 2]; 2] = gather(dy, &at, fi);
            put(z, &sandwich(&y, a), |i, j| in_block(size, f, i * 4 + j, row) + fi);
        });
    }
}

/// `Y = Aᵀ M A` of block rows `0..` into the output tiles `tiles` (images from `first`).
#[inline(always)]
fn transform_output(
    geo: &ConvGeometry,
    grid: Tiles,
    (m, size): (&[f32], usize),
    tiles: Range<usize>,
    y: &mut [f32],
    first: usize,
) {
    let (f, (oh_n, ow_n)) = (geo.filters, (geo.rows.output, geo.cols.output));
    for (row, image, oh, ow) in grid.walk(tiles) {
        by_lanes!(f, |fi, L| {
            let m: [[L; 4]; 4] = tile(m, |i, j| in_block(size, f, i * 4 + j, row) + fi);
            for (i, out) in sandwich(&m, at).iter().enumerate() {
                for (j, value) in out.iter().enumerate() {
                    if oh + i < oh_n && ow + j < ow_n {
                        value.store(y, (((image - first) * oh_n + oh + i) * ow_n + ow + j) * f + fi);
                    }
                }
            }
        });
    }
}

/// Adds `B dV Bᵀ` of block rows `0..` into the input patches of tiles `tiles` (images from
/// `first`), leaving out the padding.
#[inline(always)]
fn scatter_input(
    geo: &ConvGeometry,
    grid: Tiles,
    (dv, size): (&[f32], usize),
    tiles: Range<usize>,
    dx: &mut [f32],
    first: usize,
) {
    let c = geo.channels;
    for (row, image, oh, ow) in grid.walk(tiles) {
        let (h0, w0) = patch_origin(geo, oh, ow);
        let at = offsets::<4>(|i, j| input_at(geo, image - first, h0 + i as isize, w0 + j as isize));
        by_lanes!(c, |ch, L| {
            let v: [[L; 4]; 4] = tile(dv, |i, j| in_block(size, c, i * 4 + j, row) + ch);
            for (out, at) in sandwich(&v, b).iter().zip(&at) {
                for (value, at) in out.iter().zip(at) {
                    if let Some(p) = at {
                        value.add_to(dx, p + ch);
                    }
                }
            }
        });
    }
}

/// `U = G g Gᵀ` of every channel pair of the `[3, 3, C, F]` kernel `k`, as 16 matrices
/// `C × F` (`u[ξ·C·F + c·F + f]`), or `F × C` when `transposed`.
#[inline(always)]
fn transform_kernel(geo: &ConvGeometry, k: &[f32], (u, rows): (&mut [f32], Range<usize>), transposed: bool) {
    let (c, f) = (geo.channels, geo.filters);
    // `u` holds the matrices of tile rows `rows` only.
    let at = |i: usize, j: usize| (i * 4 + j - rows.start * 4) * c * f;
    for ch in 0..c {
        by_lanes!(f, |fi, L| {
            let taps: [[L; 3]; 3] = tile(k, |i, j| ((i * 3 + j) * c + ch) * f + fi);
            let t = sandwich(&taps, g);
            for (i, row) in t.iter().enumerate().take(rows.end).skip(rows.start) {
                for (j, value) in row.iter().enumerate() {
                    if transposed {
                        for (l, v) in value.0.iter().enumerate() {
                            u[at(i, j) + (fi + l) * c + ch] = *v;
                        }
                    } else {
                        value.store(u, at(i, j) + ch * f + fi);
                    }
                }
            }
        });
    }
}

/// `transform_kernel` into all 16 matrices of `u`, the two halves (tile rows 0-1 and 2-3,
/// contiguous in `u`) on two threads when `parts > 1`: on one, it left the other core idle
/// for ~10 % of the 64 → 128 convolution's input gradient.
fn transform_kernel_on(
    isa: Isa,
    geo: &ConvGeometry,
    k: &[f32],
    u: &mut [f32],
    transposed: bool,
    parts: usize,
) {
    if parts < 2 {
        return on(isa, || transform_kernel(geo, k, (u, 0..4), transposed));
    }
    let (top, bottom) = u.split_at_mut(8 * geo.channels * geo.filters);
    crate::kernels::team::join(
        || on(isa, || transform_kernel(geo, k, (top, 0..2), transposed)),
        || on(isa, || transform_kernel(geo, k, (bottom, 2..4), transposed)),
    );
}

/// `dk = Gᵀ dU G` of the transformed kernel gradient `du` (16 matrices `C × F`).
#[inline(always)]
fn untransform_kernel_grad(
    geo: &ConvGeometry,
    (du, part): (&[f32], usize),
    dk: &mut [&mut [f32]; 9],
    channels: Range<usize>,
) {
    let (c, f, parts) = (geo.channels, geo.filters, du.len() / part.max(1));
    let acc_at = part - XI * c * f;
    for ch in channels.clone() {
        by_lanes!(f, |fi, L| {
            // The parts' transformed sums, added here rather than in a pass of their own.
            let mut u: [[L; 4]; 4] = tile(du, |i, j| acc_at + (i * 4 + j) * c * f + ch * f + fi);
            for p in 1..parts {
                let more: [[L; 4]; 4] =
                    tile(du, |i, j| p * part + acc_at + (i * 4 + j) * c * f + ch * f + fi);
                for (row, more) in u.iter_mut().zip(more) {
                    for (v, m) in row.iter_mut().zip(more) {
                        *v = *v + m;
                    }
                }
            }
            for (i, out) in sandwich(&u, gt).iter().enumerate() {
                for (j, value) in out.iter().enumerate() {
                    value.store(dk[i * 3 + j], (ch - channels.start) * f + fi);
                }
            }
        });
    }
}

/// The tile ranges of one block each that a run over `images` takes.
fn blocks(geo: &ConvGeometry, images: &Range<usize>) -> impl Iterator<Item = Range<usize>> {
    let per = Tiles::of(geo).per_image();
    let (first, last) = (images.start * per, images.end * per);
    // Blocks of equal size (64 tiles in blocks of 21 would leave a last product of 1 row).
    let count = (last - first).div_ceil(block_tiles(geo)).max(1);
    let size = (last - first).div_ceil(count).max(1);
    (first..last).step_by(size).map(move |t| t..(t + size).min(last))
}

/// `y = conv2d(x, k)`; `scratch` holds `shared_len + parts · part_len` elements.
pub(super) fn forward(
    isa: Isa,
    geo: &ConvGeometry,
    (x, k, y): (&[f32], &[f32], &mut [f32]),
    scratch: &mut [f32],
    parts: usize,
) -> Result<(), ConvError> {
    let (c, f, grid, size) = (geo.channels, geo.filters, Tiles::of(geo), block_tiles(geo));
    let (u, rest) = scratch.split_at_mut(shared_len(geo, ConvOp::Forward));
    transform_kernel_on(isa, geo, k, u, false, parts);
    let u = &*u;
    let out_per_image = geo.rows.output * geo.cols.output * f;
    let work = |images: Range<usize>, y: &mut [f32], part: &mut [f32]| {
        let (v, m) = part.split_at_mut(XI * size * c);
        for tiles in blocks(geo, &images) {
            let n = tiles.len();
            on(isa, || transform_input(geo, grid, x, tiles.clone(), (v, size)));
            gemm_batched(
                1.0,
                v,
                block(n, c, size),
                u,
                BatchLayout::row_major(XI, c, f),
                0.0,
                m,
                block(n, f, size),
                Parallelism::Sequential,
            )?;
            on(isa, || transform_output(geo, grid, (m, size), tiles, y, images.start));
        }
        Ok(())
    };
    let part = part_len(geo, ConvOp::Forward);
    split_images(0..geo.batch, parts, (&mut y[..geo.output_len()], out_per_image), (rest, part), &work)
}

/// `dx = conv2d_backprop_input(dy, k)`; `scratch` as `forward`'s.
pub(super) fn backprop_input(
    isa: Isa,
    geo: &ConvGeometry,
    (dy, k, dx): (&[f32], &[f32], &mut [f32]),
    scratch: &mut [f32],
    parts: usize,
) -> Result<(), ConvError> {
    let (c, f, grid, size) = (geo.channels, geo.filters, Tiles::of(geo), block_tiles(geo));
    let (ut, rest) = scratch.split_at_mut(shared_len(geo, ConvOp::BackpropInput));
    transform_kernel_on(isa, geo, k, ut, true, parts);
    let ut = &*ut;
    let image_len = geo.rows.input * geo.cols.input * c;
    let work = |images: Range<usize>, dx: &mut [f32], part: &mut [f32]| {
        dx.fill(0.0);
        let (z, dv) = part.split_at_mut(XI * size * f);
        for tiles in blocks(geo, &images) {
            let n = tiles.len();
            on(isa, || transform_grad(geo, grid, dy, tiles.clone(), (z, size)));
            gemm_batched(
                1.0,
                z,
                block(n, f, size),
                ut,
                BatchLayout::row_major(XI, f, c),
                0.0,
                dv,
                block(n, c, size),
                Parallelism::Sequential,
            )?;
            on(isa, || scatter_input(geo, grid, (dv, size), tiles, dx, images.start));
        }
        Ok(())
    };
    let part = part_len(geo, ConvOp::BackpropInput);
    split_images(0..geo.batch, parts, (&mut dx[..geo.input_len()], image_len), (rest, part), &work)
}

/// `dk = conv2d_backprop_filter(x, dy)`; `scratch` holds `parts · part_len` elements.
pub(super) fn backprop_filter(
    isa: Isa,
    geo: &ConvGeometry,
    (x, dy, dk): (&[f32], &[f32], &mut [f32]),
    scratch: &mut [f32],
    parts: usize,
) -> Result<(), ConvError> {
    let (c, f, grid, size) = (geo.channels, geo.filters, Tiles::of(geo), block_tiles(geo));
    let part = part_len(geo, ConvOp::BackpropFilter);
    let acc_len = XI * c * f;
    // Each part accumulates the transformed gradient into the last `acc_len` elements.
    let work = |images: Range<usize>, _: &mut [f32], part: &mut [f32]| {
        let (blocks_part, acc) = part.split_at_mut(part.len() - acc_len);
        let (v, z) = blocks_part.split_at_mut(XI * size * c);
        let mut beta = 0.0;
        for tiles in blocks(geo, &images) {
            let n = tiles.len();
            on(isa, || {
                transform_input(geo, grid, x, tiles.clone(), (v, size));
                transform_grad(geo, grid, dy, tiles, (z, size));
            });
            gemm_batched(
                1.0,
                v,
                block(n, c, size).t(),
                z,
                block(n, f, size),
                beta,
                acc,
                BatchLayout::row_major(XI, c, f),
                Parallelism::Sequential,
            )?;
            beta = 1.0;
        }
        if beta == 0.0 {
            acc.fill(0.0);
        }
        Ok(())
    };
    let scratch = &mut scratch[..part * parts];
    split_images(0..geo.batch, parts, (&mut [], 0), (scratch, part), &work)?;
    // dk's 9 taps, each `C × F`, cut at a middle channel: the halves go to two threads.
    let scratch = &*scratch;
    let mid = if parts > 1 { c / 2 } else { c };
    let (mut low, mut high): ([&mut [f32]; 9], [&mut [f32]; 9]) = Default::default();
    for ((low, high), tap) in
        low.iter_mut().zip(&mut high).zip(dk[..geo.kernel_len()].chunks_exact_mut(c * f))
    {
        (*low, *high) = tap.split_at_mut(mid * f);
    }
    let untransform = |dk: &mut [&mut [f32]; 9], channels: Range<usize>| {
        on(isa, || untransform_kernel_grad(geo, (scratch, part), dk, channels))
    };
    if mid < c {
        crate::kernels::team::join(|| untransform(&mut low, 0..mid), || untransform(&mut high, mid..c));
    } else {
        untransform(&mut low, 0..c);
    }
    Ok(())
}
