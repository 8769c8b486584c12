//! Tests of the gemm wrapper against a naive triple loop in f64.

use super::*;
use crate::runtime::rng::Rng;

fn random_vec(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect()
}

/// Element `(i, j)` of a strided view.
fn at(data: &[f32], l: Layout, i: usize, j: usize) -> f32 {
    data[i * l.row_stride + j * l.col_stride]
}

/// The reference: `alpha·A·B + beta·C` accumulated in f64, C read only when beta != 0.
#[allow(clippy::too_many_arguments)]
fn naive(
    alpha: f32,
    a: &[f32],
    al: Layout,
    b: &[f32],
    bl: Layout,
    beta: f32,
    c: &[f32],
    cl: Layout,
) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..al.rows {
        for j in 0..bl.cols {
            let dot: f64 = (0..al.cols).map(|p| at(a, al, i, p) as f64 * at(b, bl, p, j) as f64).sum();
            let old = if beta == 0.0 { 0.0 } else { beta as f64 * at(c, cl, i, j) as f64 };
            out.push(alpha as f64 * dot + old);
        }
    }
    out
}

/// A layout for a `rows × cols` operand stored row-major, or column-major when `transposed`
/// (that is, the operand is the transpose of a row-major buffer), with `pad` extra elements
/// per leading dimension.
fn layout(rows: usize, cols: usize, transposed: bool, pad: usize) -> Layout {
    if transposed {
        Layout { rows, cols, row_stride: 1, col_stride: rows + pad }
    } else {
        Layout { rows, cols, row_stride: cols + pad, col_stride: 1 }
    }
}

fn buffer_len(l: Layout) -> usize {
    if l.rows == 0 || l.cols == 0 { 0 } else { (l.rows - 1) * l.row_stride + (l.cols - 1) * l.col_stride + 1 }
}

fn check_close(got: f32, want: f64, k: usize, what: &str) {
    // Each product term is below 1 in magnitude; f32 accumulation of k terms errs by about
    // k·2^-24 relative to the sum of magnitudes, so 1e-5·(k + 2) is a loose, safe bound.
    let tol = 1e-5 * (k as f64 + 2.0);
    assert!((got as f64 - want).abs() <= tol, "{what}: got {got}, want {want}");
}

#[test]
fn matches_naive_on_random_shapes_and_transposes() {
    let mut rng = Rng::new(7);
    let mut shapes = vec![(1, 1, 1), (1, 1, 0), (0, 3, 2), (3, 0, 2), (2, 3, 1), (5, 7, 3), (17, 13, 67)];
    // Across the blocking: more than MC = 96 rows, NC = 256 packed columns and KC = 256
    // steps, ragged panels, and the skinny batch-1 product.
    shapes.extend([(97, 257, 300), (13, 35, 513), (1, 130, 784), (40, 33, 1)]);
    for _ in 0..20 {
        shapes.push((1 + rng.below(40) as usize, 1 + rng.below(40) as usize, rng.below(70) as usize));
    }
    for (case, &(m, n, k)) in shapes.iter().enumerate() {
        for variant in 0..8 {
            let (ta, tb, tc) = (variant & 1 != 0, variant & 2 != 0, variant & 4 != 0);
            let pad = case % 3;
            let (al, bl, cl) = (layout(m, k, ta, pad), layout(k, n, tb, pad), layout(m, n, tc, pad));
            let a = random_vec(&mut rng, buffer_len(al));
            let b = random_vec(&mut rng, buffer_len(bl));
            let mut c = random_vec(&mut rng, buffer_len(cl));
            let (alpha, beta) = [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)][variant % 3];
            let want = naive(alpha, &a, al, &b, bl, beta, &c, cl);
            let par =
                if variant == 5 || variant == 2 { Parallelism::Threads(2) } else { Parallelism::Sequential };
            gemm(
                alpha,
                MatRef::new(&a, al).unwrap(),
                MatRef::new(&b, bl).unwrap(),
                beta,
                MatMut::new(&mut c, cl).unwrap(),
                par,
            )
            .unwrap();
            for i in 0..m {
                for j in 0..n {
                    let what = format!("{m}×{k}·{k}×{n} variant {variant} at ({i}, {j})");
                    check_close(at(&c, cl, i, j), want[i * n + j], k, &what);
                }
            }
        }
    }
}

