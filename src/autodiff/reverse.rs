//! The reverse sweep: from the loss back to the wanted parameters.
//!
//! Invariants of the result: the forward nodes keep their ids, the original outputs are
//! kept in order, and one output `grad.<param name>` per requested parameter follows them,
//! with the parameter's type. Backward nodes carry the span of the forward node whose
//! rule made them. Only nodes that both lead to the loss and depend on a wanted parameter
//! get a gradient, so input data and frozen state never get one; backward nodes that no
//! output uses (gradients of operands nobody wants) are removed before returning.

use crate::ir::{BinaryOp, Graph, Node, NodeId, Op};
use crate::ops::{self, ShapeError};
use crate::shape::TensorType;

/// A table of derivative rules, one call per node: see [`crate::ops::vjp`] for the contract.
pub trait VjpRules {
    fn vjp(
        &self,
        graph: &mut Graph,
        node: NodeId,
        grad_out: NodeId,
    ) -> Result<Vec<Option<NodeId>>, ShapeError>;
}

/// The rules of the op registry.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpRules;

impl VjpRules for OpRules {
    fn vjp(
        &self,
        graph: &mut Graph,
        node: NodeId,
        grad_out: NodeId,
    ) -> Result<Vec<Option<NodeId>>, ShapeError> {
        ops::vjp(graph, node, grad_out)
    }
}

/// Why a gradient graph could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GradError {
    #[error("the loss %{} is not a node of the graph", loss.0)]
    NoSuchLoss { loss: NodeId },
    #[error("the loss must be a float scalar, but %{} has type {ty}", loss.0)]
    LossNotScalar { loss: NodeId, ty: TensorType },
    #[error("there is no parameter {index}: the graph has {count}")]
    NoSuchParam { index: usize, count: usize },
    #[error("parameter `{name}` is frozen state, not trained: it gets no gradient")]
    FrozenParam { name: String },
    #[error("parameter `{name}` has type {ty}: only float parameters have gradients")]
    NotFloatParam { name: String, ty: TensorType },
    #[error("derivative of `{op}` at %{}: {error}", node.0)]
    Rule { node: NodeId, op: String, error: Box<ShapeError> },
    #[error("the derivative rule of `{op}` at %{} returned {got} gradients for {expected} operands", node.0)]
    RuleArity { node: NodeId, op: String, expected: usize, got: usize },
    #[error("the derivative rule of `{op}` at %{} gave operand {operand} a gradient of type {got}, not {expected}", node.0)]
    RuleType { node: NodeId, op: String, operand: usize, expected: TensorType, got: TensorType },
}

/// The forward graph plus the nodes computing d`loss`/d`params[i]` for each `i` in `wrt`,
/// with the registry's derivative rules.
pub fn grad(graph: &Graph, loss: NodeId, wrt: &[usize]) -> Result<Graph, GradError> {
    grad_with(graph, loss, wrt, &OpRules)
}

