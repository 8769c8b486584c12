//! The JIT's bias + ReLU kernel against a plain Rust loop, over a 32×128 activation (one
//! MLP layer's batch, in cache) and over 1M elements (beyond cache), and the time to
//! compile a kernel.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnnc::codegen::{Access, Jit, KernelExpr, KernelSpec};
use dnnc::ir::{BinaryOp, UnaryOp};
use dnnc::runtime::rng::Rng;
use std::hint::black_box;
use std::time::Duration;

fn bias_relu() -> KernelSpec {
    let pre = KernelExpr::binary(BinaryOp::Add, KernelExpr::Input(0), KernelExpr::Input(1));
    KernelSpec::elementwise(
        vec![Access::Full, Access::Row],
        vec![KernelExpr::binary(BinaryOp::Max, pre, KernelExpr::Const(0.0))],
    )
}

fn rust_bias_relu(x: &[f32], bias: &[f32], out: &mut [f32], cols: usize) {
    for (x_row, out_row) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        for ((o, &v), &b) in out_row.iter_mut().zip(x_row).zip(bias) {
            *o = (v + b).max(0.0);
        }
    }
}

fn bench_elementwise(c: &mut Criterion) {
    let mut jit = Jit::new().expect("host supported");
    let kernel = jit.compile(&bias_relu()).expect("compiles");
    let mut rng = Rng::new(2);
    for (name, rows, cols) in [("32x128", 32, 128), ("1M (1024x1024)", 1024, 1024)] {
        let x: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() as f32 - 0.5).collect();
        let bias: Vec<f32> = (0..cols).map(|_| rng.uniform() as f32 - 0.5).collect();
        let mut out = vec![0.0f32; rows * cols];
        let mut group = c.benchmark_group(format!("bias_relu {name}"));
        // Bytes moved: x read, out written (the bias stays in cache).
        group.throughput(Throughput::Bytes((rows * cols * 8) as u64));
        group.bench_function("jit", |b| {
            b.iter(|| {
                kernel.run(&[black_box(&x), &bias], &mut [&mut out], rows, cols).expect("lengths match")
            })
        });
        group
            .bench_function("rust loop", |b| b.iter(|| rust_bias_relu(black_box(&x), &bias, &mut out, cols)));
        group.finish();
    }
    let tanh = KernelSpec::elementwise(
        vec![Access::Full, Access::Row],
        vec![KernelExpr::unary(
            UnaryOp::Tanh,
            KernelExpr::binary(BinaryOp::Add, KernelExpr::Input(0), KernelExpr::Input(1)),
        )],
    );
    let mut group = c.benchmark_group("compile");
    group.bench_function("bias_relu", |b| b.iter(|| jit.compile(&bias_relu()).expect("compiles")));
    group.bench_function("bias_tanh", |b| b.iter(|| jit.compile(&tanh).expect("compiles")));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_elementwise
}
criterion_main!(benches);
