//! Built-ins for convolutional layers and layer state: `conv2d`, `max_pool2d`,
//! `avg_pool2d` and `update_state`.
//!
//! Window arguments (`window`, `stride`, `dilation`) are a positive integer, used for
//! both spatial axes, or a pair `[rows, columns]`; `padding` is `"valid"` (the default) or
//! `"same"`. A window that does not fit its input is reported with its own code (E0212).
//!
//! `update_state(s, v)` records, in training graphs only, that the layer state `s` takes
//! the value `v` after the step: the graph gets an output `state.<name of s>` holding `v`
//! (a later update of the same state replaces an earlier one). Evaluation graphs ignore
//! it. Either way the call's value is `v`.

use super::{Bound, kind_error};
use crate::diag::{Code, Diag};
use crate::ir::{NodeId, Op, Padding, PoolKind};
use crate::ops::ShapeError;
use crate::sema::errors;
use crate::sema::lower::{Lowered, Lowerer, Reported};
use crate::sema::value::Value;
use crate::shape::TensorType;
use crate::source::Span;

/// `conv2d(x, kernel, stride: 1, padding: "valid", dilation: 1)`.
pub(super) fn conv2d(lw: &mut Lowerer, mut a: Bound, span: Span) -> Lowered {
    let (xv, xs) = a.take(0);
    let (kv, ks) = a.take(1);
    let x = lw.expect_tensor(xv, xs)?;
    let k = lw.expect_tensor(kv, ks)?;
    let stride = pair_arg(lw, "stride", a.get(2), [1, 1])?;
    let padding = padding_arg(lw, a.get(3))?;
    let dilation = pair_arg(lw, "dilation", a.get(4), [1, 1])?;
    add_windowed(lw, Op::Conv2D { stride, padding, dilation }, &[x, k], span, &[xs, ks], Some(ks))
}

/// `max_pool2d(x, window, stride: window, padding: "valid")` and `avg_pool2d(...)`.
pub(super) fn pool(lw: &mut Lowerer, kind: PoolKind, mut a: Bound, span: Span) -> Lowered {
    let (xv, xs) = a.take(0);
    let x = lw.expect_tensor(xv, xs)?;
    let window = pair_arg(lw, "window", a.get(1), [2, 2])?;
    let stride = pair_arg(lw, "stride", a.get(2), window)?;
    let padding = padding_arg(lw, a.get(3))?;
    let window_span = a.get(1).map(|(_, s)| *s);
    add_windowed(lw, Op::Pool2D { kind, window, stride, padding }, &[x], span, &[xs], window_span)
}

/// `update_state(state, value)`: see the module header.
pub(super) fn update_state(lw: &mut Lowerer, mut a: Bound) -> Lowered {
    let (sv, ss) = a.take(0);
    let (vv, vs) = a.take(1);
    let state = lw.expect_tensor(sv, ss)?;
    let value = lw.expect_tensor(vv, vs)?;
    let info = match lw.graph.node(state).op {
        Op::Param { index } => lw.graph.params.get(index).filter(|p| !p.trainable).cloned(),
        _ => None,
    };
    let Some(info) = info else {
        return Err(lw.report(
            Diag::error(Code::E0108, "`update_state` needs a layer's `state` tensor", ss, "not a `state`")
                .with_note("parameters are updated by the optimizer; only `state` members are assigned"),
        ));
    };
    let value_ty = lw.ty(value).clone();
    if value_ty != info.ty {
        return Err(lw.report(
            Diag::error(
                Code::E0205,
                format!("the new value of `{}` must have its type {}", info.name, info.ty),
                vs,
                format!("this is {value_ty}"),
            )
            .with_label(info.span, "declared here"),
        ));
    }
    if lw.training {
        let name = format!("state.{}", info.name);
        lw.graph.outputs.retain(|(n, _)| *n != name);
        lw.graph.outputs.push((name, value));
    }
    Ok(Value::Tensor(value))
}

/// Adds a convolution or pooling node; a window that does not fit gets its own
/// diagnostic, other shape errors the usual one.
fn add_windowed(
    lw: &mut Lowerer,
    op: Op,
    inputs: &[NodeId],
    span: Span,
    operand_spans: &[Span],
    window_span: Option<Span>,
) -> Lowered {
    match lw.graph.add(op, inputs, None, span) {
        Ok(id) => Ok(Value::Tensor(id)),
        Err(ShapeError::WindowTooLarge { op, input, axis, window }) => {
            let (what, size) = (if axis == 1 { "height" } else { "width" }, &input.shape[axis]);
            let mut d = Diag::error(
                Code::E0212,
                format!("the `{op}` window is larger than its input"),
                span,
                format!("a window spanning {window} does not fit in a {what} of {size}"),
            )
            .with_label(operand_spans[0], format!("this is {input}"));
            if let Some(ws) = window_span.filter(|ws| *ws != operand_spans[0]) {
                d = d.with_label(ws, "the window is set here");
            }
            let d =
                d.with_note("with `padding: \"valid\"` every window must lie inside the input").with_help(
                    "use `padding: \"same\"`, a smaller window, or fewer pooling layers before this one",
                );
            Err(lw.report(d))
        }
        Err(e) => {
            let types: Vec<TensorType> = inputs.iter().map(|&i| lw.ty(i).clone()).collect();
            Err(lw.report(errors::shape_error(&e, span, operand_spans, &types)))
        }
    }
}

/// A window size, stride or dilation: a positive integer or a pair of them.
fn pair_arg(
    lw: &mut Lowerer,
    what: &str,
    arg: Option<&(Value, Span)>,
    default: [usize; 2],
) -> Result<[usize; 2], Reported> {
    let Some((v, s)) = arg else { return Ok(default) };
    let positive = |v: &Value| v.as_int().filter(|&n| n > 0).map(|n| n as usize);
    let pair = match v {
        Value::List(items) if items.len() == 2 => {
            positive(&items[0]).zip(positive(&items[1])).map(|(a, b)| [a, b])
        }
        Value::List(_) => None,
        other if other.as_int().is_some() => positive(other).map(|n| [n, n]),
        other => return Err(kind_error(lw, &format!("a {what} (an integer or a pair)"), other, *s)),
    };
    pair.ok_or_else(|| {
        lw.report(
            Diag::error(Code::E0213, format!("invalid {what}"), *s, format!("the {what} must be positive"))
                .with_note(format!("a {what} is a positive integer or a pair `[rows, columns]` of them")),
        )
    })
}

fn padding_arg(lw: &mut Lowerer, arg: Option<&(Value, Span)>) -> Result<Padding, Reported> {
    match arg {
        None => Ok(Padding::Valid),
        Some((Value::Str(s), _)) if s == "valid" => Ok(Padding::Valid),
        Some((Value::Str(s), _)) if s == "same" => Ok(Padding::Same),
        Some((Value::Str(s), span)) => Err(lw.report(
            Diag::error(Code::E0213, format!("unknown padding \"{s}\""), *span, "not a padding mode")
                .with_help("padding is \"valid\" or \"same\""),
        )),
        Some((other, span)) => Err(kind_error(lw, "a padding mode (\"valid\" or \"same\")", other, *span)),
    }
}
