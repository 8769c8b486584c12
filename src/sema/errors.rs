//! Shape errors of the op registry rendered as located diagnostics.

use crate::diag::{Code, Diag};
use crate::ops::ShapeError;
use crate::shape::{TensorType, fmt_shape};
use crate::source::Span;

/// The diagnostic for a shape rule that refused its operands: the primary label on the
/// operation, a secondary label on each operand saying its type.
pub fn shape_error(e: &ShapeError, span: Span, operand_spans: &[Span], types: &[TensorType]) -> Diag {
    let mut d = match e {
        ShapeError::Broadcast { op, lhs, rhs, err } => Diag::error(
            Code::E0201,
            format!(
                "shapes {} and {} do not broadcast in `{op}`",
                fmt_shape(&lhs.shape),
                fmt_shape(&rhs.shape)
            ),
            span,
            format!("{} against {} at axis -{}", err.lhs, err.rhs, err.axis_from_end),
        )
        .with_note("dimensions must be equal, or one of them must be 1"),
        ShapeError::MatMul { lhs, rhs, reason } => {
            let d = Diag::error(
                Code::E0202,
                "shape mismatch in matrix product",
                span,
                format!("cannot multiply {lhs} by {rhs}: {reason}"),
            )
            .with_note("`a @ b` needs [.., M, K] @ [.., K, N]");
            if lhs.rank() > 2 && rhs.rank() == 2 {
                d.with_help("flatten the input first, e.g. `x |> Flatten() |> Dense(...)`")
            } else {
                d
            }
        }
        ShapeError::DTypeMismatch { op, lhs, rhs } => Diag::error(
            Code::E0203,
            format!("`{op}` mixes element types {lhs} and {rhs}"),
            span,
            "element types differ",
        )
        .with_help("convert one side with `cast(x, f32)`"),
        ShapeError::DType { op, expected, got } => Diag::error(
            Code::E0203,
            format!("`{op}` expects {expected}, got {got}"),
            span,
            format!("this operand is {got}"),
        ),
        ShapeError::Axis { op, axis, rank } => Diag::error(
            Code::E0206,
            format!("axis {axis} is out of range in `{op}`"),
            span,
            format!("the tensor has rank {rank}"),
        ),
        ShapeError::Reshape { from, to } => Diag::error(
            Code::E0204,
            format!("cannot reshape {} into {}", fmt_shape(from), fmt_shape(to)),
            span,
            "the number of elements differs",
        )
        .with_help("`-1` in the target shape stands for the one dimension that makes the counts agree"),
        ShapeError::BroadcastTo { from, to } => Diag::error(
            Code::E0201,
            format!("cannot broadcast {} to {}", fmt_shape(from), fmt_shape(to)),
            span,
            "does not broadcast",
        ),
        ShapeError::Permutation { perm, rank } => Diag::error(
            Code::E0206,
            format!("{perm:?} is not a permutation of {rank} axes"),
            span,
            "invalid permutation",
        ),
        ShapeError::Window { op, input, reason } => {
            Diag::error(Code::E0213, format!("`{op}` cannot take {input}"), span, reason.clone())
                .with_note("inputs are `[B, H, W, C]` with literal H and W; kernels are `[KH, KW, C, F]`")
        }
        ShapeError::Slice { .. } => Diag::error(Code::E0214, e.to_string(), span, "invalid slice")
            .with_note("`slice` and `split` work on the last axis, whose size must be a literal"),
        ShapeError::WindowTooLarge { .. } => {
            Diag::error(Code::E0212, e.to_string(), span, "the window does not fit")
                .with_help("use `padding: \"same\"` or a smaller window")
        }
        ShapeError::NotDifferentiable { .. } => Diag::error(Code::E0301, e.to_string(), span, "here"),
        ShapeError::Arity { .. } | ShapeError::MissingTarget { .. } | ShapeError::Scan { .. } => {
            Diag::error(Code::E0208, e.to_string(), span, "invalid operation")
        }
    };
    for (s, t) in operand_spans.iter().zip(types) {
        if *s != span {
            d = d.with_label(*s, format!("this is {t}"));
        }
    }
    d
}
