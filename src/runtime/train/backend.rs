//! Back ends: what runs a graph. The reference interpreter is one; the JIT is another.
//! Training and evaluation see only [`Executable`], so both back ends run the same loop
//! and can be compared step for step.

use super::TrainError;
use super::jit::{JitExecutable, JitStepper};
use super::params::ParamStore;
use super::stepper::{InterpStepper, TrainStepper};
use crate::codegen::PlanOptions;
use crate::ir::{self, Graph, RunError, RunOptions};
use crate::ops::Value;
use crate::runtime::optim::OptimizerSpec;

/// A run's outputs in the graph's order, or why it failed.
pub type Outputs = Result<Vec<Value>, RunError>;

/// A graph prepared to run many times.
pub trait Executable {
    /// Runs on `inputs` and `params` (in the graph's declaration order) and returns the
    /// outputs in the graph's order. `step` varies random draws from step to step.
    fn run(&mut self, inputs: &[Value], params: &[Value], step: u64) -> Outputs;

    /// `run` with parameters that the caller has checked are all finite (a validation pass
    /// over parameters the training guard kept finite): the back end may then skip a
    /// batch's zeros in its products with them without checking them on every batch.
    fn run_finite_params(&mut self, inputs: &[Value], params: &[Value], step: u64) -> Outputs {
        self.run(inputs, params, step)
    }
}

/// Which back end runs graphs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// The reference interpreter over ndarray: the ground truth.
    Interp,
    /// Fused kernels compiled with Cranelift, products on the tuned GEMM; graphs it cannot
    /// compile run on the interpreter.
    #[default]
    Jit,
}

/// Prepares a graph for the chosen back end.
pub fn prepare(kind: BackendKind, graph: &Graph, seed: u64) -> Box<dyn Executable> {
    prepare_with(kind, graph, seed, PlanOptions::default())
}

/// Prepares a graph for the chosen back end with the JIT's options (threads).
pub fn prepare_with(
    kind: BackendKind,
    graph: &Graph,
    seed: u64,
    options: PlanOptions,
) -> Box<dyn Executable> {
    match kind {
        BackendKind::Interp => Box::new(Interpreted { graph: graph.clone(), seed }),
        BackendKind::Jit => Box::new(JitExecutable::new(graph, seed, options)),
    }
}

/// The interpreter as a back end. It checks every value for NaN and infinity so that a
/// diverging run names the op that first produced one.
struct Interpreted {
    graph: Graph,
    seed: u64,
}

impl Executable for Interpreted {
    fn run(&mut self, inputs: &[Value], params: &[Value], step: u64) -> Result<Vec<Value>, RunError> {
        let opts = RunOptions { seed: self.seed, step, promote_f64: false, check_finite: true };
        ir::run(&self.graph, inputs, params, &opts)
    }
}

/// A training stepper on the chosen back end for a step graph (from `step_graph`),
/// starting from `store`.
pub fn make_stepper(
    kind: BackendKind,
    graph: &Graph,
    store: ParamStore,
    spec: OptimizerSpec,
    seed: u64,
    options: PlanOptions,
) -> Result<Box<dyn TrainStepper>, TrainError> {
    match kind {
        BackendKind::Interp => Ok(Box::new(InterpStepper::new(graph, store, spec, seed)?)),
        BackendKind::Jit => {
            match JitStepper::new(graph, store.clone(), spec.clone(), seed, options) {
                Ok(s) => Ok(Box::new(s)),
                // A graph the JIT cannot schedule trains on the interpreter.
                Err(_) => Ok(Box::new(InterpStepper::new(graph, store, spec, seed)?)),
            }
        }
    }
}
