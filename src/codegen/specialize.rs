//! Specializes a schedule for concrete sizes: the list of instructions the compiled step
//! runs (kernels, products, host calls), the optimizer updates placed after the last use
//! of each gradient and parameter, and the static buffer plan.
//!
//! Memory: f32 and bool values live in one f32 arena at offsets from `fuse::plan` (bools
//! as 0.0 or 1.0), i64 values in a small i64 arena, and everything the caller owns
//! (inputs, parameters, optimizer slots, the hyper-parameter block) is an *external*,
//! numbered inputs first, then parameters, then slots, then the hyper block. Invariant: every
//! pointer an instruction names is in bounds for the lengths recorded here, which
//! `program.rs` checks against the real slices before each run.

use super::columns::Columns;
pub use super::instr::*;
use super::kexpr::{Access, KernelSpec};
use super::strided::Accumulation;
use super::update::H_SCALE0;
use super::window::window_step;
use crate::fuse::plan::{Interval, assign};
use crate::fuse::{Loc, Schedule, StepKind};
use crate::ir::{NodeId, Op, ReduceOp};
use crate::kernels::gemm::{BatchLayout, Layout};
use crate::runtime::optim::Clipping;
use crate::shape::{DType, SymEnv};

/// One unit of the final order: a schedule step or an inserted instruction.
#[derive(Copy, Clone, Debug)]
enum Item {
    Step(usize),
    Update(usize),
    Norm(Option<usize>),
    Copy(usize),
    Guard,
}

