//! Named call arguments as the language gives them (`Adam(lr: 1e-3, beta1: 0.5)`), and the
//! checked reading of them that optimizer and schedule specs share.
//!
//! Invariant: a reader only hands out arguments whose name is in its list of valid names;
//! an unknown or repeated name, or a value of the wrong type, is an [`ArgError`] that
//! names the callee and lists what is valid, ready for the front end to turn into a
//! diagnostic.

/// A literal argument value.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(String),
}

impl ArgValue {
    fn type_name(&self) -> &'static str {
        match self {
            ArgValue::Float(_) => "a float",
            ArgValue::Int(_) => "an integer",
            ArgValue::Bool(_) => "a bool",
            ArgValue::Str(_) => "a string",
        }
    }
}

/// A bad argument list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgError {
    #[error("unknown {what} `{name}`; valid names are: {valid}")]
    UnknownCallee { what: &'static str, name: String, valid: String },
    #[error("`{callee}` has no argument `{arg}`; valid arguments are: {valid}")]
    UnknownArg { callee: String, arg: String, valid: String },
    #[error("argument `{arg}` of `{callee}` is given twice")]
    Duplicate { callee: String, arg: String },
    #[error("argument `{arg}` of `{callee}` must be {expected}, got {got}")]
    WrongType { callee: String, arg: String, expected: &'static str, got: &'static str },
    #[error("argument `{arg}` of `{callee}` is invalid: {reason}")]
    BadValue { callee: String, arg: String, reason: String },
    #[error("`{callee}` needs the argument `{arg}`")]
    Missing { callee: String, arg: String },
    #[error("`{callee}` takes at most one of {args}")]
    Exclusive { callee: String, args: String },
}

/// Looks up `name` in `valid`, or says which names are valid.
pub(crate) fn check_callee<'v>(what: &'static str, name: &str, valid: &'v [&'v str]) -> Result<(), ArgError> {
    if valid.contains(&name) {
        Ok(())
    } else {
        Err(ArgError::UnknownCallee { what, name: name.to_string(), valid: valid.join(", ") })
    }
}

/// Checked access to the arguments of one call.
pub(crate) struct Args<'a> {
    callee: &'a str,
    args: &'a [(String, ArgValue)],
}

impl<'a> Args<'a> {
    /// Rejects unknown and repeated names up front, so later lookups need not.
    pub(crate) fn new(
        callee: &'a str,
        args: &'a [(String, ArgValue)],
        valid: &[&str],
    ) -> Result<Self, ArgError> {
        for (i, (name, _)) in args.iter().enumerate() {
            if !valid.contains(&name.as_str()) {
                return Err(ArgError::UnknownArg {
                    callee: callee.to_string(),
                    arg: name.clone(),
                    valid: valid.join(", "),
                });
            }
            if args[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(ArgError::Duplicate { callee: callee.to_string(), arg: name.clone() });
            }
        }
        Ok(Args { callee, args })
    }

    fn get(&self, name: &str) -> Option<&'a ArgValue> {
        self.args.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn bad(&self, arg: &str, reason: String) -> ArgError {
        ArgError::BadValue { callee: self.callee.to_string(), arg: arg.to_string(), reason }
    }

    fn wrong(&self, arg: &str, expected: &'static str, got: &ArgValue) -> ArgError {
        ArgError::WrongType {
            callee: self.callee.to_string(),
            arg: arg.to_string(),
            expected,
            got: got.type_name(),
        }
    }

    /// A float (an integer literal is accepted too), which must be finite.
    pub(crate) fn float(&self, name: &str, default: f64) -> Result<f64, ArgError> {
        let value = match self.get(name) {
            None => return Ok(default),
            Some(ArgValue::Float(v)) => *v,
            Some(ArgValue::Int(v)) => *v as f64,
            Some(other) => return Err(self.wrong(name, "a number", other)),
        };
        if value.is_finite() { Ok(value) } else { Err(self.bad(name, format!("{value} is not finite"))) }
    }

