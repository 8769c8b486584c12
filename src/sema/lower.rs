//! Lowering: evaluates a model's body abstractly into an IR graph.
//!
//! Functions and layers are inlined at every call, so each call is checked with the
//! shapes it actually receives; a shape error inside a function names the call sites
//! that led to it. Errors are reported once: a failing expression yields `Err(Reported)`,
//! and a `let` whose value failed binds its names to nothing, so that later uses stay
//! silent while independent errors in the same body are still found.

use super::calls::Instance;
use super::scope::{DefRef, ModuleId, Modules};
use super::value::{InstanceId, Value};
use crate::diag::{Code, Diag, did_you_mean};
use crate::ir::{BinaryOp, Graph, NodeId, Op, UnaryOp};
use crate::ops::ShapeError;
use crate::shape::{DType, Dim, TensorType};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind, LetStmt, Pattern, UnOp};
use std::collections::HashMap;

/// The error was reported already; callers unwind without saying more.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Reported;

pub type Lowered = Result<Value, Reported>;

/// A name binding: a value, or a value that failed to compute (already reported).
pub type Binding = Option<Value>;

/// Where an expression is evaluated: its module, its local scopes, the layer instance
/// whose forward is running (if any).
#[derive(Clone)]
pub struct Ctx {
    pub module: ModuleId,
    pub scopes: Vec<HashMap<String, Binding>>,
    pub owner: Option<InstanceId>,
}

impl Ctx {
    pub fn new(module: ModuleId, owner: Option<InstanceId>) -> Ctx {
        Ctx { module, scopes: vec![HashMap::new()], owner }
    }

    pub fn bind(&mut self, name: &str, value: Binding) {
        self.scopes.last_mut().expect("a scope").insert(name.to_string(), value);
    }

