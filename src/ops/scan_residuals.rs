//! Which forward values the backward loop of a `scan` reads saved rather than recomputes.
//!
//! The backward body (`scan_vjp.rs`) starts as the forward step followed by its
//! derivative. The derivative reads some forward values (a sigmoid's output, the cell
//! state's tanh); recomputing them costs the step's products and activations again, once
//! per step. [`save_residuals`] picks the forward values the derivative needs that change
//! from step to step and are not cheap to rebuild (anything but elementwise arithmetic and
//! layout moves: activations, products, slices, reductions), and turns each into a new
//! sequence input of the backward body; the forward loop stacks them as extra per-step
//! outputs, so memory stays linear in the number of steps. Cheap values are rebuilt from
//! what they read (saved in turn when expensive), and values that do not change per step
//! (built from the captured weights alone) are left in the body.
//!
//! Invariants: the forward nodes of the backward body keep the ids they have in the
//! forward body (`autodiff::grad` keeps forward ids), so the returned ids name the same
//! values in both; a saved node becomes an `input` of the same type, and every other node
//! computes what it computed before.

use crate::ir::{BinaryOp, Graph, InputInfo, NodeId, Op, UnaryOp};

/// Whether rebuilding `op` from its operands costs about as much as reading it saved.
fn cheap(op: &Op) -> bool {
    match op {
        Op::Fill { .. } | Op::Reshape | Op::Broadcast | Op::Cast { .. } | Op::Select => true,
        Op::Unary(u) => matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Not),
        Op::Binary(b) => !matches!(b, BinaryOp::Div | BinaryOp::Pow),
        _ => false,
    }
}

/// Saves the residuals of backward body `g`: forward nodes are `0..forward_len`, inputs
/// with an index in `varying` change per step, and the saved values become inputs
/// `at..at + r` (inputs from `at` on move up by `r`). Returns the saved node ids, in the
/// order of their new inputs.
pub(super) fn save_residuals(
    g: &mut Graph,
    forward_len: usize,
    varying: std::ops::Range<usize>,
    at: usize,
) -> Vec<NodeId> {
    let forward_len = forward_len.min(g.nodes.len());
    let mut changes = vec![false; forward_len];
    for i in 0..forward_len {
        let n = &g.nodes[i];
        changes[i] = match n.op {
            Op::Input { index } => varying.contains(&index),
            _ => n.inputs.iter().any(|o| o.index() < forward_len && changes[o.index()]),
        };
    }
    // Forward values the derivative reads.
    let live = g.live_nodes();
    let mut needed = vec![false; forward_len];
    for (j, n) in g.nodes.iter().enumerate().skip(forward_len) {
        if live[j] {
            n.inputs.iter().filter(|o| o.index() < forward_len).for_each(|o| needed[o.index()] = true);
        }
    }
    for (_, o) in &g.outputs {
        if o.index() < forward_len {
            needed[o.index()] = true;
        }
    }
    // From the last forward node back: save, or rebuild and need its operands.
    let mut saved = Vec::new();
    for i in (0..forward_len).rev() {
        let n = &g.nodes[i];
        if !needed[i] || matches!(n.op, Op::Input { .. } | Op::Param { .. }) {
            continue;
        }
        let storable = n.ty.dtype.is_float() && n.ty.rank() > 0;
        if changes[i] && storable && !cheap(&n.op) {
            saved.push(NodeId(i as u32));
        } else {
            n.inputs.clone().iter().for_each(|o| needed[o.index()] = true);
        }
    }
    saved.reverse();
    if saved.is_empty() {
        return saved;
    }
    let r = saved.len();
    for n in &mut g.nodes {
        if let Op::Input { index } = &mut n.op
            && *index >= at
        {
            *index += r;
        }
    }
    for (pos, &s) in saved.iter().enumerate() {
        let node = &mut g.nodes[s.index()];
        node.op = Op::Input { index: at + pos };
        node.inputs.clear();
        let info = InputInfo { name: format!("residual.{pos}"), ty: node.ty.clone(), span: node.span };
        g.inputs.insert(at + pos, info);
    }
    saved
}
