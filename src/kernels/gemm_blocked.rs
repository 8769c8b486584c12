//! The cache-blocked matrix product behind `gemm.rs`: `C = alpha·A·B + beta·C` on views
//! that `gemm.rs` already checked (lengths, strides, an injective C).
//!
//! The loops are the classic ones (Goto and van de Geijn): the depth is cut into blocks
//! of `KC` steps; for each, B is read in panels of 16 columns and A packed in panels of 6
//! rows, `MC` rows at a time, and the 6 × 16 kernel of `gemm_micro.rs` runs over every pair
//! of panels. B is packed into zero-padded panels, except in a skinny product (at most 48
//! rows of A) whose contiguous B rows are read where they lie. The packing buffers are one
//! workspace per thread, allocated on its first product and reused afterwards, so a
//! training step's products allocate nothing once warm. Parallel products split C into
//! disjoint blocks of rows or of columns, written through raw views (`gemm_cview.rs`). A
//! product whose A is a batch of data multiplies only its nonzeros when at most a quarter
//! of it is nonzero (`gemm_sparse_a.rs`), and otherwise leaves out the depth steps and row
//! panels where the whole batch is zero (`gemm_zero_a.rs`).

use super::aligned::AlignedF32;
use super::gemm::{BlockDone, FinishedBlock, Layout};
use super::gemm_cview::CView;
use super::gemm_micro::{APanel, MR, NR, Tile, kernel, kernel_into, row_times_matrix, store_row};
use super::gemm_pack::pack_b;
use super::gemm_sparse_a::{self, Nonzeros};
use super::gemm_zero_a::{MIN_ZERO_RUN, depth_blocks, panel_is_zero};
use std::cell::RefCell;

/// Depth of one block: an A panel (6 × 256) and a B panel (256 × 16) stay in L1.
const KC: usize = 256;
/// Rows of A packed at once (16 panels, 96 KiB): they stay in L2 while B panels stream.
const MC: usize = 96;
/// Columns of B packed at once when it must be packed (256 KiB, half of L2).
const NC: usize = 256;
/// Fewest rows of B each thread streams when a one-row product splits its depth.
const MIN_DEPTH_HALF: usize = 64;
/// Fewest multiply-adds a one-row product splits (each half then streams 64 KiB of B).
const MIN_SPLIT_MACS: usize = 1 << 15;
/// Most rows of a training batch whose product with a weight splits its depth
/// (`split_batch_depth`): a batch of up to 64 samples.
const MAX_BATCH_ROWS: usize = 64;
/// Elements of the partial C a depth-split product holds per thread (64 KiB): 64 rows of
/// 256 columns.
const PARTIAL: usize = MAX_BATCH_ROWS * 256;

/// Packing buffers of one thread, and the depth blocks of its current product.
struct Workspace {
    a: AlignedF32,
    b: AlignedF32,
    /// Which depth steps of A hold a nonzero value (`gemm_zero_a.rs`).
    nonzero: Vec<bool>,
    /// The depth blocks `(start, length)` the product runs.
    blocks: Vec<(usize, usize)>,
    /// A sparse A's nonzeros (`gemm_sparse_a.rs`).
    nonzeros: Nonzeros,
    /// The worker's half of C in a depth-split product (`split_batch_depth`).
    partial: AlignedF32,
}

/// Depth that every thread's zero-skipping scratch holds from its start: a batch of up to
/// 16 K features never makes a step allocate, whichever thread first runs its product's
/// blocked path. (A worker that had only ever seen a sparse half, or whose halves the caller
/// had taken back while it was not yet running, sized its scratch in a later step: a rare
/// allocation in the warm steps of `tests/jit_alloc.rs`.)
const PREPARED_DEPTH: usize = 1 << 14;

impl Workspace {
    fn new() -> Workspace {
        Workspace {
            a: AlignedF32::zeros(MC * KC),
            b: AlignedF32::zeros(KC * NC),
            nonzero: Vec::with_capacity(PREPARED_DEPTH),
            blocks: Vec::with_capacity(block_capacity(PREPARED_DEPTH)),
            nonzeros: Nonzeros::prepared(),
            partial: AlignedF32::zeros(PARTIAL),
        }
    }
}

