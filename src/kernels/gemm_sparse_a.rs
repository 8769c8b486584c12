//! A product whose A is a sparse batch of data (`Operands::skip_zero_a`): row `i` of C is
//! the sum of B's rows `p`, each scaled by A's nonzero `A(i, p)`, so the zeros of A cost
//! nothing at all. A batch of MNIST images is 19 % nonzero on average (a digit covers a
//! fifth of its 28 × 28 pixels, each image a different fifth), while only the 42 % of
//! columns that are zero in every image of the batch can be skipped by the blocked product
//! (`gemm_zero_a.rs`): the first layer's `X·W` and `Xᵀ·dY` multiply-add 4800 B rows here
//! instead of 14 600 to 25 000 depth steps of 6 × 16 tiles.
//!
//! A row's nonzeros are gathered first, as (column, value) lists for the thread's rows of
//! C, eight values at a time packed by a table of lane shuffles (sixteen by the compress
//! instruction where the CPU has AVX-512; no branch per value): straight along a row-major
//! A (`X`); a transposed one (`Xᵀ`, whose rows are X's columns) is transposed back eight
//! rows at a time into an L1-sized tile first. The sums then read B's rows, 64 columns at a
//! time held in registers (128 where the CPU has AVX-512: sixteen lanes), and rows of C are
//! reported finished 48 at a time, so that an update fused with the product finds them in
//! cache.
//!
//! Denser than [`MAX_DENSITY`] (a quarter of A's elements), the blocked product is faster
//! and this gives up before computing anything. As for every skip of A's zeros, a skipped
//! product `0·b` is 0 only for a finite `b`: the planner asks for this in training steps,
//! whose guard keeps every parameter and gradient finite, and in large predictions once B
//! is checked finite (`codegen::ZeroSkip`). Each sum adds in order of the
//! depth, so C may differ from the blocked product's in the last bits.

use super::gemm::Layout;
use super::gemm_blocked::Operands;
use super::gemm_cview::CView;

/// The densest A computed here, in nonzeros per element: a quarter. A nonzero costs a B row
/// of multiply-adds with B's row loaded from cache, one depth step of the blocked product
/// about a sixth of that per row of A, but the blocked product reaches only a third to a
/// half of the FMA units' peak on a training batch.
pub(super) const MAX_DENSITY: (usize, usize) = (1, 4);

/// Entries every thread's lists hold from its start (`Nonzeros::prepared`): enough for
/// the MNIST MLP's products, 16 × 784 and 392 × 32 per thread, so that which thread
/// first runs which half of a product never decides whether a later step allocates.
const PREPARED: usize = 1 << 14;

/// Rows of C reported finished at a time: the fused optimizer update then reads them from
/// L1 or L2 (48 rows of 128 columns: 24 KiB).
const FINISH_ROWS: usize = 48;

/// The nonzeros of a thread's rows of A, reused from product to product: row `i`'s are at
/// `cols[starts[i]..starts[i + 1]]` and `values[..]`, in order of their column.
pub(super) struct Nonzeros {
    starts: Vec<usize>,
    cols: Vec<u32>,
    values: Vec<f32>,
    /// Eight rows of a transposed A, transposed back (rows contiguous) before their nonzeros
    /// are gathered.
    transposed: Vec<f32>,
    /// The rows and depth of the view last gathered, when its gather succeeded.
    shape: Option<(usize, usize)>,
}

impl Nonzeros {
    /// Empty lists, with room for [`PREPARED`] entries and rows.
    pub(super) fn prepared() -> Nonzeros {
        Nonzeros {
            starts: Vec::with_capacity(PREPARED),
            cols: vec![0; PREPARED],
            values: vec![0.0; PREPARED],
            transposed: vec![0.0; PREPARED],
            shape: None,
        }
    }

    /// Row `i`'s nonzeros: their columns and values.
    fn of(&self, i: usize) -> (&[u32], &[f32]) {
        let (start, end) = (self.starts[i], self.starts[i + 1]);
        (&self.cols[start..end], &self.values[start..end])
    }

