//! Optimizer tests: each rule against a scalar f64 reference written from the published
//! equations, run element by element over several steps with a varying learning rate.

use super::*;
use crate::runtime::rng::Rng;

fn call(name: &str, list: &[(&str, ArgValue)]) -> OptimizerSpec {
    let args: Vec<(String, ArgValue)> = list.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
    OptimizerSpec::from_call(name, &args).expect("valid spec")
}

fn random(shape: &[usize], rng: &mut Rng) -> ArrayD<f32> {
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.normal() as f32).collect()).expect("shape")
}

/// One scalar reference optimizer: state per element, step count `t` from 1.
trait Reference {
    fn step(&mut self, p: f64, g: f64, lr: f64, t: i32) -> f64;
}

struct SgdRef {
    momentum: f64,
    nesterov: bool,
    v: f64,
}

impl Reference for SgdRef {
    fn step(&mut self, p: f64, g: f64, lr: f64, _t: i32) -> f64 {
        if self.momentum == 0.0 {
            return p - lr * g;
        }
        self.v = self.momentum * self.v - lr * g;
        if self.nesterov { p + self.momentum * self.v - lr * g } else { p + self.v }
    }
}

struct AdamRef {
    b1: f64,
    b2: f64,
    eps: f64,
    m: f64,
    v: f64,
}

impl Reference for AdamRef {
    fn step(&mut self, p: f64, g: f64, lr: f64, t: i32) -> f64 {
        self.m = self.b1 * self.m + (1.0 - self.b1) * g;
        self.v = self.b2 * self.v + (1.0 - self.b2) * g * g;
        // The paper's reformulation: α_t = α·√(1-β2^t)/(1-β1^t), θ -= α_t·m/(√v + ε̂).
        let alpha_t = lr * (1.0 - self.b2.powi(t)).sqrt() / (1.0 - self.b1.powi(t));
        p - alpha_t * self.m / (self.v.sqrt() + self.eps)
    }
}

struct RmsRef {
    rho: f64,
    momentum: f64,
    eps: f64,
    centered: bool,
    s: f64,
    a: f64,
    u: f64,
}

impl Reference for RmsRef {
    fn step(&mut self, p: f64, g: f64, lr: f64, _t: i32) -> f64 {
        self.s = self.rho * self.s + (1.0 - self.rho) * g * g;
        let mut denom = self.s;
        if self.centered {
            self.a = self.rho * self.a + (1.0 - self.rho) * g;
            denom -= self.a * self.a;
        }
        let delta = lr * g / (denom + self.eps).sqrt();
        if self.momentum > 0.0 {
            self.u = self.momentum * self.u + delta;
            p - self.u
        } else {
            p - delta
        }
    }
}

/// Runs `spec` and a fresh reference per element for `steps` steps and compares.
fn check_against<R: Reference>(spec: OptimizerSpec, make: impl Fn() -> R, wd: f64, l2: f64) {
    let mut rng = Rng::new(42);
    let shapes = vec![("w".to_string(), vec![3, 4]), ("b".to_string(), vec![4])];
    let mut params: Vec<ArrayD<f32>> = shapes.iter().map(|(_, s)| random(s, &mut rng)).collect();
    let mut refs: Vec<Vec<(f64, R)>> =
        params.iter().map(|p| p.iter().map(|&x| (x as f64, make())).collect()).collect();
    let mut opt = Optimizer::new(spec.clone(), &shapes);
    for t in 1..=6 {
        let lr = 0.05 / t as f32;
        let grads: Vec<ArrayD<f32>> = shapes.iter().map(|(_, s)| random(s, &mut rng)).collect();
        opt.step(&mut params, &grads, lr).expect("shapes match");
        for (r, g) in refs.iter_mut().zip(&grads) {
            for ((p, state), &g) in r.iter_mut().zip(g.iter()) {
                let g = g as f64 + l2 * *p;
                let decayed = *p * (1.0 - lr as f64 * wd);
                *p = state.step(decayed, g, lr as f64, t);
            }
        }
        for (got, want) in params.iter().zip(&refs) {
            for (x, (y, _)) in got.iter().zip(want) {
                assert!((*x as f64 - y).abs() < 1e-5 * (1.0 + y.abs()), "{} step {t}: {x} vs {y}", spec.name);
            }
        }
    }
    assert_eq!(opt.steps(), 6);
}

