//! A runnable compiled step: the plan's memory (arenas allocated once), its frame of
//! pointers, and the compiled driver. [`Program::run`] binds the caller's inputs and state,
//! checks every slice against the plan, and calls native code; it allocates nothing.
//!
//! Invariants: the arenas and the frame are allocated in `Program::new` and never resized,
//! so the pointers the frame holds for them stay valid; the frame slots of externals are
//! rewritten at the start of every run from slices whose lengths were checked, so during
//! the call every slot points to as many elements as the plan addresses through it.

use super::driver::{Call, Compiled, compile};
use super::host::{HostCtx, HostOp};
use super::kexpr::KernelError;
use super::specialize::{Base, ConstData, Instr, Plan, Ptr};
use super::update::{H_CLIP, H_DECAY, H_L2, H_LR, H_LR_T, H_SCALE0};
use crate::ir::{Graph, RunError};
use crate::kernels::aligned::AlignedF32;
use crate::ops::Value;
use crate::shape::{DType, TensorType};
use std::time::{Duration, Instant};

/// The parameters and state a run reads and writes.
pub enum Params<'a> {
    /// Read-only parameters in the graph's order (inference).
    Values(&'a [Value]),
    /// `Values` that the caller has checked are all finite: a product of an input batch
    /// with one of them may skip the batch's zeros without checking the parameter again
    /// (`ZeroSkip`). A caller that passes a non-finite value here gets `0·∞` counted as 0.
    Finite(&'a [Value]),
    /// Training: the parameters (graph order), the optimizer slots (in the plan's order)
    /// and the hyper-parameter block, all updated in place.
    Train { params: &'a mut [AlignedF32], slots: &'a mut [AlignedF32], hyper: &'a mut [f32] },
}

/// A graph output after a run.
#[derive(Debug)]
pub enum OutputRef<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// An input of [`Program::run_slices`].
#[derive(Copy, Clone, Debug)]
pub enum Slice<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// A compiled, specialized step.
pub struct Program {
    plan: Plan,
    /// Owns the arenas; touched only through the raw pointers below.
    _arena: AlignedF32,
    _iarena: Box<[i64]>,
    arena: *mut f32,
    iarena: *mut i64,
    frame: Box<[usize]>,
    /// `(frame slot, external, byte offset)` rewritten before each run.
    patches: Vec<(usize, usize, usize)>,
    ext_ptrs: Vec<usize>,
    /// Outputs that live in externals are copied here after a run.
    ext_outputs: Vec<Option<Vec<f32>>>,
    host: Box<HostCtx>,
    compiled: Compiled,
    compile_time: Duration,
    input_types: Vec<TensorType>,
}

impl Program {
    /// Allocates the plan's memory and compiles it; `seed` drives random ops.
    pub fn new(graph: &Graph, plan: Plan, seed: u64, want_clif: bool) -> Result<Program, KernelError> {
        let started = Instant::now();
        // On a cache line, so that every buffer the plan places at a multiple of
        // `fuse::plan::ALIGN` elements starts one too.
        let mut arena = AlignedF32::zeros(plan.arena_len.max(1));
        let mut iarena = vec![0i64; plan.iarena_len.max(1)].into_boxed_slice();
        let (arena_ptr, iarena_ptr) = (arena.as_mut_ptr(), iarena.as_mut_ptr());
        let mut frame: Vec<usize> = Vec::new();
        let mut patches = Vec::new();
        let mut slot = |p: Ptr, frame: &mut Vec<usize>| -> usize {
            let value = match p.base {
                // Safety: offsets are within the arena lengths the plan computed.
                Base::Arena => unsafe { arena_ptr.add(p.offset) as usize },
                Base::IArena => unsafe { iarena_ptr.add(p.offset) as usize },
                Base::Ext(k) => {
                    let elem = if plan.exts[k].dtype == DType::I64 { 8 } else { 4 };
                    patches.push((frame.len(), k, p.offset * elem));
                    0
                }
            };
            frame.push(value);
            frame.len() - 1
        };
        let mut calls = Vec::new();
        let mut ops = Vec::new();
        for instr in &plan.instrs {
            match instr {
                Instr::Kernel { kernel, inputs, outputs, rows, cols } => {
                    let first_in = frame.len();
                    for &p in inputs {
                        slot(p, &mut frame);
                    }
                    let first_out = frame.len();
                    for &p in outputs {
                        slot(p, &mut frame);
                    }
                    let (rows, cols) = (*rows, *cols);
                    if rows * cols > 0 {
                        calls.push(Call::Kernel {
                            kernel: *kernel,
                            inputs: first_in,
                            outputs: first_out,
                            rows,
                            cols,
                        });
                    }
                    continue;
                }
                Instr::Gemm { .. } | Instr::Update { .. } | Instr::ProductUpdate { .. } => {
                    let hyper = plan.hyper_ext.unwrap_or(0);
                    ops.extend(product_or_update_op(instr, hyper, graph, &mut |p| slot(p, &mut frame)));
                }
                Instr::OneHot { labels, out, rows, depth } => ops.push(HostOp::OneHot {
                    labels: slot(*labels, &mut frame),
                    out: slot(*out, &mut frame),
                    rows: *rows,
                    depth: *depth,
                }),
                &Instr::Window { node, kernel, a, b, out, scratch, threads } => ops.push(HostOp::Window {
                    node,
                    kernel,
                    a: slot(a, &mut frame),
                    b: slot(b, &mut frame),
                    out: slot(out, &mut frame),
                    scratch: slot(scratch, &mut frame),
                    threads,
                }),
                Instr::Fallback { node, operands, out } => {
                    let operands =
                        operands.iter().map(|(p, d, s)| (slot(*p, &mut frame), *d, s.clone())).collect();
                    let out = (slot(out.0, &mut frame), out.1, out.2.clone());
                    let n = graph.node(*node);
                    ops.push(HostOp::Fallback { node: *node, span: n.span, op: n.op.clone(), operands, out });
                }
                Instr::Norm { grads, max_norm, targets, global } => {
                    let grads = grads.iter().map(|(p, len)| (slot(*p, &mut frame), *len)).collect();
                    let hyper = plan.hyper_ext.unwrap_or(0);
                    let targets = targets
                        .iter()
                        .map(|&t| slot(Ptr { base: Base::Ext(hyper), offset: t }, &mut frame))
                        .collect();
                    ops.push(HostOp::Norm { grads, max_norm: *max_norm, targets, global: *global });
                }
                Instr::Guard { values } => {
                    let values = values
                        .iter()
                        .map(|&(node, p, len)| {
                            let n = graph.node(node);
                            (node, n.op.name(), n.span, slot(p, &mut frame), len)
                        })
                        .collect();
                    ops.push(HostOp::Guard { values });
                }
                Instr::Accumulate { x, out, acc } => ops.push(HostOp::Accumulate {
                    x: slot(*x, &mut frame),
                    out: slot(*out, &mut frame),
                    acc: acc.clone(),
                }),
                Instr::Random { dist, stream, out, len } => ops.push(HostOp::Random {
                    dist: *dist,
                    stream: *stream,
                    out: slot(*out, &mut frame),
                    len: *len,
                }),
                Instr::Columns { from, to, cols } => ops.push(HostOp::Columns {
                    from: from.iter().map(|&p| slot(p, &mut frame)).collect(),
                    to: slot(*to, &mut frame),
                    cols: cols.clone(),
                }),
                Instr::Copy { from, to, len } => ops.push(HostOp::Copy {
                    from: slot(*from, &mut frame),
                    to: slot(*to, &mut frame),
                    len: *len,
                }),
                Instr::Scan(lp) => {
                    let runner = super::scan::ScanRunner::new(lp, &mut |p| slot(p, &mut frame), seed)?;
                    ops.push(HostOp::Scan(Box::new(std::cell::RefCell::new(runner))));
                }
                &Instr::Gather { node, table, ids, out, rows, width, count } => ops.push(HostOp::Rows {
                    site: super::rows::RowsSite { node, span: graph.node(node).span },
                    scatter: false,
                    a: slot(table, &mut frame),
                    b: slot(ids, &mut frame),
                    out: slot(out, &mut frame),
                    rows,
                    width,
                    count,
                }),
                &Instr::ScatterAdd { node, ids, g, out, rows, width, count } => ops.push(HostOp::Rows {
                    site: super::rows::RowsSite { node, span: graph.node(node).span },
                    scatter: true,
                    a: slot(ids, &mut frame),
                    b: slot(g, &mut frame),
                    out: slot(out, &mut frame),
                    rows,
                    width,
                    count,
                }),
                Instr::CastI64 { from, to, len } => ops.push(HostOp::CastI64 {
                    from: slot(*from, &mut frame),
                    to: slot(*to, &mut frame),
                    len: *len,
                }),
            }
            calls.push(Call::Host(ops.len() - 1));
        }
        for (p, data) in &plan.constants {
            // Safety: constants were planned inside the arenas, with these lengths.
            unsafe {
                match (*data, p.base) {
                    (ConstData::F32(v, n), Base::Arena) => {
                        std::slice::from_raw_parts_mut(arena_ptr.add(p.offset), n).fill(v)
                    }
                    (ConstData::I64(v, n), Base::IArena) => {
                        std::slice::from_raw_parts_mut(iarena_ptr.add(p.offset), n).fill(v)
                    }
                    _ => {}
                }
            }
        }
        let compiled = compile(&plan.kernels, &calls, want_clif)?;
        let frame = frame.into_boxed_slice();
        let host = Box::new(HostCtx {
            ops,
            frame: frame.as_ptr(),
            seed,
            step: 0,
            finite_params: false,
            error: None,
        });
        let ext_outputs = plan
            .outputs
            .iter()
            .map(|(p, d, s)| {
                matches!(p.base, Base::Ext(_))
                    .then(|| vec![0.0; if *d == DType::I64 { 0 } else { s.iter().product() }])
            })
            .collect();
        let input_types = graph.inputs.iter().map(|i| i.ty.clone()).collect();
        Ok(Program {
            ext_ptrs: vec![0; plan.exts.len()],
            plan,
            _arena: arena,
            _iarena: iarena,
            arena: arena_ptr,
            iarena: iarena_ptr,
            frame,
            patches,
            ext_outputs,
            host,
            compiled,
            compile_time: started.elapsed(),
            input_types,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Wall time of `new`: planning memory and compiling with Cranelift.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// The CLIF of the driver and its kernels, if it was asked for.
    pub fn clif(&self) -> Option<&str> {
        self.compiled.clif.as_deref()
    }

    /// Whether this program was specialized for inputs of these shapes.
    pub fn accepts(&self, inputs: &[Value]) -> bool {
        inputs.len() == self.plan.input_shapes.len()
            && inputs.iter().zip(&self.plan.input_shapes).all(|(v, s)| v.shape() == s.as_slice())
    }

    fn bind(
        &mut self,
        k: usize,
        ptr: usize,
        len: usize,
        dtype: DType,
        writable: bool,
    ) -> Result<(), RunError> {
        let info = &self.plan.exts[k];
        if info.len != len || info.dtype != dtype || (info.written && !writable) {
            let kind = if k < self.input_types.len() { "input" } else { "parameter" };
            return Err(RunError::BadArgument {
                kind,
                name: info.name.clone(),
                expected: TensorType::new(info.dtype, Vec::new()),
                got: format!("{len} {dtype} elements{}", if writable { "" } else { " (read-only)" }),
            });
        }
        self.ext_ptrs[k] = ptr;
        Ok(())
    }

    /// Runs the step on `inputs` (the shapes it was specialized for) and `params`.
    pub fn run(&mut self, inputs: &[Value], params: Params<'_>, step: u64) -> Result<(), RunError> {
        if !self.accepts(inputs) {
            return Err(RunError::ArgumentCount {
                what: "inputs of the specialized shapes",
                expected: self.plan.input_shapes.len(),
                got: inputs.len(),
            });
        }
        for (k, v) in inputs.iter().enumerate() {
            let (ptr, dtype) = match v {
                Value::F32(a) => (a.as_slice().map(|s| s.as_ptr() as usize), DType::F32),
                Value::I64(a) => (a.as_slice().map(|s| s.as_ptr() as usize), DType::I64),
                other => (None, other.dtype()),
            };
            let ptr = ptr.ok_or_else(|| RunError::BadArgument {
                kind: "input",
                name: self.plan.exts[k].name.clone(),
                expected: self.input_types[k].clone(),
                got: format!("a non-contiguous or {dtype} array"),
            })?;
            self.bind(k, ptr, v.len(), dtype, false)?;
        }
        let ni = inputs.len();
        self.host.finite_params = matches!(params, Params::Finite(_));
        match params {
            Params::Values(values) | Params::Finite(values) => {
                if ni + values.len() != self.plan.exts.len() {
                    return Err(RunError::ArgumentCount {
                        what: "parameters",
                        expected: self.plan.exts.len() - ni,
                        got: values.len(),
                    });
                }
                for (j, v) in values.iter().enumerate() {
                    let slice = match v {
                        Value::F32(a) => a.as_slice(),
                        _ => None,
                    };
                    let Some(slice) = slice else {
                        return Err(RunError::BadArgument {
                            kind: "parameter",
                            name: self.plan.exts[ni + j].name.clone(),
                            expected: TensorType::new(DType::F32, Vec::new()),
                            got: format!("a non-contiguous or {} array", v.dtype()),
                        });
                    };
                    self.bind(ni + j, slice.as_ptr() as usize, slice.len(), DType::F32, false)?;
                }
            }
            Params::Train { params, slots, hyper } => {
                let expected = ni + params.len() + slots.len() + 1;
                if expected != self.plan.exts.len() {
                    return Err(RunError::ArgumentCount {
                        what: "parameters and slots",
                        expected: self.plan.exts.len() - ni - 1,
                        got: params.len() + slots.len(),
                    });
                }
                for (j, p) in params.iter_mut().chain(slots.iter_mut()).enumerate() {
                    self.bind(ni + j, p.as_mut_ptr() as usize, p.len(), DType::F32, true)?;
                }
                let last = self.plan.exts.len() - 1;
                self.bind(last, hyper.as_mut_ptr() as usize, hyper.len(), DType::F32, true)?;
            }
        }
        self.launch(step)
    }

    /// Runs a program without parameters (a loop body) on inputs given as slices:
    /// `input(k)` is input `k`, called once per input. Lengths and element types are
    /// checked against the plan; nothing is allocated.
    pub fn run_slices<'a>(&mut self, input: impl Fn(usize) -> Slice<'a>, step: u64) -> Result<(), RunError> {
        let n = self.input_types.len();
        if n != self.plan.exts.len() {
            return Err(RunError::ArgumentCount {
                what: "parameters (a program run on slices takes none)",
                expected: 0,
                got: self.plan.exts.len() - n,
            });
        }
        for k in 0..n {
            let (ptr, len, dtype) = match input(k) {
                Slice::F32(s) => (s.as_ptr() as usize, s.len(), DType::F32),
                Slice::I64(s) => (s.as_ptr() as usize, s.len(), DType::I64),
            };
            self.bind(k, ptr, len, dtype, false)?;
        }
        self.host.finite_params = false;
        self.launch(step)
    }

    /// Calls the compiled driver on the externals bound by the caller (`run` or
    /// `run_slices`, whose borrows outlive this call) and copies out external outputs.
    fn launch(&mut self, step: u64) -> Result<(), RunError> {
        for &(slot, k, bytes) in &self.patches {
            self.frame[slot] = self.ext_ptrs[k] + bytes;
        }
        self.host.step = step;
        self.host.error = None;
        self.host.frame = self.frame.as_ptr();
        // Safety: every frame slot now points into an arena or into a slice that `run` or
        // `run_slices` bound just before this call, every external of the plan, with the
        // length the plan addresses through it (checked in `bind`); those borrows outlive
        // this call, the driver returns before it ends, and `host` points to this program's
        // context.
        let status = unsafe { (self.compiled.driver)(self.frame.as_ptr(), &mut *self.host) };
        if status != 0 {
            return Err(self.host.error.take().unwrap_or_else(|| RunError::InvalidGraph {
                node: crate::ir::NodeId(0),
                message: "a host call panicked".into(),
            }));
        }
        for (k, (p, _, _)) in self.plan.outputs.iter().enumerate() {
            if let (Base::Ext(e), Some(buf)) = (p.base, self.ext_outputs[k].as_mut()) {
                // Safety: the external is still borrowed (see above) and holds `buf.len()`
                // f32 elements from `offset`, as the plan sized the output.
                let src = unsafe {
                    std::slice::from_raw_parts((self.ext_ptrs[e] as *const f32).add(p.offset), buf.len())
                };
                buf.copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// How many times loops over time (`scan`) ran in this program, over all runs.
    pub fn loop_runs(&self) -> u64 {
        let runs = |op: &HostOp| match op {
            HostOp::Scan(r) => r.try_borrow().map_or(0, |r| r.runs()),
            _ => 0,
        };
        self.host.ops.iter().map(runs).sum()
    }

    /// Output `k` of the last run, with its shape.
    pub fn output(&self, k: usize) -> (OutputRef<'_>, &[usize]) {
        let (p, dtype, shape) = &self.plan.outputs[k];
        let len: usize = shape.iter().product();
        let data = match (p.base, dtype) {
            (Base::Ext(_), DType::I64) => OutputRef::I64(&[]),
            (Base::Ext(_), _) => OutputRef::F32(self.ext_outputs[k].as_deref().unwrap_or(&[])),
            // Safety: the plan placed the output inside the arena with `len` elements; the
            // arenas live as long as `self`, and no run is in progress while `&self` is held.
            (Base::IArena, _) => {
                OutputRef::I64(unsafe { std::slice::from_raw_parts(self.iarena.add(p.offset), len) })
            }
            (Base::Arena, _) => {
                OutputRef::F32(unsafe { std::slice::from_raw_parts(self.arena.add(p.offset), len) })
            }
        };
        (data, shape)
    }

    /// Output `k` as a value of its declared type (a copy).
    pub fn output_value(&self, k: usize) -> Value {
        let (data, shape) = self.output(k);
        let dims = ndarray::IxDyn(shape);
        let dtype = self.plan.outputs[k].1;
        let value = match data {
            OutputRef::F32(d) => Value::F32(
                ndarray::ArrayD::from_shape_vec(dims, d.to_vec())
                    .unwrap_or_else(|_| ndarray::ArrayD::zeros(ndarray::IxDyn(shape))),
            ),
            OutputRef::I64(d) => Value::I64(
                ndarray::ArrayD::from_shape_vec(dims, d.to_vec())
                    .unwrap_or_else(|_| ndarray::ArrayD::zeros(ndarray::IxDyn(shape))),
            ),
        };
        if dtype == DType::Bool { value.cast(DType::Bool) } else { value }
    }
}

/// The host op of a product, of an update, or of the two fused, its pointers given as the
/// frame slots `slot` makes; `hyper` is the external index of the hyper block.
fn product_or_update_op(
    instr: &Instr,
    hyper: usize,
    graph: &Graph,
    slot: &mut dyn FnMut(Ptr) -> usize,
) -> Option<HostOp> {
    Some(match instr {
        Instr::Gemm { a, b, c, layouts, threads, skip_zero_a } => HostOp::Gemm {
            a: slot(*a),
            b: slot(*b),
            c: slot(*c),
            layouts: *layouts,
            threads: *threads,
            skip_zero_a: *skip_zero_a,
        },
        Instr::Update { kind, index, param, grad, slots, len, threads } => {
            let scalars = [H_LR, H_LR_T, H_CLIP, H_L2, H_DECAY, H_SCALE0 + index]
                .map(|offset| slot(Ptr { base: Base::Ext(hyper), offset }));
            HostOp::Update {
                kind: kind.clone(),
                param: slot(*param),
                grad: slot(*grad),
                slots: slots.iter().map(|&p| slot(p)).collect(),
                scalars,
                len: *len,
                threads: *threads,
            }
        }
        Instr::ProductUpdate { product, update, grad } => {
            let n = graph.node(*grad);
            HostOp::ProductUpdate {
                product: Box::new(product_or_update_op(product, hyper, graph, slot)?),
                update: Box::new(product_or_update_op(update, hyper, graph, slot)?),
                grad: (*grad, n.op.name(), n.span),
            }
        }
        _ => return None,
    })
}
