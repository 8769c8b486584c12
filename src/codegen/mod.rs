//! Cranelift code generation: a small kernel-expression IR (`kexpr`) compiled to native
//! f32x4 loops (`lower`, `math`, `emit`) in a JIT module (`jit`).
//!
//! The compiled training step builds on them: `specialize` turns a `fuse::Schedule` into
//! instructions and a buffer plan for concrete sizes, `update` writes the optimizer update
//! as a kernel, `driver` compiles every kernel of a plan plus a driver function calling
//! them in one module, `host` runs what is not a kernel (GEMM, one-hot, the fallback), and
//! `program` owns the memory and runs it.
//!
//! A kernel runs over a 2-D domain `[rows, cols]`: elementwise kernels write one or more
//! row-major outputs, reduction kernels sum or max an expression along one axis. The `unsafe`
//! code is the boundary to compiled code (`jit.rs`, `driver.rs`, `program.rs`, `host.rs`),
//! each use behind length checks.

pub mod columns;
mod driver;
mod emit;
mod fuse_update;
mod host;
mod instr;
pub mod jit;
pub mod kexpr;
mod lower;
mod math;
mod plan_text;
pub mod program;
mod rows;
mod scalar_math;
mod scan;
mod scan_rows;
pub mod specialize;
pub mod strided;
pub mod update;
pub mod window;

pub use crate::kernels::aligned::AlignedF32;
pub use jit::{Jit, Kernel, clif_text};
pub use kexpr::{Access, KernelError, KernelExpr, KernelKind, KernelSpec, ReduceAxis};
pub use program::{OutputRef, Params, Program, Slice};
pub use scan::ScanLoop;
pub use specialize::{Plan, PlanOptions, SpecializeError, Training, ZeroSkip, specialize};
