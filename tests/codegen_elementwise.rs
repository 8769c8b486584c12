//! Differential tests of the Cranelift JIT: random expression trees over random shapes and
//! access patterns, compiled and run, against `KernelExpr::eval`, the scalar reference.
//!
//! Tolerance: elementwise outputs must match the reference bit for bit (NaN matching any
//! NaN, and -0 matching +0), since `eval` performs the same IEEE operations in the same
//! order. Max reductions are exact too; sums are compared with |got - want| <= 1e-5·Σ|term|
//! because the JIT adds in sixteen interleaved partial sums, the reference in f64.

use dnnc::codegen::{Access, Jit, Kernel, KernelError, KernelExpr, KernelSpec, ReduceAxis};
use dnnc::ir::{BinaryOp, ReduceOp, UnaryOp};
use dnnc::runtime::rng::Rng;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::cell::RefCell;

const UNARY: [UnaryOp; 9] = [
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
    UnaryOp::Sign,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Not,
];
const BINARY: [BinaryOp; 14] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::Eq,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::And,
    BinaryOp::Or,
];
const ACCESSES: [Access; 4] = [Access::Full, Access::Row, Access::Col, Access::Scalar];
const COLS: [usize; 9] = [0, 1, 3, 4, 5, 16, 17, 67, 100];
const ROWS: [usize; 5] = [0, 1, 2, 3, 7];
const INPUTS: usize = 4;

fn expr() -> impl Strategy<Value = KernelExpr> {
    let leaf = prop_oneof![
        3 => (0..INPUTS).prop_map(KernelExpr::Input),
        1 => prop::sample::select(vec![0.0f32, -0.0, 1.0, 0.5, -2.0, 3.0, f32::INFINITY]).prop_map(KernelExpr::Const),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            1 => (prop::sample::select(UNARY.to_vec()), inner.clone()).prop_map(|(op, x)| KernelExpr::unary(op, x)),
            3 => (prop::sample::select(BINARY.to_vec()), inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| KernelExpr::binary(op, a, b)),
            1 => (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| KernelExpr::select(c, a, b)),
        ]
    })
}

/// Mostly values in [-3, 3], sometimes a zero, an infinity, a NaN or a large value.
fn data(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| match rng.below(20) {
            0 => 0.0,
            1 => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0][rng.below(4) as usize],
            2 => (rng.uniform() as f32 - 0.5) * 200.0,
            _ => (rng.uniform() as f32 - 0.5) * 6.0,
        })
        .collect()
}

fn same(got: f32, want: f32) -> bool {
    got == want || (got.is_nan() && want.is_nan())
}

/// The element `(r, c)` of each input under its access pattern.
fn element(inputs: &[Vec<f32>], accesses: &[Access], r: usize, c: usize, cols: usize) -> Vec<f32> {
    inputs
        .iter()
        .zip(accesses)
        .map(|(v, a)| match a {
            Access::Full => v[r * cols + c],
            Access::Row => v[c],
            Access::Col => v[r],
            Access::Scalar => v[0],
        })
        .collect()
}

thread_local! {
    static JIT: RefCell<Jit> = RefCell::new(Jit::new().expect("host supported"));
}

fn compile(spec: &KernelSpec) -> (Kernel, bool) {
    JIT.with(|jit| {
        let mut jit = jit.borrow_mut();
        (jit.compile(spec).expect("valid spec compiles"), jit.contracts())
    })
}

