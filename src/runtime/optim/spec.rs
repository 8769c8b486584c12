//! Optimizer specs: what `SGD(...)`, `Adam(...)` and `RMSprop(...)` in a `.dnn` file mean,
//! with Keras' defaults, checked argument by argument.
//!
//! Weight decay comes in two kinds: `weight_decay` is decoupled (AdamW, and Keras 3's
//! `weight_decay` on every optimizer): before the update, `p -= lr * weight_decay * p`.
//! `l2` is the classic penalty added into the gradient (PyTorch's `weight_decay`):
//! `g += l2 * p`, applied after clipping. At most one of `clipnorm`, `clipvalue` and
//! `global_clipnorm` is set, as in Keras.

use super::args::{ArgError, ArgValue, Args, check_callee};

const SGD_ARGS: &[&str] =
    &["lr", "momentum", "nesterov", "weight_decay", "l2", "clipnorm", "clipvalue", "global_clipnorm"];
const ADAM_ARGS: &[&str] =
    &["lr", "beta1", "beta2", "epsilon", "weight_decay", "l2", "clipnorm", "clipvalue", "global_clipnorm"];
const RMSPROP_ARGS: &[&str] = &[
    "lr",
    "rho",
    "momentum",
    "epsilon",
    "centered",
    "weight_decay",
    "l2",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
];
const NAMES: &[&str] = &["SGD", "Adam", "RMSprop"];

/// The optimizer names the language accepts, spelled as written in source.
pub fn optimizer_names() -> &'static [&'static str] {
    NAMES
}

/// The argument names optimizer `name` accepts, or `None` for an unknown optimizer.
pub fn optimizer_args(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "SGD" => Some(SGD_ARGS),
        "Adam" => Some(ADAM_ARGS),
        "RMSprop" => Some(RMSPROP_ARGS),
        _ => None,
    }
}

/// The update rule and its hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd { momentum: f32, nesterov: bool },
    Adam { beta1: f32, beta2: f32, epsilon: f32 },
    RmsProp { rho: f32, momentum: f32, epsilon: f32, centered: bool },
}

impl OptimizerKind {
    /// The rule's name as the language spells its optimizer.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "SGD",
            OptimizerKind::Adam { .. } => "Adam",
            OptimizerKind::RmsProp { .. } => "RMSprop",
        }
    }
}

/// How gradients are clipped before the update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clipping {
    None,
    /// Every element clamped into `[-v, v]`.
    Value(f32),
    /// Each tensor scaled down to L2 norm at most `n`.
    Norm(f32),
    /// All tensors scaled by one factor to a global L2 norm at most `n`.
    GlobalNorm(f32),
}

/// A fully checked optimizer configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerSpec {
    /// The name as written: `SGD`, `Adam` or `RMSprop`.
    pub name: String,
    pub kind: OptimizerKind,
    /// The base learning rate; a schedule may vary it step by step.
    pub lr: f32,
    /// Decoupled weight decay (0 = off).
    pub weight_decay: f32,
    /// L2 penalty added into the gradient (0 = off).
    pub l2: f32,
    pub clipping: Clipping,
}

impl OptimizerSpec {
    /// Builds a spec from a call such as `Adam(lr: 1e-3, beta1: 0.5)`; unset arguments take
    /// Keras' defaults (SGD lr 0.01; Adam and RMSprop lr 0.001, epsilon 1e-7).
    pub fn from_call(name: &str, args: &[(String, ArgValue)]) -> Result<OptimizerSpec, ArgError> {
        check_callee("optimizer", name, NAMES)?;
        let valid = optimizer_args(name).unwrap_or(&[]);
        let a = Args::new(name, args, valid)?;
        let (kind, default_lr) = match name {
            "SGD" => {
                let momentum = a.float_in("momentum", 0.0, 0.0, 1.0, false)? as f32;
                (OptimizerKind::Sgd { momentum, nesterov: a.bool("nesterov", false)? }, 0.01)
            }
            "Adam" => {
                let beta1 = a.float_in("beta1", 0.9, 0.0, 1.0, false)? as f32;
                let beta2 = a.float_in("beta2", 0.999, 0.0, 1.0, false)? as f32;
                let epsilon = a.positive("epsilon")?.unwrap_or(1e-7) as f32;
                (OptimizerKind::Adam { beta1, beta2, epsilon }, 0.001)
            }
            _ => {
                let rho = a.float_in("rho", 0.9, 0.0, 1.0, false)? as f32;
                let momentum = a.float_in("momentum", 0.0, 0.0, 1.0, false)? as f32;
                let epsilon = a.positive("epsilon")?.unwrap_or(1e-7) as f32;
                let centered = a.bool("centered", false)?;
                (OptimizerKind::RmsProp { rho, momentum, epsilon, centered }, 0.001)
            }
        };
        let lr = a.float("lr", default_lr)?;
        if lr < 0.0 {
            return Err(a.bad("lr", format!("{lr} is negative")));
        }
        let weight_decay = a.float_in("weight_decay", 0.0, 0.0, f64::MAX, true)? as f32;
        let l2 = a.float_in("l2", 0.0, 0.0, f64::MAX, true)? as f32;
        let clips = ["clipnorm", "clipvalue", "global_clipnorm"];
        if clips.iter().filter(|c| a.is_set(c)).count() > 1 {
            let args = clips.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
            return Err(ArgError::Exclusive { callee: name.to_string(), args });
        }
        let clipping = if let Some(n) = a.positive("clipnorm")? {
            Clipping::Norm(n as f32)
        } else if let Some(v) = a.positive("clipvalue")? {
            Clipping::Value(v as f32)
        } else if let Some(n) = a.positive("global_clipnorm")? {
            Clipping::GlobalNorm(n as f32)
        } else {
            Clipping::None
        };
        Ok(OptimizerSpec { name: name.to_string(), kind, lr: lr as f32, weight_decay, l2, clipping })
    }

