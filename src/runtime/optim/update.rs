//! The update rules, one function per optimizer over contiguous slices of one parameter,
//! and [`apply`], the one entry both back ends call: the interpreter's `Optimizer::step`
//! and the JIT's update host op, so the two agree bit for bit by construction.
//!
//! Each rule first forms the effective gradient `g' = clamp(g * scale, ±clip) + l2 * p`
//! (the clipping scale and bound come from the caller; `l2` uses the parameter before the
//! step), applies decoupled weight decay `p *= 1 - lr * weight_decay`, and then makes the
//! update below. The formulas are Keras 3's; the slices all have the same length.
//!
//! Speed: `apply` runs the rules compiled for AVX-512 or AVX2 where the CPU has them (16 or
//! 8 lanes instead of SSE2's 4; Rust never fuses a product into a sum, so every lane rounds
//! as the scalar code would), and each rule has a loop without the gradient transforms for the usual
//! case where all of them are off.

use super::OptimizerKind;

/// The per-element gradient transform and decay shared by every rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Common {
    pub lr: f32,
    /// Multiplies the raw gradient (norm clipping); 1 when off.
    pub scale: f32,
    /// Bound of the value clip; infinite when off.
    pub clip: f32,
    pub l2: f32,
    /// `1 - lr * weight_decay`.
    pub decay: f32,
}

impl Common {
    /// Whether every transform is off, so `prepare` returns `g` and leaves `p` alone.
    fn is_plain(&self) -> bool {
        self.scale == 1.0 && self.clip == f32::INFINITY && self.l2 == 0.0 && self.decay == 1.0
    }

    /// Each transform that is off (scale 1, infinite clip, `l2` 0, decay 1) is skipped, not
    /// applied as an identity: `g + 0·p` would turn `-0` into `+0` and an infinite `p`
    /// into a NaN gradient.
    #[inline(always)]
    fn prepare(&self, p: &mut f32, g: f32) -> f32 {
        let mut g = g;
        if self.scale != 1.0 {
            g *= self.scale;
        }
        if self.clip != f32::INFINITY {
            g = g.clamp(-self.clip, self.clip);
        }
        if self.l2 != 0.0 {
            g += self.l2 * *p;
        }
        if self.decay != 1.0 {
            *p *= self.decay;
        }
        g
    }
}

/// Adam's bias-corrected learning rate of step `t` (counting from 1):
/// `lr·√(1-β2^t) / (1-β1^t)`, computed in f64.
pub fn adam_lr_t(lr: f32, beta1: f32, beta2: f32, t: u64) -> f32 {
    let t = t.min(i32::MAX as u64) as i32;
    (lr as f64 * (1.0 - (beta2 as f64).powi(t)).sqrt() / (1.0 - (beta1 as f64).powi(t))) as f32
}

/// The most slots an optimizer keeps (centered RMSprop with momentum).
pub(crate) const MAX_SLOTS: usize = 3;

/// Parameters from this many elements are updated in two halves on two threads: the MNIST
/// MLP's second layer (8192 weights) took 4.9 → 3.3 µs and 8.5 → 5.6 µs of its step so,
/// measured interleaved in one process (from 65 536 before).
const PARALLEL_UPDATE: usize = 1 << 12;

/// One parameter's update by rule `kind`: `slots` in `OptimizerSpec::slot_names` order,
/// each as long as `p`; `lr_t` is Adam's bias-corrected rate (unused by the others).
pub(crate) struct ParamUpdate<'a, 's> {
    pub kind: &'a OptimizerKind,
    pub p: &'a mut [f32],
    pub g: &'a [f32],
    pub slots: &'a mut [&'s mut [f32]],
    pub c: Common,
    pub lr_t: f32,
}

/// Applies `u` on the calling thread, with subnormal values flushed to zero
/// ([`SubnormalsFlushed`]).
///
/// Panics (a caller's programming error) when the slot count does not fit the rule.
pub(crate) fn apply(u: ParamUpdate<'_, '_>) {
    let _flushed = SubnormalsFlushed::on_this_thread();
    apply_unflushed(u);
}