fn check_case(
    outputs: Vec<KernelExpr>,
    accesses: Vec<Access>,
    rows: usize,
    cols: usize,
    reduce: (ReduceOp, ReduceAxis),
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let inputs: Vec<Vec<f32>> = accesses.iter().map(|a| data(&mut rng, a.len(rows, cols).unwrap())).collect();
    let input_refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();

    let spec = KernelSpec::elementwise(accesses.clone(), outputs.clone());
    let (kernel, fused) = compile(&spec);
    let mut results = vec![vec![f32::NAN; rows * cols]; outputs.len()];
    let mut out_refs: Vec<&mut [f32]> = results.iter_mut().map(|v| v.as_mut_slice()).collect();
    kernel.run(&input_refs, &mut out_refs, rows, cols).unwrap();
    for r in 0..rows {
        for c in 0..cols {
            let x = element(&inputs, &accesses, r, c, cols);
            for (k, e) in outputs.iter().enumerate() {
                let (got, want) = (results[k][r * cols + c], e.eval(&x, fused));
                prop_assert!(
                    same(got, want),
                    "output {k} at ({r}, {c}) of {rows}×{cols}: got {got}, want {want}, inputs {x:?}"
                );
            }
        }
    }

    let (op, axis) = reduce;
    let spec = KernelSpec::reduce(accesses.clone(), outputs[0].clone(), op, axis);
    let (kernel, _) = compile(&spec);
    let n = if axis == ReduceAxis::Cols { rows } else { cols };
    let mut out = vec![f32::NAN; n];
    kernel.run(&input_refs, &mut [&mut out], rows, cols).unwrap();
    for (i, &got) in out.iter().enumerate() {
        let terms: Vec<f32> = match axis {
            ReduceAxis::Cols => {
                (0..cols).map(|c| outputs[0].eval(&element(&inputs, &accesses, i, c, cols), fused)).collect()
            }
            ReduceAxis::Rows => {
                (0..rows).map(|r| outputs[0].eval(&element(&inputs, &accesses, r, i, cols), fused)).collect()
            }
        };
        match op {
            ReduceOp::Max => {
                let want = terms.iter().fold(f32::NEG_INFINITY, |m, &t| {
                    if m.is_nan() || t.is_nan() { f32::NAN } else { m.max(t) }
                });
                prop_assert!(same(got, want), "max {axis:?} {i}: got {got}, want {want}");
            }
            ReduceOp::Sum => {
                let want: f64 = terms.iter().map(|&t| t as f64).sum();
                let scale: f64 = terms.iter().map(|&t| (t as f64).abs()).sum();
                let ok = if want.is_finite() && scale.is_finite() {
                    (got as f64 - want).abs() <= 1e-5 * scale
                        || (scale > f32::MAX as f64 && got.is_infinite())
                } else {
                    same(got, want as f32) || (want.is_finite() && got.is_infinite())
                };
                prop_assert!(ok, "sum {axis:?} {i}: got {got}, want {want}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config { cases: 110, rng_seed: RngSeed::Fixed(20_261_107), failure_persistence: None, ..Config::default() })]

    #[test]
    fn random_trees_match_the_scalar_reference(
        first in expr(),
        second in expr(),
        two_outputs in any::<bool>(),
        accesses in prop::collection::vec(prop::sample::select(ACCESSES.to_vec()), INPUTS),
        rows in prop::sample::select(ROWS.to_vec()),
        cols in prop::sample::select(COLS.to_vec()),
        reduce_max in any::<bool>(),
        over_rows in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let outputs = if two_outputs { vec![first, second] } else { vec![first] };
        let op = if reduce_max { ReduceOp::Max } else { ReduceOp::Sum };
        let axis = if over_rows { ReduceAxis::Rows } else { ReduceAxis::Cols };
        check_case(outputs, accesses, rows, cols, (op, axis), seed)?;
    }
}

#[test]
fn bias_relu_with_mask_output_is_exact() {
    // y = max(x + b, 0) and its mask (x + b > 0) from one kernel: the multi-output fusion
    // a dense layer's forward and backward passes share.
    let pre = KernelExpr::binary(BinaryOp::Add, KernelExpr::Input(0), KernelExpr::Input(1));
    let relu = KernelExpr::binary(BinaryOp::Max, pre.clone(), KernelExpr::Const(0.0));
    let mask = KernelExpr::binary(BinaryOp::Gt, pre, KernelExpr::Const(0.0));
    let (kernel, _) = compile(&KernelSpec::elementwise(vec![Access::Full, Access::Row], vec![relu, mask]));
    let (rows, cols) = (3, 5);
    let x: Vec<f32> = (0..15).map(|i| i as f32 - 7.0).collect();
    let b = [0.5, -0.5, 0.0, 1.0, -1.0];
    let (mut y, mut m) = (vec![0.0; 15], vec![0.0; 15]);
    kernel.run(&[&x, &b], &mut [&mut y, &mut m], rows, cols).unwrap();
    for i in 0..15 {
        let v = x[i] + b[i % 5];
        assert_eq!(y[i], v.max(0.0), "relu at {i}");
        assert_eq!(m[i], if v > 0.0 { 1.0 } else { 0.0 }, "mask at {i}");
    }
}

#[test]
fn bad_slices_and_specs_are_errors() {
    let add = KernelExpr::binary(BinaryOp::Add, KernelExpr::Input(0), KernelExpr::Input(1));
    let (kernel, _) = compile(&KernelSpec::elementwise(vec![Access::Full, Access::Col], vec![add]));
    let x = [0.0; 6];
    let mut y = [0.0; 6];
    let short = kernel.run(&[&x, &[0.0; 3]], &mut [&mut y], 2, 3);
    assert!(matches!(
        short,
        Err(KernelError::SliceLength { what: "input", index: 1, expected: 2, got: 3, .. })
    ));
    let missing = kernel.run(&[&x], &mut [&mut y], 2, 3);
    assert!(matches!(missing, Err(KernelError::SliceCount { what: "input", expected: 2, got: 1 })));
    let mut long = [0.0; 7];
    let wrong_out = kernel.run(&[&x, &[0.0; 2]], &mut [&mut long], 2, 3);
    assert!(matches!(wrong_out, Err(KernelError::SliceLength { what: "output", expected: 6, got: 7, .. })));
    let huge = kernel.run(&[&x, &[0.0; 2]], &mut [&mut y], usize::MAX, 2);
    assert!(matches!(huge, Err(KernelError::DomainTooLarge { .. })));
    let out_of_range = KernelSpec::elementwise(vec![Access::Full], vec![KernelExpr::Input(1)]);
    let err = JIT.with(|jit| jit.borrow_mut().compile(&out_of_range).unwrap_err());
    assert_eq!(err, KernelError::InputOutOfRange { index: 1, count: 1 });
    let empty = KernelSpec::elementwise(vec![], vec![]);
    assert_eq!(JIT.with(|jit| jit.borrow_mut().compile(&empty).unwrap_err()), KernelError::NoOutputs);
}

#[test]
fn compile_time_per_kernel_is_small() {
    // A bias + ReLU kernel and a tanh-heavy one; the bound is loose for debug builds and a
    // busy machine (release measurements are in the benches).
    let pre = KernelExpr::binary(BinaryOp::Add, KernelExpr::Input(0), KernelExpr::Input(1));
    let relu = KernelExpr::binary(BinaryOp::Max, pre.clone(), KernelExpr::Const(0.0));
    let tanh = KernelExpr::unary(UnaryOp::Tanh, pre);
    for outputs in [vec![relu], vec![tanh]] {
        let (kernel, _) = compile(&KernelSpec::elementwise(vec![Access::Full, Access::Row], outputs));
        println!("compile time: {:?}", kernel.compile_time());
        assert!(kernel.compile_time().as_millis() < 500, "took {:?}", kernel.compile_time());
    }
}

#[test]
fn clif_text_shows_vector_code() {
    let relu = KernelExpr::binary(BinaryOp::Max, KernelExpr::Input(0), KernelExpr::Const(0.0));
    let text = dnnc::codegen::clif_text(&KernelSpec::elementwise(vec![Access::Full], vec![relu])).unwrap();
    assert!(text.contains("f32x4"), "{text}");
    assert!(text.contains("fcmp lt"), "{text}");
    assert!(text.contains("bitselect"), "{text}");
}
