//! `scan`: a loop over the time axis (axis 1) of its sequences with a carried state. The
//! shape rule and the reference kernel live here, the derivative in `scan_vjp.rs`.
//!
//! The body is a graph of its own, without parameters. Its inputs are, in order: the `k`
//! carries, one step `x_t` of each of the `m` sequences (the sequence's type without its
//! time axis) and the `c` captured tensors (weights and any outer value the step reads). Its
//! outputs are the `k` new carries (each with its carry's type) followed by any number
//! of per-step outputs. The node's operands are the initial carries, the sequences
//! `[B, T, ..]` and the captured tensors, typed exactly as the body declares them.
//!
//! The loop keeps every step's outputs: a node stands for one of them stacked along the
//! time axis, `[B, T, ..]` ([`ScanOutput::Stacked`]), or for a carry after the last step
//! ([`ScanOutput::Final`]). [`eval_all`] computes every result of one loop at once, so the
//! interpreter runs a loop once for all the nodes that read it.

use super::ShapeError;
use super::kernel::{EvalCtx, KernelError};
use super::value::{Value, with_array};
use crate::ir::{Graph, Op, RunOptions, ScanOutput};
use crate::shape::{DType, TensorType};
use ndarray::{ArrayD, Axis};

/// The attributes of a scan node, borrowed.
pub(super) struct ScanAttrs<'a> {
    pub body: &'a Graph,
    pub carries: usize,
    pub sequences: usize,
    pub reverse: bool,
    pub output: ScanOutput,
}

impl<'a> ScanAttrs<'a> {
    pub(super) fn of(op: &'a Op) -> Option<ScanAttrs<'a>> {
        match op {
            Op::Scan { body, carries, sequences, reverse, output } => Some(ScanAttrs {
                body,
                carries: *carries,
                sequences: *sequences,
                reverse: *reverse,
                output: *output,
            }),
            _ => None,
        }
    }
}

fn scan_error(reason: String) -> ShapeError {
    ShapeError::Scan { reason }
}

/// `ty` with a new axis 1 of size `t` (the type of a stacked per-step value).
pub(super) fn with_time_axis(ty: &TensorType, t: &crate::shape::Dim) -> TensorType {
    let mut shape = ty.shape.clone();
    shape.insert(1.min(shape.len()), t.clone());
    TensorType::new(ty.dtype, shape)
}

/// Checks the operands against the body's contract and gives the node's type.
pub(super) fn infer_scan(op: &Op, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    let Some(a) = ScanAttrs::of(op) else { return Err(scan_error("not a scan".into())) };
    let body = a.body;
    let (k, m) = (a.carries, a.sequences);
    if !body.params.is_empty() {
        return Err(scan_error("the body declares parameters; captured tensors must be inputs".into()));
    }
    if k + m > body.inputs.len() || body.outputs.len() < k {
        return Err(scan_error(format!(
            "a body with {} inputs and {} outputs cannot take {k} carries and {m} sequences",
            body.inputs.len(),
            body.outputs.len()
        )));
    }
    if m == 0 {
        return Err(scan_error("a scan needs at least one sequence to step over".into()));
    }
    let time = inputs[k].shape.get(1).cloned().ok_or_else(|| {
        scan_error(format!("sequence {} has rank {}; it needs a time axis 1", 0, inputs[k].rank()))
    })?;
    for (i, (declared, got)) in body.inputs.iter().zip(inputs).enumerate() {
        let expected =
            if (k..k + m).contains(&i) { with_time_axis(&declared.ty, &time) } else { declared.ty.clone() };
        if declared.ty.rank() == 0 && (k..k + m).contains(&i) {
            return Err(scan_error(format!("the step `{}` of a sequence cannot be a scalar", declared.name)));
        }
        if **got != expected {
            return Err(scan_error(format!(
                "operand {i} (`{}`) has type {got}, the body expects {expected}",
                declared.name
            )));
        }
    }
    for (j, (_, id)) in body.outputs.iter().take(k).enumerate() {
        let (carry, new) = (&body.inputs[j].ty, body.ty(*id));
        if carry != new {
            return Err(scan_error(format!("carry {j} has type {carry} but the body returns {new} for it")));
        }
    }
    match a.output {
        ScanOutput::Stacked(j) => {
            let (_, id) =
                body.outputs.get(j).ok_or_else(|| scan_error(format!("the body has no output {j}")))?;
            let ty = body.ty(*id);
            if ty.rank() == 0 {
                return Err(scan_error(format!("output {j} is a scalar; only tensors stack along axis 1")));
            }
            Ok(with_time_axis(ty, &time))
        }
        ScanOutput::Final(j) if j < k => Ok(body.inputs[j].ty.clone()),
        ScanOutput::Final(j) => Err(scan_error(format!("`final={j}` names no carry: there are {k}"))),
    }
}

// ---------------------------------------------------------------------------------------
// Reference kernel.

/// The results of one loop: the wanted body outputs stacked over the steps (indexed by
/// step, whatever the direction; `None` for outputs nobody wanted, which are not kept),
/// and the carries after the last step.
#[derive(Clone, Debug)]
pub struct ScanResults {
    pub stacked: Vec<Option<Value>>,
    pub finals: Vec<Value>,
}

impl ScanResults {
    pub fn pick(&self, output: ScanOutput) -> Option<&Value> {
        match output {
            ScanOutput::Stacked(j) => self.stacked.get(j).and_then(Option::as_ref),
            ScanOutput::Final(j) => self.finals.get(j),
        }
    }
}

/// Step `t` (along axis 1) of a sequence.
fn step_of(x: &Value, t: usize) -> Value {
    with_array!(x, a => a.index_axis(Axis(1), t).to_owned().into())
}

/// Values of one dtype stacked along a new axis 1.
fn stack_axis1(values: &[Value]) -> Result<Value, KernelError> {
    let bad = |got: String| KernelError::BadOperands { op: "scan", got };
    let first = values.first().ok_or_else(|| bad("a sequence of no steps".into()))?;
    macro_rules! stack_as {
        ($variant:ident) => {{
            let mut views = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Value::$variant(a) => views.push(a.view()),
                    other => {
                        return Err(bad(format!(
                            "steps of mixed types {} and {}",
                            first.dtype(),
                            other.dtype()
                        )));
                    }
                }
            }
            let stacked: ArrayD<_> = ndarray::stack(Axis(1), &views)
                .map_err(|e| bad(format!("steps of shape {:?}: {e}", first.shape())))?;
            Value::$variant(stacked)
        }};
    }
    Ok(match first {
        Value::F32(_) => stack_as!(F32),
        Value::F64(_) => stack_as!(F64),
        Value::I64(_) => stack_as!(I64),
        Value::U8(_) => stack_as!(U8),
        Value::Bool(_) => stack_as!(Bool),
    })
}

