//! The training step's products whose A is the batch skip its zeros: in the MNIST MLP,
//! the first layer's product and its weight gradient (whose optimizer update runs in it).
//! On batches with blank borders, as MNIST's are, sparse ones (each nonzero times a row of
//! B, `kernels/gemm_sparse_a.rs`) and denser ones (the blocked product without the blank
//! features, `kernels/gemm_zero_a.rs`), the steps agree with the plain products and with
//! the interpreter.

#[path = "support/examples.rs"]
mod support;

use dnnc::codegen::PlanOptions;
use dnnc::ops::Value;
use dnnc::runtime::optim::OptimizerSpec;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{InterpStepper, ParamStore, TrainStepper, print_fused};

#[test]
fn only_the_products_of_the_batch_skip_its_zeros() {
    let program = support::program("examples/mnist.dnn");
    let text = print_fused(support::train_spec(&program)).expect("schedules");
    let skipping: Vec<&str> = text.lines().filter(|l| l.contains("skipping the batch's zeros")).collect();
    assert_eq!(skipping.len(), 2, "{text}");
    assert!(skipping[0].contains("gemm 1x[32x784] @ [784x128]"), "{text}");
    assert!(
        skipping[1].contains("gemm 1x[784x32] @ [32x128]") && skipping[1].contains("update Adam"),
        "{text}"
    );
}

#[test]
fn steps_skipping_the_batchs_zeros_agree_with_the_plain_products_and_the_interpreter() {
    let (graph, store) = support::step_parts("examples/mnist.dnn", 9);
    let opt = OptimizerSpec::from_call("Adam", &[]).expect("Adam");
    for (threads, kept) in [(1, 0.3), (2, 0.3), (1, 0.9), (2, 0.9)] {
        let jit = |skip_zero_a| {
            let options = PlanOptions { threads, skip_zero_a, ..PlanOptions::default() };
            support::jit_stepper("examples/mnist.dnn", "Adam", 9, options).0
        };
        let (mut skipping, mut plain) = (jit(true), jit(false));
        let mut interp = InterpStepper::new(&graph, store.clone(), opt.clone(), 0).expect("interpreter");
        let mut rng = Rng::new(5);
        for step in 0..4 {
            let x = support::blank_bordered(&graph, &mut rng, kept);
            let s = skipping.step(&x, step).expect("step").loss;
            let p = plain.step(&x, step).expect("step").loss;
            let i = interp.step(&x, step).expect("step").loss;
            for (what, other) in [("the plain product", p), ("the interpreter", i)] {
                assert!(
                    (s - other).abs() <= 1e-5 * other.abs().max(1.0),
                    "{threads} threads, {kept} kept, step {step}: loss {s} vs {what}'s {other}"
                );
            }
        }
        let (s, p, i) = (skipping.params(), plain.params(), interp.params());
        for (k, name) in s.names.iter().enumerate() {
            let value = |store: &ParamStore| Value::F32(store.values[k].clone());
            support::assert_close(
                &format!("{name}, {threads} threads, {kept} kept, vs plain"),
                &value(&s),
                &value(&p),
                1e-5,
            );
            support::assert_close(
                &format!("{name}, {threads} threads, {kept} kept, vs interp"),
                &value(&s),
                &value(&i),
                1e-4,
            );
        }
    }
}

/// A prediction skips the batch's zeros only where the first layer's weights are known
/// finite: a large one checks them on every run, a smaller one (a validation batch) only
/// when the caller has checked the parameters (`run_finite_params`). A NaN weight of a
/// pixel blank in every image reaches every output of the full product, and none of the
/// skipping one's, so it shows which product ran.
#[test]
fn a_prediction_skips_the_batchs_zeros_only_when_the_weights_are_known_finite() {
    use dnnc::runtime::train::{Executable, JitExecutable};
    let program = support::program("examples/mnist.dnn");
    let spec = support::train_spec(&program);
    let graph = &spec.eval_graph;
    let store = ParamStore::init(spec.train_graph.as_ref().expect("a training graph"), 3).expect("params");
    let mut params = store.values_for(graph).expect("the model's parameters");
    let mut rng = Rng::new(8);
    for (batch, condition) in [(128, "if B is finite"), (32, "if the parameters are checked finite")] {
        let x = support::blank_bordered_batch(graph, batch, &mut rng, 0.3);
        let mut jit = JitExecutable::new(graph, 0, PlanOptions { threads: 2, ..PlanOptions::default() });
        let plan = jit.program(&x).expect("compiles").expect("runs on the JIT").plan().to_string();
        let checked: Vec<&str> = plan.lines().filter(|l| l.contains("skipping the batch's zeros")).collect();
        assert_eq!(checked.len(), 1, "batch {batch}:\n{plan}");
        assert!(checked[0].contains("[784x128]") && checked[0].contains(condition), "{plan}");
        let interp = |params: &[Value]| {
            let opts = dnnc::ir::RunOptions::default();
            dnnc::ir::run(graph, &x, params, &opts).expect("the interpreter runs")
        };
        let want = interp(&params);
        let got = jit.run(&x, &params, 0).expect("runs");
        support::assert_close(&format!("batch {batch}: output"), &got[0], &want[0], 1e-4);
        let got = jit.run_finite_params(&x, &params, 0).expect("runs");
        support::assert_close(&format!("batch {batch}: output, finite parameters"), &got[0], &want[0], 1e-4);
        let Value::F32(w) = &mut params[0] else { panic!("the first layer's weight is f32") };
        assert_eq!(w.shape(), &[784, 128], "params[0] is the first layer's weight");
        let saved = w.as_slice().expect("contiguous")[5];
        w.as_slice_mut().expect("contiguous")[5] = f32::NAN;
        let nans = |got: &[Value]| {
            let Value::F32(out) = &got[0] else { panic!("f32 output") };
            out.iter().filter(|v| v.is_nan()).count()
        };
        let full = nans(&jit.run(&x, &params, 0).expect("runs"));
        assert_eq!(full, batch * 10, "batch {batch}: the NaN weight reaches every output");
        // The caller's word taken (wrongly here): the blank pixel's weight is never read.
        let skipped = nans(&jit.run_finite_params(&x, &params, 0).expect("runs"));
        assert_eq!(skipped, 0, "batch {batch}: the product with checked parameters skips the blank pixel");
        let Value::F32(w) = &mut params[0] else { panic!("f32") };
        w.as_slice_mut().expect("contiguous")[5] = saved;
    }
}