/// [`grad`] with another table of derivative rules (tests inject wrong ones).
pub fn grad_with(
    graph: &Graph,
    loss: NodeId,
    wrt: &[usize],
    rules: &dyn VjpRules,
) -> Result<Graph, GradError> {
    check_request(graph, loss, wrt)?;
    let needed = needed_nodes(graph, loss, wrt);
    let forward_len = graph.nodes.len();
    let mut g = graph.clone();
    let mut adjoint: Vec<Option<NodeId>> = vec![None; forward_len];
    let loss_node = graph.node(loss);
    adjoint[loss.index()] = Some(g.scalar(1.0, loss_node.ty.dtype, loss_node.span));
    for i in (0..=loss.index()).rev() {
        let (id, Some(grad_out)) = (NodeId(i as u32), adjoint[i]) else { continue };
        let node = graph.node(id);
        if !needed[i] || node.inputs.is_empty() {
            continue;
        }
        let rule_error =
            |error| GradError::Rule { node: id, op: node.op.to_string(), error: Box::new(error) };
        let grads = rules.vjp(&mut g, id, grad_out).map_err(rule_error)?;
        if grads.len() != node.inputs.len() {
            let (expected, got) = (node.inputs.len(), grads.len());
            return Err(GradError::RuleArity { node: id, op: node.op.to_string(), expected, got });
        }
        for (k, (&operand, grad)) in node.inputs.iter().zip(grads).enumerate() {
            let Some(grad) = grad else { continue };
            if !needed[operand.index()] {
                continue;
            }
            if g.ty(grad) != g.ty(operand) {
                let (expected, got) = (g.ty(operand).clone(), g.ty(grad).clone());
                return Err(GradError::RuleType {
                    node: id,
                    op: node.op.to_string(),
                    operand: k,
                    expected,
                    got,
                });
            }
            // Gradients from several uses add up: d/dx f(x, x) = ∂₁f + ∂₂f.
            let total = match adjoint[operand.index()] {
                None => grad,
                Some(previous) => {
                    let span = graph.node(operand).span;
                    g.binary(BinaryOp::Add, previous, grad, span).map_err(rule_error)?
                }
            };
            adjoint[operand.index()] = Some(total);
        }
    }
    for &p in wrt {
        let info = &graph.params[p];
        let mut total: Option<NodeId> = None;
        for id in graph.ids().filter(|&id| graph.node(id).op == Op::Param { index: p }) {
            if let Some(a) = adjoint[id.index()] {
                total =
                    Some(match total {
                        None => a,
                        Some(t) => g.binary(BinaryOp::Add, t, a, info.span).map_err(|error| {
                            GradError::Rule { node: id, op: "param".into(), error: Box::new(error) }
                        })?,
                    });
            }
        }
        // A parameter the loss does not depend on has a zero gradient.
        let total = total.unwrap_or_else(|| g.fill(0.0, info.ty.dtype, info.ty.shape.clone(), info.span));
        g.outputs.push((format!("grad.{}", info.name), total));
    }
    let g = prune_backward(g, forward_len);
    crate::ir::debug_verify(&g, "autodiff::grad");
    Ok(g)
}

fn check_request(graph: &Graph, loss: NodeId, wrt: &[usize]) -> Result<(), GradError> {
    let ty = &graph.nodes.get(loss.index()).ok_or(GradError::NoSuchLoss { loss })?.ty;
    if ty.rank() != 0 || !ty.dtype.is_float() {
        return Err(GradError::LossNotScalar { loss, ty: ty.clone() });
    }
    for &index in wrt {
        let info =
            graph.params.get(index).ok_or(GradError::NoSuchParam { index, count: graph.params.len() })?;
        if !info.trainable {
            return Err(GradError::FrozenParam { name: info.name.clone() });
        }
        if !info.ty.dtype.is_float() {
            return Err(GradError::NotFloatParam { name: info.name.clone(), ty: info.ty.clone() });
        }
    }
    Ok(())
}

/// The nodes a gradient flows through: those the loss depends on that depend on a wanted
/// parameter themselves.
fn needed_nodes(graph: &Graph, loss: NodeId, wrt: &[usize]) -> Vec<bool> {
    let n = graph.nodes.len();
    let mut depends = vec![false; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        depends[i] = match node.op {
            Op::Param { index } => wrt.contains(&index),
            _ => node.inputs.iter().any(|o| depends[o.index()]),
        };
    }
    let mut reaches_loss = vec![false; n];
    reaches_loss[loss.index()] = true;
    for i in (0..=loss.index()).rev() {
        if reaches_loss[i] {
            for o in &graph.nodes[i].inputs {
                reaches_loss[o.index()] = true;
            }
        }
    }
    (0..n).map(|i| depends[i] && reaches_loss[i]).collect()
}

/// Drops the backward nodes (those at `forward_len` and after) that no output uses; the
/// forward nodes stay as they were.
fn prune_backward(mut g: Graph, forward_len: usize) -> Graph {
    let live = g.live_nodes();
    let mut remap: Vec<NodeId> = (0..forward_len as u32).map(NodeId).collect();
    let backward: Vec<Node> = g.nodes.drain(forward_len..).collect();
    for (k, mut node) in backward.into_iter().enumerate() {
        if live[forward_len + k] {
            node.inputs = node.inputs.iter().map(|o| remap[o.index()]).collect();
            remap.push(NodeId(g.nodes.len() as u32));
            g.nodes.push(node);
        } else {
            // Never read: nothing live uses a dead node.
            remap.push(NodeId(u32::MAX));
        }
    }
    for (_, out) in &mut g.outputs {
        *out = remap[out.index()];
    }
    g
}
