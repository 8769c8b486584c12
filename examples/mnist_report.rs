//! The dnnc side of the MNIST MLP comparison (`benches/peers/run.sh` runs it next to the
//! peers): trains `examples/mnist.dnn` (784-128-64-10, Adam 1e-3, batch 32, 48k/12k, 5
//! epochs) on the chosen back end and prints one JSON line with seconds per epoch (median
//! of epochs 2-5), test accuracy, the compile time from `.dnn` to native code, peak RSS,
//! batch-1 inference latency and batch-1000 throughput.
//!
//!     cargo run --release --example mnist_report -- --data DIR [--epochs N] [--threads N] [--backend interp]

use dnnc::codegen::{Params, PlanOptions, Program, Training, specialize};
use dnnc::ops::Value;
use dnnc::runtime::data::locate::DataDirs;
use dnnc::runtime::data::mnist::{Split, mnist};
use dnnc::runtime::data::{Batch, BatchArray, Batcher, Dataset};
use dnnc::runtime::train::{self, BackendKind, JitExecutable, ParamStore, RunConfig};
use dnnc::shape::SymEnv;
use ndarray::{ArrayD, IxDyn};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] * 0.5 + v[(v.len() - 1) / 2] * 0.5 }
}

/// Peak resident set size of this process in MiB (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn load(path: &str) -> dnnc::sema::Program {
    let text = std::fs::read_to_string(path).expect("examples/mnist.dnn is readable");
    let mut checked = dnnc::sema::check_source(path, &text);
    checked.program.take().expect("the example checks")
}

/// Seconds from reading the `.dnn` file to a compiled training step for batch 32.
fn compile_seconds(path: &str, options: PlanOptions) -> (f64, f64) {
    let started = Instant::now();
    let program = load(path);
    let spec = program.trains.iter().find(|t| t.train_graph.is_some()).expect("a train block");
    let graph = train::step_graph(spec).expect("step graph");
    let store = ParamStore::init(spec.train_graph.as_ref().expect("graph"), 0).expect("init");
    let opt = dnnc::runtime::optim::OptimizerSpec::from_call("Adam", &[]).expect("Adam");
    let front = started.elapsed().as_secs_f64();
    let schedule = dnnc::fuse::schedule(&graph).expect("schedules");
    let updates = store
        .names
        .iter()
        .map(|n| {
            let p = graph.params.iter().position(|p| p.name == *n).expect("param");
            (p, graph.output(&format!("grad.{n}")).expect("gradient"))
        })
        .collect();
    let keep = vec![graph.output("loss").expect("loss"), graph.output("output").expect("output")];
    let loss = Some(keep[0]);
    let training = Training { spec: opt, updates, states: Vec::new(), keep, loss };
    let mut env = SymEnv::new();
    env.bind(&std::sync::Arc::from("B"), 32).expect("bind");
    let plan = specialize(&schedule, &env, Some(&training), options).expect("specializes");
    let program = Program::new(&graph, plan, 0, false).expect("compiles");
    std::hint::black_box(&program);
    (started.elapsed().as_secs_f64(), front)
}

/// Median seconds of one inference call on the first `b` test images (10 000 calls at b =
/// 1), as the peers' B5 predicts on the test images: MNIST's blank pixels are part of the
/// work a prediction saves (`kernels/gemm_sparse_a.rs`).
fn inference_seconds(
    graph: &dnnc::ir::Graph,
    params: &[Value],
    test_images: &Arc<Dataset>,
    b: usize,
    calls: usize,
    options: PlanOptions,
) -> f64 {
    let batcher =
        Batcher::new(Arc::clone(test_images), b, 0).expect("a batch of test images").without_shuffle();
    let mut batch = Batch::empty();
    assert!(batcher.epoch(0).fill(&mut batch), "{b} test images");
    let BatchArray::F32(images) = &batch.x else { panic!("MNIST images are f32 in a batch") };
    let inputs: Vec<Value> = graph
        .inputs
        .iter()
        .map(|i| match i.ty.dtype {
            dnnc::shape::DType::I64 => Value::I64(ArrayD::zeros(IxDyn(&[b]))),
            _ => Value::F32(images.clone()),
        })
        .collect();
    let mut exe = JitExecutable::new(graph, 0, options);
    let program = exe.program(&inputs).expect("binds").expect("the JIT compiles the model");
    let mut times = Vec::with_capacity(calls);
    let mut sink = 0.0f32;
    for _ in 0..calls {
        let t = Instant::now();
        program.run(&inputs, Params::Values(params), 0).expect("runs");
        if let (dnnc::codegen::OutputRef::F32(out), _) = program.output(0) {
            sink += out[0];
        }
        times.push(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    median(times)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = arg(&args, "--data").map(PathBuf::from);
    let epochs = arg(&args, "--epochs").and_then(|e| e.parse().ok()).unwrap_or(5);
    let threads =
        arg(&args, "--threads").and_then(|e| e.parse().ok()).unwrap_or_else(dnnc::kernels::team::size);
    let backend = if arg(&args, "--backend").as_deref() == Some("interp") {
        BackendKind::Interp
    } else {
        BackendKind::Jit
    };
    let options = PlanOptions { threads, ..PlanOptions::default() };
    let path = "examples/mnist.dnn";

    let (compile_s, front_s) = compile_seconds(path, options);
    let program = load(path);
    let cfg = RunConfig {
        data_dir: data.clone(),
        epochs: Some(epochs),
        interactive: Some(false),
        threads: Some(threads),
        backend: Some(backend),
        ..Default::default()
    };
    let train_spec = program.trains.iter().find(|t| t.train_graph.is_some()).expect("train block");
    let mut log = Vec::new();
    let fitted = train::fit(train_spec, &cfg, &mut log).expect("training runs");
    let eval_spec = program.trains.iter().find(|t| t.train_graph.is_none()).expect("evaluate block");
    let report =
        train::evaluate_block(eval_spec, Some(&fitted.params), &cfg, &mut log).expect("evaluation runs");
    let rss = peak_rss_mib();
    let seconds: Vec<f64> = fitted.history.records.iter().map(|r| r.seconds).collect();
    let steady = if seconds.len() > 1 { seconds[1..].to_vec() } else { seconds.clone() };

    // Prediction computes the model's output only (the loss of the evaluation graph is dead).
    let mut predict = eval_spec.eval_graph.clone();
    predict.outputs.retain(|(n, _)| n == "output");
    let params = fitted.params.values_for(&predict).expect("params");
    let dirs = DataDirs::from_env(data.as_deref());
    let test_images = Arc::new(mnist(&dirs, Split::Test).expect("the MNIST test images"));
    let lat1 = inference_seconds(&predict, &params, &test_images, 1, 10_000, options);
    let lat1000 = inference_seconds(&predict, &params, &test_images, 1000, 20, options);
    println!(
        "RESULT {{\"framework\": \"dnnc ({})\", \"threads\": {threads}, \"epoch_s\": {:?}, \"median_epoch_s_excl_first\": {:.3}, \
         \"test_acc\": {:.4}, \"compile_ms\": {:.2}, \"front_end_ms\": {:.2}, \"peak_rss_mib\": {:.1}, \
         \"b1_median_latency_us\": {:.2}, \"b1000_samples_per_s\": {:.0}}}",
        if backend == BackendKind::Jit { "jit" } else { "interp" },
        seconds.iter().map(|s| (s * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        median(steady),
        report.metric("accuracy").unwrap_or(f64::NAN),
        compile_s * 1e3,
        front_s * 1e3,
        rss,
        lat1 * 1e6,
        1000.0 / lat1000,
    );
}
