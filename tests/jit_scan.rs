//! Native `scan` in the JIT against the reference interpreter: forward loops in both
//! directions with stacked and final results, several carries, sequences and captures, and
//! their gradients (the backward loops), within a relative tolerance of 1e-4 of the
//! largest magnitude of each result (f32 products summed in a different order). Every
//! loop must be compiled natively (no reference fallback in the plan) and run exactly once
//! per run, however many results it gives.

#[path = "support/seq_bodies.rs"]
mod seq_bodies;

use dnnc::autodiff::grad;
use dnnc::codegen::PlanOptions;
use dnnc::codegen::specialize::Instr;
use dnnc::ir::{BinaryOp, Graph, Init, NodeId, ParamInfo, ReduceOp, RunOptions, ScanOutput, run};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{Executable, JitExecutable};
use dnnc::source::Span;
use ndarray::{ArrayD, IxDyn};
use seq_bodies::{f32t, i64t, scan};

fn sp() -> Span {
    Span::dummy()
}

fn param(g: &mut Graph, name: &str, dims: &str) -> NodeId {
    g.add_param(ParamInfo {
        name: name.into(),
        ty: f32t(dims),
        init: Init::Zeros,
        trainable: true,
        span: sp(),
    })
}

fn random(shape: &[usize], rng: &mut Rng) -> Value {
    let n = shape.iter().product();
    Value::F32(
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect())
            .expect("shape"),
    )
}

/// Random values for every input and parameter of `g`, with `B = batch`; i64 inputs get
/// ids below 5.
fn arguments(g: &Graph, batch: usize, seed: u64) -> (Vec<Value>, Vec<Value>) {
    let mut rng = Rng::new(seed);
    let shape = |t: &dnnc::shape::TensorType| -> Vec<usize> {
        t.shape.iter().map(|d| d.as_const().map_or(batch, |c| c as usize)).collect()
    };
    let inputs = g
        .inputs
        .iter()
        .map(|i| match i.ty.dtype {
            dnnc::shape::DType::I64 => {
                let s = shape(&i.ty);
                let n = s.iter().product();
                Value::I64(
                    ArrayD::from_shape_vec(IxDyn(&s), (0..n).map(|_| rng.below(5) as i64).collect())
                        .expect("shape"),
                )
            }
            _ => random(&shape(&i.ty), &mut rng),
        })
        .collect();
    let params = g.params.iter().map(|p| random(&shape(&p.ty), &mut rng)).collect();
    (inputs, params)
}

/// Runs `g` on the JIT (with one thread and with two, which may run a loop's batch in
/// halves) and on the interpreter and compares every output; returns the loops in the plan
/// and how many times loops ran in one JIT run.
fn compare(g: &Graph, batch: usize) -> (usize, u64) {
    let one = compare_on(g, batch, 1);
    assert_eq!(compare_on(g, batch, 2), one, "two threads plan and run the loops as one does");
    one
}

/// The JIT of `g` with `threads` threads.
fn jit_on(g: &Graph, threads: usize) -> JitExecutable {
    JitExecutable::new(g, 0, PlanOptions { threads, ..PlanOptions::default() })
}

fn compare_on(g: &Graph, batch: usize, threads: usize) -> (usize, u64) {
    let (inputs, params) = arguments(g, batch, 11);
    let mut jit = jit_on(g, threads);
    let program = jit.program(&inputs).expect("binds").expect("the JIT compiles the graph");
    let plan = program.plan();
    let loops = plan.instrs.iter().filter(|i| matches!(i, Instr::Scan(_))).count();
    let fallbacks: Vec<_> = plan.instrs.iter().filter(|i| matches!(i, Instr::Fallback { .. })).collect();
    assert!(fallbacks.is_empty(), "reference fallbacks left: {fallbacks:?}");
    let before = program.loop_runs();
    let got = jit.run(&inputs, &params, 0).expect("the JIT runs");
    let runs = jit.program(&inputs).expect("binds").expect("compiled").loop_runs() - before;
    let want = run(g, &inputs, &params, &RunOptions::default()).expect("the interpreter runs");
    for ((name, _), (a, b)) in g.outputs.iter().zip(got.iter().zip(&want)) {
        let (a, b) = (a.to_f64(), b.to_f64());
        assert_eq!(a.shape(), b.shape(), "{name}");
        let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= 1e-4 * scale, "{name}: jit {x} vs interp {y}");
        }
    }
    (loops, runs)
}

