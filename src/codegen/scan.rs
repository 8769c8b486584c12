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
//! Lanes: when the step has two threads and the body keeps batch rows apart
//! (`scan_rows.rs`), the loop runs as two lanes, each over one half of the batch with its
//! own compiled body, scratch and rows of every result, side by side on the kernels' team.
//! The halves meet only at the end of the loop: per-step products of a training batch are
//! too small to split with profit, but a whole half of the loop is not.
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
use std::ops::Range;

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
    /// When the body keeps batch rows apart and the step has threads to spare: the body
    /// specialized for the two halves of the batch, run side by side.
    pub halves: Option<Box<Halves>>,
}

/// A loop split by batch rows: `plans[0]` runs rows `..rows`, `plans[1]` the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Halves {
    pub rows: usize,
    pub plans: [Plan; 2],
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
    halves: Option<Box<Halves>>,
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
            halves: p.halves.clone(),
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
    let halves = halves(&schedule, ins, shapes, &env, options, k, m);
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
    (!unreadable && carries_fit && fits).then_some(Prepared {
        node,
        body: schedule.graph,
        plan,
        steps,
        halves,
    })
}

/// The body specialized for each half of the batch, when it keeps rows apart
/// (`scan_rows.rs`), the batch has two rows or more, and the step may use two threads.
/// Each half runs on one thread, so its products are not split further.
fn halves(
    schedule: &Schedule,
    ins: &[NodeId],
    shapes: &[Vec<usize>],
    env: &SymEnv,
    options: PlanOptions,
    carries: usize,
    sequences: usize,
) -> Option<Box<Halves>> {
    let body = &schedule.graph;
    let batch = *shapes[ins[carries].index()].first()?;
    let Some(Dim::Sym(symbol)) = body.inputs.first().and_then(|i| i.ty.shape.first()) else { return None };
    if options.threads < 2 || batch < 2 || !super::scan_rows::rows_independent(body, carries, sequences) {
        return None;
    }
    let rows = batch / 2;
    let one_thread = PlanOptions { threads: 1, ..options };
    let plan = |n: usize| {
        let mut env = env.clone();
        env.rebind(symbol, n);
        specialize(schedule, &env, None, one_thread).ok()
    };
    Some(Box::new(Halves { rows, plans: [plan(rows)?, plan(batch - rows)?] }))
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

    /// Elements of one batch row (all its steps).
    fn per_row(&self) -> usize {
        self.time * self.row
    }
}

/// The elements of a carry or final result that batch rows `rows` own, as (first, count).
/// A lane of the whole batch owns the whole tensor, which may have no batch axis (a carry
/// accumulating a captured weight's gradient); a loop in halves has only `[batch, ..]`
/// carries (`scan_rows.rs`).
fn share(o: &Outer, batch: usize, rows: &Range<usize>) -> (usize, usize) {
    if rows.len() == batch {
        (0, o.len())
    } else {
        let per_row = o.len() / batch;
        (rows.start * per_row, rows.len() * per_row)
    }
}

/// Elements `at..at + len` of an outer tensor at address `addr`.
///
/// # Safety
/// `addr` is the tensor's frame address for the current run, where `o.len()` elements of
/// `o.dtype` live, and `at + len ≤ o.len()`.
unsafe fn rows_of<'a>(addr: usize, o: &Outer, (at, len): (usize, usize)) -> Slice<'a> {
    match o.dtype {
        DType::I64 => Slice::I64(unsafe { std::slice::from_raw_parts((addr as *const i64).add(at), len) }),
        _ => Slice::F32(unsafe { std::slice::from_raw_parts((addr as *const f32).add(at), len) }),
    }
}

/// A result's rows for one lane, writable.
enum RowsMut<'a> {
    F32(&'a mut [f32]),
    I64(&'a mut [i64]),
}

/// `rows_of` for writing.
///
/// # Safety
/// As `rows_of`, and nothing else reads or writes those rows while the slice lives (the
/// lanes' rows are disjoint, and results are disjoint from operands).
unsafe fn rows_of_mut<'a>(addr: usize, o: &Outer, (at, len): (usize, usize)) -> RowsMut<'a> {
    match o.dtype {
        DType::I64 => {
            RowsMut::I64(unsafe { std::slice::from_raw_parts_mut((addr as *mut i64).add(at), len) })
        }
        _ => RowsMut::F32(unsafe { std::slice::from_raw_parts_mut((addr as *mut f32).add(at), len) }),
    }
}

/// One loop over a run of the batch's rows: its compiled body and scratch.
struct Lane {
    /// The batch rows it runs.
    rows: Range<usize>,
    body: Program,
    /// The carries between steps.
    carries: Vec<Buf>,
    /// Step `t` of each sequence, contiguous.
    xs: Vec<Buf>,
}

// Safety: a lane's `Program` owns its arenas, frame and host context (the raw pointers in
// it point into its own allocations, or into slices bound for the duration of one run),
// and its compiled code is plain machine code callable from any thread. A lane is used by
// one thread at a time: `ScanRunner::run` hands each lane to exactly one side of a join.
unsafe impl Send for Lane {}

/// What every lane of one run reads: the loop's shape and where the outer tensors are.
struct Shared<'a> {
    /// Rows of the whole batch.
    batch: usize,
    reverse: bool,
    steps: usize,
    step: u64,
    read: &'a [bool],
    inits: &'a [Outer],
    sequences: &'a [Outer],
    captures: &'a [Outer],
    results: &'a [(ScanOutput, Outer)],
    /// This run's frame address of every outer tensor: inits, sequences, captures, results.
    addrs: &'a [usize],
}

