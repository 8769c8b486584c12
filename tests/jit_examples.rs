//! The JIT against the reference interpreter on the examples: every output of the
//! forward-plus-backward graph for random inputs, then several training steps (parameters
//! compared after each), then a short training run on both back ends.
//!
//! Tolerances: the JIT sums in another order (vector lanes, GEMM blocking) and its exp,
//! log, tanh and sigmoid are polynomials within a few ULP, so values agree to a relative
//! 1e-4 of each output's scale; the optimizer update is bit-identical to the interpreter's,
//! so parameters drift apart only through those gradients: 1e-4 after a few Adam steps.

use dnnc::runtime::train::BackendKind;

#[path = "support/examples.rs"]
mod support;
use dnnc::runtime::optim::ArgValue;
use support::{
    compare_step_outputs, compare_training_steps, compare_training_steps_with, program, train_spec,
};

#[test]
fn mnist_step_outputs_match_the_interpreter() {
    compare_step_outputs("examples/mnist.dnn", 8, 10, 1e-4, 1e-6);
}

#[test]
fn binary_step_outputs_match_the_interpreter() {
    compare_step_outputs("examples/binary.dnn", 7, 2, 1e-4, 1e-6);
}

#[test]
fn mnist_training_steps_match_the_interpreter() {
    compare_training_steps("examples/mnist.dnn", 16, 10, 4);
}

#[test]
fn binary_training_steps_match_the_interpreter() {
    compare_training_steps("examples/binary.dnn", 16, 2, 5);
}

#[test]
fn every_optimizer_setting_updates_like_the_interpreter() {
    // Each setting reads other scalars of the step's hyper block (clip bound, l2, decay,
    // per-tensor or global norm scales, momentum slots), so a scalar wired to the wrong
    // place shows as a parameter far from the interpreter's.
    let f = ArgValue::Float;
    let settings: &[(&str, &[(&str, ArgValue)])] = &[
        ("Adam", &[("clipvalue", f(0.01)), ("l2", f(0.05)), ("weight_decay", f(0.1))]),
        ("Adam", &[("clipnorm", f(0.05))]),
        ("Adam", &[("global_clipnorm", f(0.05)), ("lr", f(0.01))]),
        ("SGD", &[("momentum", f(0.9)), ("nesterov", ArgValue::Bool(true)), ("l2", f(0.01))]),
        ("RMSprop", &[("momentum", f(0.5)), ("centered", ArgValue::Bool(true)), ("weight_decay", f(0.2))]),
    ];
    for (name, args) in settings {
        compare_training_steps_with("examples/binary.dnn", 16, 2, 3, name, args);
    }
}

#[test]
fn dropout_training_steps_match_the_interpreter() {
    // The same seeded masks on both back ends, drawn natively by the JIT.
    compare_training_steps("tests/fixtures/dropout.dnn", 16, 3, 4);
}

/// Trains a few epochs of the binary example on both back ends and compares the histories.
#[test]
fn a_short_training_run_matches_on_both_back_ends() {
    let p = program("examples/binary.dnn");
    let spec = train_spec(&p);
    let run = |backend| {
        let cfg = dnnc::runtime::train::RunConfig {
            epochs: Some(3),
            limit: Some(400),
            interactive: Some(false),
            backend: Some(backend),
            ..Default::default()
        };
        dnnc::runtime::train::fit(spec, &cfg, &mut std::io::sink()).expect("training runs")
    };
    let (jit, interp) = (run(BackendKind::Jit), run(BackendKind::Interp));
    for (j, i) in jit.history.records.iter().zip(&interp.history.records) {
        assert!((j.train_loss - i.train_loss).abs() < 1e-4, "{} vs {}", j.train_loss, i.train_loss);
        let (jv, iv) = (j.val_loss.unwrap(), i.val_loss.unwrap());
        assert!((jv - iv).abs() < 1e-4, "{jv} vs {iv}");
    }
    let first = jit.history.records.first().unwrap().train_loss;
    let last = jit.history.records.last().unwrap().train_loss;
    assert!(last < first, "the loss falls: {first} -> {last}");
}
