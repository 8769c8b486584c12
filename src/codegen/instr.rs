//! The instructions and memory layout of a specialized step: what `specialize` produces
//! and `program.rs` runs.
//!
//! Memory: f32 and bool values live in one f32 arena (bools as 0.0 or 1.0), i64 values in a
//! small i64 arena, and everything the caller owns (inputs, parameters, optimizer slots,
//! the hyper-parameter block) is an *external*, numbered inputs first, then parameters,
//! then slots, then the hyper block. Invariant: every pointer an instruction names is in
//! bounds for the lengths recorded in the plan.

use super::kexpr::KernelSpec;
use super::window::WindowKernel;
use crate::ir::NodeId;
use crate::kernels::gemm::BatchLayout;
use crate::runtime::optim::OptimizerSpec;
use crate::shape::DType;

/// Which memory a pointer is into.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Arena,
    IArena,
    /// The caller's `k`-th external.
    Ext(usize),
}

/// An element address: `offset` elements from the start of `base`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ptr {
    pub base: Base,
    pub offset: usize,
}

/// One thing the compiled step does, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Instr {
    /// Compiled kernel `kernel` over a `rows × cols` domain.
    Kernel { kernel: usize, inputs: Vec<Ptr>, outputs: Vec<Ptr>, rows: usize, cols: usize },
    /// `c = a @ b` on the tuned GEMM, skipping where `a`, a batch of data, is zero when
    /// `skip_zero_a` says so.
    Gemm { a: Ptr, b: Ptr, c: Ptr, layouts: [BatchLayout; 3], threads: usize, skip_zero_a: ZeroSkip },
    /// `out[r, labels[r]] = 1`, the rest 0.
    OneHot { labels: Ptr, out: Ptr, rows: usize, depth: usize },
    /// A native convolution or pooling kernel of `node`: `out = kernel(a, b)` (`b` unused
    /// by pooling), with `scratch` reserved for this instruction alone.
    Window { node: NodeId, kernel: WindowKernel, a: Ptr, b: Ptr, out: Ptr, scratch: Ptr, threads: usize },
    /// The reference kernel of `node` on copies of its operands.
    Fallback { node: NodeId, operands: Vec<(Ptr, DType, Vec<usize>)>, out: (Ptr, DType, Vec<usize>) },
    /// Writes the clipping scale(s) for gradients `grads` into hyper slots `targets`:
    /// one scale per tensor, or one for all when `global`.
    Norm { grads: Vec<(Ptr, usize)>, max_norm: f32, targets: Vec<usize>, global: bool },
    /// Stops the step with a non-finite error, before any update touches the parameters,
    /// when one of `values` (the loss, the gradients: `(node, where, elements)`) holds a
    /// NaN or an infinity.
    Guard { values: Vec<(NodeId, Ptr, usize)> },
    /// `len` f32 random draws of stream `stream` for this run's seed and step (dropout
    /// masks), the values the reference kernel gives.
    Random { dist: crate::ir::Distribution, stream: u32, out: Ptr, len: usize },
    /// A sum over middle axes or a broadcast into them (`strided.rs`).
    Accumulate { x: Ptr, out: Ptr, acc: super::strided::Accumulation },
    /// The optimizer's update of trainable parameter `index`: its parameter, gradient and
    /// slots (`len` elements each) by `runtime::optim`'s rule `kind`, with this step's hyper
    /// block; split in two halves when `threads > 1` and the parameter is large.
    Update {
        kind: crate::runtime::optim::OptimizerKind,
        index: usize,
        param: Ptr,
        grad: Ptr,
        slots: Vec<Ptr>,
        len: usize,
        threads: usize,
    },
    /// A parameter's gradient product (`Gemm`) with the parameter's `Update` run on each
    /// block of the gradient as soon as the block is final (`fuse_update.rs`). `grad` is
    /// the gradient's node, named if its values turn out not to be finite.
    ProductUpdate { product: Box<Instr>, update: Box<Instr>, grad: NodeId },
    /// A window of columns copied between row-major matrices: a `slice` or a `pad` along
    /// the last axis (`columns.rs`).
    Columns { from: Vec<Ptr>, to: Ptr, cols: super::columns::Columns },
    /// Copies `len` elements (a state output into its parameter).
    Copy { from: Ptr, to: Ptr, len: usize },
    /// Converts `len` i64 elements to f32 (labels used as numbers).
    CastI64 { from: Ptr, to: Ptr, len: usize },
    /// A loop over time running its compiled body once per step (`scan.rs`).
    Scan(Box<super::scan::ScanLoop>),
    /// `out[i] = table[ids[i]]` for `count` ids and rows of `width` (`rows.rs`); `rows` is
    /// the table's row count.
    Gather { node: NodeId, table: Ptr, ids: Ptr, out: Ptr, rows: usize, width: usize, count: usize },
    /// `out = 0; out[ids[i]] += g[i]` (`rows.rs`), `out` of `rows` rows.
    ScatterAdd { node: NodeId, ids: Ptr, g: Ptr, out: Ptr, rows: usize, width: usize, count: usize },
}

