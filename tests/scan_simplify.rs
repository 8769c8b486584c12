//! The loop rewrites of `simplify`: the forward loop reads BPTT's saving loop (one loop for
//! both), and per-step outputs nobody stacks leave the body. Both keep every value: the
//! rewritten graph gives the interpreter's results of the original.

#[path = "support/seq_bodies.rs"]
mod seq_bodies;

use dnnc::autodiff::grad;
use dnnc::ir::simplify::{merge_scan_loops, prune_scan_outputs, simplify};
use dnnc::ir::{BinaryOp, Graph, Init, Op, ParamInfo, ReduceOp, RunOptions, ScanOutput, run};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};
use seq_bodies::{f32t, scan};

fn sp() -> Span {
    Span::dummy()
}

/// The loops of a graph: scan nodes counted once per (body, operands, direction).
fn loops(g: &Graph) -> usize {
    let live = g.live_nodes();
    let mut seen: Vec<(Op, Vec<dnnc::ir::NodeId>)> = Vec::new();
    for id in g.ids().filter(|id| live[id.index()]) {
        let n = g.node(id);
        if let Op::Scan { body, carries, sequences, reverse, .. } = &n.op {
            let key = Op::Scan {
                body: body.clone(),
                carries: *carries,
                sequences: *sequences,
                reverse: *reverse,
                output: ScanOutput::Final(0),
            };
            if !seen.iter().any(|(k, ins)| *k == key && *ins == n.inputs) {
                seen.push((key, n.inputs.clone()));
            }
        }
    }
    seen.len()
}

fn random(shape: &[usize], rng: &mut Rng) -> Value {
    let n = shape.iter().product();
    Value::F32(
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.uniform() as f32 - 0.5).collect()).unwrap(),
    )
}

/// The RNN over `xs [2, 4, 2]` with parameters wx, wh, b; `out` picks its result.
fn rnn(out: ScanOutput) -> (Graph, dnnc::ir::NodeId) {
    let mut g = Graph::new("rnn");
    let xs = g.add_input("xs", f32t("B, 4, 2"), sp());
    let h0 = g.add_input("h0", f32t("B, 3"), sp());
    let mut param = |name: &str, dims: &str| {
        g.add_param(ParamInfo {
            name: name.into(),
            ty: f32t(dims),
            init: Init::Zeros,
            trainable: true,
            span: sp(),
        })
    };
    let (wx, wh, b) = (param("wx", "2, 3"), param("wh", "3, 3"), param("b", "3"));
    let n = scan(&mut g, seq_bodies::rnn_body(), 1, 1, false, out, &[h0, xs, wx, wh, b]).unwrap();
    (g, n)
}

fn same_outputs(a: &Graph, b: &Graph) {
    let mut rng = Rng::new(2);
    let inputs = [random(&[2, 4, 2], &mut rng), random(&[2, 3], &mut rng)];
    let params = [random(&[2, 3], &mut rng), random(&[3, 3], &mut rng), random(&[3], &mut rng)];
    let opts = RunOptions::default();
    let (x, y) = (run(a, &inputs, &params, &opts).unwrap(), run(b, &inputs, &params, &opts).unwrap());
    for (u, v) in x.iter().zip(&y) {
        assert_eq!(u.to_f64(), v.to_f64());
    }
}

#[test]
fn the_forward_loop_reads_the_saving_loop() {
    let (mut g, h) = rnn(ScanOutput::Final(0));
    let loss = g.reduce(ReduceOp::Sum, h, vec![0, 1], false, sp()).unwrap();
    g.outputs = vec![("h".into(), h), ("loss".into(), loss)];
    let d = grad(&g, loss, &[0, 1, 2]).unwrap();
    // Forward, saving and backward loops, then the first two as one.
    assert_eq!(loops(&d), 3);
    let merged = merge_scan_loops(&d);
    assert_eq!(loops(&merged), 2);
    same_outputs(&d, &merged);
    assert_eq!(loops(&simplify(&d)), 2);
}

#[test]
fn unstacked_outputs_leave_the_body() {
    let (mut g, h) = rnn(ScanOutput::Final(0));
    let ys = {
        let op = match &g.node(h).op {
            Op::Scan { body, carries, sequences, reverse, .. } => Op::Scan {
                body: body.clone(),
                carries: *carries,
                sequences: *sequences,
                reverse: *reverse,
                output: ScanOutput::Stacked(1),
            },
            _ => unreachable!(),
        };
        let ins = g.node(h).inputs.clone();
        g.add(op, &ins, None, sp()).unwrap()
    };
    // Only the final carry is read: the body's second output goes.
    g.outputs = vec![("h".into(), h)];
    let pruned = prune_scan_outputs(&g);
    let Op::Scan { body, .. } = &pruned.node(h).op else { panic!("still a scan") };
    assert_eq!(body.outputs.len(), 1);
    assert!(body.nodes.len() < seq_bodies::rnn_body().nodes.len(), "the product h' · h is gone");
    same_outputs(&g, &pruned);
    // Read, it stays and keeps its index.
    let sum = g.binary(BinaryOp::Add, ys, ys, sp()).unwrap();
    g.outputs.push(("ys".into(), sum));
    let kept = prune_scan_outputs(&g);
    let Op::Scan { body, .. } = &kept.node(h).op else { panic!("still a scan") };
    assert_eq!(body.outputs.len(), 2);
}

/// The ops of a graph's live nodes, by name.
fn op_names(g: &Graph) -> Vec<&'static str> {
    let live = g.live_nodes();
    g.ids().filter(|id| live[id.index()]).map(|id| g.node(id).op.name()).collect()
}

#[test]
fn the_backward_loop_reads_saved_activations_instead_of_recomputing_the_step() {
    let (mut g, h) = rnn(ScanOutput::Final(0));
    let loss = g.reduce(ReduceOp::Sum, h, vec![0, 1], false, sp()).unwrap();
    g.outputs = vec![("h".into(), h), ("loss".into(), loss)];
    let d = simplify(&grad(&g, loss, &[0, 1, 2]).unwrap());
    let backward = d
        .ids()
        .find_map(|id| match &d.node(id).op {
            Op::Scan { body, reverse: true, .. } => Some(body.clone()),
            _ => None,
        })
        .expect("a backward loop");
    // The step's tanh comes in as a residual sequence: no tanh, and of the products only
    // d h · whᵀ, which the next step needs; not the forward x · wx and h · wh, and not the
    // weight gradients xᵀ · d s and hᵀ · d s, one product each after the loop.
    let ops = op_names(&backward);
    assert!(!ops.contains(&"tanh"), "{ops:?}");
    assert_eq!(ops.iter().filter(|&&o| o == "matmul").count(), 1, "{ops:?}");
    assert!(backward.inputs.iter().any(|i| i.name.starts_with("residual")));
    // The residual comes from the one forward loop, and the gradients are unchanged.
    assert_eq!(loops(&d), 2);
    same_outputs(&g, &d);
}
