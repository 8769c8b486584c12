//! `scan` against an explicitly unrolled graph (same values, same gradients), and the
//! kernel errors of `gather`.

#[path = "support/seq_bodies.rs"]
mod seq_bodies;

use dnnc::autodiff::grad;
use dnnc::ir::{
    BinaryOp, Graph, Init, NodeId, Op, ParamInfo, ReduceOp, RunError, RunOptions, ScanOutput, run,
};
use dnnc::ops::{KernelError, Value};
use dnnc::runtime::rng::Rng;
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};
use seq_bodies::{f32t, i64t};

const T: usize = 5;

fn param(g: &mut Graph, name: &str, dims: &str) -> NodeId {
    g.add_param(ParamInfo {
        name: name.into(),
        ty: f32t(dims),
        init: Init::Zeros,
        trainable: true,
        span: Span::dummy(),
    })
}

/// loss = Σ w ⊙ out over all elements.
fn weighted_sum(g: &mut Graph, out: NodeId) -> NodeId {
    let w = g.add_input("w", g.ty(out).clone(), Span::dummy());
    let p = g.binary(BinaryOp::Mul, out, w, Span::dummy()).unwrap();
    let axes = (0..g.ty(p).rank()).collect();
    g.reduce(ReduceOp::Sum, p, axes, false, Span::dummy()).unwrap()
}

/// The same RNN as a scan, or unrolled with x_t = Σ_axis1 (xs · e_t) for one-hot masks e_t
/// fed as inputs; the result is every h stacked (as the sum over t of h_t ⊗ e_t).
fn rnn_graph(unrolled: bool) -> (Graph, NodeId) {
    let sp = Span::dummy();
    let mut g = Graph::new(if unrolled { "unrolled" } else { "scan" });
    let xs = g.add_input("xs", f32t(&format!("2, {T}, 2")), sp);
    let h0 = param(&mut g, "h0", "2, 3");
    let wx = param(&mut g, "wx", "2, 3");
    let wh = param(&mut g, "wh", "3, 3");
    let b = param(&mut g, "b", "3");
    let out = if unrolled {
        let mut h = h0;
        let mut stacked = None;
        for t in 0..T {
            let e = g.add_input(&format!("e{t}"), f32t(&format!("1, {T}, 1")), sp);
            let masked = g.binary(BinaryOp::Mul, xs, e, sp).unwrap();
            let xt = g.reduce(ReduceOp::Sum, masked, vec![1], false, sp).unwrap();
            h = seq_bodies::rnn_step(&mut g, h, xt, wx, wh, b).unwrap();
            let shaped = g.reshape(h, &seq_bodies::dims("2, 1, 3"), sp).unwrap();
            let placed = g.binary(BinaryOp::Mul, shaped, e, sp).unwrap();
            stacked = Some(match stacked {
                None => placed,
                Some(s) => g.binary(BinaryOp::Add, s, placed, sp).unwrap(),
            });
        }
        stacked.unwrap()
    } else {
        let mut body = seq_bodies::rnn_body();
        // Concrete batch, as the outer graph has.
        for info in body.inputs.iter_mut() {
            if info.ty.shape.first() == Some(&dnnc::shape::Dim::sym("B")) {
                info.ty.shape[0] = dnnc::shape::Dim::Const(2);
            }
        }
        for node in body.nodes.iter_mut() {
            if node.ty.shape.first() == Some(&dnnc::shape::Dim::sym("B")) {
                node.ty.shape[0] = dnnc::shape::Dim::Const(2);
            }
        }
        seq_bodies::scan(&mut g, body, 1, 1, false, ScanOutput::Stacked(0), &[h0, xs, wx, wh, b]).unwrap()
    };
    let loss = weighted_sum(&mut g, out);
    (g, loss)
}

#[test]
fn scan_matches_its_unrolled_graph_in_values_and_gradients() {
    let mut rng = Rng::new(3);
    let mut draw =
        |shape: &[usize]| Value::F64(ArrayD::from_shape_fn(IxDyn(shape), |_| rng.uniform() * 2.0 - 1.0));
    let xs = draw(&[2, T, 2]);
    let w = draw(&[2, T, 3]);
    let params = vec![draw(&[2, 3]), draw(&[2, 3]), draw(&[3, 3]), draw(&[3])];
    let masks: Vec<Value> = (0..T)
        .map(|t| Value::F64(ArrayD::from_shape_fn(IxDyn(&[1, T, 1]), |i| if i[1] == t { 1.0 } else { 0.0 })))
        .collect();
    let opts = RunOptions { promote_f64: true, ..RunOptions::default() };
    let mut results = Vec::new();
    for unrolled in [false, true] {
        let (g, loss) = rnn_graph(unrolled);
        let back = grad(&g, loss, &[0, 1, 2, 3]).unwrap();
        let mut inputs = vec![xs.clone()];
        if unrolled {
            inputs.extend(masks.iter().cloned());
        }
        inputs.push(w.clone());
        let mut back = back;
        back.outputs.insert(0, ("loss".into(), loss));
        let outs = run(&back, &inputs, &params, &opts).unwrap();
        results.push(outs.into_iter().map(|v| v.to_f64()).collect::<Vec<_>>());
    }
    let names = ["loss", "d h0", "d wx", "d wh", "d b"];
    let (scan, unrolled) = (&results[0], &results[1]);
    assert_eq!(scan.len(), unrolled.len());
    for ((a, b), name) in scan.iter().zip(unrolled).zip(names) {
        assert_eq!(a.shape(), b.shape(), "{name}");
        let err = a.iter().zip(b.iter()).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(err < 1e-12, "{name}: scan and unrolled differ by {err}");
    }
    // The gradients are not trivially zero.
    assert!(scan[2].iter().any(|v| v.abs() > 1e-3));
}

#[test]
fn gather_names_an_out_of_range_id() {
    let sp = Span::dummy();
    let mut g = Graph::new("lookup");
    let table = g.add_input("table", f32t("4, 2"), sp);
    let ids = g.add_input("ids", i64t("3"), sp);
    let out = g.add(Op::Gather, &[table, ids], None, sp).unwrap();
    g.outputs.push(("out".into(), out));
    let table = Value::F32(ArrayD::from_shape_fn(IxDyn(&[4, 2]), |i| (i[0] * 2 + i[1]) as f32));
    let ok = run(
        &g,
        &[table.clone(), Value::I64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![3, 0, 3]).unwrap())],
        &[],
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(
        ok[0],
        Value::F32(ArrayD::from_shape_vec(IxDyn(&[3, 2]), vec![6.0, 7.0, 0.0, 1.0, 6.0, 7.0]).unwrap())
    );
    for bad in [4, -1] {
        let ids = Value::I64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![0, bad, 1]).unwrap());
        let err = run(&g, &[table.clone(), ids], &[], &RunOptions::default()).unwrap_err();
        match err {
            RunError::Kernel { error: KernelError::IdOutOfRange { id, rows, .. }, .. } => {
                assert_eq!((id, rows), (bad, 4));
            }
            other => panic!("expected an id error, got {other}"),
        }
    }
}
