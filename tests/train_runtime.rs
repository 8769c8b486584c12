//! The training runtime end to end: examples learn, seeds reproduce, divergence is named,
//! checkpoints round-trip, and broken data files give clear errors.

use dnnc::runtime::data::idx::encode_idx_u8;
use dnnc::runtime::train::{BackendKind, RunConfig, TrainError, evaluate_block, run_program};
use dnnc::sema::{Program, check_source};
use std::path::{Path, PathBuf};

fn compile(name: &str, src: &str) -> Program {
    let checked = check_source(name, src);
    let text = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    checked.program.unwrap_or_else(|| panic!("{name} does not compile:\n{text}"))
}

fn example(name: &str) -> Program {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    compile(&path, &std::fs::read_to_string(&path).expect("example exists"))
}

fn quiet() -> RunConfig {
    RunConfig { interactive: Some(false), ..RunConfig::default() }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dnnc-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The shared datasets, if this machine has them.
fn data_dir() -> Option<PathBuf> {
    let candidates =
        [std::env::var("DNNC_DATA").ok().map(PathBuf::from), Some(PathBuf::from("../shared/data"))];
    candidates.into_iter().flatten().find(|d| d.join("mnist/train-images-idx3-ubyte.gz").exists())
}

#[test]
fn binary_example_learns() {
    let program = example("binary.dnn");
    let mut out = Vec::new();
    let report = run_program(&program, &quiet(), &mut out).expect("trains");
    let history = &report.fits[0].1.history.records;
    assert_eq!(history.len(), 20);
    let first = history[0].train_loss;
    let last = history.last().unwrap().train_loss;
    assert!(last < first / 2.0, "loss fell from {first} to only {last}");
    let val_acc = history.last().unwrap().val_metrics.iter().find(|(n, _)| n == "accuracy").unwrap().1;
    assert!(val_acc >= 0.9, "validation accuracy {val_acc}");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Epoch 20/20") && text.contains("val_accuracy"), "Keras-style log:\n{text}");
}

#[test]
fn same_seed_same_weights_and_other_seed_differs() {
    let program = example("binary.dnn");
    let cfg = RunConfig { epochs: Some(2), ..quiet() };
    let a = run_program(&program, &cfg, &mut Vec::new()).unwrap();
    let b = run_program(&program, &cfg, &mut Vec::new()).unwrap();
    let c = run_program(&program, &RunConfig { seed: Some(99), ..cfg.clone() }, &mut Vec::new()).unwrap();
    let (pa, pb, pc) = (&a.fits[0].1.params, &b.fits[0].1.params, &c.fits[0].1.params);
    assert_eq!(pa.names, pb.names);
    for (x, y) in pa.values.iter().zip(&pb.values) {
        assert_eq!(x, y, "same seed, same weights");
    }
    assert!(pa.values.iter().zip(&pc.values).any(|(x, y)| x != y), "another seed changes the weights");
}

#[test]
fn mnist_subset_learns_or_names_the_missing_files() {
    let program = example("mnist.dnn");
    match data_dir() {
        Some(dir) => {
            let cfg = RunConfig { data_dir: Some(dir), limit: Some(3000), epochs: Some(2), ..quiet() };
            let mut out = Vec::new();
            let report = run_program(&program, &cfg, &mut out).expect("trains");
            let h = &report.fits[0].1.history.records;
            assert!(
                h[1].train_loss < h[0].train_loss,
                "loss falls: {} then {}",
                h[0].train_loss,
                h[1].train_loss
            );
            let acc = report.evaluations[0].1.metric("accuracy").expect("accuracy");
            assert!(acc > 0.8, "test accuracy after 2 epochs on 2400 images: {acc}");
        }
        None => {
            // SAFETY of the test: no other test in this binary reads these variables.
            let dir = temp_dir("nomnist");
            let cfg = RunConfig { data_dir: Some(dir), ..quiet() };
            unsafe { std::env::set_var("DNNC_OFFLINE", "1") };
            let err = run_program(&program, &cfg, &mut Vec::new()).unwrap_err().to_string();
            assert!(err.contains("train-images-idx3-ubyte.gz"), "the error names the file: {err}");
        }
    }
}

/// A model whose loss is `loss_expr` (in `y_pred`), trained by SGD on random data.
fn diverging(loss_expr: &str) -> (String, Program) {
    let src = format!(
        "use std::layers::{{Dense}}
fn broken(y_true: f32[...], y_pred: f32[...]) -> f32 = {loss_expr}
model M(x: f32[B, 20]) -> f32[B, 1] = x |> Dense(1)
train M {{
    data = random(samples: 64, features: 20)
    loss = broken
    optimizer = SGD()
}}"
    );
    let program = compile("broken.dnn", &src);
    (src, program)
}

#[test]
fn divergence_names_the_step_and_the_op_on_both_back_ends() {
    // An infinite loss: `log(0)`.
    let (src, program) = diverging("mean(log(y_pred - y_pred))");
    for backend in [BackendKind::Jit, BackendKind::Interp] {
        let cfg = RunConfig { backend: Some(backend), ..quiet() };
        match run_program(&program, &cfg, &mut Vec::new()).unwrap_err() {
            TrainError::NonFinite { op, span, step, epoch } => {
                assert_eq!(op, "log", "{backend:?}");
                assert_eq!((epoch, step), (1, 0), "{backend:?}");
                assert_eq!(&src[span.range()], "log(y_pred - y_pred)", "{backend:?}");
            }
            other => panic!("{backend:?}: expected a divergence error, got {other}"),
        }
    }
}

#[test]
fn an_infinite_gradient_under_a_finite_loss_stops_the_jit_before_the_update() {
    use dnnc::runtime::train::{JitStepper, ParamStore, StepError, TrainStepper, step_graph};
    // sqrt(0) = 0 is finite, its derivative is not.
    let (_, program) = diverging("mean(sqrt(y_pred - y_pred))");
    let spec = program.trains.iter().find(|t| t.train_graph.is_some()).expect("a train block");
    let graph = step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().expect("train graph"), 3).expect("init");
    let sgd = dnnc::runtime::optim::OptimizerSpec::from_call("SGD", &[]).expect("SGD");
    let options = dnnc::codegen::PlanOptions::default();
    let mut jit = JitStepper::new(&graph, store.clone(), sgd, 0, options).expect("compiles");
    // A batch of 8: features 0.5, labels 0 (whatever their dtype).
    let inputs: Vec<dnnc::ops::Value> = graph
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> =
                i.ty.shape.iter().map(|d| d.as_const().map_or(8, |c| c as usize)).collect();
            let dims = ndarray::IxDyn(&shape);
            match i.ty.dtype {
                dnnc::shape::DType::I64 => dnnc::ops::Value::I64(ndarray::ArrayD::zeros(dims)),
                _ => dnnc::ops::Value::F32(ndarray::ArrayD::from_elem(dims, 0.5)),
            }
        })
        .collect();
    match jit.step(&inputs, 0).map(|_| ()) {
        Err(StepError::Run(dnnc::ir::RunError::NonFinite { op, .. })) => {
            assert_ne!(op, "sqrt", "the forward sqrt is finite; a backward op made the infinity")
        }
        other => panic!("expected a non-finite gradient to stop the step, got {:?}", other.err()),
    }
    assert_eq!(jit.backend(), "jit");
    for (before, after) in store.values.iter().zip(&jit.params().values) {
        assert_eq!(before, after, "no update ran");
    }
}

