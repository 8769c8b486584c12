//! Gradient checks of the sequence layers of the standard library (Embedding, SimpleRNN,
//! LSTM, GRU, stacked with `return_sequences`), compiled from small `.dnn` programs,
//! differentiated by `autodiff` (the `scan` rule: backpropagation through time) and
//! compared with central finite differences in f64 through the reference interpreter.

use dnnc::autodiff::{GradCheckOptions, check_gradients};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::ParamStore;
use dnnc::sema::check_source;
use ndarray::ArrayD;

/// The input: floats `[B, T, F]`, or ids `[B, T]` below `vocab`.
enum X {
    Floats(&'static [usize]),
    Ids(&'static [usize], u64),
}

/// Compiles `src` (one model, one `train` block with binary labels) and checks the
/// gradient of its loss with respect to every trainable parameter.
fn check(name: &str, src: &str, x: X) {
    let checked = check_source(&format!("{name}.dnn"), src);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    let program = checked.program.unwrap_or_else(|| panic!("{name} does not compile:\n{rendered}"));
    let graph = program.trains[0].train_graph.as_ref().expect("a train block");
    let loss = graph.output("loss").expect("a loss");
    let mut rng = Rng::new(5);
    let (x, batch) = match x {
        X::Floats(shape) => {
            (Value::F32(ArrayD::from_shape_fn(shape, |_| (rng.uniform() * 2.0 - 1.0) as f32)), shape[0])
        }
        X::Ids(shape, vocab) => {
            (Value::I64(ArrayD::from_shape_fn(shape, |_| rng.below(vocab) as i64)), shape[0])
        }
    };
    let y = Value::I64(ArrayD::from_shape_fn(vec![batch], |_| rng.below(2) as i64));
    let store = ParamStore::init(graph, 3).expect("parameters");
    let params: Vec<Value> =
        store.values.iter().map(|v| Value::F32(v.mapv(|_| (rng.normal() * 0.5) as f32 + 0.05))).collect();
    let wrt: Vec<usize> = (0..graph.params.len()).filter(|&i| graph.params[i].trainable).collect();
    let report = check_gradients(graph, loss, &[x, y], &params, &wrt, &GradCheckOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(report.passed(), "{name}: gradients disagree with finite differences:\n{report}");
    assert_eq!(report.params.len(), wrt.len(), "{name}: every trainable parameter is checked");
}

fn program(input: &str, layers: &str, uses: &str, data: &str) -> String {
    format!(
        "use std::layers::{{Dense, {uses}}}
model M(x: {input}) -> f32[B, 1] = x |> {layers} |> Dense(1, act: sigmoid)
train M {{ data = {data} loss = binary_crossentropy() optimizer = SGD() }}"
    )
}

const SEQ: &str = "sequences(samples: 8, steps: 3, features: 2)";

#[test]
fn simple_rnn_stacked() {
    let src =
        program("f32[B, 3, 2]", "SimpleRNN(3, return_sequences: true) |> SimpleRNN(2)", "SimpleRNN", SEQ);
    check("simple_rnn", &src, X::Floats(&[2, 3, 2]));
}

#[test]
fn lstm_stacked() {
    let src = program("f32[B, 3, 2]", "LSTM(3, return_sequences: true) |> LSTM(2)", "LSTM", SEQ);
    check("lstm", &src, X::Floats(&[2, 3, 2]));
}

#[test]
fn gru() {
    let src = program("f32[B, 3, 2]", "GRU(3)", "GRU", SEQ);
    check("gru", &src, X::Floats(&[2, 3, 2]));
}

#[test]
fn embedding_into_lstm_and_gru() {
    let data = "imdb(vocab: 6, length: 4)";
    let src = program("i64[B, 4]", "Embedding(6, 3) |> LSTM(2)", "Embedding, LSTM", data);
    check("embedding_lstm", &src, X::Ids(&[2, 4], 6));
    let src = program(
        "i64[B, 4]",
        "Embedding(6, 3) |> GRU(2, return_sequences: true) |> GRU(2)",
        "Embedding, GRU",
        data,
    );
    check("embedding_gru", &src, X::Ids(&[2, 4], 6));
}
