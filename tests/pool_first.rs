//! `ir::pool_first`: max pooling moved ahead of the monotone maps that feed it gives the
//! same forward values bit for bit and the same gradients to rounding; a chain moves only
//! up to a node with another user, a map that varies over the window or one that is not
//! non-decreasing, and average pooling never moves.

use dnnc::autodiff::grad;
use dnnc::ir::pool_first::pool_first;
use dnnc::ir::{
    BinaryOp, Graph, Init, NodeId, Op, Padding, ParamInfo, PoolKind, ReduceOp, RunOptions, UnaryOp, run,
};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::shape::{DType, Dim, Shape, TensorType};
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};

fn sp() -> Span {
    Span::dummy()
}

fn f32t(dims: &[i64]) -> TensorType {
    TensorType::new(DType::F32, dims.iter().map(|&d| Dim::Const(d)).collect::<Shape>())
}

fn random(dims: &[usize], rng: &mut Rng) -> Value {
    let n = dims.iter().product();
    Value::F32(
        ArrayD::from_shape_vec(IxDyn(dims), (0..n).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect())
            .unwrap(),
    )
}

fn param(g: &mut Graph, name: &str, dims: &[i64]) -> NodeId {
    let ty = f32t(dims);
    g.add_param(ParamInfo { name: name.into(), ty, init: Init::Zeros, trainable: true, span: sp() })
}

fn pool(kind: PoolKind) -> Op {
    Op::Pool2D { kind, window: [2, 2], stride: [2, 2], padding: Padding::Same }
}

/// How the test graph maps the convolution's output before pooling.
#[derive(Clone, Copy, PartialEq)]
enum Chain {
    /// `relu(y + b)` with a bias per channel: moved.
    BiasRelu,
    /// `sigmoid(tanh(y − b))`: moved.
    SubTanhSigmoid,
    /// `relu(y + b)` with the sum also an output of the graph: only the relu moves.
    SharedSum,
    /// `relu(y + m)` with `m` varying over rows and columns: only the relu moves.
    BiasPerPixel,
    /// `relu(b − y)` (decreasing in `y`): only the relu moves.
    Reversed,
    /// `y · b` (a scale of either sign): stays.
    Scaled,
    /// `relu(y + b)` into an average pooling: stays.
    Average,
}

/// `loss = Σ r · pool(chain(conv(x, k)))` over a 2 × 7 × 5 × 3 input (odd sizes, so `same`
/// padding pads), with parameters `k`, `b` and `m`.
fn model(chain: Chain) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[2, 7, 5, 3]), sp());
    let r = g.add_input("r", f32t(&[2, 4, 3, 4]), sp());
    let k = param(&mut g, "k", &[3, 3, 3, 4]);
    let b = param(&mut g, "b", &[4]);
    let m = param(&mut g, "m", &[7, 5, 4]);
    let conv = Op::Conv2D { stride: [1, 1], padding: Padding::Same, dilation: [1, 1] };
    let y = g.add(conv, &[x, k], None, sp()).unwrap();
    let zero = g.scalar(0.0, DType::F32, sp());
    let mapped = match chain {
        Chain::BiasRelu | Chain::SharedSum | Chain::Average => {
            let sum = g.binary(BinaryOp::Add, y, b, sp()).unwrap();
            if chain == Chain::SharedSum {
                g.outputs.push(("sum".into(), sum));
            }
            g.binary(BinaryOp::Max, sum, zero, sp()).unwrap()
        }
        Chain::SubTanhSigmoid => {
            let d = g.binary(BinaryOp::Sub, y, b, sp()).unwrap();
            let t = g.unary(UnaryOp::Tanh, d, sp()).unwrap();
            g.unary(UnaryOp::Sigmoid, t, sp()).unwrap()
        }
        Chain::BiasPerPixel => {
            let sum = g.binary(BinaryOp::Add, m, y, sp()).unwrap();
            g.binary(BinaryOp::Max, zero, sum, sp()).unwrap()
        }
        Chain::Reversed => {
            let d = g.binary(BinaryOp::Sub, b, y, sp()).unwrap();
            g.binary(BinaryOp::Max, d, zero, sp()).unwrap()
        }
        Chain::Scaled => g.binary(BinaryOp::Mul, y, b, sp()).unwrap(),
    };
    let kind = if chain == Chain::Average { PoolKind::Avg } else { PoolKind::Max };
    let pooled = g.add(pool(kind), &[mapped], None, sp()).unwrap();
    let weighted = g.binary(BinaryOp::Mul, pooled, r, sp()).unwrap();
    let loss = g.reduce(ReduceOp::Sum, weighted, vec![0, 1, 2, 3], false, sp()).unwrap();
    g.outputs.push(("pooled".into(), pooled));
    g.outputs.push(("loss".into(), loss));
    g
}

