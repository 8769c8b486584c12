//! The convolutional examples: each one checks, has the parameter count Keras' summary
//! gives for the same architecture, and a small convolutional program learns.

use dnnc::runtime::train::{RunConfig, fit};
#[path = "support/examples.rs"]
mod support;
use dnnc::sema::check_source;
use support::{compile_clean as compile, trained};

#[test]
fn the_examples_have_keras_parameter_counts() {
    // Conv 3·3·1·32 + 32, Dense 13·13·32·128 + 128, Dense 128·10 + 10.
    assert_eq!(trained(&compile("examples/mnist_cnn.dnn")), 320 + 692_352 + 1_290);
    // Convs (3·3·3 + 1)·32, (3·3·32 + 1)·64, (3·3·64 + 1)·128 on 32 -> 30 -> 15 -> 13 -> 6
    // -> 4 -> 2, then Dense 2·2·128·64 + 64 and 64·10 + 10.
    assert_eq!(trained(&compile("examples/cifar10_cnn.dnn")), 896 + 18_496 + 73_856 + 32_832 + 650);
    // The residual network trains convolutions, batch-norm scales and shifts, and a head.
    let resnet = compile("examples/resnet.dnn");
    let graph = resnet.trains[0].train_graph.as_ref().unwrap();
    let states: Vec<&str> = graph.params.iter().filter(|p| !p.trainable).map(|p| p.name.as_str()).collect();
    assert_eq!(states.len(), 12, "six batch norms with two statistics each: {states:?}");
    let updated = graph.outputs.iter().filter(|(n, _)| n.starts_with("state.")).count();
    assert_eq!(updated, 12);
    assert!(resnet.trains[0].eval_graph.outputs.iter().all(|(n, _)| !n.starts_with("state.")));
}

#[test]
fn a_small_cnn_learns() {
    let src = "use std::layers::{BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, Reshape}
model M(x: f32[B, 36]) -> f32[B, 3] =
    x |> Reshape([6, 6, 1]) |> Conv2D(8, 3, padding: \"same\", act: relu) |> BatchNorm() |> MaxPool2D(2)
      |> Flatten() |> Dense(3)
train M {
    data = random(samples: 256, features: 36, labels: \"classes\", classes: 3, seed: 1)
    loss = sparse_categorical_crossentropy(from_logits: true)
    optimizer = Adam(lr: 1e-2)
    epochs = 4
    batch = 32
    metrics = [accuracy]
}";
    let checked = check_source("small.dnn", src);
    let program = checked.program.expect("compiles");
    let cfg = RunConfig { seed: Some(3), interactive: Some(false), ..RunConfig::default() };
    let report = fit(&program.trains[0], &cfg, &mut Vec::new()).expect("trains");
    let losses: Vec<f64> = report.history.records.iter().map(|r| r.train_loss).collect();
    assert!(losses[3] < 0.8 * losses[0], "the loss does not fall: {losses:?}");
    // The batch-norm statistics moved away from their initial zeros and ones.
    let mean = report.params.index("batch_norm.moving_mean").unwrap();
    assert!(report.params.values[mean].iter().any(|&v| v.abs() > 1e-3));
}
