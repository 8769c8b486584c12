//! The JIT against the reference interpreter on the convolutional examples, whose
//! convolutions and pooling run on the native kernels of `kernels::conv` and
//! `kernels::pool`: every output of the forward-plus-backward graph on random batches,
//! and a few training steps of the MNIST CNN with the parameters compared after each.
//! Each plan is checked to run its window ops natively, not through the fallback.
//!
//! Tolerance: the GEMM sums a convolution's taps in another order than ndarray's product,
//! and the gradients of the dense layers sum over thousands of such values: a relative
//! 1e-4 of each output's scale, as for the dense examples (`jit_examples.rs`).

#[path = "support/examples.rs"]
mod support;
use support::{compare_step_outputs, compare_training_steps, program, train_spec};

use dnnc::codegen::PlanOptions;
use dnnc::codegen::specialize::Instr;
use dnnc::runtime::train::{JitStepper, ParamStore, TrainStepper, step_graph};

/// The window ops of one training step of `path` that run natively and through the
/// reference fallback.
fn window_instrs(path: &str) -> (usize, Vec<String>) {
    let p = program(path);
    let spec = train_spec(&p);
    let graph = step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().unwrap(), 1).unwrap();
    let opt = dnnc::runtime::optim::OptimizerSpec::from_call("Adam", &[]).unwrap();
    let mut s = JitStepper::new(&graph, store, opt, 0, PlanOptions::default()).unwrap();
    let mut rng = dnnc::runtime::rng::Rng::new(2);
    s.step(&support::inputs(&graph, 2, 10, &mut rng), 0).expect("one step");
    let plan = s.plans()[0];
    let native = plan.instrs.iter().filter(|i| matches!(i, Instr::Window { .. })).count();
    let fallback = plan
        .instrs
        .iter()
        .filter_map(|i| match i {
            Instr::Fallback { node, .. } => Some(graph.node(*node).op.name().to_string()),
            _ => None,
        })
        .filter(|name| name.contains("conv") || name.contains("pool"))
        .collect();
    (native, fallback)
}

#[test]
fn window_ops_run_natively_in_every_cnn_example() {
    // mnist_cnn: conv, pool, pool grad, filter grad; cifar: 3 convs, 3 pools and their
    // gradients, 2 input gradients; resnet: 6 convs, 6 filter grads, 5 input grads, avg pool.
    for (path, at_least) in
        [("examples/mnist_cnn.dnn", 4), ("examples/cifar10_cnn.dnn", 14), ("examples/resnet.dnn", 14)]
    {
        let (native, fallback) = window_instrs(path);
        assert!(fallback.is_empty(), "{path}: {fallback:?} still run on the reference kernels");
        assert!(native >= at_least, "{path}: only {native} native window instructions");
    }
}

#[test]
fn mnist_cnn_step_outputs_match_the_interpreter() {
    compare_step_outputs("examples/mnist_cnn.dnn", 3, 10, 1e-4, 1e-6);
}

#[test]
fn cifar_cnn_step_outputs_match_the_interpreter() {
    compare_step_outputs("examples/cifar10_cnn.dnn", 2, 10, 1e-4, 1e-6);
}

#[test]
fn resnet_step_outputs_match_the_interpreter() {
    // Strided and `same` convolutions, a 1×1 projection, average pooling, batch norm and
    // dropout (the same seeded mask on both back ends).
    // The biases of convolutions followed by batch norm have a zero gradient in exact
    // arithmetic (the norm removes any shift); both back ends give rounding noise up to
    // 1e-6 there, so every output is compared within 1e-4 of at least 0.1.
    compare_step_outputs("examples/resnet.dnn", 2, 10, 1e-4, 0.1);
}

#[test]
fn mnist_cnn_training_steps_match_the_interpreter() {
    compare_training_steps("examples/mnist_cnn.dnn", 4, 10, 3);
}

#[test]
fn two_threads_train_the_cnn_like_one() {
    // Threads split the images of a convolution or a pooling and the rows of a product:
    // each element is summed in the same order, except the filter gradient's sum over the
    // two halves.
    let p = program("examples/mnist_cnn.dnn");
    let spec = train_spec(&p);
    let graph = step_graph(spec).expect("step graph");
    let mut rng = dnnc::runtime::rng::Rng::new(5);
    let batch = support::inputs(&graph, 8, 10, &mut rng);
    let mut params = Vec::new();
    for threads in [1, 2] {
        let store = ParamStore::init(spec.train_graph.as_ref().unwrap(), 1).unwrap();
        let opt = dnnc::runtime::optim::OptimizerSpec::from_call("Adam", &[]).unwrap();
        let options = PlanOptions { threads, parallel_threshold: 1, ..PlanOptions::default() };
        let mut s = JitStepper::new(&graph, store, opt, 0, options).unwrap();
        for step in 0..2 {
            s.step(&batch, step).expect("step");
        }
        let plan = s.plans()[0];
        let parallel = plan.instrs.iter().any(|i| matches!(i, Instr::Gemm { threads: 2, .. }));
        assert_eq!(parallel, threads == 2, "products use the threads they are given");
        let windows: Vec<usize> = plan
            .instrs
            .iter()
            .filter_map(|i| match i {
                Instr::Window { threads, .. } => Some(*threads),
                _ => None,
            })
            .collect();
        assert!(windows.len() >= 3, "convolution and pooling run natively: {windows:?}");
        assert!(
            windows.iter().all(|&t| t == threads),
            "convolutions and pooling use the threads: {windows:?}"
        );
        params.push(s.params());
    }
    for ((name, a), b) in params[0].names.iter().zip(&params[0].values).zip(&params[1].values) {
        let scale = a.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        let diff = a.iter().zip(b.iter()).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= 1e-4 * scale, "{name}: 1 and 2 threads differ by {diff} (scale {scale})");
    }
}