impl Shared<'_> {
    fn sequence_addr(&self, i: usize) -> usize {
        self.addrs[self.inits.len() + i]
    }

    fn capture_addr(&self, i: usize) -> usize {
        self.addrs[self.inits.len() + self.sequences.len() + i]
    }

    fn result_addr(&self, i: usize) -> usize {
        self.addrs[self.inits.len() + self.sequences.len() + self.captures.len() + i]
    }

    fn share(&self, o: &Outer, rows: &Range<usize>) -> (usize, usize) {
        share(o, self.batch, rows)
    }

    /// The elements of a sequence or stacked result (`[batch, time, ..]`) rows `rows` own.
    fn timed_share(o: &Outer, rows: &Range<usize>) -> (usize, usize) {
        (rows.start * o.per_row(), rows.len() * o.per_row())
    }
}

/// A loop ready to run: the compiled body (one per lane), the outer tensors as frame slots.
pub(crate) struct ScanRunner {
    node: NodeId,
    reverse: bool,
    steps: usize,
    inits: Vec<Outer>,
    sequences: Vec<Outer>,
    captures: Vec<Outer>,
    results: Vec<(ScanOutput, Outer)>,
    /// The whole batch, or its two halves run side by side.
    lanes: Vec<Lane>,
    /// Whether the body reads each sequence; the others are not copied.
    read: Vec<bool>,
    /// Frame addresses of the outer tensors, refreshed at each run (see `Shared::addrs`).
    addrs: Vec<usize>,
    /// Runs so far (for tests: one per training step however many nodes read the loop).
    runs: u64,
}

impl std::fmt::Debug for ScanRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scan %{} over {} steps in {} lane(s)", self.node.0, self.steps, self.lanes.len())
    }
}

impl ScanRunner {
    /// Compiles the body of `lp` (once per lane) and gives every outer pointer a frame slot.
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
        let captures: Vec<Outer> = lp.operands[k + m..].iter().map(|o| outer(o, false, slot)).collect();
        let results: Vec<(ScanOutput, Outer)> = lp
            .results
            .iter()
            .map(|(which, p, d, s)| {
                (*which, outer(&(*p, *d, s.clone()), matches!(which, ScanOutput::Stacked(_)), slot))
            })
            .collect();
        let batch = sequences.first().map_or(1, |o| o.batch).max(1);
        let lane = |rows: Range<usize>, plan: &Plan| -> Result<Lane, KernelError> {
            Ok(Lane {
                carries: inits.iter().map(|o| Buf::new(o.dtype, share(o, batch, &rows).1)).collect(),
                xs: sequences.iter().map(|o| Buf::new(o.dtype, rows.len() * o.row)).collect(),
                body: Program::new(&lp.body, plan.clone(), seed, false)?,
                rows,
            })
        };
        let lanes = match &lp.halves {
            Some(h) => vec![lane(0..h.rows, &h.plans[0])?, lane(h.rows..batch, &h.plans[1])?],
            None => vec![lane(0..batch, &lp.plan)?],
        };
        let used = read_inputs(&lp.body);
        let read = (k..k + m).map(|i| used.get(i).copied().unwrap_or(true)).collect();
        let addrs = vec![0; inits.len() + sequences.len() + captures.len() + results.len()];
        Ok(ScanRunner {
            node: lp.node,
            reverse: lp.reverse,
            steps: lp.steps,
            inits,
            sequences,
            captures,
            results,
            lanes,
            read,
            addrs,
            runs: 0,
        })
    }

    /// How many times the loop ran.
    pub(crate) fn runs(&self) -> u64 {
        self.runs
    }

    /// Runs the whole loop, reading and writing the outer tensors through `ctx`'s frame.
    pub(super) fn run(&mut self, ctx: &super::host::HostCtx) -> Result<(), RunError> {
        self.runs += 1;
        let outers = self.inits.iter().chain(&self.sequences).chain(&self.captures);
        let outers = outers.chain(self.results.iter().map(|(_, o)| o));
        for (addr, o) in self.addrs.iter_mut().zip(outers) {
            *addr = ctx.slot::<u8>(o.slot) as usize;
        }
        let shared = Shared {
            batch: self.sequences.first().map_or(1, |o| o.batch).max(1),
            reverse: self.reverse,
            steps: self.steps,
            step: ctx.step,
            read: &self.read,
            inits: &self.inits,
            sequences: &self.sequences,
            captures: &self.captures,
            results: &self.results,
            addrs: &self.addrs,
        };
        let node = self.node;
        match self.lanes.as_mut_slice() {
            [whole] => whole.run(node, &shared),
            [first, second] => {
                let shared = &shared;
                let (a, b) =
                    crate::kernels::team::join(|| first.run(node, shared), || second.run(node, shared));
                a.and(b)
            }
            _ => Err(RunError::InvalidGraph { node, message: "a loop without lanes".into() }),
        }
    }
}

