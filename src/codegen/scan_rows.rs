//! Whether a loop body keeps the rows of its batch apart: row `b` of every output depends
//! only on row `b` of the carries and sequences (and on captures, which have no batch).
//! Such a loop can run as two loops over the two halves of the batch, side by side on two
//! threads (`scan.rs`), with no synchronization between the steps of a half.
//!
//! The check is conservative: each body node is classified as the same for every row
//! (`Uniform`: no batch axis, computed from captures and constants), row-wise (`Rows`:
//! leading axis the batch, rows computed independently) or `Mixed`; an op not known to
//! keep rows apart is `Mixed`, and a `Mixed` output rules the split out. Random draws are
//! `Mixed` (their values depend on the position in the whole batch).

use crate::ir::{Graph, Op};
use crate::shape::Dim;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Uniform,
    Rows,
    Mixed,
}

/// Whether `body` (a scan body with `carries` carries then `sequences` per-step inputs
/// first among its inputs) computes every output row from the same row of its inputs.
pub(super) fn rows_independent(body: &Graph, carries: usize, sequences: usize) -> bool {
    let timed = carries + sequences;
    let Some(batch) = body.inputs.first().and_then(|i| i.ty.shape.first()).cloned() else { return false };
    if !matches!(batch, Dim::Sym(_)) {
        return false;
    }
    // Leading axis the batch, and no other axis.
    let rows_shape = |shape: &[Dim]| shape.first() == Some(&batch) && !shape[1..].contains(&batch);
    let mut kind = vec![Kind::Mixed; body.nodes.len()];
    for id in body.ids() {
        let node = body.node(id);
        let shape = &node.ty.shape;
        let of = |i: usize| kind[node.inputs[i].index()];
        let inputs: Vec<Kind> = (0..node.inputs.len()).map(of).collect();
        let is_rows = rows_shape(shape);
        // Every row-wise operand has the node's rank (its rows line up with the node's), and
        // every uniform one broadcasts over the batch (a lower rank, or a leading 1).
        let aligned = node.inputs.iter().zip(&inputs).all(|(&x, k)| {
            let s = &body.ty(x).shape;
            match k {
                Kind::Rows => s.len() == shape.len(),
                Kind::Uniform => s.len() < shape.len() || s.first() == Some(&Dim::Const(1)),
                Kind::Mixed => false,
            }
        });
        kind[id.index()] = match &node.op {
            Op::Input { index } if *index < timed => {
                if is_rows {
                    Kind::Rows
                } else {
                    Kind::Mixed
                }
            }
            Op::Random { .. } => Kind::Mixed,
            _ if inputs.contains(&Kind::Mixed) => Kind::Mixed,
            _ if !shape.contains(&batch) && inputs.iter().all(|&k| k == Kind::Uniform) => Kind::Uniform,
            _ if !is_rows => Kind::Mixed,
            Op::Fill { .. } => Kind::Rows,
            Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast { .. } | Op::Broadcast if aligned => {
                Kind::Rows
            }
            // Along the last axis, which is not the batch's.
            Op::Slice { .. } | Op::Pad { .. } if shape.len() >= 2 && inputs == [Kind::Rows] => Kind::Rows,
            Op::Reduce { axes, .. } if !axes.contains(&0) && inputs == [Kind::Rows] => Kind::Rows,
            Op::Transpose { perm } if perm.first() == Some(&0) && inputs == [Kind::Rows] => Kind::Rows,
            // Row-major, the leading axis kept: each row's elements stay in that row.
            Op::Reshape if inputs == [Kind::Rows] => Kind::Rows,
            Op::MatMul if shape.len() == 2 && inputs == [Kind::Rows, Kind::Uniform] => Kind::Rows,
            Op::MatMul if shape.len() >= 3 && aligned => Kind::Rows,
            _ => Kind::Mixed,
        };
    }
    !body.outputs.is_empty() && body.outputs.iter().all(|&(_, o)| kind[o.index()] == Kind::Rows)
}
