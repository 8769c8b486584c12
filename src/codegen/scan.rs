//! Native `scan`: the loop over time of a scan node runs its body as a compiled program of
//! its own, specialized once for the concrete sizes.
//!
//! Planning ([`ScanLoops::plan`], called by `specialize`): scan steps that are the same loop
//! (same body, operands and direction, differing only in the result they stand for) form
//! one group. The first of a group in schedule order is its leader and gets an
//! [`Instr::Scan`] that writes the results of every member; the other members get no
//! instruction. The body graph is scheduled and specialized for the operand sizes; a body
//! the JIT cannot take (bool inputs, say) leaves every member to the reference fallback.
//!
//! Running ([`ScanRunner::run`], a host op): the carries start as copies of the initial
//! operands in scratch buffers; each step copies x_t of every sequence the body reads into
//! contiguous scratch, runs the body on (carries, steps, captures), copies its new carries back and
//! its per-step outputs into the stacked results; after the last step the carries go to
//! the `final` results. Scratch is allocated when the program is built: a run allocates
//! nothing.
//!
//! Invariants: the results of a group are disjoint from its operands and from each other
//! (`specialize` starts the lifetime of every member's result at the leader's
//! instruction); every length a run relies on was checked against the body's plan here.

use super::kexpr::KernelError;
use super::program::{OutputRef, Program, Slice};
use super::specialize::{Base, Instr, Plan, PlanOptions, Ptr, specialize};
use crate::fuse::{Schedule, StepKind};
use crate::ir::{Graph, NodeId, Op, RunError, ScanOutput};
use crate::shape::{DType, Dim, SymEnv};

/// A loop over time with its specialized body: the payload of [`Instr::Scan`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScanLoop {
    /// The leader node.
    pub node: NodeId,
    /// The body as scheduled (its own node ids).
    pub body: Graph,
    pub plan: Plan,
    pub carries: usize,
    pub sequences: usize,
    pub reverse: bool,
    pub steps: usize,
    /// Every operand: initial carries, sequences `[B, T, ..]`, captures.
    pub operands: Vec<(Ptr, DType, Vec<usize>)>,
    /// Every result the loop writes, one per member node.
    pub results: Vec<(ScanOutput, Ptr, DType, Vec<usize>)>,
}

/// What `specialize` makes of one schedule step.
enum Role {
    Other,
    /// Runs the loop for `members` (itself included).
    Leader {
        prepared: Box<Prepared>,
        members: Vec<NodeId>,
    },
    /// Written by its leader's loop.
    Member,
}

/// A leader's loop before pointers are known.
struct Prepared {
    node: NodeId,
    body: Graph,
    plan: Plan,
    steps: usize,
}

/// The scan groups of a schedule.
pub(super) struct ScanLoops {
    roles: Vec<Role>,
}

/// A scan op with its `output` forgotten: equal keys (and operands) are one loop.
fn loop_key(op: &Op) -> Option<Op> {
    match op {
        Op::Scan { body, carries, sequences, reverse, .. } => Some(Op::Scan {
            body: body.clone(),
            carries: *carries,
            sequences: *sequences,
            reverse: *reverse,
            output: ScanOutput::Final(0),
        }),
        _ => None,
    }
}

impl ScanLoops {
    /// Groups the scan steps of `schedule` and specializes each group's body.
    pub(super) fn plan(schedule: &Schedule, shapes: &[Vec<usize>], options: PlanOptions) -> ScanLoops {
        let g = &schedule.graph;
        let mut roles: Vec<Role> = schedule.steps.iter().map(|_| Role::Other).collect();
        let mut keys: Vec<(usize, Op, &[NodeId])> = Vec::new();
        for (s, step) in schedule.steps.iter().enumerate() {
            let StepKind::Fallback { node } = step.kind else { continue };
            let n = g.node(node);
            let Some(key) = loop_key(&n.op) else { continue };
            let same = keys.iter().find(|(_, k, ins)| *k == key && *ins == n.inputs.as_slice());
            if let Some(&(leader, _, _)) = same {
                if let Role::Leader { members, .. } = &mut roles[leader] {
                    members.push(node);
                    roles[s] = Role::Member;
                }
                continue;
            }
            keys.push((s, key, &n.inputs));
            if let Some(prepared) = prepare(g, node, shapes, options) {
                roles[s] = Role::Leader { prepared: Box::new(prepared), members: vec![node] };
            }
        }
        ScanLoops { roles }
    }

