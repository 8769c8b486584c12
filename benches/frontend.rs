//! Front-end speed: `check_source` (parse, resolve, lower every model and training block)
//! on a realistic 200-line program (`benches/data/big.dnn`) and on the MNIST example. The
//! issue asks for under 20 ms on the big program.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench_check(c: &mut Criterion) {
    let big = include_str!("data/big.dnn");
    let mnist = include_str!("../examples/mnist.dnn");
    // Fail loudly rather than time an error path.
    assert!(dnnc::sema::check_source("big.dnn", big).program.is_some(), "big.dnn does not check");
    c.bench_function("check_source big.dnn (200 lines)", |b| {
        b.iter(|| dnnc::sema::check_source("big.dnn", black_box(big)))
    });
    c.bench_function("check_source mnist.dnn", |b| {
        b.iter(|| dnnc::sema::check_source("mnist.dnn", black_box(mnist)))
    });
    c.bench_function("format big.dnn", |b| b.iter(|| dnnc::syntax::format_tokens(black_box(big))));
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
