//! Gradient checks: analytic gradients from [`grad`](super::grad) against central finite
//! differences, both computed in f64 by the reference interpreter.
//!
//! For every element x of every checked parameter the numeric derivative is
//! (L(x + h) − L(x − h)) / ((x + h) − (x − h)) with h = `rel_step`·max(1, |x|); dividing by
//! the difference actually represented removes the rounding of x ± h. An element's error is
//! |analytic − numeric| / max(|analytic|, |numeric|, `floor`): relative for gradients
//! larger than `floor`, absolute below, so that tiny gradients are not judged on noise.
//! Random ops draw the same numbers in every run (same seed and step).

use super::reverse::{GradError, OpRules, VjpRules, grad_with};
use crate::ir::{Graph, NodeId, RunError, RunOptions, run};
use crate::ops::Value;
use crate::shape::DType;
use ndarray::{ArrayD, Dimension};
use std::fmt;

/// How to check.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckOptions {
    pub seed: u64,
    pub step: u64,
    /// The finite-difference step relative to max(1, |x|).
    pub rel_step: f64,
    /// The largest error that passes.
    pub tolerance: f64,
    /// Below this magnitude errors are absolute (see the module header).
    pub floor: f64,
}

impl Default for GradCheckOptions {
    fn default() -> GradCheckOptions {
        GradCheckOptions { seed: 0, step: 0, rel_step: 1e-5, tolerance: 1e-6, floor: 1.0 }
    }
}

/// The outcome for one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGradCheck {
    pub index: usize,
    pub name: String,
    /// The largest error over the parameter's elements.
    pub max_error: f64,
    /// Where it occurs: the element's index and the two derivatives there.
    pub worst_element: Vec<usize>,
    pub analytic: f64,
    pub numeric: f64,
}

/// The outcome of a check: one entry per checked parameter, in the order asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    pub params: Vec<ParamGradCheck>,
    pub tolerance: f64,
}

impl GradCheckReport {
    /// Whether every parameter's error is within the tolerance (NaN errors fail).
    pub fn passed(&self) -> bool {
        self.params.iter().all(|p| p.max_error <= self.tolerance)
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.params {
            let verdict = if p.max_error <= self.tolerance { "ok" } else { "FAILED" };
            writeln!(
                f,
                "{verdict} `{}`: max error {:.3e} (tolerance {:.1e}) at {:?}: analytic {:.9e}, numeric {:.9e}",
                p.name, p.max_error, self.tolerance, p.worst_element, p.analytic, p.numeric
            )?;
        }
        Ok(())
    }
}

/// Why a check could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GradCheckError {
    #[error(transparent)]
    Grad(#[from] GradError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the gradient check needs float parameters; `{name}` is {dtype}")]
    NotFloat { name: String, dtype: DType },
}

/// Checks the registry's derivative rules on `graph` at the given inputs and parameters.
pub fn check_gradients(
    graph: &Graph,
    loss: NodeId,
    inputs: &[Value],
    params: &[Value],
    wrt: &[usize],
    opts: &GradCheckOptions,
) -> Result<GradCheckReport, GradCheckError> {
    check_gradients_with(graph, loss, inputs, params, wrt, opts, &OpRules)
}

/// [`check_gradients`] with another table of derivative rules.
pub fn check_gradients_with(
    graph: &Graph,
    loss: NodeId,
    inputs: &[Value],
    params: &[Value],
    wrt: &[usize],
    opts: &GradCheckOptions,
    rules: &dyn VjpRules,
) -> Result<GradCheckReport, GradCheckError> {
    let run_opts = RunOptions { seed: opts.seed, step: opts.step, promote_f64: true, check_finite: false };
    let mut backward = grad_with(graph, loss, wrt, rules)?;
    backward.outputs.drain(..backward.outputs.len() - wrt.len());
    let analytic = run(&backward, inputs, params, &run_opts)?;

    let mut forward = graph.clone();
    forward.outputs = vec![("loss".into(), loss)];
    let mut wide: Vec<Value> = Vec::with_capacity(params.len());
    for (index, (p, info)) in params.iter().zip(&graph.params).enumerate() {
        let wanted = wrt.contains(&index);
        match p {
            Value::F32(_) | Value::F64(_) => wide.push(p.cast(DType::F64)),
            _ if wanted => {
                return Err(GradCheckError::NotFloat { name: info.name.clone(), dtype: p.dtype() });
            }
            _ => wide.push(p.clone()),
        }
    }
    let mut loss_at = |wide: &[Value]| -> Result<f64, GradCheckError> {
        let out = run(&forward, inputs, wide, &run_opts)?;
        Ok(out[0].first_f64().unwrap_or(f64::NAN))
    };

    let mut report = GradCheckReport { params: Vec::with_capacity(wrt.len()), tolerance: opts.tolerance };
    for (&p, analytic) in wrt.iter().zip(&analytic) {
        let analytic = analytic.to_f64();
        let numeric = numeric_gradient(&mut wide, p, opts.rel_step, &mut loss_at)?;
        report.params.push(compare(p, &graph.params[p].name, &analytic, &numeric, opts.floor));
    }
    Ok(report)
}

/// Central differences of the loss with respect to every element of `params[p]` (an f64
/// array), which is restored afterwards.
fn numeric_gradient(
    params: &mut [Value],
    p: usize,
    rel_step: f64,
    loss_at: &mut dyn FnMut(&[Value]) -> Result<f64, GradCheckError>,
) -> Result<ArrayD<f64>, GradCheckError> {
    let original = params[p].to_f64().as_standard_layout().into_owned();
    let mut numeric = ArrayD::zeros(original.raw_dim());
    for (e, &x) in original.iter().enumerate() {
        let h = rel_step * x.abs().max(1.0);
        let (up, down) = (x + h, x - h);
        let mut at = |v: f64| -> Result<f64, GradCheckError> {
            let mut moved = original.clone();
            if let Some(slot) = moved.as_slice_mut().and_then(|s| s.get_mut(e)) {
                *slot = v;
            }
            params[p] = Value::F64(moved);
            loss_at(params)
        };
        let (l_up, l_down) = (at(up)?, at(down)?);
        if let Some(slot) = numeric.as_slice_mut().and_then(|s| s.get_mut(e)) {
            *slot = (l_up - l_down) / (up - down);
        }
    }
    params[p] = Value::F64(original);
    Ok(numeric)
}

fn compare(
    index: usize,
    name: &str,
    analytic: &ArrayD<f64>,
    numeric: &ArrayD<f64>,
    floor: f64,
) -> ParamGradCheck {
    let mut check = ParamGradCheck {
        index,
        name: name.to_string(),
        max_error: 0.0,
        worst_element: Vec::new(),
        analytic: 0.0,
        numeric: 0.0,
    };
    if analytic.shape() != numeric.shape() {
        check.max_error = f64::INFINITY;
        return check;
    }
    for ((idx, &a), &n) in analytic.indexed_iter().zip(numeric.iter()) {
        let error = (a - n).abs() / a.abs().max(n.abs()).max(floor);
        // A NaN on either side must fail the check.
        let error = if error.is_nan() { f64::INFINITY } else { error };
        if error > check.max_error || check.worst_element.is_empty() {
            check.max_error = error;
            check.worst_element = idx.slice().to_vec();
            (check.analytic, check.numeric) = (a, n);
        }
    }
    check
}