    /// Whether the lists hold `rows` rows whose every nonzero lies in a column below
    /// `depth`: true after a successful gather of a view of that shape, since `compress`
    /// writes only positions inside the row it reads. (Checking each nonzero instead, one
    /// compare and branch apiece, took about a microsecond of each of the MNIST MLP's
    /// sparse products; debug builds still do.)
    fn hold(&self, rows: usize, depth: usize) -> bool {
        let holds = self.shape == Some((rows, depth));
        debug_assert!(
            !holds || self.cols[self.starts[0]..self.starts[rows]].iter().all(|&p| (p as usize) < depth)
        );
        holds
    }

    /// Gathers the nonzeros of `a` seen through `al`; `false`, with the lists unusable, when
    /// there are more than `budget`. The lists are sized for the whole budget at once, so
    /// that a later batch with more nonzeros than the first never allocates.
    fn gather(&mut self, a: &[f32], al: Layout, budget: usize) -> bool {
        let Layout { rows, cols: depth, row_stride, col_stride } = al;
        self.shape = None;
        if depth > u32::MAX as usize || rows > u32::MAX as usize {
            return false;
        }
        self.starts.clear();
        self.starts.reserve(rows + 1);
        // Room for a whole row past the budget, and for the eight values a chunk writes.
        let room = budget + depth + 8;
        grow(&mut self.cols, room);
        grow(&mut self.values, room);
        self.starts.push(0);
        let gathered = if row_stride == 1 && col_stride != 1 {
            self.gather_down_columns(a, al, budget)
        } else {
            (0..rows).all(|i| {
                let row_start = i * row_stride;
                if col_stride == 1 {
                    self.push_row(&a[row_start..row_start + depth], budget)
                } else {
                    let mut len = self.len();
                    for p in 0..depth {
                        let v = a[row_start + p * col_stride];
                        (self.cols[len], self.values[len]) = (p as u32, v);
                        len += usize::from(v != 0.0);
                    }
                    self.starts.push(len);
                    len <= budget
                }
            })
        };
        if gathered {
            self.shape = Some((rows, depth));
        }
        gathered
    }

    /// The number of nonzeros gathered so far.
    fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Appends the nonzeros of one contiguous row; `false` once the lists hold more than
    /// `budget`.
    fn push_row(&mut self, row: &[f32], budget: usize) -> bool {
        let len = self.len();
        let len = compress(row, &mut self.cols, &mut self.values, len);
        self.starts.push(len);
        len <= budget
    }

    /// `gather` for a transposed A (`A(i, p)` at `i + p·col_stride`, the weight gradient's
    /// `Xᵀ`): eight rows at a time transposed into an L1-sized tile (8 × 8 blocks), whose
    /// rows are then gathered. (Transposing the whole of A first wrote and read back a copy
    /// of it, 50 KB a thread in the MNIST MLP; placing the nonzeros of each depth step into
    /// rows by a counting sort took three times as long: its scattered stores and counter
    /// updates stalled on each other.)
    fn gather_down_columns(&mut self, a: &[f32], al: Layout, budget: usize) -> bool {
        let Layout { rows, cols: depth, col_stride, .. } = al;
        let mut tile = std::mem::take(&mut self.transposed);
        grow(&mut tile, TILE_ROWS * depth);
        let gathered = (0..rows).step_by(TILE_ROWS).all(|i0| {
            let height = TILE_ROWS.min(rows - i0);
            let block = Layout { rows: height, cols: depth, row_stride: 1, col_stride };
            transpose(a.get(i0..).unwrap_or(&[]), block, &mut tile[..height * depth]);
            (0..height).all(|r| self.push_row(&tile[r * depth..(r + 1) * depth], budget))
        });
        self.transposed = tile;
        gathered
    }
}

/// Rows of a transposed A transposed back at a time (`Nonzeros::gather_down_columns`): one
/// 8 × 8 block high.
const TILE_ROWS: usize = 8;

