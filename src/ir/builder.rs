//! Convenience constructors on [`Graph`] for passes that build IR (derivative rules,
//! rewrites): one method per op shape, each typed by the op's shape rule through
//! [`Graph::add`].
//!
//! `reshape`, `broadcast_to` and `sum_to` return their operand unchanged when it already
//! has the requested shape, so rules can call them unconditionally without leaving
//! identity nodes behind.

use super::{BinaryOp, Graph, NodeId, Op, ReduceOp, UnaryOp};
use crate::ops::ShapeError;
use crate::shape::{DType, Dim, TensorType};
use crate::source::Span;

impl Graph {
    pub fn unary(&mut self, op: UnaryOp, x: NodeId, span: Span) -> Result<NodeId, ShapeError> {
        self.add(Op::Unary(op), &[x], None, span)
    }

    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId, span: Span) -> Result<NodeId, ShapeError> {
        self.add(Op::Binary(op), &[a, b], None, span)
    }

    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId, span: Span) -> Result<NodeId, ShapeError> {
        self.add(Op::Select, &[cond, a, b], None, span)
    }

    pub fn cast(&mut self, x: NodeId, to: DType, span: Span) -> Result<NodeId, ShapeError> {
        self.add(Op::Cast { to }, &[x], None, span)
    }

    pub fn reduce(
        &mut self,
        op: ReduceOp,
        x: NodeId,
        axes: Vec<usize>,
        keep: bool,
        span: Span,
    ) -> Result<NodeId, ShapeError> {
        self.add(Op::Reduce { op, axes, keep }, &[x], None, span)
    }

    pub fn transpose(&mut self, x: NodeId, perm: Vec<usize>, span: Span) -> Result<NodeId, ShapeError> {
        self.add(Op::Transpose { perm }, &[x], None, span)
    }

    pub fn matmul(&mut self, a: NodeId, b: NodeId, span: Span) -> Result<NodeId, ShapeError> {
        self.add(Op::MatMul, &[a, b], None, span)
    }

    /// A scalar constant of the element type of `like`.
    pub fn scalar_like(&mut self, value: f64, like: NodeId, span: Span) -> NodeId {
        let dtype = self.ty(like).dtype;
        self.scalar(value, dtype, span)
    }

    /// `x` with the same elements in `shape`; `x` itself when its shape is `shape`.
    pub fn reshape(&mut self, x: NodeId, shape: &[Dim], span: Span) -> Result<NodeId, ShapeError> {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        let target = TensorType::new(self.ty(x).dtype, shape.to_vec());
        self.add(Op::Reshape, &[x], Some(target), span)
    }

    /// `x` broadcast to `shape`; `x` itself when its shape is `shape`.
    pub fn broadcast_to(&mut self, x: NodeId, shape: &[Dim], span: Span) -> Result<NodeId, ShapeError> {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        let target = TensorType::new(self.ty(x).dtype, shape.to_vec());
        self.add(Op::Broadcast, &[x], Some(target), span)
    }

    /// The inverse of broadcasting `shape` to the shape of `x`: sums `x` over the axes
    /// broadcasting added (the leading ones) or stretched (a literal 1 in `shape` against
    /// anything else), then reshapes to `shape`. Symbols are never compared with literals:
    /// a symbolic axis of `x` is reduced only when `shape` has a literal 1 there.
    pub fn sum_to(&mut self, x: NodeId, shape: &[Dim], span: Span) -> Result<NodeId, ShapeError> {
        let from = self.ty(x).shape.clone();
        if from == shape {
            return Ok(x);
        }
        if shape.len() > from.len() {
            return Err(ShapeError::BroadcastTo { from: shape.to_vec(), to: from });
        }
        let lead = from.len() - shape.len();
        let mut axes: Vec<usize> = (0..lead).collect();
        for (i, d) in shape.iter().enumerate() {
            let f = &from[lead + i];
            if d.is_one() && !f.is_one() {
                axes.push(lead + i);
            } else if d != f {
                return Err(ShapeError::BroadcastTo { from: shape.to_vec(), to: from });
            }
        }
        let summed = if axes.is_empty() { x } else { self.reduce(ReduceOp::Sum, x, axes, false, span)? };
        self.reshape(summed, shape, span)
    }

    /// Which nodes some output depends on (the outputs included).
    pub fn live_nodes(&self) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        for (_, out) in &self.outputs {
            if let Some(slot) = live.get_mut(out.index()) {
                *slot = true;
            }
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for operand in &self.nodes[i].inputs {
                    if let Some(slot) = live.get_mut(operand.index()) {
                        *slot = true;
                    }
                }
            }
        }
        live
    }
}
