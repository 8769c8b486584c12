//! Cranelift code generation: a small kernel-expression IR (`kexpr`) compiled to native
//! f32x4 loops (`lower`, `math`, `emit`) in a JIT module (`jit`).
//!
//! A kernel runs over a 2-D domain `[rows, cols]`: elementwise kernels write one or more
//! row-major outputs, reduction kernels sum or max an expression along one axis. The only
//! `unsafe` is the call into compiled code in `jit.rs`, behind length checks.

mod emit;
pub mod jit;
pub mod kexpr;
mod lower;
mod math;
mod scalar_math;

pub use jit::{Jit, Kernel, clif_text};
pub use kexpr::{Access, KernelError, KernelExpr, KernelKind, KernelSpec, ReduceAxis};