    /// Whether step `s` is a scan run natively (as a leader or a member).
    pub(super) fn is_native(&self, s: usize) -> bool {
        !matches!(self.roles.get(s), None | Some(Role::Other))
    }

    /// The nodes whose results step `s` writes besides its own outputs.
    pub(super) fn members(&self, s: usize) -> &[NodeId] {
        match self.roles.get(s) {
            Some(Role::Leader { members, .. }) => members,
            _ => &[],
        }
    }

    /// The instruction of step `s`: the loop for a leader, nothing for a member.
    pub(super) fn instr(
        &self,
        s: usize,
        g: &Graph,
        shapes: &[Vec<usize>],
        ptr: &dyn Fn(NodeId) -> Ptr,
    ) -> Option<Instr> {
        let Some(Role::Leader { prepared: p, members }) = self.roles.get(s) else { return None };
        let Op::Scan { carries, sequences, reverse, .. } = &g.node(p.node).op else { return None };
        let described = |n: NodeId| (ptr(n), g.ty(n).dtype, shapes[n.index()].clone());
        let operands = g.node(p.node).inputs.iter().map(|&x| described(x)).collect();
        let results = members
            .iter()
            .filter_map(|&n| match g.node(n).op {
                Op::Scan { output, .. } => {
                    let (p, d, s) = described(n);
                    Some((output, p, d, s))
                }
                _ => None,
            })
            .collect();
        Some(Instr::Scan(Box::new(ScanLoop {
            node: p.node,
            body: p.body.clone(),
            plan: p.plan.clone(),
            carries: *carries,
            sequences: *sequences,
            reverse: *reverse,
            steps: p.steps,
            operands,
            results,
        })))
    }
}

/// Specializes the body of scan `node` for its operand sizes, or `None` when the JIT cannot
/// run it (the reference fallback then does).
fn prepare(g: &Graph, node: NodeId, shapes: &[Vec<usize>], options: PlanOptions) -> Option<Prepared> {
    let Op::Scan { body, carries, sequences, output, .. } = &g.node(node).op else { return None };
    let ins = &g.node(node).inputs;
    let (k, m) = (*carries, *sequences);
    if ins.len() != body.inputs.len() || k + m > ins.len() || m == 0 || body.outputs.len() < k {
        return None;
    }
    let steps = *shapes[ins[k].index()].get(1)?;
    let mut env = SymEnv::new();
    for (i, (info, &x)) in body.inputs.iter().zip(ins).enumerate() {
        let mut concrete = shapes[x.index()].clone();
        if (k..k + m).contains(&i) {
            if concrete.len() < 2 || concrete[1] != steps {
                return None;
            }
            concrete.remove(1);
        }
        if concrete.len() != info.ty.rank() {
            return None;
        }
        for (d, &n) in info.ty.shape.iter().zip(&concrete) {
            match d {
                Dim::Const(c) if usize::try_from(*c) != Ok(n) => return None,
                Dim::Sym(s) => env.bind(s, n).ok()?,
                Dim::Const(_) => {}
            }
        }
    }
    let schedule = crate::fuse::schedule(body).ok()?;
    let plan = specialize(&schedule, &env, None, options).ok()?;
    // The runner reads every body output after a step: i64 outputs must be in the i64 arena.
    let unreadable = plan.outputs.iter().any(|(p, d, _)| *d == DType::I64 && matches!(p.base, Base::Ext(_)));
    // Carries keep their size, and every stacked output fits its `[B, T, ..]` result.
    let carries_fit = (0..k).all(|j| plan.outputs[j].2 == plan.input_shapes[j]);
    let fits = match *output {
        ScanOutput::Stacked(j) => plan.outputs.get(j).is_some_and(|o| {
            let whole = &shapes[node.index()];
            whole.len() >= 2 && o.2.iter().product::<usize>() * steps == whole.iter().product::<usize>()
        }),
        ScanOutput::Final(j) => j < k,
    };
    (!unreadable && carries_fit && fits).then_some(Prepared { node, body: schedule.graph, plan, steps })
}

/// A scratch buffer of one element type.
#[derive(Debug)]
enum Buf {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Buf {
    fn new(dtype: DType, len: usize) -> Buf {
        if dtype == DType::I64 { Buf::I64(vec![0; len]) } else { Buf::F32(vec![0.0; len]) }
    }

    fn as_slice(&self) -> Slice<'_> {
        match self {
            Buf::F32(b) => Slice::F32(b),
            Buf::I64(b) => Slice::I64(b),
        }
    }
}

