//! Host calls: the work of a compiled step that is not a Cranelift kernel (matrix
//! products on the tuned GEMM, convolutions and pooling, one-hot encoding, the
//! reference-kernel fallback, clipping norms, state copies), called from the compiled
//! driver through [`dnnc_host_call`].
//!
//! Every pointer a host op uses is read from the step's frame at call time (so inputs
//! bound for this run are seen) and is valid for the length recorded here: `program.rs`
//! builds the frame from the plan and checks every external slice before a run. The entry
//! point never unwinds into compiled code: a panic becomes an error code.

use super::specialize::ZeroSkip;
use super::window::WindowKernel;
use crate::ir::{NodeId, Op, RunError};
use crate::kernels::gemm::{
    BatchLayout, FinishedBlock, MatMut, MatRef, Parallelism, gemm_batched, gemm_skipping_zero_a, gemm_then,
};
use crate::ops::{self, EvalCtx, Value};
use crate::runtime::clip::norm_scale;
use crate::runtime::optim::{self, Common, MAX_SLOTS, OptimizerKind};
use crate::shape::DType;
use crate::source::Span;
use ndarray::{ArrayD, IxDyn};

/// A host op, its pointers given as frame slots.
#[derive(Debug)]
pub(crate) enum HostOp {
    Gemm {
        a: usize,
        b: usize,
        c: usize,
        layouts: [BatchLayout; 3],
        threads: usize,
        skip_zero_a: ZeroSkip,
    },
    OneHot {
        labels: usize,
        out: usize,
        rows: usize,
        depth: usize,
    },
    Window {
        node: NodeId,
        kernel: WindowKernel,
        a: usize,
        b: usize,
        out: usize,
        scratch: usize,
        threads: usize,
    },
    Fallback {
        node: NodeId,
        span: Span,
        op: Op,
        operands: Vec<(usize, DType, Vec<usize>)>,
        out: (usize, DType, Vec<usize>),
    },
    Norm {
        grads: Vec<(usize, usize)>,
        max_norm: f32,
        targets: Vec<usize>,
        global: bool,
    },
    Guard {
        /// `(node, its op's name, its span, frame slot, elements)`.
        values: Vec<(NodeId, &'static str, Span, usize, usize)>,
    },
    Accumulate {
        x: usize,
        out: usize,
        acc: super::strided::Accumulation,
    },
    Random {
        dist: crate::ir::Distribution,
        stream: u32,
        out: usize,
        len: usize,
    },
    /// One parameter's optimizer update; `scalars` are the frame slots of the hyper
    /// block's lr, lr_t, clip, l2, decay and this parameter's clipping scale.
    Update {
        kind: OptimizerKind,
        param: usize,
        grad: usize,
        slots: Vec<usize>,
        scalars: [usize; 6],
        len: usize,
        threads: usize,
    },
    Copy {
        from: usize,
        to: usize,
        len: usize,
    },
    Columns {
        from: Vec<usize>,
        to: usize,
        cols: super::columns::Columns,
    },
    CastI64 {
        from: usize,
        to: usize,
        len: usize,
    },
    /// A gradient's `Gemm` fused with its parameter's `Update` (`fuse_update.rs`); `grad`
    /// names the gradient as the guard does.
    ProductUpdate {
        product: Box<HostOp>,
        update: Box<HostOp>,
        grad: (NodeId, &'static str, Span),
    },
    /// A loop over time with its compiled body (`scan.rs`).
    Scan(Box<std::cell::RefCell<super::scan::ScanRunner>>),
    /// `gather` (`scatter: false`) or `scatter_add` of f32 rows (`rows.rs`): `a` is the
    /// table or the ids, `b` the ids or the gradient.
    Rows {
        site: super::rows::RowsSite,
        scatter: bool,
        a: usize,
        b: usize,
        out: usize,
        rows: usize,
        width: usize,
        count: usize,
    },
}

/// What the host calls of one run see.
pub(crate) struct HostCtx {
    pub ops: Vec<HostOp>,
    /// The frame: one pointer per slot.
    pub frame: *const usize,
    pub seed: u64,
    pub step: u64,
    /// The run's parameters were checked finite by the caller (`Params::Finite`).
    pub finite_params: bool,
    pub error: Option<RunError>,
}

/// The elements a strided batch layout addresses: one past its largest offset.
fn span(l: &BatchLayout) -> usize {
    let m = l.matrix;
    if l.batch == 0 || m.rows == 0 || m.cols == 0 {
        return 0;
    }
    (l.batch - 1) * l.batch_stride + (m.rows - 1) * m.row_stride + (m.cols - 1) * m.col_stride + 1
}

impl HostCtx {
    pub(super) fn slot<T>(&self, slot: usize) -> *mut T {
        // Safety: `slot` is a frame index the plan created; the frame outlives the run.
        unsafe { *self.frame.add(slot) as *mut T }
    }

    /// # Safety
    /// The frame slot must point to at least `len` valid elements of `T` for the call.
    pub(super) unsafe fn slice<'a, T>(&self, slot: usize, len: usize) -> &'a [T] {
        unsafe { std::slice::from_raw_parts(self.slot::<T>(slot), len) }
    }

    /// # Safety
    /// As `slice`, and nothing else may read or write those elements during the borrow.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice_mut<'a, T>(&self, slot: usize, len: usize) -> &'a mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.slot::<T>(slot), len) }
    }

    fn run(&self, index: usize) -> Result<(), RunError> {
        let Some(op) = self.ops.get(index) else {
            return Err(RunError::InvalidGraph { node: NodeId(0), message: format!("no host op {index}") });
        };
        self.run_op(op)
    }

    fn run_op(&self, op: &HostOp) -> Result<(), RunError> {
        // Safety (every block below): the plan sized each slot's buffer for exactly the
        // elements its op addresses, and an op's output never overlaps its inputs (the
        // buffer plan keeps simultaneously live values apart; only elementwise kernels
        // work in place).
        match op {
            &HostOp::Gemm { a, b, c, layouts: [la, lb, lc], threads, skip_zero_a } => {
                let (sa, sb, sc) = (span(&la), span(&lb), span(&lc));
                let (a, b) = unsafe { (self.slice::<f32>(a, sa), self.slice::<f32>(b, sb)) };
                let c = unsafe { self.slice_mut::<f32>(c, sc) };
                let skip = skips(skip_zero_a, b, self.finite_params);
                batched_product(a, la, b, lb, c, lc, threads, skip).map_err(|e| RunError::InvalidGraph {
                    node: NodeId(0),
                    message: format!("matrix product: {e}"),
                })
            }
            &HostOp::OneHot { labels, out, rows, depth } => {
                let labels = unsafe { self.slice::<i64>(labels, rows) };
                let out = unsafe { self.slice_mut::<f32>(out, rows * depth) };
                out.fill(0.0);
                for (r, &l) in labels.iter().enumerate() {
                    if let Ok(k) = usize::try_from(l)
                        && k < depth
                    {
                        out[r * depth + k] = 1.0;
                    }
                }
                Ok(())
            }
            &HostOp::Window { node, kernel, a, b, out, scratch, threads } => {
                let [la, lb, lo] = kernel.lens();
                let (a, b) = unsafe { (self.slice::<f32>(a, la), self.slice::<f32>(b, lb)) };
                let out = unsafe { self.slice_mut::<f32>(out, lo) };
                let scratch = unsafe { self.slice_mut::<f32>(scratch, kernel.scratch_len(threads)) };
                kernel
                    .run(a, b, out, scratch, threads)
                    .map_err(|message| RunError::InvalidGraph { node, message })
            }
            HostOp::Fallback { node, span, op, operands, out } => {
                self.fallback(*node, *span, op, operands, out)
            }
            HostOp::Norm { grads, max_norm, targets, global } => {
                let (max_norm, global) = (*max_norm, *global);
                let sums: Vec<f64> = grads
                    .iter()
                    .map(|&(g, len)| {
                        let g = unsafe { self.slice::<f32>(g, len) };
                        g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()
                    })
                    .collect();
                let global_scale = norm_scale(sums.iter().sum::<f64>().sqrt() as f32, max_norm);
                for (&t, s) in targets.iter().zip(&sums) {
                    let scale = if global { global_scale } else { norm_scale(s.sqrt() as f32, max_norm) };
                    unsafe { self.slice_mut::<f32>(t, 1)[0] = scale };
                }
                Ok(())
            }
            &HostOp::CastI64 { from, to, len } => {
                let from = unsafe { self.slice::<i64>(from, len) };
                let to = unsafe { self.slice_mut::<f32>(to, len) };
                for (t, &f) in to.iter_mut().zip(from) {
                    *t = f as f32;
                }
                Ok(())
            }
            HostOp::Update { kind, param, grad, slots, scalars, len, threads } => {
                let g = unsafe { self.slice::<f32>(*grad, *len) };
                // Safety: the update is the only op running, and it owns its parameter's and
                // slots' `len` elements.
                unsafe { self.update_target(kind, *param, slots, scalars).apply(g, 0, *threads) };
                Ok(())
            }
            HostOp::ProductUpdate { product, update, grad } => self.product_update(product, update, *grad),
            HostOp::Guard { values } => {
                for &(node, op, span, slot, len) in values {
                    finite_or_stop(unsafe { self.slice::<f32>(slot, len) }, (node, op, span))?;
                }
                Ok(())
            }
            HostOp::Scan(runner) => runner
                .try_borrow_mut()
                .map_err(|_| RunError::InvalidGraph {
                    node: NodeId(0),
                    message: "a loop runs itself".into(),
                })?
                .run(self),
            &HostOp::Rows { site, scatter: false, a, b, out, rows, width, count } => {
                let (table, ids) =
                    unsafe { (self.slice::<f32>(a, rows * width), self.slice::<i64>(b, count)) };
                let out = unsafe { self.slice_mut::<f32>(out, count * width) };
                super::rows::gather(table, ids, out, width, site)
            }
            &HostOp::Rows { site, scatter: true, a, b, out, rows, width, count } => {
                let (ids, g) = unsafe { (self.slice::<i64>(a, count), self.slice::<f32>(b, count * width)) };
                let out = unsafe { self.slice_mut::<f32>(out, rows * width) };
                super::rows::scatter_add(ids, g, out, width, site)
            }
            HostOp::Accumulate { x, out, acc } => {
                let (x_len, out_len) = acc.spans();
                let x = unsafe { self.slice::<f32>(*x, x_len) };
                acc.run(x, unsafe { self.slice_mut::<f32>(*out, out_len) });
                Ok(())
            }
            &HostOp::Random { dist, stream, out, len } => {
                ops::draw_f32(dist, stream, self.seed, self.step, unsafe { self.slice_mut::<f32>(out, len) });
                Ok(())
            }
            HostOp::Columns { from, to, cols } => {
                let to = unsafe { self.slice_mut::<f32>(*to, cols.to_len()) };
                cols.run(|i| unsafe { self.slice::<f32>(from[i], cols.from_len(i)) }, to);
                Ok(())
            }
            &HostOp::Copy { from, to, len } => {
                let from = unsafe { self.slice::<f32>(from, len) };
                unsafe { self.slice_mut::<f32>(to, len).copy_from_slice(from) };
                Ok(())
            }
        }
    }

    /// Where an update writes, and its settings from this step's hyper block.
    fn update_target<'k>(
        &self,
        kind: &'k OptimizerKind,
        param: usize,
        slots: &[usize],
        scalars: &[usize; 6],
    ) -> UpdateTarget<'k> {
        // Safety: each scalar slot points into the hyper block.
        let [lr, lr_t, clip, l2, decay, scale] = scalars.map(|s| unsafe { *self.slot::<f32>(s) });
        let mut slot_ptrs = [std::ptr::null_mut(); MAX_SLOTS];
        for (to, &s) in slot_ptrs.iter_mut().zip(slots) {
            *to = self.slot::<f32>(s);
        }
        UpdateTarget {
            kind,
            param: self.slot::<f32>(param),
            slots: slot_ptrs,
            count: slots.len().min(MAX_SLOTS),
            common: Common { lr, scale, clip, l2, decay },
            lr_t,
        }
    }

    /// A gradient's product and its parameter's update, fused (`fuse_update.rs`): when the
    /// operands bound every sum of the product (`bounded_product`), each block of the
    /// gradient is applied as soon as the product's thread has stored it; otherwise the
    /// gradient is computed whole and checked first, as the guard would have.
    fn product_update(
        &self,
        product: &HostOp,
        update: &HostOp,
        grad: (NodeId, &'static str, Span),
    ) -> Result<(), RunError> {
        let (
            &HostOp::Gemm { a, b, c, layouts: [la, lb, lc], threads, skip_zero_a },
            HostOp::Update { kind, param, slots, scalars, len, .. },
        ) = (product, update)
        else {
            return Err(RunError::InvalidGraph {
                node: grad.0,
                message: "a fused update without its product".into(),
            });
        };
        let target = self.update_target(kind, *param, slots, scalars);
        let (ga, gb) = unsafe { (self.slice::<f32>(a, span(&la)), self.slice::<f32>(b, span(&lb))) };
        if !bounded_product(ga, gb, la.matrix.cols, threads) {
            self.run_op(product)?;
            let g = unsafe { self.slice::<f32>(c, *len) };
            finite_or_stop(g, grad)?;
            // Safety: as for `HostOp::Update`.
            unsafe { target.apply(g, 0, threads) };
            return Ok(());
        }
        let n = lc.matrix.cols;
        // C is dense and row-major (`fuse_update.rs` fuses no other), so a block's rows are
        // contiguous runs of `cols` values, one run when the block spans whole rows.
        let done = |block: FinishedBlock<'_>| {
            let (runs, width) = if block.cols == n { (1, block.rows * n) } else { (block.rows, block.cols) };
            for i in 0..runs {
                let values = &block.values[i * block.row_stride..][..width];
                // Safety: the product's blocks are disjoint, so the parameter and slot
                // elements of this run are updated by this call alone.
                unsafe { target.apply(values, (block.row + i) * n + block.col, 1) };
            }
        };
        let gc = unsafe { self.slice_mut::<f32>(c, span(&lc)) };
        let par = parallelism(threads);
        let bad = |e: crate::kernels::gemm::GemmError| RunError::InvalidGraph {
            node: grad.0,
            message: format!("matrix product: {e}"),
        };
        let (ma, mb) = (MatRef::new(ga, la.matrix).map_err(bad)?, MatRef::new(gb, lb.matrix).map_err(bad)?);
        let mc = MatMut::new(gc, lc.matrix).map_err(bad)?;
        if skips(skip_zero_a, gb, self.finite_params) {
            gemm_skipping_zero_a(ma, mb, mc, par, Some(&done)).map_err(bad)
        } else {
            gemm_then(ma, mb, mc, par, &done).map_err(bad)
        }
    }

    /// Runs the reference kernel of `op` on copies of its operands.
    fn fallback(
        &self,
        node: NodeId,
        span: Span,
        op: &Op,
        operands: &[(usize, DType, Vec<usize>)],
        out: &(usize, DType, Vec<usize>),
    ) -> Result<(), RunError> {
        let invalid = |message: String| RunError::InvalidGraph { node, message };
        let mut values = Vec::with_capacity(operands.len());
        for (slot, dtype, shape) in operands {
            let len: usize = shape.iter().product();
            let dims = IxDyn(shape);
            let value = match dtype {
                DType::I64 => Value::I64(
                    ArrayD::from_shape_vec(dims, unsafe { self.slice::<i64>(*slot, len) }.to_vec())
                        .map_err(|e| invalid(e.to_string()))?,
                ),
                DType::Bool => Value::Bool(
                    ArrayD::from_shape_vec(
                        dims,
                        unsafe { self.slice::<f32>(*slot, len) }.iter().map(|&x| x != 0.0).collect(),
                    )
                    .map_err(|e| invalid(e.to_string()))?,
                ),
                _ => Value::F32(
                    ArrayD::from_shape_vec(dims, unsafe { self.slice::<f32>(*slot, len) }.to_vec())
                        .map_err(|e| invalid(e.to_string()))?,
                ),
            };
            values.push(value);
        }
        let refs: Vec<&Value> = values.iter().collect();
        let (slot, dtype, shape) = out;
        let ctx = EvalCtx { dtype: *dtype, shape: Some(shape.clone()), seed: self.seed, step: self.step };
        let result = ops::eval(op, &refs, &ctx).map_err(|error| RunError::Kernel {
            node,
            op: op.name().to_string(),
            span,
            error,
        })?;
        if result.shape() != shape.as_slice() {
            return Err(invalid(format!("`{op}` computed shape {:?}, expected {shape:?}", result.shape())));
        }
        let len = result.len();
        match result {
            Value::I64(a) => unsafe { self.slice_mut::<i64>(*slot, len) }
                .iter_mut()
                .zip(a.iter())
                .for_each(|(o, &v)| *o = v),
            Value::Bool(a) => unsafe { self.slice_mut::<f32>(*slot, len) }
                .iter_mut()
                .zip(a.iter())
                .for_each(|(o, &v)| *o = f32::from(u8::from(v))),
            Value::F32(a) => unsafe { self.slice_mut::<f32>(*slot, len) }
                .iter_mut()
                .zip(a.iter())
                .for_each(|(o, &v)| *o = v),
            other => return Err(invalid(format!("`{op}` computed {} values", other.dtype()))),
        }
        Ok(())
    }
}

