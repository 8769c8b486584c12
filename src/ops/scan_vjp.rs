//! The derivative of `scan`: backpropagation through time as another scan, running the
//! other way, whose body is the reverse-mode derivative of the forward body.
//!
//! For a forward loop c_{t+1}, y_t = f(c_t, x_t, θ) the gradients obey, from the last step
//! back: ∂L/∂c_t = (∂f/∂c_t)ᵀ (∂L/∂c_{t+1} + ∂L/∂y_t-part), ∂L/∂x_t = (∂f/∂x_t)ᵀ(..) and
//! ∂L/∂θ = Σ_t (∂f/∂θ)ᵀ(..). The backward body takes as carries the carry cotangents and
//! one accumulator per float capture, as sequences the saved input carries c_t, the steps
//! x_t, (for a stacked result) the result's gradient at step t and the saved residuals,
//! and as captures the forward captures. It is `autodiff::grad` applied to ⟨f(c_t, x_t,
//! θ), cotangents⟩, a scalar whose gradient in (c_t, x_t, θ) is exactly the
//! vector-Jacobian product of f; the forward values that derivative reads (activations,
//! products) are residuals saved by the forward loop rather than recomputed
//! (`scan_residuals.rs`), and the body is simplified once.
//!
//! The saved carries and residuals come from the forward loop with them as extra per-step
//! outputs; that loop is one more run of the forward body (the original node may read a
//! different result), which `simplify` merges with the forward loop. Non-float sequences
//! and captures (ids) get no gradient.

use super::scan::ScanAttrs;
use super::scan_outer::{Hoisted, Stacked};
use super::{ShapeError, Vjp};
use crate::ir::{BinaryOp, Graph, InputInfo, NodeId, Op, ParamInfo, ReduceOp, ScanOutput};

fn scan_error(reason: String) -> ShapeError {
    ShapeError::Scan { reason }
}

/// Where a leaf of the derivative graph goes in the backward body's inputs.
#[derive(Clone, Copy)]
enum Leaf {
    Param(usize),
    Input(usize),
}

pub(super) fn vjp_scan(graph: &mut Graph, node: NodeId, grad_out: NodeId) -> Vjp {
    let n = graph.node(node).clone();
    let a = ScanAttrs::of(&n.op).ok_or_else(|| scan_error("not a scan".into()))?;
    let body = a.body;
    let (k, m) = (a.carries, a.sequences);
    let c = body.inputs.len() - k - m;
    let outs = body.outputs.len();
    let span = n.span;
    if let Some(j) = (0..k).find(|&j| !body.inputs[j].ty.dtype.is_float()) {
        return Err(scan_error(format!("carry {j} is not a float tensor: it cannot be differentiated")));
    }
    let float_caps: Vec<usize> = (0..c).filter(|&i| body.inputs[k + m + i].ty.dtype.is_float()).collect();
    let float_seqs: Vec<usize> = (0..m).filter(|&i| body.inputs[k + i].ty.dtype.is_float()).collect();
    let stacked = match a.output {
        ScanOutput::Stacked(j) => Some(j),
        ScanOutput::Final(_) => None,
    };

    let (back, residuals, hoisted) = backward_body(body, k, m, &float_caps, &float_seqs, stacked)?;
    let is_hoisted = |pos: usize| hoisted.iter().any(|h| h.cap == pos);

    // The forward loop again, its input carries and the residuals the backward body reads
    // as extra outputs: c_t and those values for every step.
    let mut saving = body.clone();
    saving.name = format!("{}.saving", body.name);
    for j in 0..k {
        let id = saving.ids().find(|&id| saving.node(id).op == Op::Input { index: j });
        let id = id
            .unwrap_or_else(|| saving.push(Op::Input { index: j }, vec![], body.inputs[j].ty.clone(), span));
        saving.outputs.push((format!("saved.{j}"), id));
    }
    for (i, &r) in residuals.iter().enumerate() {
        saving.outputs.push((format!("residual.{i}"), r));
    }
    let mut saved = Vec::with_capacity(k + residuals.len());
    for j in 0..k + residuals.len() {
        let op = Op::Scan {
            body: Box::new(saving.clone()),
            carries: k,
            sequences: m,
            reverse: a.reverse,
            output: ScanOutput::Stacked(outs + j),
        };
        saved.push(graph.add(op, &n.inputs, None, span)?);
    }

    // Operands: carry cotangents, accumulators, saved carries, steps, result gradient, captures.
    let mut operands = Vec::new();
    for j in 0..k {
        let ty = body.inputs[j].ty.clone();
        let init = if a.output == ScanOutput::Final(j) {
            grad_out
        } else {
            graph.fill(0.0, ty.dtype, ty.shape, span)
        };
        operands.push(init);
    }
    for (pos, &i) in float_caps.iter().enumerate() {
        if !is_hoisted(pos) {
            let ty = body.inputs[k + m + i].ty.clone();
            operands.push(graph.fill(0.0, ty.dtype, ty.shape, span));
        }
    }
    operands.extend(&saved[..k]);
    operands.extend(&n.inputs[k..k + m]);
    if stacked.is_some() {
        operands.push(grad_out);
    }
    operands.extend(&saved[k..]);
    operands.extend(&n.inputs[k + m..]);
    let back_carries = k + float_caps.len() - hoisted.len();
    let back_sequences = k + m + usize::from(stacked.is_some()) + residuals.len();
    let result = |graph: &mut Graph, output: ScanOutput| {
        let op = Op::Scan {
            body: Box::new(back.clone()),
            carries: back_carries,
            sequences: back_sequences,
            reverse: !a.reverse,
            output,
        };
        graph.add(op, &operands, None, span)
    };
    let mut grads = vec![None; n.inputs.len()];
    for (j, slot) in grads.iter_mut().enumerate().take(k) {
        *slot = Some(result(graph, ScanOutput::Final(j))?);
    }
    let mut looped = 0;
    for (pos, &i) in float_caps.iter().enumerate() {
        if let Some(h) = hoisted.iter().find(|h| h.cap == pos) {
            // Σ over batch and steps of p_tᵀ q_t, one product after the loop.
            let mut stacked = |s: Stacked| match s {
                Stacked::Operand(o) => Ok(operands[o]),
                Stacked::Output(j) => result(graph, ScanOutput::Stacked(j)),
            };
            let (p, q) = (stacked(h.p)?, stacked(h.q)?);
            let pt = graph.transpose(p, vec![0, 2, 1], span)?;
            let per_sample = graph.matmul(pt, q, span)?;
            grads[k + m + i] = Some(graph.reduce(ReduceOp::Sum, per_sample, vec![0], false, span)?);
        } else {
            grads[k + m + i] = Some(result(graph, ScanOutput::Final(k + looped))?);
            looped += 1;
        }
    }
    for (pos, &i) in float_seqs.iter().enumerate() {
        grads[k + i] = Some(result(graph, ScanOutput::Stacked(back_carries + pos))?);
    }
    Ok(grads)
}

