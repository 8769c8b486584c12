//! The JIT back end: a training stepper and an executable over `codegen::Program`.
//!
//! Both schedule their graph once (`fuse::schedule`) and specialize it for each new set of
//! input shapes on first use (the last, partial batch gets its own program), caching the
//! programs. The stepper owns the parameters, the optimizer slots and the hyper-parameter
//! block in its own buffers, which never move, and the compiled step updates them in
//! place. A graph the JIT cannot compile (an element type it lacks, an unbound symbol) runs
//! on the interpreter instead, from the same state: the choice is per graph and final.

use super::TrainError;
use super::params::ParamStore;
use super::stepper::{InterpStepper, StepError, StepOutputs, StepStats, TrainStepper};
use crate::codegen::{AlignedF32, Params, PlanOptions, Program, Training, specialize, update};
use crate::fuse::{self, Schedule};
use crate::ir::{self, Graph, NodeId, RunError, RunOptions};
use crate::ops::Value;
use crate::runtime::optim::{Optimizer, OptimizerSpec, OptimizerState};
use crate::shape::{Dim, SymEnv};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// Binds the symbols of `graph`'s inputs from the shapes of `inputs`.
fn bind_inputs(graph: &Graph, inputs: &[Value]) -> Result<SymEnv, RunError> {
    if inputs.len() != graph.inputs.len() {
        return Err(RunError::ArgumentCount {
            what: "inputs",
            expected: graph.inputs.len(),
            got: inputs.len(),
        });
    }
    let mut env = SymEnv::new();
    for (info, v) in graph.inputs.iter().zip(inputs) {
        let bad = || RunError::BadArgument {
            kind: "input",
            name: info.name.clone(),
            expected: info.ty.clone(),
            got: format!("a {} array of shape {:?}", v.dtype(), v.shape()),
        };
        if v.dtype() != info.ty.dtype || v.shape().len() != info.ty.rank() {
            return Err(bad());
        }
        for (d, &n) in info.ty.shape.iter().zip(v.shape()) {
            match d {
                Dim::Const(c) if usize::try_from(*c) != Ok(n) => return Err(bad()),
                Dim::Sym(s) if env.bind(s, n).is_err() => return Err(bad()),
                _ => {}
            }
        }
    }
    Ok(env)
}

/// A short description of the symbol values, such as `B = 32`.
fn bindings_text(graph: &Graph, env: &SymEnv) -> String {
    let mut names: Vec<String> = Vec::new();
    for t in graph.inputs.iter().map(|i| &i.ty) {
        for d in &t.shape {
            if let Dim::Sym(s) = d
                && let Some(v) = env.get(s)
            {
                let text = format!("{s} = {v}");
                if !names.contains(&text) {
                    names.push(text);
                }
            }
        }
    }
    if names.is_empty() { "fixed shapes".into() } else { names.join(", ") }
}

/// The training stepper on compiled code.
pub struct JitStepper {
    schedule: Schedule,
    training: Training,
    spec: OptimizerSpec,
    seed: u64,
    options: PlanOptions,
    outs: StepOutputs,
    /// Store layout: names, trainability, and the graph parameter of each store entry.
    names: Vec<String>,
    trainable: Vec<bool>,
    shapes: Vec<Vec<usize>>,
    graph_param: Vec<usize>,
    /// Parameters in the graph's order, optimizer slots in the plan's order.
    params: Vec<AlignedF32>,
    slots: Vec<AlignedF32>,
    hyper: Vec<f32>,
    steps_done: u64,
    programs: Vec<Program>,
    /// When set, every step runs here instead.
    fallback: Option<InterpStepper>,
    graph: Graph,
}

