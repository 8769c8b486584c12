//! The reverse-mode transform: what it builds, what it refuses, and a gradient check of a
//! small classifier written with primitives.

use dnnc::autodiff::{GradCheckOptions, GradError, VjpRules, check_gradients, grad, grad_with};
use dnnc::ir::{
    BinaryOp, Graph, Init, NodeId, Op, ParamInfo, ReduceOp, RunOptions, UnaryOp, print_graph, run,
};
use dnnc::ops::{ShapeError, Value};
use dnnc::runtime::rng::Rng;
use dnnc::shape::{DType, Dim, Shape, TensorType};
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};

fn sp() -> Span {
    Span::dummy()
}

fn shape(dims: &[&str]) -> Shape {
    dims.iter().map(|d| d.parse::<i64>().map(Dim::Const).unwrap_or_else(|_| Dim::sym(d))).collect()
}

fn f32t(dims: &[&str]) -> TensorType {
    TensorType::new(DType::F32, shape(dims))
}

fn param(g: &mut Graph, name: &str, dims: &[&str], trainable: bool) -> NodeId {
    g.add_param(ParamInfo { name: name.into(), ty: f32t(dims), init: Init::Zeros, trainable, span: sp() })
}

fn sum_all(g: &mut Graph, x: NodeId) -> NodeId {
    let axes = (0..g.ty(x).rank()).collect();
    g.reduce(ReduceOp::Sum, x, axes, false, sp()).unwrap()
}

fn random(dims: &[usize], rng: &mut Rng) -> Value {
    let n = dims.iter().product();
    Value::F64(
        ArrayD::from_shape_vec(IxDyn(dims), (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()).unwrap(),
    )
}

fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| pred(&n.op)).count()
}

/// x: f32[B, 4] (data), w: f32[4, 3], b: f32[3]; loss = sum(x @ w + b).
fn linear() -> (Graph, NodeId) {
    let mut g = Graph::new("linear");
    let x = g.add_input("x", f32t(&["B", "4"]), sp());
    let w = param(&mut g, "w", &["4", "3"], true);
    let b = param(&mut g, "b", &["3"], true);
    let xw = g.matmul(x, w, sp()).unwrap();
    let y = g.binary(BinaryOp::Add, xw, b, sp()).unwrap();
    g.outputs.push(("y".into(), y));
    let loss = sum_all(&mut g, y);
    (g, loss)
}

#[test]
fn gradients_are_appended_as_named_outputs_after_the_original_ones() {
    let (g, loss) = linear();
    let d = grad(&g, loss, &[1, 0]).unwrap();
    let names: Vec<&str> = d.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["y", "grad.b", "grad.w"]);
    assert_eq!(d.nodes[..g.nodes.len()], g.nodes[..], "forward nodes are kept as they were");
    assert_eq!(d.ty(d.outputs[1].1), &f32t(&["3"]));
    assert_eq!(d.ty(d.outputs[2].1), &f32t(&["4", "3"]));
    assert!(print_graph(&d).contains("return grad.w = %"));
}

#[test]
fn input_data_gets_no_gradient() {
    let (g, loss) = linear();
    let d = grad(&g, loss, &[0]).unwrap();
    // The forward product and xᵀ·g for w; g·wᵀ (the gradient of x) must not be built.
    assert_eq!(count(&d, |op| *op == Op::MatMul), 2);
    // With B = 2 rows, d sum(x·w + b)/dw[i, j] = sum over rows of x[r, i].
    let xv =
        Value::F32(ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![1., 2., 3., 4., 5., 6., 7., 8.]).unwrap());
    let params = [Value::F32(ArrayD::zeros(IxDyn(&[4, 3]))), Value::F32(ArrayD::zeros(IxDyn(&[3])))];
    let out = run(&d, &[xv], &params, &RunOptions::default()).unwrap();
    let expected: Vec<f32> = [6.0, 8.0, 10.0, 12.0].iter().flat_map(|&v| [v; 3]).collect();
    assert_eq!(out[1], Value::F32(ArrayD::from_shape_vec(IxDyn(&[4, 3]), expected).unwrap()));
}

#[test]
fn frozen_state_is_refused_and_not_differentiated() {
    let mut g = Graph::new("frozen");
    let s = param(&mut g, "bn.mean", &["3"], false);
    let w = param(&mut g, "w", &["3"], true);
    let e = g.unary(UnaryOp::Exp, s, sp()).unwrap();
    let p = g.binary(BinaryOp::Mul, e, w, sp()).unwrap();
    let loss = sum_all(&mut g, p);
    assert_eq!(grad(&g, loss, &[0]).unwrap_err(), GradError::FrozenParam { name: "bn.mean".into() });
    let d = grad(&g, loss, &[1]).unwrap();
    // d/dw = g·exp(s): one multiplication; none for the chain through exp(s).
    let backward = &d.nodes[g.nodes.len()..];
    assert_eq!(backward.iter().filter(|n| n.op == Op::Binary(BinaryOp::Mul)).count(), 1);
    assert!(!backward.iter().any(|n| n.op == Op::Unary(UnaryOp::Exp)));
}