    fn local(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    /// The flattened local bindings that hold values, innermost winning.
    pub fn flat(&self) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        for s in &self.scopes {
            for (k, v) in s {
                match v {
                    Some(v) => {
                        out.insert(k.clone(), v.clone());
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
        }
        out
    }
}

/// One active call, for the labels that explain where an error inside a function came from.
#[derive(Clone, Debug)]
pub struct Frame {
    pub callee: String,
    pub site: Span,
}

pub struct Lowerer<'a> {
    pub modules: &'a Modules,
    pub diags: &'a mut Vec<Diag>,
    pub graph: Graph,
    /// Lowering for training (dropout active, batch statistics) or for evaluation.
    pub training: bool,
    pub instances: Vec<Instance>,
    pub(super) instance_counts: HashMap<String, usize>,
    pub(super) site_instances: HashMap<(Option<InstanceId>, Span), InstanceId>,
    pub frames: Vec<Frame>,
    pub(super) next_stream: u32,
}

/// How deep calls may nest before the lowering assumes unbounded recursion.
const MAX_CALL_DEPTH: usize = 64;

impl<'a> Lowerer<'a> {
    pub fn new(
        modules: &'a Modules,
        sources: &'a SourceMap,
        diags: &'a mut Vec<Diag>,
        name: &str,
        training: bool,
    ) -> Self {
        let _ = sources;
        Lowerer {
            modules,
            diags,
            graph: Graph::new(name),
            training,
            instances: Vec::new(),
            instance_counts: HashMap::new(),
            site_instances: HashMap::new(),
            frames: Vec::new(),
            next_stream: 0,
        }
    }

    /// Records a diagnostic, adding the call sites that led to it when it happened inside a
    /// function or layer.
    pub fn report(&mut self, mut d: Diag) -> Reported {
        for f in self.frames.iter().rev().take(3) {
            if f.site != d.primary.span {
                d = d.with_label(f.site, format!("in this call to `{}`", f.callee));
            }
        }
        self.diags.push(d);
        Reported
    }

    pub fn enter(&mut self, callee: &str, site: Span) -> Result<(), Reported> {
        if self.frames.len() >= MAX_CALL_DEPTH
            || self.frames.iter().filter(|f| f.callee == callee).count() >= 8
        {
            return Err(self.report(
                Diag::error(Code::E0109, format!("`{callee}` calls itself"), site, "recursive call")
                    .with_note("recursion is not supported; `scan` expresses recurrence over time"),
            ));
        }
        self.frames.push(Frame { callee: callee.to_string(), site });
        Ok(())
    }

    pub fn leave(&mut self) {
        self.frames.pop();
    }

    pub fn ty(&self, id: NodeId) -> &TensorType {
        self.graph.ty(id)
    }

    /// Evaluates an expression.
    pub fn expr(&mut self, ctx: &mut Ctx, e: &Expr) -> Lowered {
        match &e.kind {
            ExprKind::Int(n) => Ok(Value::Int(*n)),
            ExprKind::Float(v) => Ok(Value::Float(*v)),
            ExprKind::Str(s) => Ok(Value::Str(s.clone())),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Error => Err(Reported),
            ExprKind::Name(id) => self.name(ctx, &id.name, id.span),
            ExprKind::Tuple(items) => Ok(Value::Tuple(self.exprs(ctx, items)?)),
            ExprKind::List(items) => Ok(Value::List(self.exprs(ctx, items)?)),
            ExprKind::Block { stmts, value } => {
                ctx.scopes.push(HashMap::new());
                for s in stmts {
                    self.let_stmt(ctx, s);
                }
                let result = self.expr(ctx, value);
                ctx.scopes.pop();
                result
            }
            ExprKind::Unary(op, inner) => {
                let v = self.expr(ctx, inner)?;
                self.unary(*op, v, e.span, inner.span)
            }
            ExprKind::Binary(BinOp::Pipe, lhs, rhs) => {
                let input = self.expr(ctx, lhs)?;
                self.pipe(ctx, input, lhs.span, rhs)
            }
            ExprKind::Binary(op, lhs, rhs) => {
                let a = self.expr(ctx, lhs);
                let b = self.expr(ctx, rhs);
                self.binary(*op, a?, b?, e.span, lhs.span, rhs.span)
            }
            ExprKind::Call { callee, args } => {
                let f = self.expr(ctx, callee)?;
                if let Some(v) = self.static_where(ctx, &f, args) {
                    return v;
                }
                let args = self.args(ctx, args)?;
                self.call(ctx, f, args, e.span, callee.span)
            }
            ExprKind::Field(base, field) => {
                let v = self.expr(ctx, base)?;
                Err(self.report(Diag::error(
                    Code::E0108,
                    format!("{} has no field `{}`", v.kind(), field.name),
                    field.span,
                    "unknown field",
                )))
            }
            ExprKind::Closure { params, body } => {
                Ok(Value::Closure(std::rc::Rc::new(super::value::Closure {
                    params: params.clone(),
                    body: (**body).clone(),
                    ctx: ctx.clone(),
                    span: e.span,
                })))
            }
        }
    }

    /// `where(c, a, b)` with a condition known while compiling (`training`, `from_logits`)
    /// lowers only the branch it picks, so that the other adds no dead nodes (no dropout
    /// mask in an evaluation graph). `None` when the call is not of that form.
    fn static_where(
        &mut self,
        ctx: &mut Ctx,
        f: &Value,
        args: &[crate::syntax::ast::Arg],
    ) -> Option<Lowered> {
        let Value::Func { def: DefRef::Builtin(super::builtins::Builtin::Where), bound } = f else {
            return None;
        };
        if !bound.is_empty() || args.len() != 3 || args.iter().any(|a| a.name.is_some()) {
            return None;
        }
        let cond = match &args[0].value.kind {
            ExprKind::Bool(b) => *b,
            ExprKind::Name(id) => match ctx.local(&id.name) {
                Some(Some(Value::Bool(b))) => *b,
                None if id.name == "training" => self.training,
                _ => return None,
            },
            _ => return None,
        };
        Some(self.expr(ctx, &args[if cond { 1 } else { 2 }].value))
    }

    fn exprs(&mut self, ctx: &mut Ctx, items: &[Expr]) -> Result<Vec<Value>, Reported> {
        let results: Vec<Lowered> = items.iter().map(|i| self.expr(ctx, i)).collect();
        results.into_iter().collect()
    }

    /// Evaluates call arguments: positional ones first, named ones after, each with its span.
    pub fn args(
        &mut self,
        ctx: &mut Ctx,
        args: &[crate::syntax::ast::Arg],
    ) -> Result<Vec<super::calls::ArgVal>, Reported> {
        let mut out = Vec::new();
        let mut failed = false;
        for a in args {
            match self.expr(ctx, &a.value) {
                Ok(v) => {
                    out.push(super::calls::ArgVal { name: a.name.clone(), value: v, span: a.value.span })
                }
                Err(_) => failed = true,
            }
        }
        if failed { Err(Reported) } else { Ok(out) }
    }

    /// Binds a `let`; on failure the names are bound to nothing, and later uses stay silent.
    pub fn let_stmt(&mut self, ctx: &mut Ctx, s: &LetStmt) {
        let v = self.expr(ctx, &s.value).ok();
        self.bind_pattern(ctx, &s.pattern, v);
    }

    pub fn bind_pattern(&mut self, ctx: &mut Ctx, p: &Pattern, v: Binding) {
        match p {
            Pattern::Name(id) => ctx.bind(&id.name, v),
            Pattern::Wild(_) => {}
            Pattern::Tuple(items, span) => match v {
                Some(Value::Tuple(vals)) | Some(Value::List(vals)) if vals.len() == items.len() => {
                    for (p, v) in items.iter().zip(vals) {
                        self.bind_pattern(ctx, p, Some(v));
                    }
                }
                other => {
                    if let Some(v) = other {
                        let what = match &v {
                            Value::Tuple(t) | Value::List(t) => format!("{} values", t.len()),
                            other => other.kind().to_string(),
                        };
                        self.report(Diag::error(
                            Code::E0108,
                            format!("cannot unpack {what} into {} names", items.len()),
                            *span,
                            "this pattern",
                        ));
                    }
                    for p in items {
                        self.bind_pattern(ctx, p, None);
                    }
                }
            },
        }
    }

    fn name(&mut self, ctx: &Ctx, name: &str, span: Span) -> Lowered {
        if let Some(b) = ctx.local(name) {
            return b.clone().ok_or(Reported);
        }
        if let Some(v) = super::builtins::value_of(name, self.training) {
            return Ok(v);
        }
        match self.modules.lookup(ctx.module, name) {
            Some(def) => Ok(Value::Func { def, bound: Vec::new() }),
            None => {
                let mut candidates: Vec<String> = self.modules.visible_names(ctx.module);
                for s in &ctx.scopes {
                    candidates.extend(s.keys().cloned());
                }
                candidates.extend(super::builtins::VALUE_NAMES.iter().map(|s| s.to_string()));
                let mut d = Diag::error(
                    Code::E0101,
                    format!("cannot find `{name}` in this scope"),
                    span,
                    "not found",
                );
                if let Some(s) = did_you_mean(name, candidates.iter().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else if super::scope::STDLIB.iter().any(|(m, text)| {
                    *m == "layers"
                        && (text.contains(&format!("layer {name}("))
                            || text.contains(&format!("layer {name} ")))
                }) {
                    d = d.with_help(format!("import it: `use std::layers::{{{name}}}`"));
                }
                Err(self.report(d))
            }
        }
    }

    /// `input |> f(args)` calls `f(input, args)`; `input |> Layer(args)` builds the layer and
    /// applies it; `input |> f` calls `f(input)`.
    fn pipe(&mut self, ctx: &mut Ctx, input: Value, input_span: Span, rhs: &Expr) -> Lowered {
        let arg = super::calls::ArgVal { name: None, value: input, span: input_span };
        match &rhs.kind {
            ExprKind::Call { callee, args } => {
                let f = self.expr(ctx, callee)?;
                let args = self.args(ctx, args)?;
                if let Value::Func { def: DefRef::Layer(..), .. } = f {
                    let layer = self.call(ctx, f, args, rhs.span, callee.span)?;
                    self.call(ctx, layer, vec![arg], rhs.span, rhs.span)
                } else {
                    let mut all = vec![arg];
                    all.extend(args);
                    self.call(ctx, f, all, rhs.span, callee.span)
                }
            }
            _ => {
                let f = self.expr(ctx, rhs)?;
                let f = if let Value::Func { def: DefRef::Layer(..), .. } = f {
                    self.call(ctx, f, Vec::new(), rhs.span, rhs.span)?
                } else {
                    f
                };
                self.call(ctx, f, vec![arg], rhs.span, rhs.span)
            }
        }
    }

    fn unary(&mut self, op: UnOp, v: Value, span: Span, inner: Span) -> Lowered {
        match (op, v) {
            (UnOp::Neg, Value::Int(n)) => Ok(Value::Int(n.wrapping_neg())),
            (UnOp::Neg, Value::Float(x)) => Ok(Value::Float(-x)),
            (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
            (UnOp::Neg, Value::Tensor(t)) => self.node(Op::Unary(UnaryOp::Neg), &[t], None, span, &[inner]),
            (UnOp::Not, Value::Tensor(t)) => self.node(Op::Unary(UnaryOp::Not), &[t], None, span, &[inner]),
            (op, v) => {
                let what = if op == UnOp::Neg { "negate" } else { "apply `!` to" };
                Err(self.report(Diag::error(
                    Code::E0108,
                    format!("cannot {what} {}", v.kind()),
                    inner,
                    format!("this is {}", v.kind()),
                )))
            }
        }
    }

    /// Applies a binary operator, folding constants and turning scalars into tensors of
    /// the other operand's element type.
    pub fn binary(&mut self, op: BinOp, a: Value, b: Value, span: Span, sa: Span, sb: Span) -> Lowered {
        if let Some(v) = fold_constants(op, &a, &b) {
            return Ok(v);
        }
        if let (BinOp::Add, Value::List(x), Value::List(y)) = (op, &a, &b) {
            return Ok(Value::List(x.iter().chain(y).cloned().collect()));
        }
        let bop = match op {
            BinOp::Add => BinaryOp::Add,
            BinOp::Sub => BinaryOp::Sub,
            BinOp::Mul => BinaryOp::Mul,
            BinOp::Div => BinaryOp::Div,
            BinOp::Pow => BinaryOp::Pow,
            BinOp::Eq => BinaryOp::Eq,
            BinOp::Lt => BinaryOp::Lt,
            BinOp::Le => BinaryOp::Le,
            BinOp::Gt => BinaryOp::Gt,
            BinOp::Ge => BinaryOp::Ge,
            BinOp::And => BinaryOp::And,
            BinOp::Or => BinaryOp::Or,
            BinOp::MatMul => return self.matmul(a, b, span, sa, sb),
            BinOp::Ne => {
                let eq = self.binary(BinOp::Eq, a, b, span, sa, sb)?;
                return self.unary(UnOp::Not, eq, span, span);
            }
            BinOp::Pipe => unreachable!("pipes are lowered by `pipe`"),
        };
        let (x, y) = self.tensor_pair(a, b, sa, sb)?;
        self.node(Op::Binary(bop), &[x, y], None, span, &[sa, sb])
    }

    fn matmul(&mut self, a: Value, b: Value, span: Span, sa: Span, sb: Span) -> Lowered {
        let x = self.expect_tensor(a, sa)?;
        let y = self.expect_tensor(b, sb)?;
        self.node(Op::MatMul, &[x, y], None, span, &[sa, sb])
    }

    /// Turns two operands into tensors; a non-tensor side becomes a scalar of the other's dtype.
    pub fn tensor_pair(
        &mut self,
        a: Value,
        b: Value,
        sa: Span,
        sb: Span,
    ) -> Result<(NodeId, NodeId), Reported> {
        match (&a, &b) {
            (Value::Tensor(x), Value::Tensor(y)) => Ok((*x, *y)),
            (Value::Tensor(x), _) => {
                let dt = self.ty(*x).dtype;
                Ok((*x, self.scalar_like(b, dt, sb)?))
            }
            (_, Value::Tensor(y)) => {
                let dt = self.ty(*y).dtype;
                Ok((self.scalar_like(a, dt, sa)?, *y))
            }
            _ => {
                let x = self.scalar_like(a, DType::F32, sa)?;
                let y = self.scalar_like(b, DType::F32, sb)?;
                Ok((x, y))
            }
        }
    }

    /// A number as a scalar tensor of `dtype`.
    pub fn scalar_like(&mut self, v: Value, dtype: DType, span: Span) -> Result<NodeId, Reported> {
        let value = match (&v, dtype) {
            (Value::Tensor(t), _) => return Ok(*t),
            (Value::Int(n), _) => *n as f64,
            (Value::Float(x), d) if d.is_float() => *x,
            (Value::Bool(b), DType::Bool) => f64::from(u8::from(*b)),
            (Value::Dim(Dim::Sym(s)), _) => {
                return Err(self.report(
                    Diag::error(
                        Code::E0108,
                        format!("the symbolic dimension `{s}` has no value while compiling"),
                        span,
                        "used as a number",
                    )
                    .with_note("symbolic sizes are known only when the program runs"),
                ));
            }
            (Value::Float(_), d) => {
                return Err(self.report(
                    Diag::error(
                        Code::E0203,
                        format!(
                            "a float cannot combine with {} {d} tensor",
                            if d.name().starts_with('i') { "an" } else { "a" }
                        ),
                        span,
                        "this is a float",
                    )
                    .with_help("convert the tensor with `cast(x, f32)`"),
                ));
            }
            _ => {
                return Err(self.report(Diag::error(
                    Code::E0108,
                    format!("expected a tensor or a number, got {}", v.kind()),
                    span,
                    format!("this is {}", v.kind()),
                )));
            }
        };
        Ok(self.graph.scalar(value, dtype, span))
    }

    pub fn expect_tensor(&mut self, v: Value, span: Span) -> Result<NodeId, Reported> {
        match v {
            Value::Tensor(t) => Ok(t),
            Value::Int(_) | Value::Float(_) => self.scalar_like(v, DType::F32, span),
            other => Err(self.report(Diag::error(
                Code::E0108,
                format!("expected a tensor, got {}", other.kind()),
                span,
                format!("this is {}", other.kind()),
            ))),
        }
    }

    /// Adds a node through its shape rule, turning a shape error into a located diagnostic:
    /// the primary label on the operation, a secondary one on each operand with its type.
    pub fn node(
        &mut self,
        op: Op,
        inputs: &[NodeId],
        target: Option<TensorType>,
        span: Span,
        operand_spans: &[Span],
    ) -> Lowered {
        match self.graph.add(op, inputs, target, span) {
            Ok(id) => Ok(Value::Tensor(id)),
            Err(e) => {
                let types: Vec<TensorType> = inputs.iter().map(|&i| self.ty(i).clone()).collect();
                let d = super::errors::shape_error(&e, span, operand_spans, &types);
                Err(self.report(d))
            }
        }
    }

    /// Reports a shape error raised outside `node`.
    pub fn shape_error(&mut self, e: &ShapeError, span: Span) -> Reported {
        let d = super::errors::shape_error(e, span, &[], &[]);
        self.report(d)
    }
}

/// Arithmetic on compile-time numbers.
fn fold_constants(op: BinOp, a: &Value, b: &Value) -> Option<Value> {
    use Value::{Bool, Float, Int};
    Some(match (op, a, b) {
        (BinOp::Add, Int(x), Int(y)) => Int(x.checked_add(*y)?),
        (BinOp::Sub, Int(x), Int(y)) => Int(x.checked_sub(*y)?),
        (BinOp::Mul, Int(x), Int(y)) => Int(x.checked_mul(*y)?),
        (BinOp::Div, Int(x), Int(y)) if *y != 0 => Int(x.checked_div(*y)?),
        (BinOp::Eq, Int(x), Int(y)) => Bool(x == y),
        (BinOp::Lt, Int(x), Int(y)) => Bool(x < y),
        (BinOp::Gt, Int(x), Int(y)) => Bool(x > y),
        (BinOp::And, Bool(x), Bool(y)) => Bool(*x && *y),
        (BinOp::Or, Bool(x), Bool(y)) => Bool(*x || *y),
        (_, Int(_) | Float(_), Int(_) | Float(_)) => {
            let x = a.as_f64()?;
            let y = b.as_f64()?;
            match op {
                BinOp::Add => Float(x + y),
                BinOp::Sub => Float(x - y),
                BinOp::Mul => Float(x * y),
                BinOp::Div => Float(x / y),
                BinOp::Pow => Float(x.powf(y)),
                BinOp::Lt => Bool(x < y),
                BinOp::Le => Bool(x <= y),
                BinOp::Gt => Bool(x > y),
                BinOp::Ge => Bool(x >= y),
                BinOp::Eq => Bool(x == y),
                _ => return None,
            }
        }
        _ => return None,
    })
}
