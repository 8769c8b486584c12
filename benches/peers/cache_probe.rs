//! How much of the host this process gets right now, in two figures:
//!
//! - the L3: the median time of one dependent load, each to a random line of a 2 MiB ring
//!   (larger than a core's 1 MiB L2, far smaller than the 32 MiB L3). Quiet, that is an L3
//!   hit, 12-25 ns on the Zen 5 host these figures come from; when other tenants' traffic
//!   has evicted the ring it is a memory access, 60-150 ns;
//! - the core: the median time of a pass of f32 multiply-adds over 4 KiB held in L1, which
//!   only the core's own speed (its clock, a sibling thread on the host) changes.
//!
//! `run.sh` prints both before each framework: the MNIST MLP's epoch times follow the first
//! (its parameters and optimizer state fill most of each core's L2) and every framework's
//! follow the second. Built by `run.sh` with `rustc -O -C target-cpu=native`; no
//! dependencies. Prints one line:
//! the two medians in ns.

use std::time::Instant;

const RING_BYTES: usize = 2 << 20;
const LINE_WORDS: usize = 64 / std::mem::size_of::<usize>();
const LOADS: usize = 200_000;
const SAMPLES: usize = 9;

fn main() {
    let lines = RING_BYTES / 64;
    // A random cyclic order of the lines (xorshift-driven Fisher-Yates), so that the
    // hardware prefetchers cannot guess the next address.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..lines).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut ring = vec![0usize; lines * LINE_WORDS];
    for k in 0..lines {
        ring[order[k] * LINE_WORDS] = order[(k + 1) % lines] * LINE_WORDS;
    }
    let mut times: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            let mut at = 0;
            for _ in 0..LOADS {
                at = ring[at];
            }
            std::hint::black_box(at);
            started.elapsed().as_nanos() as f64 / LOADS as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.1} {:.1}", times[SAMPLES / 2], core_pass_ns());
}

/// The median time of one pass of `x = x·m + c` over 1024 f32s held in L1: independent
/// elements, so the compiler vectorizes it as widely as the CPU allows (`run.sh` builds
/// with `-C target-cpu=native`), and the time follows the vector units' throughput, which a
/// busy sibling thread on the host or a lower clock takes from this core.
fn core_pass_ns() -> f64 {
    const PASSES: usize = 4000;
    let mut values: Vec<f32> = (0..1024).map(|i| i as f32 * 1e-3).collect();
    let (m, c) = std::hint::black_box((0.999_f32, 1e-4_f32));
    let mut times: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PASSES {
                for v in values.iter_mut() {
                    *v = *v * m + c;
                }
                std::hint::black_box(&mut values);
            }
            started.elapsed().as_nanos() as f64 / PASSES as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[SAMPLES / 2]
}
