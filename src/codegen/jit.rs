//! The JIT: one `JITModule` per `Jit`, compiling many kernels, and `Kernel`, the safe handle
//! that checks every slice before it calls native code.
//!
//! Invariants: code is never freed (cranelift-jit releases it only on an explicit
//! `free_memory`, which nothing here calls), so a `Kernel`'s function pointer stays valid
//! for the life of the process, even after its `Jit` is dropped; a `Kernel` is only ever
//! called through `Kernel::run`, which proves the lengths `emit.rs` relies on.

use super::emit;
use super::kexpr::{KernelError, KernelKind, KernelSpec};
use cranelift_codegen::ir::{Function, UserFuncName};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The native entry point of every kernel (see `emit.rs`).
type KernelFn = unsafe extern "C" fn(*const *const f32, *const *mut f32, usize, usize);

/// The host ISA with the flags kernels are compiled with: optimized, FMA and AVX detected.
pub(crate) fn host_isa() -> Result<OwnedTargetIsa, KernelError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags.set(name, value).map_err(|e| KernelError::Cranelift(format!("setting {name}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa = cranelift_native::builder().map_err(|e| KernelError::UnsupportedHost(e.to_string()))?;
    if isa.triple().pointer_width().map(|w| w.bits()) != Ok(64) {
        return Err(KernelError::UnsupportedHost("kernels need a 64-bit target".into()));
    }
    isa.finish(settings::Flags::new(flags)).map_err(|e| KernelError::UnsupportedHost(e.to_string()))
}

/// Compiles kernels into one JIT module.
pub struct Jit {
    module: JITModule,
    fctx: FunctionBuilderContext,
    fma: bool,
    compiled: usize,
}

impl Jit {
    pub fn new() -> Result<Jit, KernelError> {
        let isa = host_isa()?;
        let fma = isa.has_native_fma();
        let module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        Ok(Jit { module, fctx: FunctionBuilderContext::new(), fma, compiled: 0 })
    }

    /// Whether kernels contract multiply-adds (the `contract` flag of `KernelExpr::eval`).
    pub fn contracts(&self) -> bool {
        self.fma
    }

    /// The unoptimized Cranelift IR of `spec`'s kernel function.
    pub fn clif_text(&mut self, spec: &KernelSpec) -> Result<String, KernelError> {
        spec.validate()?;
        let func = self.function(spec, UserFuncName::user(0, 0));
        Ok(func.display().to_string())
    }

    fn function(&mut self, spec: &KernelSpec, name: UserFuncName) -> Function {
        let sig = emit::signature(self.module.isa().default_call_conv());
        let mut func = Function::with_name_signature(name, sig);
        emit::build(&mut func, &mut self.fctx, spec, self.fma, self.module.target_config());
        func
    }

    /// Compiles one kernel.
    pub fn compile(&mut self, spec: &KernelSpec) -> Result<Kernel, KernelError> {
        let mut kernels = self.compile_all(std::slice::from_ref(spec))?;
        kernels.pop().ok_or_else(|| KernelError::Cranelift("no kernel came back".into()))
    }

    /// Compiles several kernels and links them in one step.
    pub fn compile_all(&mut self, specs: &[KernelSpec]) -> Result<Vec<Kernel>, KernelError> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            spec.validate()?;
            let name = format!("dnnc_kernel_{}", self.compiled);
            self.compiled += 1;
            let sig = emit::signature(self.module.isa().default_call_conv());
            let id = self
                .module
                .declare_function(&name, Linkage::Local, &sig)
                .map_err(|e| KernelError::Cranelift(e.to_string()))?;
            let mut ctx = self.module.make_context();
            ctx.func = self.function(spec, UserFuncName::user(0, id.as_u32()));
            self.module
                .define_function(id, &mut ctx)
                .map_err(|e| KernelError::Cranelift(format!("{e:?}")))?;
            ids.push(id);
        }
        self.module.finalize_definitions().map_err(|e| KernelError::Cranelift(e.to_string()))?;
        let per_kernel = started.elapsed() / specs.len().max(1) as u32;
        Ok(specs
            .iter()
            .zip(ids)
            .map(|(spec, id)| {
                let code = self.module.get_finalized_function(id);
                // Safety: `code` is the finalized entry of a function declared with
                // `emit::signature`, which is this C-ABI type on a 64-bit target (checked in
                // `host_isa`); the code is never freed (see the module header).
                let entry = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
                Kernel { spec: Arc::new(spec.clone()), entry, compile_time: per_kernel }
            })
            .collect())
    }
}

