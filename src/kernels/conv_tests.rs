//! The native convolution kernels against the reference kernels of `ops/conv.rs` (plain
//! im2col and ndarray products, computed in f64 here) on random shapes: strides 1 and 2,
//! dilations 1 and 2, `same` and `valid`, non-square inputs and kernels, one and two threads.

use super::*;
use crate::ir::Op;
use crate::kernels::simd::Isa;
use crate::ops::{EvalCtx, Value};
use crate::runtime::rng::Rng;
use crate::shape::DType;
use ndarray::{ArrayD, IxDyn};

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

fn value(shape: &[usize], data: &[f32]) -> Value {
    let wide = data.iter().map(|&v| f64::from(v)).collect();
    Value::F64(ArrayD::from_shape_vec(IxDyn(shape), wide).expect("sized"))
}

/// The reference kernel of `op` in f64.
fn reference(op: Op, a: (&[usize], &[f32]), b: (&[usize], &[f32]), out: &[usize]) -> Vec<f64> {
    let ctx = EvalCtx { dtype: DType::F64, shape: Some(out.to_vec()), seed: 0, step: 0 };
    let result = crate::ops::eval(&op, &[&value(a.0, a.1), &value(b.0, b.1)], &ctx).expect("reference");
    match result {
        Value::F64(r) => r.iter().copied().collect(),
        other => panic!("unexpected {other:?}"),
    }
}

fn assert_close(native: &[f32], reference: &[f64], what: &str) {
    assert_eq!(native.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (&n, &r)) in native.iter().zip(reference).enumerate() {
        assert!((f64::from(n) - r).abs() <= 1e-5 * scale, "{what}: element {i} is {n}, reference {r}");
    }
}

/// The shapes a random case draws.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    /// Few channels and filters, any window: im2col and the GEMM.
    General,
    /// Few channels and whole vectors of filters: the direct kernels' shapes.
    Shallow,
    /// 3×3, stride 1, no dilation, deep channels and filters: the Winograd kernels' shapes.
    Winograd,
}

/// One random case of `kind`: shapes, attributes, and all three ops with `threads`, the
/// forward pass and the filter gradient on every instruction set.
fn case(rng: &mut Rng, threads: usize, kind: Kind) -> bool {
    let pick = |rng: &mut Rng, lo: usize, hi: usize| lo + rng.below((hi - lo + 1) as u64) as usize;
    let winograd = kind == Kind::Winograd;
    let stride = if winograd { [1, 1] } else { [pick(rng, 1, 2), pick(rng, 1, 2)] };
    let dilation = if winograd { [1, 1] } else { [pick(rng, 1, 2), pick(rng, 1, 2)] };
    let padding = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
    let (kh, kw) = if winograd { (3, 3) } else { (pick(rng, 1, 3), pick(rng, 1, 4)) };
    let (b, c, f) = match kind {
        Kind::Shallow => (pick(rng, 1, 3), pick(rng, 1, 2), 8 * pick(rng, 1, 6)),
        Kind::General => (pick(rng, 1, 3), pick(rng, 1, 5), pick(rng, 1, 6)),
        Kind::Winograd => (pick(rng, 1, 3), pick(rng, 16, 27), pick(rng, 16, 35)),
    };
    let (h, w) = (pick(rng, (kh - 1) * dilation[0] + 1, 9), pick(rng, (kw - 1) * dilation[1] + 1, 11));
    let (xs, ks) = ([b, h, w, c], [kh, kw, c, f]);
    let geo = ConvGeometry::new(&xs, &ks, stride, padding, dilation).expect("the window fits");
    let ys = [b, geo.rows.output, geo.cols.output, f];
    let what =
        format!("x {xs:?} k {ks:?} stride {stride:?} dilation {dilation:?} {padding:?} threads {threads}");
    let (x, k, g) =
        (random(rng, geo.input_len()), random(rng, geo.kernel_len()), random(rng, geo.output_len()));

    assert_eq!(geo.is_direct(Isa::Avx2), kind == Kind::Shallow && geo.taps() <= DIRECT_DEPTH, "{what}");
    assert_eq!(geo.is_winograd(), winograd, "{what}");
    let want = reference(Op::Conv2D { stride, padding, dilation }, (&xs, &x), (&ks, &k), &ys);
    for isa in Isa::all() {
        let mut y = vec![f32::NAN; geo.output_len()];
        let mut scratch = vec![f32::NAN; geo.scratch_len(ConvOp::Forward, threads)];
        conv2d_on(isa, &geo, &x, &k, &mut y, &mut scratch, threads).expect("forward");
        assert_close(&y, &want, &format!("conv2d {isa:?} {what}"));
    }

    let mut dx = vec![f32::NAN; geo.input_len()];
    let mut scratch = vec![f32::NAN; geo.scratch_len(ConvOp::BackpropInput, threads)];
    conv2d_backprop_input(&geo, &g, &k, &mut dx, &mut scratch, threads).expect("input gradient");
    let want = reference(Op::Conv2DBackpropInput { stride, padding, dilation }, (&ys, &g), (&ks, &k), &xs);
    assert_close(&dx, &want, &format!("conv2d_backprop_input {what}"));

    let want = reference(Op::Conv2DBackpropFilter { stride, padding, dilation }, (&xs, &x), (&ys, &g), &ks);
    for isa in Isa::all() {
        let mut dk = vec![f32::NAN; geo.kernel_len()];
        let mut scratch = vec![f32::NAN; geo.scratch_len(ConvOp::BackpropFilter, threads)];
        conv2d_backprop_filter_on(isa, &geo, &x, &g, &mut dk, &mut scratch, threads)
            .expect("filter gradient");
        assert_close(&dk, &want, &format!("conv2d_backprop_filter {isa:?} {what}"));
    }
    geo.is_direct(Isa::Avx2)
}

