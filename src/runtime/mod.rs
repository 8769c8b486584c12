//! The runtime: tensors, data loading, initializers, optimizers, metrics, checkpoints and
//! the training loop.

pub mod data;
pub mod rng;