/// `out[i·cols + p] = A(i, p)` for a transposed A (`row_stride == 1`): 8 × 8 tiles, each
/// eight contiguous loads and eight contiguous stores, then the ragged edges one by one.
fn transpose(a: &[f32], al: Layout, out: &mut [f32]) {
    let Layout { rows, cols, col_stride, .. } = al;
    assert!(al.row_stride == 1 && out.len() >= rows * cols);
    assert!(rows == 0 || cols == 0 || a.len() > (rows - 1) + (cols - 1) * col_stride, "A of {}", a.len());
    let (full_rows, full_cols) = (rows / 8 * 8, cols / 8 * 8);
    #[cfg(target_arch = "x86_64")]
    if super::gemm_micro::has_avx2_fma() {
        for i in (0..full_rows).step_by(8) {
            for p in (0..full_cols).step_by(8) {
                // Safety: AVX2 is present; rows `i..i + 8` and steps `p..p + 8` are inside A
                // and `out` (asserted above).
                unsafe {
                    avx2::transpose8(
                        a.as_ptr().add(i + p * col_stride),
                        col_stride,
                        out.as_mut_ptr().add(i * cols + p),
                        cols,
                    )
                };
            }
        }
    } else {
        copy_tile(a, al, out, 0..full_rows, 0..full_cols);
    }
    #[cfg(not(target_arch = "x86_64"))]
    copy_tile(a, al, out, 0..full_rows, 0..full_cols);
    copy_tile(a, al, out, full_rows..rows, 0..cols);
    copy_tile(a, al, out, 0..full_rows, full_cols..cols);
}

/// `transpose` of rows `rows` and steps `steps`, element by element.
fn copy_tile(
    a: &[f32],
    al: Layout,
    out: &mut [f32],
    rows: std::ops::Range<usize>,
    steps: std::ops::Range<usize>,
) {
    for i in rows {
        for p in steps.clone() {
            out[i * al.cols + p] = a[i + p * al.col_stride];
        }
    }
}

/// Grows `v` to at least `len` elements (only the first product of a shape allocates).
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// Writes the positions and values of `src`'s nonzeros (NaN counts as one) to `cols` and
/// `values` from `len` on, and returns the new length. Both must have room for
/// `len + src.len() + 8` elements: whole chunks of eight are written, and only the
/// nonzeros counted.
fn compress(src: &[f32], cols: &mut [u32], values: &mut [f32], len: usize) -> usize {
    assert!(cols.len() >= len + src.len() + 8 && values.len() >= len + src.len() + 8, "compress room");
    let mut len = len;
    let mut q = 0;
    #[cfg(target_arch = "x86_64")]
    if super::gemm_micro::has_avx2_fma() {
        // Safety: AVX2 is present, and AVX-512 where it is called; both outputs have room
        // for `len + src.len() + 8` (asserted above), and each call leaves `len` at most
        // `q` past where it started.
        unsafe {
            if super::gemm_micro::has_avx512() {
                (len, q) = avx512::compress(src, cols.as_mut_ptr(), values.as_mut_ptr(), len);
            }
            (len, q) = avx2::compress(src, q, cols.as_mut_ptr(), values.as_mut_ptr(), len);
        }
    }
    for (p, &v) in src.iter().enumerate().skip(q) {
        (cols[len], values[len]) = (p as u32, v);
        len += usize::from(v != 0.0);
    }
    len
}

/// Computes this thread's block of C from A's nonzeros, reporting rows to `ops.done` as
/// they are finished; `false`, having written nothing, when A is denser than
/// [`MAX_DENSITY`] or B or C is not contiguous along its rows.
pub(super) fn product(ops: &Operands<'_>, c: &mut CView<'_>, nonzeros: &mut Nonzeros) -> bool {
    let Operands { alpha, beta, a, al, b, bl, cl, .. } = *ops;
    if bl.col_stride != 1 || cl.col_stride != 1 {
        return false;
    }
    let (m, k, n) = (al.rows, al.cols, bl.cols);
    if !nonzeros.gather(a, al, m * k * MAX_DENSITY.0 / MAX_DENSITY.1) {
        return false;
    }
    assert!(nonzeros.hold(m, k), "nonzeros of another shape than A's");
    assert!(k == 0 || n == 0 || b.len() >= (k - 1) * bl.row_stride + n, "B of {}", b.len());
    let sums = Sums { nonzeros, b, b_stride: bl.row_stride, n, alpha, beta };
    for first in (0..m).step_by(FINISH_ROWS) {
        let rows = FINISH_ROWS.min(m - first);
        sums.rows(first..first + rows, c, cl.row_stride);
        ops.finished(c, first, rows, 0, n);
    }
    true
}