/// A compiled kernel. Cheap to clone, and callable from any thread.
#[derive(Clone)]
pub struct Kernel {
    spec: Arc<KernelSpec>,
    entry: KernelFn,
    compile_time: Duration,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("spec", &self.spec).field("compile_time", &self.compile_time).finish()
    }
}

impl Kernel {
    pub fn spec(&self) -> &KernelSpec {
        &self.spec
    }

    /// Wall time spent compiling it (the batch's time divided by its size).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Runs the kernel over a `rows × cols` domain. Every input slice must have exactly the
    /// length its `Access` gives, every output `rows·cols` (elementwise), `rows` (reduce over
    /// cols) or `cols` (reduce over rows) elements.
    pub fn run(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        rows: usize,
        cols: usize,
    ) -> Result<(), KernelError> {
        let spec = &*self.spec;
        let too_large = KernelError::DomainTooLarge { rows, cols };
        // The code forms byte offsets as 4·(r·cols + c) in 64 bits: keep them far from overflow.
        let elements = rows.checked_mul(cols).filter(|&n| n <= isize::MAX as usize / 4).ok_or(too_large)?;
        if inputs.len() != spec.inputs.len() {
            return Err(KernelError::SliceCount {
                what: "input",
                expected: spec.inputs.len(),
                got: inputs.len(),
            });
        }
        let output_lens = spec.output_lens(rows, cols).ok_or(KernelError::DomainTooLarge { rows, cols })?;
        if outputs.len() != output_lens.len() {
            return Err(KernelError::SliceCount {
                what: "output",
                expected: output_lens.len(),
                got: outputs.len(),
            });
        }
        for (index, (access, input)) in spec.inputs.iter().zip(inputs).enumerate() {
            let expected = access.len(rows, cols).ok_or(KernelError::DomainTooLarge { rows, cols })?;
            if input.len() != expected {
                let access = format!("{access:?}");
                return Err(KernelError::SliceLength {
                    what: "input",
                    index,
                    access,
                    expected,
                    got: input.len(),
                    rows,
                    cols,
                });
            }
        }
        for (index, (&expected, output)) in output_lens.iter().zip(outputs.iter()).enumerate() {
            if output.len() != expected {
                let access = match spec.kind {
                    KernelKind::Elementwise { .. } => "Full".to_string(),
                    KernelKind::Reduce { axis, .. } => format!("reduced over {axis:?}"),
                };
                return Err(KernelError::SliceLength {
                    what: "output",
                    index,
                    access,
                    expected,
                    got: output.len(),
                    rows,
                    cols,
                });
            }
        }
        if output_lens.iter().all(|&n| n == 0) {
            return Ok(());
        }
        // With no row- or column-dependent input, the domain is one long row: longer inner
        // loops, and no per-row tails.
        let (rows, cols) = if spec.needs_2d() { (rows, cols) } else { (1, elements) };
        let input_ptrs: Vec<*const f32> = inputs.iter().map(|s| s.as_ptr()).collect();
        let output_ptrs: Vec<*mut f32> = outputs.iter_mut().map(|s| s.as_mut_ptr()).collect();
        // Safety: every slice was checked above to have exactly the length the kernel's loops
        // address for this (rows, cols) (flattening keeps rows·cols), the pointer arrays
        // outlive the call, outputs are distinct `&mut` borrows so they alias neither each
        // other nor an input, and the code writes only through the output pointers.
        unsafe { (self.entry)(input_ptrs.as_ptr(), output_ptrs.as_ptr(), rows, cols) };
        Ok(())
    }
}

/// The Cranelift IR of `spec`'s kernel as a host-targeted JIT would compile it, for
/// `dnnc ir --stage clif`.
pub fn clif_text(spec: &KernelSpec) -> Result<String, KernelError> {
    Jit::new()?.clif_text(spec)
}