#[test]
fn checkpoint_round_trips_into_evaluation() {
    let dir = temp_dir("ckpt");
    let path = dir.join("binary.safetensors");
    let src = std::fs::read_to_string(format!("{}/examples/binary.dnn", env!("CARGO_MANIFEST_DIR"))).unwrap();
    // An evaluate block on held-out synthetic data, run in the same program and later from the file.
    let with_eval = format!(
        "{src}\nevaluate Classifier {{ data = random(samples: 200, features: 20, seed: 7, split: \"test\") metrics = [accuracy, f1] }}\n"
    );
    let program = compile("binary_eval.dnn", &with_eval);
    let cfg = RunConfig { epochs: Some(5), save: Some(path.clone()), ..quiet() };
    let report = run_program(&program, &cfg, &mut Vec::new()).unwrap();
    let in_run = report.evaluations[0].1.clone();
    assert!(path.exists(), "the checkpoint is written");
    let eval_spec = program.trains.iter().find(|t| t.kind == dnnc::syntax::ast::TrainKind::Evaluate).unwrap();
    let from_file =
        evaluate_block(eval_spec, None, &RunConfig { load: Some(path.clone()), ..quiet() }, &mut Vec::new())
            .unwrap();
    assert_eq!(in_run.metric("accuracy"), from_file.metric("accuracy"));
    assert_eq!(in_run.loss, from_file.loss);
    // A corrupt checkpoint is refused with its name, and does not panic.
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let err =
        evaluate_block(eval_spec, None, &RunConfig { load: Some(path.clone()), ..quiet() }, &mut Vec::new())
            .unwrap_err();
    assert!(err.to_string().contains("binary.safetensors"), "{err}");
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn truncated_and_wrong_magic_mnist_files_get_clear_errors() {
    let program = compile(
        "eval_only.dnn",
        "use std::layers::{Dense, Flatten}
model M(x: f32[B, 28, 28]) -> f32[B, 10] = x |> Flatten() |> Dense(10)
evaluate M { data = mnist(split: \"test\") checkpoint = \"unused.safetensors\" }",
    );
    let spec = &program.trains[0];
    let dir = temp_dir("badmnist");
    let images = encode_idx_u8(&[3, 28, 28], &vec![7u8; 3 * 28 * 28], true);
    let labels = encode_idx_u8(&[3], &[1, 2, 3], true);
    // Truncated images: the header promises three images, the file holds less.
    let raw = encode_idx_u8(&[3, 28, 28], &vec![7u8; 3 * 28 * 28], false);
    write(&dir.join("mnist/t10k-images-idx3-ubyte.gz"), &raw[..1000]);
    write(&dir.join("mnist/t10k-labels-idx1-ubyte.gz"), &labels);
    let cfg = RunConfig { data_dir: Some(dir.clone()), ..quiet() };
    let store = dnnc::runtime::train::ParamStore::init(&spec.eval_graph, 0).unwrap();
    let err = evaluate_block(spec, Some(&store), &cfg, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz") && err.contains("truncated"), "{err}");
    // Wrong magic number.
    let mut raw_bad = raw.clone();
    raw_bad[0] = 0x12;
    raw_bad[1] = 0x34;
    write(&dir.join("mnist/t10k-images-idx3-ubyte.gz"), &raw_bad);
    let err = evaluate_block(spec, Some(&store), &cfg, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz") && err.contains("magic"), "{err}");
    // Intact files load, so the errors above came from the damage alone.
    write(&dir.join("mnist/t10k-images-idx3-ubyte.gz"), &images);
    let ok = evaluate_block(spec, Some(&store), &cfg, &mut Vec::new()).expect("intact files load");
    assert_eq!(ok.samples, 3);
}

#[test]
fn a_schedule_sets_the_learning_rate_of_every_step() {
    let src = std::fs::read_to_string(format!("{}/examples/binary.dnn", env!("CARGO_MANIFEST_DIR"))).unwrap();
    // A schedule at rate zero leaves the weights where initialization put them.
    let frozen = compile("frozen.dnn", &src.replace("metrics", "schedule = constant(lr: 0.0)\n    metrics"));
    let spec = &frozen.trains[0];
    let initial = dnnc::runtime::train::ParamStore::init(spec.train_graph.as_ref().unwrap(), 0).unwrap();
    let report = run_program(&frozen, &RunConfig { epochs: Some(2), ..quiet() }, &mut Vec::new()).unwrap();
    assert_eq!(report.fits[0].1.params.values, initial.values);
    // A decaying schedule trains, and differently from the constant rate.
    let decayed = compile(
        "decay.dnn",
        &src.replace(
            "metrics",
            "schedule = exponential_decay(decay_steps: 10, decay_rate: 0.5)\n    metrics",
        ),
    );
    let plain =
        run_program(&example("binary.dnn"), &RunConfig { epochs: Some(2), ..quiet() }, &mut Vec::new())
            .unwrap();
    let with_decay =
        run_program(&decayed, &RunConfig { epochs: Some(2), ..quiet() }, &mut Vec::new()).unwrap();
    assert_ne!(with_decay.fits[0].1.params.values, initial.values);
    assert_ne!(with_decay.fits[0].1.params.values, plain.fits[0].1.params.values);
}
