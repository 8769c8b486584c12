//! The sequence examples: each one checks, has the parameter count Keras' summary gives for
//! the same architecture, and the SimpleRNN example learns on the interpreter.

use dnnc::runtime::train::{RunConfig, fit};
#[path = "support/examples.rs"]
mod support;
use dnnc::sema::check_source;
use support::{compile_clean as compile, trained};

#[test]
fn the_examples_have_keras_parameter_counts() {
    // SimpleRNN: 5·50 + 50·50 + 50; Dense 50 + 1.
    assert_eq!(trained(&compile("examples/rnn_synthetic.dnn")), 2_800 + 51);
    // Embedding 5000·128; LSTM 4·(128·64 + 64·64 + 64); Dense 64 + 1.
    assert_eq!(trained(&compile("examples/imdb_lstm.dnn")), 640_000 + 49_408 + 65);
    // GRU with reset_after: 3·(128·64 + 64·64 + 2·64).
    assert_eq!(trained(&compile("examples/imdb_gru.dnn")), 640_000 + 37_248 + 65);
}

#[test]
fn the_simple_rnn_example_learns() {
    let program = compile("examples/rnn_synthetic.dnn");
    let cfg = RunConfig {
        seed: Some(3),
        epochs: Some(6),
        limit: Some(320),
        lr: Some(1e-2),
        interactive: Some(false),
        ..RunConfig::default()
    };
    let report = fit(&program.trains[0], &cfg, &mut Vec::new()).expect("trains");
    let last = report.history.records.last().expect("an epoch");
    let first = &report.history.records[0];
    assert!(last.train_loss < 0.7 * first.train_loss, "the loss does not fall: {:?}", report.history.records);
    let accuracy = last.train_metrics.iter().find(|(n, _)| n == "accuracy").map(|(_, v)| *v).unwrap();
    assert!(accuracy > 0.8, "training accuracy {accuracy}");
}

#[test]
fn a_step_that_changes_the_carry_type_is_a_located_error() {
    let src = "use std::layers::{Dense}
model M(x: f32[B, 4, 3]) -> f32[B, 1] = {
    let h = scan(x, zeros([B, 2]), |h, xt| h + xt, last: true)
    h |> Dense(1)
}
train M { data = sequences(samples: 8, steps: 4, features: 3) loss = binary_crossentropy() optimizer = SGD() }";
    let checked = check_source("bad_scan.dnn", src);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    assert!(checked.program.is_none(), "{rendered}");
    // `h + xt` broadcasts [B, 2] with [B, 3]: the error is at the `+` inside the closure.
    assert!(rendered.contains("do not broadcast"), "{rendered}");
    assert!(rendered.contains("h + xt"), "{rendered}");
    let src = src.replace("|h, xt| h + xt", "|h, xt| sum(xt, axis: 1, keep: true)");
    let checked = check_source("bad_scan.dnn", &src);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    assert!(checked.program.is_none(), "{rendered}");
    assert!(rendered.contains("carry 0 has type f32[B, 2] but the body returns f32[B, 1]"), "{rendered}");
}
