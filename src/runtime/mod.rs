//! The runtime: tensors, data loading, initializers, optimizers, metrics, checkpoints and
//! the training loop.

pub mod checkpoint;
pub mod clip;
pub mod data;
pub mod fsutil;
pub mod history;
pub mod init;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod rng;
pub mod schedule;
pub mod train;