impl JitStepper {
    /// A stepper for the step graph `graph` starting from `store`; `Err` when the graph
    /// cannot be scheduled for the JIT (the caller falls back to the interpreter).
    pub fn new(
        graph: &Graph,
        store: ParamStore,
        spec: OptimizerSpec,
        seed: u64,
        options: PlanOptions,
    ) -> Result<JitStepper, TrainError> {
        let outs = StepOutputs::find(graph, &store)?;
        let schedule = fuse::schedule(graph).map_err(|e| TrainError::Setup(e.to_string()))?;
        let graph_param: Vec<usize> = store
            .names
            .iter()
            .map(|n| {
                graph
                    .params
                    .iter()
                    .position(|p| p.name == *n)
                    .ok_or_else(|| TrainError::Setup(format!("the step graph has no parameter `{n}`")))
            })
            .collect::<Result<_, _>>()?;
        let updates: Vec<(usize, NodeId)> = outs
            .trainable
            .iter()
            .zip(&outs.grads)
            .map(|(&s, &o)| (graph_param[s], graph.outputs[o].1))
            .collect();
        let states = outs.states.iter().map(|&(o, s)| (graph.outputs[o].1, graph_param[s])).collect();
        let keep = vec![graph.outputs[outs.loss].1, graph.outputs[outs.output].1];
        let loss = Some(graph.outputs[outs.loss].1);
        let training = Training { spec: spec.clone(), updates, states, keep, loss };
        let mut params = vec![AlignedF32::zeros(0); graph.params.len()];
        for (s, v) in store.values.iter().enumerate() {
            let p = &mut params[graph_param[s]];
            *p = AlignedF32::zeros(v.len());
            p.iter_mut().zip(v).for_each(|(dst, src)| *dst = *src);
        }
        let slot_count = spec.slot_names().len();
        let slots = outs
            .trainable
            .iter()
            .flat_map(|&s| std::iter::repeat_n(AlignedF32::zeros(store.values[s].len()), slot_count))
            .collect();
        let hyper = vec![1.0; update::H_SCALE0 + outs.trainable.len()];
        Ok(JitStepper {
            schedule,
            training,
            spec,
            seed,
            options,
            outs,
            shapes: store.values.iter().map(|v| v.shape().to_vec()).collect(),
            names: store.names,
            trainable: store.trainable,
            graph_param,
            params,
            slots,
            hyper,
            steps_done: 0,
            programs: Vec::new(),
            fallback: None,
            graph: graph.clone(),
        })
    }

    /// The program for these inputs, compiled on first use.
    fn program(&mut self, inputs: &[Value]) -> Result<usize, StepError> {
        if let Some(i) = self.programs.iter().position(|p| p.accepts(inputs)) {
            return Ok(i);
        }
        let env = bind_inputs(&self.graph, inputs)?;
        let plan = specialize(&self.schedule, &env, Some(&self.training), self.options)
            .map_err(|e| StepError::Setup(e.to_string()))?;
        let program =
            Program::new(&self.graph, plan, self.seed, false).map_err(|e| StepError::Setup(e.to_string()))?;
        self.programs.push(program);
        Ok(self.programs.len() - 1)
    }

    /// The plans compiled so far, one per batch size seen.
    pub fn plans(&self) -> Vec<&crate::codegen::Plan> {
        self.programs.iter().map(Program::plan).collect()
    }

    /// Wall time spent compiling programs so far.
    pub fn compile_time(&self) -> std::time::Duration {
        self.programs.iter().map(Program::compile_time).sum()
    }

    fn optimizer(&self) -> Optimizer {
        let shapes: Vec<(String, Vec<usize>)> =
            self.outs.trainable.iter().map(|&s| (self.names[s].clone(), self.shapes[s].clone())).collect();
        Optimizer::new(self.spec.clone(), &shapes)
    }

    /// The interpreter's account of a step that produced a non-finite value: the first op
    /// with one, or `None` if the replay stays finite (rounding differences).
    fn locate_non_finite(&self, inputs: &[Value], step: u64) -> Option<RunError> {
        let params: Vec<Value> = self
            .graph
            .params
            .iter()
            .zip(&self.params)
            .map(|(info, data)| {
                let shape: Option<Vec<usize>> =
                    info.ty.shape.iter().map(|d| d.as_const().map(|c| c as usize)).collect();
                ArrayD::from_shape_vec(IxDyn(&shape?), data.to_vec()).ok().map(Value::F32)
            })
            .collect::<Option<_>>()?;
        let opts = RunOptions { seed: self.seed, step, promote_f64: false, check_finite: true };
        match ir::run(&self.graph, inputs, &params, &opts) {
            Err(e @ RunError::NonFinite { .. }) => Some(e),
            _ => None,
        }
    }

    /// Moves every later step to the interpreter, from the current state.
    fn fall_back(&mut self) -> Result<(), TrainError> {
        let mut interp = InterpStepper::new(&self.graph, self.params(), self.spec.clone(), self.seed)?;
        interp.set_optimizer_state(&self.optimizer_state())?;
        self.fallback = Some(interp);
        Ok(())
    }
}