#[test]
fn the_loss_must_be_a_float_scalar_and_params_must_exist() {
    let (g, loss) = linear();
    let y = g.output("y").unwrap();
    assert!(matches!(grad(&g, y, &[0]), Err(GradError::LossNotScalar { .. })));
    let mut gi = g.clone();
    let li = gi.cast(loss, DType::I64, sp()).unwrap();
    assert!(matches!(grad(&gi, li, &[0]), Err(GradError::LossNotScalar { .. })));
    assert_eq!(grad(&g, loss, &[5]).unwrap_err(), GradError::NoSuchParam { index: 5, count: 2 });
    assert_eq!(
        GradError::LossNotScalar { loss: y, ty: f32t(&["B", "3"]) }.to_string(),
        format!("the loss must be a float scalar, but %{} has type f32[B, 3]", y.0)
    );
}

#[test]
fn a_parameter_the_loss_ignores_gets_zeros_and_one_used_twice_adds_up() {
    let mut g = Graph::new("twice");
    let w = param(&mut g, "w", &["3"], true);
    param(&mut g, "unused", &["2"], true);
    let ww = g.binary(BinaryOp::Mul, w, w, sp()).unwrap();
    let s = g.binary(BinaryOp::Add, ww, w, sp()).unwrap();
    let loss = sum_all(&mut g, s);
    let d = grad(&g, loss, &[0, 1]).unwrap();
    let wv = ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.5f32, -2.0, 3.0]).unwrap();
    let params = [Value::F32(wv.clone()), Value::F32(ArrayD::ones(IxDyn(&[2])))];
    let out = run(&d, &[], &params, &RunOptions::default()).unwrap();
    // d sum(w² + w)/dw = 2w + 1.
    assert_eq!(out[0], Value::F32(wv.mapv(|v| 2.0 * v + 1.0)));
    assert_eq!(out[1], Value::F32(ArrayD::zeros(IxDyn(&[2]))));
}

/// Returns the output gradient unchanged for every operand: wrong in type for reductions.
struct Identity;

impl VjpRules for Identity {
    fn vjp(&self, g: &mut Graph, node: NodeId, grad_out: NodeId) -> Result<Vec<Option<NodeId>>, ShapeError> {
        Ok(vec![Some(grad_out); g.node(node).inputs.len()])
    }
}

#[test]
fn a_rule_giving_the_wrong_type_is_reported() {
    let (g, loss) = linear();
    match grad_with(&g, loss, &[0], &Identity) {
        Err(GradError::RuleType { op, operand: 0, expected, got, .. }) => {
            assert_eq!((op.as_str(), expected, got), ("sum{axes=[0, 1]}", f32t(&["B", "3"]), f32t(&[])));
        }
        other => panic!("expected a rule type error, got {other:?}"),
    }
}

/// Softmax cross-entropy of a two-layer tanh network, written with primitives only:
/// logits = tanh(x·w1 + b1)·w2, loss = mean over rows of logsumexp(logits) − logits[label].
#[test]
fn a_small_classifier_passes_the_gradient_check() {
    let mut g = Graph::new("mlp");
    let x = g.add_input("x", f32t(&["B", "5"]), sp());
    let labels = g.add_input("labels", TensorType::new(DType::I64, shape(&["B"])), sp());
    let w1 = param(&mut g, "w1", &["5", "4"], true);
    let b1 = param(&mut g, "b1", &["4"], true);
    let w2 = param(&mut g, "w2", &["4", "3"], true);
    let h = g.matmul(x, w1, sp()).unwrap();
    let h = g.binary(BinaryOp::Add, h, b1, sp()).unwrap();
    let h = g.unary(UnaryOp::Tanh, h, sp()).unwrap();
    let logits = g.matmul(h, w2, sp()).unwrap();
    let m = g.reduce(ReduceOp::Max, logits, vec![1], true, sp()).unwrap();
    let shifted = g.binary(BinaryOp::Sub, logits, m, sp()).unwrap();
    let e = g.unary(UnaryOp::Exp, shifted, sp()).unwrap();
    let se = g.reduce(ReduceOp::Sum, e, vec![1], true, sp()).unwrap();
    let lse = g.unary(UnaryOp::Log, se, sp()).unwrap();
    let logp = g.binary(BinaryOp::Sub, shifted, lse, sp()).unwrap();
    let oh = g.add(Op::OneHot { depth: 3 }, &[labels], Some(f32t(&["B", "3"])), sp()).unwrap();
    let picked = g.binary(BinaryOp::Mul, oh, logp, sp()).unwrap();
    let total = sum_all(&mut g, picked);
    let n = g.add(Op::SizeOf { axes: vec![0] }, &[x], Some(f32t(&[])), sp()).unwrap();
    let mean = g.binary(BinaryOp::Div, total, n, sp()).unwrap();
    let loss = g.unary(UnaryOp::Neg, mean, sp()).unwrap();
    let mut rng = Rng::new(11);
    let xv = random(&[6, 5], &mut rng);
    let lv = Value::I64(ArrayD::from_shape_vec(IxDyn(&[6]), vec![0, 2, 1, 1, 0, 2]).unwrap());
    let params = [random(&[5, 4], &mut rng), random(&[4], &mut rng), random(&[4, 3], &mut rng)];
    let report =
        check_gradients(&g, loss, &[xv, lv], &params, &[0, 1, 2], &GradCheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
}
