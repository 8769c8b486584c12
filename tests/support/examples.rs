//! Setup shared by the tests that run the examples on both back ends: loading an example,
//! random inputs of a batch size, and a relative comparison of values.

#![allow(dead_code)]

use dnnc::codegen::PlanOptions;
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{
    BackendKind, Executable, InterpStepper, JitExecutable, JitStepper, ParamStore, TrainStepper, prepare,
    step_graph,
};
use dnnc::sema::{Program, TrainSpec};
use ndarray::{ArrayD, IxDyn};

pub fn program(path: &str) -> Program {
    let text = std::fs::read_to_string(path).expect("example exists");
    let mut checked = dnnc::sema::check_source(path, &text);
    assert!(checked.diags.iter().all(|d| !d.is_error()), "{path} has errors");
    checked.program.take().expect("checked program")
}

/// `path` compiled with no diagnostic at all (no warning either); the rendered diagnostics
/// otherwise.
pub fn compile_clean(path: &str) -> Program {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let checked = dnnc::sema::check_source(path, &text);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    assert!(checked.diags.is_empty(), "{path}:\n{rendered}");
    checked.program.unwrap_or_else(|| panic!("{path} does not compile:\n{rendered}"))
}

/// The number of trained elements of the first training graph.
pub fn trained(program: &Program) -> i64 {
    let graph = program.trains[0].train_graph.as_ref().expect("a train block");
    let sizes =
        graph.params.iter().filter(|p| p.trainable).map(|p| p.ty.shape.iter().map(|d| d.as_const().unwrap()));
    sizes.map(|dims| dims.product::<i64>()).sum()
}

pub fn train_spec(p: &Program) -> &TrainSpec {
    p.trains.iter().find(|t| t.train_graph.is_some()).expect("a train block")
}

/// The step graph of `path`'s training block and its parameters drawn with `seed`.
pub fn step_parts(path: &str, seed: u64) -> (dnnc::ir::Graph, ParamStore) {
    let program = program(path);
    let spec = train_spec(&program);
    let graph = step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().expect("train graph"), seed).expect("init");
    (graph, store)
}

/// A JIT stepper for `path`'s training step with `optimizer` (its default settings) and
/// `options`, its parameters drawn with `seed`; and the step graph.
pub fn jit_stepper(
    path: &str,
    optimizer: &str,
    seed: u64,
    options: PlanOptions,
) -> (JitStepper, dnnc::ir::Graph) {
    let (graph, store) = step_parts(path, seed);
    let opt = dnnc::runtime::optim::OptimizerSpec::from_call(optimizer, &[]).expect("optimizer");
    let stepper = JitStepper::new(&graph, store, opt, 0, options).expect("the JIT compiles it");
    (stepper, graph)
}

/// Random inputs for `graph` with batch `b`: floats in [0, 1), integer labels below `classes`.
pub fn inputs(graph: &dnnc::ir::Graph, b: usize, classes: i64, rng: &mut Rng) -> Vec<Value> {
    graph
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> =
                i.ty.shape.iter().map(|d| d.as_const().map_or(b, |c| c as usize)).collect();
            let n = shape.iter().product();
            match i.ty.dtype {
                dnnc::shape::DType::I64 => Value::I64(
                    ArrayD::from_shape_vec(
                        IxDyn(&shape),
                        (0..n).map(|_| rng.below(classes as u64) as i64).collect(),
                    )
                    .unwrap(),
                ),
                _ => Value::F32(
                    ArrayD::from_shape_vec(IxDyn(&shape), (0..n).map(|_| rng.uniform() as f32).collect())
                        .unwrap(),
                ),
            }
        })
        .collect()
}

/// Asserts `a ≈ b` within `rel` of the larger magnitude of `b` (at least 1e-6).
pub fn assert_close(what: &str, a: &Value, b: &Value, rel: f64) {
    assert_close_above(what, a, b, rel, 1e-6);
}

/// Asserts `a ≈ b` within `rel` of the larger of `floor` and the magnitude of `b`.
pub fn assert_close_above(what: &str, a: &Value, b: &Value, rel: f64, floor: f64) {
    let (a, b) = (a.to_f64(), b.to_f64());
    assert_eq!(a.shape(), b.shape(), "{what}: shapes differ");
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        assert!((x - y).abs() <= rel * scale, "{what}[{i}]: jit {x} vs interp {y} (scale {scale})");
    }
}