impl TrainStepper for JitStepper {
    fn step(&mut self, inputs: &[Value], step: u64) -> Result<StepStats<'_>, StepError> {
        if self.fallback.is_none() {
            match self.program(inputs) {
                Ok(_) => {}
                Err(StepError::Setup(_)) => self.fall_back().map_err(|e| StepError::Setup(e.to_string()))?,
                Err(e) => return Err(e),
            }
        }
        if self.fallback.is_some() {
            // Checked first so that the borrow returned here is taken unconditionally.
            let Some(f) = self.fallback.as_mut() else { unreachable!("checked above") };
            return f.step(inputs, step);
        }
        let i = self.programs.iter().position(|p| p.accepts(inputs)).unwrap_or(0);
        let head = update::hyper(&self.spec, self.steps_done + 1);
        self.hyper[..head.len()].copy_from_slice(&head);
        self.hyper[head.len()..].fill(1.0);
        let ran = self.programs[i].run(
            inputs,
            Params::Train { params: &mut self.params, slots: &mut self.slots, hyper: &mut self.hyper },
            step,
        );
        if let Err(guard @ RunError::NonFinite { .. }) = ran {
            // The guard stopped the step before any update, so the parameters are those the
            // step started from: the interpreter replays it and names the first op whose
            // result is not finite, which the compiled kernels do not track.
            return Err(StepError::Run(self.locate_non_finite(inputs, step).unwrap_or(guard)));
        }
        ran?;
        self.steps_done += 1;
        let program = &self.programs[i];
        let loss = match program.output(self.outs.loss).0 {
            crate::codegen::OutputRef::F32(s) => s.first().copied().unwrap_or(f32::NAN),
            crate::codegen::OutputRef::I64(_) => f32::NAN,
        };
        let (pred, shape) = program.output(self.outs.output);
        let pred = match pred {
            crate::codegen::OutputRef::F32(s) => s,
            crate::codegen::OutputRef::I64(_) => &[],
        };
        let predictions = ArrayViewD::from_shape(IxDyn(shape), pred)
            .map_err(|e| StepError::Setup(format!("predictions: {e}")))?;
        Ok(StepStats { loss: f64::from(loss), predictions })
    }

    fn params(&self) -> ParamStore {
        if let Some(f) = &self.fallback {
            return f.params();
        }
        let values = self
            .graph_param
            .iter()
            .zip(&self.shapes)
            .map(|(&g, shape)| ArrayD::from_shape_vec(IxDyn(shape), self.params[g].to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|_| unreachable!("parameter buffers keep their shapes' lengths"));
        ParamStore { names: self.names.clone(), values, trainable: self.trainable.clone() }
    }

    fn set_params(&mut self, store: &ParamStore) -> Result<(), TrainError> {
        if let Some(f) = self.fallback.as_mut() {
            return f.set_params(store);
        }
        super::stepper::check_same_layout(&self.params(), store)?;
        for (s, v) in store.values.iter().enumerate() {
            // Same length, so the buffer does not move.
            for (dst, src) in self.params[self.graph_param[s]].iter_mut().zip(v.iter()) {
                *dst = *src;
            }
        }
        Ok(())
    }

    fn optimizer_state(&self) -> OptimizerState {
        if let Some(f) = &self.fallback {
            return f.optimizer_state();
        }
        let layout = self.optimizer().state_layout();
        let tensors = layout
            .into_iter()
            .zip(&self.slots)
            .map(|((name, shape), data)| {
                let t = ArrayD::from_shape_vec(IxDyn(&shape), data.to_vec())
                    .unwrap_or_else(|_| unreachable!("slot buffers match their parameter's shape"));
                (name, t)
            })
            .collect();
        OptimizerState { step: self.steps_done, tensors }
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), TrainError> {
        if let Some(f) = self.fallback.as_mut() {
            return f.set_optimizer_state(state);
        }
        let mut checked = self.optimizer();
        checked.import_state(state).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        for (slot, (_, t)) in self.slots.iter_mut().zip(checked.export_state().tensors) {
            for (dst, src) in slot.iter_mut().zip(t.iter()) {
                *dst = *src;
            }
        }
        self.steps_done = state.step;
        Ok(())
    }

    fn set_lr(&mut self, lr: f32) {
        // The update kernel reads the learning rate from its per-step scalars (`hyper`),
        // so a new rate needs no recompilation.
        self.spec.lr = lr;
        if let Some(f) = &mut self.fallback {
            f.set_lr(lr);
        }
    }

    fn backend(&self) -> &'static str {
        if self.fallback.is_some() { "interp" } else { "jit" }
    }
}

/// A graph on compiled code (evaluation and prediction), the interpreter where the JIT
/// cannot compile it.
pub struct JitExecutable {
    graph: Graph,
    schedule: Option<Schedule>,
    seed: u64,
    options: PlanOptions,
    programs: Vec<Program>,
}

