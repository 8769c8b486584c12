//! Tests of the sparse-batch product against an f64 reference, and of its pieces.

use super::super::gemm::{FinishedBlock, Layout, MatMut, MatRef, Parallelism, gemm_skipping_zero_a};
use super::*;
use crate::runtime::rng::Rng;

/// A `rows × k` batch, row-major, each value nonzero with probability `density`.
fn sparse_batch(rng: &mut Rng, rows: usize, k: usize, density: f64) -> Vec<f32> {
    (0..rows * k)
        .map(|_| if rng.uniform() < density { rng.uniform() as f32 * 2.0 - 1.0 } else { 0.0 })
        .collect()
}

fn random_vec(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect()
}

/// `C = A·B` in f64, for A as `al` over `a` and a row-major B.
fn reference(a: &[f32], al: Layout, b: &[f32], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; al.rows * n];
    for i in 0..al.rows {
        for p in 0..al.cols {
            let x = a[i * al.row_stride + p * al.col_stride] as f64;
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j] as f64;
            }
        }
    }
    c
}

fn parallelism(threads: usize) -> Parallelism {
    if threads == 1 { Parallelism::Sequential } else { Parallelism::Threads(threads) }
}

/// Runs the skipping product of a row-major batch `x` (`rows × k`), as `X·B` or, when
/// `transposed`, as `Xᵀ·B`, over a C full of NaN; returns C and how often each element
/// was reported finished.
fn run(
    x: &[f32],
    rows: usize,
    k: usize,
    transposed: bool,
    b: &[f32],
    n: usize,
    threads: usize,
) -> (Vec<f32>, Vec<u8>) {
    let xv = MatRef::row_major(x, rows, k).unwrap();
    let a = if transposed { xv.t() } else { xv };
    let m = if transposed { k } else { rows };
    let depth = if transposed { rows } else { k };
    let mut c = vec![f32::NAN; m * n];
    let seen = std::sync::Mutex::new(vec![0u8; m * n]);
    let done = |block: FinishedBlock<'_>| {
        let mut seen = seen.lock().unwrap();
        for i in 0..block.rows {
            for j in 0..block.cols {
                seen[(block.row + i) * n + block.col + j] += 1;
            }
        }
    };
    let bv = MatRef::row_major(b, depth, n).unwrap();
    gemm_skipping_zero_a(a, bv, MatMut::row_major(&mut c, m, n).unwrap(), parallelism(threads), Some(&done))
        .unwrap();
    (c, seen.into_inner().unwrap())
}

#[test]
fn sparse_batches_and_their_transposes_match_the_reference() {
    let mut rng = Rng::new(41);
    // The MLP's shapes, and ragged ones: columns that are not a multiple of 64 or of 8,
    // depths and row counts that are not a multiple of 8, a single row.
    for (rows, k, n) in [(32, 784, 128), (7, 203, 70), (50, 13, 9), (1, 40, 16), (19, 64, 200)] {
        for density in [0.0, 0.05, 0.2] {
            let x = sparse_batch(&mut rng, rows, k, density);
            for transposed in [false, true] {
                let (m, depth) = if transposed { (k, rows) } else { (rows, k) };
                let b = random_vec(&mut rng, depth * n);
                let al = if transposed { Layout::row_major(rows, k).t() } else { Layout::row_major(rows, k) };
                let want = reference(&x, al, &b, n);
                for threads in [1, 2] {
                    let what = format!("{m}x{depth}x{n}, density {density}, {threads} threads");
                    let (c, seen) = run(&x, rows, k, transposed, &b, n, threads);
                    for (e, (&got, &want)) in c.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (depth as f64 + 2.0);
                        assert!((got as f64 - want).abs() <= tol, "{what}: C[{e}] = {got}, want {want}");
                    }
                    assert!(seen.iter().all(|&s| s == 1), "{what}: every element reported once");
                }
            }
        }
    }
}

#[test]
fn a_sparse_batch_never_reads_b_where_it_is_zero_and_keeps_its_own_nans() {
    let mut rng = Rng::new(43);
    let (rows, k, n) = (16, 100, 24);
    let mut x = sparse_batch(&mut rng, rows, k, 0.1);
    // Feature 7 is zero in row 0 and nonzero in row 1: a NaN in B's row 7 reaches row 1 only.
    (x[7], x[k + 7]) = (0.0, 0.5);
    let mut b = random_vec(&mut rng, k * n);
    b[7 * n..8 * n].fill(f32::NAN);
    let (c, _) = run(&x, rows, k, false, &b, n, 1);
    assert!(c[..n].iter().all(|v| v.is_finite()), "row 0 skips B's row 7");
    assert!(c[n..2 * n].iter().all(|v| v.is_nan()), "row 1 multiplies it");
    // A NaN in the batch is not zero: it reaches its row.
    b[7 * n..8 * n].fill(1.0);
    x[5 * k + 3] = f32::NAN;
    let (c, _) = run(&x, rows, k, false, &b, n, 1);
    assert!(c[5 * n..6 * n].iter().all(|v| v.is_nan()), "the batch's NaN reaches row 5");
    assert!(c[6 * n..].iter().all(|v| v.is_finite()), "and no other row");
}

