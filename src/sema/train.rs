//! `train` and `evaluate` blocks: settings checked against the model, the data and the
//! loss, and the training graph (model output, labels, loss) built.

use super::calls::ArgVal;
use super::data_sources::{self, SampleTypes};
use super::lower::{Ctx, Lowerer, Reported};
use super::scope::{DefRef, ModuleId, Modules};
use super::value::{Literal, RuntimeKind, RuntimeValue, Value};
use crate::diag::{Code, Diag, did_you_mean};
use crate::ir::{Graph, Op};
use crate::runtime::{metrics, optim, schedule};
use crate::shape::{DType, Dim, TensorType};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::{self, Expr, ExprKind, TrainDef, TrainEntry, TrainKind};

/// How labels relate to predictions; decides which accuracy a metric computes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LabelKind {
    /// Integer class ids against class scores.
    Sparse,
    /// One-hot labels against class scores.
    Categorical,
    /// 0/1 labels against one probability (or logit).
    Binary,
    Regression,
}

/// Scalar settings of a block, with Keras' defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub epochs: usize,
    pub batch: usize,
    pub validation: f64,
    pub seed: u64,
    pub shuffle: bool,
    /// Other literal settings passed to the runtime as written (checkpoint, history, ...).
    pub extra: Vec<(String, Literal)>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { epochs: 1, batch: 32, validation: 0.0, seed: 0, shuffle: true, extra: Vec::new() }
    }
}

/// A checked `train` or `evaluate` block.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub kind: TrainKind,
    pub model: String,
    /// Graph in training mode: model inputs then `y`; outputs `output` and `loss`.
    /// `None` for `evaluate` blocks.
    pub train_graph: Option<Graph>,
    /// Graph in evaluation mode, same inputs; outputs `output` and, with a loss, `loss`.
    pub eval_graph: Graph,
    pub data: RuntimeValue,
    pub validation_data: Option<RuntimeValue>,
    pub loss: Option<String>,
    pub from_logits: bool,
    pub label_kind: LabelKind,
    pub classes: Option<usize>,
    pub optimizer: Option<RuntimeValue>,
    /// A learning-rate schedule (`cosine_decay(decay_steps: 1000)`); its `lr` defaults to
    /// the optimizer's.
    pub schedule: Option<RuntimeValue>,
    pub metrics: Vec<RuntimeValue>,
    pub settings: Settings,
    pub span: Span,
}

const TRAIN_SETTINGS: &[&str] = &[
    "data",
    "validation_data",
    "loss",
    "optimizer",
    "epochs",
    "batch",
    "validation",
    "metrics",
    "seed",
    "shuffle",
    "checkpoint",
    "history",
    "early_stopping",
    "schedule",
    "augment",
];
const EVAL_SETTINGS: &[&str] = &["data", "loss", "metrics", "batch", "seed", "checkpoint"];

