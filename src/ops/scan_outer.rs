//! Weight gradients of a backward loop as one product after the loop.
//!
//! A captured weight `θ` read as `p_t @ θ` in the forward step gets, in the backward body,
//! the per-step term `p_tᵀ · q_t` (`q_t` the cotangent of the product), summed over the
//! steps in an accumulator carry. Summed over the steps and the batch, that is one product
//! of the stacked values: Σ_t p_tᵀ q_t = Σ_b P[b]ᵀ Q[b] with `P [B, T, K]` and `Q [B, T, N]`.
//! [`hoist_weight_products`] takes such accumulators out of the body: `p_t` and `q_t`
//! become stacked results (or are read from the sequences the loop already steps over), and
//! `scan_vjp.rs` builds the product after the loop. One product over all steps replaces a
//! small one per step and the accumulator's copy between steps.
//!
//! Invariant: only an accumulator whose body output is exactly `acc + transpose(p) @ q`,
//! with `p` and `q` of rank 2 and the product of the accumulator's type, is hoisted; the
//! others stay in the loop. Removing an accumulator removes its body input and output and
//! renumbers the later inputs.

use crate::ir::{BinaryOp, Graph, NodeId, Op};

/// Where a stacked per-step value comes from after the loop.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Stacked {
    /// The backward loop's operand (body input) of this index, a sequence.
    Operand(usize),
    /// Body output `j`, stacked by the loop.
    Output(usize),
}

/// One accumulator taken out of the loop: the gradient of capture `cap` (its position in
/// the accumulators) is Σ_b P[b]ᵀ Q[b].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Hoisted {
    pub cap: usize,
    pub p: Stacked,
    pub q: Stacked,
}

/// `transpose(p) @ q` with `p`, `q` of rank 2: `(p, q)`.
fn transposed_product(g: &Graph, d: NodeId) -> Option<(NodeId, NodeId)> {
    let n = g.node(d);
    if n.op != Op::MatMul {
        return None;
    }
    let (t, q) = (n.inputs[0], n.inputs[1]);
    let tn = g.node(t);
    let swaps = matches!(&tn.op, Op::Transpose { perm } if perm == &[1, 0]);
    let p = *tn.inputs.first()?;
    (swaps && g.ty(p).rank() == 2 && g.ty(q).rank() == 2).then_some((p, q))
}

/// Takes the hoistable accumulators out of backward body `g`, whose accumulators are
/// carries `k..k + nc` (inputs and outputs) and whose sequences are inputs `sequences`.
/// Adds stacked outputs for values that are not already sequences or outputs.
pub(super) fn hoist_weight_products(
    g: &mut Graph,
    k: usize,
    nc: usize,
    sequences: std::ops::Range<usize>,
) -> Vec<Hoisted> {
    let mut found = Vec::new();
    for pos in 0..nc {
        let Some(&(_, out)) = g.outputs.get(k + pos) else { continue };
        let n = g.node(out);
        if n.op != Op::Binary(BinaryOp::Add) || g.ty(out) != &g.inputs[k + pos].ty {
            continue;
        }
        let is_acc = |id: NodeId| g.node(id).op == (Op::Input { index: k + pos });
        let d = match (n.inputs[0], n.inputs[1]) {
            (a, d) if is_acc(a) => d,
            (d, a) if is_acc(a) => d,
            _ => continue,
        };
        if g.ty(d) != g.ty(out) {
            continue;
        }
        if let Some((p, q)) = transposed_product(g, d) {
            found.push((pos, p, q));
        }
    }
    let mut hoisted = Vec::with_capacity(found.len());
    for &(pos, p, q) in &found {
        let source = |g: &mut Graph, id: NodeId| match g.node(id).op {
            Op::Input { index } if sequences.contains(&index) => Stacked::Operand(index),
            _ => match g.outputs.iter().position(|&(_, o)| o == id) {
                Some(j) if j >= k + nc => Stacked::Output(j),
                _ => {
                    g.outputs.push((format!("stack.{}", g.outputs.len()), id));
                    Stacked::Output(g.outputs.len() - 1)
                }
            },
        };
        let (p, q) = (source(g, p), source(g, q));
        hoisted.push(Hoisted { cap: pos, p, q });
    }
    // Remove the hoisted accumulators' inputs and outputs, last first.
    let mut gone: Vec<usize> = found.iter().map(|&(pos, _, _)| k + pos).collect();
    gone.sort_unstable();
    for &at in gone.iter().rev() {
        g.outputs.remove(at);
        g.inputs.remove(at);
        for n in &mut g.nodes {
            match &mut n.op {
                // The accumulator's node is dead now; a constant lets dead-code elimination
                // drop it (inputs always stay).
                Op::Input { index } if *index == at => n.op = Op::Fill { value: 0.0 },
                Op::Input { index } if *index > at => *index -= 1,
                _ => {}
            }
        }
    }
    let shift = |i: usize| i - gone.iter().filter(|&&r| r < i).count();
    for h in &mut hoisted {
        for s in [&mut h.p, &mut h.q] {
            *s = match *s {
                Stacked::Operand(i) => Stacked::Operand(shift(i)),
                Stacked::Output(j) => Stacked::Output(shift(j)),
            };
        }
    }
    hoisted
}