/// Whether a product skips its batch's zeros now: always in a training step; in a
/// prediction when `b` is a parameter and the run's parameters were checked finite by the
/// caller (`finite_params`), or, in a large one, when one pass finds `b` finite.
fn skips(skip: ZeroSkip, b: &[f32], finite_params: bool) -> bool {
    match skip {
        ZeroSkip::Off => false,
        ZeroSkip::Guarded => true,
        ZeroSkip::CheckedB { param } => (param && finite_params) || finite_max_abs(b).is_some(),
        ZeroSkip::FiniteParam => finite_params,
    }
}

fn parallelism(threads: usize) -> Parallelism {
    if threads > 1 { Parallelism::Threads(threads) } else { Parallelism::Sequential }
}

/// A stack of products on `threads` threads. A stack of several matrices is split between
/// the threads by whole matrices (each product sequential), so that small matrices (a
/// weight gradient summed over the batch afterwards) are not cut into pieces too small to
/// gain; a single product is split by the GEMM itself, skipping where A is zero when
/// `skip_zero_a` (A a training batch).
#[allow(clippy::too_many_arguments)]
fn batched_product(
    a: &[f32],
    la: BatchLayout,
    b: &[f32],
    lb: BatchLayout,
    c: &mut [f32],
    lc: BatchLayout,
    threads: usize,
    skip_zero_a: bool,
) -> Result<(), crate::kernels::gemm::GemmError> {
    if skip_zero_a && lc.batch == 1 {
        let (ma, mb) = (MatRef::new(a, la.matrix)?, MatRef::new(b, lb.matrix)?);
        return gemm_skipping_zero_a(ma, mb, MatMut::new(c, lc.matrix)?, parallelism(threads), None);
    }
    if threads <= 1 || lc.batch < 2 {
        return gemm_batched(1.0, a, la, b, lb, 0.0, c, lc, parallelism(threads));
    }
    let first = lc.batch / 2;
    let with_batch = |l: BatchLayout, batch: usize| BatchLayout { batch, ..l };
    let rest = |x: &[f32], l: BatchLayout| -> usize { (first * l.batch_stride).min(x.len()) };
    let (a2, b2) = (&a[rest(a, la)..], &b[rest(b, lb)..]);
    let (c1, c2) = c.split_at_mut(rest(c, lc));
    let (t1, t2) = (threads / 2, threads - threads / 2);
    let (r1, r2) = crate::kernels::team::join(
        || {
            let (la, lb, lc) = (with_batch(la, first), with_batch(lb, first), with_batch(lc, first));
            batched_product(a, la, b, lb, c1, lc, t1, false)
        },
        || {
            let n = lc.batch - first;
            batched_product(a2, with_batch(la, n), b2, with_batch(lb, n), c2, with_batch(lc, n), t2, false)
        },
    );
    r1.and(r2)
}

