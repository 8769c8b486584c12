//! Time of each native window kernel (`dnnc::kernels::conv` and `pool`) on the layer shapes
//! of the MNIST CNN (batch 32: 3×3 convolution 1 → 32 channels on 28×28, 2×2 max pooling of
//! 26×26×32) and of the CIFAR CNN's convolutions (batch 32: 3 → 32 on 32×32, 32 → 64 on
//! 15×15, 64 → 128 on 6×6), one thread and two. Criterion's throughput is input elements.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnnc::ir::{Padding, PoolKind};
use dnnc::kernels::conv::{self, ConvGeometry, ConvOp};
use dnnc::kernels::pool::{self, PoolGeometry};
use dnnc::runtime::rng::Rng;
use std::hint::black_box;
use std::time::Duration;

/// Convolutions: name, input `[B, H, W, C]`, kernel `[KH, KW, C, F]`.
const CONVS: &[(&str, [usize; 4], [usize; 4])] = &[
    ("mnist 28x28x1 -> 32", [32, 28, 28, 1], [3, 3, 1, 32]),
    ("cifar 32x32x3 -> 32", [32, 32, 32, 3], [3, 3, 3, 32]),
    ("cifar 15x15x32 -> 64", [32, 15, 15, 32], [3, 3, 32, 64]),
    ("cifar 6x6x64 -> 128", [32, 6, 6, 64], [3, 3, 64, 128]),
];

/// Max pooling 2×2, stride 2: name, input `[B, H, W, C]`.
const POOLS: &[(&str, [usize; 4])] =
    &[("mnist 26x26x32", [32, 26, 26, 32]), ("cifar 30x30x32", [32, 30, 30, 32])];

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() as f32 - 0.5).collect()
}

fn bench_conv(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    let mut group = c.benchmark_group("conv");
    group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for (name, xs, ks) in CONVS {
        let geo = ConvGeometry::new(xs, ks, [1, 1], Padding::Valid, [1, 1]).expect("fits");
        let (x, k, g) = (random(&mut rng, geo.input_len()), random(&mut rng, geo.kernel_len()), {
            random(&mut rng, geo.output_len())
        });
        let (mut y, mut dx, mut dk) =
            (vec![0.0; geo.output_len()], vec![0.0; geo.input_len()], vec![0.0; geo.kernel_len()]);
        group.throughput(Throughput::Elements(geo.input_len() as u64));
        for threads in [1, 2] {
            let mut scratch = vec![
                0.0;
                geo.scratch_len(ConvOp::BackpropFilter, threads).max(
                    geo.scratch_len(ConvOp::Forward, threads)
                        .max(geo.scratch_len(ConvOp::BackpropInput, threads)),
                )
            ];
            group.bench_function(format!("forward {name}, {threads} threads"), |b| {
                b.iter(|| conv::conv2d(&geo, &x, &k, &mut y, &mut scratch, threads).expect("runs"))
            });
            group.bench_function(format!("filter gradient {name}, {threads} threads"), |b| {
                b.iter(|| {
                    conv::conv2d_backprop_filter(&geo, &x, &g, &mut dk, &mut scratch, threads).expect("runs")
                })
            });
            if xs[3] > 1 {
                group.bench_function(format!("input gradient {name}, {threads} threads"), |b| {
                    b.iter(|| {
                        conv::conv2d_backprop_input(&geo, &g, &k, &mut dx, &mut scratch, threads)
                            .expect("runs")
                    })
                });
            }
        }
        black_box((&y, &dx, &dk));
    }
    group.finish();
}

fn bench_pool(c: &mut Criterion) {
    let mut rng = Rng::new(4);
    let mut group = c.benchmark_group("max_pool");
    group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    for (name, xs) in POOLS {
        let geo = PoolGeometry::new(PoolKind::Max, xs, [2, 2], [2, 2], Padding::Valid).expect("fits");
        let (x, g) = (random(&mut rng, geo.input_len()), random(&mut rng, geo.output_len()));
        let (mut y, mut dx) = (vec![0.0; geo.output_len()], vec![0.0; geo.input_len()]);
        group.throughput(Throughput::Elements(geo.input_len() as u64));
        for threads in [1, 2] {
            group.bench_function(format!("forward {name}, {threads} threads"), |b| {
                b.iter(|| pool::pool2d(&geo, &x, &mut y, threads).expect("runs"))
            });
            group.bench_function(format!("gradient {name}, {threads} threads"), |b| {
                b.iter(|| pool::pool2d_grad(&geo, &x, &g, &mut dx, threads).expect("runs"))
            });
        }
        black_box((&y, &dx));
    }
    group.finish();
}

criterion_group!(benches, bench_conv, bench_pool);
criterion_main!(benches);
