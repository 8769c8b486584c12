//! The update rules, one function per optimizer over contiguous slices of one parameter.
//!
//! Each function first forms the effective gradient `g' = clamp(g * scale, ±clip) + l2 * p`
//! (the clipping scale and bound come from the caller; `l2` uses the parameter before the
//! step), applies decoupled weight decay `p *= 1 - lr * weight_decay`, and then makes the
//! update below. The formulas are Keras 3's; the slices all have the same length.

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
    /// Each transform that is off (scale 1, infinite clip, `l2` 0, decay 1) is skipped, not
    /// applied as an identity: `g + 0·p` would turn `-0` into `+0` and an infinite `p`
    /// into a NaN gradient. The JIT's update kernel (`codegen::update`) skips the same ones.
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

/// SGD. Without momentum `p -= lr·g`. With momentum `v = μ·v - lr·g`, then `p += v`, or
/// with Nesterov `p += μ·v - lr·g`.
pub(crate) fn sgd(
    p: &mut [f32],
    g: &[f32],
    velocity: Option<&mut [f32]>,
    c: Common,
    momentum: f32,
    nesterov: bool,
) {
    let lr = c.lr;
    match velocity {
        None => {
            for (p, &g) in p.iter_mut().zip(g) {
                let g = c.prepare(p, g);
                *p -= lr * g;
            }
        }
        Some(v) => {
            for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                let g = c.prepare(p, g);
                *v = momentum * *v - lr * g;
                *p += if nesterov { momentum * *v - lr * g } else { *v };
            }
        }
    }
}

/// Adam (Kingma & Ba, Algorithm 1 with the efficient form of bias correction given after
/// it): `m = β1·m + (1-β1)·g`, `v = β2·v + (1-β2)·g²`,
/// `p -= lr_t · m / (√v + ε)` with `lr_t = lr·√(1-β2^t) / (1-β1^t)`, t counting from 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: Common,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    t: u64,
) {
    let t = t.min(i32::MAX as u64) as i32;
    let lr_t = (c.lr as f64 * (1.0 - (beta2 as f64).powi(t)).sqrt() / (1.0 - (beta1 as f64).powi(t))) as f32;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = c.prepare(p, g);
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        *p -= lr_t * *m / (v.sqrt() + epsilon);
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
pub(crate) fn rmsprop(
    p: &mut [f32],
    g: &[f32],
    slots: RmsSlots<'_>,
    c: Common,
    rho: f32,
    momentum: f32,
    eps: f32,
) {
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
