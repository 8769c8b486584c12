//! The optimizer update as a kernel: one elementwise kernel per parameter that reads the
//! parameter, its gradient and its slots and writes the parameter and slots in place.
//!
//! The expressions repeat `runtime::optim::update` operation for operation and are
//! compiled without multiply-add contraction, so the JIT's update is bit-identical to the
//! interpreter's: `g' = clamp(g·scale, ±clip) + l2·p`, `p ← p·decay`, then the rule. The
//! run-time scalars (learning rates, clipping scale) are `Scalar` inputs read from the
//! hyper-parameter block whose layout the `H_*` constants give.

use super::kexpr::{Access, KernelExpr as E, KernelSpec};
use crate::ir::{BinaryOp, UnaryOp};
use crate::runtime::optim::{Clipping, OptimizerKind, OptimizerSpec};

/// The learning rate.
pub const H_LR: usize = 0;
/// Adam's bias-corrected learning rate of the current step.
pub const H_LR_T: usize = 1;
/// The value-clipping bound (infinite when off).
pub const H_CLIP: usize = 2;
pub const H_L2: usize = 3;
/// `1 - lr · weight_decay`.
pub const H_DECAY: usize = 4;
/// The gradient scale of trainable parameter `i` (norm clipping) is at `H_SCALE0 + i`.
pub const H_SCALE0: usize = 5;

fn bin(op: BinaryOp, a: E, b: E) -> E {
    E::binary(op, a, b)
}

fn add(a: E, b: E) -> E {
    bin(BinaryOp::Add, a, b)
}

fn sub(a: E, b: E) -> E {
    bin(BinaryOp::Sub, a, b)
}

fn mul(a: E, b: E) -> E {
    bin(BinaryOp::Mul, a, b)
}

/// The kernel updating one parameter with `slots` state tensors (in `slot_names` order).
/// Inputs: parameter, gradient, the slots, then the scalars lr, lr_t, clip, l2, decay and
/// scale; outputs: the parameter, then the slots.
pub fn update_kernel(spec: &OptimizerSpec) -> KernelSpec {
    let slots = spec.slot_names().len();
    let (p, g) = (E::Input(0), E::Input(1));
    let slot = |k: usize| E::Input(2 + k);
    let scalar = |k: usize| E::Input(2 + slots + k);
    let (lr, lr_t, clip, l2, decay, scale) =
        (scalar(0), scalar(1), scalar(2), scalar(3), scalar(4), scalar(5));
    // The transforms the spec turns off are left out, as `runtime::optim` skips them: the
    // kernel reads only the scalars it needs (most models use none of these).
    let x = match spec.clipping {
        Clipping::Norm(_) | Clipping::GlobalNorm(_) => mul(g, scale),
        _ => g,
    };
    // `f32::clamp(x, -clip, clip)`: `-clip` where x is below it, then `clip` where the
    // result is above it; a NaN x passes through, as in Rust.
    let clamped = if let Clipping::Value(_) = spec.clipping {
        let low = E::unary(UnaryOp::Neg, clip.clone());
        let raised = E::select(bin(BinaryOp::Lt, x.clone(), low.clone()), low, x);
        E::select(bin(BinaryOp::Gt, raised.clone(), clip.clone()), clip, raised)
    } else {
        x
    };
    let gp = if spec.l2 != 0.0 { add(clamped, mul(l2, p.clone())) } else { clamped };
    let pd = if spec.weight_decay != 0.0 { mul(p, decay) } else { p };
    let outputs = match spec.kind {
        OptimizerKind::Sgd { momentum, nesterov } => {
            if slots == 0 {
                vec![sub(pd, mul(lr, gp))]
            } else {
                let v = sub(mul(E::Const(momentum), slot(0)), mul(lr.clone(), gp.clone()));
                let step =
                    if nesterov { sub(mul(E::Const(momentum), v.clone()), mul(lr, gp)) } else { v.clone() };
                vec![add(pd, step), v]
            }
        }
        OptimizerKind::Adam { beta1, beta2, epsilon } => {
            let m = add(mul(E::Const(beta1), slot(0)), mul(E::Const(1.0 - beta1), gp.clone()));
            let v = add(mul(E::Const(beta2), slot(1)), mul(mul(E::Const(1.0 - beta2), gp.clone()), gp));
            let denom = add(E::unary(UnaryOp::Sqrt, v.clone()), E::Const(epsilon));
            let p = sub(pd, bin(BinaryOp::Div, mul(lr_t, m.clone()), denom));
            vec![p, m, v]
        }
        OptimizerKind::RmsProp { rho, momentum, epsilon, centered } => {
            let s = add(mul(E::Const(rho), slot(0)), mul(mul(E::Const(1.0 - rho), gp.clone()), gp.clone()));
            let mut next = 1;
            let mom_slot = (momentum > 0.0).then(|| {
                next += 1;
                next - 1
            });
            let avg_slot = centered.then_some(next);
            let avg =
                avg_slot.map(|k| add(mul(E::Const(rho), slot(k)), mul(E::Const(1.0 - rho), gp.clone())));
            let denom = match &avg {
                Some(a) => add(sub(s.clone(), mul(a.clone(), a.clone())), E::Const(epsilon)),
                None => add(s.clone(), E::Const(epsilon)),
            };
            let delta = bin(BinaryOp::Div, mul(lr, gp), E::unary(UnaryOp::Sqrt, denom));
            let mut outs = Vec::new();
            let mut state = vec![s];
            let p = match mom_slot {
                Some(k) => {
                    let u = add(mul(E::Const(momentum), slot(k)), delta);
                    state.push(u.clone());
                    sub(pd, u)
                }
                None => sub(pd, delta),
            };
            state.extend(avg);
            outs.push(p);
            outs.extend(state);
            outs
        }
    };
    let mut inputs = vec![Access::Full; 2 + slots];
    inputs.extend([Access::Scalar; 6]);
    KernelSpec::elementwise(inputs, outputs)
}

