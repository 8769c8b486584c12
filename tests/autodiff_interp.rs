//! The reference interpreter: argument checking, non-finite detection, and kernels
//! compared with naive loops written independently here.

use dnnc::ir::{BinaryOp, Graph, Init, NodeId, Op, ParamInfo, ReduceOp, RunError, RunOptions, UnaryOp, run};
use dnnc::ops::Value;
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

fn random_f64(shape: &[usize], rng: &mut Rng) -> ArrayD<f64> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()).unwrap()
}

fn f64_of(v: &Value) -> ArrayD<f64> {
    match v {
        Value::F64(a) => a.clone(),
        other => panic!("expected f64, got {:?}", other.dtype()),
    }
}

fn one_output(g: &mut Graph, out: NodeId) {
    g.outputs.push(("out".into(), out));
}

#[test]
fn wrong_rank_names_the_input_and_both_shapes() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["B", "28", "28"]), sp());
    one_output(&mut g, x);
    let bad = Value::F32(ArrayD::zeros(IxDyn(&[32, 784])));
    let err = run(&g, &[bad], &[], &RunOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "input `x`: expected f32[B, 28, 28], got an array of shape [32, 784]");
}

#[test]
fn wrong_dtype_and_count_are_errors() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["4"]), sp());
    one_output(&mut g, x);
    let bad = Value::I64(ArrayD::zeros(IxDyn(&[4])));
    let err = run(&g, &[bad], &[], &RunOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "input `x`: expected f32[4], got an i64 array of shape [4]");
    let err = run(&g, &[], &[], &RunOptions::default()).unwrap_err();
    assert!(matches!(err, RunError::ArgumentCount { expected: 1, got: 0, .. }), "{err}");
}

#[test]
fn symbols_bind_consistently_across_inputs() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["B", "3"]), sp());
    let y = g.add_input("y", f32t(&["B", "3"]), sp());
    let s = g.binary(BinaryOp::Add, x, y, sp()).unwrap();
    one_output(&mut g, s);
    let a = Value::F32(ArrayD::zeros(IxDyn(&[32, 3])));
    let b = Value::F32(ArrayD::zeros(IxDyn(&[31, 3])));
    let err = run(&g, &[a.clone(), b], &[], &RunOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "dimension `B` is 32 in `x` but 31 in `y`");
    assert!(run(&g, &[a.clone(), a], &[], &RunOptions::default()).is_ok());
}

#[test]
fn log_of_zero_is_reported_at_the_log_node() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["3"]), sp());
    let span = Span::new(dnnc::source::FileId(0), 10, 16);
    let l = g.add(Op::Unary(UnaryOp::Log), &[x], None, span).unwrap();
    let e = g.unary(UnaryOp::Exp, l, sp()).unwrap();
    one_output(&mut g, e);
    let v = Value::F32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 0.0, 2.0]).unwrap());
    let opts = RunOptions { check_finite: true, ..RunOptions::default() };
    match run(&g, std::slice::from_ref(&v), &[], &opts) {
        Err(RunError::NonFinite { node, op, span: s }) => {
            assert_eq!((node, op.as_str(), s), (l, "log", span));
        }
        other => panic!("expected a non-finite error, got {other:?}"),
    }
    // Without the check the run completes and the infinity reaches the output as 0 = exp(-inf).
    let out = run(&g, &[v], &[], &RunOptions::default()).unwrap();
    assert_eq!(out[0], Value::F32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 0.0, 2.0]).unwrap()));
}

#[test]
fn batched_matmul_with_broadcast_batch_matches_a_naive_loop() {
    let mut rng = Rng::new(3);
    let mut g = Graph::new("t");
    let a_ty = TensorType::new(DType::F64, shape(&["2", "1", "3", "4"]));
    let b_ty = TensorType::new(DType::F64, shape(&["3", "4", "5"]));
    let a = g.add_input("a", a_ty, sp());
    let b = g.add_input("b", b_ty, sp());
    let c = g.matmul(a, b, sp()).unwrap();
    one_output(&mut g, c);
    let (av, bv) = (random_f64(&[2, 1, 3, 4], &mut rng), random_f64(&[3, 4, 5], &mut rng));
    let out =
        run(&g, &[Value::F64(av.clone()), Value::F64(bv.clone())], &[], &RunOptions::default()).unwrap();
    let c = f64_of(&out[0]);
    assert_eq!(c.shape(), &[2, 3, 3, 5]);
    for (i, j, m, n) in itertools(2, 3, 3, 5) {
        let expected: f64 = (0..4).map(|k| av[[i, 0, m, k]] * bv[[j, k, n]]).sum();
        assert!((c[[i, j, m, n]] - expected).abs() < 1e-12);
    }
}

