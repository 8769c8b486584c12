//! Semantic analysis: name resolution, type and shape checking, and lowering to the IR.
//!
//! `check_source` is the front end's entry point: it parses a file and what it imports,
//! lowers every model to a typed graph, checks every `train` and `evaluate` block, and
//! returns the [`Program`] with every diagnostic found along the way.

mod builtins;
mod calls;
pub mod data_sources;
mod errors;
mod lower;
mod print;
mod scope;
mod train;
mod types;
mod value;

pub use builtins::Builtin;
pub use print::print_program;
pub use scope::STDLIB;
pub use train::{LabelKind, Settings, TrainSpec};
pub use value::{Literal, RuntimeKind, RuntimeValue};

use crate::diag::{Code, Diag};
use crate::ir::{self, Graph};
use crate::shape::{Dim, TensorType};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::{self, DimExpr, TypeExpr};
use lower::{Ctx, Lowerer};
use scope::{DefRef, ModuleId, Modules};
use std::collections::HashMap;
use value::Value;

/// A model lowered for evaluation (dropout off): inputs, parameters, one output.
#[derive(Clone, Debug)]
pub struct ModelIr {
    pub name: String,
    pub graph: Graph,
    pub span: Span,
}

/// Everything the back end needs from one `.dnn` file.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub models: Vec<ModelIr>,
    pub trains: Vec<TrainSpec>,
    /// The entry file's AST.
    pub ast: ast::Module,
}

/// The result of checking a file: the program when there were no errors, and all diagnostics.
pub struct Checked {
    pub program: Option<Program>,
    pub diags: Vec<Diag>,
    pub sources: SourceMap,
}

/// Checks a file given as bytes (it may not be UTF-8).
pub fn check_bytes(name: &str, bytes: &[u8]) -> Checked {
    match std::str::from_utf8(bytes) {
        Ok(text) => check_source(name, text),
        Err(e) => {
            let mut sources = SourceMap::new();
            let valid = e.valid_up_to();
            let shown = String::from_utf8_lossy(bytes).into_owned();
            let file = sources.add(name, shown);
            let at = String::from_utf8_lossy(&bytes[..valid]).len();
            let end = (at + 1).min(sources.text(file).len());
            let d = Diag::error(
                Code::E0002,
                "the file is not valid UTF-8",
                Span::new(file, at, end),
                format!("invalid byte at offset {valid}"),
            )
            .with_help("save the file as UTF-8");
            Checked { program: None, diags: vec![d], sources }
        }
    }
}

/// Checks a file's text: parses, resolves, lowers every model and training block.
pub fn check_source(name: &str, text: &str) -> Checked {
    let mut sources = SourceMap::new();
    let mut diags = Vec::new();
    let (modules, entry) = scope::load(name, text, &mut sources, &mut diags);
    let mut program = Program { ast: modules.list[entry.0].ast.clone(), ..Program::default() };
    if diags.iter().any(Diag::is_error) {
        return Checked { program: None, diags, sources };
    }
    for item in &modules.list[entry.0].ast.items {
        match item {
            ast::Item::Model(m) => {
                if let Ok(graph) = lower_model(&modules, &sources, &mut diags, entry, m, false, None) {
                    program.models.push(ModelIr {
                        name: m.name.name.clone(),
                        graph: graph.graph,
                        span: m.name.span,
                    });
                }
            }
            ast::Item::Train(t) => {
                if let Some(spec) =
                    train::check_train(&modules, &sources, &mut diags, entry, t, &program.trains)
                {
                    program.trains.push(spec);
                }
            }
            _ => {}
        }
    }
    let failed = diags.iter().any(Diag::is_error);
    Checked { program: (!failed).then_some(program), diags, sources }
}

/// A model lowered into a graph (its output is the graph's `output`).
pub(crate) struct LoweredModel {
    pub graph: Graph,
}

/// A step run after a model's body is lowered, given its output (adds the loss).
pub(crate) type ExtendModel<'x> =
    dyn FnMut(&mut Lowerer, &mut Ctx, ir::NodeId) -> Result<(), lower::Reported> + 'x;

/// Lowers a model's body. With `labels`, a final step adds the loss (see `train`).
pub(crate) fn lower_model(
    modules: &Modules,
    sources: &SourceMap,
    diags: &mut Vec<Diag>,
    _entry: ModuleId,
    m: &ast::ModelDef,
    training: bool,
    extend: Option<&mut ExtendModel>,
) -> Result<LoweredModel, lower::Reported> {
    let DefRef::Model(_, module) = modules.lookup(_entry, &m.name.name).ok_or(lower::Reported)? else {
        return Err(lower::Reported);
    };
    let mut lw = Lowerer::new(modules, sources, diags, &m.name.name, training);
    let mut ctx = Ctx::new(module, None);
    let mut failed = false;
    for p in &m.params {
        match model_input_type(&p.ty) {
            Ok(ty) => {
                for d in &ty.shape {
                    if let Dim::Sym(s) = d {
                        ctx.bind(s, Some(Value::Dim(d.clone())));
                    }
                }
                let node = lw.graph.add_input(&p.name.name, ty, p.name.span);
                ctx.bind(&p.name.name, Some(Value::Tensor(node)));
            }
            Err(msg) => {
                lw.report(Diag::error(
                    Code::E0208,
                    format!("model input `{}` needs a full tensor type", p.name.name),
                    p.ty.span(),
                    msg,
                ));
                failed = true;
            }
        }
    }
    if failed {
        return Err(lower::Reported);
    }
    let out = lw.expr(&mut ctx, &m.body)?;
    let out = lw.check_return(&m.ret, out, &ctx, m.body.span)?;
    let Value::Tensor(output) = out else {
        return Err(lw.report(Diag::error(
            Code::E0108,
            format!("a model must return a tensor, this one returns {}", out.kind()),
            m.body.span,
            "not a tensor",
        )));
    };
    lw.graph.outputs.push(("output".to_string(), output));
    if let Some(f) = extend {
        f(&mut lw, &mut ctx, output)?;
    }
    ir::debug_verify(&lw.graph, "lowering");
    Ok(LoweredModel { graph: lw.graph })
}

/// A model input's type: literal dimensions, and names that become symbols (`B`).
fn model_input_type(t: &TypeExpr) -> Result<TensorType, String> {
    let TypeExpr::Named { dims, .. } = t;
    if dims.as_deref().unwrap_or(&[]).iter().any(|d| matches!(d, DimExpr::Ellipsis(_))) {
        return Err("`...` is not allowed in a model input: write every dimension".into());
    }
    types::resolve_tensor(t, &HashMap::<String, Value>::new(), true)
}