/// Specializes `schedule` for `env` (the symbols its inputs bind).
pub fn specialize(
    schedule: &Schedule,
    env: &SymEnv,
    training: Option<&Training>,
    options: PlanOptions,
) -> Result<Plan, SpecializeError> {
    let g = &schedule.graph;
    let live = g.live_nodes();
    let mut shapes: Vec<Vec<usize>> = vec![Vec::new(); g.nodes.len()];
    for id in g.ids().filter(|id| live[id.index()]) {
        shapes[id.index()] = env.resolve_shape(&g.ty(id).shape).ok_or(SpecializeError::Unbound(id.0))?;
    }
    for t in g.inputs.iter().map(|i| &i.ty).chain(g.params.iter().map(|p| &p.ty)) {
        if !matches!(t.dtype, DType::F32 | DType::I64) {
            return Err(SpecializeError::DType(t.dtype));
        }
    }
    let numel = |id: NodeId| shapes[id.index()].iter().product::<usize>();
    let loops = super::scan::ScanLoops::plan(schedule, &shapes, options);
    let (ni, np) = (g.inputs.len(), g.params.len());
    let mut exts: Vec<ExtInfo> = Vec::new();
    let mut input_shapes = Vec::new();
    for inp in &g.inputs {
        let shape = env.resolve_shape(&inp.ty.shape).ok_or(SpecializeError::Unbound(0))?;
        exts.push(ExtInfo {
            name: inp.name.clone(),
            dtype: inp.ty.dtype,
            len: shape.iter().product(),
            written: false,
        });
        input_shapes.push(shape);
    }
    for p in &g.params {
        let len = env.resolve_shape(&p.ty.shape).ok_or(SpecializeError::Unbound(0))?.iter().product();
        exts.push(ExtInfo { name: p.name.clone(), dtype: p.ty.dtype, len, written: false });
    }

    // The final order: steps, with each update after its gradient and the last read of
    // its parameter.
    let reads: Vec<Vec<(NodeId, Option<Access>)>> =
        schedule.steps.iter().map(|s| s.reads(g, schedule)).collect();
    let def_step = |n: NodeId| match schedule.locs[schedule.storage(n).index()] {
        Loc::Stored { step } => Some(step),
        _ => None,
    };
    let mut after: Vec<Vec<Item>> = vec![Vec::new(); schedule.steps.len() + 1];
    let mut slot_exts = Vec::new();
    let mut hyper_ext = None;
    if let Some(t) = training {
        let slots = t.spec.slot_names().len();
        for &(param, _) in &t.updates {
            slot_exts.push(exts.len());
            for s in t.spec.slot_names() {
                let len = exts[ni + param].len;
                exts.push(ExtInfo {
                    name: format!("{}/{s}", g.params[param].name),
                    dtype: DType::F32,
                    len,
                    written: true,
                });
            }
            exts[ni + param].written = true;
        }
        debug_assert!(slot_exts.iter().all(|&e| e + slots <= exts.len()));
        hyper_ext = Some(exts.len());
        exts.push(ExtInfo {
            name: "hyper".into(),
            dtype: DType::F32,
            len: H_SCALE0 + t.updates.len(),
            written: true,
        });
        let ready: Vec<usize> =
            t.updates
                .iter()
                .map(|&(param, grad)| {
                    let last_read = reads.iter().enumerate().filter(|(_, r)| {
                        r.iter().any(|(n, _)| schedule.locs[n.index()] == Loc::Param(param))
                    });
                    let last_read = last_read.map(|(i, _)| i + 1).max().unwrap_or(0);
                    last_read.max(def_step(grad).map_or(0, |s| s + 1))
                })
                .collect();
        // Every update waits for the guard, which waits for the loss and every gradient:
        // a step that produces a NaN or an infinity stops with its parameters untouched.
        let guarded = t.loss.iter().chain(t.updates.iter().map(|(_, g)| g));
        let guard_at = guarded.filter_map(|&n| def_step(n)).map(|s| s + 1).max().unwrap_or(0);
        after[guard_at].push(Item::Guard);
        let ready: Vec<usize> = ready.into_iter().map(|r| r.max(guard_at)).collect();
        match t.spec.clipping {
            Clipping::GlobalNorm(_) => {
                let at = ready.iter().copied().max().unwrap_or(0);
                after[at].push(Item::Norm(None));
                after[at].extend((0..t.updates.len()).map(Item::Update));
            }
            Clipping::Norm(_) => {
                for (j, &at) in ready.iter().enumerate() {
                    after[at].extend([Item::Norm(Some(j)), Item::Update(j)]);
                }
            }
            _ => {
                for (j, &at) in ready.iter().enumerate() {
                    after[at].push(Item::Update(j));
                }
            }
        }
        after[schedule.steps.len()].extend((0..t.states.len()).map(Item::Copy));
    }
    let mut items: Vec<Item> = after[0].clone();
    for i in 0..schedule.steps.len() {
        // Constants are written once at set-up, not run.
        if !matches!(schedule.steps[i].kind, StepKind::Constant { .. }) {
            items.push(Item::Step(i));
        }
        items.extend(after[i + 1].iter().copied());
    }
    let end = items.len();

    // Lifetimes of the stored f32 values.
    let stored: Vec<NodeId> = g
        .ids()
        .filter(|id| live[id.index()] && matches!(schedule.locs[id.index()], Loc::Stored { .. }))
        .collect();
    let mut first = vec![usize::MAX; g.nodes.len()];
    let mut last = vec![0usize; g.nodes.len()];
    let mut full_only = vec![true; g.nodes.len()];
    let mut writer_kernel = vec![false; g.nodes.len()];
    let mut read = |n: NodeId, at: usize, access: Option<Access>, last: &mut Vec<usize>| {
        let i = schedule.storage(n).index();
        if at > last[i] {
            last[i] = at;
            full_only[i] = true;
        }
        if at == last[i] && access != Some(Access::Full) {
            full_only[i] = false;
        }
    };
    for (at, item) in items.iter().enumerate() {
        match *item {
            Item::Step(s) => {
                // A loop writes the results of all its members at once.
                for n in schedule.steps[s].outputs().into_iter().chain(loops.members(s).iter().copied()) {
                    first[n.index()] = first[n.index()].min(at);
                    writer_kernel[n.index()] = matches!(schedule.steps[s].kind, StepKind::Elementwise { .. });
                }
                for &(n, a) in &reads[s] {
                    read(n, at, a, &mut last);
                }
            }
            Item::Update(j) => {
                if let Some(t) = training {
                    read(t.updates[j].1, at, None, &mut last);
                }
            }
            Item::Norm(_) => {
                for &(_, grad) in training.map(|t| t.updates.as_slice()).unwrap_or(&[]) {
                    read(grad, at, None, &mut last);
                }
            }
            Item::Copy(k) => {
                if let Some(t) = training {
                    read(t.states[k].0, at, None, &mut last);
                }
            }
            Item::Guard => {
                if let Some(t) = training {
                    for &n in t.loss.iter().chain(t.updates.iter().map(|(_, g)| g)) {
                        read(n, at, None, &mut last);
                    }
                }
            }
        }
    }
    let kept: Vec<NodeId> = match training {
        Some(t) => t.keep.clone(),
        None => g.outputs.iter().map(|(_, o)| *o).collect(),
    };
    for n in kept {
        let i = schedule.storage(n).index();
        last[i] = end;
        full_only[i] = false;
    }
    let mut intervals = Vec::new();
    let mut f32_nodes = Vec::new();
    let mut iarena_len = 0;
    let mut ioffset = vec![0usize; g.nodes.len()];
    for &n in &stored {
        let i = n.index();
        if g.ty(n).dtype == DType::I64 {
            ioffset[i] = iarena_len;
            iarena_len += numel(n);
            continue;
        }
        let constant = matches!(g.node(n).op, Op::Fill { .. } | Op::SizeOf { .. })
            && matches!(schedule.locs[i], Loc::Stored { step } if matches!(schedule.steps[step].kind, StepKind::Constant { .. }));
        let (f, l) = if constant { (0, end) } else { (first[i].min(end), last[i].max(first[i].min(end))) };
        intervals.push(Interval {
            size: numel(n),
            first: f,
            last: l,
            gives_in_place: full_only[i] && l < end,
            takes_in_place: writer_kernel[i],
        });
        f32_nodes.push(n);
    }
    // Scratch of the native window kernels, live for their one instruction.
    let windows: Vec<_> = schedule.steps.iter().map(|s| window_step(&s.kind, g, &shapes, options)).collect();
    let mut scratch_of = vec![None; schedule.steps.len()];
    for (at, item) in items.iter().enumerate() {
        if let Item::Step(s) = *item
            && let Some((w, threads)) = windows[s]
        {
            scratch_of[s] = Some(intervals.len());
            let size = w.scratch_len(threads);
            intervals.push(Interval {
                size,
                first: at,
                last: at,
                gives_in_place: false,
                takes_in_place: false,
            });
        }
    }
    let (offsets, arena_len) = assign(&intervals);
    let mut offset = vec![0usize; g.nodes.len()];
    let mut buffers = Vec::new();
    for ((n, off), iv) in f32_nodes.iter().zip(&offsets).zip(&intervals) {
        offset[n.index()] = *off;
        buffers.push(PlannedBuffer { node: *n, offset: *off, len: iv.size, first: iv.first, last: iv.last });
    }
    let ptr = |n: NodeId| -> Ptr {
        let s = schedule.storage(n);
        match schedule.locs[s.index()] {
            Loc::Input(k) => Ptr { base: Base::Ext(k), offset: 0 },
            Loc::Param(k) => Ptr { base: Base::Ext(ni + k), offset: 0 },
            _ if g.ty(s).dtype == DType::I64 => Ptr { base: Base::IArena, offset: ioffset[s.index()] },
            _ => Ptr { base: Base::Arena, offset: offset[s.index()] },
        }
    };

    // The instructions.
    let mut kernels: Vec<(KernelSpec, bool)> = Vec::new();
    let mut kernel_id = |spec: KernelSpec, contract: bool| match kernels
        .iter()
        .position(|k| k.0 == spec && k.1 == contract)
    {
        Some(k) => k,
        None => {
            kernels.push((spec, contract));
            kernels.len() - 1
        }
    };
    let mut constants = Vec::new();
    for step in &schedule.steps {
        let StepKind::Constant { node } = &step.kind else { continue };
        let value = match &g.node(*node).op {
            Op::Fill { value } => *value,
            Op::SizeOf { axes } => {
                let x = &shapes[g.node(*node).inputs[0].index()];
                axes.iter().map(|&a| x.get(a).copied().unwrap_or(1)).product::<usize>() as f64
            }
            _ => unreachable!("constants are fills and sizes"),
        };
        let data = match g.ty(*node).dtype {
            DType::I64 => ConstData::I64(value as i64, numel(*node)),
            DType::Bool => ConstData::F32(f32::from(u8::from(value != 0.0)), numel(*node)),
            _ => ConstData::F32(value as f32, numel(*node)),
        };
        constants.push((ptr(*node), data));
    }
    let mut instrs = Vec::new();
    for item in &items {
        let instr = match *item {
            Item::Step(s) => match &schedule.steps[s].kind {
                StepKind::Elementwise { domain, inputs, outputs, exprs } => {
                    let dims = env.resolve_shape(domain).ok_or(SpecializeError::Unbound(outputs[0].0))?;
                    let spec = KernelSpec::elementwise(inputs.iter().map(|x| x.1).collect(), exprs.clone());
                    let split = dims.len().saturating_sub(1);
                    let (rows, cols) = rows_cols(&dims, split, spec.needs_2d());
                    let kernel = kernel_id(spec, true);
                    let inputs = inputs.iter().map(|x| ptr(x.0)).collect();
                    Instr::Kernel {
                        kernel,
                        inputs,
                        outputs: outputs.iter().map(|&o| ptr(o)).collect(),
                        rows,
                        cols,
                    }
                }
                StepKind::Reduce { node, domain, split, axis, op, inputs, expr } => {
                    let dims = env.resolve_shape(domain).ok_or(SpecializeError::Unbound(node.0))?;
                    let spec =
                        KernelSpec::reduce(inputs.iter().map(|x| x.1).collect(), expr.clone(), *op, *axis);
                    let (rows, cols) = rows_cols(&dims, *split, true);
                    let kernel = kernel_id(spec, true);
                    let inputs = inputs.iter().map(|x| ptr(x.0)).collect();
                    Instr::Kernel { kernel, inputs, outputs: vec![ptr(*node)], rows, cols }
                }
                StepKind::MatMul { node, a, b, summed: true, .. } => {
                    let product = g.node(*node).inputs[0];
                    let operands = &g.node(product).inputs;
                    let la = batch_layout(&shapes[operands[0].index()], a.transposed);
                    let lb = batch_layout(&shapes[operands[1].index()], b.transposed);
                    let (la, lb) = stack_into_depth(la, lb).ok_or(SpecializeError::Unjoined(node.0))?;
                    let (m, k, n) = (la.rows, la.cols, lb.cols);
                    Instr::Gemm {
                        a: ptr(a.node),
                        b: ptr(b.node),
                        c: ptr(*node),
                        layouts: [la, lb, Layout::row_major(m, n)].map(|matrix| BatchLayout {
                            batch: 1,
                            batch_stride: 0,
                            matrix,
                        }),
                        threads: gemm_threads(m * k * n, options.threads, options.parallel_threshold),
                        skip_zero_a: ZeroSkip::Off,
                    }
                }
                StepKind::MatMul { node, a, b, .. } => {
                    let operands = &g.node(*node).inputs;
                    let la = batch_layout(&shapes[operands[0].index()], a.transposed);
                    let lb = batch_layout(&shapes[operands[1].index()], b.transposed);
                    let out = &shapes[node.index()];
                    let lc = batch_layout(out, false);
                    let same_batches = [operands[0], operands[1]].iter().all(|o| {
                        let x = &shapes[o.index()];
                        let xb = &x[..x.len() - 2];
                        xb.iter().product::<usize>() == 1 || strip(xb) == strip(&out[..out.len() - 2])
                    });
                    match (broadcast_batch(la, lc.batch), broadcast_batch(lb, lc.batch)) {
                        (Some(la), Some(lb)) if same_batches => {
                            let (m, k, n) = (la.matrix.rows, la.matrix.cols, lb.matrix.cols);
                            let threads = gemm_threads(
                                m * k * n * lc.batch,
                                options.threads,
                                options.parallel_threshold,
                            );
                            let [la, lb, lc] = fold_batch([la, lb, lc]);
                            // A training batch, which the step's guard multiplies only by
                            // finite parameters and gradients; a large prediction's, after
                            // checking B; a smaller one's by a parameter checked by the caller.
                            let param = matches!(g.node(b.node).op, Op::Param { .. });
                            let skip_zero_a =
                                if !options.skip_zero_a || !matches!(g.node(a.node).op, Op::Input { .. }) {
                                    ZeroSkip::Off
                                } else if training.is_some() {
                                    ZeroSkip::Guarded
                                } else if m >= MIN_CHECKED_ROWS {
                                    ZeroSkip::CheckedB { param }
                                } else if param {
                                    ZeroSkip::FiniteParam
                                } else {
                                    ZeroSkip::Off
                                };
                            Instr::Gemm {
                                a: ptr(a.node),
                                b: ptr(b.node),
                                c: ptr(*node),
                                layouts: [la, lb, lc],
                                threads,
                                skip_zero_a,
                            }
                        }
                        _ => fallback(*node, schedule, &shapes, &ptr),
                    }
                }
                StepKind::OneHot { node, labels, depth } => Instr::OneHot {
                    labels: ptr(*labels),
                    out: ptr(*node),
                    rows: numel(*labels),
                    depth: *depth,
                },
                StepKind::Constant { .. } => continue,
                StepKind::Fallback { node } if windows[s].is_some() => {
                    let (kernel, threads) = windows[s].expect("matched by the guard");
                    let inputs = &g.node(*node).inputs;
                    let scratch = scratch_of[s].map_or(0, |i| offsets[i]);
                    Instr::Window {
                        node: *node,
                        kernel,
                        a: ptr(inputs[0]),
                        b: ptr(*inputs.get(1).unwrap_or(&inputs[0])),
                        out: ptr(*node),
                        scratch: Ptr { base: Base::Arena, offset: scratch },
                        threads,
                    }
                }
                StepKind::Fallback { node } => {
                    let x = g.node(*node).inputs.first().copied();
                    let x_node = x.unwrap_or(*node);
                    match (&g.node(*node).op, x.map(|x| g.ty(x).dtype)) {
                        (Op::Scan { .. }, _) if loops.is_native(s) => {
                            match loops.instr(s, g, &shapes, &ptr) {
                                Some(instr) => instr,
                                None => continue,
                            }
                        }
                        (Op::Gather | Op::ScatterAdd, _) if g.ty(*node).dtype == DType::F32 => {
                            rows_instr(*node, g, &shapes, &ptr)
                        }
                        (Op::Reduce { op: ReduceOp::Sum, axes, .. }, Some(DType::F32))
                            if let Some(acc) = Accumulation::sum(&shapes[x_node.index()], axes) =>
                        {
                            Instr::Accumulate { x: ptr(x_node), out: ptr(*node), acc }
                        }
                        (Op::Broadcast, Some(DType::F32))
                            if let Some(acc) =
                                Accumulation::broadcast(&shapes[x_node.index()], &shapes[node.index()]) =>
                        {
                            Instr::Accumulate { x: ptr(x_node), out: ptr(*node), acc }
                        }
                        (&Op::Slice { start, len }, Some(DType::F32))
                            if let Some(cols) = Columns::slice(&shapes[x_node.index()], start, len) =>
                        {
                            Instr::Columns { from: vec![ptr(x_node)], to: ptr(*node), cols }
                        }
                        (Op::Pad { starts, total }, Some(DType::F32))
                            if let Some(cols) = Columns::pad(
                                &g.node(*node)
                                    .inputs
                                    .iter()
                                    .map(|i| shapes[i.index()].as_slice())
                                    .collect::<Vec<_>>(),
                                starts,
                                *total,
                            ) =>
                        {
                            let from = g.node(*node).inputs.iter().map(|&i| ptr(i)).collect();
                            Instr::Columns { from, to: ptr(*node), cols }
                        }
                        (&Op::Random { dist, stream }, _) if g.ty(*node).dtype == DType::F32 => {
                            Instr::Random { dist, stream, out: ptr(*node), len: numel(*node) }
                        }
                        (Op::Cast { to: DType::F32 }, Some(DType::I64)) => Instr::CastI64 {
                            from: ptr(x.unwrap_or(*node)),
                            to: ptr(*node),
                            len: numel(*node),
                        },
                        _ => fallback(*node, schedule, &shapes, &ptr),
                    }
                }
            },
            Item::Update(j) => {
                let Some(t) = training else { continue };
                let (param, grad) = t.updates[j];
                let p = Ptr { base: Base::Ext(ni + param), offset: 0 };
                let slots: Vec<Ptr> = (0..t.spec.slot_names().len())
                    .map(|s| Ptr { base: Base::Ext(slot_exts[j] + s), offset: 0 })
                    .collect();
                Instr::Update {
                    kind: t.spec.kind.clone(),
                    index: j,
                    param: p,
                    grad: ptr(grad),
                    slots,
                    len: exts[ni + param].len,
                    threads: options.threads,
                }
            }
            Item::Norm(which) => {
                let Some(t) = training else { continue };
                let (max_norm, global) = match t.spec.clipping {
                    Clipping::GlobalNorm(n) => (n, true),
                    Clipping::Norm(n) => (n, false),
                    _ => continue,
                };
                let chosen: Vec<usize> = match which {
                    Some(j) => vec![j],
                    None => (0..t.updates.len()).collect(),
                };
                let grads =
                    chosen.iter().map(|&j| (ptr(t.updates[j].1), exts[ni + t.updates[j].0].len)).collect();
                Instr::Norm {
                    grads,
                    max_norm,
                    targets: chosen.iter().map(|j| H_SCALE0 + j).collect(),
                    global,
                }
            }
            Item::Copy(k) => {
                let Some(t) = training else { continue };
                let (from, param) = t.states[k];
                Instr::Copy {
                    from: ptr(from),
                    to: Ptr { base: Base::Ext(ni + param), offset: 0 },
                    len: numel(from),
                }
            }
            Item::Guard => {
                let Some(t) = training else { continue };
                let values = t.loss.iter().chain(t.updates.iter().map(|(_, g)| g));
                Instr::Guard { values: values.map(|&n| (n, ptr(n), numel(n))).collect() }
            }
        };
        instrs.push(instr);
    }
    if training.is_some()
        && options.fuse_updates
        && let Some(moved) = super::fuse_update::fuse_last_gradient(&mut instrs)
    {
        for b in &mut buffers {
            (b.first, b.last) = (moved[b.first], moved[b.last]);
        }
    }
    let outputs =
        g.outputs.iter().map(|(_, o)| (ptr(*o), g.ty(*o).dtype, shapes[o.index()].clone())).collect();
    let _ = np;
    Ok(Plan {
        instrs,
        kernels,
        arena_len,
        iarena_len,
        constants,
        exts,
        outputs,
        input_shapes,
        buffers,
        hyper_ext,
        slot_exts,
    })
}

