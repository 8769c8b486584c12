//! The arithmetic of Winograd's F(2×2, 3×3) for `conv_winograd.rs`: lanes of 8 (or 1)
//! channels or filters as plain arrays the compiler vectorizes, the six 1-D transforms
//! (`Bᵀ`, `Aᵀ`, `G` and their transposes), `F·x·Fᵀ` of a tile, the tile loads and stores, and
//! `on`, which compiles a closure of them for AVX2. Only additions, subtractions and halvings:
//! rounding stays close to a direct sum's.

use crate::kernels::simd::Isa;
use std::ops::{Add, Mul, Neg, Sub};

/// `L` lanes of channels or filters, added and scaled element by element (the compiler
/// turns each operation into vector instructions).
#[derive(Clone, Copy)]
pub(super) struct Lanes<const L: usize>(pub(super) [f32; L]);

impl<const L: usize> Lanes<L> {
    pub(super) const ZERO: Self = Lanes([0.0; L]);

    #[inline(always)]
    pub(super) fn load(s: &[f32], at: usize) -> Self {
        let mut lanes = [0.0; L];
        lanes.copy_from_slice(&s[at..at + L]);
        Lanes(lanes)
    }

    #[inline(always)]
    pub(super) fn store(self, s: &mut [f32], at: usize) {
        s[at..at + L].copy_from_slice(&self.0);
    }

    #[inline(always)]
    pub(super) fn add_to(self, s: &mut [f32], at: usize) {
        for (d, v) in s[at..at + L].iter_mut().zip(self.0) {
            *d += v;
        }
    }
}

impl<const L: usize> Add for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn add(mut self, other: Self) -> Self {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a += b);
        self
    }
}

impl<const L: usize> Sub for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn sub(mut self, other: Self) -> Self {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a -= b);
        self
    }
}

impl<const L: usize> Neg for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn neg(mut self) -> Self {
        self.0.iter_mut().for_each(|a| *a = -*a);
        self
    }
}

impl<const L: usize> Mul<f32> for Lanes<L> {
    type Output = Self;
    #[inline(always)]
    fn mul(mut self, s: f32) -> Self {
        self.0.iter_mut().for_each(|a| *a *= s);
        self
    }
}

/// `Bᵀ·d`, the input transform of one column or row.
#[inline(always)]
pub(super) fn bt<const L: usize>([d0, d1, d2, d3]: [Lanes<L>; 4]) -> [Lanes<L>; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `B·v`, its transpose (the input gradient's).
#[inline(always)]
pub(super) fn b<const L: usize>([v0, v1, v2, v3]: [Lanes<L>; 4]) -> [Lanes<L>; 4] {
    [v0, v1 - v2 + v3, v1 + v2 - v0, -v3]
}

/// `Aᵀ·m`, the output transform.
#[inline(always)]
pub(super) fn at<const L: usize>([m0, m1, m2, m3]: [Lanes<L>; 4]) -> [Lanes<L>; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// `A·y`, its transpose (the output gradient's).
#[inline(always)]
pub(super) fn a<const L: usize>([y0, y1]: [Lanes<L>; 2]) -> [Lanes<L>; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// `G·g`, the kernel transform.
#[inline(always)]
pub(super) fn g<const L: usize>([g0, g1, g2]: [Lanes<L>; 3]) -> [Lanes<L>; 4] {
    let outer = g0 + g2;
    [g0, (outer + g1) * 0.5, (outer - g1) * 0.5, g2]
}

/// `Gᵀ·u`, its transpose (the kernel gradient's).
#[inline(always)]
pub(super) fn gt<const L: usize>([u0, u1, u2, u3]: [Lanes<L>; 4]) -> [Lanes<L>; 3] {
    let inner = (u1 + u2) * 0.5;
    [u0 + inner, (u1 - u2) * 0.5, inner + u3]
}

/// `F·x·Fᵀ` for the matrix `F` that `f` multiplies a vector by: `f` on every column of `x`,
/// then on every row of that. (Plain loops: `array::from_fn` and `map` closures of this
/// size were left as calls by the compiler, measured at 6 % of a CIFAR step.)
#[inline(always)]
pub(super) fn sandwich<const L: usize, const I: usize, const O: usize>(
    x: &[[Lanes<L>; I]; I],
    f: fn([Lanes<L>; I]) -> [Lanes<L>; O],
) -> [[Lanes<L>; O]; O] {
    let mut columns = [[Lanes::ZERO; O]; I];
    for (j, column) in columns.iter_mut().enumerate() {
        let mut input = [Lanes::ZERO; I];
        for (i, v) in input.iter_mut().enumerate() {
            *v = x[i][j];
        }
        *column = f(input);
    }
    let mut out = [[Lanes::ZERO; O]; O];
    for (o, row) in out.iter_mut().enumerate() {
        let mut input = [Lanes::ZERO; I];
        for (j, v) in input.iter_mut().enumerate() {
            *v = columns[j][o];
        }
        *row = f(input);
    }
    out
}

/// The lanes of `s` at each offset of `at` plus `shift` (zeros where `at` has none).
#[inline(always)]
pub(super) fn gather<const L: usize, const N: usize>(
    s: &[f32],
    at: &[[Option<usize>; N]; N],
    shift: usize,
) -> [[Lanes<L>; N]; N] {
    let mut out = [[Lanes::ZERO; N]; N];
    for (out, at) in out.iter_mut().zip(at) {
        for (v, at) in out.iter_mut().zip(at) {
            if let Some(p) = at {
                *v = Lanes::load(s, p + shift);
            }
        }
    }
    out
}

/// Writes the lanes of tile `t` at `at(i, j)` of `s`.
#[inline(always)]
pub(super) fn put<const L: usize, const N: usize>(
    s: &mut [f32],
    t: &[[Lanes<L>; N]; N],
    at: impl Fn(usize, usize) -> usize,
) {
    for (i, row) in t.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            v.store(s, at(i, j));
        }
    }
}

/// `at(i, j)` for every `(i, j)` of an `N × N` tile.
#[inline(always)]
pub(super) fn offsets<const N: usize>(at: impl Fn(usize, usize) -> Option<usize>) -> [[Option<usize>; N]; N] {
    let mut out = [[None; N]; N];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = at(i, j);
        }
    }
    out
}

/// The lanes of `s` at `at(i, j)` for every `(i, j)` of an `N × N` tile.
#[inline(always)]
pub(super) fn tile<const L: usize, const N: usize>(
    s: &[f32],
    at: impl Fn(usize, usize) -> usize,
) -> [[Lanes<L>; N]; N] {
    let mut out = [[Lanes::ZERO; N]; N];
    for (i, out) in out.iter_mut().enumerate() {
        for (j, v) in out.iter_mut().enumerate() {
            *v = Lanes::load(s, at(i, j));
        }
    }
    out
}

/// Runs `f` compiled for AVX2 + FMA when `isa` says the CPU has them (the transforms' lane
/// arithmetic then uses 8-wide registers; compiled for the baseline target it spilled most
/// of its 4-wide ones to the stack).
#[inline(always)]
pub(super) fn on<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // Safety: `isa` is AVX2 only on a CPU that has AVX2 and FMA (`Isa::best`).
        return unsafe { avx2(f) };
    }
    f()
}
