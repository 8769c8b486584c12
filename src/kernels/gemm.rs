//! A safe f32 matrix product, `C = alpha·A·B + beta·C`: the views and their checks here,
//! the blocked loops in `gemm_blocked.rs`, the register kernel in `gemm_micro.rs`.
//!
//! Every operand is a strided view: element `(i, j)` of a view lives at
//! `data[i·row_stride + j·col_stride]`, so a transposed operand is the same buffer with its
//! strides swapped (`MatRef::t`), never a copy. Invariants the views enforce on construction:
//! the slice is long enough for every element the view addresses (an error, not a panic),
//! strides fit in `isize`, and an output view never addresses one element twice (so writes
//! cannot race or alias). Input views may use zero strides (a broadcast row or column).
//!
//! The arguments are BLAS's: `beta = 0` means C is write-only and NaNs already in it vanish.

use super::gemm_blocked::Operands;
use thiserror::Error;

/// An error in the operands of a matrix product.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GemmError {
    #[error(
        "{operand}: a {rows}×{cols} view with strides ({row_stride}, {col_stride}) needs {needed} \
         elements, the slice has {len}"
    )]
    SliceTooShort {
        operand: &'static str,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
        needed: usize,
        len: usize,
    },
    #[error(
        "{operand}: a {rows}×{cols} view with strides ({row_stride}, {col_stride}) overflows the address space"
    )]
    StrideOverflow { operand: &'static str, rows: usize, cols: usize, row_stride: usize, col_stride: usize },
    #[error(
        "output: strides ({row_stride}, {col_stride}) make a {rows}×{cols} view address some \
         element twice"
    )]
    OverlappingOutput { rows: usize, cols: usize, row_stride: usize, col_stride: usize },
    #[error("shape mismatch: A is {a_rows}×{a_cols}, B is {b_rows}×{b_cols}, C is {c_rows}×{c_cols}")]
    ShapeMismatch { a_rows: usize, a_cols: usize, b_rows: usize, b_cols: usize, c_rows: usize, c_cols: usize },
    #[error("batch mismatch: A has {a}, B has {b}, C has {c} matrices")]
    BatchMismatch { a: usize, b: usize, c: usize },
    #[error("output batch stride {batch_stride} makes batch matrices overlap (each spans {span} elements)")]
    OverlappingBatches { batch_stride: usize, span: usize },
}

/// How many threads a product may use.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Parallelism {
    /// The calling thread only (the right choice for the small products of a training step).
    #[default]
    Sequential,
    /// Up to `n` threads of the kernels' team (`0` = one per core).
    Threads(usize),
}

impl Parallelism {
    fn threads(self) -> usize {
        match self {
            Parallelism::Sequential => 1,
            Parallelism::Threads(0) => super::team::size(),
            Parallelism::Threads(n) => n,
        }
    }
}

/// The shape and strides of a strided matrix view, without its data.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Layout {
    /// A dense row-major `rows × cols` layout.
    pub fn row_major(rows: usize, cols: usize) -> Layout {
        Layout { rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The same elements seen transposed.
    pub fn t(self) -> Layout {
        Layout { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride }
    }

    /// One past the largest offset the view addresses (0 for an empty view), or `None` on
    /// overflow of `isize`.
    fn span(&self) -> Option<usize> {
        if self.rows == 0 || self.cols == 0 {
            return Some(0);
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)?
            .checked_add((self.cols - 1).checked_mul(self.col_stride)?)?;
        let span = last.checked_add(1)?;
        (span <= isize::MAX as usize).then_some(span)
    }

    fn check(&self, operand: &'static str, len: usize) -> Result<(), GemmError> {
        let Layout { rows, cols, row_stride, col_stride } = *self;
        let overflow = GemmError::StrideOverflow { operand, rows, cols, row_stride, col_stride };
        let needed = self.span().ok_or(overflow.clone())?;
        if row_stride > isize::MAX as usize || col_stride > isize::MAX as usize {
            return Err(overflow);
        }
        if needed > len {
            return Err(GemmError::SliceTooShort {
                operand,
                rows,
                cols,
                row_stride,
                col_stride,
                needed,
                len,
            });
        }
        Ok(())
    }

    /// True when distinct `(i, j)` map to distinct offsets. The test is sufficient, not
    /// necessary: one stride must step over the whole extent of the other axis.
    fn is_injective(&self) -> bool {
        let Layout { rows, cols, row_stride, col_stride } = *self;
        if rows == 0 || cols == 0 {
            return true;
        }
        let rows_ok = rows <= 1 || row_stride >= 1;
        let cols_ok = cols <= 1 || col_stride >= 1;
        let nested = rows <= 1
            || cols <= 1
            || row_stride >= cols.saturating_mul(col_stride)
            || col_stride >= rows.saturating_mul(row_stride);
        rows_ok && cols_ok && nested
    }
}

/// A read-only strided matrix view.
#[derive(Copy, Clone, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    layout: Layout,
}