/// What row `i` of C sums: `alpha·Σ_t values[t]·B(cols[t], ..) + beta·C(i, ..)` over its
/// nonzeros (C not read when `beta == 0`), B's rows `b_stride` apart and `n` long.
struct Sums<'a> {
    nonzeros: &'a Nonzeros,
    b: &'a [f32],
    b_stride: usize,
    n: usize,
    alpha: f32,
    beta: f32,
}

impl Sums<'_> {
    /// Row `i`'s nonzeros: their columns and values.
    fn of(&self, i: usize) -> (&[u32], &[f32]) {
        self.nonzeros.of(i)
    }

    /// Rows `rows` into C, whose rows are `c_stride` apart: with AVX2 when the CPU has it.
    ///
    /// The caller (`product`) has checked that every nonzero's column is a row of B.
    fn rows(&self, rows: std::ops::Range<usize>, c: &mut CView<'_>, c_stride: usize) {
        #[cfg(target_arch = "x86_64")]
        if super::gemm_micro::has_avx2_fma() {
            let out = c.block(rows.start * c_stride, rows.len(), c_stride, self.n);
            // Safety: AVX2 and FMA are present, and AVX-512 where it is called; every
            // nonzero's column is a row of B (`product` asserts that the lists hold A's
            // shape), whose rows hold `n` values (asserted there too), and `out` is this
            // product's block of C for these rows (checked by `block`; see `CView`).
            unsafe {
                if super::gemm_micro::has_avx512() {
                    avx512::sum_rows(self, rows, out, c_stride);
                } else {
                    avx2::sum_rows(self, rows, out, c_stride);
                }
            }
            return;
        }
        for i in rows {
            self.columns(i, 0, c.row(i * c_stride, self.n));
        }
    }

    /// Columns `j0..j0 + out.len()` of row `i` into `out`, one by one in plain Rust (the
    /// portable path, and the AVX2 path's last columns short of eight).
    fn columns(&self, i: usize, j0: usize, out: &mut [f32]) {
        let (cols, values) = self.of(i);
        for (j, o) in (j0..).zip(out.iter_mut()) {
            let sum: f32 =
                cols.iter().zip(values).map(|(&p, &v)| v * self.b[p as usize * self.b_stride + j]).sum();
            *o = if self.beta == 0.0 { self.alpha * sum } else { self.alpha * sum + self.beta * *o };
        }
    }
}