#[test]
fn transposed_view_of_a_row_major_buffer_needs_no_copy() {
    // Aᵀ·B for A stored 3×2 row-major: the weight-gradient pattern.
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let mut c = [0.0; 4];
    let at = MatRef::row_major(&a, 3, 2).unwrap().t();
    gemm(
        1.0,
        at,
        MatRef::row_major(&b, 3, 2).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
        Parallelism::Sequential,
    )
    .unwrap();
    // Column 0 of A is (1, 3, 5), column 1 is (2, 4, 6); B's columns are (1, 0, 1), (0, 1, 1).
    assert_eq!(c, [6.0, 8.0, 8.0, 10.0]);
}

#[test]
fn beta_zero_ignores_nan_in_the_output() {
    let a = [1.0, 2.0];
    let b = [3.0, 4.0];
    let mut c = [f32::NAN];
    let ok = gemm(
        1.0,
        MatRef::row_major(&a, 1, 2).unwrap(),
        MatRef::row_major(&b, 2, 1).unwrap(),
        0.0,
        MatMut::row_major(&mut c, 1, 1).unwrap(),
        Parallelism::Sequential,
    );
    assert!(ok.is_ok());
    assert_eq!(c, [11.0]);
}

#[test]
fn bad_operands_are_errors() {
    let short = [0.0; 5];
    assert!(matches!(
        MatRef::row_major(&short, 2, 3),
        Err(GemmError::SliceTooShort { needed: 6, len: 5, .. })
    ));
    let mut out = [0.0; 6];
    let overlapping = Layout { rows: 2, cols: 3, row_stride: 1, col_stride: 1 };
    assert!(matches!(MatMut::new(&mut out, overlapping), Err(GemmError::OverlappingOutput { .. })));
    let huge = Layout { rows: 2, cols: 2, row_stride: usize::MAX / 2, col_stride: 1 };
    assert!(matches!(MatRef::new(&short, huge), Err(GemmError::StrideOverflow { .. })));
    let a = [0.0; 6];
    let result = gemm(
        1.0,
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&a, 2, 3).unwrap(),
        0.0,
        MatMut::row_major(&mut out, 2, 3).unwrap(),
        Parallelism::Sequential,
    );
    assert!(matches!(result, Err(GemmError::ShapeMismatch { a_cols: 3, b_rows: 2, .. })));
}

#[test]
fn batched_matches_per_matrix_products_with_broadcast_operand() {
    let mut rng = Rng::new(11);
    let (batch, m, k, n) = (3, 5, 4, 6);
    let a = random_vec(&mut rng, batch * m * k);
    // One weight matrix shared by every batch element (batch stride 0), used transposed.
    let w = random_vec(&mut rng, n * k);
    let w_layout = BatchLayout { batch, batch_stride: 0, matrix: Layout::row_major(n, k).t() };
    let mut c = random_vec(&mut rng, batch * m * n);
    let c_before = c.clone();
    let c_layout = BatchLayout::row_major(batch, m, n);
    gemm_batched(
        1.5,
        &a,
        BatchLayout::row_major(batch, m, k),
        &w,
        w_layout,
        -1.0,
        &mut c,
        c_layout,
        Parallelism::Sequential,
    )
    .unwrap();
    for i in 0..batch {
        let want = naive(
            1.5,
            &a[i * m * k..],
            Layout::row_major(m, k),
            &w,
            w_layout.matrix,
            -1.0,
            &c_before[i * m * n..],
            Layout::row_major(m, n),
        );
        for (p, &wv) in want.iter().enumerate() {
            check_close(c[i * m * n + p], wv, k, &format!("batch {i} element {p}"));
        }
    }
}

