//! The reference interpreter: runs a graph node by node with the kernels of `crate::ops`.
//!
//! It is the ground truth the JIT is tested against, so it favours clarity and exactness
//! over speed. Before running it checks every input and parameter against its declared
//! type and binds the symbolic dimensions from them; a wrong array is an `Err` naming the
//! argument, never a panic. Only nodes an output depends on are computed, and each value
//! is dropped after its last use, so memory stays bounded by the live values.
//!
//! A `scan` loop runs once for all the nodes that read its results (nodes equal but for
//! `output`, with the same operands); its results are kept until the run ends.
//!
//! With `promote_f64` every f32 value is computed in f64 (f32 arguments are widened and
//! f64 arrays are accepted where f32 is declared): gradient checks run f32 graphs so.

use super::{Graph, NodeId, Op};
use crate::ops::{self, EvalCtx, KernelError, Value};
use crate::shape::{DType, Dim, SymEnv, TensorType};
use crate::source::Span;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How to run a graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The run's seed for random ops.
    pub seed: u64,
    /// The step counter, mixed into random draws so each step differs.
    pub step: u64,
    /// Compute f32 graphs in f64 (for gradient checks).
    pub promote_f64: bool,
    /// Fail at the first node whose result holds a NaN or an infinity.
    pub check_finite: bool,
}

/// Why a graph could not run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("expected {expected} {what}, got {got}")]
    ArgumentCount { what: &'static str, expected: usize, got: usize },
    #[error("{kind} `{name}`: expected {expected}, got {got}")]
    BadArgument { kind: &'static str, name: String, expected: TensorType, got: String },
    #[error("dimension `{dim}` is {first} in `{first_name}` but {value} in `{name}`")]
    DimensionConflict { dim: String, first: usize, first_name: String, value: usize, name: String },
    #[error("node %{}: `{op}` produced a value that is not finite", node.0)]
    NonFinite { node: NodeId, op: String, span: Span },
    #[error("node %{}: `{op}`: {error}", node.0)]
    Kernel { node: NodeId, op: String, span: Span, error: KernelError },
    /// The graph is malformed or a kernel disagrees with its shape rule: a compiler bug.
    #[error("node %{}: invalid graph: {message}", node.0)]
    InvalidGraph { node: NodeId, message: String },
}

/// Runs `graph` on `inputs` and `params` (in declaration order) and returns its outputs
/// in order.
pub fn run(
    graph: &Graph,
    inputs: &[Value],
    params: &[Value],
    opts: &RunOptions,
) -> Result<Vec<Value>, RunError> {
    let args = check_arguments(graph, inputs, params, opts.promote_f64)?;
    let mut env = args.env;
    let live = graph.live_nodes();
    let mut uses = vec![0usize; graph.nodes.len()];
    for id in graph.ids().filter(|id| live[id.index()]) {
        for operand in &graph.node(id).inputs {
            uses[operand.index()] += 1;
        }
    }
    for (_, out) in &graph.outputs {
        uses[out.index()] += 1;
    }
    let mut slots: Vec<Option<Cow<Value>>> = vec![None; graph.nodes.len()];
    let mut loops = ScanLoops::default();
    for id in graph.ids().filter(|id| live[id.index()]) {
        let node = graph.node(id);
        let value = match node.op {
            Op::Input { index } => leaf(&args.inputs, index, id, &node.op)?,
            Op::Param { index } => leaf(&args.params, index, id, &node.op)?,
            _ => Cow::Owned(eval_node(graph, id, &slots, &mut env, opts, &mut loops)?),
        };
        if opts.check_finite && !value.all_finite() {
            return Err(RunError::NonFinite { node: id, op: node.op.name().to_string(), span: node.span });
        }
        for operand in &node.inputs {
            uses[operand.index()] -= 1;
            if uses[operand.index()] == 0 {
                slots[operand.index()] = None;
            }
        }
        slots[id.index()] = Some(value);
    }
    let mut outputs = Vec::with_capacity(graph.outputs.len());
    for (_, out) in &graph.outputs {
        let i = out.index();
        uses[i] -= 1;
        let value = if uses[i] == 0 { slots[i].take() } else { slots[i].clone() };
        let value =
            value.ok_or(RunError::InvalidGraph { node: *out, message: "output never computed".into() })?;
        outputs.push(value.into_owned());
    }
    Ok(outputs)
}

/// The argument an input or parameter node reads.
fn leaf<'v>(
    values: &'v [Cow<'_, Value>],
    index: usize,
    id: NodeId,
    op: &Op,
) -> Result<Cow<'v, Value>, RunError> {
    let message = format!("`{op}` reads a declaration that does not exist");
    values.get(index).map(|v| Cow::Borrowed(v.as_ref())).ok_or(RunError::InvalidGraph { node: id, message })
}