/// The rules on the widest instruction set this CPU has.
fn apply_unflushed(u: ParamUpdate<'_, '_>) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::has_avx512() {
        // Safety: the CPU has AVX-512 F (checked).
        unsafe { apply_avx512(u) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::has_avx2_fma() {
        // Safety: the CPU has AVX2 (checked).
        unsafe { apply_avx2(u) };
        return;
    }
    apply_portable(u);
}

/// While alive, the calling thread's floating point flushes subnormal results to zero and
/// reads subnormal inputs as zero (x86's FTZ and DAZ bits of MXCSR; restored on drop,
/// panics included). An Adam moment whose gradient has stopped decays by β1 each step
/// through the subnormal range, where every operation on it takes a slow microcode path:
/// the MNIST MLP's rarely inked border pixels left enough such moments to make the fused
/// first-layer update take 31.5 instead of 24.3 µs a step (medians of 3000 steps, two
/// threads, Zen 5). Flushing changes no parameter by more than `lr·2⁻¹²⁶/ε` (10⁻³⁴ with
/// Adam's defaults), far below half an ulp of any normal weight; and both back ends call
/// `apply`, so they still agree bit for bit. Elsewhere the floating point is left alone.
struct SubnormalsFlushed {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

/// MXCSR's flush-to-zero and denormals-are-zero bits.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

impl SubnormalsFlushed {
    fn on_this_thread() -> SubnormalsFlushed {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = mxcsr();
            set_mxcsr(saved | FTZ_DAZ);
            SubnormalsFlushed { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        SubnormalsFlushed {}
    }
}

impl Drop for SubnormalsFlushed {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        set_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut value = 0u32;
    // Safety: stores the SSE control register (every x86-64 CPU has it) to a local.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn set_mxcsr(value: u32) {
    // Safety: loads a value read from MXCSR with only its FTZ and DAZ bits changed, which
    // are valid in every x86-64 CPU's MXCSR.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags)) };
}

/// `apply`, a large parameter in two halves side by side when `threads ≥ 2` (the rules are
/// elementwise, so the halves give the whole's bits).
pub(crate) fn apply_in_parts(u: ParamUpdate<'_, '_>, threads: usize) {
    if threads < 2 || u.p.len() < PARALLEL_UPDATE {
        return apply(u);
    }
    let ParamUpdate { kind, p, g, slots, c, lr_t } = u;
    let half = p.len() / 2;
    let (p0, p1) = p.split_at_mut(half);
    let (g0, g1) = g.split_at(half);
    let mut firsts: [&mut [f32]; MAX_SLOTS] = Default::default();
    let mut seconds: [&mut [f32]; MAX_SLOTS] = Default::default();
    for ((s, a), b) in slots.iter_mut().zip(&mut firsts).zip(&mut seconds) {
        (*a, *b) = std::mem::take(s).split_at_mut(half);
    }
    let n = slots.len();
    crate::kernels::team::join(
        || apply(ParamUpdate { kind, p: p0, g: g0, slots: &mut firsts[..n], c, lr_t }),
        || apply(ParamUpdate { kind, p: p1, g: g1, slots: &mut seconds[..n], c, lr_t }),
    );
}

/// `apply_portable` compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn apply_avx2(u: ParamUpdate<'_, '_>) {
    apply_portable(u);
}

/// `apply_portable` compiled for AVX-512: sixteen lanes. Adam's square root and division
/// bound it once the state is in L2, so it takes 6.5 µs for the 50 176 weights a thread
/// updates in the MNIST MLP's first layer where AVX2 took 12.3 µs (Zen 5, median of 2000).
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn apply_avx512(u: ParamUpdate<'_, '_>) {
    apply_portable(u);
}

#[inline(always)]
fn apply_portable(ParamUpdate { kind, p, g, slots, c, lr_t }: ParamUpdate<'_, '_>) {
    match *kind {
        OptimizerKind::Sgd { momentum, nesterov } => {
            sgd(p, g, slots.first_mut().map(|v| &mut **v), c, momentum, nesterov)
        }
        OptimizerKind::Adam { beta1, beta2, epsilon } => {
            let [m, v] = slots else { panic!("Adam keeps two slots, got {}", slots.len()) };
            adam(p, g, m, v, c, beta1, beta2, epsilon, lr_t);
        }
        OptimizerKind::RmsProp { rho, momentum, epsilon, centered } => {
            let Some((velocity, rest)) = slots.split_first_mut() else {
                panic!("RMSprop keeps its velocity")
            };
            let mut rest = rest.iter_mut();
            let momentum_slot = if momentum > 0.0 { rest.next().map(|v| &mut **v) } else { None };
            let average_grad = if centered { rest.next().map(|v| &mut **v) } else { None };
            let slots = RmsSlots { velocity, momentum: momentum_slot, average_grad };
            rmsprop(p, g, slots, c, rho, momentum, epsilon);
        }
    }
}

/// SGD. Without momentum `p -= lr·g`. With momentum `v = μ·v - lr·g`, then `p += v`, or
/// with Nesterov `p += μ·v - lr·g`.
#[inline(always)]
fn sgd(p: &mut [f32], g: &[f32], velocity: Option<&mut [f32]>, c: Common, momentum: f32, nesterov: bool) {
    let lr = c.lr;
    let n = p.len();
    let g = &g[..n];
    match velocity {
        None => {
            for (p, &g) in p.iter_mut().zip(g) {
                let g = c.prepare(p, g);
                *p -= lr * g;
            }
        }
        Some(v) => {
            let v = &mut v[..n];
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                let g = c.prepare(p, g);
                *v = momentum * *v - lr * g;
                *p += if nesterov { momentum * *v - lr * g } else { *v };
            }
        }
    }
}

/// Adam (Kingma & Ba, Algorithm 1 with the efficient form of bias correction given after
/// it): `m = β1·m + (1-β1)·g`, `v = β2·v + (1-β2)·g²`, `p -= lr_t · m / (√v + ε)` with
/// `lr_t` from [`adam_lr_t`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn adam(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: Common,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    lr_t: f32,
) {
    let n = p.len();
    // Re-slicing to the common length lets the compiler drop the bounds checks.
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    let step = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        *p -= lr_t * *m / (v.sqrt() + epsilon);
    };
    if c.is_plain() {
        for i in 0..n {
            step(&mut p[i], g[i], &mut m[i], &mut v[i]);
        }
    } else {
        for i in 0..n {
            let gi = c.prepare(&mut p[i], g[i]);
            step(&mut p[i], gi, &mut m[i], &mut v[i]);
        }
    }
}

