//! Gradient checks of the standard library: every activation, loss and layer written in
//! `.dnn`, differentiated by `autodiff` and compared with central finite differences in
//! f64 through the reference interpreter.

use dnnc::autodiff::{GradCheckOptions, check_gradients};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::ParamStore;
use dnnc::sema::check_source;
use ndarray::ArrayD;

/// Compiles a program with one model and one `train` block and checks the gradient of its
/// loss with respect to every trainable parameter.
fn check(name: &str, src: &str, x_shape: &[usize], labels: Labels) {
    let checked = check_source(&format!("{name}.dnn"), src);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    let program = checked.program.unwrap_or_else(|| panic!("{name} does not compile:\n{rendered}"));
    let graph = program.trains[0].train_graph.as_ref().expect("a train block");
    let loss = graph.output("loss").expect("a loss");
    let mut rng = Rng::new(11);
    let x = ArrayD::from_shape_fn(x_shape, |_| (rng.uniform() * 2.0 - 1.0) as f32);
    let batch = x_shape[0];
    let y = match labels {
        Labels::Classes(k) => Value::I64(ArrayD::from_shape_fn(vec![batch], |_| rng.below(k) as i64)),
        Labels::Binary => Value::I64(ArrayD::from_shape_fn(vec![batch], |_| rng.below(2) as i64)),
        Labels::Floats(shape) => Value::F32(ArrayD::from_shape_fn(shape, |_| rng.uniform() as f32)),
        Labels::OneHot(k) => {
            Value::F32(ArrayD::from_shape_fn(vec![batch, k], |i| if i[1] == i[0] % k { 1.0 } else { 0.0 }))
        }
    };
    // Random parameters, biases included, so that no unit sits at a kink.
    let store = ParamStore::init(graph, 3).expect("parameters");
    let params: Vec<Value> =
        store.values.iter().map(|v| Value::F32(v.mapv(|_| (rng.normal() * 0.5) as f32 + 0.05))).collect();
    let wrt: Vec<usize> = (0..graph.params.len()).filter(|&i| graph.params[i].trainable).collect();
    let report =
        check_gradients(graph, loss, &[Value::F32(x), y], &params, &wrt, &GradCheckOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(report.passed(), "{name}: gradients disagree with finite differences:\n{report}");
    assert_eq!(report.params.len(), wrt.len(), "{name}: every trainable parameter is checked");
}

enum Labels {
    Classes(u64),
    Binary,
    Floats(Vec<usize>),
    OneHot(usize),
}

fn classifier(act: &str) -> String {
    format!(
        "use std::layers::{{Dense}}
model M(x: f32[B, 5]) -> f32[B, 3] = x |> Dense(4, act: {act}) |> Dense(3)
train M {{
    data = random(samples: 8, features: 5, labels: \"classes\", classes: 3)
    loss = sparse_categorical_crossentropy(from_logits: true)
    optimizer = SGD()
}}"
    )
}

#[test]
fn every_activation() {
    for act in [
        "relu",
        "leaky_relu",
        "elu",
        "swish",
        "sigmoid",
        "tanh",
        "identity",
        "softmax",
        "log_softmax",
        "softplus",
        "square",
    ] {
        check(act, &classifier(act), &[4, 5], Labels::Classes(3));
    }
}

fn loss_program(out: &str, loss: &str, data: &str) -> String {
    format!(
        "use std::layers::{{Dense}}
model M(x: f32[B, 5]) -> {out} = x |> Dense(4, act: tanh) |> LAST
train M {{
    data = {data}
    loss = {loss}
    optimizer = SGD()
}}"
    )
}

#[test]
fn every_loss() {
    let cases = [
        (
            "mse",
            "f32[B, 1]",
            "Dense(1)",
            "mse",
            "random(samples: 8, features: 5, labels: \"regression\")",
            Labels::Floats(vec![4]),
        ),
        (
            "mae",
            "f32[B, 1]",
            "Dense(1)",
            "mae",
            "random(samples: 8, features: 5, labels: \"regression\")",
            Labels::Floats(vec![4]),
        ),
        (
            "bce",
            "f32[B, 1]",
            "Dense(1, act: sigmoid)",
            "binary_crossentropy()",
            "random(samples: 8, features: 5)",
            Labels::Binary,
        ),
        (
            "bce_logits",
            "f32[B, 1]",
            "Dense(1)",
            "binary_crossentropy(from_logits: true)",
            "random(samples: 8, features: 5)",
            Labels::Binary,
        ),
        (
            "cce",
            "f32[B, 3]",
            "Dense(3, act: softmax)",
            "categorical_crossentropy()",
            "npz(path: \"unused.npz\")",
            Labels::OneHot(3),
        ),
        (
            "cce_logits",
            "f32[B, 3]",
            "Dense(3)",
            "categorical_crossentropy(from_logits: true)",
            "npz(path: \"unused.npz\")",
            Labels::OneHot(3),
        ),
        (
            "scce",
            "f32[B, 3]",
            "Dense(3, act: softmax)",
            "sparse_categorical_crossentropy()",
            "random(samples: 8, features: 5, labels: \"classes\", classes: 3)",
            Labels::Classes(3),
        ),
        (
            "scce_logits",
            "f32[B, 3]",
            "Dense(3)",
            "sparse_categorical_crossentropy(from_logits: true)",
            "random(samples: 8, features: 5, labels: \"classes\", classes: 3)",
            Labels::Classes(3),
        ),
    ];
    for (name, out, last, loss, data, labels) in cases {
        let src = loss_program(out, loss, data).replace("LAST", last);
        check(name, &src, &[4, 5], labels);
    }
}

#[test]
fn every_layer() {
    let prelu = "use std::layers::{Dense, PReLU}
model M(x: f32[B, 5]) -> f32[B, 3] = x |> Dense(4) |> PReLU() |> Dense(3)
train M { data = random(samples: 8, features: 5, labels: \"classes\", classes: 3) loss = sparse_categorical_crossentropy(from_logits: true) optimizer = SGD() }";
    check("prelu", prelu, &[4, 5], Labels::Classes(3));
    let flatten = "use std::layers::{Dense, Flatten}
model M(x: f32[B, 2, 3]) -> f32[B, 3] = x |> Flatten() |> Dense(3)
train M { data = npz(path: \"unused.npz\") loss = sparse_categorical_crossentropy(from_logits: true) optimizer = SGD() }";
    check("flatten", flatten, &[4, 2, 3], Labels::Classes(3));
    // Dropout draws its mask from the step's seed, so every finite-difference evaluation
    // sees the same mask and the loss is differentiable.
    let dropout = "use std::layers::{Dense, Dropout}
model M(x: f32[B, 5]) -> f32[B, 3] = x |> Dense(6, act: tanh) |> Dropout(0.5) |> Dense(3)
train M { data = random(samples: 8, features: 5, labels: \"classes\", classes: 3) loss = sparse_categorical_crossentropy(from_logits: true) optimizer = SGD() }";
    check("dropout", dropout, &[4, 5], Labels::Classes(3));
    let reshape = "use std::layers::{Dense, Reshape, Flatten}
model M(x: f32[B, 6]) -> f32[B, 3] = x |> Reshape([2, 3]) |> Dense(4) |> Flatten() |> Dense(3)
train M { data = npz(path: \"unused.npz\") loss = sparse_categorical_crossentropy(from_logits: true) optimizer = SGD() }";
    check("reshape_dense_3d", reshape, &[4, 6], Labels::Classes(3));
}

#[test]
fn shared_weights_sum_their_gradients() {
    let src = "use std::layers::{Dense}
model M(x: f32[B, 4]) -> f32[B, 4] {
    let d = Dense(4, act: tanh)
    d(d(x))
}
train M { data = npz(path: \"unused.npz\") loss = mse optimizer = SGD() }";
    check("shared", src, &[3, 4], Labels::Floats(vec![3, 4]));
}
