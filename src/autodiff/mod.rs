//! Reverse-mode automatic differentiation as an IR → IR transform.
//!
//! [`grad`] appends to a copy of the forward graph the nodes that compute the gradient of
//! a scalar loss with respect to chosen parameters, built from each op's derivative rule
//! (`crate::ops::vjp`, or any [`VjpRules`] given to [`grad_with`]). `check` compares those
//! gradients with central finite differences through the reference interpreter.

pub mod check;
mod reverse;

pub use check::{
    GradCheckError, GradCheckOptions, GradCheckReport, ParamGradCheck, check_gradients, check_gradients_with,
};
pub use reverse::{GradError, OpRules, VjpRules, grad, grad_with};