/// The most depth blocks of a product `k` deep: the whole blocks, plus one more per run of
/// nonzero columns that zero gaps cut off.
fn block_capacity(k: usize) -> usize {
    k / KC + k / (MIN_ZERO_RUN + 1) + 2
}

thread_local! {
    static WORKSPACE: RefCell<Option<Workspace>> = const { RefCell::new(None) };
}

/// Allocates this thread's packing buffers now, not in its first product (the team's
/// workers call it when they start, so that no training step allocates).
pub(crate) fn prepare_thread() {
    WORKSPACE.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            slot.get_or_insert_with(Workspace::new);
        }
    });
}

/// A checked product's operands.
#[derive(Copy, Clone)]
pub(crate) struct Operands<'a> {
    pub alpha: f32,
    pub beta: f32,
    pub a: &'a [f32],
    pub al: Layout,
    pub b: &'a [f32],
    pub bl: Layout,
    pub cl: Layout,
    /// Called on each finished block of C (`gemm::gemm_then`).
    pub done: Option<&'a BlockDone<'a>>,
    /// Where this part of C starts in the whole product's C (for `done`).
    pub row0: usize,
    pub col0: usize,
    /// A is a batch of data, B finite: skip the depth steps and row panels where A is
    /// zero (`gemm_zero_a.rs`).
    pub skip_zero_a: bool,
}

impl<'a> Operands<'a> {
    pub(crate) fn new(
        alpha: f32,
        a: &'a [f32],
        al: Layout,
        b: &'a [f32],
        bl: Layout,
        beta: f32,
        cl: Layout,
    ) -> Self {
        Operands { alpha, beta, a, al, b, bl, cl, done: None, row0: 0, col0: 0, skip_zero_a: false }
    }

    /// Reports rows `i0..i0 + rows` and columns `j0..j0 + cols` of this part of C, `c`, as
    /// final.
    pub(super) fn finished(&self, c: &mut CView<'_>, i0: usize, rows: usize, j0: usize, cols: usize) {
        let Some(done) = self.done else { return };
        let Layout { row_stride, col_stride, .. } = self.cl;
        let len =
            if rows == 0 || cols == 0 { 0 } else { (rows - 1) * row_stride + (cols - 1) * col_stride + 1 };
        let values = c.row(i0 * row_stride + j0 * col_stride, len);
        done(FinishedBlock {
            row: self.row0 + i0,
            rows,
            col: self.col0 + j0,
            cols,
            row_stride,
            col_stride,
            values,
        });
    }
}

/// Runs the product on up to `threads` threads of the team (`team.rs`).
pub(crate) fn product(ops: Operands<'_>, c: &mut [f32], threads: usize) {
    split_product(ops, CView::new(c), threads);
}