/// Where a parameter's update writes (the parameter and its optimizer slots, all as long
/// as the parameter) and its settings for this step.
struct UpdateTarget<'k> {
    kind: &'k OptimizerKind,
    param: *mut f32,
    slots: [*mut f32; MAX_SLOTS],
    count: usize,
    common: Common,
    lr_t: f32,
}

// Safety: the pointers are only dereferenced through `apply`, whose callers give each call
// elements no other call touches meanwhile (the blocks of a fused product, one per thread).
unsafe impl Sync for UpdateTarget<'_> {}

impl UpdateTarget<'_> {
    /// Updates the elements `start..start + g.len()` with gradient values `g`.
    ///
    /// # Safety
    /// Those elements exist in the parameter and every slot, and nothing else reads or
    /// writes them during the call.
    unsafe fn apply(&self, g: &[f32], start: usize, threads: usize) {
        let part = |p: *mut f32| unsafe { std::slice::from_raw_parts_mut(p.add(start), g.len()) };
        let mut state: [&mut [f32]; MAX_SLOTS] = Default::default();
        for (view, &s) in state.iter_mut().zip(&self.slots[..self.count]) {
            *view = part(s);
        }
        let (p, slots) = (part(self.param), &mut state[..self.count]);
        let u = optim::ParamUpdate { kind: self.kind, p, g, slots, c: self.common, lr_t: self.lr_t };
        optim::apply_in_parts(u, threads);
    }
}

