//! The hyper-parameter block of a compiled training step: the run-time scalars of the
//! optimizer update (learning rates, clipping) that the stepper writes before each step and
//! the update host ops read (`host.rs`, which runs `runtime::optim`'s rules, so both back
//! ends share one definition of every optimizer). The `H_*` constants give its layout.

use crate::runtime::optim::{OptimizerKind, OptimizerSpec, adam_lr_t};

/// The learning rate.
pub const H_LR: usize = 0;
/// Adam's bias-corrected learning rate of the current step.
pub const H_LR_T: usize = 1;
/// The value-clipping bound (infinite when off).
pub const H_CLIP: usize = 2;
pub const H_L2: usize = 3;
/// `1 - lr · weight_decay`.
pub const H_DECAY: usize = 4;
/// The gradient scale of trainable parameter `i` (norm clipping) is at `H_SCALE0 + i`.
pub const H_SCALE0: usize = 5;

/// The hyper-parameters of one step, before the per-parameter scales: what
/// `runtime::optim` computes for step `t` (counting from 1).
pub fn hyper(spec: &OptimizerSpec, t: u64) -> [f32; H_SCALE0] {
    let lr = spec.lr;
    let lr_t = match spec.kind {
        OptimizerKind::Adam { beta1, beta2, .. } => adam_lr_t(lr, beta1, beta2, t),
        _ => lr,
    };
    let clip = match spec.clipping {
        crate::runtime::optim::Clipping::Value(v) => v,
        _ => f32::INFINITY,
    };
    [lr, lr_t, clip, spec.l2, 1.0 - lr * spec.weight_decay]
}
