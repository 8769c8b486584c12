//! GFLOP/s of `dnnc::kernels::gemm` against the `gemm` crate and ndarray's `dot` (matrixmultiply) on the shapes of
//! the MNIST MLP (784-128-64-10, batch 32), a weight gradient (Aᵀ·B), a batch-1000 layer
//! and 1024², one and two threads for the big ones. Criterion's throughput in elements per
//! second is FLOP per second here (2·m·n·k per product).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnnc::kernels::gemm::{MatMut, MatRef, Parallelism, gemm};
use dnnc::runtime::rng::Rng;
use ndarray::Array2;
use std::hint::black_box;
use std::time::Duration;

struct Case {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// A is stored k×m and used transposed (the weight-gradient pattern Xᵀ·dY).
    a_transposed: bool,
    two_threads: bool,
}

const CASES: &[Case] = &[
    Case { name: "1x784*784x128", m: 1, k: 784, n: 128, a_transposed: false, two_threads: false },
    Case { name: "32x784*784x128", m: 32, k: 784, n: 128, a_transposed: false, two_threads: false },
    Case { name: "32x128*128x64", m: 32, k: 128, n: 64, a_transposed: false, two_threads: false },
    Case { name: "32x64*64x10", m: 32, k: 64, n: 10, a_transposed: false, two_threads: false },
    Case { name: "784x32*32x128 (At*B)", m: 784, k: 32, n: 128, a_transposed: true, two_threads: false },
    Case { name: "1000x784*784x128", m: 1000, k: 784, n: 128, a_transposed: false, two_threads: true },
    Case { name: "1024^3", m: 1024, k: 1024, n: 1024, a_transposed: false, two_threads: true },
];

fn random(rng: &mut Rng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.uniform() as f32 - 0.5)
}

fn bench_gemm(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    for case in CASES {
        let (m, k, n) = (case.m, case.k, case.n);
        let a = if case.a_transposed { random(&mut rng, k, m) } else { random(&mut rng, m, k) };
        let b = random(&mut rng, k, n);
        let mut out = vec![0.0f32; m * n];
        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let a_slice = a.as_slice().expect("standard layout");
        let b_slice = b.as_slice().expect("standard layout");
        let threads: &[usize] = if case.two_threads { &[1, 2] } else { &[1] };
        for &t in threads {
            let par = if t == 1 { Parallelism::Sequential } else { Parallelism::Threads(t) };
            group.bench_function(format!("gemm {t}t"), |bencher| {
                bencher.iter(|| {
                    let a_view = if case.a_transposed {
                        MatRef::row_major(a_slice, k, m).map(MatRef::t)
                    } else {
                        MatRef::row_major(a_slice, m, k)
                    };
                    let result = gemm(
                        1.0,
                        a_view.expect("a fits"),
                        MatRef::row_major(b_slice, k, n).expect("b fits"),
                        0.0,
                        MatMut::row_major(&mut out, m, n).expect("c fits"),
                        par,
                    );
                    black_box(result).expect("shapes agree");
                })
            });
        }
        group.bench_function("gemm crate 1t", |bencher| {
            bencher.iter(|| {
                // Safety: A, B and `out` hold m×k, k×n (or k×m read transposed) and m×n
                // floats, row-major, as the strides below say; `out` is not aliased.
                unsafe {
                    let (a_cs, a_rs) = if case.a_transposed { (m as isize, 1) } else { (1, k as isize) };
                    gemm::gemm(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a_slice.as_ptr(),
                        a_cs,
                        a_rs,
                        b_slice.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                black_box(&out);
            })
        });
        group.bench_function("ndarray dot 1t", |bencher| {
            bencher.iter(|| {
                let product = if case.a_transposed { a.t().dot(&b) } else { a.dot(&b) };
                black_box(product)
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_gemm
}
criterion_main!(benches);
