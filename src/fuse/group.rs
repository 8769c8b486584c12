//! Builds a [`Schedule`]: decides which values are stored, then groups the stored ones into
//! steps in topological order.
//!
//! Storage rules, decided from the last node to the first so that consumers decide first:
//! a value is stored when the graph outputs it, when a consumer cannot compute it inline
//! (a matrix product, a fallback, a stored reshape of it), when it is expensive (a
//! transcendental function, a division) and read more than once, or when its inlined
//! expression would grow beyond [`MAX_INLINE`] nodes. Everything else elementwise is
//! computed inside each kernel that reads it. A stored elementwise value joins the step of
//! the latest value it depends on when that step is an elementwise kernel over the same
//! domain (it reads the step's other outputs as expressions, never from their buffers
//! being written), so a layer's forward ops and the masks its backward pass needs become
//! one kernel. A pattern that turns out not expressible stores the node and starts over;
//! each retry marks one more node, so the loop ends.

use super::access::operand_access;
use super::{FuseError, Loc, MatOperand, Schedule, Step, StepKind};
use crate::codegen::{Access, KernelExpr, ReduceAxis};
use crate::ir::{BinaryOp, Graph, NodeId, Op, ReduceOp, UnaryOp};
use crate::shape::{DType, Dim};

/// The largest expression a value may be inlined as; larger ones are stored.
const MAX_INLINE: usize = 40;

/// What kind of work a node is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Class {
    Leaf,
    /// Elementwise on f32 and bool, fills and broadcasts: inlinable.
    Fusible,
    Reshape,
    /// A size: known once the symbols are bound.
    Size,
    Reduce,
    MatMul,
    Transpose,
    OneHot,
    Other,
}

fn kernel_dtype(d: DType) -> bool {
    matches!(d, DType::F32 | DType::Bool)
}

fn classify(graph: &Graph, id: NodeId, fallback: bool) -> Class {
    let node = graph.node(id);
    let operands_ok = node.inputs.iter().all(|&i| kernel_dtype(graph.ty(i).dtype));
    let ok = kernel_dtype(node.ty.dtype) && operands_ok;
    if fallback {
        return Class::Other;
    }
    match &node.op {
        Op::Input { .. } | Op::Param { .. } => Class::Leaf,
        Op::Fill { .. } | Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast { .. } | Op::Broadcast
            if ok =>
        {
            Class::Fusible
        }
        Op::Reshape => Class::Reshape,
        Op::SizeOf { .. } if kernel_dtype(node.ty.dtype) => Class::Size,
        Op::Reduce { axes, .. }
            if node.ty.dtype == DType::F32
                && reduce_split(axes, graph.ty(node.inputs[0]).rank()).is_some() =>
        {
            Class::Reduce
        }
        Op::MatMul if node.ty.dtype == DType::F32 => Class::MatMul,
        Op::Transpose { .. } => Class::Transpose,
        Op::OneHot { .. } if node.ty.dtype == DType::F32 && graph.ty(node.inputs[0]).dtype == DType::I64 => {
            Class::OneHot
        }
        _ => Class::Other,
    }
}

/// Whether recomputing the op in every reader costs about as much as reading it.
fn cheap(op: &Op) -> bool {
    match op {
        Op::Unary(u) => matches!(u, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Not),
        Op::Binary(b) => !matches!(b, BinaryOp::Div | BinaryOp::Pow),
        _ => true,
    }
}

/// The split and direction of a reduction over sorted `axes` of a rank-`rank` value: a
/// suffix reduces the columns, a prefix the rows.
fn reduce_split(axes: &[usize], rank: usize) -> Option<(usize, ReduceAxis)> {
    let first = *axes.first()?;
    let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
    let last = *axes.last()?;
    if !contiguous || last >= rank {
        return None;
    }
    if last + 1 == rank {
        Some((first, ReduceAxis::Cols))
    } else if first == 0 {
        Some((last + 1, ReduceAxis::Rows))
    } else {
        None
    }
}

/// Whether `id` is a swap of the last two axes that only matrix products read.
fn is_transposed_view(graph: &Graph, id: NodeId, consumers: &[NodeId], is_output: bool) -> bool {
    let Op::Transpose { perm } = &graph.node(id).op else { return false };
    let r = perm.len();
    let swaps_last_two = r >= 2
        && perm[..r - 2].iter().enumerate().all(|(i, &p)| p == i)
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2;
    swaps_last_two
        && !is_output
        && graph.node(id).ty.dtype == DType::F32
        && !consumers.is_empty()
        && consumers.iter().all(|&c| matches!(graph.node(c).op, Op::MatMul))
}