pub fn check_train(
    modules: &Modules,
    sources: &SourceMap,
    diags: &mut Vec<Diag>,
    entry: ModuleId,
    t: &TrainDef,
    earlier: &[TrainSpec],
) -> Option<TrainSpec> {
    let before = diags.len();
    let model = match modules.lookup(entry, &t.model.name) {
        Some(DefRef::Model(m, _)) => m,
        other => {
            let mut d = Diag::error(
                Code::E0405,
                format!("there is no model `{}`", t.model.name),
                t.model.span,
                "unknown model",
            );
            if let Some(def) = other {
                d = d.with_note(format!("`{}` is a {}, not a model", t.model.name, kind_of(&def)));
            } else if let Some(s) =
                did_you_mean(&t.model.name, modules.list[entry.0].names.keys().map(String::as_str))
            {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            diags.push(d);
            return None;
        }
    };
    let allowed = if t.kind == TrainKind::Train { TRAIN_SETTINGS } else { EVAL_SETTINGS };
    let mut settings = Settings::default();
    let mut data = None;
    let mut validation_data = None;
    let mut loss_expr: Option<&Expr> = None;
    let mut optimizer = None;
    let mut lr_schedule = None;
    let mut metrics = Vec::new();
    // Literal settings are evaluated with a throwaway lowerer over an empty graph.
    let mut scratch = Lowerer::new(modules, sources, diags, "settings", false);
    let mut ctx = Ctx::new(entry, None);
    for e in &t.entries {
        let (key, value) = match e {
            TrainEntry::Setting { key, value } => (key, value),
            TrainEntry::Let(_) | TrainEntry::Step { .. } => {
                let span = match e {
                    TrainEntry::Let(l) => l.span,
                    TrainEntry::Step { span, .. } => *span,
                    _ => unreachable!(),
                };
                scratch.report(
                    Diag::error(
                        Code::E0403,
                        "custom training steps are not supported yet",
                        span,
                        "not supported yet",
                    )
                    .with_note("a later release adds `step` blocks for GANs and other custom loops"),
                );
                continue;
            }
        };
        if !allowed.contains(&key.name.as_str()) {
            let mut d = Diag::error(
                Code::E0403,
                format!("unknown setting `{}`", key.name),
                key.span,
                "unknown setting",
            )
            .with_note(format!(
                "the settings of `{}` are {}",
                if t.kind == TrainKind::Train { "train" } else { "evaluate" },
                allowed.join(", ")
            ));
            if let Some(s) = did_you_mean(&key.name, allowed.iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            scratch.report(d);
            continue;
        }
        match key.name.as_str() {
            "data" => data = runtime_call(&mut scratch, &mut ctx, value, RuntimeKind::Data),
            "validation_data" => {
                validation_data = runtime_call(&mut scratch, &mut ctx, value, RuntimeKind::Data)
            }
            "optimizer" => optimizer = runtime_call(&mut scratch, &mut ctx, value, RuntimeKind::Optimizer),
            "schedule" => lr_schedule = runtime_call(&mut scratch, &mut ctx, value, RuntimeKind::Schedule),
            "loss" => loss_expr = Some(value),
            "metrics" => match &value.kind {
                ExprKind::List(items) => {
                    for it in items {
                        if let Some(m) = runtime_call(&mut scratch, &mut ctx, it, RuntimeKind::Metric) {
                            metrics.push(m);
                        }
                    }
                }
                _ => {
                    scratch.report(
                        Diag::error(Code::E0403, "`metrics` is a list", value.span, "not a list")
                            .with_help("write `metrics = [accuracy]`"),
                    );
                }
            },
            name => {
                let Ok(v) = scratch.expr(&mut ctx, value) else { continue };
                let got = match &v {
                    Value::Int(n) => n.to_string(),
                    Value::Float(x) => x.to_string(),
                    other => other.kind().to_string(),
                };
                let bad = |what: &str| {
                    Diag::error(
                        Code::E0403,
                        format!("`{name}` must be {what}, got {got}"),
                        value.span,
                        format!("this is {}", v.kind()),
                    )
                };
                match (name, &v) {
                    ("epochs", Value::Int(n)) if *n > 0 => settings.epochs = *n as usize,
                    ("batch", Value::Int(n)) if *n > 0 => settings.batch = *n as usize,
                    ("seed", Value::Int(n)) if *n >= 0 => settings.seed = *n as u64,
                    ("shuffle", Value::Bool(b)) => settings.shuffle = *b,
                    ("validation", v) if v.as_f64().is_some_and(|f| (0.0..1.0).contains(&f)) => {
                        settings.validation = v.as_f64().unwrap_or(0.0)
                    }
                    ("epochs" | "batch", _) => {
                        scratch.report(bad("a positive integer"));
                    }
                    ("seed", _) => {
                        scratch.report(bad("a non-negative integer"));
                    }
                    ("shuffle", _) => {
                        scratch.report(bad("`true` or `false`"));
                    }
                    ("validation", _) => {
                        scratch.report(bad("a fraction in [0, 1)"));
                    }
                    (other, v) => match v.to_literal() {
                        Some(l) => settings.extra.push((other.to_string(), l)),
                        None => {
                            scratch.report(bad("a number, string or bool"));
                        }
                    },
                }
            }
        }
    }
    let Some(data) = data else {
        if !t.entries.iter().any(|e| matches!(e, TrainEntry::Setting { key, .. } if key.name == "data")) {
            scratch.report(
                Diag::error(
                    Code::E0403,
                    format!("`{}` needs a `data` setting", kw(t.kind)),
                    t.model.span,
                    "no data given",
                )
                .with_help("add `data = mnist(split: \"train\")`"),
            );
        }
        return None;
    };
    if t.kind == TrainKind::Train {
        if loss_expr.is_none() {
            scratch.report(
                Diag::error(Code::E0403, "`train` needs a `loss` setting", t.model.span, "no loss given")
                    .with_help("add `loss = sparse_categorical_crossentropy(from_logits: true)`"),
            );
        }
        if optimizer.is_none()
            && !t
                .entries
                .iter()
                .any(|e| matches!(e, TrainEntry::Setting { key, .. } if key.name == "optimizer"))
        {
            scratch.report(
                Diag::error(
                    Code::E0403,
                    "`train` needs an `optimizer` setting",
                    t.model.span,
                    "no optimizer given",
                )
                .with_help("add `optimizer = Adam(lr: 1e-3)`"),
            );
        }
    }
    // Evaluation reuses the loss of the model's training block when it names none.
    let inherited = earlier.iter().find(|s| s.model == t.model.name && s.loss.is_some());
    let samples = match data_sources::sample_types(&data.name, &data.args) {
        Ok(s) => s,
        Err(msg) => {
            scratch.report(Diag::error(
                Code::E0401,
                format!("invalid arguments for data source `{}`", data.name),
                data.span,
                msg,
            ));
            return None;
        }
    };
    let loss_value = loss_expr.and_then(|e| loss_function(&mut scratch, &mut ctx, e));
    drop(scratch);
    if diags.len() > before && diags[before..].iter().any(Diag::is_error) {
        return None;
    }

    let loss_name = loss_value
        .as_ref()
        .map(|(d, _, _)| d.name().to_string())
        .or_else(|| inherited.and_then(|s| s.loss.clone()));
    let build = |training: bool, diags: &mut Vec<Diag>| -> Result<(Graph, LabelKind, bool), Reported> {
        let mut kind = LabelKind::Regression;
        let mut from_logits = false;
        let mut add_loss = |lw: &mut Lowerer,
                            ctx: &mut Ctx,
                            output: crate::ir::NodeId|
         -> Result<(), Reported> {
            let out_ty = lw.ty(output).clone();
            check_data_fits(lw, &model, &samples, &data, &out_ty)?;
            let (def, bound, lspan) = match (&loss_value, inherited) {
                (Some((d, b, s)), _) => (d.clone(), b.clone(), *s),
                (None, Some(prev)) => {
                    // Rebuild the inherited loss by name with its recorded settings.
                    match lw.modules.lookup(ctx.module, prev.loss.as_deref().unwrap_or("")) {
                        Some(d) => (
                            d,
                            vec![("from_logits".to_string(), Value::Bool(prev.from_logits))]
                                .into_iter()
                                .filter(|_| prev.loss.as_deref().is_some_and(|l| l.contains("crossentropy")))
                                .collect(),
                            t.model.span,
                        ),
                        None => return Ok(()),
                    }
                }
                (None, None) => return Ok(()),
            };
            from_logits = bound.iter().any(|(n, v)| n == "from_logits" && matches!(v, Value::Bool(true)));
            let label_ty = label_type(&samples, &out_ty, def.name());
            let y = lw.graph.add_input("y", label_ty.clone(), data.span);
            let (y, k) = adapt_labels(lw, y, &label_ty, &out_ty, def.name(), &samples, lspan, data.span)?;
            kind = k;
            let args = vec![
                ArgVal { name: None, value: Value::Tensor(y), span: data.span },
                ArgVal { name: None, value: Value::Tensor(output), span: t.model.span },
            ];
            let loss = lw.call(ctx, Value::Func { def, bound }, args, lspan, lspan)?;
            match loss {
                Value::Tensor(l) if lw.ty(l).rank() == 0 && lw.ty(l).dtype.is_float() => {
                    lw.graph.outputs.push(("loss".to_string(), l));
                    Ok(())
                }
                other => {
                    let got = match &other {
                        Value::Tensor(l) => lw.ty(*l).to_string(),
                        o => o.kind().to_string(),
                    };
                    Err(lw.report(
                        Diag::error(
                            Code::E0301,
                            format!("the loss must be a float scalar, this one is {got}"),
                            lspan,
                            "this loss",
                        )
                        .with_help("reduce it with `mean(...)`"),
                    ))
                }
            }
        };
        let lowered =
            super::lower_model(modules, sources, diags, entry, &model, training, Some(&mut add_loss))?;
        Ok((lowered.graph, kind, from_logits))
    };
    let train_graph = if t.kind == TrainKind::Train { Some(build(true, diags).ok()?) } else { None };
    let (eval_graph, label_kind, from_logits) = build(false, diags).ok()?;
    let classes = samples.classes;
    Some(TrainSpec {
        kind: t.kind,
        model: t.model.name.clone(),
        train_graph: train_graph.map(|g| g.0),
        eval_graph,
        data,
        validation_data,
        loss: loss_name,
        from_logits,
        label_kind,
        classes,
        optimizer,
        schedule: lr_schedule,
        metrics,
        settings,
        span: t.span,
    })
}

fn kw(k: TrainKind) -> &'static str {
    if k == TrainKind::Train { "train" } else { "evaluate" }
}

fn kind_of(d: &DefRef) -> &'static str {
    match d {
        DefRef::Fn(..) => "function",
        DefRef::Layer(..) => "layer",
        DefRef::Model(..) => "model",
        DefRef::Builtin(_) => "built-in function",
    }
}

