//! The compiled training step of the MNIST MLP (batch 32) on the JIT and on the
//! interpreter, inference at batch 1 and 1000, and compiling the step from its graph.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnnc::codegen::{Params, PlanOptions};
use dnnc::ops::Value;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{InterpStepper, JitExecutable, JitStepper, ParamStore, TrainStepper, step_graph};
use ndarray::{ArrayD, IxDyn};
use std::hint::black_box;
use std::time::Duration;

fn program() -> dnnc::sema::Program {
    let text = std::fs::read_to_string("examples/mnist.dnn").expect("example");
    let mut checked = dnnc::sema::check_source("examples/mnist.dnn", &text);
    checked.program.take().expect("checks")
}

fn inputs(graph: &dnnc::ir::Graph, b: usize) -> Vec<Value> {
    let mut rng = Rng::new(1);
    graph
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<usize> =
                i.ty.shape.iter().map(|d| d.as_const().map_or(b, |c| c as usize)).collect();
            let n = shape.iter().product();
            match i.ty.dtype {
                dnnc::shape::DType::I64 => Value::I64(
                    ArrayD::from_shape_vec(IxDyn(&shape), (0..n).map(|_| rng.below(10) as i64).collect())
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

fn bench_step(c: &mut Criterion) {
    let p = program();
    let spec = p.trains.iter().find(|t| t.train_graph.is_some()).unwrap();
    let graph = step_graph(spec).unwrap();
    let store = ParamStore::init(spec.train_graph.as_ref().unwrap(), 0).unwrap();
    let adam = dnnc::runtime::optim::OptimizerSpec::from_call("Adam", &[]).unwrap();
    let x = inputs(&graph, 32);
    let mut group = c.benchmark_group("mnist_train_step_b32");
    group.measurement_time(Duration::from_secs(3)).throughput(Throughput::Elements(32));
    for threads in [1, 2] {
        let options = PlanOptions { threads, ..PlanOptions::default() };
        let mut jit = JitStepper::new(&graph, store.clone(), adam.clone(), 0, options).unwrap();
        let mut step = 0;
        group.bench_function(format!("jit_{threads}_threads"), |b| {
            b.iter(|| {
                step += 1;
                black_box(jit.step(&x, step).unwrap().loss)
            })
        });
    }
    let mut interp = InterpStepper::new(&graph, store.clone(), adam, 0).unwrap();
    group.sample_size(10);
    group.bench_function("interp", |b| b.iter(|| black_box(interp.step(&x, 0).unwrap().loss)));
    group.finish();

    c.bench_function("compile_mnist_step_b32", |b| {
        b.iter(|| {
            let mut jit = JitStepper::new(
                &graph,
                store.clone(),
                dnnc::runtime::optim::OptimizerSpec::from_call("Adam", &[]).unwrap(),
                0,
                PlanOptions::default(),
            )
            .unwrap();
            black_box(jit.step(&x, 0).unwrap().loss)
        })
    });
}

fn bench_inference(c: &mut Criterion) {
    let p = program();
    let spec = p.trains.iter().find(|t| t.train_graph.is_none()).unwrap();
    let graph = &spec.eval_graph;
    let store = ParamStore::init(graph, 0).unwrap();
    let params = store.values_for(graph).unwrap();
    let mut group = c.benchmark_group("mnist_inference");
    group.measurement_time(Duration::from_secs(3));
    for (b, threads) in [(1, 1), (1000, 1), (1000, 2)] {
        let x = inputs(graph, b);
        let mut exe = JitExecutable::new(graph, 0, PlanOptions { threads, ..PlanOptions::default() });
        let program = exe.program(&x).unwrap().unwrap();
        group.throughput(Throughput::Elements(b as u64));
        group.bench_function(format!("batch_{b}_{threads}_threads"), |bench| {
            bench.iter(|| {
                program.run(&x, Params::Values(&params), 0).unwrap();
                black_box(program.output(0).1.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_step, bench_inference);
criterion_main!(benches);