/// The node summing the stacked product `id` over all its batch axes, when that sum is its
/// only reader: `Σ_b A_bᵀ·B_b` with every `A_b` and `B_b` the same shape as the product's
/// stack. When A is read transposed and B is not (the weight gradient of a dense layer over
/// a sequence, `Σ_b X_bᵀ·dY_b`), the batch axis joins the depth of one product,
/// `[X_1; X_2; …]ᵀ·[dY_1; dY_2; …]`, with neither the stack of products nor its sum stored.
fn summed_over_batch(graph: &Graph, id: NodeId, consumers: &[NodeId], is_output: bool) -> Option<NodeId> {
    let node = graph.node(id);
    let shape = &node.ty.shape;
    let rank = shape.len();
    let [sum] = consumers else { return None };
    let same_stack = node.inputs.iter().all(|&x| {
        let s = &graph.ty(x).shape;
        s.len() == rank && s[..rank - 2] == shape[..rank - 2]
    });
    let sums_the_stack = matches!(&graph.node(*sum).op,
        Op::Reduce { op: ReduceOp::Sum, axes, keep: false } if axes.iter().copied().eq(0..rank - 2));
    (rank >= 3 && !is_output && node.ty.dtype == DType::F32 && same_stack && sums_the_stack).then_some(*sum)
}

/// Why a build attempt stopped: the node must be stored, or computed by the fallback.
enum Retry {
    Store(NodeId),
    Fallback(NodeId),
}

/// Schedules the live nodes of `graph`.
pub fn schedule(graph: &Graph) -> Result<Schedule, FuseError> {
    let live = graph.live_nodes();
    for id in graph.ids().filter(|id| live[id.index()]) {
        let n = graph.node(id);
        if !matches!(n.ty.dtype, DType::F32 | DType::Bool | DType::I64) {
            return Err(FuseError::DType { node: id.0, op: n.op.to_string(), dtype: n.ty.dtype.to_string() });
        }
    }
    let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); graph.nodes.len()];
    for id in graph.ids().filter(|id| live[id.index()]) {
        for &o in &graph.node(id).inputs {
            consumers[o.index()].push(id);
        }
    }
    let mut forced_store = vec![false; graph.nodes.len()];
    let mut forced_fallback = vec![false; graph.nodes.len()];
    loop {
        let builder = Builder::new(graph, &live, &consumers, &forced_store, &forced_fallback);
        match builder.run() {
            Ok(s) => return Ok(s),
            Err(Retry::Store(id)) if !forced_store[id.index()] => forced_store[id.index()] = true,
            Err(Retry::Store(id) | Retry::Fallback(id)) => {
                // A stored node whose own expression is not expressible: the reference
                // kernel computes it. Marking it again would not make progress.
                if forced_fallback[id.index()] {
                    unreachable!("node %{} failed as a fallback", id.0);
                }
                forced_fallback[id.index()] = true;
            }
        }
    }
}

/// One attempt at scheduling with a given set of forced decisions.
struct Builder<'g> {
    graph: &'g Graph,
    live: &'g [bool],
    class: Vec<Class>,
    stored: Vec<bool>,
    locs: Vec<Loc>,
    steps: Vec<Step>,
    is_output: Vec<bool>,
}

/// The inputs and domain of the kernel an expression is built for, and the outputs of the
/// step it is merged into (read as expressions, not from their buffers).
struct Ctx<'a> {
    domain: &'a [Dim],
    split: usize,
    inputs: Vec<(NodeId, Access)>,
    members: &'a [(NodeId, KernelExpr)],
    /// The step being merged into, whose buffers must not be read.
    target: Option<usize>,
}

impl Ctx<'_> {
    fn input(&mut self, node: NodeId, access: Access) -> KernelExpr {
        let k = match self.inputs.iter().position(|&(n, a)| n == node && a == access) {
            Some(k) => k,
            None => {
                self.inputs.push((node, access));
                self.inputs.len() - 1
            }
        };
        KernelExpr::Input(k)
    }
}