/// Splits C into two blocks, one per half of the threads, until one thread is left. Rows
/// split unless there are too few of them, or B is wider than A is tall and must be
/// packed: then each thread packs half of B instead of all of it (`dY·Wᵀ` of a 5408-wide
/// layer: measured 10-20 % faster on two threads). A B read in place splits by rows even
/// then: the column halves measured slower, each thread's A block no longer fitting in L1
/// beside the B panel. Split points are fixed by the shapes, so results do not depend on
/// timing (they may on the thread count, in the last bits: rows that fall in a 1- or 2-row
/// panel add in another order).
fn split_product(ops: Operands<'_>, mut c: CView<'_>, threads: usize) {
    let (m, n) = (ops.cl.rows, ops.cl.cols);
    if m == 0 || n == 0 {
        return;
    }
    // A depth split sums two partial rows after both finish: no block is final earlier.
    if threads >= 2 && streams_one_row(&ops) && ops.done.is_none() && split_depth(ops, &mut c) {
        return;
    }
    if threads >= 2 && ops.skip_zero_a && ops.done.is_none() && split_batch_depth(ops, &mut c) {
        return;
    }
    let (rows_ok, cols_ok) = (m >= 2 * MR, n >= 2 * NR);
    if threads >= 2 && (rows_ok || cols_ok) {
        let cl = ops.cl;
        // Each half no smaller than its share of the threads; columns at a panel boundary.
        let (at, (first, second)) = if cols_ok && (!rows_ok || (n > m && !reads_b_in_place(m, ops.bl))) {
            let split = (n * (threads / 2) / threads).div_ceil(NR) * NR;
            (split * cl.col_stride, split_cols(ops, split))
        } else {
            // Rows in proportion to the threads, not rounded to a panel: a 6-row panel costs
            // six times a 1-row one (the kernel waits on its multiply-adds), so the MLP's 32
            // rows split 18 / 14 kept the worker idle for a fifth of the product; 16 / 16
            // measured 8–18 % faster (5 interleaved runs, 32×784·784×128).
            let split = m * (threads / 2) / threads;
            (split * cl.row_stride, split_rows(ops, split))
        };
        // Safety: the halves write disjoint rows or columns of C, and C is injective
        // (`gemm.rs` checks it), so no element is written through both views.
        let (c_first, c_second) = unsafe { c.split_off(at) };
        super::team::join(
            || split_product(first, c_first, threads / 2),
            || split_product(second, c_second, threads - threads / 2),
        );
        return;
    }
    WORKSPACE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => sequential(ops, c, slot.get_or_insert_with(Workspace::new)),
        // Not reachable (a product never calls another), but a fresh workspace is correct.
        Err(_) => sequential(ops, c, &mut Workspace::new()),
    });
}

/// Whether the product is one row times a matrix whose rows are contiguous, written to a
/// contiguous C row (a batch-1 prediction's layer): `sequential` streams B once for it.
fn streams_one_row(ops: &Operands<'_>) -> bool {
    ops.al.rows == 1
        && ops.alpha == 1.0
        && ops.beta == 0.0
        && ops.bl.col_stride == 1
        && ops.cl.col_stride == 1
}

/// A one-row product on two threads, split along the depth: each thread streams a
/// contiguous half of B's rows into its own copy of the whole C row, and the caller adds
/// the worker's copy (kept in the caller's B packing buffer, unused by a one-row product)
/// to its own. Splitting the columns instead had each thread read every other 256 bytes
/// of every row, about 25 % slower per byte on one core than one contiguous stream; two
/// copies of C cost an add of `n` elements. Returns `false`, having done nothing, when the
/// product is too shallow or too wide to pay.
fn split_depth(ops: Operands<'_>, c: &mut CView<'_>) -> bool {
    let (k, n) = (ops.al.cols, ops.bl.cols);
    if k < 2 * MIN_DEPTH_HALF || k * n < MIN_SPLIT_MACS {
        return false;
    }
    WORKSPACE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else { return false };
        let ws = slot.get_or_insert_with(Workspace::new);
        let Some(partial) = ws.b.get_mut(..n) else { return false };
        let (first, second) = split_steps(ops, k / 2);
        let (a_step, b_step) = (ops.al.col_stride, ops.bl.row_stride);
        let mine = c.row(0, n);
        super::team::join(
            || row_times_matrix(first.al.cols, first.a, a_step, first.b, b_step, mine),
            || row_times_matrix(second.al.cols, second.a, a_step, second.b, b_step, partial),
        );
        for (c, p) in c.row(0, n).iter_mut().zip(partial.iter()) {
            *c += p;
        }
        true
    })
}