/// The RNN body over `xs [B, 4, 2]` with every result of its loop as an output.
fn rnn_graph(reverse: bool) -> Graph {
    let mut g = Graph::new("rnn");
    let xs = g.add_input("xs", f32t("B, 4, 2"), sp());
    let h0 = g.add_input("h0", f32t("B, 3"), sp());
    let wx = param(&mut g, "wx", "2, 3");
    let wh = param(&mut g, "wh", "3, 3");
    let b = param(&mut g, "b", "3");
    let ops = [h0, xs, wx, wh, b];
    for (name, out) in
        [("hs", ScanOutput::Stacked(0)), ("ys", ScanOutput::Stacked(1)), ("h", ScanOutput::Final(0))]
    {
        let n = scan(&mut g, seq_bodies::rnn_body(), 1, 1, reverse, out, &ops).expect("types");
        g.outputs.push((name.into(), n));
    }
    g
}

#[test]
fn forward_loops_match_the_interpreter_in_both_directions() {
    for reverse in [false, true] {
        let (loops, runs) = compare(&rnn_graph(reverse), 3);
        assert_eq!((loops, runs), (1, 1), "three results, one loop, one run");
    }
}

#[test]
fn two_carries_and_an_i64_sequence_run_natively() {
    let mut g = Graph::new("cells");
    let xs = g.add_input("xs", f32t("B, 5, 2"), sp());
    let h0 = g.add_input("h0", f32t("B, 3"), sp());
    let c0 = g.add_input("c0", f32t("B, 3"), sp());
    let w = param(&mut g, "w", "2, 3");
    let u = param(&mut g, "u", "3, 3");
    for (name, out) in
        [("h", ScanOutput::Final(0)), ("c", ScanOutput::Final(1)), ("ys", ScanOutput::Stacked(2))]
    {
        let n = scan(&mut g, seq_bodies::two_carry_body(), 2, 1, false, out, &[h0, c0, xs, w, u]).unwrap();
        g.outputs.push((name.into(), n));
    }
    assert_eq!(compare(&g, 4), (1, 1));

    // Ids as the sequence: the body gathers its step's rows natively or by fallback, the
    // loop itself stays native.
    let mut g = Graph::new("embed");
    let ids = g.add_input("ids", i64t("B, 6"), sp());
    let h0 = g.add_input("h0", f32t("B, 3"), sp());
    let table = param(&mut g, "table", "5, 3");
    let wh = param(&mut g, "wh", "3, 3");
    let h =
        scan(&mut g, seq_bodies::embedding_body(), 1, 1, true, ScanOutput::Stacked(0), &[h0, ids, table, wh])
            .unwrap();
    g.outputs.push(("hs".into(), h));
    assert_eq!(compare(&g, 2), (1, 1));
}

/// loss = Σ w ⊙ out for a random input `w` of out's type.
fn weighted_sum(g: &mut Graph, out: NodeId, name: &str) -> NodeId {
    let w = g.add_input(name, g.ty(out).clone(), sp());
    let p = g.binary(BinaryOp::Mul, out, w, sp()).unwrap();
    let axes = (0..g.ty(p).rank()).collect();
    g.reduce(ReduceOp::Sum, p, axes, false, sp()).unwrap()
}