/// Whether every sum of a product of depth `k` over `a` and `b` is finite, whatever order
/// it is added in: both are finite and `k·max|a|·max|b|` is at most half the largest f32
/// (the half covers rounding). Reads 29 k values for the MNIST MLP's first-layer weight
/// gradient instead of the guard's 100 k. On two threads or more, the two halves of `a` are
/// read at once (the batch, 25 k values: measured 2.3 µs on one thread).
fn bounded_product(a: &[f32], b: &[f32], k: usize, threads: usize) -> bool {
    let max_a = if threads >= 2 && a.len() >= MIN_SPLIT_CHECK {
        let (first, second) = a.split_at(a.len() / 2);
        match crate::kernels::team::join(|| finite_max_abs(first), || finite_max_abs(second)) {
            (Some(x), Some(y)) => Some(x.max(y)),
            _ => None,
        }
    } else {
        finite_max_abs(a)
    };
    match (max_a, finite_max_abs(b)) {
        (Some(x), Some(y)) => k as f64 * x as f64 * y as f64 <= f32::MAX as f64 / 2.0,
        _ => false,
    }
}

/// Fewest values `bounded_product` checks on two threads (a hand-over to the team's worker
/// costs a few hundred nanoseconds).
const MIN_SPLIT_CHECK: usize = 1 << 14;

