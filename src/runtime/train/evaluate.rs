//! Evaluation: loss and metrics of a model over a dataset, and predictions.

use super::backend::{Executable, prepare_with};
use super::params::ParamStore;
use super::{RunConfig, TrainError, run_error, sources};
use crate::ir::Graph;
use crate::ops::Value;
use crate::runtime::data::{Batch, BatchArray, Batcher, DataDirs, Dataset};
use crate::runtime::metrics::{LabelKind, Labels, Metric, MetricSpec, MetricValue};
use crate::sema::{self, Literal, RuntimeValue, TrainSpec};
use ndarray::{ArrayD, IxDyn};
use std::io::Write;
use std::path::PathBuf;

/// Loss and metrics over one pass of a dataset.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub loss: Option<f64>,
    pub metrics: Vec<(String, MetricValue)>,
    pub samples: usize,
}

impl EvalReport {
    /// The scalar metrics, for epoch lines.
    pub fn scalars(&self) -> Vec<(String, f64)> {
        self.metrics.iter().filter_map(|(n, v)| v.as_scalar().map(|s| (n.clone(), s))).collect()
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_scalar())
    }
}

/// The metric accumulators a block asks for.
pub(super) fn make_metrics(spec: &TrainSpec, names: &[RuntimeValue]) -> Result<Vec<Metric>, TrainError> {
    let kind = match spec.label_kind {
        sema::LabelKind::Sparse => LabelKind::Sparse,
        sema::LabelKind::Categorical => LabelKind::Categorical,
        sema::LabelKind::Binary => LabelKind::Binary,
        sema::LabelKind::Regression => LabelKind::Regression,
    };
    names
        .iter()
        .map(|m| {
            let s = MetricSpec::from_name(&m.name, kind, spec.from_logits)
                .map_err(|e| TrainError::Setup(e.to_string()))?;
            Ok(Metric::new(&m.name, s))
        })
        .collect()
}

/// Runs `run` on a batch's arrays as graph inputs, lent without a copy: the features, then
/// the labels when the graph takes them (a graph without a loss takes only the features).
/// They go back into `b` afterwards, so that the next `fill` reuses their buffers; `inputs`
/// is the caller's reused list.
pub(super) fn with_inputs<R>(
    b: &mut Batch,
    graph: &Graph,
    inputs: &mut Vec<Value>,
    run: impl FnOnce(&[Value]) -> R,
) -> R {
    let take = |a: &mut BatchArray| match std::mem::replace(a, BatchArray::F32(ArrayD::zeros(IxDyn(&[0])))) {
        BatchArray::F32(x) => Value::F32(x),
        BatchArray::I64(x) => Value::I64(x),
    };
    inputs.clear();
    inputs.push(take(&mut b.x));
    if graph.inputs.len() > 1 {
        inputs.push(take(&mut b.y));
    }
    let result = run(inputs);
    for (k, v) in inputs.drain(..).enumerate() {
        let array = match v {
            Value::F32(a) => BatchArray::F32(a),
            Value::I64(a) => BatchArray::I64(a),
            // Not reachable: only arrays were lent.
            _ => continue,
        };
        if k == 0 {
            b.x = array;
        } else {
            b.y = array;
        }
    }
    result
}

/// A batch's labels, borrowed.
pub(super) fn labels(b: &Batch) -> Labels<'_> {
    match &b.y {
        BatchArray::F32(y) => Labels::F32(y.view()),
        BatchArray::I64(y) => Labels::I64(y.view()),
    }
}

pub(super) fn scalar(v: &Value) -> f64 {
    v.first_f64().unwrap_or(f64::NAN)
}

pub(super) fn as_f32(v: &Value) -> ArrayD<f32> {
    match v {
        Value::F32(a) => a.clone(),
        other => other.to_f64().mapv(|x| x as f32),
    }
}

/// Runs `exe` on one batch after another with the same `params`, checked finite once here
/// for the whole pass, so that the compiled products skip the batches' zeros without
/// checking the weights on every batch (`Executable::run_finite_params`).
fn pass_runner<'a>(
    exe: &'a mut dyn Executable,
    params: &'a [Value],
) -> impl FnMut(&[Value]) -> super::backend::Outputs + 'a {
    let finite = params.iter().all(Value::all_finite);
    move |x| if finite { exe.run_finite_params(x, params, 0) } else { exe.run(x, params, 0) }
}