/// Compares every output of the step graph (loss, predictions, gradients) on two random
/// batches, within a relative `rel` of each output's scale (at least `floor`).
pub fn compare_step_outputs(path: &str, b: usize, classes: i64, rel: f64, floor: f64) {
    let p = program(path);
    let spec = train_spec(&p);
    let graph = step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().unwrap(), 3).unwrap();
    let params = store.values_for(&graph).unwrap();
    let mut rng = Rng::new(11);
    let mut jit = JitExecutable::new(&graph, 0, PlanOptions::default());
    let mut interp = prepare(BackendKind::Interp, &graph, 0);
    for _ in 0..2 {
        let x = inputs(&graph, b, classes, &mut rng);
        assert!(jit.program(&x).unwrap().is_some(), "{path}: the JIT compiles the step graph");
        let got = jit.run(&x, &params, 0).unwrap();
        let want = interp.run(&x, &params, 0).unwrap();
        for ((name, _), (g, w)) in graph.outputs.iter().zip(got.iter().zip(&want)) {
            assert_close_above(&format!("{path} {name}"), g, w, rel, floor);
        }
    }
}

/// Runs `steps` training steps on both steppers from the same parameters and batches and
/// compares loss, predictions and every parameter after each step.
pub fn compare_training_steps(path: &str, b: usize, classes: i64, steps: u64) {
    compare_training_steps_with(path, b, classes, steps, "Adam", &[]);
}

/// `compare_training_steps` with the optimizer `name(args)`.
pub fn compare_training_steps_with(
    path: &str,
    b: usize,
    classes: i64,
    steps: u64,
    name: &str,
    args: &[(&str, dnnc::runtime::optim::ArgValue)],
) {
    let p = program(path);
    let spec = train_spec(&p);
    let graph = step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().unwrap(), 5).unwrap();
    let args: Vec<(String, dnnc::runtime::optim::ArgValue)> =
        args.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
    let opt = dnnc::runtime::optim::OptimizerSpec::from_call(name, &args).unwrap();
    let path = &format!("{path} with {name}{args:?}");
    let mut jit = JitStepper::new(&graph, store.clone(), opt.clone(), 0, PlanOptions::default()).unwrap();
    let mut interp = InterpStepper::new(&graph, store, opt, 0).unwrap();
    let mut rng = Rng::new(21);
    for step in 0..steps {
        // A different batch size on the last step exercises a second specialization.
        let x = inputs(&graph, if step + 1 == steps { b + 3 } else { b }, classes, &mut rng);
        let (jl, jp) = {
            let s = jit.step(&x, step).unwrap();
            (s.loss, s.predictions.to_owned())
        };
        let (il, ip) = {
            let s = interp.step(&x, step).unwrap();
            (s.loss, s.predictions.to_owned())
        };
        assert!((jl - il).abs() <= 1e-4 * il.abs().max(1.0), "{path} step {step}: loss {jl} vs {il}");
        assert_close(&format!("{path} step {step} predictions"), &Value::F32(jp), &Value::F32(ip), 1e-4);
        assert_eq!(jit.backend(), "jit");
        let (jp, ip) = (jit.params(), interp.params());
        for (k, name) in ip.names.iter().enumerate() {
            let what = format!("{path} step {step} {name}");
            assert_close(&what, &Value::F32(jp.values[k].clone()), &Value::F32(ip.values[k].clone()), 1e-4);
        }
    }
    let (js, is) = (jit.optimizer_state(), interp.optimizer_state());
    assert_eq!(js.step, is.step);
    for ((jn, jt), (iname, it)) in js.tensors.iter().zip(&is.tensors) {
        assert_eq!(jn, iname);
        assert_close(jn, &Value::F32(jt.clone()), &Value::F32(it.clone()), 1e-3);
    }
}

/// MNIST-like batches of 32: a blank border four pixels wide, and of the other pixels the
/// fraction `kept` nonzero. At 0.3, 15 % of all pixels are nonzero, as sparse as MNIST
/// (`kernels/gemm_sparse_a.rs` computes the first layer's products); at 0.9, 46 %, too
/// dense for that (the blocked product skips the blank features, `gemm_zero_a.rs`).
pub fn blank_bordered(graph: &dnnc::ir::Graph, rng: &mut Rng, kept: f64) -> Vec<Value> {
    blank_bordered_batch(graph, 32, rng, kept)
}

/// `blank_bordered` with `b` images.
pub fn blank_bordered_batch(graph: &dnnc::ir::Graph, b: usize, rng: &mut Rng, kept: f64) -> Vec<Value> {
    let mut x = inputs(graph, b, 10, rng);
    let Value::F32(images) = &mut x[0] else { panic!("images are f32") };
    for (i, v) in images.iter_mut().enumerate() {
        let (row, col) = ((i % 784) / 28, i % 28);
        if !(4..24).contains(&row) || !(4..24).contains(&col) || rng.uniform() >= kept {
            *v = 0.0;
        }
    }
    x
}