fn itertools(a: usize, b: usize, c: usize, d: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..a).flat_map(move |i| {
        (0..b).flat_map(move |j| (0..c).flat_map(move |k| (0..d).map(move |l| (i, j, k, l))))
    })
}

#[test]
fn reductions_match_naive_loops() {
    let mut rng = Rng::new(4);
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::new(DType::F64, shape(&["2", "3", "4"])), sp());
    let s = g.reduce(ReduceOp::Sum, x, vec![0, 2], true, sp()).unwrap();
    let m = g.reduce(ReduceOp::Max, x, vec![1], false, sp()).unwrap();
    let am = g.add(Op::ArgMax { axis: 1 }, &[x], None, sp()).unwrap();
    g.outputs = vec![("s".into(), s), ("m".into(), m), ("am".into(), am)];
    let xv = random_f64(&[2, 3, 4], &mut rng);
    let out = run(&g, &[Value::F64(xv.clone())], &[], &RunOptions::default()).unwrap();
    let (sv, mv) = (f64_of(&out[0]), f64_of(&out[1]));
    let Value::I64(amv) = &out[2] else { panic!("argmax gives i64") };
    assert_eq!(sv.shape(), &[1, 3, 1]);
    for j in 0..3 {
        let expected: f64 =
            (0..2).flat_map(|i| (0..4).map(move |k| (i, k))).map(|(i, k)| xv[[i, j, k]]).sum();
        assert!((sv[[0, j, 0]] - expected).abs() < 1e-12);
    }
    for (i, k) in (0..2).flat_map(|i| (0..4).map(move |k| (i, k))) {
        let col: Vec<f64> = (0..3).map(|j| xv[[i, j, k]]).collect();
        let best = (0..3).fold(0, |b, j| if col[j] > col[b] { j } else { b });
        assert_eq!(mv[[i, k]], col[best]);
        assert_eq!(amv[[i, k]], best as i64);
    }
}

#[test]
fn argmax_takes_the_first_of_ties_and_nan_wins() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["3", "3"]), sp());
    let am = g.add(Op::ArgMax { axis: 1 }, &[x], None, sp()).unwrap();
    one_output(&mut g, am);
    let v = vec![1.0, 5.0, 5.0, f32::NAN, 2.0, f32::NAN, 0.0, -1.0, 0.0];
    let x = Value::F32(ArrayD::from_shape_vec(IxDyn(&[3, 3]), v).unwrap());
    let out = run(&g, &[x], &[], &RunOptions::default()).unwrap();
    assert_eq!(out[0], Value::I64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1, 0, 0]).unwrap()));
}

#[test]
fn broadcasting_binary_and_transpose_match_index_arithmetic() {
    let mut rng = Rng::new(5);
    let mut g = Graph::new("t");
    let a = g.add_input("a", TensorType::new(DType::F64, shape(&["B", "1"])), sp());
    let b = g.add_input("b", TensorType::new(DType::F64, shape(&["4"])), sp());
    let s = g.binary(BinaryOp::Sub, a, b, sp()).unwrap();
    let t = g.transpose(s, vec![1, 0], sp()).unwrap();
    one_output(&mut g, t);
    let (av, bv) = (random_f64(&[3, 1], &mut rng), random_f64(&[4], &mut rng));
    let out =
        run(&g, &[Value::F64(av.clone()), Value::F64(bv.clone())], &[], &RunOptions::default()).unwrap();
    let tv = f64_of(&out[0]);
    assert_eq!(tv.shape(), &[4, 3]);
    for (i, j) in (0..4).flat_map(|i| (0..3).map(move |j| (i, j))) {
        assert_eq!(tv[[i, j]], av[[j, 0]] - bv[[i]]);
    }
}

#[test]
fn symbolic_fill_and_broadcast_take_their_size_from_the_inputs() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&["B", "2"]), sp());
    let ones = g.fill(1.0, DType::F32, shape(&["B", "2"]), sp());
    let s = g.binary(BinaryOp::Add, x, ones, sp()).unwrap();
    let n = g.add(Op::SizeOf { axes: vec![0] }, &[x], Some(TensorType::scalar(DType::F32)), sp()).unwrap();
    g.outputs = vec![("s".into(), s), ("n".into(), n)];
    let xv = Value::F32(ArrayD::zeros(IxDyn(&[5, 2])));
    let out = run(&g, &[xv], &[], &RunOptions::default()).unwrap();
    assert_eq!(out[0], Value::F32(ArrayD::ones(IxDyn(&[5, 2]))));
    assert_eq!(out[1], Value::scalar(DType::F32, 5.0));
}