/// The largest magnitude in `values`, or `None` if one of them is a NaN or an infinity.
fn finite_max_abs(values: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::has_avx512() {
        // Safety: the CPU has AVX-512 F (checked).
        return unsafe { finite_max_abs_avx512(values) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::has_avx2_fma() {
        // Safety: the CPU has AVX2 (checked).
        return unsafe { finite_max_abs_avx2(values) };
    }
    finite_max_abs_portable(values)
}

/// `finite_max_abs_portable` compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn finite_max_abs_avx2(values: &[f32]) -> Option<f32> {
    finite_max_abs_portable(values)
}

/// `finite_max_abs_portable` compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn finite_max_abs_avx512(values: &[f32]) -> Option<f32> {
    finite_max_abs_portable(values)
}

/// `x·0` is 0 for finite `x` and NaN otherwise: sixteen running sums of it, and sixteen
/// running maxima, let the loop vectorize without waiting on one sum's latency.
#[inline(always)]
fn finite_max_abs_portable(values: &[f32]) -> Option<f32> {
    let (mut max, mut poison) = ([0.0f32; 16], [0.0f32; 16]);
    let chunks = values.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((m, p), &x) in max.iter_mut().zip(&mut poison).zip(chunk) {
            *p += x * 0.0;
            let a = x.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    for &x in rest {
        poison[0] += x * 0.0;
        max[0] = max[0].max(x.abs());
    }
    let finite = poison.iter().all(|&p| p == 0.0);
    finite.then(|| max.iter().fold(0.0f32, |m, &x| m.max(x)))
}

/// The guard's check of one value: an error naming `(node, its op, its span)` when an
/// element is a NaN or an infinity (`finite_max_abs` runs 16 or 8 lanes wide where the CPU
/// has AVX-512 or AVX2; the maximum it also finds costs nothing beside the loads).
fn finite_or_stop(values: &[f32], (node, op, span): (NodeId, &'static str, Span)) -> Result<(), RunError> {
    match finite_max_abs(values) {
        Some(_) => Ok(()),
        None => Err(RunError::NonFinite { node, op: op.to_string(), span }),
    }
}

/// The entry point compiled drivers call for host op `index`: 0 on success, 1 after an
/// error (stored in the context), 2 after a panic.
///
/// # Safety
/// `ctx` must point to the live `HostCtx` of the running step.
pub(crate) unsafe extern "C" fn dnnc_host_call(ctx: *mut HostCtx, index: usize) -> i32 {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Safety: the driver passes the context pointer `program.rs` gave it.
        let ctx = unsafe { &mut *ctx };
        let result = ctx.run(index);
        match result {
            Ok(()) => 0,
            Err(e) => {
                ctx.error = Some(e);
                1
            }
        }
    }));
    result.unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_is_bounded_only_while_no_sum_can_overflow() {
        let ones = vec![1.0f32; 64];
        // Depth 1: 1e38 is below half of f32::MAX; depth 4: 4e38 is not.
        let big = vec![-1e19f32; 4];
        // A long A is checked in halves on two threads: its largest value and its bad one
        // in either half.
        let long = vec![1.0f32; 2 * MIN_SPLIT_CHECK + 3];
        for threads in [1, 2] {
            assert!(bounded_product(&ones, &ones, 64, threads));
            assert!(bounded_product(&big, &big, 1, threads));
            assert!(!bounded_product(&big, &big, 4, threads));
            for at in [0, long.len() - 1] {
                let mut a = long.clone();
                a[at] = -1e19;
                assert!(bounded_product(&a, &big[..1], 1, threads), "{threads} threads, at {at}");
                assert!(!bounded_product(&a, &big[..1], 4, threads), "{threads} threads, at {at}");
            }
            for bad in [f32::NAN, f32::INFINITY] {
                let mut a = ones.clone();
                a[63] = bad;
                let (one, two) =
                    (!bounded_product(&a, &ones, 64, threads), !bounded_product(&ones, &a, 64, threads));
                assert!(one && two, "{bad}");
                for at in [0, long.len() - 1] {
                    let mut a = long.clone();
                    a[at] = bad;
                    assert!(!bounded_product(&a, &ones, 64, threads), "{bad} at {at}, {threads} threads");
                }
            }
        }
    }

    /// The distinct answers of `finite_max_abs` on every instruction set this CPU has.
    fn every_instruction_set(values: &[f32]) -> Vec<Option<f32>> {
        let mut answers = vec![finite_max_abs_portable(values), finite_max_abs(values)];
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::has_avx2_fma() {
            // Safety: the CPU has AVX2 (checked).
            answers.push(unsafe { finite_max_abs_avx2(values) });
        }
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::has_avx512() {
            // Safety: the CPU has AVX-512 F (checked).
            answers.push(unsafe { finite_max_abs_avx512(values) });
        }
        answers.dedup();
        answers
    }

    #[test]
    fn every_non_finite_value_is_found_wherever_it_lies() {
        for len in [0usize, 1, 15, 16, 17, 100, 1000] {
            let clean: Vec<f32> = (0..len).map(|i| (i as f32 - 50.0) * 1e30).collect();
            let site = (NodeId(7), "add", Span::default());
            assert!(finite_or_stop(&clean, site).is_ok(), "len {len}");
            let largest = clean.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert_eq!(every_instruction_set(&clean), vec![Some(largest)], "len {len}");
            for at in [0, len / 2, len.saturating_sub(1)].into_iter().filter(|&at| at < len) {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut values = clean.clone();
                    values[at] = bad;
                    let stopped = finite_or_stop(&values, site);
                    assert!(
                        matches!(stopped, Err(RunError::NonFinite { node: NodeId(7), .. })),
                        "len {len}, {bad} at {at}"
                    );
                    assert_eq!(every_instruction_set(&values), vec![None], "len {len}, {bad} at {at}");
                }
            }
        }
    }

    /// Splitting a stack between threads gives every matrix the sequential product's
    /// values, with B shared (stride 0) or one per matrix, for odd and even stacks.
    #[test]
    fn a_stack_split_between_threads_matches_the_sequential_products() {
        let mut rng = crate::runtime::rng::Rng::new(5);
        let mut draw = |n: usize| (0..n).map(|_| rng.uniform() as f32 - 0.5).collect::<Vec<f32>>();
        for (batch, shared_b) in [(5, true), (4, false), (7, false)] {
            let (m, k, n) = (3, 4, 5);
            let la = BatchLayout::row_major(batch, m, k);
            let lb = if shared_b {
                BatchLayout { batch_stride: 0, ..BatchLayout::row_major(batch, k, n) }
            } else {
                BatchLayout::row_major(batch, k, n)
            };
            let lc = BatchLayout::row_major(batch, m, n);
            let a = draw(batch * m * k);
            let b = draw(if shared_b { k * n } else { batch * k * n });
            let mut want = vec![0.0; batch * m * n];
            for i in 0..batch {
                let bi = if shared_b { 0 } else { i * k * n };
                for r in 0..m {
                    for j in 0..n {
                        want[i * m * n + r * n + j] =
                            (0..k).map(|p| a[i * m * k + r * k + p] * b[bi + p * n + j]).sum();
                    }
                }
            }
            for threads in [1, 2, 3] {
                let mut c = vec![f32::NAN; batch * m * n];
                batched_product(&a, la, &b, lb, &mut c, lc, threads, false).expect("valid layouts");
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5, "{threads} threads, stack of {batch}: {x} vs {y}");
                }
            }
        }
    }
}