#[test]
fn sgd_matches_reference() {
    check_against(call("SGD", &[]), || SgdRef { momentum: 0.0, nesterov: false, v: 0.0 }, 0.0, 0.0);
    let m = [("momentum", ArgValue::Float(0.9))];
    check_against(call("SGD", &m), || SgdRef { momentum: 0.9, nesterov: false, v: 0.0 }, 0.0, 0.0);
    let n = [("momentum", ArgValue::Float(0.8)), ("nesterov", ArgValue::Bool(true))];
    check_against(call("SGD", &n), || SgdRef { momentum: 0.8, nesterov: true, v: 0.0 }, 0.0, 0.0);
}

#[test]
fn adam_matches_reference() {
    let make = || AdamRef { b1: 0.9, b2: 0.999, eps: 1e-7, m: 0.0, v: 0.0 };
    check_against(call("Adam", &[]), make, 0.0, 0.0);
    let a = [
        ("beta1", ArgValue::Float(0.5)),
        ("beta2", ArgValue::Float(0.9)),
        ("epsilon", ArgValue::Float(1e-3)),
    ];
    check_against(call("Adam", &a), || AdamRef { b1: 0.5, b2: 0.9, eps: 1e-3, m: 0.0, v: 0.0 }, 0.0, 0.0);
}

#[test]
fn rmsprop_matches_reference_in_all_variants() {
    for (momentum, centered) in [(0.0, false), (0.9, false), (0.0, true), (0.5, true)] {
        let args = [("momentum", ArgValue::Float(momentum)), ("centered", ArgValue::Bool(centered))];
        let make = || RmsRef { rho: 0.9, momentum, eps: 1e-7, centered, s: 0.0, a: 0.0, u: 0.0 };
        check_against(call("RMSprop", &args), make, 0.0, 0.0);
    }
}

#[test]
fn weight_decay_is_decoupled_and_l2_goes_into_the_gradient() {
    let make = || AdamRef { b1: 0.9, b2: 0.999, eps: 1e-7, m: 0.0, v: 0.0 };
    check_against(call("Adam", &[("weight_decay", ArgValue::Float(0.1))]), make, 0.1, 0.0);
    check_against(call("Adam", &[("l2", ArgValue::Float(0.1))]), make, 0.0, 0.1);
    let sgd = || SgdRef { momentum: 0.0, nesterov: false, v: 0.0 };
    check_against(call("SGD", &[("weight_decay", ArgValue::Float(0.3))]), sgd, 0.3, 0.0);
}

#[test]
fn clipping_in_the_optimizer_equals_clipping_first() {
    let mut rng = Rng::new(3);
    let shapes = vec![("a".to_string(), vec![5]), ("b".to_string(), vec![2, 3])];
    let params: Vec<ArrayD<f32>> = shapes.iter().map(|(_, s)| random(s, &mut rng)).collect();
    let grads: Vec<ArrayD<f32>> = shapes.iter().map(|(_, s)| random(s, &mut rng).mapv(|x| x * 4.0)).collect();
    type ClipFn = fn(&mut [ArrayD<f32>], f32) -> Result<f32, clip::ClipError>;
    let cases: [(&str, ClipFn); 3] = [
        ("clipvalue", clip::clip_by_value),
        ("clipnorm", clip::clip_by_norm),
        ("global_clipnorm", clip::clip_by_global_norm),
    ];
    for (arg, clip_fn) in cases {
        let mut clipped = grads.clone();
        clip_fn(&mut clipped, 1.5).expect("valid threshold");
        let mut plain = Optimizer::new(call("SGD", &[]), &shapes);
        let mut want = params.clone();
        plain.step(&mut want, &clipped, 0.1).expect("shapes");
        let mut with_clip = Optimizer::new(call("SGD", &[(arg, ArgValue::Float(1.5))]), &shapes);
        let mut got = params.clone();
        with_clip.step(&mut got, &grads, 0.1).expect("shapes");
        for (x, y) in got.iter().flat_map(|t| t.iter()).zip(want.iter().flat_map(|t| t.iter())) {
            assert!((x - y).abs() < 1e-6, "{arg}: {x} vs {y}");
        }
    }
}