impl<'a> MatRef<'a> {
    /// A view with the given layout; errors if `data` is too short for it.
    pub fn new(data: &'a [f32], layout: Layout) -> Result<MatRef<'a>, GemmError> {
        layout.check("input", data.len())?;
        Ok(MatRef { data, layout })
    }

    /// A dense row-major view; errors if `data` holds fewer than `rows·cols` elements.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<MatRef<'a>, GemmError> {
        MatRef::new(data, Layout::row_major(rows, cols))
    }

    /// The transposed view of the same data.
    pub fn t(self) -> MatRef<'a> {
        MatRef { data: self.data, layout: self.layout.t() }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// A writable strided matrix view whose elements are distinct.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    layout: Layout,
}

impl<'a> MatMut<'a> {
    /// A view with the given layout; errors if `data` is too short or the strides would
    /// address an element twice.
    pub fn new(data: &'a mut [f32], layout: Layout) -> Result<MatMut<'a>, GemmError> {
        layout.check("output", data.len())?;
        if !layout.is_injective() {
            let Layout { rows, cols, row_stride, col_stride } = layout;
            return Err(GemmError::OverlappingOutput { rows, cols, row_stride, col_stride });
        }
        Ok(MatMut { data, layout })
    }

    /// A dense row-major view; errors if `data` holds fewer than `rows·cols` elements.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<MatMut<'a>, GemmError> {
        MatMut::new(data, Layout::row_major(rows, cols))
    }

    /// The transposed view of the same data.
    pub fn t(self) -> MatMut<'a> {
        MatMut { data: self.data, layout: self.layout.t() }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }
}

fn check_shapes(a: Layout, b: Layout, c: Layout) -> Result<(), GemmError> {
    if a.cols != b.rows || a.rows != c.rows || b.cols != c.cols {
        return Err(GemmError::ShapeMismatch {
            a_rows: a.rows,
            a_cols: a.cols,
            b_rows: b.rows,
            b_cols: b.cols,
            c_rows: c.rows,
            c_cols: c.cols,
        });
    }
    Ok(())
}

/// `C = alpha·A·B + beta·C`. With `beta == 0`, C is only written.
pub fn gemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    parallelism: Parallelism,
) -> Result<(), GemmError> {
    check_shapes(a.layout, b.layout, c.layout)?;
    gemm_unchecked_shapes(alpha, a.data, a.layout, b.data, b.layout, beta, c.data, c.layout, parallelism);
    Ok(())
}

/// `C = A·B` like [`gemm_then`] (`done` called on each finished block when given), for an
/// A that is a batch of data and a finite B: only A's nonzeros are multiplied when at most
/// a quarter of it is nonzero (`gemm_sparse_a.rs`), else the depth steps and row panels
/// where A is zero are skipped (`gemm_zero_a.rs`). C may differ from [`gemm`]'s in the
/// last bits.
pub fn gemm_skipping_zero_a(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: MatMut<'_>,
    parallelism: Parallelism,
    done: Option<&BlockDone<'_>>,
) -> Result<(), GemmError> {
    product_then(a, b, c, parallelism, done, true)
}

/// `C = A·B` on checked views, `done` called on each finished block when given.
fn product_then(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: MatMut<'_>,
    parallelism: Parallelism,
    done: Option<&BlockDone<'_>>,
    skip_zero_a: bool,
) -> Result<(), GemmError> {
    check_shapes(a.layout, b.layout, c.layout)?;
    let ops = Operands::new(1.0, a.data, a.layout, b.data, b.layout, 0.0, c.layout);
    super::gemm_blocked::product(Operands { done, skip_zero_a, ..ops }, c.data, parallelism.threads());
    Ok(())
}

/// A block of C holding its final values, as [`gemm_then`] reports it: rows
/// `row..row + rows` and columns `col..col + cols` of C, element `(i, j)` of the block at
/// `values[i·row_stride + j·col_stride]`.
pub struct FinishedBlock<'c> {
    pub row: usize,
    pub rows: usize,
    pub col: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub values: &'c [f32],
}

/// What [`gemm_then`] calls on each finished block of C.
pub type BlockDone<'a> = dyn Fn(FinishedBlock<'_>) + Sync + 'a;