    /// The names of the per-parameter state tensors this optimizer keeps, in order.
    pub fn slot_names(&self) -> Vec<&'static str> {
        match self.kind {
            OptimizerKind::Sgd { momentum, .. } => {
                if momentum > 0.0 {
                    vec!["momentum"]
                } else {
                    vec![]
                }
            }
            OptimizerKind::Adam { .. } => vec!["m", "v"],
            OptimizerKind::RmsProp { momentum, centered, .. } => {
                let mut slots = vec!["velocity"];
                if momentum > 0.0 {
                    slots.push("momentum");
                }
                if centered {
                    slots.push("average_grad");
                }
                slots
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, list: &[(&str, ArgValue)]) -> Result<OptimizerSpec, ArgError> {
        let args: Vec<(String, ArgValue)> = list.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        OptimizerSpec::from_call(name, &args)
    }

    #[test]
    fn defaults_are_keras_defaults() {
        let adam = call("Adam", &[]).expect("valid");
        assert_eq!(adam.lr, 0.001);
        assert_eq!(adam.kind, OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
        assert_eq!(call("SGD", &[]).expect("valid").lr, 0.01);
        assert_eq!(adam.clipping, Clipping::None);
    }

    #[test]
    fn arguments_override_defaults() {
        let s =
            call("Adam", &[("lr", ArgValue::Float(2e-4)), ("beta1", ArgValue::Float(0.5))]).expect("valid");
        assert_eq!(s.lr, 2e-4);
        assert!(matches!(s.kind, OptimizerKind::Adam { beta1: 0.5, .. }));
        let r = call("RMSprop", &[("centered", ArgValue::Bool(true)), ("momentum", ArgValue::Float(0.9))])
            .expect("valid");
        assert_eq!(r.slot_names(), vec!["velocity", "momentum", "average_grad"]);
        let c = call("SGD", &[("global_clipnorm", ArgValue::Int(1))]).expect("valid");
        assert_eq!(c.clipping, Clipping::GlobalNorm(1.0));
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let e = call("adam", &[]).unwrap_err();
        assert!(e.to_string().contains("SGD, Adam, RMSprop"), "{e}");
        let e = call("SGD", &[("beta1", ArgValue::Float(0.9))]).unwrap_err();
        assert!(e.to_string().contains("`beta1`") && e.to_string().contains("nesterov"), "{e}");
    }

    #[test]
    fn bad_values_and_conflicts_are_errors() {
        assert!(call("Adam", &[("beta1", ArgValue::Float(1.0))]).is_err());
        assert!(call("Adam", &[("lr", ArgValue::Float(-1.0))]).is_err());
        assert!(call("Adam", &[("epsilon", ArgValue::Float(0.0))]).is_err());
        assert!(call("SGD", &[("nesterov", ArgValue::Str("yes".into()))]).is_err());
        let both = [("clipnorm", ArgValue::Float(1.0)), ("clipvalue", ArgValue::Float(1.0))];
        assert!(matches!(call("SGD", &both), Err(ArgError::Exclusive { .. })));
    }

    #[test]
    fn the_exported_tables_agree_with_parsing() {
        for name in optimizer_names() {
            let valid = optimizer_args(name).expect("every listed optimizer has arguments");
            assert!(valid.contains(&"lr"));
            assert!(call(name, &[]).is_ok());
        }
        assert_eq!(optimizer_args("Adagrad"), None);
    }
}
