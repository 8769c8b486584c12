//! The training loop of a `train` block (Keras' `fit`).

use super::backend::{BackendKind, prepare};
use super::evaluate::{as_f32, batch_values, labels, make_metrics, run_eval, scalar};
use super::params::ParamStore;
use super::{RunConfig, TrainError, run_error, sources};
use crate::autodiff;
use crate::ir::simplify::simplify;
use crate::ir::{Graph, debug_verify};
use crate::runtime::data::{Batcher, DataDirs, Dataset, split_validation};
use crate::runtime::history::{EpochRecord, History};
use crate::runtime::optim::{ArgValue, Optimizer, OptimizerSpec};
use crate::runtime::progress::Progress;
use crate::sema::{Literal, TrainSpec};
use ndarray::{ArrayD, IxDyn};
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
/// and `grad.<param>` for every trainable parameter, simplified.
pub fn step_graph(spec: &TrainSpec) -> Result<Graph, TrainError> {
    let graph = spec
        .train_graph
        .as_ref()
        .ok_or_else(|| TrainError::Setup("an `evaluate` block does not train".into()))?;
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

fn optimizer_spec(spec: &TrainSpec, cfg: &RunConfig) -> Result<OptimizerSpec, TrainError> {
    let opt =
        spec.optimizer.as_ref().ok_or_else(|| TrainError::Setup("`train` needs an optimizer".into()))?;
    let mut args: Vec<(String, ArgValue)> = opt
        .args
        .iter()
        .filter(|(n, _)| !(cfg.lr.is_some() && n == "lr"))
        .filter_map(|(n, v)| {
            let a = match v {
                Literal::Int(i) => ArgValue::Int(*i),
                Literal::Float(f) => ArgValue::Float(*f),
                Literal::Bool(b) => ArgValue::Bool(*b),
                Literal::Str(s) => ArgValue::Str(s.clone()),
                Literal::List(_) => return None,
            };
            Some((n.clone(), a))
        })
        .collect();
    if let Some(lr) = cfg.lr {
        args.push(("lr".into(), ArgValue::Float(lr)));
    }
    OptimizerSpec::from_call(&opt.name, &args).map_err(|e| TrainError::Setup(e.to_string()))
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

/// Trains the model of a `train` block, writing Keras-style progress to `out`.
pub fn fit(spec: &TrainSpec, cfg: &RunConfig, out: &mut dyn Write) -> Result<FitReport, TrainError> {
    let seed = cfg.seed.unwrap_or(spec.settings.seed);
    let epochs = cfg.epochs.unwrap_or(spec.settings.epochs);
    let batch = cfg.batch.unwrap_or(spec.settings.batch);
    let backend = cfg.backend.unwrap_or(BackendKind::Interp);
    let train_graph =
        spec.train_graph.as_ref().ok_or_else(|| TrainError::Setup("not a `train` block".into()))?;

    let (train, val) = datasets(spec, cfg)?;
    let graph = step_graph(spec)?;
    let mut exe = prepare(backend, &graph, seed);
    let mut eval_exe = prepare(backend, &spec.eval_graph, seed);
    let mut store = ParamStore::init(train_graph, seed)?;

    let trainable: Vec<usize> = (0..store.names.len()).filter(|&i| store.trainable[i]).collect();
    let grad_outputs: Vec<usize> = trainable
        .iter()
        .map(|&i| {
            let name = format!("grad.{}", store.names[i]);
            graph
                .outputs
                .iter()
                .position(|(n, _)| *n == name)
                .ok_or_else(|| TrainError::Setup(format!("no gradient for `{}`", store.names[i])))
        })
        .collect::<Result<_, _>>()?;
    // Non-trained state (batch-norm statistics) comes back as `state.<param>` outputs.
    let state_outputs: Vec<(usize, usize)> = graph
        .outputs
        .iter()
        .enumerate()
        .filter_map(|(o, (n, _))| n.strip_prefix("state.").and_then(|p| store.index(p)).map(|p| (o, p)))
        .collect();
    let loss_i = graph
        .outputs
        .iter()
        .position(|(n, _)| n == "loss")
        .ok_or_else(|| TrainError::Setup("no loss output".into()))?;
    let out_i = graph
        .outputs
        .iter()
        .position(|(n, _)| n == "output")
        .ok_or_else(|| TrainError::Setup("no model output".into()))?;

    let ospec = optimizer_spec(spec, cfg)?;
    let opt_name = ospec.name.clone();
    let lr = ospec.lr;
    let shapes: Vec<(String, Vec<usize>)> =
        trainable.iter().map(|&i| (store.names[i].clone(), store.values[i].shape().to_vec())).collect();
    let mut optimizer = Optimizer::new(ospec, &shapes);

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
        store.trainable_count(),
        steps
    )?;

    let mut step: u64 = 0;
    let mut progress = Progress::new(&mut *out, interactive, epochs, steps);
    for epoch in 0..epochs {
        progress.begin_epoch(epoch + 1)?;
        let started = Instant::now();
        for m in metrics.iter_mut() {
            m.reset();
        }
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        let mut prefetch = batcher.epoch_prefetch(epoch as u64);
        let mut i = 0;
        while let Some(b) = prefetch.next() {
            let params = store.values_for(&graph)?;
            let outs = exe
                .run(&batch_values(&b), &params, step)
                .map_err(|e| run_error(&graph.name, epoch + 1, step, e))?;
            let grads: Vec<ArrayD<f32>> = grad_outputs.iter().map(|&o| as_f32(&outs[o])).collect();
            let mut current: Vec<ArrayD<f32>> = trainable
                .iter()
                .map(|&p| std::mem::replace(&mut store.values[p], ArrayD::zeros(IxDyn(&[0]))))
                .collect();
            let stepped = optimizer.step(&mut current, &grads, lr);
            for (&p, v) in trainable.iter().zip(current) {
                store.values[p] = v;
            }
            stepped.map_err(|e| TrainError::Setup(e.to_string()))?;
            for &(o, p) in &state_outputs {
                store.values[p] = as_f32(&outs[o]);
            }
            let n = b.len();
            let loss = scalar(&outs[loss_i]);
            loss_sum += loss * n as f64;
            seen += n;
            let pred = as_f32(&outs[out_i]);
            let y = labels(&b);
            for m in metrics.iter_mut() {
                m.update(&y, &pred).map_err(|e| TrainError::Setup(e.to_string()))?;
            }
            step += 1;
            i += 1;
            let shown: Vec<(String, f64)> = metrics
                .iter()
                .filter_map(|m| m.result().as_scalar().map(|s| (m.name().to_string(), s)))
                .collect();
            progress.step(i, loss_sum / seen as f64, &shown);
            prefetch.recycle(b);
        }
        let train_loss = loss_sum / seen.max(1) as f64;
        let train_metrics: Vec<(String, f64)> = metrics
            .iter()
            .filter_map(|m| m.result().as_scalar().map(|s| (m.name().to_string(), s)))
            .collect();
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
            let state = optimizer.export_state();
            store.save(path, &spec.model, Some((&opt_name, &state)), epoch + 1, step)?;
        }
    }
    drop(progress);
    if let Some(path) = &cfg.history {
        history.save(path).map_err(|e| TrainError::Setup(e.to_string()))?;
    }
    Ok(FitReport { params: store, history, step_graph: graph })
}
