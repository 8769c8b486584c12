//! NumPy broadcasting over literal and symbolic dimensions.
//!
//! Shapes are aligned at their last axis; each pair of dimensions must be equal, or one of
//! them must be the literal 1. A symbol broadcasts against 1 and against itself only: `B`
//! against `32` is an error, since nothing proves that the batch has 32 rows.

use super::{Dim, Shape};

/// Why two shapes do not broadcast: the axis (counted from the end, 1-based) and its dims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastError {
    pub axis_from_end: usize,
    pub lhs: Dim,
    pub rhs: Dim,
}

/// The broadcast shape of `a` and `b`.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Shape, BroadcastError> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for k in (1..=rank).rev() {
        let da = if k <= a.len() { a[a.len() - k].clone() } else { Dim::Const(1) };
        let db = if k <= b.len() { b[b.len() - k].clone() } else { Dim::Const(1) };
        let d = if da == db || db.is_one() {
            da
        } else if da.is_one() {
            db
        } else {
            return Err(BroadcastError { axis_from_end: k, lhs: da, rhs: db });
        };
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(dims: &[&str]) -> Shape {
        dims.iter().map(|d| d.parse::<i64>().map(Dim::Const).unwrap_or_else(|_| Dim::sym(d))).collect()
    }

    #[test]
    fn aligns_at_the_last_axis() {
        assert_eq!(broadcast_shapes(&s(&["B", "10"]), &s(&["10"])).unwrap(), s(&["B", "10"]));
        assert_eq!(broadcast_shapes(&s(&["B", "1"]), &s(&["3", "1", "5"])).unwrap(), s(&["3", "B", "5"]));
    }

    #[test]
    fn symbols_do_not_unify_with_literals() {
        let err = broadcast_shapes(&s(&["B", "10"]), &s(&["32", "10"])).unwrap_err();
        assert_eq!(err.axis_from_end, 2);
        assert_eq!(err.lhs, Dim::sym("B"));
    }
}
