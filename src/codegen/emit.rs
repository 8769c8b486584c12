//! Emits the body of one kernel function: the loops over the 2-D domain around the lowered
//! expression.
//!
//! Every kernel has the native signature
//! `fn(inputs: *const *const f32, outputs: *const *mut f32, rows: usize, cols: usize)`.
//! Loops over columns run 16 elements at a time (four f32x4 chunks, unrolled by hand since
//! Cranelift does not unroll), then 4 at a time, then one at a time. Invariant the caller
//! (`jit.rs`) guarantees: every pointer is valid for the lengths `Access::len` and
//! `KernelSpec::output_lens` give for `rows` and `cols`, so every address formed here is
//! in bounds and no access needs a trap check.

use super::kexpr::{Access, KernelKind, KernelSpec, ReduceAxis};
use super::lower::Lv;
use super::math::Vx;
use crate::ir::ReduceOp;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{AbiParam, BlockArg, Function, InstBuilder, MemFlagsData, Signature, Value};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};

/// Elements per vector and per unrolled step.
const LANES: i64 = 4;
const UNROLL: i64 = 4;

/// The native signature of every kernel, for a target with 64-bit pointers.
pub(crate) fn signature(call_conv: cranelift_codegen::isa::CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(I64));
    }
    sig
}

/// Loads never trap (the caller checked every length); alignment is only that of f32.
fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

struct Emitter<'a, 'b> {
    vx: Vx<'a, 'b>,
    spec: &'a KernelSpec,
    /// Base pointer of each input the kernel reads (None when unused).
    bases: Vec<Option<Value>>,
    /// Splatted values of `Scalar` inputs, loaded once.
    scalars: Vec<Option<Value>>,
    outputs: Vec<Value>,
    rows: Value,
    cols: Value,
}

