//! Where a product may skip work because A is zero, for an A that is a batch of data
//! (`Operands::skip_zero_a`): data often has features that are zero throughout a batch.
//! In a batch of 32 MNIST images, 326 of the 784 pixels are zero in every image (the
//! borders and corners), so the first layer's product `X·W` and its weight gradient
//! `Xᵀ·dY` could do 42 % less work.
//!
//! - A row-major A (`X·W`): the depth is cut into blocks that leave out the runs of
//!   columns that are zero in every row this thread multiplies, so those steps, and the
//!   rows of B they would read, are never touched. Runs shorter than `MIN_ZERO_RUN` steps
//!   are computed: another depth block loads and stores every C tile again (a 16 × 128
//!   tile: about what 16 steps cost), so the edges between an image's rows do not pay,
//!   its blank top and bottom rows do.
//! - A transposed A (`Xᵀ·dY`, A's rows are X's columns): a 6-row panel of A that is zero
//!   throughout a depth block contributes nothing, so its tiles of C skip the kernel.
//!
//! This is for batches denser than a quarter: a sparser one never gets here, its thread
//! multiplying only its nonzeros (`gemm_sparse_a.rs`).
//!
//! A skipped step would add `0·b`, 0 for a finite `b`; the planner asks for this in
//! training steps, whose guard keeps every parameter and gradient finite, and in large
//! predictions once B is checked finite (`codegen::ZeroSkip`). The depth blocks
//! change where partial sums are stored, so C may differ from the plain product's in the
//! last bits.

/// Shortest run of zero columns worth a depth block of its own.
/// Measured on the MNIST MLP's steps, interleaved in one process: 4 no faster than not
/// skipping; 12, 24 and 48 5-9 % faster.
pub(super) const MIN_ZERO_RUN: usize = 24;

/// The depth blocks `(start, length)`, each at most `kc` long, of a row-major A's `rows`
/// rows (`row_stride` apart, `k` deep) that cover every column with a nonzero value; all
/// of `0..k` when fewer than an eighth of the columns are zero throughout, which dense
/// data shows within its first eight rows. `nonzero` is scratch.
pub(super) fn depth_blocks(
    a: &[f32],
    rows: usize,
    row_stride: usize,
    k: usize,
    kc: usize,
    nonzero: &mut Vec<bool>,
    blocks: &mut Vec<(usize, usize)>,
) {
    blocks.clear();
    let whole = |blocks: &mut Vec<(usize, usize)>| {
        blocks.extend((0..k).step_by(kc).map(|pc| (pc, kc.min(k - pc))));
    };
    nonzero.clear();
    nonzero.resize(k, false);
    let pays = |nonzero: &[bool]| 8 * nonzero.iter().filter(|&&nz| !nz).count() >= k;
    for i in 0..rows {
        let row = &a[i * row_stride..][..k];
        nonzero.iter_mut().zip(row).for_each(|(nz, &v)| *nz |= v != 0.0);
        if i % 8 == 7 && !pays(nonzero) {
            return whole(blocks);
        }
    }
    if !pays(nonzero) {
        return whole(blocks);
    }
    let mut p = 0;
    while p < k {
        // The next nonzero column starts a run; it ends before a gap of MIN_ZERO_RUN zeros.
        let Some(start) = (p..k).find(|&q| nonzero[q]) else { break };
        let mut end = start + 1;
        loop {
            let next = (end..k).find(|&q| nonzero[q]);
            match next {
                Some(q) if q - end < MIN_ZERO_RUN => end = q + 1,
                _ => break,
            }
        }
        blocks.extend((start..end).step_by(kc).map(|pc| (pc, kc.min(end - pc))));
        p = end;
    }
}

/// Whether rows `i0..i0 + rows` of a transposed A (element `(i, p)` at `i + p·step`) are
/// zero at every depth step `pc..pc + kc`.
pub(super) fn panel_is_zero(a: &[f32], step: usize, i0: usize, rows: usize, pc: usize, kc: usize) -> bool {
    (pc..pc + kc).all(|p| a[i0 + p * step..][..rows].iter().all(|&v| v == 0.0))
}
