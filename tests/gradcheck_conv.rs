//! Convolution and pooling: the kernels against naive loops and hand-computed Keras
//! results, gradient checks by central differences over many geometries, and the stdlib
//! layers (`Conv2D`, `MaxPool2D`, `BatchNorm`) checked through small `.dnn` programs.

use dnnc::autodiff::{GradCheckOptions, VjpRules, check_gradients, check_gradients_with, grad};
use dnnc::ir::{BinaryOp, Graph, Init, NodeId, Op, Padding, ParamInfo, PoolKind, ReduceOp, RunOptions, run};
use dnnc::ops::{self, EvalCtx, ShapeError, Value};
use dnnc::runtime::rng::Rng;
use dnnc::shape::{DType, Dim, TensorType};
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};

type Dims4 = [usize; 4];
type Pair = [usize; 2];
/// Input, kernel, stride, dilation, `same` padding.
type ConvConfig = (Dims4, Dims4, Pair, Pair, bool);
/// Input, window, stride, `same` padding.
type PoolConfig = (Dims4, Pair, Pair, bool);

fn sp() -> Span {
    Span::dummy()
}

fn random(shape: &[usize], rng: &mut Rng) -> ArrayD<f64> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()).unwrap()
}

/// All distinct values, shuffled: max pooling has no ties.
fn distinct(shape: &[usize], rng: &mut Rng) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - 0.05 * n as f64).collect();
    rng.shuffle(&mut v);
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn eval(op: &Op, inputs: &[&Value], shape: Option<Vec<usize>>) -> Value {
    let ctx = EvalCtx { dtype: inputs[0].dtype(), shape, seed: 0, step: 0 };
    ops::eval(op, inputs, &ctx).unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// Output size and padding before, by TensorFlow's formulas, written out independently of
/// the library: `same` gives ceil(n / s) outputs and pads max((o − 1)s + span − n, 0), the
/// smaller half first.
fn tf_geometry(n: usize, k: usize, s: usize, d: usize, same: bool) -> (usize, i64) {
    let span = (k - 1) * d + 1;
    if same {
        let o = n.div_ceil(s);
        let total = ((o - 1) * s + span).saturating_sub(n);
        (o, (total / 2) as i64)
    } else {
        ((n - span) / s + 1, 0)
    }
}

/// Conv2D by seven nested loops over (b, o, p, f, i, j, c).
fn naive_conv(x: &ArrayD<f64>, k: &ArrayD<f64>, s: [usize; 2], d: [usize; 2], same: bool) -> ArrayD<f64> {
    let (b, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (kh, kw, f) = (k.shape()[0], k.shape()[1], k.shape()[3]);
    let (oh, pt) = tf_geometry(h, kh, s[0], d[0], same);
    let (ow, pl) = tf_geometry(w, kw, s[1], d[1], same);
    let mut y = ArrayD::zeros(IxDyn(&[b, oh, ow, f]));
    for bi in 0..b {
        for o in 0..oh {
            for p in 0..ow {
                for fi in 0..f {
                    let mut acc = 0.0;
                    for i in 0..kh {
                        for j in 0..kw {
                            for ci in 0..c {
                                let hh = (o * s[0] + i * d[0]) as i64 - pt;
                                let ww = (p * s[1] + j * d[1]) as i64 - pl;
                                if hh >= 0 && ww >= 0 && (hh as usize) < h && (ww as usize) < w {
                                    acc += x[[bi, hh as usize, ww as usize, ci]] * k[[i, j, ci, fi]];
                                }
                            }
                        }
                    }
                    y[[bi, o, p, fi]] = acc;
                }
            }
        }
    }
    y
}

/// Pooling by loops: the max ignores padding, the mean divides by the elements inside.
fn naive_pool(x: &ArrayD<f64>, kind: PoolKind, win: [usize; 2], s: [usize; 2], same: bool) -> ArrayD<f64> {
    let (b, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (oh, pt) = tf_geometry(h, win[0], s[0], 1, same);
    let (ow, pl) = tf_geometry(w, win[1], s[1], 1, same);
    let mut y = ArrayD::zeros(IxDyn(&[b, oh, ow, c]));
    for bi in 0..b {
        for o in 0..oh {
            for p in 0..ow {
                for ci in 0..c {
                    let mut seen = Vec::new();
                    for i in 0..win[0] {
                        for j in 0..win[1] {
                            let hh = (o * s[0] + i) as i64 - pt;
                            let ww = (p * s[1] + j) as i64 - pl;
                            if hh >= 0 && ww >= 0 && (hh as usize) < h && (ww as usize) < w {
                                seen.push(x[[bi, hh as usize, ww as usize, ci]]);
                            }
                        }
                    }
                    y[[bi, o, p, ci]] = match kind {
                        PoolKind::Max => seen.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        PoolKind::Avg => seen.iter().sum::<f64>() / seen.len() as f64,
                    };
                }
            }
        }
    }
    y
}

fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{what}: {x} against {y}");
    }
}

#[test]
fn conv2d_kernel_matches_seven_loops() {
    let mut rng = Rng::new(3);
    let configs: &[ConvConfig] = &[
        ([2, 5, 7, 3], [3, 3, 3, 4], [1, 1], [1, 1], false),
        ([2, 5, 7, 3], [3, 3, 3, 4], [1, 1], [1, 1], true),
        ([1, 8, 7, 2], [3, 2, 2, 3], [2, 2], [1, 1], true),
        ([1, 8, 7, 2], [3, 2, 2, 3], [2, 3], [1, 1], false),
        ([3, 9, 9, 1], [3, 3, 1, 2], [1, 1], [2, 2], false),
        ([1, 6, 5, 2], [2, 3, 2, 2], [2, 1], [2, 1], true),
        ([1, 4, 4, 2], [4, 4, 2, 1], [3, 3], [1, 1], true),
    ];
    for &(xs, ks, stride, dilation, same) in configs {
        let (x, k) = (random(&xs, &mut rng), random(&ks, &mut rng));
        let padding = if same { Padding::Same } else { Padding::Valid };
        let op = Op::Conv2D { stride, padding, dilation };
        let got = eval(&op, &[&Value::F64(x.clone()), &Value::F64(k.clone())], None).to_f64();
        assert_close(&got, &naive_conv(&x, &k, stride, dilation, same), &format!("{op} on {xs:?} {ks:?}"));
    }
}

#[test]
fn same_padding_puts_the_extra_row_and_column_last() {
    // Keras: Conv2D(1, 2, padding="same") of [[1,2,3],[4,5,6],[7,8,9]] with a kernel of
    // ones pads one zero row below and one zero column right.
    let x = Value::F32(
        ArrayD::from_shape_vec(IxDyn(&[1, 3, 3, 1]), (1..=9).map(|v| v as f32).collect()).unwrap(),
    );
    let k = Value::F32(ArrayD::from_elem(IxDyn(&[2, 2, 1, 1]), 1.0));
    let op = Op::Conv2D { stride: [1, 1], padding: Padding::Same, dilation: [1, 1] };
    let y = eval(&op, &[&x, &k], None).to_f64();
    assert_eq!(
        y.iter().copied().collect::<Vec<_>>(),
        vec![12.0, 16.0, 9.0, 24.0, 28.0, 15.0, 15.0, 17.0, 9.0]
    );
    // Keras: AveragePooling2D(2, padding="same") averages only the elements inside.
    let op = Op::Pool2D { kind: PoolKind::Avg, window: [2, 2], stride: [2, 2], padding: Padding::Same };
    let y = eval(&op, &[&x], None).to_f64();
    assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![3.0, 4.5, 7.5, 9.0]);
}