/// What the caller binds to external `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtInfo {
    pub name: String,
    pub dtype: DType,
    pub len: usize,
    /// Kernels write it (parameters and slots being trained).
    pub written: bool,
}

/// A value to write once when the step is set up.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum ConstData {
    F32(f32, usize),
    I64(i64, usize),
}

/// The optimizer part of a training step.
#[derive(Clone, Debug)]
pub struct Training {
    pub spec: OptimizerSpec,
    /// `(graph parameter index, gradient node)` of every trainable parameter.
    pub updates: Vec<(usize, NodeId)>,
    /// `(state output node, graph parameter index)`: copied into the parameter at the end.
    pub states: Vec<(NodeId, usize)>,
    /// Graph outputs still read after the step (loss, predictions).
    pub keep: Vec<NodeId>,
    /// The loss: checked with the gradients before the first update (see `Instr::Guard`).
    pub loss: Option<NodeId>,
}

/// A buffer of the plan, for printing.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedBuffer {
    pub node: NodeId,
    pub offset: usize,
    pub len: usize,
    pub first: usize,
    pub last: usize,
}

/// A schedule specialized for one binding of its symbols.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub instrs: Vec<Instr>,
    /// Kernel specs and whether each contracts multiply-adds.
    pub kernels: Vec<(KernelSpec, bool)>,
    pub arena_len: usize,
    pub iarena_len: usize,
    pub constants: Vec<(Ptr, ConstData)>,
    pub exts: Vec<ExtInfo>,
    /// Where each graph output is after a run, with its dtype and shape.
    pub outputs: Vec<(Ptr, DType, Vec<usize>)>,
    pub input_shapes: Vec<Vec<usize>>,
    pub buffers: Vec<PlannedBuffer>,
    /// External index of the hyper block (training only).
    pub hyper_ext: Option<usize>,
    /// External index of the first slot of each trainable parameter (training only).
    pub slot_exts: Vec<usize>,
}

/// Why a schedule cannot be specialized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecializeError {
    #[error("node %{0}: its shape depends on a symbol the inputs do not bind")]
    Unbound(u32),
    #[error("{0} values are not supported by the JIT as inputs or parameters")]
    DType(DType),
    #[error("node %{0}: the stacked products it sums do not join into one product")]
    Unjoined(u32),
}

/// Threads a product of `m·k·n` multiply-adds gets.
pub fn gemm_threads(flops: usize, threads: usize, threshold: usize) -> usize {
    if threads > 1 && flops >= threshold { threads } else { 1 }
}

/// Multiply-adds from which a product is split between threads: about a microsecond of
/// one core's work, as long as handing half of it to a spinning worker of the team
/// (`kernels::team`) and waiting for it. (With rayon's fork-join, which wakes a sleeping
/// worker, 1M was the break-even.)
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Whether a product whose A is a batch of data skips where the batch is zero: its
/// nonzeros alone when it is sparse (`kernels/gemm_sparse_a.rs`), else the features that
/// are zero throughout (`kernels/gemm_zero_a.rs`). A skipped `0·b` is 0 only for a finite
/// `b`, so B must be known finite.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ZeroSkip {
    /// Every product is computed in full.
    Off,
    /// In a training step, whose guard keeps every parameter and gradient finite.
    Guarded,
    /// In a prediction of at least [`MIN_CHECKED_ROWS`] rows: when B is a parameter of a
    /// run whose parameters the caller checked finite (`Params::Finite`), or one pass over
    /// B finds it finite; else in full.
    CheckedB { param: bool },
    /// In a smaller prediction whose B is a parameter: only in a run whose parameters the
    /// caller checked finite (a validation pass, which runs the fit's batch size hundreds
    /// of times over the same parameters).
    FiniteParam,
}

/// Fewest rows of a prediction's batch for which checking B (the first layer's weights,
/// 100 k values in the MNIST MLP: ~10 µs) pays: a batch-1 prediction takes 3–5 µs whole.
pub const MIN_CHECKED_ROWS: usize = 64;

/// Options of the specialization.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Threads for large matrix products (1 = sequential).
    pub threads: usize,
    /// Multiply-adds from which a product uses `threads`.
    pub parallel_threshold: usize,
    /// Fuse the last weight gradient's product with its update (`fuse_update.rs`); off
    /// only to compare the two.
    pub fuse_updates: bool,
    /// Skip the depth steps and row panels where a training batch is zero throughout, in
    /// the products whose A is the batch (`kernels/gemm_zero_a.rs`); off only to compare.
    pub skip_zero_a: bool,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            threads: 1,
            parallel_threshold: PARALLEL_THRESHOLD,
            fuse_updates: true,
            skip_zero_a: true,
        }
    }
}