/// A training batch times a weight (`X·W`, few rows, A zero-skipped) on two threads, split
/// along the depth: each thread sums over half of W's rows, the caller into C and the worker
/// into its own partial C, which the caller then adds. The halves are those of the weight
/// gradient `Xᵀ·dY`, whose rows (W's rows) split the same way, and whose fused update each
/// thread runs on its half: so each core reads here only the rows of W it last wrote, from
/// its own L2, where a split by the batch's rows had both cores read all of W, half of it
/// from the other core's cache. Measured on the MNIST MLP (Zen 5, interleaved runs): epochs
/// 127-130 → 117-124 ms when the host is quiet, 236-238 → 199-203 ms when it is not.
/// Returns `false`, having done nothing, for other products.
fn split_batch_depth(ops: Operands<'_>, c: &mut CView<'_>) -> bool {
    let (m, k, n) = (ops.al.rows, ops.al.cols, ops.bl.cols);
    let plain = ops.alpha == 1.0 && ops.beta == 0.0 && ops.bl.col_stride == 1 && ops.cl.col_stride == 1;
    if m > MAX_BATCH_ROWS || m * n > PARTIAL || k < 2 * MIN_DEPTH_HALF || !plain || ops.cl.row_stride != n {
        return false;
    }
    // The partial C is the caller's, lent out of its workspace for the join (both halves
    // use their own thread's workspace meanwhile); a nested product finds it lent and
    // declines.
    let Some(mut partial) = WORKSPACE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        Some(std::mem::take(&mut slot.get_or_insert_with(Workspace::new).partial))
    }) else {
        return false;
    };
    let (first, mut second) = split_steps(ops, k / 2);
    second.cl = Layout::row_major(m, n);
    let lent = partial.len() >= m * n;
    if lent {
        let (mine, theirs) = (CView::new(c.row(0, m * n)), CView::new(&mut partial[..m * n]));
        super::team::join(|| split_product(first, mine, 1), || split_product(second, theirs, 1));
        for (out, add) in c.row(0, m * n).iter_mut().zip(&partial[..m * n]) {
            *out += add;
        }
    }
    WORKSPACE.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut()
            && let Some(ws) = slot.as_mut()
        {
            ws.partial = partial;
        }
    });
    lent
}

/// Depth steps `..split` and `split..`: A's columns and B's rows (both halves write all of
/// C; the caller adds them).
fn split_steps(ops: Operands<'_>, split: usize) -> (Operands<'_>, Operands<'_>) {
    let mut first = ops;
    first.al.cols = split;
    first.bl.rows = split;
    let mut second = ops;
    second.a = &ops.a[(split * ops.al.col_stride).min(ops.a.len())..];
    second.b = &ops.b[(split * ops.bl.row_stride).min(ops.b.len())..];
    second.al.cols -= split;
    second.bl.rows -= split;
    (first, second)
}

/// Rows `..split` and `split..` of A and C.
fn split_rows(ops: Operands<'_>, split: usize) -> (Operands<'_>, Operands<'_>) {
    let mut first = ops;
    first.al.rows = split;
    first.cl.rows = split;
    let mut second = ops;
    second.a = &ops.a[(split * ops.al.row_stride).min(ops.a.len())..];
    second.al.rows -= split;
    second.cl.rows -= split;
    second.row0 += split;
    (first, second)
}

/// Columns `..split` and `split..` of B and C.
fn split_cols(ops: Operands<'_>, split: usize) -> (Operands<'_>, Operands<'_>) {
    let mut first = ops;
    first.bl.cols = split;
    first.cl.cols = split;
    let mut second = ops;
    second.b = &ops.b[(split * ops.bl.col_stride).min(ops.b.len())..];
    second.bl.cols -= split;
    second.cl.cols -= split;
    second.col0 += split;
    (first, second)
}

