//! Learning-rate schedules: the learning rate as a function of the optimizer step.
//!
//! `step` counts completed optimizer steps from 0 (Keras' `iterations` before the update),
//! so `lr_at(0)` is the rate of the first update. Every schedule starts from a base rate
//! `lr`: the call's `lr` argument, or the optimizer's learning rate when it has none.
//!
//! - `constant()`: `lr`.
//! - `step_decay(step_size, gamma = 0.1)`: `lr · gamma^floor(step / step_size)`.
//! - `exponential_decay(decay_steps, decay_rate, staircase = false)`:
//!   `lr · decay_rate^(step / decay_steps)`, the exponent floored when `staircase`.
//! - `cosine_decay(decay_steps, alpha = 0, warmup_steps = 0)`: during warmup
//!   (`step < warmup_steps`) the rate rises linearly, `lr · (step + 1) / warmup_steps`, so
//!   the last warmup step reaches `lr`; then with `s = min(step - warmup_steps, decay_steps)`
//!   it is `lr · ((1 - alpha) · ½(1 + cos(π s / decay_steps)) + alpha)`, ending at `alpha · lr`.

use crate::runtime::optim::{ArgError, ArgValue, Args, check_callee};

const NAMES: &[&str] = &["constant", "step_decay", "exponential_decay", "cosine_decay"];

/// The schedule names the language accepts.
pub fn schedule_names() -> &'static [&'static str] {
    NAMES
}

/// The argument names schedule `name` accepts, or `None` for an unknown schedule.
pub fn schedule_args(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "constant" => Some(&["lr"]),
        "step_decay" => Some(&["lr", "step_size", "gamma"]),
        "exponential_decay" => Some(&["lr", "decay_steps", "decay_rate", "staircase"]),
        "cosine_decay" => Some(&["lr", "decay_steps", "alpha", "warmup_steps"]),
        _ => None,
    }
}

/// The shape of a schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleKind {
    Constant,
    StepDecay { step_size: u64, gamma: f64 },
    ExponentialDecay { decay_steps: u64, decay_rate: f64, staircase: bool },
    CosineDecay { decay_steps: u64, alpha: f64, warmup_steps: u64 },
}

/// A learning-rate schedule from a base rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub lr: f64,
    pub kind: ScheduleKind,
}

impl Schedule {
    pub fn constant(lr: f32) -> Schedule {
        Schedule { lr: lr as f64, kind: ScheduleKind::Constant }
    }

    /// Builds a schedule from a call such as `cosine_decay(decay_steps: 1000)`; without an
    /// `lr` argument the base rate is `default_lr` (the optimizer's).
    pub fn from_call(name: &str, args: &[(String, ArgValue)], default_lr: f32) -> Result<Schedule, ArgError> {
        check_callee("schedule", name, NAMES)?;
        let a = Args::new(name, args, schedule_args(name).unwrap_or(&[]))?;
        let lr = a.float_in("lr", default_lr as f64, 0.0, f64::MAX, true)?;
        let kind = match name {
            "constant" => ScheduleKind::Constant,
            "step_decay" => ScheduleKind::StepDecay {
                step_size: a.required_positive_count("step_size")?,
                gamma: a.float_in("gamma", 0.1, 0.0, f64::MAX, true)?,
            },
            "exponential_decay" => {
                let decay_steps = a.required_positive_count("decay_steps")?;
                a.require("decay_rate")?;
                let decay_rate = a.positive("decay_rate")?.unwrap_or(1.0);
                ScheduleKind::ExponentialDecay {
                    decay_steps,
                    decay_rate,
                    staircase: a.bool("staircase", false)?,
                }
            }
            _ => ScheduleKind::CosineDecay {
                decay_steps: a.required_positive_count("decay_steps")?,
                alpha: a.float_in("alpha", 0.0, 0.0, 1.0, true)?,
                warmup_steps: a.count("warmup_steps", 0)?,
            },
        };
        Ok(Schedule { lr, kind })
    }

