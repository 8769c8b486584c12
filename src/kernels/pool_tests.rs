//! The native pooling kernels against the reference kernels of `ops/pool.rs` on random
//! shapes, windows, strides and paddings (exact equality: both take the same max and sum
//! in the same order), including ties, NaNs and overlapping windows.

use super::*;
use crate::ir::Op;
use crate::kernels::simd::Isa;
use crate::ops::{EvalCtx, Value};
use crate::runtime::rng::Rng;
use crate::shape::DType;
use ndarray::{ArrayD, IxDyn};

fn value(shape: &[usize], data: &[f32]) -> Value {
    Value::F32(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).expect("sized"))
}

fn reference(op: Op, operands: &[(&[usize], &[f32])], out: &[usize]) -> Vec<f32> {
    let values: Vec<Value> = operands.iter().map(|(s, d)| value(s, d)).collect();
    let refs: Vec<&Value> = values.iter().collect();
    let ctx = EvalCtx { dtype: DType::F32, shape: Some(out.to_vec()), seed: 0, step: 0 };
    match crate::ops::eval(&op, &refs, &ctx).expect("reference") {
        Value::F32(r) => r.iter().copied().collect(),
        other => panic!("unexpected {other:?}"),
    }
}

fn same(native: &[f32], reference: &[f32], what: &str) {
    assert_eq!(native.len(), reference.len(), "{what}");
    for (i, (n, r)) in native.iter().zip(reference).enumerate() {
        assert!(n.to_bits() == r.to_bits() || (n.is_nan() && r.is_nan()), "{what}: element {i}: {n} vs {r}");
    }
}

#[test]
fn native_pooling_matches_the_reference_on_random_shapes() {
    let mut rng = Rng::new(5);
    let pick = |rng: &mut Rng, lo: usize, hi: usize| lo + rng.below((hi - lo + 1) as u64) as usize;
    for round in 0..140 {
        let kind = if round % 2 == 0 { PoolKind::Max } else { PoolKind::Avg };
        let mut window = [pick(&mut rng, 1, 3), pick(&mut rng, 1, 4)];
        let mut stride = [pick(&mut rng, 1, 3), pick(&mut rng, 1, 2)];
        let mut padding = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
        let channels = pick(&mut rng, 1, 20);
        let mut xs =
            [pick(&mut rng, 1, 2), pick(&mut rng, window[0], 7), pick(&mut rng, window[1], 8), channels];
        if round >= 120 {
            // Disjoint 2×2 windows (the max gradient's stored path) over several vectors of
            // channels, tiling the input or leaving its last row or column out.
            (window, stride, padding) = ([2, 2], [2, 2], Padding::Valid);
            let side = |rng: &mut Rng| 2 * pick(rng, 1, 4) + pick(rng, 0, 1);
            xs = [2, side(&mut rng), side(&mut rng), pick(&mut rng, 15, 34)];
        }
        let geo = PoolGeometry::new(kind, &xs, window, stride, padding).expect("fits");
        let ys = [xs[0], geo.rows.output, geo.cols.output, xs[3]];
        // Few distinct values make ties common; an occasional NaN checks that it wins.
        let x: Vec<f32> = (0..geo.input_len())
            .map(|_| match rng.below(40) {
                0 => f32::NAN,
                1 => -0.0,
                v => (v % 5) as f32 - 2.0,
            })
            .collect();
        // A -0 gradient checks the sum into zeros (the reference's `0 + g` is +0).
        let g: Vec<f32> = (0..geo.output_len())
            .map(|_| if rng.below(10) == 0 { -0.0 } else { rng.uniform() as f32 - 0.5 })
            .collect();
        let what = format!("{kind:?} x {xs:?} window {window:?} stride {stride:?} {padding:?}");

        let forward = reference(Op::Pool2D { kind, window, stride, padding }, &[(&xs, &x)], &ys);
        let op = Op::Pool2DGrad { kind, window, stride, padding };
        let backward = reference(op, &[(&xs, &x), (&ys, &g)], &xs);
        for isa in Isa::all() {
            // Two threads split the batch (of one or two images).
            let threads = 1 + round % 2;
            let what = format!("{isa:?} {threads} threads {what}");
            let mut y = vec![0.0; geo.output_len()];
            pool2d_on(isa, &geo, &x, &mut y, threads).expect("forward");
            same(&y, &forward, &what);
            let mut dx = vec![f32::NAN; geo.input_len()];
            pool2d_grad_on(isa, &geo, &x, &g, &mut dx, threads).expect("gradient");
            same(&dx, &backward, &format!("grad {what}"));
        }
    }
}

#[test]
fn short_slices_and_oversized_windows_are_errors() {
    let geo = PoolGeometry::new(PoolKind::Max, &[1, 4, 4, 2], [2, 2], [2, 2], Padding::Valid).expect("fits");
    let mut y = vec![0.0; geo.output_len()];
    assert!(matches!(pool2d(&geo, &[0.0; 3], &mut y, 1), Err(PoolError::Length { what: "input", .. })));
    let too_big = PoolGeometry::new(PoolKind::Avg, &[1, 2, 5, 1], [3, 3], [1, 1], Padding::Valid);
    assert!(matches!(too_big, Err(PoolError::Shape { .. })));
}