fn sequential(ops: Operands<'_>, mut c: CView<'_>, ws: &mut Workspace) {
    let Operands { alpha, beta, a, al, b, bl, cl, .. } = ops;
    let (m, k, n) = (al.rows, al.cols, bl.cols);
    if k == 0 {
        scale(&mut c, cl, beta);
        ops.finished(&mut c, 0, m, 0, n);
        return;
    }
    // A sparse batch: each thread's rows from their nonzeros alone.
    if ops.skip_zero_a && gemm_sparse_a::product(&ops, &mut c, &mut ws.nonzeros) {
        return;
    }
    if streams_one_row(&ops) {
        // One row (a batch-1 prediction): B streams once, no packing.
        row_times_matrix(k, a, al.col_stride, b, bl.row_stride, c.row(0, n));
        ops.finished(&mut c, 0, 1, 0, n);
        return;
    }
    // A is read where it lies when each step's six values are adjacent (a transposed A,
    // the weight gradient's Xᵀ) or its rows are contiguous and not 4 KiB apart (so six row
    // streams do not fight over a few L1 sets): packing would copy what the kernel can
    // already load cheaply.
    let direct_a = al.row_stride == 1 || (al.col_stride == 1 && al.row_stride % 1024 != 0);
    // Taken out of the workspace while the packing buffers are borrowed, then put back;
    // its capacity, reserved on the first product, is reused.
    let mut blocks = std::mem::take(&mut ws.blocks);
    blocks.reserve(block_capacity(k));
    if ops.skip_zero_a && al.col_stride == 1 && al.row_stride != 1 {
        depth_blocks(a, m, al.row_stride, k, KC, &mut ws.nonzero, &mut blocks);
    } else {
        blocks.clear();
        blocks.extend((0..k).step_by(KC).map(|pc| (pc, KC.min(k - pc))));
    }
    if blocks.is_empty() {
        // A is zero throughout: C = beta·C.
        scale(&mut c, cl, beta);
        ops.finished(&mut c, 0, m, 0, n);
    }
    // A transposed A's zero panels skip the kernel (`gemm_zero_a.rs`).
    let zero_panels = ops.skip_zero_a && al.row_stride == 1;
    let mut tile: Tile = [[0.0; NR]; MR];
    for (block, &(pc, kc)) in blocks.iter().enumerate() {
        // Later depth blocks add to what the first one stored.
        let (first, last) = (block == 0, block + 1 == blocks.len());
        let beta = if first { beta } else { 1.0 };
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            let direct = reads_b_in_place(m, bl);
            if !direct {
                for q in 0..nc.div_ceil(NR) {
                    pack_b(b, bl, pc, kc, jc + q * NR, &mut ws.b[q * kc * NR..(q + 1) * kc * NR]);
                }
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                let mut zero = [false; MC / MR];
                if zero_panels {
                    for (r, z) in zero.iter_mut().enumerate().take(mc.div_ceil(MR)) {
                        let i0 = ic + r * MR;
                        *z = panel_is_zero(a, al.col_stride, i0, MR.min(m - i0), pc, kc);
                    }
                }
                if !direct_a {
                    for r in 0..mc.div_ceil(MR) {
                        pack_a(a, al, ic + r * MR, pc, kc, &mut ws.a[r * kc * MR..(r + 1) * kc * MR]);
                    }
                }
                for q in 0..nc.div_ceil(NR) {
                    let j0 = jc + q * NR;
                    let cols = NR.min(n - j0);
                    let (panel, stride): (&[f32], usize) = if !direct {
                        (&ws.b[q * kc * NR..(q + 1) * kc * NR], NR)
                    } else if cols == NR {
                        (&b[pc * bl.row_stride + j0..], bl.row_stride)
                    } else {
                        // The ragged last panel, packed once per row block (it is narrow).
                        pack_b(b, bl, pc, kc, j0, &mut ws.b[..kc * NR]);
                        (&ws.b[..kc * NR], NR)
                    };
                    for (r, &zero_panel) in zero.iter().enumerate().take(mc.div_ceil(MR)) {
                        let i0 = ic + r * MR;
                        let rows = MR.min(m - i0);
                        if zero_panel {
                            // A zero panel adds nothing; the first block still sets beta·C.
                            if first {
                                store(&[[0.0; NR]; MR], rows, cols, i0, j0, alpha, beta, &mut c, cl);
                            }
                            continue;
                        }
                        let a_panel = if direct_a {
                            let start = i0 * al.row_stride + pc * al.col_stride;
                            APanel { data: &a[start..], step: al.col_stride, row: al.row_stride }
                        } else {
                            APanel::packed(&ws.a[r * kc * MR..(r + 1) * kc * MR])
                        };
                        if cols == NR && cl.col_stride == 1 {
                            let c_tile = c.block(i0 * cl.row_stride + j0, rows, cl.row_stride, NR);
                            // Safety: the block was checked to lie in the view, and its
                            // elements are this product's block of C (see `CView`).
                            unsafe {
                                kernel_into(
                                    kc,
                                    a_panel,
                                    panel,
                                    stride,
                                    rows,
                                    c_tile,
                                    cl.row_stride,
                                    alpha,
                                    beta,
                                )
                            };
                        } else {
                            kernel(kc, a_panel, panel, stride, rows, &mut tile);
                            store(&tile, rows, cols, i0, j0, alpha, beta, &mut c, cl);
                        }
                    }
                }
                if last {
                    // The last depth block: these rows of the column block are final.
                    ops.finished(&mut c, ic, mc, jc, nc);
                }
            }
        }
    }
    ws.blocks = blocks;
}

