//! Type annotations: matching a tensor type against a pattern such as `f32[..., IN]`.
//!
//! A pattern binds its unbound dimension names at the first use and checks them at every
//! later one; `...` stands for any number of dimensions and binds them as a group, so a
//! return type `f32[..., units]` can repeat the dimensions the argument had.

use super::value::Value;
use crate::shape::{DType, Dim, TensorType, fmt_shape};
use crate::syntax::ast::{DimExpr, TypeExpr};
use std::collections::HashMap;

/// The name under which `...` binds its dimensions in a scope.
pub const ELLIPSIS: &str = "...";

/// The kinds of non-tensor values a parameter may declare.
pub const KINDS: &[&str] = &["int", "float", "bool", "str", "fn", "init", "list", "any"];

/// Why a value does not match an annotation.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    DType { expected: DType, got: DType },
    Rank { expected: String, got: TensorType },
    Dim { name: String, expected: Dim, got: Dim, axis: usize },
    Literal { expected: i64, got: Dim, axis: usize },
    Kind { expected: String, got: &'static str },
    UnknownType(String),
}

impl Mismatch {
    pub fn describe(&self, pattern: &str) -> String {
        match self {
            Mismatch::DType { expected, got } => format!("expected element type {expected}, got {got}"),
            Mismatch::Rank { expected, got } => format!("expected {pattern} ({expected}), got {got}"),
            Mismatch::Dim { name, expected, got, axis } => {
                format!("dimension `{name}` is {expected} here but the value has {got} at axis {axis}")
            }
            Mismatch::Literal { expected, got, axis } => {
                format!("expected {expected} at axis {axis}, got {got}")
            }
            Mismatch::Kind { expected, got } => format!("expected {expected}, got {got}"),
            Mismatch::UnknownType(t) => format!("`{t}` is not a type"),
        }
    }
}

/// Scope lookups the matcher needs: the value bound to a name, if any.
pub trait DimScope {
    fn get(&self, name: &str) -> Option<Value>;
    fn bind(&mut self, name: &str, value: Value);
}

impl DimScope for HashMap<String, Value> {
    fn get(&self, name: &str) -> Option<Value> {
        HashMap::get(self, name).cloned()
    }
    fn bind(&mut self, name: &str, value: Value) {
        self.insert(name.to_string(), value);
    }
}

/// A dimension as a value: literals become integers so that arithmetic on them folds.
pub fn dim_value(d: &Dim) -> Value {
    match d {
        Dim::Const(n) => Value::Int(*n),
        Dim::Sym(_) => Value::Dim(d.clone()),
    }
}