/// Runs the loop of a scan node on its operands and returns its final carries and the
/// body outputs listed in `wanted`, stacked.
pub fn eval_all(
    op: &Op,
    inputs: &[&Value],
    ctx: &EvalCtx,
    wanted: &[usize],
) -> Result<ScanResults, KernelError> {
    let bad = |got: String| KernelError::BadOperands { op: "scan", got };
    let a = ScanAttrs::of(op).ok_or_else(|| bad("an op that is not a scan".into()))?;
    let (k, m) = (a.carries, a.sequences);
    if inputs.len() != a.body.inputs.len() || k + m > inputs.len() || m == 0 {
        return Err(bad(format!("{} operand(s)", inputs.len())));
    }
    // A run promoted to f64 hands f64 arrays where the body declares f32.
    let promote_f64 = a
        .body
        .inputs
        .iter()
        .zip(inputs)
        .any(|(info, v)| info.ty.dtype == DType::F32 && v.dtype() == DType::F64);
    let opts = RunOptions { seed: ctx.seed, step: ctx.step, promote_f64, check_finite: false };
    let steps = *inputs[k]
        .shape()
        .get(1)
        .ok_or_else(|| bad(format!("a sequence of shape {:?}", inputs[k].shape())))?;
    let mut carries: Vec<Value> = inputs[..k].iter().map(|v| (*v).clone()).collect();
    let mut per_step: Vec<Vec<Value>> = vec![Vec::new(); a.body.outputs.len()];
    let order: Vec<usize> = if a.reverse { (0..steps).rev().collect() } else { (0..steps).collect() };
    for &t in &order {
        let mut args = std::mem::take(&mut carries);
        for x in &inputs[k..k + m] {
            if x.shape().get(1) != Some(&steps) {
                return Err(bad(format!("sequences of {steps} and {:?} steps", x.shape().get(1))));
            }
            args.push(step_of(x, t));
        }
        args.extend(inputs[k + m..].iter().map(|v| (*v).clone()));
        let outs = crate::ir::run(a.body, &args, &[], &opts)
            .map_err(|e| KernelError::ScanStep { step: t, message: e.to_string() })?;
        carries = outs[..k].to_vec();
        for (j, (slot, v)) in per_step.iter_mut().zip(outs).enumerate() {
            if wanted.contains(&j) {
                slot.push(v);
            }
        }
    }
    if a.reverse {
        per_step.iter_mut().for_each(|s| s.reverse());
    }
    let stacked = per_step
        .iter()
        .enumerate()
        .map(|(j, s)| if wanted.contains(&j) { stack_axis1(s).map(Some) } else { Ok(None) })
        .collect::<Result<_, _>>()?;
    Ok(ScanResults { stacked, finals: carries })
}

/// The result a scan node stands for.
pub(super) fn eval(op: &Op, inputs: &[&Value], ctx: &EvalCtx) -> Result<Value, KernelError> {
    let output = ScanAttrs::of(op).map(|a| a.output);
    let wanted: Vec<usize> = match output {
        Some(ScanOutput::Stacked(j)) => vec![j],
        _ => Vec::new(),
    };
    let all = eval_all(op, inputs, ctx, &wanted)?;
    output
        .and_then(|o| all.pick(o).cloned())
        .ok_or(KernelError::BadOperands { op: "scan", got: "a result the body does not have".into() })
}