/// The optional state of RMSprop.
pub(crate) struct RmsSlots<'a> {
    pub velocity: &'a mut [f32],
    pub momentum: Option<&'a mut [f32]>,
    pub average_grad: Option<&'a mut [f32]>,
}

/// RMSprop: `s = ρ·s + (1-ρ)·g²`; centered also keeps `a = ρ·a + (1-ρ)·g` and uses
/// `s - a²`; the step is `δ = lr·g / √(s (- a²) + ε)`; with momentum `u = μ·u + δ` and
/// `p -= u`, else `p -= δ`.
#[inline(always)]
fn rmsprop(p: &mut [f32], g: &[f32], slots: RmsSlots<'_>, c: Common, rho: f32, momentum: f32, eps: f32) {
    let lr = c.lr;
    let n = p.len();
    // Re-slicing to the common length lets the compiler drop the bounds checks below; the
    // caller allocates every slot with the parameter's length.
    let (g, velocity) = (&g[..n], &mut slots.velocity[..n]);
    let mut mom = slots.momentum.map(|m| &mut m[..n]);
    let mut avg = slots.average_grad.map(|a| &mut a[..n]);
    for i in 0..n {
        let gi = c.prepare(&mut p[i], g[i]);
        let s = rho * velocity[i] + (1.0 - rho) * gi * gi;
        velocity[i] = s;
        let denom = match avg.as_deref_mut() {
            Some(avg) => {
                let a = rho * avg[i] + (1.0 - rho) * gi;
                avg[i] = a;
                s - a * a + eps
            }
            None => s + eps,
        };
        let delta = lr * gi / denom.sqrt();
        match mom.as_deref_mut() {
            Some(mom) => {
                let u = momentum * mom[i] + delta;
                mom[i] = u;
                p[i] -= u;
            }
            None => p[i] -= delta,
        }
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn subnormal_moments_are_flushed_to_zero_and_the_thread_left_as_it_was() {
        let kind = OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
        let c = Common { lr: 1e-3, scale: 1.0, clip: f32::INFINITY, l2: 0.0, decay: 1.0 };
        let tiny = f32::MIN_POSITIVE / 4.0;
        assert!(tiny.is_subnormal() && (0.9 * tiny).is_subnormal());
        let (mut p, g) = (vec![0.5f32, -0.25], vec![0.0f32, tiny]);
        let (mut m, mut v) = (vec![tiny, 0.0], vec![1e-3f32, 1e-3]);
        let before = mxcsr_bits();
        let slots = &mut [&mut m[..], &mut v[..]];
        apply(ParamUpdate { kind: &kind, p: &mut p, g: &g, slots, c, lr_t: 1e-3 });
        // β1·m and (1-β1)·g are subnormal: flushed, as is the subnormal gradient read.
        assert_eq!(m, vec![0.0, 0.0]);
        assert_eq!(p, vec![0.5, -0.25]);
        assert_eq!(mxcsr_bits(), before, "the thread's floating point is restored");
        // The same arithmetic outside `apply` keeps subnormals.
        assert!(std::hint::black_box(0.9f32) * std::hint::black_box(tiny) != 0.0);
    }

    /// The calling thread's MXCSR, or 0 where there is none.
    fn mxcsr_bits() -> u32 {
        #[cfg(target_arch = "x86_64")]
        return mxcsr();
        #[cfg(not(target_arch = "x86_64"))]
        0
    }

    #[test]
    fn every_instruction_set_updates_to_the_portable_rules_bits() {
        let n = 1003;
        let wave = |k: f32| (0..n).map(|i| ((i as f32) * k).sin()).collect::<Vec<f32>>();
        let kinds = [
            OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
            OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
            OptimizerKind::RmsProp { rho: 0.9, momentum: 0.5, epsilon: 1e-7, centered: true },
        ];
        let plain = Common { lr: 0.01, scale: 1.0, clip: f32::INFINITY, l2: 0.0, decay: 1.0 };
        let transformed = Common { lr: 0.01, scale: 0.5, clip: 0.3, l2: 0.01, decay: 0.999 };
        let g = wave(0.37);
        for kind in &kinds {
            for c in [plain, transformed] {
                let run = |rules: fn(ParamUpdate<'_, '_>)| {
                    let mut s0: Vec<f32> = wave(0.05).iter().map(|v| v.abs()).collect();
                    let (mut p, mut s1, mut s2) = (wave(0.11), wave(0.21), wave(0.13));
                    let slots = &mut [&mut s0[..], &mut s1[..], &mut s2[..]];
                    let count = match kind {
                        OptimizerKind::Sgd { .. } => 1,
                        OptimizerKind::Adam { .. } => 2,
                        OptimizerKind::RmsProp { .. } => 3,
                    };
                    let u = ParamUpdate { kind, p: &mut p, g: &g, slots: &mut slots[..count], c, lr_t: 0.01 };
                    rules(u);
                    [p, s0, s1, s2].map(|x| x.iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
                };
                let portable = run(apply_portable);
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::has_avx2_fma() {
                    // Safety: the CPU has AVX2 (checked).
                    assert_eq!(run(|u| unsafe { apply_avx2(u) }), portable, "AVX2 {kind:?} {c:?}");
                }
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::has_avx512() {
                    // Safety: the CPU has AVX-512 F (checked).
                    assert_eq!(run(|u| unsafe { apply_avx512(u) }), portable, "AVX-512 {kind:?} {c:?}");
                }
            }
        }
    }

    #[test]
    fn an_update_split_over_two_threads_equals_the_whole() {
        let n = PARALLEL_UPDATE + 7;
        let wave = |k: f32| (0..n).map(|i| ((i as f32) * k).sin()).collect::<Vec<f32>>();
        let kind = OptimizerKind::RmsProp { rho: 0.9, momentum: 0.5, epsilon: 1e-7, centered: true };
        let c = Common { lr: 0.01, scale: 0.5, clip: 0.3, l2: 0.01, decay: 0.999 };
        let g = wave(0.37);
        let mut runs = Vec::new();
        for threads in [1, 2] {
            let mut s0: Vec<f32> = wave(0.05).iter().map(|v| v.abs()).collect();
            let (mut p, mut s1, mut s2) = (wave(0.11), wave(0.21), wave(0.13));
            let slots = &mut [&mut s0[..], &mut s1[..], &mut s2[..]];
            apply_in_parts(ParamUpdate { kind: &kind, p: &mut p, g: &g, slots, c, lr_t: 0.01 }, threads);
            runs.push([p, s0, s1, s2]);
        }
        for (k, (one, two)) in runs[0].iter().zip(&runs[1]).enumerate() {
            assert!(one.iter().zip(two).all(|(a, b)| a.to_bits() == b.to_bits()), "buffer {k}");
        }
        assert!(runs[0][0].iter().zip(wave(0.11)).skip(1).all(|(a, b)| *a != b), "every parameter moved");
    }
}