/// An outer tensor the loop reads or writes: its frame slot, element type and size as
/// `[batch, time, row]` (time 1 for carries and captures).
#[derive(Copy, Clone, Debug)]
struct Outer {
    slot: usize,
    dtype: DType,
    batch: usize,
    time: usize,
    row: usize,
}

impl Outer {
    fn new(slot: usize, dtype: DType, shape: &[usize], timed: bool) -> Outer {
        let len: usize = shape.iter().product();
        if timed && shape.len() >= 2 {
            let (batch, time) = (shape[0], shape[1]);
            Outer { slot, dtype, batch, time, row: shape[2..].iter().product() }
        } else {
            Outer { slot, dtype, batch: 1, time: 1, row: len }
        }
    }

    fn len(&self) -> usize {
        self.batch * self.time * self.row
    }
}

/// A loop ready to run: the compiled body, the outer tensors as frame slots, and scratch.
pub(crate) struct ScanRunner {
    node: NodeId,
    body: Program,
    reverse: bool,
    steps: usize,
    inits: Vec<Outer>,
    sequences: Vec<Outer>,
    captures: Vec<Outer>,
    results: Vec<(ScanOutput, Outer)>,
    /// The carries between steps.
    carries: Vec<Buf>,
    /// Step `t` of each sequence, contiguous.
    xs: Vec<Buf>,
    /// Whether the body reads each sequence; the others are not copied.
    read: Vec<bool>,
    /// Runs so far (for tests: one per training step however many nodes read the loop).
    runs: u64,
}

impl std::fmt::Debug for ScanRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scan %{} over {} steps", self.node.0, self.steps)
    }
}

impl ScanRunner {
    /// Compiles the body of `lp` and gives every outer pointer a frame slot.
    pub(super) fn new(
        lp: &ScanLoop,
        slot: &mut dyn FnMut(Ptr) -> usize,
        seed: u64,
    ) -> Result<ScanRunner, KernelError> {
        let (k, m) = (lp.carries, lp.sequences);
        let outer =
            |(p, d, s): &(Ptr, DType, Vec<usize>), timed: bool, slot: &mut dyn FnMut(Ptr) -> usize| {
                Outer::new(slot(*p), *d, s, timed)
            };
        let inits: Vec<Outer> = lp.operands[..k].iter().map(|o| outer(o, false, slot)).collect();
        let sequences: Vec<Outer> = lp.operands[k..k + m].iter().map(|o| outer(o, true, slot)).collect();
        let captures = lp.operands[k + m..].iter().map(|o| outer(o, false, slot)).collect();
        let results = lp
            .results
            .iter()
            .map(|(which, p, d, s)| {
                (*which, outer(&(*p, *d, s.clone()), matches!(which, ScanOutput::Stacked(_)), slot))
            })
            .collect();
        let carries = inits.iter().map(|o| Buf::new(o.dtype, o.len())).collect();
        let xs = sequences.iter().map(|o| Buf::new(o.dtype, o.batch * o.row)).collect();
        let body = Program::new(&lp.body, lp.plan.clone(), seed, false)?;
        let used = read_inputs(&lp.body);
        let read = (k..k + m).map(|i| used.get(i).copied().unwrap_or(true)).collect();
        Ok(ScanRunner {
            node: lp.node,
            body,
            reverse: lp.reverse,
            steps: lp.steps,
            inits,
            sequences,
            captures,
            results,
            carries,
            xs,
            read,
            runs: 0,
        })
    }

    /// How many times the loop ran.
    pub(crate) fn runs(&self) -> u64 {
        self.runs
    }