#[test]
fn batched_rejects_short_and_overlapping_stacks() {
    let a = [0.0; 23];
    let mut c = [0.0; 24];
    let l = BatchLayout::row_major(2, 3, 4);
    let sq = BatchLayout::row_major(2, 4, 4);
    let b = [0.0; 32];
    let short = gemm_batched(1.0, &a, l, &b, sq, 0.0, &mut c, l, Parallelism::Sequential);
    assert!(matches!(short, Err(GemmError::SliceTooShort { needed: 24, len: 23, .. })));
    let a = [0.0; 24];
    let overlapping = BatchLayout { batch_stride: 4, ..l };
    let result = gemm_batched(1.0, &a, l, &b, sq, 0.0, &mut c, overlapping, Parallelism::Sequential);
    assert!(matches!(result, Err(GemmError::OverlappingBatches { batch_stride: 4, span: 12 })));
    let mismatch = BatchLayout { batch: 3, batch_stride: 0, ..sq };
    let result = gemm_batched(1.0, &a, l, &b, mismatch, 0.0, &mut c, l, Parallelism::Sequential);
    assert!(matches!(result, Err(GemmError::BatchMismatch { a: 2, b: 3, c: 2 })));
}

#[test]
fn threads_writing_column_blocks_of_one_row_major_c_touch_only_their_elements() {
    let mut rng = Rng::new(11);
    // Shapes that split C by columns (B packed and wider than A is tall, or too few rows
    // to split), on 2 and 3 threads (3: one half splits again), with C rows padded by
    // sentinels that must stay.
    for &(m, n, k, tb) in &[(32, 300, 40, true), (12, 64, 9, true), (5, 200, 33, false), (1, 96, 17, false)] {
        for threads in [2, 3] {
            let (al, bl) = (layout(m, k, false, 0), layout(k, n, tb, 1));
            let cl = layout(m, n, false, 3);
            let a = random_vec(&mut rng, buffer_len(al));
            let b = random_vec(&mut rng, buffer_len(bl));
            let mut c = vec![f32::NAN; buffer_len(cl)];
            for i in 0..m {
                c[i * cl.row_stride..i * cl.row_stride + n].fill(0.5);
            }
            let want = naive(1.0, &a, al, &b, bl, 0.0, &c, cl);
            gemm(
                1.0,
                MatRef::new(&a, al).unwrap(),
                MatRef::new(&b, bl).unwrap(),
                0.0,
                MatMut::new(&mut c, cl).unwrap(),
                Parallelism::Threads(threads),
            )
            .unwrap();
            for (at, &v) in c.iter().enumerate() {
                let (i, j) = (at / cl.row_stride, at % cl.row_stride);
                if i < m && j < n {
                    check_close(
                        v,
                        want[i * n + j],
                        k,
                        &format!("{m}×{k}·{k}×{n} on {threads} at ({i}, {j})"),
                    );
                } else {
                    assert!(v.is_nan(), "padding at {at} written: {v}");
                }
            }
        }
    }
}

#[test]
fn one_row_products_split_along_the_depth_match_the_reference() {
    let mut rng = Rng::new(12);
    // Deep one-row products (a batch-1 layer) that two threads split along the depth, with
    // an odd depth, a width off whole vectors, a strided A row and C padding that must stay.
    for &(n, k, a_pad) in &[(128, 784, 0), (130, 301, 0), (72, 513, 2)] {
        for threads in [1, 2, 3] {
            let (al, bl) = (layout(1, k, a_pad > 0, a_pad), layout(k, n, false, 0));
            let cl = layout(1, n, false, 3);
            let a = random_vec(&mut rng, buffer_len(al));
            let b = random_vec(&mut rng, buffer_len(bl));
            let mut c = vec![f32::NAN; buffer_len(cl) + 3];
            let want = naive(1.0, &a, al, &b, bl, 0.0, &c, cl);
            let out = MatMut::new(&mut c, cl).unwrap();
            gemm(
                1.0,
                MatRef::new(&a, al).unwrap(),
                MatRef::new(&b, bl).unwrap(),
                0.0,
                out,
                Parallelism::Threads(threads),
            )
            .unwrap();
            for (j, want) in want.iter().enumerate() {
                check_close(c[j], *want, k, &format!("1×{k}·{k}×{n} on {threads} at {j}"));
            }
            assert!(c[n..].iter().all(|v| v.is_nan()), "1×{k}·{k}×{n} on {threads}: padding written");
        }
    }
}

