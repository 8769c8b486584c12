//! the training loop.

pub mod checkpoint;
pub mod clip;
pub mod data;
pub mod fsutil;
pub mod history;
pub mod init;
pub mod optim;
pub mod rng;
pub mod schedule;
