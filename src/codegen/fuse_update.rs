//! The optimizer update fused with the product that computes its gradient, where that
//! pays: a parameter's update then reads each block of its gradient as the product's thread
//! finishes it, still in cache, instead of the whole gradient coming back from memory
//! after the product (and once more for the guard).
//!
//! Which product: the last one before the guard, when it writes the whole dense gradient
//! of a large parameter (an MLP's first layer, `Xᵀ·dZ`: 100 352 values, 400 KB, on the
//! MNIST MLP). The fused instruction runs where the product's update ran first, right after
//! the guard, so that the loss and every other gradient are still checked before any
//! parameter changes; the fused gradient itself is checked before its first block is
//! computed, from the product's operands (`host.rs`: finite and small enough that no sum
//! can overflow), or computed whole and checked when that bound does not hold.
//!
//! Nothing is fused under gradient clipping (the norm needs every gradient first).

use super::instr::{Base, Instr, Ptr};
use crate::ir::NodeId;

/// Gradients from this many elements are fused: below, the update's per-block calls cost
/// more than the memory they save.
const MIN_FUSED_LEN: usize = 1 << 14;

/// Fuses the last product before the guard with its parameter's update (see the module
/// comment) and returns how instruction indices moved: `moved[old] = new`.
pub(super) fn fuse_last_gradient(instrs: &mut Vec<Instr>) -> Option<Vec<usize>> {
    if instrs.iter().any(|i| matches!(i, Instr::Norm { .. })) {
        return None;
    }
    let gi = instrs.iter().position(|i| matches!(i, Instr::Guard { .. }))?;
    let pi = gi.checked_sub(1)?;
    let Instr::Gemm { a, b, c, layouts: [la, lb, lc], .. } = &instrs[pi] else { return None };
    let m = lc.matrix;
    let dense = m.col_stride == 1 && m.row_stride == m.cols;
    if la.batch != 1 || lb.batch != 1 || lc.batch != 1 || !dense || c.base != Base::Arena {
        return None;
    }
    let (a, b, c, len) = (*a, *b, *c, m.rows * m.cols);
    // The update of that gradient, with only other updates between it and the guard.
    let ui = (gi + 1..instrs.len())
        .take_while(|&i| matches!(instrs[i], Instr::Update { .. }))
        .find(|&i| matches!(&instrs[i], Instr::Update { grad, len: l, .. } if *grad == c && *l == len))?;
    let Instr::Update { param, slots, .. } = &instrs[ui] else { return None };
    // The product must not read what the update writes while it runs.
    let written: Vec<Base> = std::iter::once(param).chain(slots).map(|p: &Ptr| p.base).collect();
    if len < MIN_FUSED_LEN || written.contains(&a.base) || written.contains(&b.base) {
        return None;
    }
    let Instr::Guard { values } = &mut instrs[gi] else { return None };
    let at = values.iter().position(|&(_, p, l)| p == c && l == len)?;
    let grad: NodeId = values.remove(at).0;

    let update = instrs.remove(ui);
    let product = instrs.remove(pi);
    // The guard is now at `pi`; the fused instruction follows it.
    instrs.insert(gi, Instr::ProductUpdate { product: Box::new(product), update: Box::new(update), grad });
    // Up to one past the old end, which buffers kept after the step name.
    let moved = (0..instrs.len() + 2)
        .map(|old| match old {
            _ if old < pi => old,
            _ if old == pi || old == ui => gi,
            _ if old == gi => pi,
            _ if old < ui => old,
            _ => old - 1,
        })
        .collect();
    Some(moved)
}
