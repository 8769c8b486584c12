//! Run-time values of the reference interpreter and the element traits its kernels are
//! generic over.
//!
//! A [`Value`] is an owned n-dimensional array in one of the five element types of
//! [`DType`]. Float kernels are written once over [`Float`] (f32 and f64), integer kernels
//! once over [`Int`] (i64 and u8). Conversions follow Rust's `as` semantics: float to
//! integer truncates toward zero and saturates (NaN becomes 0), integer to narrower
//! integer keeps the low bits, bool becomes 0 or 1, and a number becomes `true` when it
//! is non-zero.

use crate::shape::DType;
use ndarray::{ArrayD, IxDyn, LinalgScalar};
use std::fmt::Debug;
use std::ops::Neg;

/// An array the interpreter computes with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    Bool(ArrayD<bool>),
}

/// Applies a generic expression to the array inside a value, whatever its element type.
macro_rules! with_array {
    ($value:expr, $a:ident => $body:expr) => {
        match $value {
            Value::F32($a) => $body,
            Value::F64($a) => $body,
            Value::I64($a) => $body,
            Value::U8($a) => $body,
            Value::Bool($a) => $body,
        }
    };
}
pub(crate) use with_array;

impl Value {
    pub fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::F64(_) => DType::F64,
            Value::I64(_) => DType::I64,
            Value::U8(_) => DType::U8,
            Value::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A tensor of `shape` with every element `value` converted to `dtype`.
    pub fn filled(dtype: DType, shape: &[usize], value: f64) -> Value {
        let shape = IxDyn(shape);
        match dtype {
            DType::F32 => Value::F32(ArrayD::from_elem(shape, value as f32)),
            DType::F64 => Value::F64(ArrayD::from_elem(shape, value)),
            DType::I64 => Value::I64(ArrayD::from_elem(shape, value as i64)),
            DType::U8 => Value::U8(ArrayD::from_elem(shape, value as u8)),
            DType::Bool => Value::Bool(ArrayD::from_elem(shape, value != 0.0)),
        }
    }

    /// A scalar (rank 0) value.
    pub fn scalar(dtype: DType, value: f64) -> Value {
        Value::filled(dtype, &[], value)
    }

    /// The elements converted to f64 (bool as 0 or 1), in row-major order.
    pub fn to_f64(&self) -> ArrayD<f64> {
        match self {
            Value::F32(a) => a.mapv(f64::from),
            Value::F64(a) => a.clone(),
            Value::I64(a) => a.mapv(|v| v as f64),
            Value::U8(a) => a.mapv(f64::from),
            Value::Bool(a) => a.mapv(|v| if v { 1.0 } else { 0.0 }),
        }
    }

    /// The single element of a value with one element, as f64.
    pub fn first_f64(&self) -> Option<f64> {
        self.to_f64().iter().next().copied()
    }

    /// Converts every element to `to` (see the module header for the rules).
    pub fn cast(&self, to: DType) -> Value {
        if self.dtype() == to {
            return self.clone();
        }
        match to {
            DType::F32 => Value::F32(with_array!(self, a => a.mapv(|v| v.to_f64() as f32))),
            DType::F64 => Value::F64(with_array!(self, a => a.mapv(|v| v.to_f64()))),
            DType::I64 => Value::I64(match self {
                Value::I64(a) => a.clone(),
                Value::U8(a) => a.mapv(i64::from),
                Value::Bool(a) => a.mapv(i64::from),
                Value::F32(a) => a.mapv(|v| v as i64),
                Value::F64(a) => a.mapv(|v| v as i64),
            }),
            DType::U8 => Value::U8(match self {
                Value::I64(a) => a.mapv(|v| v as u8),
                Value::U8(a) => a.clone(),
                Value::Bool(a) => a.mapv(u8::from),
                Value::F32(a) => a.mapv(|v| v as u8),
                Value::F64(a) => a.mapv(|v| v as u8),
            }),
            DType::Bool => Value::Bool(with_array!(self, a => a.mapv(|v| v.to_f64() != 0.0))),
        }
    }

    /// Whether every element is finite (integers and bools always are).
    pub fn all_finite(&self) -> bool {
        match self {
            // A fold rather than `all`, which stops early and so is not vectorized: the
            // evaluator checks every parameter once per pass (109 k values for the MNIST MLP).
            Value::F32(a) => a.iter().fold(true, |ok, v| ok & v.is_finite()),
            Value::F64(a) => a.iter().fold(true, |ok, v| ok & v.is_finite()),
            Value::I64(_) | Value::U8(_) | Value::Bool(_) => true,
        }
    }
}

