//! Row lookups on the host: `gather` (embedding lookup) and its gradient `scatter_add`,
//! reading and writing the step's buffers in place instead of through the reference
//! kernels' copies.
//!
//! A table `[V, ..rest]` is `V` rows of `width = prod(rest)` elements; `ids` holds `count`
//! i64 row numbers. An id outside `0..V` is the same kernel error the reference kernel
//! gives, and nothing is written past a buffer: every length is checked here.

use crate::ir::{NodeId, RunError};
use crate::ops::KernelError;
use crate::source::Span;

/// Where a row operation is, for its errors.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RowsSite {
    pub node: NodeId,
    pub span: Span,
}

fn row(id: i64, rows: usize, op: &'static str, site: RowsSite) -> Result<usize, RunError> {
    usize::try_from(id).ok().filter(|&r| r < rows).ok_or(RunError::Kernel {
        node: site.node,
        op: op.to_string(),
        span: site.span,
        error: KernelError::IdOutOfRange { op, id, rows },
    })
}

fn sizes(site: RowsSite, what: &str) -> RunError {
    RunError::InvalidGraph { node: site.node, message: format!("`{what}` operands of mismatched sizes") }
}

/// `out[i] = table[ids[i]]`, row by row.
pub(super) fn gather(
    table: &[f32],
    ids: &[i64],
    out: &mut [f32],
    width: usize,
    site: RowsSite,
) -> Result<(), RunError> {
    if width == 0 || !table.len().is_multiple_of(width) || out.len() != ids.len() * width {
        return if out.is_empty() { Ok(()) } else { Err(sizes(site, "gather")) };
    }
    let rows = table.len() / width;
    for (dst, &id) in out.chunks_exact_mut(width).zip(ids) {
        let r = row(id, rows, "gather", site)?;
        dst.copy_from_slice(&table[r * width..(r + 1) * width]);
    }
    Ok(())
}

/// `out = 0`, then `out[ids[i]] += g[i]` row by row.
pub(super) fn scatter_add(
    ids: &[i64],
    g: &[f32],
    out: &mut [f32],
    width: usize,
    site: RowsSite,
) -> Result<(), RunError> {
    out.fill(0.0);
    if width == 0 || !out.len().is_multiple_of(width) || g.len() != ids.len() * width {
        return if g.is_empty() { Ok(()) } else { Err(sizes(site, "scatter_add")) };
    }
    let rows = out.len() / width;
    for (src, &id) in g.chunks_exact(width).zip(ids) {
        let r = row(id, rows, "scatter_add", site)?;
        for (o, &x) in out[r * width..(r + 1) * width].iter_mut().zip(src) {
            *o += x;
        }
    }
    Ok(())
}