/// Matches a tensor type against a tensor pattern, binding unbound names in `scope`.
pub fn match_tensor(
    pattern: &TypeExpr,
    actual: &TensorType,
    scope: &mut dyn DimScope,
) -> Result<(), Mismatch> {
    let TypeExpr::Named { name, dims, .. } = pattern;
    let Some(dtype) = DType::from_name(&name.name) else {
        return Err(if KINDS.contains(&name.name.as_str()) {
            Mismatch::Kind {
                expected: format!("{} (a `{}`)", article(&name.name), name.name),
                got: "a tensor",
            }
        } else {
            Mismatch::UnknownType(name.name.clone())
        });
    };
    if dtype != actual.dtype {
        return Err(Mismatch::DType { expected: dtype, got: actual.dtype });
    }
    let dims: &[DimExpr] = dims.as_deref().unwrap_or(&[]);
    let ellipsis = dims.iter().position(|d| matches!(d, DimExpr::Ellipsis(_)));
    let fixed = dims.len() - usize::from(ellipsis.is_some());
    let rank_ok = if ellipsis.is_some() { actual.rank() >= fixed } else { actual.rank() == fixed };
    if !rank_ok {
        let expected =
            if ellipsis.is_some() { format!("at least {fixed} axes") } else { format!("{fixed} axes") };
        return Err(Mismatch::Rank { expected, got: actual.clone() });
    }
    let extra = actual.rank() - fixed;
    let mut axis = 0;
    for d in dims {
        match d {
            DimExpr::Ellipsis(_) => {
                let group: Vec<Dim> = actual.shape[axis..axis + extra].to_vec();
                match scope.get(ELLIPSIS) {
                    Some(Value::List(prev)) => {
                        let prev: Vec<Dim> = prev.iter().filter_map(Value::as_dim).collect();
                        if prev != group {
                            return Err(Mismatch::Rank {
                                expected: format!("`...` = {} as before", fmt_shape(&prev)),
                                got: actual.clone(),
                            });
                        }
                    }
                    _ => scope.bind(ELLIPSIS, Value::List(group.iter().map(dim_value).collect())),
                }
                axis += extra;
            }
            DimExpr::Lit(n, _) => {
                if actual.shape[axis] != Dim::Const(*n) {
                    return Err(Mismatch::Literal { expected: *n, got: actual.shape[axis].clone(), axis });
                }
                axis += 1;
            }
            DimExpr::Name(id) => {
                let got = actual.shape[axis].clone();
                match scope.get(&id.name) {
                    Some(v) => {
                        let Some(expected) = v.as_dim() else {
                            return Err(Mismatch::Kind {
                                expected: format!("`{}` to be a dimension", id.name),
                                got: v.kind(),
                            });
                        };
                        if expected != got {
                            return Err(Mismatch::Dim { name: id.name.clone(), expected, got, axis });
                        }
                    }
                    None => scope.bind(&id.name, dim_value(&got)),
                }
                axis += 1;
            }
        }
    }
    Ok(())
}

/// Resolves a tensor type whose names are all bound (a parameter's declared shape, a model
/// input). Unbound names become symbols when `symbolic` is set, errors otherwise.
pub fn resolve_tensor(
    pattern: &TypeExpr,
    scope: &dyn DimScope,
    symbolic: bool,
) -> Result<TensorType, String> {
    let TypeExpr::Named { name, dims, .. } = pattern;
    let dtype =
        DType::from_name(&name.name).ok_or_else(|| format!("`{}` is not an element type", name.name))?;
    let mut shape = Vec::new();
    for d in dims.as_deref().unwrap_or(&[]) {
        match d {
            DimExpr::Lit(n, _) => shape.push(Dim::Const(*n)),
            DimExpr::Ellipsis(_) => match scope.get(ELLIPSIS) {
                Some(Value::List(items)) => shape.extend(items.iter().filter_map(Value::as_dim)),
                _ => return Err("`...` is not bound here".to_string()),
            },
            DimExpr::Name(id) => match scope.get(&id.name) {
                Some(v) => match v.as_dim() {
                    Some(Dim::Const(n)) if n < 0 => {
                        return Err(format!("dimension `{}` is negative ({n})", id.name));
                    }
                    Some(d) => shape.push(d),
                    None => return Err(format!("`{}` is {}, not a dimension", id.name, v.kind())),
                },
                None if symbolic => shape.push(Dim::sym(&id.name)),
                None => return Err(format!("dimension `{}` is not bound by the input", id.name)),
            },
        }
    }
    Ok(TensorType::new(dtype, shape))
}

/// Whether a value fits a non-tensor kind annotation (`int`, `fn`, ...).
pub fn kind_fits(kind: &str, v: &Value) -> bool {
    match kind {
        "int" => v.as_int().is_some() || matches!(v, Value::Dim(_)),
        "float" => v.as_f64().is_some(),
        "bool" => matches!(v, Value::Bool(_)),
        "str" => matches!(v, Value::Str(_)),
        "fn" => matches!(v, Value::Func { .. }),
        "init" => matches!(v, Value::Init(_)) || super::builtins::as_init(v).is_some(),
        "list" => matches!(v, Value::List(_)),
        _ => true,
    }
}

fn article(kind: &str) -> &'static str {
    match kind {
        "int" | "init" => "an",
        _ => "a",
    }
}