#[test]
fn pool_kernels_match_loops() {
    let mut rng = Rng::new(5);
    let configs: &[PoolConfig] = &[
        ([2, 6, 6, 3], [2, 2], [2, 2], false),
        ([2, 7, 5, 2], [2, 2], [2, 2], true),
        ([1, 7, 7, 1], [3, 3], [2, 2], true),
        ([1, 5, 8, 2], [3, 2], [1, 3], false),
    ];
    for &(xs, window, stride, same) in configs {
        let x = random(&xs, &mut rng);
        let padding = if same { Padding::Same } else { Padding::Valid };
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let op = Op::Pool2D { kind, window, stride, padding };
            let got = eval(&op, &[&Value::F64(x.clone())], None).to_f64();
            assert_close(&got, &naive_pool(&x, kind, window, stride, same), &format!("{op} on {xs:?}"));
        }
    }
}

#[test]
fn max_pool_gradient_goes_to_the_first_maximum() {
    // One window [[5, 5], [1, 5]]: the gradient goes to the first 5 only.
    let x = Value::F64(ArrayD::from_shape_vec(IxDyn(&[1, 2, 2, 1]), vec![5.0, 5.0, 1.0, 5.0]).unwrap());
    let g = Value::F64(ArrayD::from_elem(IxDyn(&[1, 1, 1, 1]), 2.0));
    let op = Op::Pool2DGrad { kind: PoolKind::Max, window: [2, 2], stride: [2, 2], padding: Padding::Valid };
    let dx = eval(&op, &[&x, &g], None).to_f64();
    assert_eq!(dx.iter().copied().collect::<Vec<_>>(), vec![2.0, 0.0, 0.0, 0.0]);
}