#[test]
fn native_convolutions_match_the_reference_on_random_shapes() {
    let mut rng = Rng::new(11);
    for _ in 0..60 {
        case(&mut rng, 1, Kind::General);
    }
}

#[test]
fn direct_convolutions_of_shallow_patches_match_the_reference() {
    let mut rng = Rng::new(13);
    let mut direct = 0;
    for round in 0..40 {
        direct += usize::from(case(&mut rng, 1 + round % 2, Kind::Shallow));
    }
    assert!(direct >= 10, "only {direct} cases ran the direct kernels");
}

#[test]
fn threaded_convolutions_match_the_reference() {
    let mut rng = Rng::new(12);
    for _ in 0..20 {
        case(&mut rng, 2, Kind::General);
    }
}

#[test]
fn winograd_convolutions_match_the_reference() {
    // Odd and even output sizes (a last tile row or column cut off), `same` and `valid`
    // padding, channel and filter counts off whole vectors of 8, on one to three threads.
    let mut rng = Rng::new(14);
    for round in 0..24 {
        case(&mut rng, 1 + round % 3, Kind::Winograd);
    }
}

#[test]
fn chunking_covers_large_patch_matrices() {
    // 2 × 30 × 30 positions and 72 taps: chunks of 910 rows, one crossing the image border.
    let geo =
        ConvGeometry::new(&[2, 32, 32, 8], &[3, 3, 8, 4], [1, 1], Padding::Valid, [1, 1]).expect("fits");
    assert!(geo.products(ConvOp::Forward, 0..2).count() > 1, "the patch matrix is cut into chunks");
    let mut rng = Rng::new(3);
    let (x, k) = (random(&mut rng, geo.input_len()), random(&mut rng, geo.kernel_len()));
    let mut y = vec![0.0; geo.output_len()];
    let mut scratch = vec![0.0; geo.scratch_len(ConvOp::Forward, 1)];
    conv2d(&geo, &x, &k, &mut y, &mut scratch, 1).expect("forward");
    let want = reference(
        Op::Conv2D { stride: [1, 1], padding: Padding::Valid, dilation: [1, 1] },
        (&[2, 32, 32, 8], &x),
        (&[3, 3, 8, 4], &k),
        &[2, 30, 30, 4],
    );
    assert_close(&y, &want, "chunked forward");
}

#[test]
fn short_slices_and_bad_shapes_are_errors() {
    let geo = ConvGeometry::new(&[1, 4, 4, 2], &[3, 3, 2, 3], [1, 1], Padding::Same, [1, 1]).expect("fits");
    let (x, k) = (vec![0.0; geo.input_len()], vec![0.0; geo.kernel_len()]);
    let mut y = vec![0.0; geo.output_len()];
    let mut short = vec![0.0; geo.scratch_len(ConvOp::Forward, 1) - 1];
    assert!(matches!(
        conv2d(&geo, &x, &k, &mut y, &mut short, 1),
        Err(ConvError::Length { what: "scratch", .. })
    ));
    assert!(matches!(
        conv2d(&geo, &x[1..], &k, &mut y, &mut short, 1),
        Err(ConvError::Length { what: "input", .. })
    ));
    assert!(ConvGeometry::new(&[1, 4, 4, 2], &[3, 3, 1, 3], [1, 1], Padding::Same, [1, 1]).is_err());
    assert!(ConvGeometry::new(&[1, 2, 4, 2], &[3, 3, 2, 3], [1, 1], Padding::Valid, [1, 1]).is_err());
}
