//! The compiled step's memory starts on cache lines whatever the heap looked like before it
//! was built (`dnnc::kernels::aligned`). A run's outputs lie in its arena at multiples of
//! sixteen elements, so each starts a line exactly when the arena does. Before, the arena was
//! a `Vec<f32>`, and the allocations made ahead of it (a longer command line was enough)
//! decided whether every 64-byte load of its rows straddled two lines.

#[path = "support/examples.rs"]
mod support;

use dnnc::codegen::PlanOptions;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::TrainStepper;

#[test]
fn a_steps_outputs_start_a_cache_line_whatever_was_allocated_before() {
    let mut offsets = std::collections::BTreeSet::new();
    for pad in (0..64).step_by(4) {
        // Heap allocations of every size up to a line ahead of the stepper's, kept alive.
        let ahead: Vec<Vec<u8>> = (0..8).map(|k| vec![k; pad + k as usize]).collect();
        offsets.insert(ahead.last().map_or(0, |v| v.as_ptr() as usize % 64));
        let (mut stepper, graph) =
            support::jit_stepper("examples/mnist.dnn", "Adam", 1, PlanOptions::default());
        let x = support::inputs(&graph, 32, 10, &mut Rng::new(3));
        let stats = stepper.step(&x, 0).expect("step");
        assert!(stats.loss.is_finite());
        let at = stats.predictions.as_ptr() as usize % 64;
        assert_eq!(at, 0, "after {pad}-byte allocations the predictions start {at} bytes past a line");
        drop(ahead);
    }
    // The padding did move the heap: the check above ran at several offsets of it.
    assert!(offsets.len() > 1, "the heap stayed at one offset: {offsets:?}");
}