/// The dtype a value of declared type `dtype` has in this run.
fn effective(dtype: DType, promote_f64: bool) -> DType {
    if promote_f64 && dtype == DType::F32 { DType::F64 } else { dtype }
}

fn eval_node(
    graph: &Graph,
    id: NodeId,
    slots: &[Option<Cow<Value>>],
    env: &mut SymEnv,
    opts: &RunOptions,
    loops: &mut ScanLoops,
) -> Result<Value, RunError> {
    let node = graph.node(id);
    let mut operands = Vec::with_capacity(node.inputs.len());
    for operand in &node.inputs {
        let value = slots.get(operand.index()).and_then(|s| s.as_deref()).ok_or_else(|| {
            RunError::InvalidGraph { node: id, message: format!("operand %{} is not available", operand.0) }
        })?;
        operands.push(value);
    }
    let mut shape = env.resolve_shape(&node.ty.shape);
    if let (None, Op::Reshape, Some(x)) = (&shape, &node.op, operands.first()) {
        shape = infer_reshape_dims(&node.ty.shape, x.len(), env);
    }
    let dtype = effective(node.ty.dtype, opts.promote_f64);
    let ctx = EvalCtx { dtype, shape, seed: opts.seed, step: opts.step };
    let op = node.op.name().to_string();
    let kernel_error = |error| RunError::Kernel { node: id, op: op.clone(), span: node.span, error };
    let value = match &node.op {
        Op::Scan { output, .. } => {
            let results = match loops.find(graph, id) {
                Some(results) => results,
                None => {
                    let wanted = ScanLoops::stacked_outputs(graph, id);
                    let results = ops::eval_scan(&node.op, &operands, &ctx, &wanted).map_err(kernel_error)?;
                    loops.done.push((id, results));
                    &loops.done[loops.done.len() - 1].1
                }
            };
            results.pick(*output).cloned().ok_or_else(|| RunError::InvalidGraph {
                node: id,
                message: format!("the scan has no result {output:?}"),
            })?
        }
        _ => ops::eval(&node.op, &operands, &ctx).map_err(kernel_error)?,
    };
    let ty = TensorType::new(dtype, node.ty.shape.clone());
    if value.dtype() != dtype || !matches_type(&ty, value.shape(), env) {
        return Err(RunError::InvalidGraph {
            node: id,
            message: format!(
                "`{op}` computed a {} array of shape {:?}, its type is {}",
                value.dtype(),
                value.shape(),
                ty
            ),
        });
    }
    Ok(value)
}

/// The scan loops already run, by the first node that read each.
#[derive(Default)]
struct ScanLoops {
    done: Vec<(NodeId, ops::ScanResults)>,
}

impl ScanLoops {
    /// The results of the loop node `id` reads, if a node reading the same loop ran it.
    fn find(&self, graph: &Graph, id: NodeId) -> Option<&ops::ScanResults> {
        let node = graph.node(id);
        self.done.iter().find(|(first, _)| same_loop(node, graph.node(*first))).map(|(_, r)| r)
    }

