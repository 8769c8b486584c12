//! The convolutional layers of the standard library (`Conv2D`, `MaxPool2D`, `AvgPool2D`,
//! `GlobalAvgPool2D`, `BatchNorm`) lowered from small `.dnn` programs: gradient checks of
//! their training graphs by central differences, and batch normalization's statistics and
//! state updates against a direct computation.

use dnnc::autodiff::{GradCheckOptions, check_gradients};
use dnnc::ir::{Graph, RunOptions, run};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::sema::{Program, check_source};
use ndarray::{ArrayD, IxDyn};

fn compile(name: &str, src: &str) -> Program {
    let checked = check_source(&format!("{name}.dnn"), src);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    checked.program.unwrap_or_else(|| panic!("{name} does not compile:\n{rendered}"))
}

/// A program whose model reads 36 features as a 6×6 image with one channel and applies
/// `body` to it; its loss is sparse cross-entropy over 3 classes.
fn image_program(body: &str) -> String {
    format!(
        "use std::layers::{{AvgPool2D, BatchNorm, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, Reshape}}
model M(x: f32[B, 36]) -> f32[B, 3] = x |> Reshape([6, 6, 1]) |> {body}
train M {{
    data = random(samples: 8, features: 36, labels: \"classes\", classes: 3)
    loss = sparse_categorical_crossentropy(from_logits: true)
    optimizer = SGD()
}}"
    )
}

/// Random values for every parameter and state of `graph`, in declaration order.
fn random_params(graph: &Graph, rng: &mut Rng) -> Vec<Value> {
    graph
        .params
        .iter()
        .map(|p| {
            let shape: Vec<usize> = p.ty.shape.iter().map(|d| d.as_const().unwrap() as usize).collect();
            let n = shape.iter().product();
            let v: Vec<f64> = (0..n).map(|_| rng.normal() * 0.5 + 0.05).collect();
            Value::F64(ArrayD::from_shape_vec(IxDyn(&shape), v).unwrap())
        })
        .collect()
}

fn inputs(batch: usize, rng: &mut Rng) -> Vec<Value> {
    let x = ArrayD::from_shape_fn(IxDyn(&[batch, 36]), |_| rng.uniform() * 2.0 - 1.0);
    let y = ArrayD::from_shape_fn(IxDyn(&[batch]), |_| rng.below(3) as i64);
    vec![Value::F64(x), Value::I64(y)]
}

fn check(name: &str, body: &str) {
    let program = compile(name, &image_program(body));
    let graph = program.trains[0].train_graph.as_ref().expect("a train block");
    let loss = graph.output("loss").expect("a loss");
    let mut rng = Rng::new(name.len() as u64);
    let params = random_params(graph, &mut rng);
    let wrt: Vec<usize> = (0..graph.params.len()).filter(|&i| graph.params[i].trainable).collect();
    let report =
        check_gradients(graph, loss, &inputs(3, &mut rng), &params, &wrt, &GradCheckOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(report.passed(), "{name}: gradients disagree with finite differences:\n{report}");
    assert_eq!(report.params.len(), wrt.len());
}

#[test]
fn conv2d_and_max_pool_layers_pass_gradient_checks() {
    check("conv_max", "Conv2D(2, 3, act: tanh) |> MaxPool2D(2) |> Flatten() |> Dense(3)");
    check(
        "conv_same_strided",
        "Conv2D(3, 2, stride: 2, padding: \"same\") |> MaxPool2D([2, 1], padding: \"same\") |> Flatten() |> Dense(3)",
    );
}

#[test]
fn dilated_conv2d_avg_and_global_pooling_pass_gradient_checks() {
    check(
        "conv_dilated",
        "Conv2D(2, 2, dilation: 2, act: tanh) |> AvgPool2D(2, stride: 1) |> Flatten() |> Dense(3)",
    );
    check("conv_global", "Conv2D(4, 3, padding: \"same\") |> GlobalAvgPool2D() |> Dense(3)");
}

#[test]
fn batch_norm_passes_gradient_checks() {
    check("bn_conv", "Conv2D(2, 3) |> BatchNorm() |> Flatten() |> Dense(3)");
    check("bn_dense", "Flatten() |> Dense(4) |> BatchNorm(epsilon: 0.1) |> Dense(3)");
}

/// Batch normalization of the model input itself: the statistics and state updates are
/// compared with a direct computation over the [B, 6, 6, 1] image.
#[test]
fn batch_norm_uses_batch_statistics_and_updates_its_state() {
    let src = image_program("BatchNorm(momentum: 0.9) |> Flatten() |> Dense(3)");
    let program = compile("bn_state", &src);
    let train = program.trains[0].train_graph.as_ref().unwrap();
    let names: Vec<&str> = train.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "batch_norm.gamma",
            "batch_norm.beta",
            "batch_norm.moving_mean",
            "batch_norm.moving_var",
            "dense.w",
            "dense.b"
        ]
    );
    assert_eq!(
        train.params.iter().map(|p| p.trainable).collect::<Vec<_>>(),
        [true, true, false, false, true, true]
    );
    let mut rng = Rng::new(4);
    let mut params_pos = random_params(train, &mut rng);
    params_pos[3] = Value::F64(ArrayD::from_elem(IxDyn(&[1]), 0.7));
    let data = inputs(4, &mut rng);
    let xs: Vec<f64> = data[0].to_f64().iter().copied().collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / xs.len() as f64;
    let scalar = |v: &Value| v.to_f64().iter().copied().next().unwrap();
    let (old_mean, old_var) = (scalar(&params_pos[2]), scalar(&params_pos[3]));

    let mut g = train.clone();
    g.outputs.retain(|(n, _)| n.starts_with("state."));
    let names: Vec<&str> = g.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["state.batch_norm.moving_mean", "state.batch_norm.moving_var"]);
    let out =
        run(&g, &data, &params_pos, &RunOptions { promote_f64: true, ..RunOptions::default() }).unwrap();
    assert!((scalar(&out[0]) - (0.9 * old_mean + 0.1 * mean)).abs() < 1e-12);
    assert!((scalar(&out[1]) - (0.9 * old_var + 0.1 * var)).abs() < 1e-12);

    // The normalized image is the last rank-4 node: Flatten follows it. Training
    // normalizes by the batch statistics, evaluation by the moving ones.
    let (gamma, beta, eps) = (scalar(&params_pos[0]), scalar(&params_pos[1]), 1e-3);
    let spec = &program.trains[0];
    for (graph, m, v) in [(train, mean, var), (&spec.eval_graph, old_mean, old_var)] {
        let normalized = graph.ids().filter(|&i| graph.ty(i).rank() == 4).last().unwrap();
        let mut probe = graph.clone();
        probe.outputs = vec![("bn".into(), normalized)];
        let opts = RunOptions { promote_f64: true, ..RunOptions::default() };
        let got = run(&probe, &data[..probe.inputs.len()], &params_pos, &opts).unwrap()[0].to_f64();
        assert_eq!(got.len(), xs.len());
        for (y, x) in got.iter().zip(&xs) {
            let want = gamma * (x - m) / (v + eps).sqrt() + beta;
            assert!((y - want).abs() < 1e-9, "{}: {y} against {want}", graph.name);
        }
    }
}