/// `sum(op(params) · w)` with random weights `w`, checked against central differences.
fn check_op(
    name: &str,
    params: &[(&str, Vec<usize>, bool)],
    build: impl Fn(&mut Graph, &[NodeId]) -> NodeId,
) {
    let mut rng = Rng::new(name.len() as u64);
    let mut g = Graph::new(name);
    let mut nodes = Vec::new();
    let mut values = Vec::new();
    for (i, (dims, concrete, no_ties)) in params.iter().enumerate() {
        let shape: Vec<Dim> = dims
            .split(',')
            .map(str::trim)
            .map(|d| d.parse::<i64>().map(Dim::Const).unwrap_or_else(|_| Dim::sym(d)))
            .collect();
        let ty = TensorType::new(DType::F32, shape);
        let info = ParamInfo { name: format!("p{i}"), ty, init: Init::Zeros, trainable: true, span: sp() };
        nodes.push(g.add_param(info));
        values.push(Value::F64(if *no_ties {
            distinct(concrete, &mut rng)
        } else {
            random(concrete, &mut rng)
        }));
    }
    let out = build(&mut g, &nodes);
    let w = g.add_input("w", g.ty(out).clone(), sp());
    let weighted = g.binary(BinaryOp::Mul, out, w, sp()).unwrap();
    let axes = (0..g.ty(weighted).rank()).collect();
    let loss = g.reduce(ReduceOp::Sum, weighted, axes, false, sp()).unwrap();
    // The output's batch is the first parameter's.
    let mut out_shape = Vec::new();
    for d in &g.ty(out).shape {
        out_shape.push(match d {
            Dim::Const(n) => *n as usize,
            Dim::Sym(_) => params[0].1[0],
        });
    }
    let inputs = vec![Value::F64(random(&out_shape, &mut rng))];
    let wrt: Vec<usize> = (0..values.len()).collect();
    let report = check_gradients(&g, loss, &inputs, &values, &wrt, &GradCheckOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(report.passed(), "{name}:\n{report}");
}

fn conv(g: &mut Graph, p: &[NodeId], stride: [usize; 2], padding: Padding, dilation: [usize; 2]) -> NodeId {
    g.add(Op::Conv2D { stride, padding, dilation }, &[p[0], p[1]], None, sp()).unwrap()
}

#[test]
fn conv2d_passes_gradient_checks() {
    use Padding::{Same, Valid};
    let cases: &[(&str, Dims4, Dims4, Pair, Padding, Pair)] = &[
        ("valid stride 1", [2, 5, 5, 2], [3, 3, 2, 3], [1, 1], Valid, [1, 1]),
        ("same stride 1", [2, 5, 4, 3], [3, 3, 3, 2], [1, 1], Same, [1, 1]),
        ("valid stride 2", [1, 7, 6, 2], [3, 2, 2, 2], [2, 2], Valid, [1, 1]),
        ("same stride 2", [1, 7, 5, 2], [2, 3, 2, 3], [2, 2], Same, [1, 1]),
        ("valid dilation 2", [1, 7, 7, 2], [3, 3, 2, 2], [1, 1], Valid, [2, 2]),
        ("same dilation 2, stride 2", [2, 6, 5, 2], [2, 3, 2, 2], [2, 1], Same, [2, 2]),
    ];
    for &(name, xs, ks, stride, padding, dilation) in cases {
        let xdims = format!("B, {}, {}, {}", xs[1], xs[2], xs[3]);
        let kdims = format!("{}, {}, {}, {}", ks[0], ks[1], ks[2], ks[3]);
        check_op(name, &[(&xdims, xs.to_vec(), false), (&kdims, ks.to_vec(), false)], |g, p| {
            conv(g, p, stride, padding, dilation)
        });
    }
}

#[test]
fn pooling_passes_gradient_checks() {
    use Padding::{Same, Valid};
    let cases: &[(Dims4, Pair, Pair, Padding)] = &[
        ([2, 4, 6, 2], [2, 2], [2, 2], Valid),
        ([1, 5, 5, 3], [2, 2], [2, 2], Same),
        ([1, 7, 6, 2], [3, 3], [2, 2], Same),
        ([2, 5, 4, 1], [3, 2], [1, 1], Valid),
    ];
    for &(xs, window, stride, padding) in cases {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let name = format!("{kind:?} pool {xs:?} {window:?} {stride:?} {padding:?}");
            let xdims = format!("B, {}, {}, {}", xs[1], xs[2], xs[3]);
            check_op(&name, &[(&xdims, xs.to_vec(), true)], |g, p| {
                g.add(Op::Pool2D { kind, window, stride, padding }, &[p[0]], None, sp()).unwrap()
            });
        }
    }
}

