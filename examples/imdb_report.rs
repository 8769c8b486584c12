//! The dnnc side of the IMDB LSTM comparison (`benches/peers/run.sh --bench lstm` runs it
//! next to the peers' B4): trains `examples/imdb_lstm.dnn` (Embedding 5000×128, LSTM 64,
//! Dense 1 sigmoid; Adam 1e-3, batch 32) on the JIT, evaluates it on the test split and
//! prints one JSON line with seconds per epoch (median of the epochs after the first; the
//! first includes compiling), test accuracy after the last epoch, the front end's time and
//! peak RSS.
//!
//!     cargo run --release --example imdb_report -- --data DIR [--epochs N] [--threads N]
//!         [--length N] [--limit N]
//!
//! `--length` cuts or pads the reviews to another length (the model's input follows);
//! `--limit` uses only the first N reviews of each split (memory and quick runs).

use dnnc::runtime::train::{self, RunConfig};
use std::path::PathBuf;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = arg(&args, "--data").map(PathBuf::from);
    let epochs = arg(&args, "--epochs").and_then(|e| e.parse().ok()).unwrap_or(2);
    let threads =
        arg(&args, "--threads").and_then(|e| e.parse().ok()).unwrap_or_else(dnnc::kernels::team::size);
    let length: usize = arg(&args, "--length").and_then(|e| e.parse().ok()).unwrap_or(100);
    let limit = arg(&args, "--limit").and_then(|e| e.parse().ok());
    let path = "examples/imdb_lstm.dnn";
    let text = std::fs::read_to_string(path).expect("examples/imdb_lstm.dnn is readable");
    let text = text
        .replace("i64[B, 100]", &format!("i64[B, {length}]"))
        .replace("length: 100", &format!("length: {length}"));

    let started = Instant::now();
    let mut checked = dnnc::sema::check_source(path, &text);
    let program = checked.program.take().expect("the example checks");
    let front_s = started.elapsed().as_secs_f64();
    let cfg = RunConfig {
        data_dir: data,
        epochs: Some(epochs),
        limit,
        interactive: Some(false),
        threads: Some(threads),
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
    println!(
        "RESULT {{\"framework\": \"dnnc (jit, {threads} thread{})\", \"bench\": \"B4 IMDB LSTM\", \"length\": {length}, \
         \"epoch_s\": {:?}, \"median_epoch_s_excl_first\": {:.3}, \"test_acc\": {:.4}, \"front_end_ms\": {:.2}, \
         \"peak_rss_mib\": {:.1}}}",
        if threads == 1 { "" } else { "s" },
        seconds.iter().map(|s| (s * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        median(steady),
        report.metric("accuracy").unwrap_or(f64::NAN),
        front_s * 1e3,
        rss,
    );
}