/// The labels' type as the data yields them, with the batch axis of the model's output.
fn label_type(samples: &SampleTypes, out: &TensorType, loss: &str) -> TensorType {
    let batch = out.shape.first().cloned().unwrap_or(Dim::sym("B"));
    match &samples.y {
        Some(y) => {
            let mut shape = vec![batch];
            shape.extend(y.shape.iter().cloned());
            TensorType::new(y.dtype, shape)
        }
        // Only the file knows: assume what the loss expects.
        None if loss == "sparse_categorical_crossentropy" => TensorType::new(DType::I64, vec![batch]),
        None => out.clone(),
    }
}

/// Checks the labels against the loss and converts them as Keras does: integer 0/1 labels
/// become floats for binary and regression losses, and `[B]` labels gain the trailing 1
/// of a `[B, 1]` output.
#[allow(clippy::too_many_arguments)]
fn adapt_labels(
    lw: &mut Lowerer,
    y: crate::ir::NodeId,
    label: &TensorType,
    out: &TensorType,
    loss: &str,
    samples: &SampleTypes,
    loss_span: Span,
    data_span: Span,
) -> Result<(crate::ir::NodeId, LabelKind), Reported> {
    let classes_out = out.shape.last().and_then(Dim::as_const);
    let kind = match loss {
        "sparse_categorical_crossentropy" => {
            if label.dtype != DType::I64 {
                return Err(lw.report(
                    Diag::error(
                        Code::E0210,
                        format!(
                            "sparse categorical cross-entropy needs integer class ids, the data gives {label}"
                        ),
                        loss_span,
                        "this loss",
                    )
                    .with_label(data_span, "labels come from here")
                    .with_help("use `categorical_crossentropy` for one-hot labels"),
                ));
            }
            LabelKind::Sparse
        }
        "categorical_crossentropy" => {
            if label.dtype == DType::I64 {
                return Err(lw.report(
                    Diag::error(
                        Code::E0210,
                        format!(
                            "categorical cross-entropy needs one-hot labels, the data gives class ids {label}"
                        ),
                        loss_span,
                        "this loss expects one-hot labels",
                    )
                    .with_label(data_span, "integer labels come from here")
                    .with_help("use `sparse_categorical_crossentropy` for integer labels"),
                ));
            }
            LabelKind::Categorical
        }
        "binary_crossentropy" => {
            if let Some(c) = samples.classes.filter(|c| *c > 2) {
                return Err(lw.report(
                    Diag::error(
                        Code::E0210,
                        format!("binary cross-entropy needs 0/1 labels, the data has {c} classes"),
                        loss_span,
                        "this loss is for two classes",
                    )
                    .with_label(data_span, "labels come from here")
                    .with_help("use `sparse_categorical_crossentropy` and an output of one score per class"),
                ));
            }
            LabelKind::Binary
        }
        _ => LabelKind::Regression,
    };
    if matches!(kind, LabelKind::Sparse | LabelKind::Categorical) {
        match (classes_out, samples.classes) {
            (None, _) | (Some(1), _) if out.rank() < 2 || classes_out == Some(1) => {
                return Err(lw.report(Diag::error(Code::E0209, format!("`{loss}` needs one score per class, the model outputs {out}"), loss_span, "this loss").with_help("end the model with `Dense(classes)`; for two classes and one output use `binary_crossentropy`")));
            }
            (Some(n), Some(c)) if n as usize != c => {
                return Err(lw.report(
                    Diag::error(
                        Code::E0209,
                        format!("the model outputs {n} class scores but the data has {c} classes"),
                        loss_span,
                        "in this loss",
                    )
                    .with_label(data_span, format!("{c} classes come from here"))
                    .with_help(format!("end the model with `Dense({c})`")),
                ));
            }
            _ => {}
        }
    }
    let mut y = y;
    let mut ty = label.clone();
    if ty.dtype != out.dtype
        && matches!(kind, LabelKind::Binary | LabelKind::Regression)
        && out.dtype.is_float()
    {
        y = lw
            .graph
            .add(Op::Cast { to: out.dtype }, &[y], None, data_span)
            .map_err(|e| lw.shape_error(&e, data_span))?;
        ty.dtype = out.dtype;
    }
    if matches!(kind, LabelKind::Binary | LabelKind::Regression)
        && ty.rank() + 1 == out.rank()
        && out.shape.last() == Some(&Dim::Const(1))
    {
        let target = TensorType::new(ty.dtype, out.shape.clone());
        y = lw
            .graph
            .add(Op::Reshape, &[y], Some(target), data_span)
            .map_err(|e| lw.shape_error(&e, data_span))?;
        ty.shape = out.shape.clone();
    }
    if kind == LabelKind::Regression && ty.shape != out.shape {
        let mut d = Diag::error(
            Code::E0209,
            format!("`{loss}` compares the model's output {out} with labels {label} of another shape"),
            loss_span,
            "this loss needs labels shaped like the output",
        )
        .with_label(data_span, format!("labels {label} come from here"));
        if let Some(c) = samples.classes {
            d = d.with_help(format!(
                "the data has {c} classes: use `sparse_categorical_crossentropy(from_logits: true)`"
            ));
        }
        return Err(lw.report(d));
    }
    Ok((y, kind))
}

