//! Hand-written compute kernels the compiled step calls into: matrix products (`gemm`),
//! convolutions through them (`conv`) and pooling (`pool`). Everything here is safe to call
//! with any input: bad shapes and short slices are `Err`s.

pub mod aligned;
pub mod conv;
pub mod gemm;
mod gemm_blocked;
mod gemm_cview;
mod gemm_micro;
mod gemm_pack;
mod gemm_sparse_a;
mod gemm_zero_a;
pub(crate) use gemm_micro::{has_avx2_fma, has_avx512};
pub mod pool;
mod simd;
pub mod team;