#[test]
fn adam_minimizes_a_quadratic() {
    // f(p) = Σ c_i (p_i - t_i)², gradient 2 c_i (p_i - t_i), with badly scaled c.
    let targets = [3.0f32, -2.0, 0.5, 10.0];
    let curv = [1.0f32, 100.0, 0.01, 5.0];
    let shapes = vec![("p".to_string(), vec![4])];
    let mut params = vec![ArrayD::zeros(IxDyn(&[4]))];
    let mut opt = Optimizer::new(call("Adam", &[("lr", ArgValue::Float(0.1))]), &shapes);
    for _ in 0..3000 {
        let g: Vec<f32> = (0..4).map(|i| 2.0 * curv[i] * (params[0][[i]] - targets[i])).collect();
        let g = ArrayD::from_shape_vec(IxDyn(&[4]), g).expect("shape");
        opt.step(&mut params, &[g], 0.1).expect("shapes");
    }
    for i in 0..4 {
        assert!(
            (params[0][[i]] - targets[i]).abs() < 0.02,
            "p[{i}] = {} want {}",
            params[0][[i]],
            targets[i]
        );
    }
}

#[test]
fn shape_and_count_mismatches_are_errors() {
    let shapes = vec![("w".to_string(), vec![2, 2])];
    let mut opt = Optimizer::new(call("Adam", &[]), &shapes);
    let mut params = vec![ArrayD::zeros(IxDyn(&[2, 2]))];
    let bad = vec![ArrayD::zeros(IxDyn(&[4]))];
    match opt.step(&mut params, &bad, 0.1) {
        Err(OptimError::Shape { name, expected, got, .. }) => {
            assert_eq!((name.as_str(), expected, got), ("w", vec![2, 2], vec![4]));
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert!(matches!(opt.step(&mut params, &[], 0.1), Err(OptimError::Count { .. })));
    let g = vec![ArrayD::zeros(IxDyn(&[2, 2]))];
    assert!(matches!(opt.step(&mut params, &g, f32::NAN), Err(OptimError::BadLearningRate(_))));
    assert_eq!(opt.steps(), 0, "failed steps do not count");
}

#[test]
fn exported_state_resumes_exactly() {
    let spec = call("RMSprop", &[("momentum", ArgValue::Float(0.9)), ("centered", ArgValue::Bool(true))]);
    let shapes = vec![("w".to_string(), vec![3, 2]), ("b".to_string(), vec![2])];
    let mut rng = Rng::new(9);
    let mut params: Vec<ArrayD<f32>> = shapes.iter().map(|(_, s)| random(s, &mut rng)).collect();
    let grads: Vec<Vec<ArrayD<f32>>> =
        (0..4).map(|_| shapes.iter().map(|(_, s)| random(s, &mut rng)).collect()).collect();
    let mut a = Optimizer::new(spec.clone(), &shapes);
    for g in &grads[..2] {
        a.step(&mut params, g, 0.01).expect("shapes");
    }
    let state = a.export_state();
    assert_eq!(state.step, 2);
    let names: Vec<&str> = state.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["w/velocity", "w/momentum", "w/average_grad", "b/velocity", "b/momentum", "b/average_grad"]
    );
    let mut b = Optimizer::new(spec, &shapes);
    b.import_state(&state).expect("same layout");
    let mut params_b = params.clone();
    for g in &grads[2..] {
        a.step(&mut params, g, 0.01).expect("shapes");
        b.step(&mut params_b, g, 0.01).expect("shapes");
    }
    assert_eq!(params, params_b);
}

#[test]
fn importing_a_foreign_state_is_an_error_and_changes_nothing() {
    let shapes = vec![("w".to_string(), vec![2])];
    let mut adam = Optimizer::new(call("Adam", &[]), &shapes);
    let before = adam.export_state();
    let mut state = before.clone();
    state.tensors[1].1 = ArrayD::zeros(IxDyn(&[3]));
    assert!(matches!(adam.import_state(&state), Err(OptimError::Shape { .. })));
    state.tensors.truncate(1);
    assert_eq!(adam.import_state(&state), Err(OptimError::MissingState("w/v".into())));
    let sgd = Optimizer::new(call("SGD", &[("momentum", ArgValue::Float(0.9))]), &shapes);
    assert!(matches!(adam.import_state(&sgd.export_state()), Err(OptimError::UnexpectedState(..))));
    assert_eq!(adam.export_state(), before);
}
