//! Shape algebra: dtypes, dimensions, shapes and NumPy broadcasting.
//!
//! A dimension is a literal size or a symbol (`B`, `T`, `IN`) whose value is bound later:
//! at the first use while checking, or from the arrays a program is run with. Two symbols
//! are equal only when they have the same name; the checker never guesses that `B == T`.

mod broadcast;
mod dtype;

pub use broadcast::{BroadcastError, broadcast_shapes};
pub use dtype::DType;

use std::fmt;
use std::sync::Arc;

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A size known when the program is compiled.
    Const(i64),
    /// A size named by a symbol, bound when the program runs.
    Sym(Arc<str>),
}

impl Dim {
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(Arc::from(name))
    }

    pub fn as_const(&self) -> Option<i64> {
        match self {
            Dim::Const(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }

    pub fn is_one(&self) -> bool {
        matches!(self, Dim::Const(1))
    }
}

impl From<i64> for Dim {
    fn from(n: i64) -> Dim {
        Dim::Const(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Const(n) => write!(f, "{n}"),
            Dim::Sym(s) => write!(f, "{s}"),
        }
    }
}

/// The dimensions of a tensor, outermost first. Rank 0 is a scalar.
pub type Shape = Vec<Dim>;

/// Writes `[B, 28, 28]`.
pub fn fmt_shape(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// The product of the dimensions, when every one is a literal.
pub fn const_numel(shape: &[Dim]) -> Option<i64> {
    shape.iter().try_fold(1i64, |acc, d| d.as_const().and_then(|n| acc.checked_mul(n)))
}

/// The type of every IR value: element type and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType { dtype, shape: Vec::new() }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for TensorType {
    /// Writes `f32[B, 10]`, or `f32` for a scalar.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shape.is_empty() {
            write!(f, "{}", self.dtype)
        } else {
            write!(f, "{}{}", self.dtype, fmt_shape(&self.shape))
        }
    }
}

/// Values of symbolic dimensions, bound when a program runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymEnv {
    values: std::collections::BTreeMap<Arc<str>, usize>,
}

impl SymEnv {
    pub fn new() -> SymEnv {
        SymEnv::default()
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        self.values.get(name).copied()
    }

    /// Binds `name` to `value`, or checks it against an earlier binding.
    pub fn bind(&mut self, name: &Arc<str>, value: usize) -> Result<(), usize> {
        match self.values.get(name) {
            Some(&old) if old != value => Err(old),
            Some(_) => Ok(()),
            None => {
                self.values.insert(name.clone(), value);
                Ok(())
            }
        }
    }

    /// Binds `name` to `value`, replacing an earlier binding.
    pub fn rebind(&mut self, name: &Arc<str>, value: usize) {
        self.values.insert(name.clone(), value);
    }

    /// The concrete size of a dimension, if its symbol is bound.
    pub fn resolve(&self, dim: &Dim) -> Option<usize> {
        match dim {
            Dim::Const(n) => usize::try_from(*n).ok(),
            Dim::Sym(s) => self.get(s),
        }
    }

    /// The concrete shape, if every symbol in it is bound.
    pub fn resolve_shape(&self, shape: &[Dim]) -> Option<Vec<usize>> {
        shape.iter().map(|d| self.resolve(d)).collect()
    }
}