    /// Runs the whole loop, reading and writing the outer tensors through `ctx`'s frame.
    pub(super) fn run(&mut self, ctx: &super::host::HostCtx) -> Result<(), RunError> {
        let node = self.node;
        let invalid = |message: String| RunError::InvalidGraph { node, message };
        self.runs += 1;
        let ScanRunner {
            body, reverse, steps, inits, sequences, captures, results, carries, xs, read, ..
        } = self;
        // Safety (every outer slice below): the plan sized each operand's and result's
        // buffer for exactly the shape recorded in `Outer`, and results are disjoint from
        // operands and from each other (module header).
        for (buf, o) in carries.iter_mut().zip(inits.iter()) {
            match buf {
                Buf::F32(b) => b.copy_from_slice(unsafe { ctx.slice::<f32>(o.slot, o.len()) }),
                Buf::I64(b) => b.copy_from_slice(unsafe { ctx.slice::<i64>(o.slot, o.len()) }),
            }
        }
        let (k, m) = (carries.len(), xs.len());
        for i in 0..*steps {
            let t = if *reverse { *steps - 1 - i } else { i };
            for ((buf, o), _) in xs.iter_mut().zip(sequences.iter()).zip(read.iter()).filter(|(_, r)| **r) {
                match buf {
                    Buf::F32(b) => step_of(unsafe { ctx.slice::<f32>(o.slot, o.len()) }, b, o, t),
                    Buf::I64(b) => step_of(unsafe { ctx.slice::<i64>(o.slot, o.len()) }, b, o, t),
                }
            }
            let input = |i: usize| -> Slice<'_> {
                if i < k {
                    carries[i].as_slice()
                } else if i < k + m {
                    xs[i - k].as_slice()
                } else {
                    let c = &captures[i - k - m];
                    match c.dtype {
                        DType::I64 => Slice::I64(unsafe { ctx.slice::<i64>(c.slot, c.len()) }),
                        _ => Slice::F32(unsafe { ctx.slice::<f32>(c.slot, c.len()) }),
                    }
                }
            };
            body.run_slices(input, ctx.step)?;
            for (j, buf) in carries.iter_mut().enumerate() {
                match (buf, body.output(j).0) {
                    (Buf::F32(b), OutputRef::F32(new)) if new.len() == b.len() => b.copy_from_slice(new),
                    (Buf::I64(b), OutputRef::I64(new)) if new.len() == b.len() => b.copy_from_slice(new),
                    _ => return Err(invalid(format!("the body's new carry {j} does not fit the carry"))),
                }
            }
            for (which, o) in results.iter() {
                let ScanOutput::Stacked(j) = *which else { continue };
                match (body.output(j).0, o.dtype) {
                    (OutputRef::I64(y), DType::I64) => {
                        stack_into(y, unsafe { ctx.slice_mut::<i64>(o.slot, o.len()) }, o, t)
                    }
                    (OutputRef::F32(y), d) if d != DType::I64 => {
                        stack_into(y, unsafe { ctx.slice_mut::<f32>(o.slot, o.len()) }, o, t)
                    }
                    _ => false,
                }
                .then_some(())
                .ok_or_else(|| invalid(format!("body output {j} does not fit its stacked result")))?;
            }
        }
        for (which, o) in results.iter() {
            let ScanOutput::Final(j) = *which else { continue };
            let fits = match (carries.get(j), o.dtype) {
                (Some(Buf::I64(b)), DType::I64) if b.len() == o.len() => {
                    unsafe { ctx.slice_mut::<i64>(o.slot, o.len()) }.copy_from_slice(b);
                    true
                }
                (Some(Buf::F32(b)), d) if d != DType::I64 && b.len() == o.len() => {
                    unsafe { ctx.slice_mut::<f32>(o.slot, o.len()) }.copy_from_slice(b);
                    true
                }
                _ => false,
            };
            if !fits {
                return Err(invalid(format!("carry {j} does not fit its final result")));
            }
        }
        Ok(())
    }
}

/// Which inputs of `body` some node or output reads.
fn read_inputs(body: &Graph) -> Vec<bool> {
    let mut read = vec![false; body.inputs.len()];
    let mut mark = |id: NodeId| {
        if let Op::Input { index } = body.node(id).op
            && let Some(r) = read.get_mut(index)
        {
            *r = true;
        }
    };
    for n in &body.nodes {
        n.inputs.iter().for_each(|&i| mark(i));
    }
    body.outputs.iter().for_each(|&(_, o)| mark(o));
    read
}

/// Copies step `t` of a `[batch, time, row]` sequence into `dst` (`[batch, row]`).
fn step_of<T: Copy>(src: &[T], dst: &mut [T], o: &Outer, t: usize) {
    for (b, row) in dst.chunks_exact_mut(o.row.max(1)).enumerate().take(o.batch) {
        let at = (b * o.time + t) * o.row;
        row.copy_from_slice(&src[at..at + o.row]);
    }
}

/// Writes one step's output `y` (`[batch, row]`) at step `t` of `out` (`[batch, time,
/// row]`); false when the sizes disagree.
fn stack_into<T: Copy>(y: &[T], out: &mut [T], o: &Outer, t: usize) -> bool {
    if y.len() != o.batch * o.row || t >= o.time {
        return false;
    }
    for b in 0..o.batch {
        let at = (b * o.time + t) * o.row;
        out[at..at + o.row].copy_from_slice(&y[b * o.row..(b + 1) * o.row]);
    }
    true
}
