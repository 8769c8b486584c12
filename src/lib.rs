//! dnnc: a language and compiler for neural networks.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `syntax` (lex, parse, AST) → `sema` (names, shapes, lowering) → `ir` (typed SSA graphs
//! over the primitives of `ops`) → `autodiff` (reverse mode, IR to IR) → `fuse`
//! (kernels, buffer plan) → `codegen` (Cranelift) → `runtime` (data, optimizers, training).
//! `diag` renders every error of every stage.

pub mod autodiff;
pub mod codegen;
pub mod diag;
pub mod fuse;
pub mod ir;
pub mod kernels;
pub mod ops;
pub mod runtime;
pub mod sema;
pub mod shape;
pub mod source;
pub mod syntax;
