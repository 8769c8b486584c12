//! How a kernel reads a value over its 2-D domain: the four access patterns of
//! `codegen::Access`, derived from shapes.
//!
//! A kernel's domain is a shape split in two at `split`: the leading axes `..split` make the
//! rows and the trailing axes `split..` the columns. A value read with `Full` has the
//! domain's elements in row-major order; `Row` one element per column, `Col` one per row,
//! `Scalar` one in all. Symbols compare by name only, so a derived pattern holds for every
//! binding of the symbols: a literal 1 stays 1, and two equal symbols stay equal.

use crate::codegen::Access;
use crate::shape::Dim;

/// The shape without its leading literal 1s (they do not change the row-major order).
fn strip_ones(shape: &[Dim]) -> &[Dim] {
    let lead = shape.iter().take_while(|d| d.is_one()).count();
    &shape[lead..]
}

/// Whether two shapes have the same elements in the same order for every binding.
pub(crate) fn same_layout(a: &[Dim], b: &[Dim]) -> bool {
    strip_ones(a) == strip_ones(b)
}

/// How a value of shape `from`, broadcast (NumPy rules) to `domain`, is read over `domain`
/// split at `split`; `None` when the broadcast is none of the four patterns (a middle
/// axis stretched, say).
pub fn broadcast_access(from: &[Dim], domain: &[Dim], split: usize) -> Option<Access> {
    if from.iter().all(Dim::is_one) {
        return Some(Access::Scalar);
    }
    if from.len() > domain.len() {
        let stripped = strip_ones(from);
        return (stripped.len() <= domain.len()).then(|| broadcast_access(stripped, domain, split))?;
    }
    let pad = domain.len() - from.len();
    let aligned = |i: usize| if i < pad { &Dim::Const(1) } else { &from[i - pad] };
    let (mut lead_same, mut lead_ones, mut trail_same, mut trail_ones) = (true, true, true, true);
    for (i, d) in domain.iter().enumerate() {
        let a = aligned(i);
        let (same, ones) =
            if i < split { (&mut lead_same, &mut lead_ones) } else { (&mut trail_same, &mut trail_ones) };
        *same &= a == d;
        *ones &= a.is_one();
    }
    match (lead_same, lead_ones, trail_same, trail_ones) {
        (true, _, true, _) => Some(Access::Full),
        (_, true, true, _) => Some(Access::Row),
        (true, _, _, true) => Some(Access::Col),
        _ => None,
    }
}

/// How operand `operand` of an elementwise node of shape `node` is read when the node
/// itself is read with `access` over `domain` split at `split`. The operand broadcasts to
/// the node's shape; a reshape passes its operand with the same shape as the node's.
pub fn operand_access(
    access: Access,
    operand: &[Dim],
    node: &[Dim],
    domain: &[Dim],
    split: usize,
) -> Option<Access> {
    if same_layout(operand, node) {
        return Some(access);
    }
    if operand.iter().all(Dim::is_one) {
        return Some(Access::Scalar);
    }
    if access == Access::Full && same_layout(node, domain) {
        return broadcast_access(operand, domain, split);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dims: &[&str]) -> Vec<Dim> {
        dims.iter().map(|d| d.parse::<i64>().map(Dim::Const).unwrap_or_else(|_| Dim::sym(d))).collect()
    }

    #[test]
    fn bias_rows_and_per_row_columns() {
        let domain = shape(&["B", "10"]);
        assert_eq!(broadcast_access(&shape(&["10"]), &domain, 1), Some(Access::Row));
        assert_eq!(broadcast_access(&shape(&["1", "10"]), &domain, 1), Some(Access::Row));
        assert_eq!(broadcast_access(&shape(&["B", "1"]), &domain, 1), Some(Access::Col));
        assert_eq!(broadcast_access(&shape(&["B", "10"]), &domain, 1), Some(Access::Full));
        assert_eq!(broadcast_access(&shape(&[]), &domain, 1), Some(Access::Scalar));
        assert_eq!(broadcast_access(&shape(&["1"]), &domain, 1), Some(Access::Scalar));
    }

    #[test]
    fn a_symbol_never_matches_a_literal() {
        // `[B]` against `[B, 10]` would align B with 10: not one of the patterns.
        assert_eq!(broadcast_access(&shape(&["B"]), &shape(&["B", "10"]), 1), None);
        // A stretched middle axis is not a pattern either.
        assert_eq!(broadcast_access(&shape(&["4", "1", "3"]), &shape(&["4", "5", "3"]), 2), None);
    }

    #[test]
    fn reduction_domains_split_anywhere() {
        let domain = shape(&["B", "4", "5"]);
        assert_eq!(broadcast_access(&shape(&["4", "5"]), &domain, 1), Some(Access::Row));
        assert_eq!(broadcast_access(&shape(&["B", "1", "1"]), &domain, 1), Some(Access::Col));
        assert_eq!(broadcast_access(&shape(&["B", "4", "1"]), &domain, 2), Some(Access::Col));
    }

    #[test]
    fn operands_follow_their_node() {
        let domain = shape(&["B", "10"]);
        // A [B] node read per row passes the pattern to a same-shaped operand...
        assert_eq!(
            operand_access(Access::Col, &shape(&["B"]), &shape(&["B"]), &domain, 1),
            Some(Access::Col)
        );
        // ...and a scalar operand is a scalar whatever the node.
        assert_eq!(
            operand_access(Access::Col, &shape(&[]), &shape(&["B"]), &domain, 1),
            Some(Access::Scalar)
        );
        // A bias broadcast inside a full-domain node is a row.
        assert_eq!(operand_access(Access::Full, &shape(&["10"]), &domain, &domain, 1), Some(Access::Row));
        // A broadcast inside a node that is itself read per row is not expressible.
        assert_eq!(
            operand_access(Access::Col, &shape(&["1"]), &shape(&["B", "3"]), &domain, 1),
            Some(Access::Scalar)
        );
        assert_eq!(operand_access(Access::Col, &shape(&["3"]), &shape(&["B", "3"]), &domain, 1), None);
    }
}
