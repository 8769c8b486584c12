//! The training loop of a `train` block (Keras' `fit`).

use super::backend::{make_stepper, prepare_with};
use super::evaluate::{labels, make_metrics, run_eval, with_inputs};
use super::params::ParamStore;
use super::{RunConfig, TrainError, sources};
use crate::autodiff;
use crate::ir::pool_first::pool_first;
use crate::ir::simplify::simplify;
use crate::ir::{Graph, debug_verify};
use crate::runtime::data::{Batch, Batcher, DataDirs, Dataset, split_validation};
use crate::runtime::history::{EpochRecord, History};
use crate::runtime::metrics::Metric;
use crate::runtime::optim::{ArgValue, OptimizerSpec};
use crate::runtime::progress::Progress;
use crate::runtime::schedule::Schedule;
use crate::sema::{Literal, TrainSpec};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct FitReport {
    pub params: ParamStore,
    pub history: History,
    /// The forward-plus-backward graph that was run.
    pub step_graph: Graph,
}

/// The forward-plus-backward graph of a training block: its outputs are `output`, `loss`
/// and `grad.<param>` for every trainable parameter, simplified (max pooling first taken
/// ahead of the monotone maps before it, `ir::pool_first`).
pub fn step_graph(spec: &TrainSpec) -> Result<Graph, TrainError> {
    let graph = spec
        .train_graph
        .as_ref()
        .ok_or_else(|| TrainError::Setup("an `evaluate` block does not train".into()))?;
    // Before differentiation, so that the backward pass of a moved map runs pooled too.
    let graph = &pool_first(graph);
    let loss =
        graph.output("loss").ok_or_else(|| TrainError::Setup("the training graph has no loss".into()))?;
    let wrt: Vec<usize> =
        graph.params.iter().enumerate().filter(|(_, p)| p.trainable).map(|(i, _)| i).collect();
    let g = autodiff::grad(graph, loss, &wrt)
        .map_err(|e| TrainError::Setup(format!("cannot differentiate the loss: {e}")))?;
    let g = simplify(&g);
    debug_verify(&g, "autodiff + simplify");
    Ok(g)
}

pub(super) fn optimizer_spec(spec: &TrainSpec, cfg: &RunConfig) -> Result<OptimizerSpec, TrainError> {
    let opt =
        spec.optimizer.as_ref().ok_or_else(|| TrainError::Setup("`train` needs an optimizer".into()))?;
    let mut args: Vec<(String, ArgValue)> = opt
        .args
        .iter()
        .filter(|(n, _)| !(cfg.lr.is_some() && n == "lr"))
        .filter_map(|(n, v)| literal_arg(v).map(|a| (n.clone(), a)))
        .collect();
    if let Some(lr) = cfg.lr {
        args.push(("lr".into(), ArgValue::Float(lr)));
    }
    OptimizerSpec::from_call(&opt.name, &args).map_err(|e| TrainError::Setup(e.to_string()))
}

fn literal_arg(v: &Literal) -> Option<ArgValue> {
    Some(match v {
        Literal::Int(i) => ArgValue::Int(*i),
        Literal::Float(f) => ArgValue::Float(*f),
        Literal::Bool(b) => ArgValue::Bool(*b),
        Literal::Str(s) => ArgValue::Str(s.clone()),
        Literal::List(_) => return None,
    })
}

/// The block's learning-rate schedule, its `lr` defaulting to the optimizer's.
fn lr_schedule(spec: &TrainSpec, optimizer_lr: f32) -> Result<Option<Schedule>, TrainError> {
    let Some(s) = &spec.schedule else { return Ok(None) };
    let args: Vec<(String, ArgValue)> =
        s.args.iter().filter_map(|(n, v)| literal_arg(v).map(|a| (n.clone(), a))).collect();
    Schedule::from_call(&s.name, &args, optimizer_lr).map(Some).map_err(|e| TrainError::Setup(e.to_string()))
}

fn checkpoint_path(spec: &TrainSpec, cfg: &RunConfig) -> Option<PathBuf> {
    cfg.save.clone().or_else(|| {
        spec.settings.extra.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("checkpoint", Literal::Str(s)) => Some(PathBuf::from(s)),
            _ => None,
        })
    })
}

/// The training data and the validation data, if any.
fn datasets(spec: &TrainSpec, cfg: &RunConfig) -> Result<(Dataset, Option<Dataset>), TrainError> {
    let dirs = DataDirs::from_env(cfg.data_dir.as_deref());
    let data = sources::load(&spec.data, &dirs, cfg.limit)?;
    if let Some(v) = &spec.validation_data {
        return Ok((data, Some(sources::load(v, &dirs, cfg.limit)?)));
    }
    if spec.settings.validation > 0.0 {
        let (t, v) = split_validation(&data, spec.settings.validation)?;
        return Ok((t, Some(v)));
    }
    Ok((data, None))
}

