//! Built-ins that cut the last axis: `slice(x, start, stop)` (elements `start..stop`) and
//! `split(x, parts)` (a tuple of `parts` equal pieces, as an LSTM's four gates out of one
//! fused product). Both lower to `slice` nodes; bad bounds are reported at the argument.

use super::{Bound, kind_error};
use crate::diag::{Code, Diag};
use crate::ir::Op;
use crate::sema::lower::{Lowered, Lowerer, Reported};
use crate::sema::value::Value;
use crate::shape::Dim;
use crate::source::Span;

/// The literal size of the last axis of `x`, or a located error.
fn last_axis(lw: &mut Lowerer, name: &str, x: crate::ir::NodeId, span: Span) -> Result<usize, Reported> {
    let ty = lw.ty(x).clone();
    match ty.shape.last() {
        Some(Dim::Const(n)) if *n > 0 => Ok(*n as usize),
        last => {
            let what = match last {
                None => "a scalar has no last axis".to_string(),
                Some(d) => format!("its last axis `{d}` has no size known while compiling"),
            };
            Err(lw.report(
                Diag::error(Code::E0214, format!("`{name}` cannot cut {ty}"), span, what)
                    .with_note(format!("`{name}` works on the last axis, whose size must be a literal")),
            ))
        }
    }
}

/// An integer argument, or a located error.
fn int_arg(lw: &mut Lowerer, v: &Value, span: Span) -> Result<i64, Reported> {
    v.as_int().ok_or_else(|| kind_error(lw, "an integer", v, span))
}

/// `slice(x, start, stop)`: elements `start..stop` of the last axis; negative bounds count
/// from the end, as in Python.
pub(super) fn slice(lw: &mut Lowerer, mut a: Bound, span: Span) -> Lowered {
    let (v, s) = a.take(0);
    let x = lw.expect_tensor(v, s)?;
    let n = last_axis(lw, "slice", x, s)?;
    let (start_v, start_s) = a.take(1);
    let (stop_v, stop_s) = a.take(2);
    let (start, stop) = (int_arg(lw, &start_v, start_s)?, int_arg(lw, &stop_v, stop_s)?);
    let resolve = |i: i64| if i < 0 { i + n as i64 } else { i };
    let (first, end) = (resolve(start), resolve(stop));
    if first < 0 || end > n as i64 || first >= end {
        let where_ = if first < 0 || first >= n as i64 { start_s } else { stop_s };
        return Err(lw.report(
            Diag::error(
                Code::E0214,
                format!("`slice` of {start}..{stop} is not a non-empty part of the last axis (size {n})"),
                where_,
                "out of range",
            )
            .with_note("`slice(x, start, stop)` needs 0 <= start < stop <= size (negative bounds count from the end)"),
        ));
    }
    let (start, len) = (first as usize, (end - first) as usize);
    lw.node(Op::Slice { start, len }, &[x], None, span, &[s])
}

/// `split(x, parts)`: a tuple of `parts` equal pieces of the last axis, in order.
pub(super) fn split(lw: &mut Lowerer, mut a: Bound, span: Span) -> Lowered {
    let (v, s) = a.take(0);
    let x = lw.expect_tensor(v, s)?;
    let n = last_axis(lw, "split", x, s)?;
    let (parts_v, parts_s) = a.take(1);
    let parts = int_arg(lw, &parts_v, parts_s)?;
    if parts <= 0 || n % parts as usize != 0 {
        return Err(lw.report(
            Diag::error(
                Code::E0214,
                format!("`split` cannot cut a last axis of {n} into {parts} equal parts"),
                parts_s,
                "does not divide the size",
            )
            .with_note("the number of parts must be positive and divide the last axis"),
        ));
    }
    let len = n / parts as usize;
    let mut pieces = Vec::with_capacity(parts as usize);
    for p in 0..parts as usize {
        pieces.push(lw.node(Op::Slice { start: p * len, len }, &[x], None, span, &[s])?);
    }
    Ok(Value::Tuple(pieces))
}