/// `gemm_then` reports blocks that cover C exactly once, each already holding its final
/// values (those `gemm` computes), whether the product splits by rows or by columns, has
/// one row or several depth blocks, on one thread or three.
#[test]
fn finished_blocks_cover_c_once_with_their_final_values() {
    let mut rng = Rng::new(21);
    // (m, k, n, A transposed, C's columns stored column-major)
    let shapes = [
        (784, 32, 128, true, false),
        (40, 300, 90, false, false),
        (1, 200, 130, false, false),
        (13, 0, 20, false, false),
        (20, 600, 300, false, true),
        (7, 5, 40, true, false),
    ];
    for (m, k, n, at_, c_t) in shapes {
        let (al, bl, cl) = (layout(m, k, at_, 0), layout(k, n, false, 1), layout(m, n, c_t, 0));
        let (a, b) = (random_vec(&mut rng, buffer_len(al)), random_vec(&mut rng, buffer_len(bl)));
        fn views(x: &[f32], l: Layout) -> MatRef<'_> {
            MatRef::new(x, l).expect("valid view")
        }
        for threads in [1, 3] {
            // The same split as `gemm_then`'s: a row's bits depend on the height of the
            // panel it falls in (1- and 2-row panels add in another order).
            let par = if threads > 1 { Parallelism::Threads(threads) } else { Parallelism::Sequential };
            let mut want = vec![0.0; buffer_len(cl)];
            gemm(1.0, views(&a, al), views(&b, bl), 0.0, MatMut::new(&mut want, cl).expect("valid"), par)
                .expect("product");
            let seen = std::sync::Mutex::new(vec![0u32; m * n]);
            let mut c = vec![f32::NAN; buffer_len(cl)];
            let check = |block: FinishedBlock<'_>| {
                let mut seen = seen.lock().expect("no panic while held");
                for i in 0..block.rows {
                    for j in 0..block.cols {
                        let (r, col) = (block.row + i, block.col + j);
                        let got = block.values[i * block.row_stride + j * block.col_stride];
                        assert_eq!(
                            got.to_bits(),
                            at(&want, cl, r, col).to_bits(),
                            "({r}, {col}) of {m}x{k}x{n}"
                        );
                        seen[r * n + col] += 1;
                    }
                }
            };
            gemm_then(views(&a, al), views(&b, bl), MatMut::new(&mut c, cl).expect("valid"), par, &check)
                .expect("product");
            let seen = seen.into_inner().expect("no panic while held");
            assert!(seen.iter().all(|&s| s == 1), "{m}x{k}x{n} on {threads}: every element once");
        }
    }
}

/// A batch of `rows` samples of `k` features, stored row-major, whose features
/// `zero.0..zero.1` and `gap.0..gap.1` are zero in every sample.
fn blank_features(
    rng: &mut Rng,
    rows: usize,
    k: usize,
    zero: (usize, usize),
    gap: (usize, usize),
) -> Vec<f32> {
    let mut x = random_vec(rng, rows * k);
    for (i, v) in x.iter_mut().enumerate() {
        let p = i % k;
        if (zero.0..zero.1).contains(&p) || (gap.0..gap.1).contains(&p) {
            *v = 0.0;
        }
    }
    x
}

