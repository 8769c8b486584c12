//! The optimizer update fused into its gradient's product (`codegen/fuse_update.rs`): the
//! MNIST MLP's first-layer weights are updated block by block as the product finishes
//! them, with the same bits as a separate update, on one thread and on two, and a
//! gradient that is not finite still stops the step before any parameter changes.

#[path = "support/examples.rs"]
mod support;

use dnnc::codegen::PlanOptions;
use dnnc::ops::Value;
use dnnc::runtime::optim::OptimizerSpec;
use dnnc::runtime::rng::Rng;
use dnnc::runtime::train::{JitStepper, ParamStore, StepError, TrainStepper, print_fused, step_graph};

fn mlp_stepper(threads: usize, fuse_updates: bool, optimizer: &str) -> (JitStepper, dnnc::ir::Graph) {
    let options = PlanOptions { threads, fuse_updates, ..PlanOptions::default() };
    support::jit_stepper("examples/mnist.dnn", optimizer, 7, options)
}

#[test]
fn the_first_layers_update_runs_in_its_gradient_product() {
    let program = support::program("examples/mnist.dnn");
    let text = print_fused(support::train_spec(&program)).expect("schedules");
    let fused: Vec<&str> = text.lines().filter(|l| l.contains("then per finished block")).collect();
    assert_eq!(fused.len(), 1, "{text}");
    assert!(
        fused[0].contains("gemm 1x[784x32] @ [32x128]") && fused[0].contains("update Adam 100352"),
        "{text}"
    );
    // The guard no longer reads that gradient, and it still comes before every update.
    let guard = text.lines().position(|l| l.contains("guard finite")).expect("a guard");
    let first_update = text.lines().position(|l| l.contains("update ")).expect("updates");
    assert!(guard < first_update, "{text}");
}

#[test]
fn fused_and_separate_updates_give_the_same_bits() {
    for optimizer in ["Adam", "SGD", "RMSprop"] {
        for threads in [1, 2] {
            let (mut fused, graph) = mlp_stepper(threads, true, optimizer);
            let (mut separate, _) = mlp_stepper(threads, false, optimizer);
            let mut rng = Rng::new(11);
            for step in 0..4 {
                let x = support::inputs(&graph, 32, 10, &mut rng);
                let a = fused.step(&x, step).expect("fused step").loss;
                let b = separate.step(&x, step).expect("separate step").loss;
                assert_eq!(a.to_bits(), b.to_bits(), "{optimizer}, {threads} threads, step {step}");
            }
            let (pf, ps) = (fused.params(), separate.params());
            for ((name, f), s) in pf.names.iter().zip(&pf.values).zip(&ps.values) {
                let same = f.iter().zip(s).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{name}: {optimizer}, {threads} threads");
            }
            assert_eq!(fused.optimizer_state(), separate.optimizer_state(), "{optimizer}, {threads} threads");
        }
    }
}

/// A huge pixel whose first-layer weights are zero, under large later weights: the
/// forward pass stays finite, but the operands of the first layer's weight gradient no
/// longer bound its sums (32 · 1e35 · max|dZ| > f32::MAX / 2), so the fused step computes
/// that gradient whole and checks it (finite here) before updating: the separate step's bits.
#[test]
fn unbounded_operands_take_the_checked_path_with_the_same_bits() {
    for threads in [1, 2] {
        let (mut fused, graph) = mlp_stepper(threads, true, "Adam");
        let (mut separate, _) = mlp_stepper(threads, false, "Adam");
        let mut x = support::inputs(&graph, 32, 10, &mut Rng::new(5));
        let Value::F32(images) = &mut x[0] else { panic!("images are f32") };
        images.as_slice_mut().expect("dense")[5] = 1e35;
        for s in [&mut fused, &mut separate] {
            let mut p = s.params();
            p.values[0].as_slice_mut().expect("dense")[5 * 128..6 * 128].fill(0.0);
            for later in [2, 4] {
                p.values[later].mapv_inplace(|w| w * 100.0);
            }
            s.set_params(&p).expect("same shapes");
        }
        let a = fused.step(&x, 0).expect("a finite step").loss;
        let b = separate.step(&x, 0).expect("a finite step").loss;
        assert_eq!(a.to_bits(), b.to_bits(), "{threads} threads");
        let (pf, ps) = (fused.params(), separate.params());
        for ((name, f), s) in pf.names.iter().zip(&pf.values).zip(&ps.values) {
            assert!(f.iter().zip(s).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: {threads} threads");
        }
        assert!(pf.values[0].iter().all(|w| w.is_finite()));
    }
}

/// A model whose only gradient is a fused product's, NaN (the derivative of `sqrt` at 0
/// under a finite loss): its operands fail the bound, so the product is computed whole and
/// checked, and the step stops with the weights and the optimizer's slots untouched.
#[test]
fn a_non_finite_fused_gradient_stops_the_step_before_its_update() {
    let src = "layer Lin(units: int) {
    param w: f32[IN, units] = glorot_uniform
    forward(x: f32[..., IN]) -> f32[..., units] = x @ w
}
fn broken(y_true: f32[...], y_pred: f32[...]) -> f32 = mean(sqrt(y_pred - y_pred))
model M(x: f32[B, 20000]) -> f32[B, 1] = x |> Lin(1)
train M {
    data = random(samples: 64, features: 20000)
    loss = broken
    optimizer = Adam()
}";
    let mut checked = dnnc::sema::check_source("broken.dnn", src);
    assert!(checked.diags.iter().all(|d| !d.is_error()), "{:?}", checked.diags);
    let program = checked.program.take().expect("checked program");
    let spec = support::train_spec(&program);
    let graph = step_graph(spec).expect("step graph");
    let text = print_fused(spec).expect("schedules");
    assert!(text.contains("then per finished block"), "the weight gradient is fused:\n{text}");
    for threads in [1, 2] {
        let store = ParamStore::init(spec.train_graph.as_ref().expect("train graph"), 3).expect("init");
        let opt = OptimizerSpec::from_call("Adam", &[]).expect("Adam");
        let options = PlanOptions { threads, ..PlanOptions::default() };
        let mut jit = JitStepper::new(&graph, store.clone(), opt, 0, options).expect("compiles");
        let state = jit.optimizer_state();
        let x = support::inputs(&graph, 8, 1, &mut Rng::new(9));
        match jit.step(&x, 0).map(|st| st.loss) {
            Err(StepError::Run(dnnc::ir::RunError::NonFinite { .. })) => {}
            other => panic!("expected a non-finite gradient to stop the step, got {other:?}"),
        }
        assert_eq!(jit.backend(), "jit");
        assert_eq!(store.values, jit.params().values, "{threads} threads: no update ran");
        assert_eq!(state, jit.optimizer_state(), "{threads} threads");
    }
}