    /// A float in `[low, high)` (`high_inclusive` widens it to `[low, high]`).
    pub(crate) fn float_in(
        &self,
        name: &str,
        default: f64,
        low: f64,
        high: f64,
        high_inclusive: bool,
    ) -> Result<f64, ArgError> {
        let v = self.float(name, default)?;
        let in_range = v >= low && (v < high || (high_inclusive && v == high));
        if in_range {
            Ok(v)
        } else {
            let close = if high_inclusive { "]" } else { ")" };
            Err(self.bad(name, format!("{v} is outside [{low}, {high}{close}")))
        }
    }

    /// A float that must be strictly positive, or `None` when not given.
    pub(crate) fn positive(&self, name: &str) -> Result<Option<f64>, ArgError> {
        if !self.is_set(name) {
            return Ok(None);
        }
        let v = self.float(name, 0.0)?;
        if v > 0.0 { Ok(Some(v)) } else { Err(self.bad(name, format!("{v} must be greater than 0"))) }
    }

    /// An error unless argument `name` is given.
    pub(crate) fn require(&self, name: &str) -> Result<(), ArgError> {
        if self.is_set(name) {
            Ok(())
        } else {
            Err(ArgError::Missing { callee: self.callee.to_string(), arg: name.to_string() })
        }
    }

    /// A positive integer that must be given.
    pub(crate) fn required_positive_count(&self, name: &str) -> Result<u64, ArgError> {
        self.require(name)?;
        match self.count(name, 0)? {
            0 => Err(self.bad(name, "0 must be greater than 0".to_string())),
            n => Ok(n),
        }
    }

    /// A non-negative integer.
    pub(crate) fn count(&self, name: &str, default: u64) -> Result<u64, ArgError> {
        match self.get(name) {
            None => Ok(default),
            Some(ArgValue::Int(v)) => {
                u64::try_from(*v).map_err(|_| self.bad(name, format!("{v} must not be negative")))
            }
            Some(other) => Err(self.wrong(name, "an integer", other)),
        }
    }

    pub(crate) fn bool(&self, name: &str, default: bool) -> Result<bool, ArgError> {
        match self.get(name) {
            None => Ok(default),
            Some(ArgValue::Bool(v)) => Ok(*v),
            Some(other) => Err(self.wrong(name, "a bool", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[(&str, ArgValue)]) -> Vec<(String, ArgValue)> {
        list.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
    }

    #[test]
    fn unknown_and_duplicate_names_are_rejected() {
        let a = args(&[("lr", ArgValue::Float(0.1)), ("lrr", ArgValue::Float(0.1))]);
        match Args::new("SGD", &a, &["lr", "momentum"]) {
            Err(ArgError::UnknownArg { arg, valid, .. }) => {
                assert_eq!(arg, "lrr");
                assert_eq!(valid, "lr, momentum");
            }
            other => panic!("expected an unknown-argument error, got {:?}", other.err()),
        }
        let a = args(&[("lr", ArgValue::Float(0.1)), ("lr", ArgValue::Float(0.2))]);
        assert!(matches!(Args::new("SGD", &a, &["lr"]), Err(ArgError::Duplicate { .. })));
    }

    #[test]
    fn values_are_type_and_range_checked() {
        let a = args(&[("lr", ArgValue::Int(1)), ("nesterov", ArgValue::Float(1.0))]);
        let r = Args::new("SGD", &a, &["lr", "nesterov", "momentum"]).expect("known names");
        assert_eq!(r.float("lr", 0.01), Ok(1.0));
        assert_eq!(r.float("momentum", 0.5), Ok(0.5));
        assert!(matches!(r.bool("nesterov", false), Err(ArgError::WrongType { .. })));
        assert!(r.float_in("lr", 0.0, 0.0, 1.0, false).is_err());
        assert_eq!(r.float_in("lr", 0.0, 0.0, 1.0, true), Ok(1.0));
    }
}
