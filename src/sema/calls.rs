//! Calls: binding arguments to parameters, inlining functions, building and applying
//! layer instances.
//!
//! A layer is built lazily at its first application, as Keras does: the forward's input
//! pattern binds the dimensions (`IN`) that the parameter shapes use, then the parameters
//! and `let` members are created once. Applying the same instance again shares them and
//! checks that the input still binds the same dimensions.

use super::lower::{Ctx, Lowered, Lowerer, Reported};
use super::scope::{DefRef, ModuleId};
use super::types::{self, Mismatch};
use super::value::{InstanceId, Value};
use crate::diag::{Code, Diag, did_you_mean};
use crate::ir::ParamInfo;
use crate::source::Span;
use crate::syntax::ast::{self, Member, Param, TypeExpr};
use std::collections::HashMap;
use std::rc::Rc;

/// An evaluated argument.
#[derive(Clone, Debug)]
pub struct ArgVal {
    pub name: Option<ast::Ident>,
    pub value: Value,
    pub span: Span,
}

/// A layer instance: a layer definition with its constructor arguments and, once built,
/// its parameters and members.
pub struct Instance {
    pub layer: Rc<ast::LayerDef>,
    pub module: ModuleId,
    /// Dotted path used to name its parameters: `dense_1`, `block.conv2d`.
    pub name: String,
    pub args: HashMap<String, Value>,
    pub built: Option<HashMap<String, Value>>,
}