#[test]
fn a_batch_denser_than_a_quarter_goes_to_the_blocked_product() {
    // The blocked product computes a short run of zero features (a NaN in B's row there
    // reaches C); the sparse one skips it in every row whose feature is zero.
    let mut rng = Rng::new(47);
    let (rows, k, n) = (12, 300, 16);
    for (density, blocked) in [(0.6, true), (0.1, false)] {
        let mut x = sparse_batch(&mut rng, rows, k, density);
        for i in 0..rows {
            x[i * k + 150] = 0.0;
        }
        let mut b = random_vec(&mut rng, k * n);
        b[150 * n] = f32::NAN;
        let (c, _) = run(&x, rows, k, false, &b, n, 1);
        assert_eq!(c.iter().any(|v| v.is_nan()), blocked, "density {density}");
    }
}

#[test]
fn the_lists_hold_every_nonzero_in_order_and_give_up_past_the_budget() {
    let mut rng = Rng::new(53);
    let (rows, k) = (5, 37);
    let mut x = sparse_batch(&mut rng, rows, k, 0.3);
    x[3] = -0.0; // equal to zero: left out
    x[k + 9] = f32::NAN; // not equal to zero: kept
    let count = x.iter().filter(|&&v| v != 0.0 || v.is_nan()).count();
    for transposed in [false, true] {
        let al = if transposed { Layout::row_major(rows, k).t() } else { Layout::row_major(rows, k) };
        let mut lists = Nonzeros::prepared();
        assert!(lists.gather(&x, al, count));
        let mut listed = 0;
        for i in 0..al.rows {
            let (start, end) = (lists.starts[i], lists.starts[i + 1]);
            let want: Vec<(u32, f32)> = (0..al.cols)
                .map(|p| (p as u32, x[i * al.row_stride + p * al.col_stride]))
                .filter(|&(_, v)| v != 0.0 || v.is_nan())
                .collect();
            let got: Vec<(u32, f32)> = lists.cols[start..end]
                .iter()
                .copied()
                .zip(lists.values[start..end].iter().copied())
                .collect();
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "row {i}, transposed {transposed}");
            listed += end - start;
        }
        assert_eq!(listed, count);
        assert!(!lists.gather(&x, al, count - 1), "one nonzero past the budget");
    }
}

#[test]
fn tiles_transpose_like_single_elements() {
    let mut rng = Rng::new(59);
    for (rows, cols, pad) in [(8, 8, 0), (392, 32, 0), (19, 13, 3), (3, 40, 1)] {
        let al = Layout { rows, cols, row_stride: 1, col_stride: rows + pad };
        let a = random_vec(&mut rng, (cols - 1) * al.col_stride + rows);
        let mut out = vec![f32::NAN; rows * cols];
        transpose(&a, al, &mut out);
        for i in 0..rows {
            for p in 0..cols {
                assert_eq!(out[i * cols + p], a[i + p * al.col_stride], "{rows}x{cols}: ({i}, {p})");
            }
        }
    }
}

#[test]
fn the_portable_sums_match_the_avx2_ones() {
    let mut rng = Rng::new(61);
    let (rows, k, n) = (9, 50, 77);
    let x = sparse_batch(&mut rng, rows, k, 0.2);
    let b = random_vec(&mut rng, k * n);
    let mut lists = Nonzeros::prepared();
    assert!(lists.gather(&x, Layout::row_major(rows, k), rows * k));
    let sums = Sums { nonzeros: &lists, b: &b, b_stride: n, n, alpha: 1.0, beta: 0.0 };
    let mut portable = vec![0.0; rows * n];
    for (i, row) in portable.chunks_mut(n).enumerate() {
        sums.columns(i, 0, row);
    }
    let want = reference(&x, Layout::row_major(rows, k), &b, n);
    for (e, (&got, &want)) in portable.iter().zip(&want).enumerate() {
        assert!((got as f64 - want).abs() <= 1e-5 * (k as f64 + 2.0), "portable C[{e}] = {got}, want {want}");
    }
    #[cfg(target_arch = "x86_64")]
    if super::super::gemm_micro::has_avx2_fma() {
        let mut fast = vec![f32::NAN; rows * n];
        // Safety: AVX2 and FMA are present; the lists' columns are rows of B, and `fast`
        // holds `rows` rows of `n`.
        unsafe { avx2::sum_rows(&sums, 0..rows, fast.as_mut_ptr(), n) };
        for (e, (&f, &p)) in fast.iter().zip(&portable).enumerate() {
            assert!((f - p).abs() <= 1e-5 * (k as f32 + 2.0), "C[{e}]: avx2 {f}, portable {p}");
        }
    }
}

