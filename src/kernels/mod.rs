//! Hand-written compute kernels the compiled step calls into:
//! matrix products (`gemm`) for now. Everything here is safe to call with any input: bad
//! shapes and short slices are `Err`s.

pub mod gemm;
mod gemm_blocked;
mod gemm_micro;