impl Lowerer<'_> {
    /// Calls a value with arguments.
    pub fn call(
        &mut self,
        ctx: &mut Ctx,
        f: Value,
        args: Vec<ArgVal>,
        span: Span,
        callee_span: Span,
    ) -> Lowered {
        match f {
            Value::Func { def: DefRef::Builtin(b), bound } => {
                let args = prepend_bound(bound, args, span);
                self.enter(b.name(), span)?;
                let r = super::builtins::call(self, ctx, b, args, span);
                self.leave();
                r
            }
            Value::Func { def: DefRef::Fn(def, module), bound } => {
                let args = prepend_bound(bound, args, span);
                self.call_fn(&def, module, args, span)
            }
            Value::Func { def: DefRef::Layer(def, module), .. } => {
                self.construct(ctx, def, module, args, span)
            }
            Value::Func { def: DefRef::Model(def, module), .. } => {
                let scope =
                    self.bind_params(&def.name.name, module, &def.params, args, span, HashMap::new())?;
                self.enter(&def.name.name, span)?;
                let mut inner = Ctx::new(module, ctx.owner);
                inner.scopes[0] = scope.into_iter().map(|(k, v)| (k, Some(v))).collect();
                let r = self.expr(&mut inner, &def.body);
                let r = r.and_then(|v| self.check_return(&def.ret, v, &inner, span));
                self.leave();
                r
            }
            Value::Instance(id) => self.apply(id, args, span),
            other => Err(self.report(Diag::error(
                Code::E0107,
                format!("{} cannot be called", other.kind()),
                callee_span,
                format!("this is {}", other.kind()),
            ))),
        }
    }

    fn call_fn(&mut self, def: &Rc<ast::FnDef>, module: ModuleId, args: Vec<ArgVal>, span: Span) -> Lowered {
        let name = def.name.name.clone();
        let scope = self.bind_params(&name, module, &def.params, args, span, HashMap::new())?;
        self.enter(&name, span)?;
        let mut ctx = Ctx::new(module, None);
        ctx.scopes[0] = scope.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let r = self.expr(&mut ctx, &def.body);
        let r = r.and_then(|v| self.check_return(&def.ret, v, &ctx, def.body.span));
        self.leave();
        r
    }

    /// Checks a result against a declared return type.
    pub fn check_return(&mut self, ret: &Option<TypeExpr>, v: Value, ctx: &Ctx, span: Span) -> Lowered {
        let Some(ret) = ret else { return Ok(v) };
        let mut scope = ctx.flat();
        let result = match &v {
            Value::Tensor(t) => {
                let ty = self.ty(*t).clone();
                types::match_tensor(ret, &ty, &mut scope).map_err(|m| (m, ty.to_string()))
            }
            other => match ret {
                TypeExpr::Named { name, dims: None, .. } if types::KINDS.contains(&name.name.as_str()) => {
                    if types::kind_fits(&name.name, other) {
                        Ok(())
                    } else {
                        Err((
                            Mismatch::Kind { expected: name.name.clone(), got: other.kind() },
                            other.kind().to_string(),
                        ))
                    }
                }
                // A number where a scalar tensor is declared becomes one.
                _ if other.as_f64().is_some() => return Ok(v),
                _ => Err((
                    Mismatch::Kind { expected: "a tensor".into(), got: other.kind() },
                    other.kind().to_string(),
                )),
            },
        };
        match result {
            Ok(()) => Ok(v),
            Err((m, got)) => {
                let pattern = type_text(ret);
                let mut d = Diag::error(
                    Code::E0205,
                    format!("the result does not match the declared type `{pattern}`"),
                    span,
                    format!("this is {got}"),
                )
                .with_label(ret.span(), "declared here")
                .with_note(m.describe(&pattern));
                // Axes left over, as when a `Dense` follows convolutions without a `Flatten`.
                let TypeExpr::Named { dims, .. } = ret;
                if let Mismatch::Rank { got, .. } = &m
                    && got.rank() > dims.as_ref().map_or(0, Vec::len).max(1)
                {
                    d = d.with_help(
                        "flatten the extra axes before the last `Dense`: `... |> Flatten() |> Dense(...)`",
                    );
                }
                Err(self.report(d))
            }
        }
    }

    /// Binds arguments to declared parameters: positional first, then named, then defaults;
    /// checks each value against its declared type or kind. Returns the callee's scope.
    pub fn bind_params(
        &mut self,
        callee: &str,
        module: ModuleId,
        params: &[Param],
        args: Vec<ArgVal>,
        span: Span,
        mut scope: HashMap<String, Value>,
    ) -> Result<HashMap<String, Value>, Reported> {
        let positional_count = args.iter().filter(|a| a.name.is_none()).count();
        let mut given: Vec<Option<ArgVal>> = vec![None; params.len()];
        let mut failed = false;
        let mut positional = 0;
        for a in args {
            let slot = match &a.name {
                None => {
                    let i = positional;
                    positional += 1;
                    if i >= params.len() {
                        self.report(
                            Diag::error(
                                Code::E0104,
                                format!(
                                    "`{callee}` takes {} argument{} but {positional_count} were given",
                                    params.len(),
                                    if params.len() == 1 { "" } else { "s" }
                                ),
                                a.span,
                                "unexpected argument",
                            )
                            .with_note(format!(
                                "`{callee}` takes ({})",
                                params.iter().map(|p| p.name.name.as_str()).collect::<Vec<_>>().join(", ")
                            )),
                        );
                        failed = true;
                        continue;
                    }
                    i
                }
                Some(n) => match params.iter().position(|p| p.name.name == n.name) {
                    Some(i) => i,
                    None => {
                        let mut d = Diag::error(
                            Code::E0105,
                            format!("`{callee}` has no parameter named `{}`", n.name),
                            n.span,
                            "unknown argument",
                        );
                        if let Some(s) = did_you_mean(&n.name, params.iter().map(|p| p.name.name.as_str())) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        } else {
                            d = d.with_note(format!(
                                "the parameters are {}",
                                params
                                    .iter()
                                    .map(|p| format!("`{}`", p.name.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                        self.report(d);
                        failed = true;
                        continue;
                    }
                },
            };
            if given[slot].is_some() {
                self.report(Diag::error(
                    Code::E0106,
                    format!("argument `{}` of `{callee}` is given twice", params[slot].name.name),
                    a.span,
                    "given again here",
                ));
                failed = true;
                continue;
            }
            given[slot] = Some(a);
        }
        for (p, g) in params.iter().zip(given) {
            let (value, vspan) = match g {
                Some(a) => (a.value, a.span),
                None => match &p.default {
                    Some(d) => {
                        // Defaults are evaluated in the callee's module, seeing earlier parameters.
                        let mut dctx = Ctx::new(module, None);
                        dctx.scopes[0] = scope.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
                        match self.expr(&mut dctx, d) {
                            Ok(v) => (v, d.span),
                            Err(_) => {
                                failed = true;
                                continue;
                            }
                        }
                    }
                    None => {
                        self.report(
                            Diag::error(
                                Code::E0104,
                                format!("missing argument `{}` in call to `{callee}`", p.name.name),
                                span,
                                format!("`{}` is not given", p.name.name),
                            )
                            .with_label(p.span, "declared here without a default"),
                        );
                        failed = true;
                        continue;
                    }
                },
            };
            if self.check_param(callee, p, &value, vspan, &mut scope).is_err() {
                failed = true;
                continue;
            }
            scope.insert(p.name.name.clone(), value);
        }
        if failed { Err(Reported) } else { Ok(scope) }
    }

    /// Checks one argument against its parameter's declared type, binding dimension names.
    fn check_param(
        &mut self,
        callee: &str,
        p: &Param,
        v: &Value,
        vspan: Span,
        scope: &mut HashMap<String, Value>,
    ) -> Result<(), Reported> {
        let TypeExpr::Named { name, dims, .. } = &p.ty;
        let is_kind = dims.is_none() && types::KINDS.contains(&name.name.as_str());
        let mismatch = if is_kind {
            (!types::kind_fits(&name.name, v))
                .then(|| Mismatch::Kind { expected: format!("`{}`", name.name), got: v.kind() })
        } else {
            match v {
                Value::Tensor(t) => {
                    let ty = self.ty(*t).clone();
                    types::match_tensor(&p.ty, &ty, scope).err()
                }
                // Numbers are accepted for scalar float parameters.
                other if dims.is_none() && other.as_f64().is_some() => None,
                other => Some(Mismatch::Kind { expected: "a tensor".into(), got: other.kind() }),
            }
        };
        let Some(m) = mismatch else { return Ok(()) };
        let pattern = type_text(&p.ty);
        let got = match v {
            Value::Tensor(t) => self.ty(*t).to_string(),
            other => other.kind().to_string(),
        };
        let code = match m {
            Mismatch::DType { .. } => Code::E0203,
            Mismatch::Kind { .. } => Code::E0108,
            Mismatch::Dim { .. } => Code::E0207,
            _ => Code::E0205,
        };
        Err(self.report(
            Diag::error(
                code,
                format!("argument `{}` of `{callee}` does not match `{pattern}`", p.name.name),
                vspan,
                format!("this is {got}"),
            )
            .with_label(p.ty.span(), "declared here")
            .with_note(m.describe(&pattern)),
        ))
    }

    /// Calls a layer's constructor: a new instance, or the one this site made before when
    /// a shared layer runs its forward again.
    fn construct(
        &mut self,
        ctx: &mut Ctx,
        def: Rc<ast::LayerDef>,
        module: ModuleId,
        args: Vec<ArgVal>,
        span: Span,
    ) -> Lowered {
        let key = (ctx.owner, span);
        if ctx.owner.is_some()
            && let Some(&id) = self.site_instances.get(&key)
        {
            return Ok(Value::Instance(id));
        }
        let bound = self.bind_params(&def.name.name, module, &def.params, args, span, HashMap::new())?;
        let base = snake_case(&def.name.name);
        let prefix = ctx.owner.map(|o| format!("{}.", self.instances[o.0].name)).unwrap_or_default();
        let count = self.instance_counts.entry(format!("{prefix}{base}")).or_insert(0);
        let name = if *count == 0 { format!("{prefix}{base}") } else { format!("{prefix}{base}_{count}") };
        *count += 1;
        let id = InstanceId(self.instances.len());
        self.instances.push(Instance { layer: def, module, name, args: bound, built: None });
        self.site_instances.insert(key, id);
        Ok(Value::Instance(id))
    }

    /// Applies an instance to its inputs, building it on first use.
    fn apply(&mut self, id: InstanceId, args: Vec<ArgVal>, span: Span) -> Lowered {
        let layer = self.instances[id.0].layer.clone();
        let module = self.instances[id.0].module;
        let lname = layer.name.name.clone();
        let forwards: Vec<&ast::ForwardDef> = layer
            .members
            .iter()
            .filter_map(|m| if let Member::Forward(f) = m { Some(f) } else { None })
            .collect();
        let Some(fwd) = forwards.first() else {
            return Err(self.report(
                Diag::error(Code::E0110, format!("layer `{lname}` has no `forward`"), span, "applied here")
                    .with_label(layer.name.span, "defined here"),
            ));
        };
        let base = self.instances[id.0].built.clone().unwrap_or_else(|| self.instances[id.0].args.clone());
        let scope = self.bind_params(&lname, module, &fwd.params, args, span, base)?;
        self.enter(&lname, span)?;
        let mut ctx = Ctx::new(module, Some(id));
        ctx.scopes[0] = scope.into_iter().map(|(k, v)| (k, Some(v))).collect();
        if self.instances[id.0].built.is_none() {
            if let Err(r) = self.build(id, &layer, &mut ctx) {
                self.leave();
                return Err(r);
            }
            // What the build bound (parameters, members, dimensions) persists; the
            // forward's own arguments do not.
            let mut kept = ctx.flat();
            for p in &fwd.params {
                kept.remove(&p.name.name);
            }
            self.instances[id.0].built = Some(kept);
        }
        let r = self.expr(&mut ctx, &fwd.body);
        let r = r.and_then(|v| self.check_return(&fwd.ret, v, &ctx, span));
        self.leave();
        r
    }

    /// Creates an instance's parameters and members in declaration order.
    fn build(&mut self, id: InstanceId, layer: &ast::LayerDef, ctx: &mut Ctx) -> Result<(), Reported> {
        let mut failed = false;
        for m in &layer.members {
            match m {
                Member::Forward(_) => {}
                Member::Let(s) => self.let_stmt(ctx, s),
                Member::Tensor(t) => {
                    let scope = ctx.flat();
                    let ty = match types::resolve_tensor(&t.ty, &scope, false) {
                        Ok(ty) => ty,
                        Err(msg) => {
                            self.report(
                                Diag::error(Code::E0208, format!("cannot give parameter `{}` a shape", t.name.name), t.ty.span(), msg)
                                    .with_note("a parameter's dimensions must come from the layer's arguments or its input's type"),
                            );
                            failed = true;
                            ctx.bind(&t.name.name, None);
                            continue;
                        }
                    };
                    let init = match self.expr(ctx, &t.init) {
                        Ok(v) => match super::builtins::as_init(&v) {
                            Some(i) => i,
                            None => {
                                self.report(Diag::error(
                                    Code::E0108,
                                    format!("`{}` needs an initializer, got {}", t.name.name, v.kind()),
                                    t.init.span,
                                    "not an initializer",
                                ).with_help("initializers are zeros, ones, constant(v), glorot_uniform, glorot_normal, he_uniform, he_normal, orthogonal"));
                                failed = true;
                                ctx.bind(&t.name.name, None);
                                continue;
                            }
                        },
                        Err(_) => {
                            failed = true;
                            ctx.bind(&t.name.name, None);
                            continue;
                        }
                    };
                    let name = format!("{}.{}", self.instances[id.0].name, t.name.name);
                    let node = self.graph.add_param(ParamInfo {
                        name,
                        ty,
                        init,
                        trainable: t.trainable,
                        span: t.name.span,
                    });
                    ctx.bind(&t.name.name, Some(Value::Tensor(node)));
                }
            }
        }
        if failed { Err(Reported) } else { Ok(()) }
    }
}

fn prepend_bound(bound: Vec<(String, Value)>, mut args: Vec<ArgVal>, span: Span) -> Vec<ArgVal> {
    // Bound arguments (a partial application such as `binary_crossentropy(from_logits: true)`)
    // are named, so they can follow the positional ones.
    args.extend(bound.into_iter().map(|(n, v)| ArgVal {
        name: Some(ast::Ident { name: n, span }),
        value: v,
        span,
    }));
    args
}

/// `Conv2D` -> `conv2d`, `BatchNorm` -> `batch_norm`, `SimpleRNN` -> `simple_rnn`,
/// `PReLU` -> `prelu`: a word break before a capital that follows a lowercase letter and
/// starts a lowercase word, or an all-capital word of three letters or more.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let after_lower = i > 0 && chars[i - 1].is_lowercase();
        let starts_word = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let rest = &chars[i..];
        let acronym = rest.len() >= 3 && rest.iter().all(|r| r.is_uppercase() || r.is_ascii_digit());
        if c.is_uppercase() && after_lower && (starts_word || acronym) {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The source-like text of a type, for messages.
pub fn type_text(t: &TypeExpr) -> String {
    let TypeExpr::Named { name, dims, .. } = t;
    match dims {
        None => name.name.clone(),
        Some(ds) => {
            let parts: Vec<String> = ds
                .iter()
                .map(|d| match d {
                    ast::DimExpr::Lit(n, _) => n.to_string(),
                    ast::DimExpr::Name(i) => i.name.clone(),
                    ast::DimExpr::Ellipsis(_) => "...".into(),
                })
                .collect();
            format!("{}[{}]", name.name, parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn snake_case_names_instances_as_keras_does() {
        assert_eq!(super::snake_case("Dense"), "dense");
        assert_eq!(super::snake_case("BatchNorm"), "batch_norm");
        assert_eq!(super::snake_case("Conv2D"), "conv2d");
        assert_eq!(super::snake_case("PReLU"), "prelu");
        assert_eq!(super::snake_case("LSTM"), "lstm");
        assert_eq!(super::snake_case("SimpleRNN"), "simple_rnn");
        assert_eq!(super::snake_case("GlobalAvgPool2D"), "global_avg_pool2d");
    }
}
