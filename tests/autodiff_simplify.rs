//! Simplification passes: each rewrite on a small graph, and unchanged results on random
//! inputs for forward and gradient graphs.

use dnnc::autodiff::grad;
use dnnc::ir::simplify::{eliminate_common_subexpressions, eliminate_dead_code, fold_constants, simplify};
use dnnc::ir::{BinaryOp, Graph, Init, NodeId, Op, ParamInfo, ReduceOp, RunOptions, UnaryOp, run};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::shape::{DType, Dim, Shape, TensorType};
use dnnc::source::{FileId, Span};
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

fn count(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| pred(&n.op)).count()
}

fn random(dims: &[usize], rng: &mut Rng) -> Value {
    let n = dims.iter().product();
    Value::F32(
        ArrayD::from_shape_vec(IxDyn(dims), (0..n).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect())
            .unwrap(),
    )
}

#[test]
fn cse_merges_duplicates_including_commuted_operands() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["3"]), sp());
    let y = g.add_input("y", f32t(&["3"]), sp());
    let e1 = g.unary(UnaryOp::Exp, x, sp()).unwrap();
    let e2 = g.unary(UnaryOp::Exp, x, sp()).unwrap();
    let a1 = g.binary(BinaryOp::Add, e1, y, sp()).unwrap();
    let a2 = g.binary(BinaryOp::Add, y, e2, sp()).unwrap();
    let s1 = g.binary(BinaryOp::Sub, e1, y, sp()).unwrap();
    let s2 = g.binary(BinaryOp::Sub, y, e2, sp()).unwrap();
    g.outputs = vec![("a1".into(), a1), ("a2".into(), a2), ("s1".into(), s1), ("s2".into(), s2)];
    let c = eliminate_common_subexpressions(&g);
    assert_eq!(count(&c, |op| *op == Op::Unary(UnaryOp::Exp)), 1);
    assert_eq!(count(&c, |op| *op == Op::Binary(BinaryOp::Add)), 1);
    // Subtraction does not commute: both stay.
    assert_eq!(count(&c, |op| *op == Op::Binary(BinaryOp::Sub)), 2);
    assert_eq!(c.output("a1"), c.output("a2"));
    assert_ne!(c.output("s1"), c.output("s2"));
}

#[test]
fn dce_removes_unused_nodes_and_keeps_declarations() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["3"]), sp());
    let unused_in = g.add_input("unused", f32t(&["2"]), sp());
    let w = g.add_param(ParamInfo {
        name: "w".into(),
        ty: f32t(&["3"]),
        init: Init::Ones,
        trainable: true,
        span: sp(),
    });
    let dead = g.unary(UnaryOp::Exp, unused_in, sp()).unwrap();
    g.unary(UnaryOp::Log, dead, sp()).unwrap();
    let y = g.binary(BinaryOp::Mul, x, w, sp()).unwrap();
    g.outputs.push(("y".into(), y));
    let d = eliminate_dead_code(&g);
    assert_eq!(d.nodes.len(), 4, "x, unused, w and y remain");
    assert_eq!((d.inputs.len(), d.params.len()), (2, 1));
    assert_eq!(count(&d, |op| matches!(op, Op::Unary(_))), 0);
    assert_eq!(d.node(d.output("y").unwrap()).op, Op::Binary(BinaryOp::Mul));
}

