//! Built-ins for sequences: `gather(table, ids)` (embedding lookup) and
//! `scan(xs, init, |carry, x_t| new_carry, last: false)`.
//!
//! `scan` lowers the closure's body once, with placeholders for the carry and the step
//! `x_t` (the sequence `[B, T, ..]` without its time axis; for a tuple of sequences with
//! the same `B` and `T`, a tuple of steps), then splits what it built: the
//! nodes that depend on a placeholder become the body graph of a `scan` node, and every
//! other value they read (parameters, outer tensors, anything computed from them alone)
//! becomes a captured operand, so work that does not change per step stays outside the
//! loop; constants (`fill`s) are copied into the body instead. The split leaves the moved
//! nodes behind as dead `fill` nodes (node ids already handed out stay valid); dead-code
//! elimination removes them.
//!
//! The carry is a tensor or a tuple of tensors, and the closure returns the same
//! structure with the same types. The result is each carry stacked over the steps,
//! `[B, T, ..]`, or with `last: true` each carry after the last step.

use super::{Bound, kind_error};
use crate::diag::{Code, Diag};
use crate::ir::{Graph, Node, NodeId, Op, ScanOutput};
use crate::sema::lower::{Lowered, Lowerer};
use crate::sema::value::Value;
use crate::shape::TensorType;
use crate::source::Span;
use std::collections::HashMap;

/// Input indices no graph declares, marking placeholders while a body is lowered.
const PLACEHOLDER: usize = usize::MAX / 2;

/// `gather(table, ids)`: rows of `table [V, ..]` picked by the i64 `ids`.
pub(super) fn gather(lw: &mut Lowerer, mut a: Bound, span: Span) -> Lowered {
    let (tv, ts) = a.take(0);
    let (iv, is) = a.take(1);
    let table = lw.expect_tensor(tv, ts)?;
    let ids = lw.expect_tensor(iv, is)?;
    lw.node(Op::Gather, &[table, ids], None, span, &[ts, is])
}

/// `scan(xs, init, step, last: false)`: see the module header.
pub(super) fn scan(lw: &mut Lowerer, mut a: Bound, span: Span) -> Lowered {
    let (xv, xspan) = a.take(0);
    let xs_tuple = matches!(xv, Value::Tuple(_));
    let xs = match xv {
        Value::Tuple(items) => {
            items.into_iter().map(|v| lw.expect_tensor(v, xspan)).collect::<Result<Vec<_>, _>>()?
        }
        v => vec![lw.expect_tensor(v, xspan)?],
    };
    let (init, init_span) = a.take(1);
    let tuple = matches!(init, Value::Tuple(_));
    let inits = match init {
        Value::Tuple(items) => {
            items.into_iter().map(|v| lw.expect_tensor(v, init_span)).collect::<Result<Vec<_>, _>>()?
        }
        v => vec![lw.expect_tensor(v, init_span)?],
    };
    let (fv, fspan) = a.take(2);
    let Value::Closure(closure) = fv else {
        return Err(kind_error(lw, "a closure `|carry, x_t| ...`", &fv, fspan));
    };
    let last = match a.get(3) {
        None => false,
        Some((Value::Bool(b), _)) => *b,
        Some((v, s)) => {
            let (v, s) = (v.clone(), *s);
            return Err(kind_error(lw, "a bool", &v, s));
        }
    };
    if closure.params.len() != 2 {
        return Err(lw.report(
            Diag::error(
                Code::E0104,
                format!("the step of `scan` takes 2 parameters, this closure takes {}", closure.params.len()),
                closure.span,
                "expected `|carry, x_t| ...`",
            )
            .with_note("the carry is a tensor or a tuple of tensors; `x_t` is one step of the sequence"),
        ));
    }
    let mut step_tys = Vec::with_capacity(xs.len());
    for &x in &xs {
        let x_ty = lw.ty(x).clone();
        if x_ty.rank() < 2 {
            return Err(lw.report(
                Diag::error(
                    Code::E0206,
                    format!("`scan` steps over axis 1, but the sequence is {x_ty}"),
                    xspan,
                    "no time axis",
                )
                .with_note("a sequence is `[B, T, ..]`"),
            ));
        }
        let mut step_ty = x_ty;
        step_ty.shape.remove(1);
        step_tys.push(step_ty);
    }

    // Lower the body with placeholders for the carries and the step.
    let start = lw.graph.nodes.len();
    let carry_tys: Vec<TensorType> = inits.iter().map(|&c| lw.ty(c).clone()).collect();
    let mut holders = Vec::new();
    for (j, ty) in carry_tys.iter().chain(&step_tys).enumerate() {
        holders.push(lw.graph.push(Op::Input { index: PLACEHOLDER + j }, vec![], ty.clone(), closure.span));
    }
    let k = inits.len();
    let mut ctx = closure.ctx.clone();
    ctx.scopes.push(HashMap::new());
    let carry = if tuple {
        Value::Tuple(holders[..k].iter().map(|&h| Value::Tensor(h)).collect())
    } else {
        Value::Tensor(holders[0])
    };
    ctx.bind(&closure.params[0].name, Some(carry));
    let step = if xs_tuple {
        Value::Tuple(holders[k..].iter().map(|&h| Value::Tensor(h)).collect())
    } else {
        Value::Tensor(holders[k])
    };
    ctx.bind(&closure.params[1].name, Some(step));
    let result = lw.expr(&mut ctx, &closure.body);
    let news = match result {
        Ok(Value::Tuple(items)) if tuple && items.len() == k => {
            items.into_iter().map(|v| lw.expect_tensor(v, closure.body.span)).collect::<Result<Vec<_>, _>>()
        }
        Ok(v) if !tuple => lw.expect_tensor(v, closure.body.span).map(|t| vec![t]),
        Ok(v) => {
            let expected = if tuple { format!("a tuple of {k} tensors") } else { "a tensor".into() };
            Err(lw.report(
                Diag::error(
                    Code::E0208,
                    format!(
                        "the step of `scan` must return its new carry, {expected}; it returns {}",
                        v.kind()
                    ),
                    closure.body.span,
                    "not a carry",
                )
                .with_label(init_span, "the carry starts here"),
            ))
        }
        Err(r) => Err(r),
    };
    let (body, captures) = split_body(&mut lw.graph, start, &holders, k, news.as_deref().unwrap_or(&[]));
    news?;

    let mut operands = inits.clone();
    operands.extend(&xs);
    operands.extend(&captures);
    let mut spans = vec![init_span; k];
    spans.extend(std::iter::repeat_n(xspan, xs.len()));
    spans.extend(std::iter::repeat_n(closure.span, captures.len()));
    let mut results = Vec::with_capacity(k);
    for j in 0..k {
        let output = if last { ScanOutput::Final(j) } else { ScanOutput::Stacked(j) };
        let sequences = xs.len();
        let op = Op::Scan { body: Box::new(body.clone()), carries: k, sequences, reverse: false, output };
        results.push(lw.node(op, &operands, None, span, &spans)?);
    }
    Ok(if tuple { Value::Tuple(results) } else { results.remove(0) })
}

