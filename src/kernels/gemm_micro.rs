//! The register-blocked inner kernel of the matrix product: an `R × 16` tile of C
//! (`R ≤ 6`) accumulated over `k` steps from a packed panel of A and a panel of B.
//!
//! Operand formats (built by `gemm_blocked.rs`): an [`APanel`] holds row `i`'s value of step
//! `p` at `data[p·step + i·row]` (packed: step 6, row 1; or A read where it lies, row-major
//! or transposed; rows past `R` are never read); the B panel holds step `p`'s sixteen
//! column values contiguously at `b[p·b_stride ..]`. The tile is returned as accumulators,
//! scaled and stored by the caller, so this file only multiplies and adds.
//!
//! Two implementations compute the same sums, rounded differently (fused multiply-adds,
//! split accumulators for skinny tiles), so they agree to rounding: AVX2 + FMA intrinsics
//! (12 ymm accumulators at `R = 6`, the shape that keeps both FMA pipes of a Zen or Haswell
//! core busy), chosen at run time when the CPU has them, and portable Rust that the compiler
//! vectorizes with whatever the target has. With `R ≤ 2` the AVX2 kernel alternates two sets
//! of accumulators over even and odd steps, so the FMA latency does not bound a skinny
//! product (the batch-1 prediction).

/// Rows of the packed A panel.
pub(crate) const MR: usize = 6;
/// Columns of a B panel.
pub(crate) const NR: usize = 16;

/// An `MR × NR` accumulator tile.
pub(crate) type Tile = [[f32; NR]; MR];