/// Rows and columns of a domain split at `split`; one long row when the kernel does not
/// need the 2-D structure.
fn rows_cols(dims: &[usize], split: usize, needs_2d: bool) -> (usize, usize) {
    let rows: usize = dims[..split].iter().product();
    let cols: usize = dims[split..].iter().product();
    if needs_2d { (rows, cols) } else { (1, rows * cols) }
}

/// The layout of a matrix-product operand of logical shape `[.., rows, cols]`; a transposed
/// view reads storage of shape `[.., cols, rows]`.
fn batch_layout(shape: &[usize], transposed: bool) -> BatchLayout {
    let r = shape.len();
    let (rows, cols) = (shape[r - 2], shape[r - 1]);
    let batch: usize = shape[..r - 2].iter().product();
    let matrix = if transposed { Layout::row_major(cols, rows).t() } else { Layout::row_major(rows, cols) };
    BatchLayout { batch, batch_stride: rows * cols, matrix }
}

/// A stack of products sharing one right operand, `A[i]·B` with the `A[i]` and `C[i]`
/// dense and one after another, as one taller product: `[batch·M, K]·B` (one packing of
/// B instead of one per matrix). Other stacks are returned unchanged.
fn fold_batch([la, lb, lc]: [BatchLayout; 3]) -> [BatchLayout; 3] {
    let dense = |l: &BatchLayout| {
        let m = l.matrix;
        m.col_stride == 1 && m.row_stride == m.cols && l.batch_stride == m.rows * m.cols
    };
    if la.batch <= 1 || lb.batch_stride != 0 || !dense(&la) || !dense(&lc) {
        return [la, lb, lc];
    }
    let tall = |l: BatchLayout| BatchLayout::row_major(1, l.batch * l.matrix.rows, l.matrix.cols);
    [tall(la), BatchLayout { batch: 1, ..lb }, tall(lc)]
}

