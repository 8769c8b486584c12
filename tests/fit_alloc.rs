//! The training loop around a compiled step allocates nothing per step either: fetching
//! the batch, lending it to the step, counting the metrics and reporting progress reuse
//! what the epoch set up. This binary's counting global allocator compares whole `fit`
//! runs that differ only in their number of steps: they must allocate equally often.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use dnnc::runtime::train::{BackendKind, RunConfig, fit};

/// A training program on random data of `labels` (no validation, so that only training
/// steps differ between runs) reporting `metrics`.
fn source(data: &str, head: &str, loss: &str, metrics: &str) -> String {
    format!(
        "use std::layers::{{Dense}}\n\
         model M(x: f32[B, 8]) -> {head} =\n    x |> Dense(16, act: relu) |> Dense(2)\n\
         train M {{\n    data = random(samples: 2048, features: 8, {data}, seed: 5)\n\
         \x20   loss = {loss}\n    optimizer = Adam(lr: 1e-3)\n    epochs = 2\n    batch = 32\n\
         \x20   metrics = [{metrics}]\n}}\n"
    )
}

/// How often one `fit` of `text` on the first `samples` samples allocates.
fn allocations_of_fit(text: &str, samples: usize) -> usize {
    let mut checked = dnnc::sema::check_source("fit_alloc.dnn", text);
    let rendered = dnnc::diag::render_plain(&checked.diags, &checked.sources);
    assert!(checked.diags.iter().all(|d| !d.is_error()), "{rendered}");
    let program = checked.program.take().expect("a checked program");
    let cfg = RunConfig {
        limit: Some(samples),
        interactive: Some(false),
        backend: Some(BackendKind::Jit),
        ..RunConfig::default()
    };
    let before = counting_alloc::allocations();
    let report = fit(&program.trains[0], &cfg, &mut std::io::sink()).expect("training runs");
    let count = counting_alloc::allocations() - before;
    let last = report.history.records.last().expect("an epoch");
    assert!(last.train_loss.is_finite());
    assert_eq!(report.history.records.len(), 2);
    count
}

/// Ten steps an epoch and forty must allocate equally often (after a first run has
/// started the threads and whatever else a process sets up once). Up to two allocations
/// an epoch may differ: the epoch line's text (`7ms` or `12ms`, `870us/step` or
/// `1ms/step`) varies with timing, and with it whether its string grows once more. One
/// allocation a step would differ by 60.
fn assert_steps_do_not_allocate(text: &str) {
    allocations_of_fit(text, 320);
    let short = allocations_of_fit(text, 320);
    let long = allocations_of_fit(text, 1280);
    assert!(short > 0, "the counter counts");
    let more = long as i64 - short as i64;
    assert!((-4..=4).contains(&more), "60 more steps allocated {more} more times ({short} and {long})");
}

/// One test in this binary: the harness allocates when a test ends, which a counter of
/// every thread would see during another test.
#[test]
fn fit_allocates_nothing_per_step() {
    // Sparse labels and the metrics that count classes (the confusion-matrix ones too).
    let metrics = "accuracy, precision, recall, f1";
    let loss = "sparse_categorical_crossentropy(from_logits: true)";
    assert_steps_do_not_allocate(&source(r#"labels: "classes", classes: 2"#, "f32[B, 2]", loss, metrics));
    // A regression metric.
    let text = source(r#"labels: "regression""#, "f32[B, 1]", "mse()", "mae").replace("Dense(2)", "Dense(1)");
    assert_steps_do_not_allocate(&text);
}
