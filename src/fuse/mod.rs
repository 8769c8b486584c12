//! Scheduling: which ops of a graph become one kernel, and in what order the kernels run.
//!
//! [`schedule`] partitions the live nodes of a (forward or forward-plus-backward) graph
//! into [`Step`]s: fused elementwise kernels with several outputs, reductions with their
//! producers inlined, matrix products (transposes folded into strides, the elementwise
//! kernel after them marked as their epilogue), one-hot encodings, constants computed once,
//! and a fallback to the reference kernels for everything else. Every node ends at a
//! [`Loc`]: stored by a step, computed inside the kernels that read it, an alias of another
//! node's storage (reshape), a transposed view, or a graph input or parameter.
//!
//! The schedule is symbolic (shapes keep `B`); `plan` assigns buffers by liveness once the
//! symbols are bound, and `print` writes both for `dnnc ir --stage fused`.
//!
//! Invariants: steps are in a valid execution order (every value a step reads is an input,
//! a parameter, a constant or stored by an earlier step); a kernel never reads a buffer it
//! writes except at the same element (in place); every node the graph outputs has a
//! location other than `Inlined`.

mod access;
mod group;
pub mod plan;
mod print;

pub use access::{broadcast_access, operand_access};
pub use group::schedule;
pub use print::{print_schedule, write_kernel_expr};

use crate::codegen::{Access, KernelExpr, ReduceAxis};
use crate::ir::{Graph, NodeId, ReduceOp};
use crate::shape::Shape;

/// Where a node's value lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Loc {
    /// Not needed by any output.
    Dead,
    /// The graph's `i`-th input.
    Input(usize),
    /// The graph's `i`-th parameter.
    Param(usize),
    /// Computed inside every kernel that reads it; never stored.
    Inlined,
    /// Stored by step `step` (a kernel output, a product, a constant, a fallback).
    Stored { step: usize },
    /// The same elements as the node, in the same order (a reshape).
    Alias(NodeId),
    /// The node's last two axes swapped, folded into the matrix products that read it.
    Transposed(NodeId),
    /// A stacked matrix product computed only as its sum over the stack, by the product
    /// step of that sum (`StepKind::MatMul` with `summed`).
    Summed(NodeId),
}

/// A matrix-product operand: a value, possibly read through a transposed view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatOperand {
    /// The node whose storage is read (never a view or an alias itself).
    pub node: NodeId,
    /// Read with its last two axes swapped.
    pub transposed: bool,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// A fused elementwise kernel over `domain` (split before its last axis): output `k`
    /// stores `exprs[k]` as the value of `outputs[k]`, reading `inputs` with their access.
    Elementwise { domain: Shape, inputs: Vec<(NodeId, Access)>, outputs: Vec<NodeId>, exprs: Vec<KernelExpr> },
    /// `node` = the `op` reduction of `expr` over `domain` split at `split`: over the
    /// columns (trailing axes `split..`) or the rows (leading axes `..split`).
    Reduce {
        node: NodeId,
        domain: Shape,
        split: usize,
        axis: ReduceAxis,
        op: ReduceOp,
        inputs: Vec<(NodeId, Access)>,
        expr: KernelExpr,
    },
    /// `node = a @ b` on the tuned GEMM; `epilogue` is the elementwise step that follows on
    /// its output, if any. When `summed`, `node` is the sum of the stacked product `a @ b`
    /// over its batch axes (`a` read transposed, `b` not), computed as one product whose
    /// depth runs over the stack.
    MatMul { node: NodeId, a: MatOperand, b: MatOperand, epilogue: Option<usize>, summed: bool },
    /// `node = one_hot(labels)`.
    OneHot { node: NodeId, labels: NodeId, depth: usize },
    /// A value that does not change between runs (a fill, a size), computed once when
    /// the step is specialized.
    Constant { node: NodeId },
    /// The reference kernel of `node` (`crate::ops::eval`), for ops without a native one.
    Fallback { node: NodeId },
}

/// One unit of work.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub kind: StepKind,
}

impl Step {
    /// The nodes this step stores.
    pub fn outputs(&self) -> Vec<NodeId> {
        match &self.kind {
            StepKind::Elementwise { outputs, .. } => outputs.clone(),
            StepKind::Reduce { node, .. }
            | StepKind::MatMul { node, .. }
            | StepKind::OneHot { node, .. }
            | StepKind::Constant { node }
            | StepKind::Fallback { node } => vec![*node],
        }
    }

    /// The nodes whose storage this step reads (views and aliases resolved), with the
    /// access of kernels (`None` for other steps).
    pub fn reads(&self, graph: &Graph, schedule: &Schedule) -> Vec<(NodeId, Option<Access>)> {
        match &self.kind {
            StepKind::Elementwise { inputs, .. } | StepKind::Reduce { inputs, .. } => {
                inputs.iter().map(|(n, a)| (*n, Some(*a))).collect()
            }
            StepKind::MatMul { a, b, .. } => vec![(a.node, None), (b.node, None)],
            StepKind::OneHot { labels, .. } => vec![(schedule.storage(*labels), None)],
            StepKind::Constant { .. } => Vec::new(),
            StepKind::Fallback { node } => {
                graph.node(*node).inputs.iter().map(|&i| (schedule.storage(i), None)).collect()
            }
        }
    }

    pub fn is_kernel(&self) -> bool {
        matches!(self.kind, StepKind::Elementwise { .. } | StepKind::Reduce { .. })
    }
}

/// The steps of a graph and where every node lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub graph: Graph,
    pub locs: Vec<Loc>,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The node whose storage holds `id`'s elements (following aliases; a transposed view
    /// resolves to the node it views).
    pub fn storage(&self, id: NodeId) -> NodeId {
        let mut id = id;
        loop {
            match self.locs[id.index()] {
                Loc::Alias(to) | Loc::Transposed(to) => id = to,
                _ => return id,
            }
        }
    }

    /// How many steps are compiled kernels, products, and other work.
    pub fn counts(&self) -> (usize, usize, usize) {
        let kernels = self.steps.iter().filter(|s| s.is_kernel()).count();
        let products = self.steps.iter().filter(|s| matches!(s.kind, StepKind::MatMul { .. })).count();
        (kernels, products, self.steps.len() - kernels - products)
    }
}

/// Why a graph cannot be scheduled for the native back end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FuseError {
    #[error("node %{node} (`{op}`): {dtype} values are not supported by the JIT")]
    DType { node: u32, op: String, dtype: String },
}
