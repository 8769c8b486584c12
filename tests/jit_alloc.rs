//! A compiled training step allocates nothing after the first: the arenas, the frame and
//! the programs are built once per batch size, the matrix products pack into per-thread
//! workspaces made on their first use, and a step only binds pointers and calls native
//! code. This binary's own counting global allocator counts every allocation of ten warm
//! steps, on every thread.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[path = "support/examples.rs"]
mod support;

use dnnc::codegen::PlanOptions;
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{JitStepper, TrainStepper};

fn stepper(path: &str, threads: usize) -> (JitStepper, dnnc::ir::Graph) {
    support::jit_stepper(path, "Adam", 1, PlanOptions { threads, ..PlanOptions::default() })
}

fn batch(graph: &dnnc::ir::Graph, b: usize, classes: u64) -> Vec<Value> {
    support::inputs(graph, b, classes as i64, &mut Rng::new(4))
}

/// The counter is global: tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// With one thread, and with two (the team's splits, a loop's batch halves).
fn assert_steps_do_not_allocate(path: &str, classes: u64) {
    for threads in [1, 2] {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (mut s, graph) = stepper(path, threads);
        let x = batch(&graph, 32, classes);
        assert_steps_on_threads_do_not_allocate(path, &mut s, &[x], threads);
    }
}

/// Ten warm steps, over `batches` in turn after two on the first. The caller holds `SERIAL`
/// from before it builds the stepper (building allocates).
fn assert_steps_on_threads_do_not_allocate(
    path: &str,
    s: &mut JitStepper,
    batches: &[Vec<Value>],
    threads: usize,
) {
    let mut loss = 0.0;
    // The first step compiles; the second warms whatever the GEMM caches per thread.
    for step in 0..2 {
        loss += s.step(&batches[0], step).expect("step").loss;
    }
    let before = counting_alloc::allocations();
    for step in 2..12 {
        let stats = s.step(&batches[step as usize % batches.len()], step).expect("step");
        loss += stats.loss + f64::from(stats.predictions[[0, 0]]);
    }
    let steps = counting_alloc::allocations() - before;
    assert!(loss.is_finite());
    assert!(!s.plans().is_empty(), "{path}: the steps ran on the JIT");
    assert_eq!(steps, 0, "{path}, {threads} thread(s): 10 warm steps allocated {steps} times");
}

#[test]
fn warm_compiled_mnist_steps_allocate_nothing() {
    assert_steps_do_not_allocate("examples/mnist.dnn", 10);
}

#[test]
fn warm_compiled_mnist_steps_skipping_blank_pixels_allocate_nothing() {
    // Blank borders send the first layer's products through `gemm_zero_a.rs` (denser
    // batches) or `gemm_sparse_a.rs` (sparse ones), whose depth blocks and nonzero lists
    // reuse the workspace of their thread. Warmed on a dense batch only, sparse and dense
    // batches in turn then allocate nothing either.
    for threads in [1, 2] {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (mut s, graph) = stepper("examples/mnist.dnn", threads);
        let mut rng = Rng::new(6);
        let batches =
            [support::blank_bordered(&graph, &mut rng, 0.9), support::blank_bordered(&graph, &mut rng, 0.3)];
        assert_steps_on_threads_do_not_allocate(
            "examples/mnist.dnn (blank borders)",
            &mut s,
            &batches,
            threads,
        );
    }
}

#[test]
fn warm_compiled_recurrent_steps_allocate_nothing() {
    // The loops over time run their compiled bodies on scratch built with the program.
    assert_steps_do_not_allocate("examples/rnn_synthetic.dnn", 2);
}

#[test]
fn warm_compiled_binary_steps_allocate_nothing() {
    assert_steps_do_not_allocate("examples/binary.dnn", 2);
}

#[test]
fn warm_compiled_cnn_steps_allocate_nothing() {
    assert_steps_do_not_allocate("examples/mnist_cnn.dnn", 10);
}

#[test]
fn warm_compiled_dropout_steps_allocate_nothing() {
    // The dropout mask is drawn natively into its planned buffer.
    assert_steps_do_not_allocate("tests/fixtures/dropout.dnn", 3);
}

#[test]
fn warm_compiled_resnet_steps_allocate_nothing() {
    // Batch norm, dropout, a sum over the spatial axes and its broadcast all run natively.
    assert_steps_do_not_allocate("examples/resnet.dnn", 10);
}