#[test]
fn gradients_of_stacked_and_final_results_match_the_interpreter() {
    for reverse in [false, true] {
        let mut g = rnn_graph(reverse);
        let outs: Vec<NodeId> = g.outputs.iter().map(|o| o.1).collect();
        let mut loss = None;
        for (i, o) in outs.into_iter().enumerate() {
            let term = weighted_sum(&mut g, o, &format!("w{i}"));
            loss = Some(match loss {
                None => term,
                Some(l) => g.binary(BinaryOp::Add, l, term, sp()).unwrap(),
            });
        }
        let loss = loss.unwrap();
        g.outputs = vec![("loss".into(), loss)];
        let d = dnnc::ir::simplify::simplify(&grad(&g, loss, &[0, 1, 2]).expect("differentiable"));
        // The forward results and the saved carries come from one loop, the gradients of
        // the three results from one backward loop each.
        let (loops, runs) = compare(&d, 3);
        assert_eq!(loops as u64, runs);
        assert_eq!(loops, 4, "one forward loop and one backward loop per result");
    }
}

/// The scan loops of `g`'s plan with `threads`, as whether each runs in batch halves, and
/// the outputs of one run.
fn halves_and_outputs(g: &Graph, batch: usize, threads: usize) -> (Vec<bool>, Vec<Value>) {
    let (inputs, params) = arguments(g, batch, 5);
    let mut jit = jit_on(g, threads);
    let program = jit.program(&inputs).expect("binds").expect("compiles");
    let halves = program
        .plan()
        .instrs
        .iter()
        .filter_map(|i| match i {
            Instr::Scan(lp) => Some(lp.halves.is_some()),
            _ => None,
        })
        .collect();
    (halves, jit.run(&inputs, &params, 0).expect("runs"))
}

/// A body that keeps batch rows apart runs as two loops over the halves of the batch when
/// the step has two threads, even and uneven, giving what one loop gives to within f32
/// rounding (a one-row half takes the product's row-times-matrix path, which adds in
/// another order).
#[test]
fn a_row_wise_loop_runs_in_two_halves_of_the_batch_with_the_same_results() {
    for batch in [2, 5, 8] {
        let g = rnn_graph(false);
        let (split, two) = halves_and_outputs(&g, batch, 2);
        let (whole, one) = halves_and_outputs(&g, batch, 1);
        assert_eq!((split, whole), (vec![true], vec![false]), "batch {batch}");
        for (a, b) in two.iter().zip(&one) {
            let (a, b) = (a.to_f64(), b.to_f64());
            assert_eq!(a.shape(), b.shape());
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "batch {batch}: halves {x}, whole {y}");
            }
        }
    }
}

/// A body that mixes rows (a carry plus the sum of the carry over the batch) is never
/// split, and still matches the interpreter with two threads.
#[test]
fn a_loop_that_mixes_batch_rows_runs_whole() {
    let mut body = Graph::new("mixing_step");
    let h = body.add_input("h", f32t("B, 3"), sp());
    let x = body.add_input("x", f32t("B, 3"), sp());
    let total = body.reduce(ReduceOp::Sum, h, vec![0], true, sp()).expect("types");
    let mixed = body.binary(BinaryOp::Add, total, x, sp()).expect("types");
    let new_h = body.unary(dnnc::ir::UnaryOp::Tanh, mixed, sp()).expect("types");
    body.outputs = vec![("h".into(), new_h)];
    let mut g = Graph::new("mixing");
    let xs = g.add_input("xs", f32t("B, 4, 3"), sp());
    let h0 = g.add_input("h0", f32t("B, 3"), sp());
    let out = scan(&mut g, body, 1, 1, false, ScanOutput::Final(0), &[h0, xs]).expect("types");
    g.outputs.push(("h".into(), out));
    let (split, _) = halves_and_outputs(&g, 4, 2);
    assert_eq!(split, vec![false]);
    assert_eq!(compare(&g, 4), (1, 1));
}