#[test]
fn second_derivatives_of_conv2d_pass_gradient_checks() {
    // loss = ⟨∂/∂x ⟨conv2d(x, k), w1⟩, w2⟩ + ⟨∂/∂k ..., w3⟩ differentiates the backprop ops.
    let mut rng = Rng::new(11);
    let mut g = Graph::new("second");
    let x_ty = TensorType::new(DType::F32, vec![Dim::sym("B"), 6.into(), 5.into(), 2.into()]);
    let k_ty = TensorType::new(DType::F32, vec![3.into(), 2.into(), 2.into(), 3.into()]);
    let x = g.add_param(ParamInfo {
        name: "x".into(),
        ty: x_ty.clone(),
        init: Init::Zeros,
        trainable: true,
        span: sp(),
    });
    let k = g.add_param(ParamInfo {
        name: "k".into(),
        ty: k_ty.clone(),
        init: Init::Zeros,
        trainable: true,
        span: sp(),
    });
    let y = conv(&mut g, &[x, k], [2, 1], Padding::Same, [1, 2]);
    let w1 = g.add_input("w1", g.ty(y).clone(), sp());
    let inner = g.binary(BinaryOp::Mul, y, w1, sp()).unwrap();
    let inner = g.reduce(ReduceOp::Sum, inner, vec![0, 1, 2, 3], false, sp()).unwrap();
    let mut first = grad(&g, inner, &[0, 1]).unwrap();
    let (dx, dk) = (first.output("grad.x").unwrap(), first.output("grad.k").unwrap());
    let w2 = first.add_input("w2", x_ty, sp());
    let w3 = first.add_input("w3", k_ty, sp());
    let a = first.binary(BinaryOp::Mul, dx, w2, sp()).unwrap();
    let b = first.binary(BinaryOp::Mul, dk, dk, sp()).unwrap();
    let b = first.binary(BinaryOp::Mul, b, w3, sp()).unwrap();
    let a = first.reduce(ReduceOp::Sum, a, vec![0, 1, 2, 3], false, sp()).unwrap();
    let b = first.reduce(ReduceOp::Sum, b, vec![0, 1, 2, 3], false, sp()).unwrap();
    let loss = first.binary(BinaryOp::Add, a, b, sp()).unwrap();
    first.outputs.clear();
    let inputs = vec![
        Value::F64(random(&[2, 3, 5, 3], &mut rng)),
        Value::F64(random(&[2, 6, 5, 2], &mut rng)),
        Value::F64(random(&[3, 2, 2, 3], &mut rng)),
    ];
    let params =
        vec![Value::F64(random(&[2, 6, 5, 2], &mut rng)), Value::F64(random(&[3, 2, 2, 3], &mut rng))];
    let report =
        check_gradients(&first, loss, &inputs, &params, &[0, 1], &GradCheckOptions::default()).unwrap();
    assert!(report.passed(), "{report}");
}

/// The registry's rules, except that the kernel gradient of `conv2d` forgets the dilation:
/// with `same` padding and stride 1 the types still agree, only the values differ.
struct UndilatedFilterGradient;

impl VjpRules for UndilatedFilterGradient {
    fn vjp(&self, g: &mut Graph, node: NodeId, grad_out: NodeId) -> Result<Vec<Option<NodeId>>, ShapeError> {
        let mut grads = ops::vjp(g, node, grad_out)?;
        if let Op::Conv2D { stride, padding, .. } = g.node(node).op {
            let (x, k) = (g.node(node).inputs[0], g.node(node).inputs[1]);
            let wrong = Op::Conv2DBackpropFilter { stride, padding, dilation: [1, 1] };
            grads[1] = Some(g.add(wrong, &[x, grad_out], Some(g.ty(k).clone()), sp())?);
        }
        Ok(grads)
    }
}