/// `Σ_b A_b·B_b` as one product `[A_1 A_2 …]·[B_1; B_2; …]`: the stack joins the depth
/// when each of A's matrices continues the previous one along its columns and each of B's
/// along its rows (A a transposed dense stack, B a dense one); `None` otherwise.
fn stack_into_depth(la: BatchLayout, lb: BatchLayout) -> Option<(Layout, Layout)> {
    let (a, b) = (la.matrix, lb.matrix);
    let joins = la.batch == lb.batch
        && la.batch_stride == a.cols * a.col_stride
        && lb.batch_stride == b.rows * b.row_stride;
    joins.then(|| (Layout { cols: a.cols * la.batch, ..a }, Layout { rows: b.rows * lb.batch, ..b }))
}

/// The dimensions without their leading 1s.
fn strip(dims: &[usize]) -> &[usize] {
    let lead = dims.iter().take_while(|&&d| d == 1).count();
    &dims[lead..]
}

/// An operand's layout repeated or matched to `batch` output matrices.
fn broadcast_batch(l: BatchLayout, batch: usize) -> Option<BatchLayout> {
    if l.batch == batch {
        Some(l)
    } else if l.batch == 1 {
        Some(BatchLayout { batch, batch_stride: 0, matrix: l.matrix })
    } else {
        None
    }
}

