//! The JIT against the interpreter on randomly generated graphs (proptest): elementwise
//! chains, broadcasts of biases and per-row values, reductions over either axis with and
//! without kept axes, matrix products with transposed operands, selects and reshapes, run
//! at two batch sizes (1, where broadcasting and full access coincide, and 5).
//!
//! Every output must agree within 1e-3 of its largest magnitude: the JIT reassociates sums
//! and its transcendental functions are polynomials within a few ULP. Inputs stay in
//! [-1, 1] and the generator guards log, sqrt and division so that values stay finite.

use dnnc::codegen::PlanOptions;
use dnnc::ir::{BinaryOp, Graph, Init, NodeId, ParamInfo, ReduceOp, RunOptions, UnaryOp};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{Executable, JitExecutable};
use dnnc::shape::{DType, Dim, TensorType};
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

fn sp() -> Span {
    Span::dummy()
}

fn f32t(dims: &[Dim]) -> TensorType {
    TensorType::new(DType::F32, dims.to_vec())
}

/// Builds a graph from a list of choices; choices that do not type-check are skipped.
fn build(choices: &[(u8, usize, usize, u8)]) -> Graph {
    let b = Dim::sym("B");
    let mut g = Graph::new("random");
    let x = g.add_input("x", f32t(&[b.clone(), Dim::Const(6)]), sp());
    let v = g.add_input("v", f32t(&[b.clone(), Dim::Const(5)]), sp());
    let param = |g: &mut Graph, name: &str, dims: &[i64]| {
        let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Const(d)).collect();
        let info =
            ParamInfo { name: name.into(), ty: f32t(&dims), init: Init::Zeros, trainable: true, span: sp() };
        g.add_param(info)
    };
    let w = param(&mut g, "w", &[6, 5]);
    let bias = param(&mut g, "bias", &[5]);
    let w2 = param(&mut g, "w2", &[5, 6]);
    let mut pool: Vec<NodeId> = vec![x, v, w, bias, w2];
    for &(kind, i, j, k) in choices {
        let a = pool[i % pool.len()];
        let c = pool[j % pool.len()];
        let one = g.scalar(1.0, DType::F32, sp());
        let made = match kind % 8 {
            0 => {
                let op = [UnaryOp::Neg, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Abs][k as usize % 4];
                g.unary(op, a, sp()).ok()
            }
            1 => {
                // exp(tanh a), log(1 + a²), sqrt(|a|): finite for any finite a.
                match k % 3 {
                    0 => g.unary(UnaryOp::Tanh, a, sp()).and_then(|t| g.unary(UnaryOp::Exp, t, sp())).ok(),
                    1 => g
                        .binary(BinaryOp::Mul, a, a, sp())
                        .and_then(|s| g.binary(BinaryOp::Add, s, one, sp()))
                        .and_then(|s| g.unary(UnaryOp::Log, s, sp()))
                        .ok(),
                    _ => g.unary(UnaryOp::Abs, a, sp()).and_then(|s| g.unary(UnaryOp::Sqrt, s, sp())).ok(),
                }
            }
            2 => {
                let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Max, BinaryOp::Min]
                    [k as usize % 5];
                g.binary(op, a, c, sp()).ok()
            }
            3 => g
                .unary(UnaryOp::Abs, c, sp())
                .and_then(|d| g.binary(BinaryOp::Add, d, one, sp()))
                .and_then(|d| g.binary(BinaryOp::Div, a, d, sp()))
                .ok(),
            4 => {
                let rank = g.ty(a).rank();
                if rank == 0 {
                    None
                } else {
                    let axis = if k % 2 == 0 { rank - 1 } else { 0 };
                    let op = if k % 4 < 2 { ReduceOp::Sum } else { ReduceOp::Max };
                    g.reduce(op, a, vec![axis], k % 3 == 0, sp()).ok()
                }
            }
            5 => {
                // a @ (a weight that fits), or a^T @ (an input): a layer and a weight gradient.
                let shape = g.ty(a).shape.clone();
                match (shape.as_slice(), k % 2) {
                    ([_, Dim::Const(6)], 0) => g.matmul(a, w, sp()).ok(),
                    ([_, Dim::Const(5)], 0) => g.matmul(a, w2, sp()).ok(),
                    ([d, _], 1) if *d == b => {
                        let rhs = if k % 4 == 1 { x } else { v };
                        g.transpose(a, vec![1, 0], sp()).and_then(|t| g.matmul(t, rhs, sp())).ok()
                    }
                    _ => g.matmul(a, c, sp()).ok(),
                }
            }
            6 => g.binary(BinaryOp::Gt, a, c, sp()).and_then(|m| g.select(m, a, c, sp())).ok(),
            _ => {
                // [B, 1] <-> [B] and a bias broadcast to [B, 5].
                let shape = g.ty(a).shape.clone();
                match shape.as_slice() {
                    [d, Dim::Const(1)] => g.reshape(a, std::slice::from_ref(d), sp()).ok(),
                    [d] if *d == b => g.reshape(a, &[b.clone(), Dim::Const(1)], sp()).ok(),
                    [Dim::Const(5)] => g.broadcast_to(a, &[b.clone(), Dim::Const(5)], sp()).ok(),
                    _ => None,
                }
            }
        };
        if let Some(n) = made {
            pool.push(n);
        }
    }
    let n = pool.len();
    let picks = [n - 1, n / 2 + 2, n.saturating_sub(3)];
    for (k, &p) in picks.iter().enumerate() {
        let node = pool[p.min(n - 1)];
        if !g.outputs.iter().any(|(_, o)| *o == node) {
            g.outputs.push((format!("out{k}"), node));
        }
    }
    g
}