#[test]
fn a_wrong_convolution_rule_is_rejected() {
    let mut rng = Rng::new(2);
    let mut g = Graph::new("wrong");
    let x_ty = TensorType::new(DType::F32, vec![1.into(), 5.into(), 5.into(), 1.into()]);
    let k_ty = TensorType::new(DType::F32, vec![2.into(), 2.into(), 1.into(), 1.into()]);
    let x =
        g.add_param(ParamInfo { name: "x".into(), ty: x_ty, init: Init::Zeros, trainable: true, span: sp() });
    let k =
        g.add_param(ParamInfo { name: "k".into(), ty: k_ty, init: Init::Zeros, trainable: true, span: sp() });
    let y = conv(&mut g, &[x, k], [1, 1], Padding::Same, [2, 2]);
    let sq = g.binary(BinaryOp::Mul, y, y, sp()).unwrap();
    let loss = g.reduce(ReduceOp::Sum, sq, vec![0, 1, 2, 3], false, sp()).unwrap();
    let params =
        vec![Value::F64(random(&[1, 5, 5, 1], &mut rng)), Value::F64(random(&[2, 2, 1, 1], &mut rng))];
    let opts = GradCheckOptions::default();
    let good = check_gradients(&g, loss, &[], &params, &[1], &opts).unwrap();
    assert!(good.passed(), "{good}");
    let bad = check_gradients_with(&g, loss, &[], &params, &[1], &opts, &UndilatedFilterGradient).unwrap();
    assert!(!bad.passed(), "the checker accepted an undilated kernel gradient:\n{bad}");
}

#[test]
fn the_second_derivative_of_max_pooling_is_refused() {
    let mut g = Graph::new("maxpool2");
    let ty = TensorType::new(DType::F32, vec![1.into(), 4.into(), 4.into(), 1.into()]);
    let x = g.add_param(ParamInfo { name: "x".into(), ty, init: Init::Zeros, trainable: true, span: sp() });
    let op = Op::Pool2D { kind: PoolKind::Max, window: [2, 2], stride: [2, 2], padding: Padding::Valid };
    let y = g.add(op, &[x], None, sp()).unwrap();
    let s = g.reduce(ReduceOp::Sum, y, vec![0, 1, 2, 3], false, sp()).unwrap();
    let mut first = grad(&g, s, &[0]).unwrap();
    let dx = first.output("grad.x").unwrap();
    let sq = first.binary(BinaryOp::Mul, dx, x, sp()).unwrap();
    let loss = first.reduce(ReduceOp::Sum, sq, vec![0, 1, 2, 3], false, sp()).unwrap();
    let err = grad(&first, loss, &[0]).unwrap_err();
    assert!(err.to_string().contains("second derivative of max pooling"), "{err}");
}

#[test]
fn a_symbolic_batch_runs_at_any_size() {
    let mut g = Graph::new("batch");
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, vec![Dim::sym("B"), 6.into(), 6.into(), 1.into()]),
        sp(),
    );
    let kt = TensorType::new(DType::F32, vec![3.into(), 3.into(), 1.into(), 4.into()]);
    let k =
        g.add_param(ParamInfo { name: "k".into(), ty: kt, init: Init::Zeros, trainable: true, span: sp() });
    let y = conv(&mut g, &[x, k], [1, 1], Padding::Valid, [1, 1]);
    let pool = Op::Pool2D { kind: PoolKind::Max, window: [2, 2], stride: [2, 2], padding: Padding::Valid };
    let z = g.add(pool, &[y], None, sp()).unwrap();
    assert_eq!(g.ty(z).shape, vec![Dim::sym("B"), 2.into(), 2.into(), 4.into()]);
    g.outputs.push(("z".into(), z));
    let mut rng = Rng::new(1);
    for batch in [1, 3] {
        let xv = Value::F64(random(&[batch, 6, 6, 1], &mut rng)).cast(DType::F32);
        let kv = Value::F64(random(&[3, 3, 1, 4], &mut rng)).cast(DType::F32);
        let out = run(&g, &[xv], &[kv], &RunOptions::default()).unwrap();
        assert_eq!(out[0].shape(), &[batch, 2, 2, 4]);
    }
}