/// Runs an evaluation graph (outputs `output` and maybe `loss`) over a dataset.
pub(super) fn run_eval(
    exe: &mut dyn Executable,
    graph: &Graph,
    store: &ParamStore,
    data: &Dataset,
    batch: usize,
    metrics: &mut [Metric],
) -> Result<EvalReport, TrainError> {
    let params = store.values_for(graph)?;
    let mut run = pass_runner(exe, &params);
    let out_i = graph.outputs.iter().position(|(n, _)| n == "output");
    let loss_i = graph.outputs.iter().position(|(n, _)| n == "loss");
    let batcher = Batcher::new(data.clone(), batch, 0)?.without_shuffle();
    for m in metrics.iter_mut() {
        m.reset();
    }
    let (mut loss_sum, mut seen) = (0.0, 0usize);
    let (mut batches, mut b, mut inputs) = (batcher.epoch(0), Batch::empty(), Vec::new());
    while batches.fill(&mut b) {
        let n = b.len();
        let outs =
            with_inputs(&mut b, graph, &mut inputs, &mut run).map_err(|e| run_error(&graph.name, 0, 0, e))?;
        if let Some(i) = loss_i {
            loss_sum += scalar(&outs[i]) * n as f64;
        }
        if let Some(i) = out_i {
            let pred = as_f32(&outs[i]);
            for m in metrics.iter_mut() {
                m.update_view(labels(&b), pred.view()).map_err(|e| TrainError::Setup(e.to_string()))?;
            }
        }
        seen += n;
    }
    Ok(EvalReport {
        loss: loss_i.map(|_| loss_sum / seen.max(1) as f64),
        metrics: metrics.iter().map(|m| (m.name().to_string(), m.result())).collect(),
        samples: seen,
    })
}

fn checkpoint_setting(spec: &TrainSpec) -> Option<PathBuf> {
    spec.settings.extra.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("checkpoint", Literal::Str(s)) => Some(PathBuf::from(s)),
        _ => None,
    })
}

/// The parameters for an `evaluate` block: a `--load` file first, then those trained in
/// this run, then the block's `checkpoint` setting.
fn eval_params(
    spec: &TrainSpec,
    trained: Option<&ParamStore>,
    cfg: &RunConfig,
) -> Result<ParamStore, TrainError> {
    let from_file = |path: PathBuf| -> Result<ParamStore, TrainError> {
        let mut store = ParamStore::init(&spec.eval_graph, 0)?;
        store.load(&path)?;
        Ok(store)
    };
    if let Some(path) = cfg.load.clone() {
        return from_file(path);
    }
    if let Some(store) = trained {
        return Ok(store.clone());
    }
    match checkpoint_setting(spec) {
        Some(path) => from_file(path),
        None => Err(TrainError::Setup(format!(
            "model `{}` has no trained parameters: train it in the same file, set `checkpoint = \"file.safetensors\"`, or pass --load",
            spec.model
        ))),
    }
}

/// Runs an `evaluate` block and writes its results.
pub fn evaluate_block(
    spec: &TrainSpec,
    trained: Option<&ParamStore>,
    cfg: &RunConfig,
    out: &mut dyn Write,
) -> Result<EvalReport, TrainError> {
    let store = eval_params(spec, trained, cfg)?;
    let dirs = DataDirs::from_env(cfg.data_dir.as_deref());
    let data = sources::load(&spec.data, &dirs, cfg.limit)?;
    let mut metrics = make_metrics(spec, &spec.metrics)?;
    let mut exe = prepare_with(cfg.backend.unwrap_or_default(), &spec.eval_graph, 0, cfg.plan_options());
    let batch = cfg.batch.unwrap_or(spec.settings.batch);
    let report = run_eval(exe.as_mut(), &spec.eval_graph, &store, &data, batch, &mut metrics)?;
    writeln!(out, "Evaluate {} on {} ({} samples)", spec.model, data.name, report.samples)?;
    let mut line = Vec::new();
    if let Some(l) = report.loss {
        line.push(format!("loss: {l:.4}"));
    }
    for (n, v) in &report.metrics {
        if let Some(s) = v.as_scalar() {
            line.push(format!("{n}: {s:.4}"));
        }
    }
    writeln!(out, "{}", line.join(" - "))?;
    for (n, v) in &report.metrics {
        if let MetricValue::Matrix(cm) = v {
            writeln!(out, "{n} (rows: true class, columns: predicted):\n{cm}")?;
        }
    }
    Ok(report)
}

/// Predictions of a model for the first `count` samples of a block's data: the raw
/// outputs, one row per sample.
pub fn predict(
    spec: &TrainSpec,
    trained: Option<&ParamStore>,
    cfg: &RunConfig,
    count: usize,
) -> Result<ArrayD<f32>, TrainError> {
    let store = eval_params(spec, trained, cfg)?;
    let dirs = DataDirs::from_env(cfg.data_dir.as_deref());
    let data = sources::load(&spec.data, &dirs, Some(count))?;
    let mut exe = prepare_with(cfg.backend.unwrap_or_default(), &spec.eval_graph, 0, cfg.plan_options());
    let graph = &spec.eval_graph;
    let params = store.values_for(graph)?;
    let mut run = pass_runner(exe.as_mut(), &params);
    let out_i = graph
        .outputs
        .iter()
        .position(|(n, _)| n == "output")
        .ok_or_else(|| TrainError::Setup("the graph has no output".into()))?;
    let mut rows = Vec::new();
    let mut batches = Batcher::new(data, count.max(1), 0)?.without_shuffle().epoch(0);
    let (mut b, mut inputs) = (Batch::empty(), Vec::new());
    while batches.fill(&mut b) {
        let outs =
            with_inputs(&mut b, graph, &mut inputs, &mut run).map_err(|e| run_error(&graph.name, 0, 0, e))?;
        rows.push(as_f32(&outs[out_i]));
    }
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    ndarray::concatenate(ndarray::Axis(0), &views).map_err(|e| TrainError::Setup(e.to_string()))
}