fn a_or_an(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {word}")
}

/// Checks that the data's features fit the model's input.
fn check_data_fits(
    lw: &mut Lowerer,
    model: &ast::ModelDef,
    samples: &SampleTypes,
    data: &RuntimeValue,
    _out: &TensorType,
) -> Result<(), Reported> {
    let Some(x) = &samples.x else { return Ok(()) };
    let Some(input) = lw.graph.inputs.first().cloned() else { return Ok(()) };
    let fits = input.ty.dtype == x.dtype
        && input.ty.shape.len() == x.shape.len() + 1
        && input.ty.shape[1..] == x.shape[..];
    if fits {
        return Ok(());
    }
    let mut expected = vec![input.ty.shape.first().cloned().unwrap_or(Dim::sym("B"))];
    expected.extend(x.shape.iter().cloned());
    let want = TensorType::new(x.dtype, expected);
    Err(lw.report(
        Diag::error(
            Code::E0211,
            format!("`{}` yields {} batches but `{}` takes {}", data.name, want, model.name.name, input.ty),
            data.span,
            format!("yields {want}"),
        )
        .with_label(input.span, format!("the model takes {}", input.ty)),
    ))
}

/// Evaluates a call to a runtime object (`Adam(lr: 1e-3)`, `mnist(split: "train")`,
/// `accuracy`) into its name and literal arguments, checking names and arguments.
fn runtime_call(lw: &mut Lowerer, ctx: &mut Ctx, e: &Expr, kind: RuntimeKind) -> Option<RuntimeValue> {
    let (name, args): (&ast::Ident, &[ast::Arg]) = match &e.kind {
        ExprKind::Call { callee, args } => match &callee.kind {
            ExprKind::Name(n) => (n, args),
            _ => return bad_runtime(lw, e.span, kind),
        },
        ExprKind::Name(n) => (n, &[]),
        _ => return bad_runtime(lw, e.span, kind),
    };
    let (names, allowed): (Vec<&str>, Option<&[&str]>) = match kind {
        RuntimeKind::Data => {
            let names = data_sources::SOURCES.iter().map(|s| s.name).collect();
            (names, data_sources::SOURCES.iter().find(|s| s.name == name.name).map(|s| s.args))
        }
        RuntimeKind::Optimizer => (optim::optimizer_names().to_vec(), optim::optimizer_args(&name.name)),
        RuntimeKind::Metric => {
            let names = metrics::metric_names();
            (names.to_vec(), names.contains(&name.name.as_str()).then_some(&[][..]))
        }
        RuntimeKind::Schedule => (schedule::schedule_names().to_vec(), schedule::schedule_args(&name.name)),
    };
    let code = match kind {
        RuntimeKind::Data => Code::E0401,
        RuntimeKind::Optimizer => Code::E0402,
        RuntimeKind::Schedule => Code::E0407,
        RuntimeKind::Metric => Code::E0404,
    };
    let what = match kind {
        RuntimeKind::Data => "data source",
        RuntimeKind::Optimizer => "optimizer",
        RuntimeKind::Metric => "metric",
        RuntimeKind::Schedule => "schedule",
    };
    let Some(allowed) = allowed else {
        let mut d = Diag::error(
            code,
            format!("unknown {what} `{}`", name.name),
            name.span,
            format!("not {}", a_or_an(what)),
        )
        .with_note(format!("the {what}s are {}", names.join(", ")));
        if let Some(s) = did_you_mean(&name.name, names.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        lw.report(d);
        return None;
    };
    let mut out = Vec::new();
    let mut failed = false;
    for a in args {
        let Some(n) = &a.name else {
            lw.report(
                Diag::error(
                    code,
                    format!("arguments of `{}` are named", name.name),
                    a.span,
                    "unnamed argument",
                )
                .with_help(format!(
                    "write it as `name: value`; `{}` takes {}",
                    name.name,
                    allowed.join(", ")
                )),
            );
            failed = true;
            continue;
        };
        if !allowed.contains(&n.name.as_str()) {
            let mut d = Diag::error(
                code,
                format!("`{}` takes no argument `{}`", name.name, n.name),
                n.span,
                "unknown argument",
            )
            .with_note(format!(
                "`{}` takes {}",
                name.name,
                if allowed.is_empty() { "no arguments".to_string() } else { allowed.join(", ") }
            ));
            if let Some(s) = did_you_mean(&n.name, allowed.iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            lw.report(d);
            failed = true;
            continue;
        }
        match lw.expr(ctx, &a.value).ok().and_then(|v| v.to_literal()) {
            Some(l) => out.push((n.name.clone(), l)),
            None => {
                lw.report(Diag::error(
                    code,
                    format!("`{}` must be a literal", n.name),
                    a.value.span,
                    "not a number, string or bool",
                ));
                failed = true;
            }
        }
    }
    if failed {
        return None;
    }
    Some(RuntimeValue { kind, name: name.name.clone(), args: out, span: e.span })
}

fn bad_runtime(lw: &mut Lowerer, span: Span, kind: RuntimeKind) -> Option<RuntimeValue> {
    let what = match kind {
        RuntimeKind::Data => "a data source such as `mnist(split: \"train\")`",
        RuntimeKind::Optimizer => "an optimizer such as `Adam(lr: 1e-3)`",
        RuntimeKind::Metric => "a metric name such as `accuracy`",
        RuntimeKind::Schedule => "a schedule such as `cosine_decay(decay_steps: 1000)`",
    };
    lw.report(Diag::error(Code::E0403, format!("expected {what}"), span, "not understood"));
    None
}

/// A loss function with its bound named arguments and the span of the setting.
type LossFn = (DefRef, Vec<(String, Value)>, Span);

/// The loss setting: a loss function, possibly with named arguments bound
/// (`sparse_categorical_crossentropy(from_logits: true)`); the labels and predictions are
/// passed when the training graph is built.
fn loss_function(lw: &mut Lowerer, ctx: &mut Ctx, e: &Expr) -> Option<LossFn> {
    let (callee, args): (&Expr, &[ast::Arg]) = match &e.kind {
        ExprKind::Call { callee, args } => (callee, args),
        _ => (e, &[]),
    };
    let f = lw.expr(ctx, callee).ok()?;
    let Value::Func { def, mut bound } = f else {
        lw.report(
            Diag::error(
                Code::E0403,
                format!("`loss` must be a loss function, got {}", f.kind()),
                e.span,
                "not a function",
            )
            .with_help("for example `loss = mse` or `loss = binary_crossentropy(from_logits: true)`"),
        );
        return None;
    };
    if !matches!(def, DefRef::Fn(..)) {
        lw.report(Diag::error(
            Code::E0403,
            format!("`{}` is not a loss function", def.name()),
            callee.span,
            "not a loss",
        ));
        return None;
    }
    let mut failed = false;
    for a in args {
        let Some(n) = &a.name else {
            lw.report(
                Diag::error(
                    Code::E0403,
                    "the loss's labels and predictions are passed by the training loop",
                    a.span,
                    "positional argument",
                )
                .with_help("give only named settings here, such as `from_logits: true`"),
            );
            failed = true;
            continue;
        };
        match lw.expr(ctx, &a.value) {
            Ok(v) => bound.push((n.name.clone(), v)),
            Err(_) => failed = true,
        }
    }
    (!failed).then_some((def, bound, e.span))
}
