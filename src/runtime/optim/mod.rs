//! Optimizers: a checked spec ([`OptimizerSpec`], parsed from a call in the language) and
//! the stateful [`Optimizer`] that updates a fixed list of parameter tensors in place.
//!
//! Invariants: an optimizer is built for one list of named parameter shapes and every
//! `step` must pass tensors of exactly those shapes; its state holds one f32 buffer per
//! slot and parameter, each as long as the parameter. The step count starts at 0 and is
//! incremented before each update (so Adam's bias correction sees t = 1 first).

mod args;
mod spec;
mod update;

#[cfg(test)]
mod tests;

pub use args::{ArgError, ArgValue};
pub(crate) use args::{Args, check_callee};
pub use spec::{Clipping, OptimizerKind, OptimizerSpec, optimizer_args, optimizer_names};

use ndarray::{ArrayD, IxDyn};

use crate::runtime::clip;
pub use update::adam_lr_t;
pub(crate) use update::{Common, MAX_SLOTS, ParamUpdate, apply, apply_in_parts};

/// A failed optimizer step or state import.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimError {
    #[error(transparent)]
    Arg(#[from] ArgError),
    #[error("the optimizer was built for {expected} parameters but got {got} {what}")]
    Count { expected: usize, got: usize, what: &'static str },
    #[error("{what} for parameter `{name}` has shape {got:?}, expected {expected:?}")]
    Shape { name: String, what: &'static str, expected: Vec<usize>, got: Vec<usize> },
    #[error("learning rate {0} is not a finite non-negative number")]
    BadLearningRate(f32),
    #[error("optimizer state has no tensor `{0}`")]
    MissingState(String),
    #[error("optimizer state has a tensor `{0}` this {1} optimizer does not use")]
    UnexpectedState(String, String),
}

/// An optimizer's state as named tensors, for checkpoints. Names are `<param>/<slot>`.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    pub step: u64,
    pub tensors: Vec<(String, ArrayD<f32>)>,
}

/// A stateful optimizer over a fixed list of parameters.
#[derive(Clone, Debug)]
pub struct Optimizer {
    spec: OptimizerSpec,
    slot_names: Vec<&'static str>,
    params: Vec<(String, Vec<usize>)>,
    /// `slots[param][slot]`, each as long as the parameter.
    slots: Vec<Vec<Vec<f32>>>,
    step: u64,
}

impl Optimizer {
    /// An optimizer with zeroed state for parameters of these names and shapes.
    pub fn new(spec: OptimizerSpec, params: &[(String, Vec<usize>)]) -> Optimizer {
        let slot_names = spec.slot_names();
        let slots = params
            .iter()
            .map(|(_, shape)| slot_names.iter().map(|_| vec![0.0; shape.iter().product()]).collect())
            .collect();
        Optimizer { spec, slot_names, params: params.to_vec(), slots, step: 0 }
    }

    pub fn spec(&self) -> &OptimizerSpec {
        &self.spec
    }

    /// The number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The names and shapes of the state tensors, in export order.
    pub fn state_layout(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (name, shape) in &self.params {
            for slot in &self.slot_names {
                out.push((format!("{name}/{slot}"), shape.clone()));
            }
        }
        out
    }

    /// Updates `params` in place from `grads` with learning rate `lr` (from a schedule).
    pub fn step(
        &mut self,
        params: &mut [ArrayD<f32>],
        grads: &[ArrayD<f32>],
        lr: f32,
    ) -> Result<(), OptimError> {
        self.check(params, grads)?;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(OptimError::BadLearningRate(lr));
        }
        let (global_scale, clip) = match self.spec.clipping {
            Clipping::GlobalNorm(n) => (clip::norm_scale(clip::global_norm(grads), n), f32::INFINITY),
            Clipping::Value(v) => (1.0, v),
            Clipping::None | Clipping::Norm(_) => (1.0, f32::INFINITY),
        };
        self.step += 1;
        for ((param, grad), slots) in params.iter_mut().zip(grads).zip(self.slots.iter_mut()) {
            let scale = match self.spec.clipping {
                Clipping::Norm(n) => clip::norm_scale(clip::sum_of_squares(grad).sqrt() as f32, n),
                _ => global_scale,
            };
            let common =
                Common { lr, scale, clip, l2: self.spec.l2, decay: 1.0 - lr * self.spec.weight_decay };
            if !param.is_standard_layout() {
                *param = param.as_standard_layout().into_owned();
            }
            let grad = grad.as_standard_layout();
            let (Some(p), Some(g)) = (param.as_slice_mut(), grad.as_slice()) else {
                unreachable!("standard-layout arrays are contiguous")
            };
            let lr_t = match self.spec.kind {
                OptimizerKind::Adam { beta1, beta2, .. } => update::adam_lr_t(lr, beta1, beta2, self.step),
                _ => lr,
            };
            let mut slots: Vec<&mut [f32]> = slots.iter_mut().map(|s| s.as_mut_slice()).collect();
            apply(ParamUpdate { kind: &self.spec.kind, p, g, slots: &mut slots, c: common, lr_t });
        }
        Ok(())
    }

    fn check(&self, params: &[ArrayD<f32>], grads: &[ArrayD<f32>]) -> Result<(), OptimError> {
        let expected = self.params.len();
        for (got, what) in [(params.len(), "parameters"), (grads.len(), "gradients")] {
            if got != expected {
                return Err(OptimError::Count { expected, got, what });
            }
        }
        for ((name, shape), (p, g)) in self.params.iter().zip(params.iter().zip(grads)) {
            for (t, what) in [(p, "the parameter"), (g, "the gradient")] {
                if t.shape() != shape.as_slice() {
                    let (expected, got) = (shape.clone(), t.shape().to_vec());
                    return Err(OptimError::Shape { name: name.clone(), what, expected, got });
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (`<param>/<slot>`) plus the step count.
    pub fn export_state(&self) -> OptimizerState {
        let mut tensors = Vec::new();
        for ((name, shape), slots) in self.params.iter().zip(&self.slots) {
            for (slot, data) in self.slot_names.iter().zip(slots) {
                // The buffer length is the shape's product by construction.
                let t = ArrayD::from_shape_vec(IxDyn(shape), data.clone())
                    .unwrap_or_else(|_| unreachable!("slot buffers match their parameter's shape"));
                tensors.push((format!("{name}/{slot}"), t));
            }
        }
        OptimizerState { step: self.step, tensors }
    }

    /// Replaces the state with `state`, which must hold exactly this optimizer's tensors
    /// with the parameters' shapes. On error the optimizer is unchanged.
    pub fn import_state(&mut self, state: &OptimizerState) -> Result<(), OptimError> {
        let layout = self.state_layout();
        for (name, _) in &state.tensors {
            if !layout.iter().any(|(n, _)| n == name) {
                return Err(OptimError::UnexpectedState(name.clone(), self.spec.name.clone()));
            }
        }
        let mut new_slots = Vec::with_capacity(self.params.len());
        let mut entries = layout.iter();
        for (pname, _) in &self.params {
            let mut per_param = Vec::with_capacity(self.slot_names.len());
            for _ in &self.slot_names {
                let Some((name, shape)) = entries.next() else {
                    unreachable!("layout has one entry per slot")
                };
                let Some((_, t)) = state.tensors.iter().find(|(n, _)| n == name) else {
                    return Err(OptimError::MissingState(name.clone()));
                };
                if t.shape() != shape.as_slice() {
                    let (expected, got) = (shape.clone(), t.shape().to_vec());
                    return Err(OptimError::Shape {
                        name: pname.clone(),
                        what: "optimizer state",
                        expected,
                        got,
                    });
                }
                per_param.push(t.as_standard_layout().iter().copied().collect());
            }
            new_slots.push(per_param);
        }
        self.slots = new_slots;
        self.step = state.step;
        Ok(())
    }
}