/// Defines, inside an instruction set's module, `sum_rows` (rows of C from `Sums`, row `i`
/// at `out + (i - rows.start)·out_stride`), `row_from` (columns `j0..n` of one row) and
/// their `block` of `8·lanes` columns with eight sums in registers (sixteen ymm left none
/// for the broadcast and spilled), then blocks of `lanes` columns, then `tail`.
///
/// Safety of the functions defined: the instruction set must be available; B readable at
/// `p·b_stride + j` for every nonzero's column `p` and `j < n`, and `out` writable (and
/// readable) at `r·out_stride + j` for `r < rows.len()`, `j < n`.
#[cfg(target_arch = "x86_64")]
macro_rules! register_sums {
    (
        features: $features:literal,
        lanes: $lanes:literal,
        vector: $vector:ty,
        zero: $zero:ident,
        splat: $splat:ident,
        load: $load:ident,
        fmadd: $fmadd:ident,
        store: $store:ident,
        tail: $tail:expr,
    ) => {
        /// Rows `rows` of C (`Sums`); see `register_sums!`.
        ///
        /// # Safety
        /// As `register_sums!` states.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn sum_rows(
            sums: &Sums<'_>,
            rows: std::ops::Range<usize>,
            out: *mut f32,
            out_stride: usize,
        ) {
            for (r, i) in rows.enumerate() {
                // Safety: row `r` of `out`, under the caller's bounds.
                unsafe { row_from(sums, i, 0, out.wrapping_add(r * out_stride)) };
            }
        }

        /// Columns `j0..n` of row `i` of C (`Sums`) into `row_out[j0..n]`.
        ///
        /// # Safety
        /// As for `sum_rows`, for one row of `out` at `row_out`.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn row_from(sums: &Sums<'_>, i: usize, j0: usize, row_out: *mut f32) {
            let (b, n, alpha, beta) = (sums.b.as_ptr(), sums.n, sums.alpha, sums.beta);
            let (cols, values) = sums.of(i);
            // Safety (each block): columns `j..j + width` of the row, inside B and `out`.
            let mut j = j0;
            while j + 8 * $lanes <= n {
                unsafe { block::<8>(cols, values, b.add(j), sums.b_stride, row_out.add(j), alpha, beta) };
                j += 8 * $lanes;
            }
            while j + $lanes <= n {
                unsafe { block::<1>(cols, values, b.add(j), sums.b_stride, row_out.add(j), alpha, beta) };
                j += $lanes;
            }
            if j < n {
                let tail = $tail;
                tail(sums, i, j, row_out);
            }
        }

        /// `V·lanes` columns of one row of `sum_rows`, from `b` and `out`.
        ///
        /// # Safety
        /// As for `sum_rows`, for `V·lanes` columns of one row.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn block<const V: usize>(
            cols: &[u32],
            values: &[f32],
            b: *const f32,
            b_stride: usize,
            out: *mut f32,
            alpha: f32,
            beta: f32,
        ) {
            let mut acc: [$vector; V] = [$zero(); V];
            for (&p, &v) in cols.iter().zip(values) {
                let scale = $splat(v);
                // Safety: row `p` of B is readable for the block's columns (the caller's
                // bounds).
                let row = unsafe { b.add(p as usize * b_stride) };
                for (x, s) in acc.iter_mut().enumerate() {
                    *s = $fmadd(scale, unsafe { $load(row.add($lanes * x)) }, *s);
                }
            }
            for (x, &s) in acc.iter().enumerate() {
                // Safety: `lanes·(x + 1) ≤ lanes·V`, inside `out` (the caller's bounds).
                unsafe { $store(out.add($lanes * x), s, alpha, beta) };
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::gemm_micro::avx2::store8;
    use super::Sums;
    use std::arch::x86_64::*;

    /// For each 8-bit mask, the lanes whose bit is set, in order, then zeros.
    static LANES: [[u32; 8]; 256] = lanes();

    const fn lanes() -> [[u32; 8]; 256] {
        let mut table = [[0u32; 8]; 256];
        let mut mask = 0;
        while mask < 256 {
            let (mut lane, mut n) = (0, 0);
            while lane < 8 {
                if mask & (1 << lane) != 0 {
                    table[mask][n] = lane as u32;
                    n += 1;
                }
                lane += 1;
            }
            mask += 1;
        }
        table
    }

    /// `out[q·out_stride + j] = src[q + j·src_stride]` for `q, j < 8`.
    ///
    /// # Safety
    /// AVX2 must be available; `src` readable and `out` writable at those offsets.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose8(src: *const f32, src_stride: usize, out: *mut f32, out_stride: usize) {
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(src.add(j * src_stride)));
            let t: [__m256; 8] = std::array::from_fn(|j| {
                let (x, y) = (r[j / 2 * 2], r[j / 2 * 2 + 1]);
                if j % 2 == 0 { _mm256_unpacklo_ps(x, y) } else { _mm256_unpackhi_ps(x, y) }
            });
            // u[0..4] from t[0..4], u[4..8] from t[4..8]: lanes 0-1 / 2-3 of pairs (t0, t2), (t1, t3).
            let u: [__m256; 8] = std::array::from_fn(|j| {
                let base = j / 4 * 4;
                let (x, y) = (t[base + (j % 4) / 2], t[base + (j % 4) / 2 + 2]);
                if j % 2 == 0 { _mm256_shuffle_ps::<0x44>(x, y) } else { _mm256_shuffle_ps::<0xEE>(x, y) }
            });
            for q in 0..4 {
                _mm256_storeu_ps(out.add(q * out_stride), _mm256_permute2f128_ps::<0x20>(u[q], u[q + 4]));
                _mm256_storeu_ps(
                    out.add((q + 4) * out_stride),
                    _mm256_permute2f128_ps::<0x31>(u[q], u[q + 4]),
                );
            }
        }
    }

    /// `super::compress` over the whole chunks of eight of `src` from `from` on: each
    /// chunk's nonzeros packed to the front of eight slots at `values + len`, their positions
    /// at `cols + len`. Returns the new length and how many values of `src` were done.
    ///
    /// # Safety
    /// AVX2 must be available; `cols` and `values` writable for `len + src.len() - from + 8`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn compress(
        src: &[f32],
        from: usize,
        cols: *mut u32,
        values: *mut f32,
        len: usize,
    ) -> (usize, usize) {
        let (mut len, mut q) = (len, from);
        while q + 8 <= src.len() {
            // Safety: `q + 8 ≤ src.len()`, and `len ≤ len₀ + q` (a chunk adds at most eight),
            // so the eight slots written lie in the room the caller guarantees.
            unsafe {
                let v = _mm256_loadu_ps(src.as_ptr().add(q));
                // Unordered: a NaN is not equal to zero, so it is kept.
                let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps())) as usize;
                let lanes = _mm256_loadu_si256(LANES[mask].as_ptr() as *const __m256i);
                _mm256_storeu_ps(values.add(len), _mm256_permutevar8x32_ps(v, lanes));
                let at = _mm256_add_epi32(lanes, _mm256_set1_epi32(q as i32));
                _mm256_storeu_si256(cols.add(len) as *mut __m256i, at);
                len += mask.count_ones() as usize;
            }
            q += 8;
        }
        (len, q)
    }

    register_sums! {
        features: "avx2,fma",
        lanes: 8,
        vector: __m256,
        zero: _mm256_setzero_ps,
        splat: _mm256_set1_ps,
        load: _mm256_loadu_ps,
        fmadd: _mm256_fmadd_ps,
        store: store8,
        // Safety: columns `j..n` of the row, this call's alone.
        tail: |sums: &Sums<'_>, i, j, row_out: *mut f32| sums.columns(i, j, unsafe {
            std::slice::from_raw_parts_mut(row_out.add(j), sums.n - j)
        }),
    }
}

