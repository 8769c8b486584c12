//! Training and evaluation: runs a checked program's `train` and `evaluate` blocks.
//!
//! For a `train` block: load the data, split off validation, differentiate the training
//! graph with respect to the trainable parameters (`autodiff`), simplify it, prepare it on
//! a back end, then for each epoch run every batch, apply the optimizer, and report the
//! Keras-style epoch line. `evaluate` blocks reuse the parameters trained in the same run,
//! or load a checkpoint.

mod backend;
mod evaluate;
mod fit;
mod jit;
mod params;
mod sources;
mod stepper;

pub use backend::{BackendKind, Executable, make_stepper, prepare, prepare_with};
pub use evaluate::{EvalReport, evaluate_block, predict};
pub use fit::{FitReport, fit, step_graph};
pub use jit::{JitExecutable, JitStepper, print_clif, print_fused};
pub use params::ParamStore;
pub use stepper::{InterpStepper, StepError, StepOutputs, StepStats, TrainStepper};

use crate::ir::RunError;
use crate::runtime::data::DataError;
use crate::sema::Program;
use crate::source::Span;
use crate::syntax::ast::TrainKind;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// Overrides and options for a run, from the command line.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    pub data_dir: Option<PathBuf>,
    pub seed: Option<u64>,
    pub epochs: Option<usize>,
    pub batch: Option<usize>,
    pub lr: Option<f64>,
    /// Use only the first samples of every dataset (quick runs, tests).
    pub limit: Option<usize>,
    pub history: Option<PathBuf>,
    /// Where to save the trained parameters (overrides a `checkpoint` setting).
    pub save: Option<PathBuf>,
    /// Parameters to start from (overrides a `checkpoint` setting of `evaluate`).
    pub load: Option<PathBuf>,
    /// Show a live progress bar (`None`: when stdout is a terminal).
    pub interactive: Option<bool>,
    pub backend: Option<BackendKind>,
    /// Threads the JIT may split a matrix product, a convolution or an update between
    /// (default: one per core).
    pub threads: Option<usize>,
}

impl RunConfig {
    /// The JIT's options for this run.
    pub fn plan_options(&self) -> crate::codegen::PlanOptions {
        let threads = self.threads.unwrap_or_else(crate::kernels::team::size).max(1);
        crate::codegen::PlanOptions { threads, ..Default::default() }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Checkpoint(String),
    #[error("running `{graph}`: {error}")]
    Run { graph: String, error: Box<RunError> },
    /// A NaN or an infinity appeared: which step, and which op made it first.
    #[error("training diverged at epoch {epoch}, step {step}: `{op}` produced a value that is not finite")]
    NonFinite { epoch: usize, step: u64, op: String, span: Span },
    #[error("cannot write the report: {0}")]
    Io(#[from] std::io::Error),
}

/// What a whole run produced.
#[derive(Debug, Default)]
pub struct RunReport {
    pub fits: Vec<(String, FitReport)>,
    pub evaluations: Vec<(String, EvalReport)>,
    /// The latest parameters of each trained or loaded model.
    pub stores: HashMap<String, ParamStore>,
}

/// Runs every block of a program in order, writing progress to `out`.
pub fn run_program(program: &Program, cfg: &RunConfig, out: &mut dyn Write) -> Result<RunReport, TrainError> {
    let mut report = RunReport::default();
    for spec in &program.trains {
        match spec.kind {
            TrainKind::Train => {
                let fitted = fit(spec, cfg, out)?;
                report.stores.insert(spec.model.clone(), fitted.params.clone());
                report.fits.push((spec.model.clone(), fitted));
            }
            TrainKind::Evaluate => {
                let e = evaluate_block(spec, report.stores.get(&spec.model), cfg, out)?;
                report.evaluations.push((spec.model.clone(), e));
            }
        }
    }
    Ok(report)
}

/// A run error on a graph, with the divergence case singled out.
fn run_error(graph: &str, epoch: usize, step: u64, error: RunError) -> TrainError {
    match error {
        RunError::NonFinite { op, span, .. } => TrainError::NonFinite { epoch, step, op, span },
        error => TrainError::Run { graph: graph.to_string(), error: Box::new(error) },
    }
}
