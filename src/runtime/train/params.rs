//! The parameters and state of a model across steps: initialized from the graph's
//! declarations with a seed, updated by the optimizer, saved and loaded as checkpoints.
//! Parameters are matched by name, so a model lowered for training and for evaluation
//! (two graphs) shares one store.

use super::TrainError;
use crate::ir::{Graph, ParamInfo};
use crate::ops::Value;
use crate::runtime::checkpoint::{self, CheckpointMeta};
use crate::runtime::init::init_tensor;
use crate::runtime::optim::OptimizerState;
use crate::runtime::rng::Rng;
use crate::shape::SymEnv;
use ndarray::ArrayD;
use std::path::Path;

/// Named f32 tensors: trained parameters and non-trained state.
#[derive(Clone, Debug)]
pub struct ParamStore {
    pub names: Vec<String>,
    pub values: Vec<ArrayD<f32>>,
    pub trainable: Vec<bool>,
}

impl ParamStore {
    /// Initializes every parameter of `graph`; parameter `i` draws from stream `(seed, i)`,
    /// so the same seed gives the same weights, run after run.
    pub fn init(graph: &Graph, seed: u64) -> Result<ParamStore, TrainError> {
        let mut store = ParamStore { names: Vec::new(), values: Vec::new(), trainable: Vec::new() };
        for (i, p) in graph.params.iter().enumerate() {
            let shape = concrete_shape(p)?;
            let mut rng = Rng::derive(seed, i as u64);
            let value = init_tensor(&p.init, &shape, &mut rng)
                .map_err(|e| TrainError::Setup(format!("parameter `{}`: {e}", p.name)))?;
            store.names.push(p.name.clone());
            store.values.push(value);
            store.trainable.push(p.trainable);
        }
        Ok(store)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The store's tensors in the order `graph` declares its parameters.
    pub fn values_for(&self, graph: &Graph) -> Result<Vec<Value>, TrainError> {
        graph
            .params
            .iter()
            .map(|p| {
                let i = self.index(&p.name).ok_or_else(|| {
                    TrainError::Setup(format!(
                        "graph `{}` needs parameter `{}`, which the model lacks",
                        graph.name, p.name
                    ))
                })?;
                Ok(Value::F32(self.values[i].clone()))
            })
            .collect()
    }

    /// Number of trained scalars.
    pub fn trainable_count(&self) -> usize {
        self.values.iter().zip(&self.trainable).filter(|(_, t)| **t).map(|(v, _)| v.len()).sum()
    }

    /// Saves parameters (and optimizer state) atomically as safetensors.
    pub fn save(
        &self,
        path: &Path,
        model: &str,
        optimizer: Option<(&str, &OptimizerState)>,
        epoch: usize,
        step: u64,
    ) -> Result<(), TrainError> {
        let tensors: Vec<(&str, &ArrayD<f32>)> =
            self.names.iter().map(String::as_str).zip(&self.values).collect();
        let meta = CheckpointMeta::new(model, optimizer.map(|o| o.0).unwrap_or(""), epoch as u64, step);
        checkpoint::save(path, &tensors, optimizer.map(|o| o.1), &meta)
            .map_err(|e| TrainError::Checkpoint(e.to_string()))
    }

    /// Loads every parameter of this store from a checkpoint, checking names and shapes.
    pub fn load(&mut self, path: &Path) -> Result<checkpoint::Checkpoint, TrainError> {
        let expected: Vec<(String, Vec<usize>)> =
            self.names.iter().cloned().zip(self.values.iter().map(|v| v.shape().to_vec())).collect();
        let ckpt =
            checkpoint::load_into(path, &expected).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        for (i, (_, v)) in ckpt.params.iter().enumerate() {
            self.values[i] = v.clone();
        }
        Ok(ckpt)
    }
}

fn concrete_shape(p: &ParamInfo) -> Result<Vec<usize>, TrainError> {
    SymEnv::new().resolve_shape(&p.ty.shape).ok_or_else(|| {
        TrainError::Setup(format!(
            "parameter `{}` has the symbolic shape {}; parameters need literal shapes",
            p.name, p.ty
        ))
    })
}