/// The op of the node the graph's pooling reads.
fn pooled_op(g: &Graph) -> &Op {
    let pool = g.nodes.iter().find(|n| matches!(n.op, Op::Pool2D { .. })).expect("a pooling");
    &g.node(pool.inputs[0]).op
}

/// The outputs and the gradients of `k`, `b` and `m` of a graph on fixed random values.
fn evaluate(g: &Graph, seed: u64) -> Vec<Value> {
    let mut rng = Rng::new(seed);
    let inputs = [random(&[2, 7, 5, 3], &mut rng), random(&[2, 4, 3, 4], &mut rng)];
    let params = [random(&[3, 3, 3, 4], &mut rng), random(&[4], &mut rng), random(&[7, 5, 4], &mut rng)];
    let loss = g.output("loss").unwrap();
    let with_grads = grad(g, loss, &[0, 1, 2]).unwrap();
    let opts = RunOptions { seed: 0, step: 0, promote_f64: false, check_finite: false };
    run(&with_grads, &inputs, &params, &opts).unwrap()
}

#[test]
fn monotone_chains_move_behind_the_pooling_with_the_same_values_and_gradients() {
    let add = Op::Binary(BinaryOp::Add);
    let relu = Op::Binary(BinaryOp::Max);
    let conv = Op::Conv2D { stride: [1, 1], padding: Padding::Same, dilation: [1, 1] };
    let cases = [
        (Chain::BiasRelu, relu.clone(), conv.clone()),
        (Chain::SubTanhSigmoid, Op::Unary(UnaryOp::Sigmoid), conv.clone()),
        (Chain::SharedSum, relu.clone(), add.clone()),
        (Chain::BiasPerPixel, relu.clone(), add.clone()),
        (Chain::Reversed, relu.clone(), Op::Binary(BinaryOp::Sub)),
    ];
    for (chain, before, after) in cases {
        let original = model(chain);
        let moved = pool_first(&original);
        assert_eq!(pooled_op(&original), &before);
        assert_eq!(pooled_op(&moved), &after, "what the pooling reads once moved");
        assert_eq!(moved.outputs.iter().map(|(n, _)| n.as_str()).next_back(), Some("loss"));
        for seed in 1..4 {
            let (want, got) = (evaluate(&original, seed), evaluate(&moved, seed));
            assert_eq!(want.len(), got.len());
            // The graph's outputs (pooled values, loss, a shared sum): bit for bit.
            let outputs = original.outputs.len();
            for (w, g) in want.iter().zip(&got).take(outputs) {
                // f32 to f64 is exact, so equal f64 arrays are equal f32 values.
                assert_eq!(w.to_f64(), g.to_f64(), "forward values, seed {seed}");
            }
            for (w, g) in want.iter().zip(&got).skip(outputs) {
                for (a, b) in w.to_f64().iter().zip(g.to_f64()) {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "seed {seed}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn chains_that_do_not_commute_with_the_maximum_stay_as_written() {
    for chain in [Chain::Scaled, Chain::Average] {
        let original = model(chain);
        assert_eq!(pool_first(&original).nodes, original.nodes, "a chain that must stay was rewritten");
    }
}