/// `gather` or `scatter_add` on f32 rows, on the host (see `rows.rs`).
fn rows_instr(
    node: NodeId,
    g: &crate::ir::Graph,
    shapes: &[Vec<usize>],
    ptr: &dyn Fn(NodeId) -> Ptr,
) -> Instr {
    let ins = &g.node(node).inputs;
    let shape = |n: NodeId| &shapes[n.index()];
    if g.node(node).op == Op::Gather {
        let (table, ids) = (ins[0], ins[1]);
        let rows = shape(table).first().copied().unwrap_or(0);
        let width = shape(table).iter().skip(1).product();
        let count = shape(ids).iter().product();
        Instr::Gather { node, table: ptr(table), ids: ptr(ids), out: ptr(node), rows, width, count }
    } else {
        let (ids, grad) = (ins[0], ins[1]);
        let rows = shape(node).first().copied().unwrap_or(0);
        let width = shape(node).iter().skip(1).product();
        let count = shape(ids).iter().product();
        Instr::ScatterAdd { node, ids: ptr(ids), g: ptr(grad), out: ptr(node), rows, width, count }
    }
}

fn fallback(node: NodeId, schedule: &Schedule, shapes: &[Vec<usize>], ptr: &dyn Fn(NodeId) -> Ptr) -> Instr {
    let g = &schedule.graph;
    let operands =
        g.node(node).inputs.iter().map(|&i| (ptr(i), g.ty(i).dtype, shapes[i.index()].clone())).collect();
    Instr::Fallback { node, operands, out: (ptr(node), g.ty(node).dtype, shapes[node.index()].clone()) }
}