    /// The learning rate of the update made after `step` completed steps.
    pub fn lr_at(&self, step: u64) -> f32 {
        let lr = self.lr;
        let rate = match self.kind {
            ScheduleKind::Constant => lr,
            ScheduleKind::StepDecay { step_size, gamma } => {
                let k = (step / step_size).min(i32::MAX as u64) as i32;
                lr * gamma.powi(k)
            }
            ScheduleKind::ExponentialDecay { decay_steps, decay_rate, staircase } => {
                let mut e = step as f64 / decay_steps as f64;
                if staircase {
                    e = e.floor();
                }
                lr * decay_rate.powf(e)
            }
            ScheduleKind::CosineDecay { decay_steps, alpha, warmup_steps } => {
                if step < warmup_steps {
                    lr * (step + 1) as f64 / warmup_steps as f64
                } else {
                    let s = (step - warmup_steps).min(decay_steps) as f64;
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * s / decay_steps as f64).cos());
                    lr * ((1.0 - alpha) * cosine + alpha)
                }
            }
        };
        rate as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, list: &[(&str, ArgValue)]) -> Result<Schedule, ArgError> {
        let args: Vec<(String, ArgValue)> = list.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        Schedule::from_call(name, &args, 0.1)
    }

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() <= 1e-6 * b.abs().max(1e-3)
    }

    #[test]
    fn constant_is_constant_and_takes_the_optimizer_rate() {
        let s = call("constant", &[]).expect("valid");
        assert!([0, 1, 1000].iter().all(|&t| s.lr_at(t) == 0.1));
        assert_eq!(Schedule::constant(0.5).lr_at(99), 0.5);
    }

    #[test]
    fn step_decay_multiplies_every_step_size_steps() {
        let s = call("step_decay", &[("step_size", ArgValue::Int(10)), ("gamma", ArgValue::Float(0.5))])
            .expect("valid");
        // Repeated multiplication, as the definition reads.
        let mut want = 0.1f64;
        for t in 0..45u64 {
            if t > 0 && t % 10 == 0 {
                want *= 0.5;
            }
            assert!(close(s.lr_at(t), want), "step {t}: {} vs {want}", s.lr_at(t));
        }
    }

    #[test]
    fn exponential_decay_smooth_and_staircase() {
        let args = [
            ("lr", ArgValue::Float(1.0)),
            ("decay_steps", ArgValue::Int(100)),
            ("decay_rate", ArgValue::Float(0.5)),
        ];
        let s = call("exponential_decay", &args).expect("valid");
        assert!(close(s.lr_at(0), 1.0) && close(s.lr_at(100), 0.5) && close(s.lr_at(200), 0.25));
        // Halfway through a period the smooth form is 1/√2 of the period start.
        assert!(close(s.lr_at(150), 0.5 * 0.5f64.sqrt()));
        let mut stair = args.to_vec();
        stair.push(("staircase", ArgValue::Bool(true)));
        let s = call("exponential_decay", &stair).expect("valid");
        assert!(close(s.lr_at(199), 0.5) && close(s.lr_at(200), 0.25));
    }

    #[test]
    fn cosine_decay_warms_up_then_falls_to_alpha() {
        let args = [
            ("lr", ArgValue::Float(1.0)),
            ("decay_steps", ArgValue::Int(100)),
            ("alpha", ArgValue::Float(0.1)),
            ("warmup_steps", ArgValue::Int(4)),
        ];
        let s = call("cosine_decay", &args).expect("valid");
        let warm: Vec<f32> = (0..4).map(|t| s.lr_at(t)).collect();
        assert_eq!(warm, vec![0.25, 0.5, 0.75, 1.0]);
        assert!(close(s.lr_at(4), 1.0));
        // Halfway the cosine term is ½: 0.9·0.5 + 0.1.
        assert!(close(s.lr_at(54), 0.55));
        assert!(close(s.lr_at(104), 0.1) && close(s.lr_at(10_000), 0.1));
        let falling: Vec<f32> = (4..105).map(|t| s.lr_at(t)).collect();
        assert!(falling.windows(2).all(|w| w[1] <= w[0]), "decay must not rise");
    }

    #[test]
    fn missing_and_unknown_arguments_are_errors() {
        assert!(matches!(call("step_decay", &[]), Err(ArgError::Missing { .. })));
        let no_rate = [("decay_steps", ArgValue::Int(5))];
        assert!(matches!(call("exponential_decay", &no_rate), Err(ArgError::Missing { .. })));
        assert!(call("cosine_decay", &[("decay_steps", ArgValue::Int(0))]).is_err());
        let e = call("linear", &[]).unwrap_err();
        assert!(e.to_string().contains("cosine_decay"), "{e}");
        for name in schedule_names() {
            assert!(schedule_args(name).is_some());
        }
    }
}
