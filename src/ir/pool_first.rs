//! Max pooling moved ahead of the monotone maps that feed it: `max_pool(relu(conv + b))`
//! becomes `relu(max_pool(conv) + b)`, so the bias, the activation and their derivatives
//! run on the pooled tensor (a quarter of the elements behind a 2 × 2 window) instead of
//! the convolution's whole output.
//!
//! Why it is exact: for a map `g` that is non-decreasing in its argument and the same at
//! every position of a window, `max_i g(x_i) = g(max_i x_i)`. Rounding is monotone too
//! (`fl(x + b)` never decreases as `x` grows), so the forward values are bit for bit the
//! same. The maps taken are `x + c`, `x − c`, `max(x, c)`, `min(x, c)`, `exp`, `tanh` and
//! `sigmoid`, where the other operand `c` does not vary over the pooled axes (a bias per
//! channel, a scalar), and every node of the chain has no other user (otherwise the
//! unpooled values are needed anyway). Gradients are the same except at ties that `g`
//! creates and `x` does not (several inputs of a window at relu's zero): the original
//! routes the gradient to the first of the tied `g(x_i)`, this form to the largest `x_i`.
//!
//! The pass runs on a model's graph before differentiation, when a training step or a
//! prediction is prepared (not in `dnnc ir --stage typed`, which shows the program as
//! written).

use super::simplify::{Rebuild, eliminate_dead_code};
use super::{BinaryOp, Graph, Node, NodeId, Op, PoolKind, UnaryOp};
use crate::ops;
use crate::shape::Dim;

/// The graph with every eligible max pooling moved ahead of its chain of monotone maps
/// (dead nodes left behind are dropped).
pub fn pool_first(graph: &Graph) -> Graph {
    let uses = graph.use_counts();
    let mut r = Rebuild::new(graph);
    let mut moved = false;
    for node in &graph.nodes {
        let rewritten = monotone_chain(graph, node, &uses)
            .and_then(|(x, chain)| pooled_then_mapped(&mut r.out, node, r.map[x.index()], &chain, &r.map));
        moved |= rewritten.is_some();
        // A chain whose types do not work out (not expected) stays as written; the nodes
        // it emitted are dead and dropped.
        let id = rewritten.unwrap_or_else(|| {
            let renamed = r.renamed(node);
            r.emit(renamed)
        });
        r.map.push(id);
    }
    let out = r.finish("pool_first");
    if moved { eliminate_dead_code(&out) } else { out }
}

/// A link of a chain: a map and which of its operands the chain runs through.
type Link<'g> = (&'g Node, usize);

/// For a max pooling `pool`, the value `x` it can pool first and the chain of maps from
/// `x` to its input, innermost first.
fn monotone_chain<'g>(graph: &'g Graph, pool: &Node, uses: &[usize]) -> Option<(NodeId, Vec<Link<'g>>)> {
    if !matches!(pool.op, Op::Pool2D { kind: PoolKind::Max, .. }) {
        return None;
    }
    let mut chain = Vec::new();
    let mut at = pool.inputs[0];
    while uses[at.index()] == 1 {
        let node = graph.node(at);
        let Some(k) = monotone_operand(graph, node) else { break };
        chain.push((node, k));
        at = node.inputs[k];
    }
    chain.reverse();
    (!chain.is_empty()).then_some((at, chain))
}

/// Which operand a node is a non-decreasing function of, when the node is one of the
/// module's maps and its other operand does not vary over the pooled axes (1 and 2 of
/// `[B, H, W, C]`).
fn monotone_operand(graph: &Graph, node: &Node) -> Option<usize> {
    let rank = node.ty.shape.len();
    let uniform_over_window = |c: NodeId| {
        let shape = &graph.ty(c).shape;
        // NumPy broadcasting aligns the operands' last axes.
        (1..=2).all(|axis| match (axis + shape.len()).checked_sub(rank) {
            Some(a) => shape[a] == Dim::Const(1),
            None => true,
        })
    };
    let full = |v: NodeId| graph.ty(v).shape == node.ty.shape;
    match (&node.op, node.inputs.as_slice()) {
        (Op::Unary(UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sigmoid), [_]) => Some(0),
        (Op::Binary(BinaryOp::Add | BinaryOp::Max | BinaryOp::Min), &[a, b]) => {
            if full(a) && uniform_over_window(b) {
                Some(0)
            } else if full(b) && uniform_over_window(a) {
                Some(1)
            } else {
                None
            }
        }
        (Op::Binary(BinaryOp::Sub), &[a, b]) => (full(a) && uniform_over_window(b)).then_some(0),
        _ => None,
    }
}

/// Emits `pool` over `x` (already in `out`), then the chain's maps over the pooled value
/// with their other operands renamed by `map`; returns the last, which has `pool`'s type.
fn pooled_then_mapped(
    out: &mut Graph,
    pool: &Node,
    x: NodeId,
    chain: &[Link<'_>],
    map: &[NodeId],
) -> Option<NodeId> {
    let mut value = x;
    let links = std::iter::once((pool, 0)).chain(chain.iter().copied());
    for (node, through) in links {
        let mut inputs: Vec<NodeId> = node.inputs.iter().map(|i| map[i.index()]).collect();
        inputs[through] = value;
        let types: Vec<_> = inputs.iter().map(|&i| out.ty(i)).collect();
        let ty = ops::infer(&node.op, &types, None).ok()?;
        value = out.push(node.op.clone(), inputs, ty, node.span);
    }
    (out.ty(value) == &pool.ty).then_some(value)
}
