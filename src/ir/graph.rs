//! The IR graph: a typed SSA arena of primitive ops.
//!
//! Invariants (checked by `verify`): a node's inputs are earlier nodes, so the arena order
//! is a topological order; every node's type is what its op's shape rule gives for its
//! inputs; `Input` and `Param` indices name existing entries of `inputs` and `params`.

use super::op::Op;
use crate::ops;
use crate::shape::{DType, Shape, TensorType};
use crate::source::Span;

/// Index of a node in its graph.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One SSA value: an op applied to earlier values.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: TensorType,
    /// The source expression this node was lowered from.
    pub span: Span,
}

/// How a parameter is filled before training. Fan-in and fan-out follow Keras: for a
/// kernel of shape `[..receptive, in, out]` they are `receptive*in` and `receptive*out`.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f64),
    /// U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
    GlorotUniform,
    /// N(0, 2 / (fan_in + fan_out)), truncated at two standard deviations.
    GlorotNormal,
    /// U(-l, l) with l = sqrt(6 / fan_in).
    HeUniform,
    /// N(0, 2 / fan_in), truncated at two standard deviations.
    HeNormal,
    /// A (semi-)orthogonal matrix over the last axis, from a QR decomposition.
    Orthogonal,
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// The last axis cut into equal blocks, block `i` filled with value `i` (an LSTM's
    /// fused bias with its forget block at 1: `blocks([0, 1, 0, 0])`).
    Blocks(Vec<f64>),
}

impl Init {
    pub fn name(&self) -> String {
        match self {
            Init::Zeros => "zeros".into(),
            Init::Ones => "ones".into(),
            Init::Constant(v) => format!("constant({})", super::op::fmt_f64(*v)),
            Init::GlorotUniform => "glorot_uniform".into(),
            Init::GlorotNormal => "glorot_normal".into(),
            Init::HeUniform => "he_uniform".into(),
            Init::HeNormal => "he_normal".into(),
            Init::Orthogonal => "orthogonal".into(),
            Init::Uniform { low, high } => format!("uniform({low}, {high})"),
            Init::Normal { mean, std } => format!("normal({mean}, {std})"),
            Init::Blocks(values) => {
                let v: Vec<String> = values.iter().map(|&x| super::op::fmt_f64(x)).collect();
                format!("blocks([{}])", v.join(", "))
            }
        }
    }
}

/// A tensor the graph reads that lives across steps: a trained parameter or layer state.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Dotted path of the owning layer instance and the parameter: `dense_1.w`.
    pub name: String,
    pub ty: TensorType,
    pub init: Init,
    /// False for non-trained state such as batch-norm running means.
    pub trainable: bool,
    pub span: Span,
}

/// A value the caller feeds each run.
#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    pub name: String,
    pub ty: TensorType,
    pub span: Span,
}

/// A typed SSA graph with named inputs, parameters and outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub inputs: Vec<InputInfo>,
    pub params: Vec<ParamInfo>,
    pub outputs: Vec<(String, NodeId)>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph { name: name.into(), ..Graph::default() }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.nodes[id.index()].ty
    }

    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }

    /// Appends a node whose type is already known. Prefer [`Graph::add`], which infers it.
    pub fn push(&mut self, op: Op, inputs: Vec<NodeId>, ty: TensorType, span: Span) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node { op, inputs, ty, span });
        id
    }

    /// Appends `op(inputs)`, its type given by the op's shape rule. `target` is the result
    /// type for ops that take it as an attribute (fill, random, reshape, broadcast).
    pub fn add(
        &mut self,
        op: Op,
        inputs: &[NodeId],
        target: Option<TensorType>,
        span: Span,
    ) -> Result<NodeId, ops::ShapeError> {
        let in_types: Vec<&TensorType> = inputs.iter().map(|&i| self.ty(i)).collect();
        let ty = ops::infer(&op, &in_types, target.as_ref())?;
        Ok(self.push(op, inputs.to_vec(), ty, span))
    }

    /// Declares an input and returns its node.
    pub fn add_input(&mut self, name: &str, ty: TensorType, span: Span) -> NodeId {
        let index = self.inputs.len();
        self.inputs.push(InputInfo { name: name.to_string(), ty: ty.clone(), span });
        self.push(Op::Input { index }, Vec::new(), ty, span)
    }

    /// Declares a parameter and returns its node.
    pub fn add_param(&mut self, info: ParamInfo) -> NodeId {
        let index = self.params.len();
        let (ty, span) = (info.ty.clone(), info.span);
        self.params.push(info);
        self.push(Op::Param { index }, Vec::new(), ty, span)
    }

    /// A scalar constant of `dtype`.
    pub fn scalar(&mut self, value: f64, dtype: DType, span: Span) -> NodeId {
        self.push(Op::Fill { value }, Vec::new(), TensorType::scalar(dtype), span)
    }

    /// A constant tensor of the given shape.
    pub fn fill(&mut self, value: f64, dtype: DType, shape: Shape, span: Span) -> NodeId {
        self.push(Op::Fill { value }, Vec::new(), TensorType::new(dtype, shape), span)
    }

    /// How many nodes use each node (outputs count as uses).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.nodes.len()];
        for n in &self.nodes {
            for i in &n.inputs {
                uses[i.index()] += 1;
            }
        }
        for (_, o) in &self.outputs {
            uses[o.index()] += 1;
        }
        uses
    }
}