/// Each element is the same chain of fused multiply-adds 16 or 8 lanes wide, so the two
/// instruction sets agree bit for bit, over widths that take every block size of both.
#[test]
fn the_avx512_sums_equal_the_avx2_ones() {
    #[cfg(target_arch = "x86_64")]
    if super::super::gemm_micro::has_avx512() {
        let mut rng = Rng::new(67);
        for n in [1, 8, 15, 16, 24, 77, 128, 150, 300] {
            let (rows, k) = (7, 60);
            let x = sparse_batch(&mut rng, rows, k, 0.2);
            let b = random_vec(&mut rng, k * n);
            let mut lists = Nonzeros::prepared();
            assert!(lists.gather(&x, Layout::row_major(rows, k), rows * k));
            for (alpha, beta) in [(1.0, 0.0), (0.5, 2.0)] {
                let sums = Sums { nonzeros: &lists, b: &b, b_stride: n, n, alpha, beta };
                let start = random_vec(&mut rng, rows * n);
                let (mut wide, mut narrow) = (start.clone(), start);
                // Safety: AVX-512, AVX2 and FMA are present; the lists' columns are rows of
                // B, and both outputs hold `rows` rows of `n`.
                unsafe {
                    avx512::sum_rows(&sums, 0..rows, wide.as_mut_ptr(), n);
                    avx2::sum_rows(&sums, 0..rows, narrow.as_mut_ptr(), n);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                assert_eq!(bits(&wide), bits(&narrow), "n {n}, alpha {alpha}, beta {beta}");
                let want = reference(&x, Layout::row_major(rows, k), &b, n);
                if beta == 0.0 {
                    for (e, (&got, &want)) in wide.iter().zip(&want).enumerate() {
                        assert!((got as f64 - want).abs() <= 1e-5 * (k as f64 + 2.0), "n {n}: C[{e}]");
                    }
                }
            }
        }
    }
}

/// A training batch times a weight on two threads splits its depth (`split_batch_depth`):
/// sparse and denser batches, even and odd depths, agree with the reference, and a NaN of A
/// far along the depth (in the worker's half) reaches its row of C.
#[test]
fn a_batch_product_split_along_its_depth_matches_the_reference() {
    let mut rng = Rng::new(71);
    for (rows, k, n) in [(32, 784, 128), (7, 203, 70), (64, 130, 256), (1, 300, 16)] {
        for density in [0.0, 0.2, 0.6] {
            let mut x = sparse_batch(&mut rng, rows, k, density);
            let b = random_vec(&mut rng, k * n);
            let want = reference(&x, Layout::row_major(rows, k), &b, n);
            x[(rows - 1) * k + k - 2] = f32::NAN;
            for threads in [1, 2] {
                let mut c = vec![f32::NAN; rows * n];
                let (a, bm) = (MatRef::row_major(&x, rows, k).unwrap(), MatRef::row_major(&b, k, n).unwrap());
                let cm = MatMut::row_major(&mut c, rows, n).unwrap();
                gemm_skipping_zero_a(a, bm, cm, parallelism(threads), None).unwrap();
                let what = format!("{rows}x{k}x{n}, density {density}, {threads} threads");
                for (e, (&got, &want)) in c.iter().zip(&want).enumerate() {
                    if e / n == rows - 1 {
                        assert!(got.is_nan(), "{what}: C[{e}] = {got}, the NaN of A lost");
                    } else {
                        let tol = 1e-5 * (k as f64 + 2.0);
                        assert!((got as f64 - want).abs() <= tol, "{what}: C[{e}] = {got}, want {want}");
                    }
                }
            }
        }
    }
}

/// `compress` keeps every nonzero (NaN included, both zeros dropped) with its position, in
/// order, on every instruction set, for lengths around the 8- and 16-value chunks.
#[test]
fn compress_keeps_the_nonzeros_in_order_on_every_instruction_set() {
    let mut rng = Rng::new(73);
    for len in 0..70 {
        let src: Vec<f32> = (0..len)
            .map(|_| match rng.uniform() {
                u if u < 0.05 => f32::NAN,
                u if u < 0.1 => -0.0,
                u if u < 0.4 => rng.uniform() as f32 + 0.5,
                _ => 0.0,
            })
            .collect();
        let want: Vec<(u32, u32)> = (0..len)
            .filter(|&p| src[p] != 0.0 || src[p].is_nan())
            .map(|p| (p as u32, src[p].to_bits()))
            .collect();
        let run = || {
            let start = 3;
            let (mut cols, mut values) = (vec![0u32; start + len + 8], vec![0.0f32; start + len + 8]);
            let end = compress(&src, &mut cols, &mut values, start);
            (start..end).map(|t| (cols[t], values[t].to_bits())).collect::<Vec<_>>()
        };
        assert_eq!(run(), want, "len {len}, widest instruction set");
        assert_eq!(super::super::gemm_micro::with_avx2_only(run), want, "len {len}, AVX2");
    }
}