/// Moves the nodes built since `start` that depend on a placeholder into a body graph
/// whose outputs are `news`, and returns it with the outer nodes it reads (its captures,
/// in the order of its capture inputs). The moved nodes become dead `fill`s.
fn split_body(
    graph: &mut Graph,
    start: usize,
    holders: &[NodeId],
    carries: usize,
    news: &[NodeId],
) -> (Graph, Vec<NodeId>) {
    let end = graph.nodes.len();
    let mut dep = vec![false; end];
    for i in start..end {
        let node = &graph.nodes[i];
        dep[i] = holders.contains(&NodeId(i as u32)) || node.inputs.iter().any(|o| dep[o.index()]);
    }
    let mut body = Graph::new("scan_step");
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for (j, &h) in holders.iter().enumerate() {
        let name = match j.checked_sub(carries) {
            None => format!("carry.{j}"),
            Some(0) if holders.len() == carries + 1 => "x_t".to_string(),
            Some(i) => format!("x_t.{i}"),
        };
        let id = body.add_input(&name, graph.ty(h).clone(), graph.node(h).span);
        map.insert(h, id);
    }
    let mut captures = Vec::new();
    let mut capture = |body: &mut Graph, map: &mut HashMap<NodeId, NodeId>, outer: NodeId, graph: &Graph| {
        *map.entry(outer).or_insert_with(|| {
            let node = graph.node(outer);
            // A constant is copied into the body rather than captured: the loop then has
            // no operand (and its derivative no accumulator) for a literal such as `1.0`.
            if matches!(node.op, Op::Fill { .. }) && node.inputs.is_empty() {
                return body.push(node.op.clone(), vec![], node.ty.clone(), node.span);
            }
            captures.push(outer);
            body.add_input(&format!("capture.{}", captures.len() - 1), node.ty.clone(), node.span)
        })
    };
    for (i, _) in dep.iter().enumerate().skip(start).filter(|(_, d)| **d) {
        let id = NodeId(i as u32);
        if holders.contains(&id) {
            continue;
        }
        let node = graph.nodes[i].clone();
        let inputs = node.inputs.iter().map(|&o| capture(&mut body, &mut map, o, graph)).collect();
        let new = body.push(node.op, inputs, node.ty, node.span);
        map.insert(id, new);
    }
    for (j, &n) in news.iter().enumerate() {
        let id = capture(&mut body, &mut map, n, graph);
        body.outputs.push((format!("carry.{j}"), id));
    }
    for (node, _) in graph.nodes.iter_mut().zip(&dep).skip(start).filter(|(_, d)| **d) {
        *node = Node { op: Op::Fill { value: 0.0 }, inputs: vec![], ty: node.ty.clone(), span: node.span };
    }
    (body, captures)
}