/// The body of the backward loop (see the module header for its inputs and outputs), and
/// the forward nodes whose per-step values it reads as residual sequences (after the
/// result's gradient, before the captures).
fn backward_body(
    body: &Graph,
    k: usize,
    m: usize,
    float_caps: &[usize],
    float_seqs: &[usize],
    stacked: Option<usize>,
) -> Result<(Graph, Vec<NodeId>, Vec<Hoisted>), ShapeError> {
    let c = body.inputs.len() - k - m;
    let nc = float_caps.len();
    // Final positions: d carries, accumulators, saved carries, steps, d y, captures.
    let pos_of_body_input = |i: usize| {
        if i < k { k + nc + i } else { 2 * k + nc + (i - k) + usize::from(stacked.is_some() && i >= k + m) }
    };
    let total = 2 * k + nc + m + usize::from(stacked.is_some()) + c;

    // The step with float inputs as parameters, so that `grad` differentiates in them.
    let mut f = body.clone();
    f.name = format!("{}.vjp", body.name);
    f.inputs.clear();
    f.params.clear();
    let mut leaves = Vec::with_capacity(body.inputs.len());
    let mut placed: Vec<Option<InputInfo>> = vec![None; total];
    for (i, info) in body.inputs.iter().enumerate() {
        let pos = pos_of_body_input(i);
        placed[pos] = Some(info.clone());
        if info.ty.dtype.is_float() {
            leaves.push(Leaf::Param(f.params.len()));
            f.params.push(ParamInfo {
                name: info.name.clone(),
                ty: info.ty.clone(),
                init: crate::ir::Init::Zeros,
                trainable: true,
                span: info.span,
            });
        } else {
            leaves.push(Leaf::Input(f.inputs.len()));
            f.inputs.push(info.clone());
        }
    }
    let mut input_pos: Vec<usize> = leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l, Leaf::Input(_)))
        .map(|(i, _)| pos_of_body_input(i))
        .collect();
    let param_pos: Vec<usize> = leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(l, Leaf::Param(_)))
        .map(|(i, _)| pos_of_body_input(i))
        .collect();
    for node in &mut f.nodes {
        if let Op::Input { index } = node.op {
            node.op = match leaves[index] {
                Leaf::Param(p) => Op::Param { index: p },
                Leaf::Input(q) => Op::Input { index: q },
            };
        }
    }

    // The cotangents and the scalar ⟨f(..), cotangents⟩.
    let span = body.nodes.first().map(|n| n.span).unwrap_or_else(crate::source::Span::dummy);
    let mut cot: Vec<Option<NodeId>> = vec![None; body.outputs.len()];
    for (j, slot) in cot.iter_mut().enumerate().take(k) {
        let info = InputInfo { name: format!("d_{}", body.inputs[j].name), ..body.inputs[j].clone() };
        input_pos.push(j);
        placed[j] = Some(info.clone());
        *slot = Some(f.add_input(&info.name, info.ty, info.span));
    }
    if let Some(o) = stacked {
        let ty = body.ty(body.outputs[o].1).clone();
        let pos = 2 * k + nc + m;
        input_pos.push(pos);
        let id = f.add_input("d_y", ty.clone(), span);
        placed[pos] = Some(InputInfo { name: "d_y".into(), ty, span });
        cot[o] = Some(match cot[o] {
            Some(d) => f.binary(BinaryOp::Add, d, id, span)?,
            None => id,
        });
    }
    let mut loss: Option<NodeId> = None;
    for (j, d) in cot.iter().enumerate() {
        let Some(d) = *d else { continue };
        let y = body.outputs[j].1;
        let prod = f.binary(BinaryOp::Mul, y, d, span)?;
        let rank = f.ty(prod).rank();
        let term =
            if rank == 0 { prod } else { f.reduce(ReduceOp::Sum, prod, (0..rank).collect(), false, span)? };
        loss = Some(match loss {
            Some(l) => f.binary(BinaryOp::Add, l, term, span)?,
            None => term,
        });
    }
    let loss = loss.ok_or_else(|| scan_error("the scan's result reaches no body output".into()))?;
    let wrt: Vec<usize> = (0..f.params.len()).collect();
    let mut g = crate::autodiff::grad(&f, loss, &wrt).map_err(|e| scan_error(format!("in the body: {e}")))?;
    let mut outputs = Vec::new();
    for j in 0..k {
        let d = g.outputs[f.outputs.len() + param_index(&leaves, j)?].1;
        outputs.push((format!("d_carry.{j}"), d));
    }
    // Accumulators: new inputs at k + pos, each plus this step's capture gradient.
    for (pos, &i) in float_caps.iter().enumerate() {
        let info = &body.inputs[k + m + i];
        let acc = g.push(Op::Input { index: g.inputs.len() }, vec![], info.ty.clone(), span);
        g.inputs.push(InputInfo { name: format!("acc_{}", info.name), ..info.clone() });
        input_pos.push(k + pos);
        placed[k + pos] = g.inputs.last().cloned();
        let d = g.outputs[f.outputs.len() + param_index(&leaves, k + m + i)?].1;
        let sum = g.binary(BinaryOp::Add, acc, d, span)?;
        outputs.push((format!("d_capture.{i}"), sum));
    }
    for &i in float_seqs {
        let d = g.outputs[f.outputs.len() + param_index(&leaves, k + i)?].1;
        outputs.push((format!("d_x.{i}"), d));
    }

    // Every leaf becomes the input at its final position.
    for node in &mut g.nodes {
        node.op = match node.op {
            Op::Param { index } => Op::Input { index: param_pos[index] },
            Op::Input { index } => Op::Input { index: input_pos[index] },
            ref other => other.clone(),
        };
    }
    g.params.clear();
    g.inputs = placed
        .into_iter()
        .enumerate()
        .map(|(i, info)| info.ok_or_else(|| scan_error(format!("backward body input {i} is unassigned"))))
        .collect::<Result<_, _>>()?;
    g.outputs = outputs;
    // Saved carries and steps change per step; residuals go after them and d y.
    let (saved_at, residuals_at) = (k + nc, 2 * k + nc + m + usize::from(stacked.is_some()));
    let residuals = super::scan_residuals::save_residuals(
        &mut g,
        body.nodes.len(),
        saved_at..2 * k + nc + m,
        residuals_at,
    );
    crate::ir::debug_verify(&g, "scan_vjp::backward_body");
    // Folded once here rather than on every step: the derivative leaves sums of pads
    // (from slices) to merge, recomputations the residuals made dead, and duplicates.
    let mut g = crate::ir::simplify::simplify(&g);
    let sequences = k + nc..residuals_at + residuals.len();
    let hoisted = super::scan_outer::hoist_weight_products(&mut g, k, nc, sequences);
    let g = if hoisted.is_empty() { g } else { crate::ir::simplify::eliminate_dead_code(&g) };
    Ok((g, residuals, hoisted))
}

/// The parameter index of a float body input.
fn param_index(leaves: &[Leaf], body_input: usize) -> Result<usize, ShapeError> {
    match leaves.get(body_input) {
        Some(Leaf::Param(p)) => Ok(*p),
        _ => Err(scan_error(format!("body input {body_input} is not a float tensor"))),
    }
}