    /// The stacked results that the nodes reading the loop of `id` stand for: only those
    /// are kept (a stacked accumulator would cost a copy per step).
    fn stacked_outputs(graph: &Graph, id: NodeId) -> Vec<usize> {
        let node = graph.node(id);
        let mut wanted: Vec<usize> = graph
            .nodes
            .iter()
            .filter(|other| same_loop(node, other))
            .filter_map(|other| match other.op {
                Op::Scan { output: super::ScanOutput::Stacked(j), .. } => Some(j),
                _ => None,
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }
}

/// Whether two scan nodes read the same loop (they may differ only in `output`).
fn same_loop(a: &super::Node, b: &super::Node) -> bool {
    match (&a.op, &b.op) {
        (
            Op::Scan { body, carries, sequences, reverse, .. },
            Op::Scan { body: b2, carries: c2, sequences: s2, reverse: r2, .. },
        ) => a.inputs == b.inputs && carries == c2 && sequences == s2 && reverse == r2 && body == b2,
        _ => false,
    }
}

/// For a reshape whose target has exactly one unbound symbol: binds it from the element
/// count and returns the concrete shape.
fn infer_reshape_dims(target: &[Dim], numel: usize, env: &mut SymEnv) -> Option<Vec<usize>> {
    let unbound: Vec<&Arc<str>> = target
        .iter()
        .filter_map(|d| match d {
            Dim::Sym(s) if env.get(s).is_none() => Some(s),
            _ => None,
        })
        .collect();
    let [sym] = unbound.as_slice() else { return None };
    let known: usize = target.iter().filter_map(|d| env.resolve(d)).product();
    if known == 0 || !numel.is_multiple_of(known) {
        return None;
    }
    env.bind(sym, numel / known).ok()?;
    env.resolve_shape(target)
}

/// Whether `shape` fits `ty`'s shape, binding symbols seen for the first time.
fn matches_type(ty: &TensorType, shape: &[usize], env: &mut SymEnv) -> bool {
    shape.len() == ty.rank()
        && ty.shape.iter().zip(shape).all(|(d, &n)| match d {
            Dim::Const(c) => usize::try_from(*c) == Ok(n),
            Dim::Sym(s) => env.bind(s, n).is_ok(),
        })
}

/// The checked arguments of a run: the values (widened when promoting) and the symbols
/// they bind.
pub struct Arguments<'a> {
    pub inputs: Vec<Cow<'a, Value>>,
    pub params: Vec<Cow<'a, Value>>,
    pub env: SymEnv,
}

/// Checks every input and parameter against its declared type (element type, rank,
/// literal dimensions) and binds the symbolic dimensions consistently across all of them.
pub fn check_arguments<'a>(
    graph: &Graph,
    inputs: &'a [Value],
    params: &'a [Value],
    promote_f64: bool,
) -> Result<Arguments<'a>, RunError> {
    if inputs.len() != graph.inputs.len() {
        return Err(RunError::ArgumentCount {
            what: "inputs",
            expected: graph.inputs.len(),
            got: inputs.len(),
        });
    }
    if params.len() != graph.params.len() {
        return Err(RunError::ArgumentCount {
            what: "parameters",
            expected: graph.params.len(),
            got: params.len(),
        });
    }
    let mut binder = Binder::default();
    let mut checked_inputs = Vec::with_capacity(inputs.len());
    for (info, value) in graph.inputs.iter().zip(inputs) {
        checked_inputs.push(binder.check("input", &info.name, &info.ty, value, promote_f64)?);
    }
    let mut checked_params = Vec::with_capacity(params.len());
    for (info, value) in graph.params.iter().zip(params) {
        checked_params.push(binder.check("parameter", &info.name, &info.ty, value, promote_f64)?);
    }
    Ok(Arguments { inputs: checked_inputs, params: checked_params, env: binder.env })
}

/// Binds symbols while remembering which argument bound each, for messages.
#[derive(Default)]
struct Binder {
    env: SymEnv,
    bound_by: BTreeMap<Arc<str>, String>,
}

impl Binder {
    fn check<'a>(
        &mut self,
        kind: &'static str,
        name: &str,
        ty: &TensorType,
        value: &'a Value,
        promote_f64: bool,
    ) -> Result<Cow<'a, Value>, RunError> {
        let bad =
            |got: String| RunError::BadArgument { kind, name: name.to_string(), expected: ty.clone(), got };
        let widen = promote_f64 && ty.dtype == DType::F32;
        let dtype_ok = value.dtype() == ty.dtype || (widen && value.dtype() == DType::F64);
        if !dtype_ok {
            let article = if matches!(value.dtype(), DType::U8 | DType::Bool) { "a" } else { "an" };
            return Err(bad(format!("{article} {} array of shape {:?}", value.dtype(), value.shape())));
        }
        let shape = value.shape();
        let literal_ok = shape.len() == ty.rank()
            && ty
                .shape
                .iter()
                .zip(shape)
                .all(|(d, &n)| d.as_const().is_none_or(|c| usize::try_from(c) == Ok(n)));
        if !literal_ok {
            return Err(bad(format!("an array of shape {shape:?}")));
        }
        for (d, &n) in ty.shape.iter().zip(shape) {
            if let Dim::Sym(s) = d {
                if let Err(first) = self.env.bind(s, n) {
                    let first_name = self.bound_by.get(s).cloned().unwrap_or_default();
                    return Err(RunError::DimensionConflict {
                        dim: s.to_string(),
                        first,
                        first_name,
                        value: n,
                        name: name.to_string(),
                    });
                }
                self.bound_by.entry(s.clone()).or_insert_with(|| name.to_string());
            }
        }
        Ok(if widen && value.dtype() == DType::F32 {
            Cow::Owned(value.cast(DType::F64))
        } else {
            Cow::Borrowed(value)
        })
    }
}