#[test]
fn skipping_a_batchs_zero_features_matches_the_reference_and_skips_only_long_runs() {
    use super::super::gemm_zero_a::MIN_ZERO_RUN;
    let mut rng = Rng::new(23);
    // A long run of blank features (skipped: a NaN in B's rows there never reaches C) and a
    // short one (computed: its NaN does), for a batch that splits on two threads and one
    // that does not, in a depth that needs two blocks and one that does not.
    for (m, k, n) in [(32, 784, 128), (7, 200, 40), (48, 300, 33)] {
        for threads in [1, 2] {
            let what = format!("{m}x{k}x{n} on {threads} threads");
            // Long enough to pay for itself too: an eighth of the features at least.
            let long = (10, 10 + (2 * MIN_ZERO_RUN).max(k / 8 + 1));
            let short = (k - 20, k - 20 + MIN_ZERO_RUN / 2);
            let a = blank_features(&mut rng, m, k, long, short);
            let (al, bl, cl) = (layout(m, k, false, 0), layout(k, n, false, 0), layout(m, n, false, 0));
            let mut b = random_vec(&mut rng, k * n);
            let want = naive(1.0, &a, al, &b, bl, 0.0, &[], cl);
            let par = if threads == 1 { Parallelism::Sequential } else { Parallelism::Threads(threads) };
            let run = |b: &[f32]| {
                let mut c = vec![f32::NAN; m * n];
                let (ma, mb) = (MatRef::new(&a, al).unwrap(), MatRef::new(b, bl).unwrap());
                gemm_skipping_zero_a(ma, mb, MatMut::new(&mut c, cl).unwrap(), par, None).unwrap();
                c
            };
            for (i, (&got, &want)) in run(&b).iter().zip(&want).enumerate() {
                check_close(got, want, k, &format!("{what} C[{i}]"));
            }
            b[long.0 * n..long.1 * n].fill(f32::NAN);
            assert!(run(&b).iter().all(|v| v.is_finite()), "{what}: the long blank run is skipped");
            b[short.0 * n] = f32::NAN;
            assert!(run(&b).iter().any(|v| v.is_nan()), "{what}: the short blank run is computed");
        }
    }
}

#[test]
fn skipping_a_batchs_zero_features_in_a_weight_gradient_matches_the_reference() {
    // Xᵀ·dY: A's rows are the features, so blank features are zero rows of A (whole 6-row
    // panels of them skip the kernel) and zero rows of C, which must still be written.
    let mut rng = Rng::new(29);
    let (features, batch, n) = (784, 32, 128);
    let x = blank_features(&mut rng, batch, features, (0, 100), (400, 413));
    let (al, bl, cl) =
        (layout(features, batch, true, 0), layout(batch, n, false, 0), layout(features, n, false, 0));
    let dy = random_vec(&mut rng, batch * n);
    let want = naive(1.0, &x, al, &dy, bl, 0.0, &[], cl);
    for threads in [1, 2] {
        let par = if threads == 1 { Parallelism::Sequential } else { Parallelism::Threads(threads) };
        let mut c = vec![f32::NAN; features * n];
        let seen = std::sync::Mutex::new(vec![0u8; features * n]);
        let done = |block: FinishedBlock<'_>| {
            let mut seen = seen.lock().unwrap();
            for i in 0..block.rows {
                for j in 0..block.cols {
                    seen[(block.row + i) * n + block.col + j] += 1;
                }
            }
        };
        let (ma, mb) = (MatRef::new(&x, al).unwrap(), MatRef::new(&dy, bl).unwrap());
        gemm_skipping_zero_a(ma, mb, MatMut::new(&mut c, cl).unwrap(), par, Some(&done)).unwrap();
        for (i, (&got, &want)) in c.iter().zip(&want).enumerate() {
            check_close(got, want, batch, &format!("{threads} threads, C[{i}]"));
        }
        assert!(seen.into_inner().unwrap().iter().all(|&s| s == 1), "every block of C reported once");
    }
}

#[test]
fn skipping_a_batch_of_zeros_leaves_zeros() {
    let (a, b) = (vec![0.0; 32 * 100], vec![f32::NAN; 100 * 16]);
    let mut c = vec![f32::NAN; 32 * 16];
    let (ma, mb) = (MatRef::row_major(&a, 32, 100).unwrap(), MatRef::row_major(&b, 100, 16).unwrap());
    gemm_skipping_zero_a(ma, mb, MatMut::row_major(&mut c, 32, 16).unwrap(), Parallelism::Sequential, None)
        .unwrap();
    assert!(c.iter().all(|&v| v == 0.0));
}
