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