/// The sums sixteen lanes wide: the MNIST MLP's 128 columns in one pass over a row's
/// nonzeros with eight sums in registers, where AVX2 makes two passes of 64.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::gemm_micro::avx512::store16;
    use super::Sums;
    use std::arch::x86_64::*;

    /// `avx2::compress` sixteen values at a time with the CPU's own compress instruction
    /// instead of a table of lane shuffles.
    ///
    /// # Safety
    /// AVX-512 F must be available; `cols` and `values` writable for `len + src.len() + 8`.
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) unsafe fn compress(
        src: &[f32],
        cols: *mut u32,
        values: *mut f32,
        len: usize,
    ) -> (usize, usize) {
        let (mut len, mut q) = (len, 0);
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        while q + 16 <= src.len() {
            // Safety: `q + 16 ≤ src.len()`, and `len ≤ len₀ + q` (a chunk adds at most
            // sixteen), so the sixteen slots written lie in the room the caller guarantees.
            unsafe {
                let v = _mm512_loadu_ps(src.as_ptr().add(q));
                // Unordered: a NaN is not equal to zero, so it is kept.
                let mask = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(v, _mm512_setzero_ps());
                _mm512_storeu_ps(values.add(len), _mm512_maskz_compress_ps(mask, v));
                let at = _mm512_add_epi32(lanes, _mm512_set1_epi32(q as i32));
                _mm512_storeu_si512(cols.add(len).cast(), _mm512_maskz_compress_epi32(mask, at));
                len += mask.count_ones() as usize;
            }
            q += 16;
        }
        (len, q)
    }

    register_sums! {
        features: "avx512f,avx2,fma",
        lanes: 16,
        vector: __m512,
        zero: _mm512_setzero_ps,
        splat: _mm512_set1_ps,
        load: _mm512_loadu_ps,
        fmadd: _mm512_fmadd_ps,
        store: store16,
        // The last columns short of 16 as the AVX2 path takes them, so each element is the
        // same chain of fused multiply-adds on either path. Safety: AVX2 and FMA are
        // present wherever AVX-512 is; the row's bounds are the caller's.
        tail: |sums: &Sums<'_>, i, j, row_out: *mut f32| unsafe { super::avx2::row_from(sums, i, j, row_out) },
    }
}

#[cfg(test)]
#[path = "gemm_sparse_tests.rs"]
mod tests;
