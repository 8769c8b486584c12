//! The compiled step: one Cranelift module holding every kernel of a plan and a driver
//! function that calls them in order, and calls back into the host for the other work.
//!
//! The driver has the native signature `fn(frame: *const usize, host: *mut HostCtx) -> i32`.
//! A kernel call passes the addresses of its slots in the frame (its input pointers, then
//! its output pointers, each contiguous) and its domain as constants; a host call passes
//! the context and the op's index and returns early with the op's non-zero status. The
//! driver holds no addresses itself, so its text is the same run after run.

use super::emit;
use super::host::dnnc_host_call;
use super::jit::host_isa;
use super::kexpr::{KernelError, KernelSpec};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{AbiParam, BlockArg, Function, InstBuilder, Signature, UserFuncName};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};

/// The native type of a compiled driver.
pub(crate) type DriverFn = unsafe extern "C" fn(*const usize, *mut super::host::HostCtx) -> i32;

/// One call of the driver.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// Kernel `kernel` with its pointer tables at frame slots `inputs` and `outputs`.
    Kernel { kernel: usize, inputs: usize, outputs: usize, rows: usize, cols: usize },
    /// Host op `index`.
    Host(usize),
}

/// A compiled step.
pub(crate) struct Compiled {
    /// Owns the code; never freed while the process runs (see `jit.rs`).
    pub _module: JITModule,
    pub driver: DriverFn,
    /// The CLIF of the driver and the kernels, when asked for.
    pub clif: Option<String>,
}

fn driver_signature(call_conv: cranelift_codegen::isa::CallConv) -> Signature {
    let mut sig = Signature::new(call_conv);
    sig.params.extend([AbiParam::new(I64), AbiParam::new(I64)]);
    sig.returns.push(AbiParam::new(I32));
    sig
}

/// Compiles `kernels` (each with its contraction flag) and the driver making `calls`.
pub(crate) fn compile(
    kernels: &[(KernelSpec, bool)],
    calls: &[Call],
    want_clif: bool,
) -> Result<Compiled, KernelError> {
    let cl = |e: &dyn std::fmt::Display| KernelError::Cranelift(e.to_string());
    let isa = host_isa()?;
    let fma = isa.has_native_fma();
    let call_conv = isa.default_call_conv();
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    builder.symbol("dnnc_host_call", dnnc_host_call as *const u8);
    let mut module = JITModule::new(builder);
    let mut fctx = FunctionBuilderContext::new();
    let mut clif = String::new();
    let kernel_sig = emit::signature(call_conv);
    let mut ids: Vec<FuncId> = Vec::with_capacity(kernels.len());
    let mut bodies = Vec::with_capacity(kernels.len());
    for (k, (spec, contract)) in kernels.iter().enumerate() {
        spec.validate()?;
        let id = module
            .declare_function(&format!("kernel{k}"), Linkage::Local, &kernel_sig)
            .map_err(|e| cl(&e))?;
        let mut func = Function::with_name_signature(UserFuncName::user(0, id.as_u32()), kernel_sig.clone());
        emit::build(&mut func, &mut fctx, spec, fma && *contract, module.target_config());
        ids.push(id);
        bodies.push(func);
    }
    let mut host_sig = Signature::new(call_conv);
    host_sig.params.extend([AbiParam::new(I64), AbiParam::new(I64)]);
    host_sig.returns.push(AbiParam::new(I32));
    let host_id =
        module.declare_function("dnnc_host_call", Linkage::Import, &host_sig).map_err(|e| cl(&e))?;
    let sig = driver_signature(call_conv);
    let driver_id = module.declare_function("step", Linkage::Local, &sig).map_err(|e| cl(&e))?;
    let mut func = Function::with_name_signature(UserFuncName::user(0, driver_id.as_u32()), sig);
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let refs: Vec<_> = ids.iter().map(|&id| module.declare_func_in_func(id, b.func)).collect();
        let host_ref = module.declare_func_in_func(host_id, b.func);
        let entry = b.create_block();
        let fail = b.create_block();
        b.append_block_param(fail, I32);
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (frame, host) = (params[0], params[1]);
        for call in calls {
            match *call {
                Call::Kernel { kernel, inputs, outputs, rows, cols } => {
                    let ins = b.ins().iadd_imm_s(frame, 8 * inputs as i64);
                    let outs = b.ins().iadd_imm_s(frame, 8 * outputs as i64);
                    let r = b.ins().iconst(I64, rows as i64);
                    let c = b.ins().iconst(I64, cols as i64);
                    b.ins().call(refs[kernel], &[ins, outs, r, c]);
                }
                Call::Host(index) => {
                    let i = b.ins().iconst(I64, index as i64);
                    let inst = b.ins().call(host_ref, &[host, i]);
                    let status = b.inst_results(inst)[0];
                    let next = b.create_block();
                    let failed = b.ins().icmp_imm_s(IntCC::NotEqual, status, 0);
                    b.ins().brif(failed, fail, &[BlockArg::Value(status)], next, &[] as &[BlockArg]);
                    b.switch_to_block(next);
                }
            }
        }
        let ok = b.ins().iconst(I32, 0);
        b.ins().return_(&[ok]);
        b.switch_to_block(fail);
        let status = b.block_params(fail)[0];
        b.ins().return_(&[status]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    if want_clif {
        clif.push_str(&func.display().to_string());
        for (k, body) in bodies.iter().enumerate() {
            clif.push_str(&format!("\n; kernel{k}: {:?}\n", kernels[k].0.inputs));
            clif.push_str(&body.display().to_string());
        }
    }
    for (id, body) in ids.iter().zip(bodies) {
        let mut ctx = module.make_context();
        ctx.func = body;
        module.define_function(*id, &mut ctx).map_err(|e| KernelError::Cranelift(format!("{e:?}")))?;
    }
    let mut ctx = module.make_context();
    ctx.func = func;
    module.define_function(driver_id, &mut ctx).map_err(|e| KernelError::Cranelift(format!("{e:?}")))?;
    module.finalize_definitions().map_err(|e| cl(&e))?;
    let code = module.get_finalized_function(driver_id);
    // Safety: `code` is the finalized driver, declared with `driver_signature`, which is this
    // C-ABI type on the 64-bit host `host_isa` checked; the code lives as long as the module,
    // which `Compiled` owns.
    let driver = unsafe { std::mem::transmute::<*const u8, DriverFn>(code) };
    Ok(Compiled { _module: module, driver, clif: want_clif.then_some(clif) })
}