/// The hyper-parameters of one step, before the per-parameter scales: what
/// `runtime::optim` computes for step `t` (counting from 1).
pub fn hyper(spec: &OptimizerSpec, t: u64) -> [f32; H_SCALE0] {
    let lr = spec.lr;
    let lr_t = match spec.kind {
        OptimizerKind::Adam { beta1, beta2, .. } => {
            let t = t.min(i32::MAX as u64) as i32;
            (lr as f64 * (1.0 - (beta2 as f64).powi(t)).sqrt() / (1.0 - (beta1 as f64).powi(t))) as f32
        }
        _ => lr,
    };
    let clip = match spec.clipping {
        crate::runtime::optim::Clipping::Value(v) => v,
        _ => f32::INFINITY,
    };
    [lr, lr_t, clip, spec.l2, 1.0 - lr * spec.weight_decay]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::Jit;
    use crate::runtime::optim::{ArgValue, Optimizer};
    use crate::runtime::rng::Rng;
    use ndarray::{ArrayD, IxDyn};

    /// Runs `steps` updates of `spec` on the compiled kernel and on `runtime::optim` from the
    /// same random parameters and gradients (with zeros, huge values and a NaN among them)
    /// and requires bit-identical parameters and slots.
    fn bit_identical(name: &str, args: &[(&str, ArgValue)]) {
        let args: Vec<(String, ArgValue)> = args.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        let spec = OptimizerSpec::from_call(name, &args).expect("valid optimizer");
        let n = 37;
        let mut rng = Rng::new(3);
        let mut values = |scale: f64| -> Vec<f32> {
            (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * scale) as f32).collect()
        };
        let mut p = values(1.0);
        p[3] = 0.0;
        let mut reference = Optimizer::new(spec.clone(), &[("w".into(), vec![n])]);
        let mut ref_p = vec![ArrayD::from_shape_vec(IxDyn(&[n]), p.clone()).expect("shape")];
        let slots = spec.slot_names().len();
        let mut state: Vec<Vec<f32>> = vec![vec![0.0; n]; slots];
        let kernel = Jit::new().expect("host").compile_exact(&update_kernel(&spec)).expect("compiles");
        for t in 1..=4u64 {
            let mut g = values(if t == 2 { 1e30 } else { 0.1 });
            g[5] = 0.0;
            if t == 3 {
                g[7] = f32::NAN;
            }
            let ref_g = vec![ArrayD::from_shape_vec(IxDyn(&[n]), g.clone()).expect("shape")];
            reference.step(&mut ref_p, &ref_g, spec.lr).expect("steps");
            let mut h = hyper(&spec, t).to_vec();
            h.push(1.0);
            let (old_p, old_state) = (p.clone(), state.clone());
            let mut inputs: Vec<&[f32]> = vec![&old_p, &g];
            inputs.extend(old_state.iter().map(|s| s.as_slice()));
            inputs.extend(h.chunks(1));
            let mut outs: Vec<&mut [f32]> = vec![&mut p];
            outs.extend(state.iter_mut().map(|s| s.as_mut_slice()));
            kernel.run(&inputs, &mut outs, 1, n).expect("runs");
            let same = |a: &[f32], b: &[f32]| {
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
            };
            let want = ref_p[0].as_slice().expect("contiguous");
            assert!(same(&p, want), "{name} step {t}: parameters\n{p:?}\n{want:?}");
            for (k, (_, s)) in reference.export_state().tensors.iter().enumerate() {
                assert!(same(&state[k], s.as_slice().expect("contiguous")), "{name} step {t}: slot {k}");
            }
        }
    }

    #[test]
    fn adam_matches_the_runtime_bit_for_bit() {
        bit_identical("Adam", &[]);
        bit_identical(
            "Adam",
            &[("clipvalue", ArgValue::Float(0.05)), ("weight_decay", ArgValue::Float(0.01))],
        );
        bit_identical("Adam", &[("l2", ArgValue::Float(0.01))]);
    }

    #[test]
    fn sgd_and_rmsprop_match_the_runtime_bit_for_bit() {
        bit_identical("SGD", &[]);
        bit_identical("SGD", &[("momentum", ArgValue::Float(0.9)), ("nesterov", ArgValue::Bool(true))]);
        bit_identical("RMSprop", &[("momentum", ArgValue::Float(0.5)), ("centered", ArgValue::Bool(true))]);
        bit_identical("RMSprop", &[("l2", ArgValue::Float(0.001))]);
    }
}