/// `C = A·B` like [`gemm`] (alpha 1, beta 0), calling `done` on each block of C as soon as
/// its last value is stored, while the block is still in cache: the blocks cover C once,
/// disjoint, each reported by the thread that wrote it (several threads at once).
pub fn gemm_then(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: MatMut<'_>,
    parallelism: Parallelism,
    done: &BlockDone<'_>,
) -> Result<(), GemmError> {
    product_then(a, b, c, parallelism, Some(done), false)
}

/// Runs the blocked product on views whose lengths, strides and shapes were validated.
#[allow(clippy::too_many_arguments)]
fn gemm_unchecked_shapes(
    alpha: f32,
    a: &[f32],
    al: Layout,
    b: &[f32],
    bl: Layout,
    beta: f32,
    c: &mut [f32],
    cl: Layout,
    parallelism: Parallelism,
) {
    let ops = Operands::new(alpha, a, al, b, bl, beta, cl);
    super::gemm_blocked::product(ops, c, parallelism.threads());
}

/// A stack of `batch` matrices sharing one layout, matrix `i` starting at `i·batch_stride`.
/// A batch stride of 0 repeats one matrix for every batch element (inputs only).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchLayout {
    pub batch: usize,
    pub batch_stride: usize,
    pub matrix: Layout,
}

impl BatchLayout {
    /// `batch` dense row-major `rows × cols` matrices stored one after another.
    pub fn row_major(batch: usize, rows: usize, cols: usize) -> BatchLayout {
        BatchLayout { batch, batch_stride: rows * cols, matrix: Layout::row_major(rows, cols) }
    }

    /// The same stack with every matrix transposed.
    pub fn t(self) -> BatchLayout {
        BatchLayout { matrix: self.matrix.t(), ..self }
    }

    /// Checks that matrix `batch - 1` fits in `len` elements.
    fn check(&self, operand: &'static str, len: usize) -> Result<(), GemmError> {
        let Layout { rows, cols, row_stride, col_stride } = self.matrix;
        let span = self.matrix.span().ok_or(GemmError::StrideOverflow {
            operand,
            rows,
            cols,
            row_stride,
            col_stride,
        })?;
        if self.batch == 0 || span == 0 {
            return self.matrix.check(operand, len);
        }
        let start = (self.batch - 1)
            .checked_mul(self.batch_stride)
            .filter(|s| s.checked_add(span).is_some_and(|e| e <= isize::MAX as usize))
            .ok_or(GemmError::StrideOverflow { operand, rows, cols, row_stride, col_stride })?;
        self.matrix.check(operand, len.saturating_sub(start)).map_err(|e| match e {
            GemmError::SliceTooShort { needed, .. } => GemmError::SliceTooShort {
                operand,
                rows,
                cols,
                row_stride,
                col_stride,
                needed: start + needed,
                len,
            },
            other => other,
        })
    }
}

/// `C[i] = alpha·A[i]·B[i] + beta·C[i]` for every `i` of the batch. Each product runs with
/// `parallelism`; the batch loop itself is sequential.
#[allow(clippy::too_many_arguments)]
pub fn gemm_batched(
    alpha: f32,
    a: &[f32],
    a_layout: BatchLayout,
    b: &[f32],
    b_layout: BatchLayout,
    beta: f32,
    c: &mut [f32],
    c_layout: BatchLayout,
    parallelism: Parallelism,
) -> Result<(), GemmError> {
    let (al, bl, cl) = (a_layout.matrix, b_layout.matrix, c_layout.matrix);
    if a_layout.batch != c_layout.batch || b_layout.batch != c_layout.batch {
        return Err(GemmError::BatchMismatch { a: a_layout.batch, b: b_layout.batch, c: c_layout.batch });
    }
    check_shapes(al, bl, cl)?;
    a_layout.check("A", a.len())?;
    b_layout.check("B", b.len())?;
    c_layout.check("C", c.len())?;
    if !cl.is_injective() {
        let Layout { rows, cols, row_stride, col_stride } = cl;
        return Err(GemmError::OverlappingOutput { rows, cols, row_stride, col_stride });
    }
    let span = cl.span().unwrap_or(usize::MAX);
    if c_layout.batch > 1 && span > 0 && c_layout.batch_stride < span {
        return Err(GemmError::OverlappingBatches { batch_stride: c_layout.batch_stride, span });
    }
    for i in 0..c_layout.batch {
        let a_i = &a[(i * a_layout.batch_stride).min(a.len())..];
        let b_i = &b[(i * b_layout.batch_stride).min(b.len())..];
        let c_start = (i * c_layout.batch_stride).min(c.len());
        gemm_unchecked_shapes(alpha, a_i, al, b_i, bl, beta, &mut c[c_start..], cl, parallelism);
    }
    Ok(())
}

#[cfg(test)]
#[path = "gemm_tests.rs"]
mod tests;