#[test]
fn sigmoid_is_stable_and_matches_the_formula() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TensorType::new(DType::F64, shape(&["5"])), sp());
    let y = g.unary(UnaryOp::Sigmoid, x, sp()).unwrap();
    one_output(&mut g, y);
    let xs = vec![-800.0, -3.0, 0.0, 2.5, 800.0];
    let out = run(
        &g,
        &[Value::F64(ArrayD::from_shape_vec(IxDyn(&[5]), xs.clone()).unwrap())],
        &[],
        &RunOptions::default(),
    );
    let ys = f64_of(&out.unwrap()[0]);
    for (x, y) in xs.iter().zip(ys.iter()) {
        let expected = 1.0 / (1.0 + (-x).exp());
        assert!((y - expected).abs() < 1e-15 && y.is_finite(), "sigmoid({x}) = {y}");
    }
}

#[test]
fn integer_division_by_zero_is_an_error_and_one_hot_ignores_out_of_range_labels() {
    let mut g = Graph::new("t");
    let a = g.add_input("a", TensorType::new(DType::I64, shape(&["3"])), sp());
    let q = g.binary(BinaryOp::Div, a, a, sp()).unwrap();
    let oh = g.add(Op::OneHot { depth: 3 }, &[a], Some(f32t(&["3", "3"])), sp()).unwrap();
    g.outputs = vec![("oh".into(), oh)];
    let labels = Value::I64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![2, -1, 0]).unwrap());
    let out = run(&g, std::slice::from_ref(&labels), &[], &RunOptions::default()).unwrap();
    let expected = vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    assert_eq!(out[0], Value::F32(ArrayD::from_shape_vec(IxDyn(&[3, 3]), expected).unwrap()));
    g.outputs = vec![("q".into(), q)];
    let err = run(&g, &[labels], &[], &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("integer division by zero"), "{err}");
}

#[test]
fn random_draws_depend_on_seed_stream_and_step_only() {
    let mut g = Graph::new("t");
    let ty = f32t(&["1000"]);
    let draw = |g: &mut Graph, stream| {
        let op = Op::Random { dist: dnnc::ir::Distribution::Uniform, stream };
        g.add(op, &[], Some(ty.clone()), sp()).unwrap()
    };
    let (r0, r0b, r1) = (draw(&mut g, 0), draw(&mut g, 0), draw(&mut g, 1));
    g.outputs = vec![("a".into(), r0), ("b".into(), r0b), ("c".into(), r1)];
    let opts = RunOptions { seed: 9, step: 1, ..RunOptions::default() };
    let out = run(&g, &[], &[], &opts).unwrap();
    assert_eq!(out[0], out[1]);
    assert_ne!(out[0], out[2]);
    let next = run(&g, &[], &[], &RunOptions { step: 2, ..opts.clone() }).unwrap();
    assert_ne!(out[0], next[0]);
    let Value::F32(a) = &out[0] else { panic!("f32 draws") };
    assert!(a.iter().all(|&v| (0.0..1.0).contains(&v)));
    let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / 1000.0;
    assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
    // Promoted runs draw the same numbers before rounding to f32.
    let wide = run(&g, &[], &[], &RunOptions { promote_f64: true, ..opts }).unwrap();
    assert_eq!(wide[0].cast(DType::F32), out[0]);
}

#[test]
fn promotion_widens_f32_parameters_and_results() {
    let mut g = Graph::new("t");
    let info =
        ParamInfo { name: "w".into(), ty: f32t(&["2"]), init: Init::Zeros, trainable: true, span: sp() };
    let w = g.add_param(info);
    let y = g.binary(BinaryOp::Mul, w, w, sp()).unwrap();
    one_output(&mut g, y);
    let third = 1.0f64 / 3.0;
    let p = Value::F64(ArrayD::from_elem(IxDyn(&[2]), third));
    let opts = RunOptions { promote_f64: true, ..RunOptions::default() };
    let out = run(&g, &[], std::slice::from_ref(&p), &opts).unwrap();
    assert_eq!(out[0], Value::F64(ArrayD::from_elem(IxDyn(&[2]), third * third)));
    // Without promotion an f64 array is refused where f32 is declared.
    assert!(matches!(run(&g, &[], &[p], &RunOptions::default()), Err(RunError::BadArgument { .. })));
}