impl JitExecutable {
    pub fn new(graph: &Graph, seed: u64, options: PlanOptions) -> JitExecutable {
        // The same values, fewer elements through the maps after a pooling.
        let graph = crate::ir::pool_first::pool_first(graph);
        let schedule = fuse::schedule(&graph).ok();
        JitExecutable { graph, schedule, seed, options, programs: Vec::new() }
    }

    /// The compiled program for `inputs`, if the JIT can compile the graph.
    pub fn program(&mut self, inputs: &[Value]) -> Result<Option<&mut Program>, RunError> {
        if let Some(i) = self.programs.iter().position(|p| p.accepts(inputs)) {
            return Ok(Some(&mut self.programs[i]));
        }
        let Some(schedule) = &self.schedule else { return Ok(None) };
        let env = bind_inputs(&self.graph, inputs)?;
        let Ok(plan) = specialize(schedule, &env, None, self.options) else {
            self.schedule = None;
            return Ok(None);
        };
        match Program::new(&self.graph, plan, self.seed, false) {
            Ok(p) => {
                self.programs.push(p);
                Ok(self.programs.last_mut())
            }
            Err(_) => {
                self.schedule = None;
                Ok(None)
            }
        }
    }
}

impl JitExecutable {
    /// Runs the compiled program for `inputs` on `params` (checked finite by the caller when
    /// `finite`), or the interpreter when the graph does not compile.
    fn run_with(
        &mut self,
        inputs: &[Value],
        params: &[Value],
        finite: bool,
        step: u64,
    ) -> Result<Vec<Value>, RunError> {
        let outputs = self.graph.outputs.len();
        if let Some(p) = self.program(inputs)? {
            p.run(inputs, if finite { Params::Finite(params) } else { Params::Values(params) }, step)?;
            return Ok((0..outputs).map(|k| p.output_value(k)).collect());
        }
        let opts = RunOptions { seed: self.seed, step, promote_f64: false, check_finite: true };
        ir::run(&self.graph, inputs, params, &opts)
    }
}

impl super::Executable for JitExecutable {
    fn run(&mut self, inputs: &[Value], params: &[Value], step: u64) -> Result<Vec<Value>, RunError> {
        self.run_with(inputs, params, false, step)
    }

    fn run_finite_params(
        &mut self,
        inputs: &[Value],
        params: &[Value],
        step: u64,
    ) -> super::backend::Outputs {
        self.run_with(inputs, params, true, step)
    }
}

/// The step graph, schedule and a plan of a training block specialized for its batch.
fn block_plan(spec: &crate::sema::TrainSpec) -> Result<(Graph, Schedule, Training, SymEnv), TrainError> {
    let graph = super::fit::step_graph(spec)?;
    let schedule = fuse::schedule(&graph).map_err(|e| TrainError::Setup(e.to_string()))?;
    let store = ParamStore::init(spec.train_graph.as_ref().unwrap_or(&graph), 0)?;
    let ospec = super::fit::optimizer_spec(spec, &super::RunConfig::default())?;
    let probe = JitStepper::new(&graph, store, ospec, 0, PlanOptions::default())?;
    let mut env = SymEnv::new();
    for t in graph.inputs.iter().map(|i| &i.ty) {
        for d in &t.shape {
            if let Dim::Sym(s) = d {
                let _ = env.bind(s, spec.settings.batch);
            }
        }
    }
    Ok((graph, schedule, probe.training, env))
}

/// The fused schedule of a training block's step and its plan for the block's batch size,
/// for `dnnc ir --stage fused`.
pub fn print_fused(spec: &crate::sema::TrainSpec) -> Result<String, TrainError> {
    let (graph, schedule, training, env) = block_plan(spec)?;
    let plan = specialize(&schedule, &env, Some(&training), PlanOptions::default())
        .map_err(|e| TrainError::Setup(e.to_string()))?;
    Ok(format!("{}\n{}", fuse::print_schedule(&schedule), plan.describe(&bindings_text(&graph, &env))))
}

/// The Cranelift IR of a training block's compiled step (the driver, then each kernel),
/// for `dnnc ir --stage clif`.
pub fn print_clif(spec: &crate::sema::TrainSpec) -> Result<String, TrainError> {
    let (graph, schedule, training, env) = block_plan(spec)?;
    let plan = specialize(&schedule, &env, Some(&training), PlanOptions::default())
        .map_err(|e| TrainError::Setup(e.to_string()))?;
    let program = Program::new(&graph, plan, 0, true).map_err(|e| TrainError::Setup(e.to_string()))?;
    Ok(program.clif().unwrap_or_default().to_string())
}