impl Lane {
    /// Runs every step for this lane's rows, writing only those rows of the results.
    fn run(&mut self, node: NodeId, sh: &Shared<'_>) -> Result<(), RunError> {
        let invalid = |message: String| RunError::InvalidGraph { node, message };
        let Lane { rows, body, carries, xs } = self;
        let rows = &*rows;
        let n = rows.len();
        // Safety (every outer slice below): `sh.addrs` holds this run's frame addresses,
        // where the plan sized each operand's and result's buffer for exactly the shape in
        // its `Outer`; results are disjoint from operands and from each other (module
        // header), and each lane forms slices of its own rows of the results only.
        for (i, (buf, o)) in carries.iter_mut().zip(sh.inits).enumerate() {
            match (buf, unsafe { rows_of(sh.addrs[i], o, sh.share(o, rows)) }) {
                (Buf::F32(b), Slice::F32(d)) if b.len() == d.len() => b.copy_from_slice(d),
                (Buf::I64(b), Slice::I64(d)) if b.len() == d.len() => b.copy_from_slice(d),
                _ => return Err(invalid("an initial carry does not fit the carry".into())),
            }
        }
        let (k, m) = (carries.len(), xs.len());
        for i in 0..sh.steps {
            let t = if sh.reverse { sh.steps - 1 - i } else { i };
            for (s, (buf, o)) in xs.iter_mut().zip(sh.sequences).enumerate().filter(|(s, _)| sh.read[*s]) {
                let lane_o = Outer { batch: n, ..*o };
                match (buf, unsafe { rows_of(sh.sequence_addr(s), o, Shared::timed_share(o, rows)) }) {
                    (Buf::F32(b), Slice::F32(d)) => step_of(d, b, &lane_o, t),
                    (Buf::I64(b), Slice::I64(d)) => step_of(d, b, &lane_o, t),
                    _ => return Err(invalid("a sequence does not fit its step".into())),
                }
            }
            let input = |i: usize| -> Slice<'_> {
                if i < k {
                    carries[i].as_slice()
                } else if i < k + m {
                    xs[i - k].as_slice()
                } else {
                    let c = &sh.captures[i - k - m];
                    unsafe { rows_of(sh.capture_addr(i - k - m), c, (0, c.len())) }
                }
            };
            body.run_slices(input, sh.step)?;
            for (j, buf) in carries.iter_mut().enumerate() {
                match (buf, body.output(j).0) {
                    (Buf::F32(b), OutputRef::F32(new)) if new.len() == b.len() => b.copy_from_slice(new),
                    (Buf::I64(b), OutputRef::I64(new)) if new.len() == b.len() => b.copy_from_slice(new),
                    _ => return Err(invalid(format!("the body's new carry {j} does not fit the carry"))),
                }
            }
            for (r, (which, o)) in sh.results.iter().enumerate() {
                let ScanOutput::Stacked(j) = *which else { continue };
                let lane_o = Outer { batch: n, ..*o };
                match (body.output(j).0, unsafe {
                    rows_of_mut(sh.result_addr(r), o, Shared::timed_share(o, rows))
                }) {
                    (OutputRef::I64(y), RowsMut::I64(out)) => stack_into(y, out, &lane_o, t),
                    (OutputRef::F32(y), RowsMut::F32(out)) => stack_into(y, out, &lane_o, t),
                    _ => false,
                }
                .then_some(())
                .ok_or_else(|| invalid(format!("body output {j} does not fit its stacked result")))?;
            }
        }
        for (r, (which, o)) in sh.results.iter().enumerate() {
            let ScanOutput::Final(j) = *which else { continue };
            let fits = match (carries.get(j), unsafe { rows_of_mut(sh.result_addr(r), o, sh.share(o, rows)) })
            {
                (Some(Buf::I64(b)), RowsMut::I64(out)) if b.len() == out.len() => {
                    out.copy_from_slice(b);
                    true
                }
                (Some(Buf::F32(b)), RowsMut::F32(out)) if b.len() == out.len() => {
                    out.copy_from_slice(b);
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
