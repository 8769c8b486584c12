//! Which instruction set the window kernels (`conv`, `pool`) run with: AVX2 + FMA when the
//! CPU has them (detected once, as the GEMM does), else portable Rust compiled for the
//! baseline target. Each kernel with an AVX2 path also has a portable one that computes the
//! same results (bit for bit where the kernel promises it, to rounding otherwise), so tests
//! run both on any machine that has AVX2.

/// The instruction set of one kernel call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Isa {
    Portable,
    Avx2,
}

impl Isa {
    /// The fastest this CPU runs.
    pub fn best() -> Isa {
        if super::gemm_micro::has_avx2_fma() { Isa::Avx2 } else { Isa::Portable }
    }

    /// Every instruction set this CPU runs, portable first (what tests compare).
    #[cfg(test)]
    pub fn all() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        if Isa::best() == Isa::Avx2 {
            all.push(Isa::Avx2);
        }
        all
    }
}
