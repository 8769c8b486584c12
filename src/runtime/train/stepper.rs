//! Training steppers: what runs one training step (forward, backward and the optimizer
//! update) and owns the parameters and optimizer state between steps.
//!
//! `fit` sees only [`TrainStepper`], so the interpreter and the JIT run the same loop and
//! can be compared step for step. Invariants every stepper keeps: the parameters it
//! exports are those after the last completed step; a failed step leaves the parameters
//! either untouched or fully updated, never half-updated for one tensor; the step counter
//! of the optimizer (Adam's bias correction) counts completed steps.

use super::TrainError;
use super::evaluate::as_f32;
use super::params::ParamStore;
use crate::ir::{self, Graph, RunError, RunOptions};
use crate::ops::Value;
use crate::runtime::optim::{Optimizer, OptimizerSpec, OptimizerState};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// What one step reports: the batch's mean loss and the model's predictions for it.
#[derive(Debug)]
pub struct StepStats<'a> {
    pub loss: f64,
    pub predictions: ArrayViewD<'a, f32>,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Setup(String),
}

impl StepError {
    /// The error as a training error at `epoch` and `step` of graph `graph`.
    pub fn into_train(self, graph: &str, epoch: usize, step: u64) -> TrainError {
        match self {
            StepError::Run(e) => super::run_error(graph, epoch, step, e),
            StepError::Setup(s) => TrainError::Setup(s),
        }
    }
}

/// Runs training steps of one forward-plus-backward graph and keeps the model's state.
pub trait TrainStepper {
    /// One step on a batch (`inputs` in the graph's input order); `step` counts steps from
    /// 0 and varies random draws.
    fn step(&mut self, inputs: &[Value], step: u64) -> Result<StepStats<'_>, StepError>;
    /// The current parameters and state.
    fn params(&self) -> ParamStore;
    /// Replaces the parameters (same names and shapes as the store it was built with).
    fn set_params(&mut self, store: &ParamStore) -> Result<(), TrainError>;
    /// The optimizer's state, for checkpoints.
    fn optimizer_state(&self) -> OptimizerState;
    /// Replaces the optimizer's state (from a checkpoint).
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), TrainError>;
    /// A short name of the back end that runs the steps: `interp` or `jit`.
    fn backend(&self) -> &'static str;
    /// Sets the learning rate of the following steps (for schedules).
    fn set_lr(&mut self, lr: f32);
}

/// Where the outputs of a step graph are: loss, predictions, one gradient per trainable
/// parameter, and the `state.<param>` outputs of non-trained state.
#[derive(Clone, Debug)]
pub struct StepOutputs {
    pub loss: usize,
    pub output: usize,
    /// Indices into the store of the trainable parameters, in store order.
    pub trainable: Vec<usize>,
    /// For each trainable parameter, the index of its `grad.<name>` output.
    pub grads: Vec<usize>,
    /// `(output index, store index)` of every `state.<param>` output.
    pub states: Vec<(usize, usize)>,
}

impl StepOutputs {
    /// Finds the outputs of `graph` for the parameters of `store`.
    pub fn find(graph: &Graph, store: &ParamStore) -> Result<StepOutputs, TrainError> {
        let position = |name: &str| graph.outputs.iter().position(|(n, _)| n == name);
        let trainable: Vec<usize> = (0..store.names.len()).filter(|&i| store.trainable[i]).collect();
        let grads = trainable
            .iter()
            .map(|&i| {
                position(&format!("grad.{}", store.names[i]))
                    .ok_or_else(|| TrainError::Setup(format!("no gradient for `{}`", store.names[i])))
            })
            .collect::<Result<_, _>>()?;
        let states = graph
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(o, (n, _))| n.strip_prefix("state.").and_then(|p| store.index(p)).map(|p| (o, p)))
            .collect();
        let loss = position("loss").ok_or_else(|| TrainError::Setup("no loss output".into()))?;
        let output = position("output").ok_or_else(|| TrainError::Setup("no model output".into()))?;
        Ok(StepOutputs { loss, output, trainable, grads, states })
    }
}

/// The reference stepper: the interpreter computes the outputs, `runtime::optim` updates.
pub struct InterpStepper {
    graph: Graph,
    seed: u64,
    store: ParamStore,
    optimizer: Optimizer,
    lr: f32,
    outs: StepOutputs,
    /// The last step's predictions, which `StepStats` borrows.
    predictions: ArrayD<f32>,
}

impl InterpStepper {
    /// A stepper for `graph` (from `step_graph`) starting from `store`.
    pub fn new(
        graph: &Graph,
        store: ParamStore,
        spec: OptimizerSpec,
        seed: u64,
    ) -> Result<InterpStepper, TrainError> {
        let outs = StepOutputs::find(graph, &store)?;
        let shapes: Vec<(String, Vec<usize>)> = outs
            .trainable
            .iter()
            .map(|&i| (store.names[i].clone(), store.values[i].shape().to_vec()))
            .collect();
        let lr = spec.lr;
        let optimizer = Optimizer::new(spec, &shapes);
        Ok(InterpStepper {
            graph: graph.clone(),
            seed,
            store,
            optimizer,
            lr,
            outs,
            predictions: ArrayD::zeros(IxDyn(&[0])),
        })
    }
}

impl TrainStepper for InterpStepper {
    fn step(&mut self, inputs: &[Value], step: u64) -> Result<StepStats<'_>, StepError> {
        let params = self.store.values_for(&self.graph).map_err(|e| StepError::Setup(e.to_string()))?;
        let opts = RunOptions { seed: self.seed, step, promote_f64: false, check_finite: true };
        let outs = ir::run(&self.graph, inputs, &params, &opts)?;
        let grads: Vec<ArrayD<f32>> = self.outs.grads.iter().map(|&o| as_f32(&outs[o])).collect();
        let mut current: Vec<ArrayD<f32>> = self
            .outs
            .trainable
            .iter()
            .map(|&p| std::mem::replace(&mut self.store.values[p], ArrayD::zeros(IxDyn(&[0]))))
            .collect();
        let stepped = self.optimizer.step(&mut current, &grads, self.lr);
        for (&p, v) in self.outs.trainable.iter().zip(current) {
            self.store.values[p] = v;
        }
        stepped.map_err(|e| StepError::Setup(e.to_string()))?;
        for &(o, p) in &self.outs.states {
            self.store.values[p] = as_f32(&outs[o]);
        }
        self.predictions = as_f32(&outs[self.outs.output]);
        let loss = outs[self.outs.loss].first_f64().unwrap_or(f64::NAN);
        Ok(StepStats { loss, predictions: self.predictions.view() })
    }

    fn params(&self) -> ParamStore {
        self.store.clone()
    }

    fn set_params(&mut self, store: &ParamStore) -> Result<(), TrainError> {
        check_same_layout(&self.store, store)?;
        self.store = store.clone();
        Ok(())
    }

    fn optimizer_state(&self) -> OptimizerState {
        self.optimizer.export_state()
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), TrainError> {
        self.optimizer.import_state(state).map_err(|e| TrainError::Checkpoint(e.to_string()))
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn backend(&self) -> &'static str {
        "interp"
    }
}

/// Checks that `new` has the names and shapes of `old`.
pub(crate) fn check_same_layout(old: &ParamStore, new: &ParamStore) -> Result<(), TrainError> {
    let same = old.names == new.names
        && old.values.len() == new.values.len()
        && old.values.iter().zip(&new.values).all(|(a, b)| a.shape() == b.shape());
    if same {
        Ok(())
    } else {
        Err(TrainError::Setup("the new parameters differ in names or shapes from the model's".into()))
    }
}