impl<'g> Builder<'g> {
    fn new(
        graph: &'g Graph,
        live: &'g [bool],
        consumers: &[Vec<NodeId>],
        forced_store: &[bool],
        forced_fallback: &[bool],
    ) -> Builder<'g> {
        let n = graph.nodes.len();
        let class: Vec<Class> =
            graph.ids().map(|id| classify(graph, id, forced_fallback[id.index()])).collect();
        let mut is_output = vec![false; n];
        for (_, o) in &graph.outputs {
            is_output[o.index()] = true;
        }
        // Storage, consumers first.
        let mut stored = vec![false; n];
        for i in (0..n).rev() {
            if !live[i] {
                continue;
            }
            let demanded = consumers[i].iter().any(|&c| match class[c.index()] {
                Class::Fusible | Class::Reduce | Class::Size | Class::Leaf => false,
                Class::Reshape => stored[c.index()],
                Class::Transpose | Class::MatMul | Class::OneHot | Class::Other => true,
            });
            let expensive_reuse = consumers[i].len() > 1 && !cheap(&graph.nodes[i].op);
            stored[i] = match class[i] {
                Class::Fusible => forced_store[i] || is_output[i] || demanded || expensive_reuse,
                Class::Reshape => forced_store[i] || is_output[i] || demanded,
                Class::Leaf => false,
                _ => true,
            };
        }
        // Bound the size of inlined expressions.
        let mut size = vec![1usize; n];
        for i in 0..n {
            if !live[i] || !matches!(class[i], Class::Fusible | Class::Reshape) || stored[i] {
                continue;
            }
            let s: usize = 1 + graph.nodes[i]
                .inputs
                .iter()
                .map(|o| if stored[o.index()] { 1 } else { size[o.index()] })
                .sum::<usize>();
            if s > MAX_INLINE && class[i] == Class::Fusible {
                stored[i] = true;
            } else {
                size[i] = s;
            }
        }
        Builder { graph, live, class, stored, locs: vec![Loc::Dead; n], steps: Vec::new(), is_output }
    }

    fn run(mut self) -> Result<Schedule, Retry> {
        let graph = self.graph;
        let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); graph.nodes.len()];
        for id in graph.ids().filter(|id| self.live[id.index()]) {
            for &o in &graph.node(id).inputs {
                consumers[o.index()].push(id);
            }
        }
        for id in graph.ids().filter(|id| self.live[id.index()]) {
            let i = id.index();
            let node = graph.node(id);
            let loc = match (self.class[i], &node.op) {
                (Class::Leaf, Op::Input { index }) => Loc::Input(*index),
                (Class::Leaf, _) => match node.op {
                    Op::Param { index } => Loc::Param(index),
                    _ => unreachable!("leaves are inputs and parameters"),
                },
                (Class::Fusible | Class::Reshape, _) if !self.stored[i] => Loc::Inlined,
                (Class::Reshape, _) => Loc::Alias(node.inputs[0]),
                (Class::Fusible, Op::Fill { .. }) | (Class::Size, _) => {
                    self.push(StepKind::Constant { node: id })
                }
                (Class::Fusible, _) => self.elementwise(id)?,
                (_, Op::Reduce { .. }) if matches!(self.locs[node.inputs[0].index()], Loc::Summed(_)) => {
                    let product = graph.node(node.inputs[0]);
                    let (a, b) = (self.mat_operand(product.inputs[0]), self.mat_operand(product.inputs[1]));
                    self.push(StepKind::MatMul { node: id, a, b, epilogue: None, summed: true })
                }
                (Class::Reduce, Op::Reduce { op, axes, .. }) => self.reduce(id, *op, axes)?,
                (Class::MatMul, _) => {
                    let (a, b) = (self.mat_operand(node.inputs[0]), self.mat_operand(node.inputs[1]));
                    match summed_over_batch(graph, id, &consumers[i], self.is_output[i]) {
                        // The sum's own step computes it as one deeper product.
                        Some(sum) if a.transposed && !b.transposed => Loc::Summed(sum),
                        _ => self.push(StepKind::MatMul { node: id, a, b, epilogue: None, summed: false }),
                    }
                }
                (Class::Transpose, _) if is_transposed_view(graph, id, &consumers[i], self.is_output[i]) => {
                    Loc::Transposed(node.inputs[0])
                }
                (Class::OneHot, Op::OneHot { depth }) => {
                    self.push(StepKind::OneHot { node: id, labels: node.inputs[0], depth: *depth })
                }
                _ => self.push(StepKind::Fallback { node: id }),
            };
            self.locs[i] = loc;
        }
        Ok(self.finish())
    }

    fn push(&mut self, kind: StepKind) -> Loc {
        self.steps.push(Step { kind });
        Loc::Stored { step: self.steps.len() - 1 }
    }

    /// The storage and orientation a matrix product reads `id` with.
    fn mat_operand(&self, id: NodeId) -> MatOperand {
        let (mut node, mut transposed) = (id, false);
        loop {
            match self.locs[node.index()] {
                Loc::Alias(to) => node = to,
                Loc::Transposed(to) => {
                    transposed = !transposed;
                    node = to;
                }
                _ => return MatOperand { node, transposed },
            }
        }
    }

    fn storage(&self, id: NodeId) -> NodeId {
        let mut id = id;
        while let Loc::Alias(to) = self.locs[id.index()] {
            id = to;
        }
        id
    }

    /// The expression for reading `id` with `access` in `ctx`.
    fn expr(&self, id: NodeId, access: Access, ctx: &mut Ctx) -> Result<KernelExpr, Retry> {
        match &self.locs[id.index()] {
            Loc::Inlined => self.op_expr(id, access, ctx),
            Loc::Stored { step } if Some(*step) == ctx.target => {
                match ctx.members.iter().find(|(n, _)| *n == id) {
                    Some((_, e)) if access == Access::Full => Ok(e.clone()),
                    // Reading a buffer the same kernel writes: not a merge candidate.
                    _ => Err(Retry::Store(id)),
                }
            }
            Loc::Stored { .. } | Loc::Input(_) | Loc::Param(_) | Loc::Alias(_) => {
                let storage = self.storage(id);
                if let (Loc::Stored { step }, Some(t)) = (&self.locs[storage.index()], ctx.target)
                    && *step == t
                {
                    return Err(Retry::Store(id));
                }
                Ok(ctx.input(storage, access))
            }
            Loc::Dead | Loc::Transposed(_) | Loc::Summed(_) => {
                unreachable!("kernels read only live, untransposed values")
            }
        }
    }

    /// The expression of `id`'s own op, its operands read as `access` implies.
    fn op_expr(&self, id: NodeId, access: Access, ctx: &mut Ctx) -> Result<KernelExpr, Retry> {
        let node = self.graph.node(id);
        let fail = || if self.stored[id.index()] { Retry::Fallback(id) } else { Retry::Store(id) };
        let operand = |k: usize, ctx: &mut Ctx| -> Result<KernelExpr, Retry> {
            let o = node.inputs[k];
            let a = operand_access(access, &self.graph.ty(o).shape, &node.ty.shape, ctx.domain, ctx.split)
                .ok_or_else(fail)?;
            self.expr(o, a, ctx)
        };
        Ok(match &node.op {
            Op::Fill { value } => {
                let v = if node.ty.dtype == DType::Bool {
                    f32::from(u8::from(*value != 0.0))
                } else {
                    *value as f32
                };
                KernelExpr::Const(v)
            }
            Op::Reshape => self.expr(node.inputs[0], access, ctx)?,
            Op::Broadcast => operand(0, ctx)?,
            Op::Unary(u) => KernelExpr::unary(*u, operand(0, ctx)?),
            Op::Binary(b) => {
                let a = operand(0, ctx)?;
                KernelExpr::binary(*b, a, operand(1, ctx)?)
            }
            Op::Select => {
                let c = operand(0, ctx)?;
                let a = operand(1, ctx)?;
                KernelExpr::select(c, a, operand(2, ctx)?)
            }
            Op::Cast { to } => {
                let x = operand(0, ctx)?;
                let from = self.graph.ty(node.inputs[0]).dtype;
                if *to == DType::Bool && from != DType::Bool {
                    // A number as a bool is `x != 0`: the mask of the mask of `x`.
                    KernelExpr::unary(UnaryOp::Not, KernelExpr::unary(UnaryOp::Not, x))
                } else {
                    x
                }
            }
            _ => unreachable!("only fusible ops are inlined"),
        })
    }

    /// Schedules a stored elementwise node: merged into an earlier kernel over the same
    /// domain when the dependencies allow, else a new kernel.
    fn elementwise(&mut self, id: NodeId) -> Result<Loc, Retry> {
        let domain = self.graph.ty(id).shape.clone();
        let split = domain.len().saturating_sub(1);
        let mut fresh = Ctx { domain: &domain, split, inputs: Vec::new(), members: &[], target: None };
        let expr = self.op_expr(id, Access::Full, &mut fresh)?;
        let last_dep = fresh
            .inputs
            .iter()
            .filter_map(|(n, _)| match self.locs[n.index()] {
                Loc::Stored { step } => Some(step),
                _ => None,
            })
            .max();
        let same_domain =
            |s: &Step| matches!(&s.kind, StepKind::Elementwise { domain: d, .. } if *d == domain);
        let last = self.steps.len().checked_sub(1);
        let target = match (last, last_dep) {
            (Some(l), dep) if same_domain(&self.steps[l]) && dep.is_none_or(|d| d <= l) => Some(l),
            (_, Some(d)) if same_domain(&self.steps[d]) => Some(d),
            _ => None,
        };
        if let Some(t) = target
            && let StepKind::Elementwise { inputs, outputs, exprs, .. } = &self.steps[t].kind
        {
            let members: Vec<(NodeId, KernelExpr)> =
                outputs.iter().copied().zip(exprs.iter().cloned()).collect();
            let mut ctx =
                Ctx { domain: &domain, split, inputs: inputs.clone(), members: &members, target: Some(t) };
            if let Ok(e) = self.op_expr(id, Access::Full, &mut ctx) {
                let new_inputs = ctx.inputs;
                if let StepKind::Elementwise { inputs, outputs, exprs, .. } = &mut self.steps[t].kind {
                    *inputs = new_inputs;
                    outputs.push(id);
                    exprs.push(e);
                }
                return Ok(Loc::Stored { step: t });
            }
        }
        let inputs = fresh.inputs;
        Ok(self.push(StepKind::Elementwise { domain, inputs, outputs: vec![id], exprs: vec![expr] }))
    }

    fn reduce(&mut self, id: NodeId, op: crate::ir::ReduceOp, axes: &[usize]) -> Result<Loc, Retry> {
        let x = self.graph.node(id).inputs[0];
        let domain = self.graph.ty(x).shape.clone();
        let Some((split, axis)) = reduce_split(axes, domain.len()) else {
            return Err(Retry::Fallback(id));
        };
        let mut ctx = Ctx { domain: &domain, split, inputs: Vec::new(), members: &[], target: None };
        let expr = self.expr(x, Access::Full, &mut ctx)?;
        let inputs = ctx.inputs;
        Ok(self.push(StepKind::Reduce { node: id, domain, split, axis, op, inputs, expr }))
    }

    /// Drops kernel outputs nothing reads from a buffer, and marks epilogues.
    fn finish(mut self) -> Schedule {
        let graph = self.graph;
        let mut needed = vec![false; graph.nodes.len()];
        for (_, o) in &graph.outputs {
            needed[self.storage(*o).index()] = true;
        }
        let scratch = Schedule { graph: Graph::default(), locs: self.locs.clone(), steps: Vec::new() };
        for step in &self.steps {
            for (n, _) in step.reads(graph, &scratch) {
                needed[n.index()] = true;
            }
        }
        for step in &mut self.steps {
            if let StepKind::Elementwise { outputs, exprs, .. } = &mut step.kind {
                let keep: Vec<bool> = outputs.iter().map(|n| needed[n.index()]).collect();
                for (n, k) in outputs.iter().zip(&keep) {
                    if !k {
                        self.locs[n.index()] = Loc::Inlined;
                    }
                }
                let mut it = keep.iter();
                exprs.retain(|_| *it.next().unwrap_or(&true));
                outputs.retain(|n| needed[n.index()]);
            }
        }
        // Renumber without the steps left with nothing to store.
        let mut remap = vec![usize::MAX; self.steps.len()];
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.into_iter().enumerate() {
            if !s.outputs().is_empty() {
                remap[i] = steps.len();
                steps.push(s);
            }
        }
        for loc in &mut self.locs {
            if let Loc::Stored { step } = loc {
                *step = remap[*step];
            }
        }
        for i in 0..steps.len() {
            let StepKind::MatMul { node, .. } = steps[i].kind else { continue };
            let follows = steps.get(i + 1).is_some_and(|s| {
                matches!(&s.kind, StepKind::Elementwise { inputs, domain, .. }
                    if *domain == graph.ty(node).shape && inputs.contains(&(node, Access::Full)))
            });
            if let StepKind::MatMul { epilogue, .. } = &mut steps[i].kind {
                *epilogue = follows.then_some(i + 1);
            }
        }
        Schedule { graph: graph.clone(), locs: self.locs, steps }
    }
}