/// Whether a product of `m` rows reads B where it lies rather than packing it. Reading B
/// in place saves a copy that a short A (a training batch) cannot amortize; a long A reuses
/// each panel many times, and packing keeps it in L1 instead of thrashing a few of its sets
/// when rows lie 4 KiB apart.
fn reads_b_in_place(m: usize, bl: Layout) -> bool {
    bl.col_stride == 1 && m <= 8 * MR && !bl.row_stride.is_multiple_of(1024)
}

/// Packs rows `i0..i0 + 6` (those that exist) of A, depth `pc..pc + kc`, step-major.
fn pack_a(a: &[f32], al: Layout, i0: usize, pc: usize, kc: usize, out: &mut [f32]) {
    let rows = MR.min(al.rows - i0);
    let out = &mut out[..kc * MR];
    let start = |i: usize| (i0 + i) * al.row_stride + pc * al.col_stride;
    if al.col_stride == 1 && rows == MR {
        // A row-major A, a full panel: six contiguous rows read side by side.
        let r: [&[f32]; MR] = std::array::from_fn(|i| &a[start(i)..start(i) + kc]);
        for (p, step) in out.chunks_exact_mut(MR).enumerate() {
            *step.as_mut_array::<MR>().unwrap_or(&mut [0.0; MR]) = std::array::from_fn(|i| r[i][p]);
        }
        return;
    }
    if al.row_stride == 1 && rows == MR {
        // A transposed A (the weight gradient's Xᵀ): each step's six values are adjacent.
        for (p, step) in out.chunks_exact_mut(MR).enumerate() {
            let at = start(0) + p * al.col_stride;
            step.copy_from_slice(&a[at..at + MR]);
        }
        return;
    }
    for i in 0..rows {
        for p in 0..kc {
            out[p * MR + i] = a[start(i) + p * al.col_stride];
        }
    }
}

/// `C[i0 + i, j0 + j] = alpha·tile[i][j] + beta·C[..]`, C only written when `beta == 0`.
#[allow(clippy::too_many_arguments)]
fn store(
    tile: &Tile,
    rows: usize,
    cols: usize,
    i0: usize,
    j0: usize,
    alpha: f32,
    beta: f32,
    c: &mut CView<'_>,
    cl: Layout,
) {
    for (i, t) in tile.iter().enumerate().take(rows) {
        let base = (i0 + i) * cl.row_stride + j0 * cl.col_stride;
        if cl.col_stride == 1 {
            store_row(t, c.row(base, cols), alpha, beta);
        } else {
            for (j, &v) in t.iter().enumerate().take(cols) {
                let o = c.at(base + j * cl.col_stride);
                *o = if beta == 0.0 { alpha * v } else { alpha * v + beta * *o };
            }
        }
    }
}

/// `C = beta·C` (an empty depth); with `beta == 0`, zeros.
fn scale(c: &mut CView<'_>, cl: Layout, beta: f32) {
    for i in 0..cl.rows {
        for j in 0..cl.cols {
            let o = c.at(i * cl.row_stride + j * cl.col_stride);
            *o = if beta == 0.0 { 0.0 } else { beta * *o };
        }
    }
}