fn random(shape: &[usize], rng: &mut Rng) -> Value {
    let n = shape.iter().product();
    Value::F32(
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect())
            .unwrap(),
    )
}

fn check(g: &Graph, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let params = vec![random(&[6, 5], &mut rng), random(&[5], &mut rng), random(&[5, 6], &mut rng)];
    let mut jit = JitExecutable::new(g, 0, PlanOptions::default());
    for batch in [1, 5] {
        let inputs = vec![random(&[batch, 6], &mut rng), random(&[batch, 5], &mut rng)];
        prop_assert!(
            jit.program(&inputs).unwrap().is_some(),
            "the JIT compiles:\n{}",
            dnnc::ir::print_graph(g)
        );
        let got = jit.run(&inputs, &params, 0).unwrap();
        let want = dnnc::ir::run(g, &inputs, &params, &RunOptions::default()).unwrap();
        for ((name, _), (a, b)) in g.outputs.iter().zip(got.iter().zip(&want)) {
            let (a, b) = (a.to_f64(), b.to_f64());
            prop_assert_eq!(a.shape(), b.shape());
            let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(b.iter()) {
                prop_assert!(
                    (x - y).abs() <= 1e-3 * scale,
                    "{name} (B = {batch}): jit {x} vs interp {y}\n{}\n{}",
                    dnnc::ir::print_graph(g),
                    dnnc::fuse::print_schedule(&dnnc::fuse::schedule(g).unwrap())
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_agree_with_the_interpreter(
        choices in proptest::collection::vec((0u8..8, 0usize..64, 0usize..64, 0u8..12), 3..14),
        seed in 0u64..1000,
    ) {
        let g = build(&choices);
        check(&g, seed)?;
    }
}

/// A fixed graph that exercises every access pattern in one kernel: a bias row, a per-row
/// column, a scalar and a full operand, plus a reduction over each axis.
#[test]
fn every_access_pattern_in_one_kernel() {
    let choices = [(2, 0, 3, 0), (4, 5, 0, 0), (7, 6, 0, 0), (2, 5, 7, 0), (4, 8, 0, 1), (0, 9, 0, 1)];
    let g = build(&choices);
    check(&g, 3).unwrap();
}
