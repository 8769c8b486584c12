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

/// Eight floats of `s` from `at` (bounds-checked: the slice of exactly eight is taken first).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn load(s: &[f32], at: usize) -> std::arch::x86_64::__m256 {
    let s = &s[at..at + 8];
    // Safety: `s` holds the eight elements read; callers run only where AVX is present.
    unsafe { std::arch::x86_64::_mm256_loadu_ps(s.as_ptr()) }
}

/// Writes eight floats of `v` to `s` from `at` (bounds-checked as `load`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn store(s: &mut [f32], at: usize, v: std::arch::x86_64::__m256) {
    let s = &mut s[at..at + 8];
    // Safety: `s` holds the eight elements written; callers run only where AVX is present.
    unsafe { std::arch::x86_64::_mm256_storeu_ps(s.as_mut_ptr(), v) }
}