/// The metrics that have a single value, named.
fn scalar_results(metrics: &[Metric]) -> Vec<(String, f64)> {
    metrics.iter().filter_map(|m| m.result().as_scalar().map(|s| (m.name().to_string(), s))).collect()
}

/// Trains the model of a `train` block, writing Keras-style progress to `out`.
pub fn fit(spec: &TrainSpec, cfg: &RunConfig, out: &mut dyn Write) -> Result<FitReport, TrainError> {
    let seed = cfg.seed.unwrap_or(spec.settings.seed);
    let epochs = cfg.epochs.unwrap_or(spec.settings.epochs);
    let batch = cfg.batch.unwrap_or(spec.settings.batch);
    let backend = cfg.backend.unwrap_or_default();
    let train_graph =
        spec.train_graph.as_ref().ok_or_else(|| TrainError::Setup("not a `train` block".into()))?;

    let (train, val) = datasets(spec, cfg)?;
    let graph = step_graph(spec)?;
    let mut eval_exe = prepare_with(backend, &spec.eval_graph, seed, cfg.plan_options());
    let store = ParamStore::init(train_graph, seed)?;
    let trainable_count = store.trainable_count();
    let ospec = optimizer_spec(spec, cfg)?;
    let opt_name = ospec.name.clone();
    let schedule = lr_schedule(spec, ospec.lr)?;
    let mut stepper = make_stepper(backend, &graph, store, ospec, seed, cfg.plan_options())?;

    let batcher = Batcher::new(train.clone(), batch, seed)?;
    let batcher = if spec.settings.shuffle { batcher } else { batcher.without_shuffle() };
    let steps = batcher.batches_per_epoch();
    let interactive = cfg.interactive.unwrap_or_else(|| std::io::stdout().is_terminal());
    let mut metrics = make_metrics(spec, &spec.metrics)?;
    let mut val_metrics = make_metrics(spec, &spec.metrics)?;
    let mut history = History::default();
    let ckpt = checkpoint_path(spec, cfg);
    writeln!(
        out,
        "Training {} on {} ({} samples{}), {} parameters, {} steps per epoch",
        spec.model,
        train.name,
        train.x.len(),
        val.as_ref().map(|v| format!(", validating on {}", v.x.len())).unwrap_or_default(),
        trainable_count,
        steps
    )?;

    let mut step: u64 = 0;
    let mut progress = Progress::new(&mut *out, interactive, epochs, steps);
    // One batch refilled step after step, its arrays lent to the step: no copy, no allocation.
    let (mut b, mut inputs) = (Batch::empty(), Vec::new());
    for epoch in 0..epochs {
        progress.begin_epoch(epoch + 1)?;
        let started = Instant::now();
        for m in metrics.iter_mut() {
            m.reset();
        }
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let mut batches = batcher.epoch(epoch as u64);
        let mut i = 0;
        while batches.fill(&mut b) {
            let n = b.len();
            if let Some(s) = &schedule {
                stepper.set_lr(s.lr_at(step));
            }
            batches.prefetch_next();
            let stats = with_inputs(&mut b, &graph, &mut inputs, |x| stepper.step(x, step))
                .map_err(|e| e.into_train(&graph.name, epoch + 1, step))?;
            let loss = stats.loss;
            loss_sum += loss * n as f64;
            seen += n;
            for m in metrics.iter_mut() {
                m.update_view(labels(&b), stats.predictions.view())
                    .map_err(|e| TrainError::Setup(e.to_string()))?;
            }
            step += 1;
            i += 1;
            progress.step(i, loss_sum / seen as f64, || scalar_results(&metrics));
        }
        let train_loss = loss_sum / seen.max(1) as f64;
        let train_metrics = scalar_results(&metrics);
        let store = stepper.params();
        let val_report = match &val {
            Some(v) => {
                Some(run_eval(eval_exe.as_mut(), &spec.eval_graph, &store, v, batch, &mut val_metrics)?)
            }
            None => None,
        };
        let val_scalars = val_report.as_ref().map(|r| r.scalars());
        let val_line =
            val_report.as_ref().map(|r| (r.loss.unwrap_or(f64::NAN), val_scalars.as_deref().unwrap_or(&[])));
        progress.end_epoch(train_loss, &train_metrics, val_line)?;
        history.push(EpochRecord {
            epoch: epoch + 1,
            train_loss,
            train_metrics,
            val_loss: val_report.as_ref().and_then(|r| r.loss),
            val_metrics: val_scalars.clone().unwrap_or_default(),
            seconds: started.elapsed().as_secs_f64(),
        });
        if let Some(path) = &ckpt {
            let state = stepper.optimizer_state();
            store.save(path, &spec.model, Some((&opt_name, &state)), epoch + 1, step)?;
        }
    }
    drop(progress);
    if let Some(path) = &cfg.history {
        history.save(path).map_err(|e| TrainError::Setup(e.to_string()))?;
    }
    Ok(FitReport { params: stepper.params(), history, step_graph: graph })
}