macro_rules! impl_from_array {
    ($($t:ty => $variant:ident),*) => {
        $(impl From<ArrayD<$t>> for Value {
            fn from(a: ArrayD<$t>) -> Value {
                Value::$variant(a)
            }
        })*
    };
}
impl_from_array!(f32 => F32, f64 => F64, i64 => I64, u8 => U8, bool => Bool);

/// What kernels need of every element type: conversion to f64 (for casts) and wrapping
/// an array of it into a [`Value`].
pub trait Element: Copy + Clone + Debug + PartialOrd + 'static {
    fn to_f64(self) -> f64;
    fn wrap(a: ArrayD<Self>) -> Value;
}

impl Element for f32 {
    fn wrap(a: ArrayD<f32>) -> Value {
        Value::F32(a)
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
impl Element for f64 {
    fn wrap(a: ArrayD<f64>) -> Value {
        Value::F64(a)
    }
    fn to_f64(self) -> f64 {
        self
    }
}
impl Element for i64 {
    fn wrap(a: ArrayD<i64>) -> Value {
        Value::I64(a)
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Element for u8 {
    fn wrap(a: ArrayD<u8>) -> Value {
        Value::U8(a)
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
impl Element for bool {
    fn wrap(a: ArrayD<bool>) -> Value {
        Value::Bool(a)
    }
    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
}

/// The float element types, f32 and f64: the math every float kernel needs.
pub trait Float: Element + LinalgScalar + Neg<Output = Self> + Send + Sync {
    fn from_f64(v: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn tanh(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn is_nan(self) -> bool;
    fn neg_infinity() -> Self;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn neg_infinity() -> Self {
                <$t>::NEG_INFINITY
            }
        }
    };
}
impl_float!(f32);
impl_float!(f64);

/// The integer element types, i64 and u8. Arithmetic wraps on overflow, as in NumPy and
/// in the machine code the JIT emits.
pub trait Int: Element + Ord + Send + Sync {
    const ZERO: Self;
    const MIN: Self;
    fn wrapping_add(self, o: Self) -> Self;
    fn wrapping_sub(self, o: Self) -> Self;
    fn wrapping_mul(self, o: Self) -> Self;
    /// Division truncating toward zero; `MIN / -1` wraps to `MIN`. The divisor is non-zero.
    fn wrapping_div(self, o: Self) -> Self;
    fn wrapping_neg(self) -> Self;
    fn wrapping_abs(self) -> Self;
    /// -1, 0 or 1 (0 or 1 for unsigned types).
    fn signum(self) -> Self;
}

impl Int for i64 {
    const ZERO: i64 = 0;
    const MIN: i64 = i64::MIN;
    fn wrapping_add(self, o: i64) -> i64 {
        i64::wrapping_add(self, o)
    }
    fn wrapping_sub(self, o: i64) -> i64 {
        i64::wrapping_sub(self, o)
    }
    fn wrapping_mul(self, o: i64) -> i64 {
        i64::wrapping_mul(self, o)
    }
    fn wrapping_div(self, o: i64) -> i64 {
        i64::wrapping_div(self, o)
    }
    fn wrapping_neg(self) -> i64 {
        i64::wrapping_neg(self)
    }
    fn wrapping_abs(self) -> i64 {
        i64::wrapping_abs(self)
    }
    fn signum(self) -> i64 {
        i64::signum(self)
    }
}

impl Int for u8 {
    const ZERO: u8 = 0;
    const MIN: u8 = 0;
    fn wrapping_add(self, o: u8) -> u8 {
        u8::wrapping_add(self, o)
    }
    fn wrapping_sub(self, o: u8) -> u8 {
        u8::wrapping_sub(self, o)
    }
    fn wrapping_mul(self, o: u8) -> u8 {
        u8::wrapping_mul(self, o)
    }
    fn wrapping_div(self, o: u8) -> u8 {
        u8::wrapping_div(self, o)
    }
    fn wrapping_neg(self) -> u8 {
        u8::wrapping_neg(self)
    }
    fn wrapping_abs(self) -> u8 {
        self
    }
    fn signum(self) -> u8 {
        u8::from(self > 0)
    }
}