#[test]
fn folding_evaluates_constant_ops_and_applies_identities() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["B", "3"]), sp());
    let zero = g.scalar(0.0, DType::F32, sp());
    let one = g.scalar(1.0, DType::F32, sp());
    let span = Span::new(FileId(0), 3, 9);
    let e = g.add(Op::Unary(UnaryOp::Exp), &[zero], None, span).unwrap();
    let two = g.binary(BinaryOp::Add, e, one, sp()).unwrap();
    let x1 = g.binary(BinaryOp::Mul, x, e, sp()).unwrap();
    let x2 = g.binary(BinaryOp::Add, zero, x1, sp()).unwrap();
    let n1 = g.unary(UnaryOp::Neg, x2, sp()).unwrap();
    let n2 = g.unary(UnaryOp::Neg, n1, sp()).unwrap();
    let t = g.transpose(n2, vec![0, 1], sp()).unwrap();
    let r = g.add(Op::Reshape, &[t], Some(f32t(&["B", "3"])), sp()).unwrap();
    let z = g.binary(BinaryOp::Mul, r, zero, sp()).unwrap();
    let size = g.add(Op::SizeOf { axes: vec![1] }, &[x], Some(f32t(&[])), sp()).unwrap();
    g.outputs = vec![("two".into(), two), ("x".into(), r), ("z".into(), z), ("size".into(), size)];
    let f = simplify(&g);
    let fill_of = |name: &str| match f.node(f.output(name).unwrap()).op {
        Op::Fill { value } => Some(value),
        _ => None,
    };
    assert_eq!(fill_of("two"), Some(2.0));
    assert_eq!(fill_of("size"), Some(3.0));
    assert_eq!(fill_of("z"), Some(0.0));
    assert_eq!(f.ty(f.output("z").unwrap()), &f32t(&["B", "3"]));
    assert_eq!(
        f.output("x"),
        Some(NodeId(0)),
        "x·exp(0), 0 + _, −(−_), identity transpose and reshape fold to x"
    );
    // The folded `exp(0)` keeps its span wherever it survives as a fill.
    let g2 = fold_constants(&g);
    assert_eq!(g2.node(NodeId(e.0)).span, span);
}

#[test]
fn folding_leaves_integer_division_by_zero_to_run_time() {
    let mut g = Graph::new("t");
    let a = g.scalar(1.0, DType::I64, sp());
    let b = g.scalar(0.0, DType::I64, sp());
    let q = g.binary(BinaryOp::Div, a, b, sp()).unwrap();
    g.outputs.push(("q".into(), q));
    let f = simplify(&g);
    assert_eq!(f.node(f.output("q").unwrap()).op, Op::Binary(BinaryOp::Div));
}

/// A small network and its gradient graph give identical results before and after.
#[test]
fn simplified_graphs_compute_the_same_values() {
    let mut g = Graph::new("net");
    let x = g.add_input("x", f32t(&["B", "4"]), sp());
    let p = |g: &mut Graph, name: &str, dims: &[&str]| {
        g.add_param(ParamInfo {
            name: name.into(),
            ty: f32t(dims),
            init: Init::Zeros,
            trainable: true,
            span: sp(),
        })
    };
    let w = p(&mut g, "w", &["4", "3"]);
    let b = p(&mut g, "b", &["3"]);
    let h = g.matmul(x, w, sp()).unwrap();
    let h = g.binary(BinaryOp::Add, h, b, sp()).unwrap();
    let zero = g.scalar(0.0, DType::F32, sp());
    let relu = g.binary(BinaryOp::Max, h, zero, sp()).unwrap();
    let s = g.unary(UnaryOp::Sigmoid, relu, sp()).unwrap();
    let sq = g.binary(BinaryOp::Mul, s, s, sp()).unwrap();
    let m = g.reduce(ReduceOp::Max, sq, vec![1], false, sp()).unwrap();
    let loss = g.reduce(ReduceOp::Sum, m, vec![0], false, sp()).unwrap();
    g.outputs.push(("loss".into(), loss));
    let d = grad(&g, loss, &[0, 1]).unwrap();
    let sd = simplify(&d);
    assert!(sd.nodes.len() < d.nodes.len(), "nothing simplified:\n{}", dnnc::ir::print_graph(&d));
    let mut rng = Rng::new(21);
    for _ in 0..3 {
        let inputs = [random(&[5, 4], &mut rng)];
        let params = [random(&[4, 3], &mut rng), random(&[3], &mut rng)];
        let before = run(&d, &inputs, &params, &RunOptions::default()).unwrap();
        let after = run(&sd, &inputs, &params, &RunOptions::default()).unwrap();
        assert_eq!(before, after);
    }
}