/// Builds the body of `spec` into `func`, whose signature must be `signature(..)`.
pub(crate) fn build(
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    spec: &KernelSpec,
    fma: bool,
    frontend: TargetFrontendConfig,
) {
    let mut b = FunctionBuilder::new(func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (inputs_ptr, outputs_ptr, rows, cols) = (params[0], params[1], params[2], params[3]);
    let mut used = vec![false; spec.inputs.len()];
    for e in spec.exprs() {
        mark_used(e, &mut used);
    }
    let mut bases = Vec::new();
    let mut scalars = Vec::new();
    for (i, access) in spec.inputs.iter().enumerate() {
        let base = used[i].then(|| b.ins().load(I64, flags(), inputs_ptr, (8 * i) as i32));
        let scalar = match (base, access) {
            (Some(p), Access::Scalar) => {
                let s = b.ins().load(F32, flags(), p, 0);
                Some(b.ins().splat(F32X4, s))
            }
            _ => None,
        };
        bases.push(base);
        scalars.push(scalar);
    }
    let output_count = match &spec.kind {
        KernelKind::Elementwise { outputs } => outputs.len(),
        KernelKind::Reduce { .. } => 1,
    };
    let outputs =
        (0..output_count).map(|k| b.ins().load(I64, flags(), outputs_ptr, (8 * k) as i32)).collect();
    let mut em = Emitter { vx: Vx { b: &mut b, fma }, spec, bases, scalars, outputs, rows, cols };
    match &spec.kind {
        KernelKind::Elementwise { .. } => em.elementwise(),
        KernelKind::Reduce { op, axis: ReduceAxis::Cols, .. } => em.reduce_cols(*op),
        KernelKind::Reduce { op, axis: ReduceAxis::Rows, .. } => em.reduce_rows(*op),
    }
    em.vx.b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(frontend);
}

fn mark_used(e: &super::kexpr::KernelExpr, used: &mut [bool]) {
    use super::kexpr::KernelExpr as E;
    match e {
        E::Input(i) => used[*i] = true,
        E::Const(_) => {}
        E::Unary(_, x) => mark_used(x, used),
        E::Binary(_, a, b) => {
            mark_used(a, used);
            mark_used(b, used);
        }
        E::Select(c, a, b) => {
            mark_used(c, used);
            mark_used(a, used);
            mark_used(b, used);
        }
    }
}

/// Where a chunk of elements sits: row `r` (its element offset `r·cols` precomputed) and
/// column `c`.
#[derive(Copy, Clone)]
struct At {
    r: Value,
    row_offset: Value,
    c: Value,
}

impl Emitter<'_, '_> {
    fn iconst(&mut self, v: i64) -> Value {
        self.vx.b.ins().iconst(I64, v)
    }

    /// `base + 4·index`, the address of f32 element `index`.
    fn addr(&mut self, base: Value, index: Value) -> Value {
        let bytes = self.vx.b.ins().ishl_imm_u(index, 2);
        self.vx.b.ins().iadd(base, bytes)
    }

    /// Emits `while var + step <= limit { body(var); var += step }`.
    fn counted_loop(
        &mut self,
        var: Variable,
        step: i64,
        limit: Value,
        mut body: impl FnMut(&mut Self, Value),
    ) {
        let header = self.vx.b.create_block();
        let body_block = self.vx.b.create_block();
        let exit = self.vx.b.create_block();
        self.vx.b.ins().jump(header, &[]);
        self.vx.b.switch_to_block(header);
        let v = self.vx.b.use_var(var);
        let next = self.vx.b.ins().iadd_imm_s(v, step);
        let more = self.vx.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, next, limit);
        self.vx.b.ins().brif(more, body_block, &[] as &[BlockArg], exit, &[] as &[BlockArg]);
        self.vx.b.switch_to_block(body_block);
        body(self, v);
        let v = self.vx.b.use_var(var);
        let next = self.vx.b.ins().iadd_imm_s(v, step);
        self.vx.b.def_var(var, next);
        self.vx.b.ins().jump(header, &[]);
        self.vx.b.switch_to_block(exit);
    }

    fn new_var(&mut self, init: Value) -> Variable {
        let ty = self.vx.b.func.dfg.value_type(init);
        let var = self.vx.b.declare_var(ty);
        self.vx.b.def_var(var, init);
        var
    }

    /// Loads input `i` for the chunk at `at`: four elements (`width` 4) or one element
    /// splatted (`width` 1). `Col` and `Scalar` inputs are the same for every column.
    fn load_input(&mut self, i: usize, at: At, width: i64, offset: i32) -> Option<Value> {
        let base = self.bases[i]?;
        if let Some(s) = self.scalars[i] {
            return Some(s);
        }
        let (index, ty) = match self.spec.inputs[i] {
            Access::Full => (self.vx.b.ins().iadd(at.row_offset, at.c), F32X4),
            Access::Row => (at.c, F32X4),
            Access::Col => (at.r, F32),
            Access::Scalar => unreachable!("scalars are preloaded"),
        };
        let addr = self.addr(base, index);
        if ty == F32 {
            let s = self.vx.b.ins().load(F32, flags(), addr, 0);
            return Some(self.vx.b.ins().splat(F32X4, s));
        }
        if width == 1 {
            let s = self.vx.b.ins().load(F32, flags(), addr, offset);
            return Some(self.vx.b.ins().splat(F32X4, s));
        }
        Some(self.vx.b.ins().load(F32X4, flags(), addr, offset))
    }

    /// The expressions' values at the chunk `at + offset/4` elements.
    fn values(&mut self, at: At, width: i64, offset: i32) -> Vec<Value> {
        let inputs: Vec<Option<Value>> =
            (0..self.spec.inputs.len()).map(|i| self.load_input(i, at, width, offset)).collect();
        let spec = self.spec;
        let mut memo = Vec::new();
        spec.exprs()
            .iter()
            .map(|e| {
                let v: Lv = self.vx.lower(e, &inputs, &mut memo);
                self.vx.num(v)
            })
            .collect()
    }

    /// Iterates rows, then columns in steps of 16, 4 and 1, calling `chunk(at, width, offset)`
    /// for every group of `width` elements at byte offset `offset` from column `at.c`.
    fn for_each_chunk(&mut self, mut chunk: impl FnMut(&mut Self, At, i64, i32)) {
        let zero = self.iconst(0);
        let r_var = self.new_var(zero);
        let rows = self.rows;
        self.counted_loop(r_var, 1, rows, |em, r| {
            let row_offset = em.vx.b.ins().imul(r, em.cols);
            let zero = em.iconst(0);
            let c_var = em.new_var(zero);
            let cols = em.cols;
            em.counted_loop(c_var, LANES * UNROLL, cols, |em, c| {
                for u in 0..UNROLL {
                    chunk(em, At { r, row_offset, c }, LANES, (u * LANES * 4) as i32);
                }
            });
            em.counted_loop(c_var, LANES, cols, |em, c| chunk(em, At { r, row_offset, c }, LANES, 0));
            em.counted_loop(c_var, 1, cols, |em, c| chunk(em, At { r, row_offset, c }, 1, 0));
        });
    }

    fn elementwise(&mut self) {
        self.for_each_chunk(|em, at, width, offset| {
            let values = em.values(at, width, offset);
            let index = em.vx.b.ins().iadd(at.row_offset, at.c);
            for (k, v) in values.into_iter().enumerate() {
                let addr = em.addr(em.outputs[k], index);
                if width == 1 {
                    let s = em.vx.b.ins().extractlane(v, 0);
                    em.vx.b.ins().store(flags(), s, addr, offset);
                } else {
                    em.vx.b.ins().store(flags(), v, addr, offset);
                }
            }
        });
    }

    fn combine(&mut self, op: ReduceOp, a: Value, b: Value) -> Value {
        match op {
            ReduceOp::Sum => self.vx.b.ins().fadd(a, b),
            ReduceOp::Max => self.vx.b.ins().fmax(a, b),
        }
    }

    fn identity(op: ReduceOp) -> f32 {
        match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
        }
    }

    /// Output element `r` is the reduction of the row: four vector accumulators through the
    /// unrolled loop, folded together, then across lanes, then the scalar tail.
    fn reduce_cols(&mut self, op: ReduceOp) {
        let zero = self.iconst(0);
        let r_var = self.new_var(zero);
        let rows = self.rows;
        self.counted_loop(r_var, 1, rows, |em, r| {
            let row_offset = em.vx.b.ins().imul(r, em.cols);
            let init = em.vx.f(Self::identity(op));
            let accs: Vec<Variable> = (0..UNROLL).map(|_| em.new_var(init)).collect();
            let zero = em.iconst(0);
            let c_var = em.new_var(zero);
            let cols = em.cols;
            em.counted_loop(c_var, LANES * UNROLL, cols, |em, c| {
                for (u, &acc) in accs.iter().enumerate() {
                    let v = em.values(At { r, row_offset, c }, LANES, (u as i64 * LANES * 4) as i32)[0];
                    let old = em.vx.b.use_var(acc);
                    let new = em.combine(op, old, v);
                    em.vx.b.def_var(acc, new);
                }
            });
            em.counted_loop(c_var, LANES, cols, |em, c| {
                let v = em.values(At { r, row_offset, c }, LANES, 0)[0];
                let old = em.vx.b.use_var(accs[0]);
                let new = em.combine(op, old, v);
                em.vx.b.def_var(accs[0], new);
            });
            let a: Vec<Value> = accs.iter().map(|&v| em.vx.b.use_var(v)).collect();
            let (a01, a23) = (em.combine(op, a[0], a[1]), em.combine(op, a[2], a[3]));
            let folded = em.combine(op, a01, a23);
            let lanes: Vec<Value> = (0..4).map(|l| em.vx.b.ins().extractlane(folded, l as u8)).collect();
            let (l01, l23) = (em.combine(op, lanes[0], lanes[1]), em.combine(op, lanes[2], lanes[3]));
            let total = em.combine(op, l01, l23);
            let total_var = em.new_var(total);
            em.counted_loop(c_var, 1, cols, |em, c| {
                let v = em.values(At { r, row_offset, c }, 1, 0)[0];
                let s = em.vx.b.ins().extractlane(v, 0);
                let old = em.vx.b.use_var(total_var);
                let new = em.combine(op, old, s);
                em.vx.b.def_var(total_var, new);
            });
            let total = em.vx.b.use_var(total_var);
            let addr = em.addr(em.outputs[0], r);
            em.vx.b.ins().store(flags(), total, addr, 0);
        });
    }

    /// Output element `c` is the reduction of column `c`: blocks of 16, 4 and 1 columns, each
    /// with its accumulators in registers while a loop runs down the rows.
    fn reduce_rows(&mut self, op: ReduceOp) {
        let zero = self.iconst(0);
        let c_var = self.new_var(zero);
        let cols = self.cols;
        for (step, vectors, width) in [(LANES * UNROLL, UNROLL, LANES), (LANES, 1, LANES), (1, 1, 1)] {
            self.counted_loop(c_var, step, cols, |em, c| {
                let init = em.vx.f(Self::identity(op));
                let accs: Vec<Variable> = (0..vectors).map(|_| em.new_var(init)).collect();
                let zero = em.iconst(0);
                let r_var = em.new_var(zero);
                let rows = em.rows;
                em.counted_loop(r_var, 1, rows, |em, r| {
                    let row_offset = em.vx.b.ins().imul(r, em.cols);
                    for (u, &acc) in accs.iter().enumerate() {
                        let v = em.values(At { r, row_offset, c }, width, (u as i64 * LANES * 4) as i32)[0];
                        let old = em.vx.b.use_var(acc);
                        let new = em.combine(op, old, v);
                        em.vx.b.def_var(acc, new);
                    }
                });
                let addr = em.addr(em.outputs[0], c);
                for (u, &acc) in accs.iter().enumerate() {
                    let v = em.vx.b.use_var(acc);
                    let offset = (u as i64 * LANES * 4) as i32;
                    if width == 1 {
                        let s = em.vx.b.ins().extractlane(v, 0);
                        em.vx.b.ins().store(flags(), s, addr, offset);
                    } else {
                        em.vx.b.ins().store(flags(), v, addr, offset);
                    }
                }
            });
        }
    }
}
