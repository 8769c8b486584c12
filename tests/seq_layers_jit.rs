//! The recurrent layers of the standard library on the JIT: masked steps leave the carry
//! unchanged (leading padding does not change the result), and a few compiled training
//! steps of SimpleRNN, LSTM and GRU models match the interpreter's.

use dnnc::codegen::PlanOptions;
use dnnc::ir::{Graph, RunOptions, run};
use dnnc::ops::Value;
use dnnc::runtime::optim::OptimizerSpec;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{
    Executable, InterpStepper, JitExecutable, JitStepper, ParamStore, TrainStepper, step_graph,
};
use dnnc::sema::{Program, check_source};
use ndarray::{ArrayD, IxDyn};

fn compile(name: &str, src: &str) -> Program {
    let checked = check_source(name, src);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    checked.program.unwrap_or_else(|| panic!("{name} does not compile:\n{rendered}"))
}

fn ids(rows: &[&[i64]]) -> Value {
    let t = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Value::I64(ArrayD::from_shape_vec(IxDyn(&[rows.len(), t]), flat).expect("rows of one length"))
}

/// The model's output for `x` on the interpreter and on the JIT (which must agree).
fn outputs(g: &Graph, params: &[Value], x: Value) -> Vec<f64> {
    let want = run(g, std::slice::from_ref(&x), params, &RunOptions::default()).expect("runs")[0].to_f64();
    let got =
        JitExecutable::new(g, 0, PlanOptions::default()).run(&[x], params, 0).expect("runs")[0].to_f64();
    for (a, b) in got.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-5, "jit {a} vs interp {b}");
    }
    want.iter().copied().collect()
}

#[test]
fn masked_padding_leaves_the_state_unchanged() {
    for layer in ["LSTM", "GRU", "SimpleRNN"] {
        let src = format!(
            "use std::layers::{{Embedding, {layer}}}
model Masked(ids: i64[B, T]) -> f32[B, 3] = {{
    let rnn = {layer}(3)
    rnn(ids |> Embedding(10, 4), mask: ids != 0)
}}
model Plain(ids: i64[B, T]) -> f32[B, 3] = ids |> Embedding(10, 4) |> {layer}(3)"
        );
        let program = compile("masked.dnn", &src);
        let (masked, plain) = (&program.models[0].graph, &program.models[1].graph);
        let store = ParamStore::init(masked, 7).expect("parameters");
        let params: Vec<Value> = store.values.iter().map(|v| Value::F32(v.clone())).collect();
        let short = outputs(masked, &params, ids(&[&[3, 5, 2, 7], &[1, 1, 4, 9]]));
        let padded = outputs(masked, &params, ids(&[&[0, 0, 3, 5, 2, 7], &[0, 0, 1, 1, 4, 9]]));
        for (a, b) in short.iter().zip(&padded) {
            assert!((a - b).abs() <= 1e-6, "{layer}: padding changed the state: {short:?} vs {padded:?}");
        }
        // Without the mask the padding steps do change it (the test can fail).
        let unmasked = outputs(plain, &params, ids(&[&[0, 0, 3, 5, 2, 7], &[0, 0, 1, 1, 4, 9]]));
        let moved = unmasked.iter().zip(&short).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 1e-3, "{layer}: unmasked padding left the state unchanged");
    }
}

/// Three training steps of `layers` on the JIT and on the interpreter from the same start:
/// the losses and the final parameters agree within 1e-4 of their scale.
fn same_training(name: &str, layers: &str) {
    let src = format!(
        "use std::layers::{{Dense, SimpleRNN, LSTM, GRU}}
model M(x: f32[B, 5, 2]) -> f32[B, 1] = x |> {layers} |> Dense(1, act: sigmoid)
train M {{ data = sequences(samples: 8, steps: 5, features: 2) loss = binary_crossentropy() optimizer = Adam(lr: 0.01) }}"
    );
    let program = compile(&format!("{name}.dnn"), &src);
    let spec = &program.trains[0];
    let graph = step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().expect("train graph"), 2).expect("init");
    let adam = || OptimizerSpec::from_call("Adam", &[]).expect("Adam");
    let mut jit =
        JitStepper::new(&graph, store.clone(), adam(), 0, PlanOptions::default()).expect("compiles");
    let mut interp = InterpStepper::new(&graph, store, adam(), 0).expect("interp");
    let mut rng = Rng::new(3);
    for step in 0..3 {
        let x = ArrayD::from_shape_fn(IxDyn(&[4, 5, 2]), |_| rng.uniform() as f32 * 2.0 - 1.0);
        let y = ArrayD::from_shape_fn(IxDyn(&[4]), |_| rng.below(2) as i64);
        let inputs = [Value::F32(x), Value::I64(y)];
        let a = jit.step(&inputs, step).expect("jit step").loss;
        let b = interp.step(&inputs, step).expect("interp step").loss;
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{name} step {step}: loss {a} vs {b}");
    }
    assert_eq!(jit.backend(), "jit", "{name}: the JIT compiled every step");
    let (p, q) = (jit.params(), interp.params());
    for ((n, a), b) in p.names.iter().zip(&p.values).zip(&q.values) {
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= 1e-4 * scale, "{name}: parameter {n}: jit {x} vs interp {y}");
        }
    }
}

#[test]
fn simple_rnn_training_steps_match_the_interpreter() {
    same_training("simple_rnn", "SimpleRNN(4, return_sequences: true) |> SimpleRNN(3)");
}

#[test]
fn lstm_training_steps_match_the_interpreter() {
    same_training("lstm", "LSTM(4)");
}

#[test]
fn gru_training_steps_match_the_interpreter() {
    same_training("gru", "GRU(3, return_sequences: true) |> GRU(2)");
}
