//! the training loop.

pub mod clip;
pub mod data;
pub mod init;
pub mod optim;
pub mod rng;
pub mod schedule;