/// Whether the AVX2 kernels can run here (checked once).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX-512 kernels run here (AVX-512 F, checked once): sixteen lanes a
/// register, twice AVX2's, where the core has them (Zen 4 and 5, Intel's servers). Setting
/// `DNNC_NO_AVX512` keeps the AVX2 kernels, to compare the two in one build.
pub(crate) fn has_avx512() -> bool {
    #[cfg(test)]
    if AVX2_ONLY.get() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            has_avx2_fma()
                && is_x86_feature_detected!("avx512f")
                && std::env::var_os("DNNC_NO_AVX512").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
thread_local! {
    /// Set by `with_avx2_only` on a test's own thread.
    static AVX2_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the AVX-512 kernels off on this thread (kernels called directly, not
/// through the team), so that a test covers the AVX2 kernels on a CPU that has both.
#[cfg(test)]
pub(crate) fn with_avx2_only<R>(f: impl FnOnce() -> R) -> R {
    AVX2_ONLY.set(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    AVX2_ONLY.set(false);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Up to six rows of A over a range of steps: row `i`'s value of step `p` is at
/// `data[p·step + i·row]`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct APanel<'a> {
    pub data: &'a [f32],
    pub step: usize,
    pub row: usize,
}

impl<'a> APanel<'a> {
    /// A panel packed step-major, six values per step.
    pub(crate) fn packed(data: &'a [f32]) -> APanel<'a> {
        APanel { data, step: MR, row: 1 }
    }

    /// Checks that `rows` rows of `k` steps are in bounds (a caller's programming error
    /// otherwise).
    fn check(&self, k: usize, rows: usize) {
        assert!((1..=MR).contains(&rows), "tile rows {rows}");
        let last = if k == 0 { 0 } else { (k - 1) * self.step + (rows - 1) * self.row + 1 };
        assert!(self.data.len() >= last, "A panel of {} for {k} steps of {rows} rows", self.data.len());
    }
}

/// `tile[i][j] = Σ_p A(i, p)·b[p·b_stride + j]` for `i < rows`, `j < 16`, `p < k`.
///
/// Panics (a programming error in the caller, not bad input) when a panel is shorter than
/// `k` steps need or `rows` is not in `1..=6`.
pub(crate) fn kernel(k: usize, a: APanel<'_>, b: &[f32], b_stride: usize, rows: usize, tile: &mut Tile) {
    // Safety: the tile's rows are `NR` floats each, contiguous, and borrowed mutably here.
    unsafe { kernel_into(k, a, b, b_stride, rows, tile.as_mut_ptr().cast::<f32>(), NR, 1.0, 0.0) };
}

/// `$isa::kernel_into::<rows, U>($args)` for `rows` in `1..=6`, `U` interleaved sets of
/// sums being `$skinny` for one or two rows (whose few sums alone would wait on the FMA
/// latency) and `$wide` for more.
#[cfg(target_arch = "x86_64")]
macro_rules! by_tile_rows {
    ($rows:expr, $isa:ident, $skinny:literal, $wide:literal, ($($arg:expr),*)) => {
        match $rows {
            1 => $isa::kernel_into::<1, $skinny>($($arg),*),
            2 => $isa::kernel_into::<2, $skinny>($($arg),*),
            3 => $isa::kernel_into::<3, $wide>($($arg),*),
            4 => $isa::kernel_into::<4, $wide>($($arg),*),
            5 => $isa::kernel_into::<5, $wide>($($arg),*),
            _ => $isa::kernel_into::<6, $wide>($($arg),*),
        }
    };
}

/// `C[i][j] = alpha·Σ_p A(i, p)·b[p·b_stride + j] + beta·C[i][j]` for `i < rows`,
/// `j < 16`, where row `i` of C starts at `c + i·c_stride`; C is not read when `beta == 0`.
/// The AVX2 path scales and stores straight from its registers (a short-depth product, such
/// as a weight gradient over a batch, spends much of its time on the tile's store). C is a
/// pointer because a tile of one column half of C lies between the other half's elements.
///
/// Panics (a caller's programming error) on the bounds `kernel` checks.
///
/// # Safety
/// `c` must be valid for reads and writes at `i·c_stride + j` for `i < rows`, `j < 16`, and
/// no other thread may access those elements during the call.
///
/// Always inlined into the blocked loop, so that the panel's fields reach the register
/// kernel in registers. Called, it read the caller's `APanel` back from the stack with one
/// 16-byte load spanning two of the caller's 8-byte stores, which the store buffer cannot
/// forward: the load waited for both stores to retire, and `perf` put 7 % of the IMDB LSTM's
/// and 6 % of the MNIST MLP's samples on this wrapper, as much as on the AVX-512 kernel it
/// called.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn kernel_into(
    k: usize,
    a: APanel<'_>,
    b: &[f32],
    b_stride: usize,
    rows: usize,
    c: *mut f32,
    c_stride: usize,
    alpha: f32,
    beta: f32,
) {
    a.check(k, rows);
    assert!(k == 0 || b.len() >= (k - 1) * b_stride + NR, "B panel of {} for {k} steps", b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        let a = avx2::A { ptr: a.data.as_ptr(), step: a.step, row: a.row };
        let b = b.as_ptr();
        // Safety: AVX2 and FMA are present, and AVX-512 where its kernel is called; the
        // asserts bound every load of A (at `p·step + i·row`, `p < k`, `i < rows`) and of B
        // (at `p·b_stride + j ≤ (k - 1)·b_stride + 15`), and the caller every access of C
        // at `i·c_stride + j`, `i < rows`, `j < 16`.
        unsafe {
            if has_avx512() {
                by_tile_rows!(rows, avx512, 4, 2, (k, a, b, b_stride, c, c_stride, alpha, beta));
            } else {
                by_tile_rows!(rows, avx2, 2, 1, (k, a, b, b_stride, c, c_stride, alpha, beta));
            }
        }
        return;
    }
    // Safety: the caller's contract, passed on.
    unsafe { portable_into(k, a, b, b_stride, rows, c, c_stride, alpha, beta) };
}

/// `kernel_into` in plain Rust.
///
/// # Safety
/// As for `kernel_into`.
#[allow(clippy::too_many_arguments)]
unsafe fn portable_into(
    k: usize,
    a: APanel<'_>,
    b: &[f32],
    b_stride: usize,
    rows: usize,
    c: *mut f32,
    c_stride: usize,
    alpha: f32,
    beta: f32,
) {
    let mut tile: Tile = [[0.0; NR]; MR];
    portable(k, a, b, b_stride, rows, &mut tile);
    for (i, t) in tile.iter().enumerate().take(rows) {
        // Safety: row `i`'s sixteen elements are the caller's, and only this call's.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * c_stride), NR) };
        store_row(t, row, alpha, beta);
    }
}

/// `out[j] = alpha·sums[j] + beta·out[j]`, `out` not read when `beta == 0`.
pub(crate) fn store_row(sums: &[f32], out: &mut [f32], alpha: f32, beta: f32) {
    if beta == 0.0 {
        out.iter_mut().zip(sums).for_each(|(o, &v)| *o = alpha * v);
    } else {
        out.iter_mut().zip(sums).for_each(|(o, &v)| *o = alpha * v + beta * *o);
    }
}

/// `out[j] = Σ_p a[p·a_stride]·b[p·b_stride + j]` for `j < out.len()`: a one-row product
/// (a batch-1 prediction), streaming B's rows once with the sums of 128 columns in
/// registers (then 64, then 8): a 128-wide row read whole in one pass measured ~20 % faster
/// than two passes over its halves (784×128 on one core: 10.1-11.1 µs → 7.2-8.4 µs).
///
/// Panics (a caller's programming error) when A or B is shorter than `k` steps need.
pub(crate) fn row_times_matrix(
    k: usize,
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    out: &mut [f32],
) {
    let n = out.len();
    assert!(k == 0 || a.len() > (k - 1) * a_stride, "A row of {} for {k} steps", a.len());
    assert!(k == 0 || n == 0 || b.len() >= (k - 1) * b_stride + n, "B of {} for {k} steps", b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        type RowBlock = unsafe fn(usize, *const f32, usize, *const f32, usize, *mut f32);
        let blocks: [(usize, RowBlock); 3] =
            [(128, avx2::row_block::<16>), (64, avx2::row_block::<8>), (8, avx2::row_block::<1>)];
        let mut j = 0;
        for (width, block) in blocks {
            while j + width <= n {
                // Safety: AVX2 and FMA are present; columns `j..j + width` are below `n`, so
                // the asserts above bound every load and store.
                unsafe {
                    block(k, a.as_ptr(), a_stride, b.as_ptr().add(j), b_stride, out.as_mut_ptr().add(j))
                };
                j += width;
            }
        }
        for (jj, o) in out.iter_mut().enumerate().skip(j) {
            *o = (0..k).map(|p| a[p * a_stride] * b[p * b_stride + jj]).sum();
        }
        return;
    }
    out.fill(0.0);
    for p in 0..k {
        let ap = a[p * a_stride];
        for (o, &bj) in out.iter_mut().zip(&b[p * b_stride..p * b_stride + n]) {
            *o += ap * bj;
        }
    }
}

/// The kernel in plain Rust.
fn portable(k: usize, a: APanel<'_>, b: &[f32], b_stride: usize, rows: usize, tile: &mut Tile) {
    *tile = [[0.0; NR]; MR];
    for p in 0..k {
        let bp: &[f32; NR] = b[p * b_stride..p * b_stride + NR].try_into().unwrap_or(&[0.0; NR]);
        for (i, row) in tile.iter_mut().enumerate().take(rows) {
            let ai = a.data[p * a.step + i * a.row];
            for (t, &bj) in row.iter_mut().zip(bp) {
                *t += ai * bj;
            }
        }
    }
}

/// Defines, inside an instruction set's module, the register kernel of an `R × 16` tile,
/// each tile row `16 / lanes` vectors: `sums` (`U` interleaved accumulator sets, added at
/// the end), `kernel_into` (those sums scaled and stored into C) and `$store` (one vector
/// stored as `store_row` rounds: a product, then a sum). Both instruction sets run the same
/// multiply-adds in the same order, so only the lanes per register differ.
///
/// Safety of the functions defined: the instruction set must be available; `sums` and
/// `kernel_into` read `a` at `p·step + i·row` and `b` at `p·b_stride + j` for every `p < k`,
/// `i < R`, `j < 16`; `kernel_into` writes (and reads) C at `i·c_stride + j`, and `$store`
/// one vector at `at`.
#[cfg(target_arch = "x86_64")]
macro_rules! register_tile {
    (
        features: $features:literal,
        lanes: $lanes:literal,
        vector: $vector:ty,
        zero: $zero:ident,
        splat: $splat:ident,
        load: $load:ident,
        fmadd: $fmadd:ident,
        add: $add:ident,
        mul: $mul:ident,
        store_raw: $store_raw:ident,
        store: $store:ident,
    ) => {
        /// Vectors in one tile row.
        const H: usize = super::NR / $lanes;

        /// The sums of an `R × 16` tile; see `register_tile!`.
        ///
        /// # Safety
        /// As `register_tile!` states.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn sums<const R: usize, const U: usize>(
            k: usize,
            a: A,
            b: *const f32,
            b_stride: usize,
        ) -> [[$vector; H]; R] {
            // Row `i`'s pointer, advanced by `step` each step.
            let rows: [*const f32; R] = std::array::from_fn(|i| a.ptr.wrapping_add(i * a.row));
            let mut acc = [[[$zero(); H]; R]; U];
            // Step `p` into one accumulator set. Safety: `p < k`, inside the caller's bounds.
            let step = |set: &mut [[$vector; H]; R], p: usize| unsafe {
                let bp = b.add(p * b_stride);
                let bs: [$vector; H] = std::array::from_fn(|h| $load(bp.add($lanes * h)));
                let at = p * a.step;
                for (i, row) in set.iter_mut().enumerate() {
                    let ai = $splat(*rows[i].add(at));
                    for (s, &bh) in row.iter_mut().zip(&bs) {
                        *s = $fmadd(ai, bh, *s);
                    }
                }
            };
            let mut p = 0;
            while p + U <= k {
                for (u, set) in acc.iter_mut().enumerate() {
                    step(set, p + u);
                }
                p += U;
            }
            while p < k {
                step(&mut acc[0], p);
                p += 1;
            }
            let mut total = acc[0];
            for set in &acc[1..] {
                for (t, s) in total.iter_mut().zip(set) {
                    for (th, &sh) in t.iter_mut().zip(s) {
                        *th = $add(*th, sh);
                    }
                }
            }
            total
        }

        /// `C[i][..16] = alpha·sums[i] + beta·C[i][..16]` with rows `c_stride` apart,
        /// straight from the registers; C is not read when `beta == 0`.
        ///
        /// # Safety
        /// As `register_tile!` states.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn kernel_into<const R: usize, const U: usize>(
            k: usize,
            a: A,
            b: *const f32,
            b_stride: usize,
            c: *mut f32,
            c_stride: usize,
            alpha: f32,
            beta: f32,
        ) {
            // Safety: the caller's bounds are those `sums` needs, and row `i < R` of C.
            unsafe {
                let total = sums::<R, U>(k, a, b, b_stride);
                for (i, row) in total.iter().enumerate() {
                    for (h, &s) in row.iter().enumerate() {
                        $store(c.add(i * c_stride + $lanes * h), s, alpha, beta);
                    }
                }
            }
        }

        /// `at[..lanes] = alpha·s + beta·at[..lanes]`, `at` not read when `beta == 0`: the
        /// rounding of `store_row` (a product, then a sum), for every kernel that stores
        /// from registers.
        ///
        /// # Safety
        /// The instruction set must be available and `at` writable (and readable) for one
        /// vector.
        #[target_feature(enable = $features)]
        #[inline]
        pub(crate) unsafe fn $store(at: *mut f32, s: $vector, alpha: f32, beta: f32) {
            let mut v = if alpha == 1.0 { s } else { $mul($splat(alpha), s) };
            // Safety: the caller's bounds.
            unsafe {
                if beta != 0.0 {
                    v = $add(v, $mul($splat(beta), $load(at)));
                }
                $store_raw(at, v);
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// `out[..8V] = Σ_p a[p·a_stride]·b[p·b_stride ..][..8V]`.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a` readable at `p·a_stride`, `b` at
    /// `p·b_stride + j` and `out` writable at `j`, for `p < k`, `j < 8V`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_block<const V: usize>(
        k: usize,
        a: *const f32,
        a_stride: usize,
        b: *const f32,
        b_stride: usize,
        out: *mut f32,
    ) {
        let mut acc = [_mm256_setzero_ps(); V];
        for p in 0..k {
            // Safety: `p < k`, inside the caller's bounds.
            unsafe {
                let ap = _mm256_broadcast_ss(&*a.add(p * a_stride));
                let bp = b.add(p * b_stride);
                for (v, s) in acc.iter_mut().enumerate() {
                    *s = _mm256_fmadd_ps(ap, _mm256_loadu_ps(bp.add(8 * v)), *s);
                }
            }
        }
        for (v, s) in acc.iter().enumerate() {
            // Safety: `8v + 8 ≤ 8V`, inside the caller's bounds.
            unsafe { _mm256_storeu_ps(out.add(8 * v), *s) };
        }
    }

    /// An A panel as a pointer: row `i`'s value of step `p` at `ptr + p·step + i·row`.
    #[derive(Copy, Clone)]
    pub(super) struct A {
        pub ptr: *const f32,
        pub step: usize,
        pub row: usize,
    }

    register_tile! {
        features: "avx2,fma",
        lanes: 8,
        vector: __m256,
        zero: _mm256_setzero_ps,
        splat: _mm256_set1_ps,
        load: _mm256_loadu_ps,
        fmadd: _mm256_fmadd_ps,
        add: _mm256_add_ps,
        mul: _mm256_mul_ps,
        store_raw: _mm256_storeu_ps,
        store: store8,
    }
}

/// The kernel sixteen lanes wide: a tile row is one zmm register, so a 6-row tile keeps two
/// interleaved sets of six sums (twelve registers) to cover the FMA latency, and each step
/// is one load of B, six broadcasts and six multiply-adds where AVX2 needs twelve.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::avx2::A;
    use std::arch::x86_64::*;

    register_tile! {
        features: "avx512f,avx2,fma",
        lanes: 16,
        vector: __m512,
        zero: _mm512_setzero_ps,
        splat: _mm512_set1_ps,
        load: _mm512_loadu_ps,
        fmadd: _mm512_fmadd_ps,
        add: _mm512_add_ps,
        mul: _mm512_mul_ps,
        store_raw: _mm512_storeu_ps,
        store: store16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rng::Rng;

    #[test]
    fn the_dispatched_kernel_agrees_with_the_portable_one_for_every_tile_height() {
        dispatched_against_portable();
        with_avx2_only(dispatched_against_portable);
    }

    #[test]
    fn storing_into_c_scales_adds_and_leaves_other_elements_alone() {
        stores_against_portable();
        with_avx2_only(stores_against_portable);
    }

    fn dispatched_against_portable() {
        let mut rng = Rng::new(3);
        for k in [0usize, 1, 2, 7, 256] {
            for rows in 1..=MR {
                let stride = NR + 5;
                let b: Vec<f32> = (0..k * stride + NR).map(|_| rng.uniform() as f32 - 0.5).collect();
                // Packed, row-major in place (rows k + 3 apart) and transposed in place
                // (steps 9 apart).
                let (row_major, transposed) =
                    (APanel { data: &[], step: 1, row: k + 3 }, APanel { data: &[], step: 9, row: 1 });
                for layout in [APanel::packed(&[]), row_major, transposed] {
                    let a: Vec<f32> = (0..k * (layout.step + layout.row) + MR * layout.row)
                        .map(|_| rng.uniform() as f32 - 0.5)
                        .collect();
                    let panel = APanel { data: &a, ..layout };
                    let (mut got, mut want) = ([[f32::NAN; NR]; MR], [[f32::NAN; NR]; MR]);
                    kernel(k, panel, &b, stride, rows, &mut got);
                    portable(k, panel, &b, stride, rows, &mut want);
                    for i in 0..rows {
                        for j in 0..NR {
                            let exact: f64 = (0..k)
                                .map(|p| {
                                    f64::from(a[p * panel.step + i * panel.row])
                                        * f64::from(b[p * stride + j])
                                })
                                .sum();
                            for (what, v) in [("dispatched", got[i][j]), ("portable", want[i][j])] {
                                assert!(
                                    (f64::from(v) - exact).abs() <= 1e-5 * (k as f64 + 1.0),
                                    "{what} k={k} rows={rows} {layout:?} ({i},{j}): {v} vs {exact}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn stores_against_portable() {
        let mut rng = Rng::new(5);
        let (k, stride, c_stride) = (9, NR + 3, NR + 7);
        for rows in 1..=MR {
            for (alpha, beta) in [(1.0f32, 0.0f32), (1.0, 1.0), (-0.5, 0.25)] {
                let a: Vec<f32> = (0..k * MR).map(|_| rng.uniform() as f32 - 0.5).collect();
                let b: Vec<f32> = (0..k * stride + NR).map(|_| rng.uniform() as f32 - 0.5).collect();
                let before: Vec<f32> = (0..MR * c_stride).map(|_| rng.uniform() as f32 - 0.5).collect();
                // With beta = 0 the old values must not be read: NaNs there must vanish.
                let before: Vec<f32> =
                    before.iter().map(|&v| if beta == 0.0 && v > 0.3 { f32::NAN } else { v }).collect();
                let (mut fast, mut plain) = (before.clone(), before.clone());
                // Safety: both C buffers hold six rows of `c_stride ≥ 16` and are borrowed
                // mutably for the calls.
                unsafe {
                    let (f, p) = (fast.as_mut_ptr(), plain.as_mut_ptr());
                    kernel_into(k, APanel::packed(&a), &b, stride, rows, f, c_stride, alpha, beta);
                    portable_into(k, APanel::packed(&a), &b, stride, rows, p, c_stride, alpha, beta);
                }
                for (at, (&x, &y)) in fast.iter().zip(&plain).enumerate() {
                    let (i, j) = (at / c_stride, at % c_stride);
                    if i >= rows || j >= NR {
                        assert!(x.to_bits() == before[at].to_bits() && y.to_bits() == before[at].to_bits());
                        continue;
                    }
                    let dot: f64 =
                        (0..k).map(|p| f64::from(a[p * MR + i]) * f64::from(b[p * stride + j])).sum();
                    let old = if beta == 0.0 { 0.0 } else { f64::from(beta) * f64::from(before[at]) };
                    let want = f64::from(alpha) * dot + old;
                    for v in [x, y] {
                        assert!(
                            (f64::from(v) - want).abs() <= 1e-5,
                            "rows {rows} ({i},{j}) {alpha} {beta}: {v} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
