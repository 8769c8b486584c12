//! The IR verifier: checks the invariants every pass must keep.

use super::{Graph, Op};
use crate::ops;

/// A broken invariant, with the offending node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("node %{node} uses %{operand}, which is not defined before it")]
    NotTopological { node: usize, operand: usize },
    #[error("node %{node}: {what} index {index} is out of range")]
    BadIndex { node: usize, what: &'static str, index: usize },
    #[error("node %{node}: the stored type {stored} differs from the inferred {inferred}")]
    TypeMismatch { node: usize, stored: String, inferred: String },
    #[error("node %{node}: {error}")]
    Shape { node: usize, error: Box<ops::ShapeError> },
    #[error("output `{name}` names node %{node}, which does not exist")]
    BadOutput { name: String, node: usize },
}

pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    for (i, n) in g.nodes.iter().enumerate() {
        for operand in &n.inputs {
            if operand.index() >= i {
                return Err(VerifyError::NotTopological { node: i, operand: operand.index() });
            }
        }
        let leaf_type = match n.op {
            Op::Input { index } => {
                let info =
                    g.inputs.get(index).ok_or(VerifyError::BadIndex { node: i, what: "input", index })?;
                Some(&info.ty)
            }
            Op::Param { index } => {
                let info =
                    g.params.get(index).ok_or(VerifyError::BadIndex { node: i, what: "param", index })?;
                Some(&info.ty)
            }
            _ => None,
        };
        let in_types: Vec<_> = n.inputs.iter().map(|&o| g.ty(o)).collect();
        let inferred = ops::infer(&n.op, &in_types, Some(leaf_type.unwrap_or(&n.ty)))
            .map_err(|error| VerifyError::Shape { node: i, error: Box::new(error) })?;
        if inferred != n.ty {
            return Err(VerifyError::TypeMismatch {
                node: i,
                stored: n.ty.to_string(),
                inferred: inferred.to_string(),
            });
        }
    }
    for (name, id) in &g.outputs {
        if id.index() >= g.nodes.len() {
            return Err(VerifyError::BadOutput { name: name.clone(), node: id.index() });
        }
    }
    Ok(())
}
