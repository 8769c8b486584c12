//! Streaming metrics: accumulators fed batch by batch with `update(y_true, y_pred)`,
//! read with `result()`.
//!
//! Classification metrics first turn each example into a (true class, predicted class)
//! pair: binary predictions are thresholded (0.5 on probabilities, 0 on logits) against
//! labels 0/1; categorical ones compare the argmax of the prediction with the argmax of a
//! one-hot label; sparse ones compare it with an integer label. Ties in an argmax go to
//! the first index. Precision, recall and F1 are those of class 1 for binary labels and
//! macro-averaged over all classes otherwise, a class with a zero denominator counting 0
//! (as Keras and scikit-learn do). An accumulator with no data reports 0.

use std::fmt;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

/// Labels as a batch provides them.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelArray {
    I64(ArrayD<i64>),
    F32(ArrayD<f32>),
}

impl LabelArray {
    /// The labels borrowed, as `Metric::update_view` takes them.
    pub fn view(&self) -> Labels<'_> {
        match self {
            LabelArray::I64(a) => Labels::I64(a.view()),
            LabelArray::F32(a) => Labels::F32(a.view()),
        }
    }
}

/// Borrowed labels: a training step's batch lends its own, so that updating a metric
/// copies and allocates nothing.
#[derive(Clone, Debug)]
pub enum Labels<'a> {
    I64(ArrayViewD<'a, i64>),
    F32(ArrayViewD<'a, f32>),
}

impl Labels<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Labels::I64(a) => a.shape(),
            Labels::F32(a) => a.shape(),
        }
    }

    fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Every label as f64, in logical order.
    fn values(&self) -> LabelValues<'_> {
        match self {
            Labels::I64(a) => LabelValues::I64(a.iter()),
            Labels::F32(a) => LabelValues::F32(a.iter()),
        }
    }
}

/// The iterator of `Labels::values` (an enum rather than a box: no allocation).
enum LabelValues<'a> {
    I64(ndarray::iter::Iter<'a, i64, IxDyn>),
    F32(ndarray::iter::Iter<'a, f32, IxDyn>),
}

impl Iterator for LabelValues<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        match self {
            LabelValues::I64(it) => it.next().map(|&v| v as f64),
            LabelValues::F32(it) => it.next().map(|&v| f64::from(v)),
        }
    }
}

/// What the labels are, as the loss says: it picks what `accuracy` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    Binary,
    Categorical,
    Sparse,
    Regression,
}

/// How predictions and labels become classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassMode {
    Binary { from_logits: bool },
    Categorical,
    Sparse,
}

/// A checked metric choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricSpec {
    Accuracy(ClassMode),
    Precision(ClassMode),
    Recall(ClassMode),
    F1(ClassMode),
    ConfusionMatrix(ClassMode),
    Mae,
    Mse,
}

const NAMES: &[&str] = &[
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "precision",
    "recall",
    "f1",
    "confusion_matrix",
    "mae",
    "mse",
];

/// The metric names the language accepts.
pub fn metric_names() -> &'static [&'static str] {
    NAMES
}

/// A bad metric name or a batch a metric cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("unknown metric `{name}`; valid names are: {valid}")]
    Unknown { name: String, valid: String },
    #[error("metric `{0}` needs class labels, but the loss is a regression loss")]
    NeedsClasses(String),
    #[error(
        "metric `{metric}`: labels of shape {y_true:?} do not fit predictions of shape {y_pred:?}: {reason}"
    )]
    Shape { metric: String, y_true: Vec<usize>, y_pred: Vec<usize>, reason: String },
    #[error("metric `{metric}`: label {value} is invalid: {reason}")]
    BadLabel { metric: String, value: f64, reason: String },
}

impl MetricSpec {
    /// The metric called `name`; `labels` and `from_logits` come from the loss.
    pub fn from_name(name: &str, labels: LabelKind, from_logits: bool) -> Result<MetricSpec, MetricError> {
        let mode = match labels {
            LabelKind::Binary => Some(ClassMode::Binary { from_logits }),
            LabelKind::Categorical => Some(ClassMode::Categorical),
            LabelKind::Sparse => Some(ClassMode::Sparse),
            LabelKind::Regression => None,
        };
        let classes = || mode.ok_or_else(|| MetricError::NeedsClasses(name.to_string()));
        Ok(match name {
            "accuracy" => MetricSpec::Accuracy(classes()?),
            "binary_accuracy" => MetricSpec::Accuracy(ClassMode::Binary { from_logits }),
            "categorical_accuracy" => MetricSpec::Accuracy(ClassMode::Categorical),
            "sparse_categorical_accuracy" => MetricSpec::Accuracy(ClassMode::Sparse),
            "precision" => MetricSpec::Precision(classes()?),
            "recall" => MetricSpec::Recall(classes()?),
            "f1" => MetricSpec::F1(classes()?),
            "confusion_matrix" => MetricSpec::ConfusionMatrix(classes()?),
            "mae" => MetricSpec::Mae,
            "mse" => MetricSpec::Mse,
            _ => return Err(MetricError::Unknown { name: name.to_string(), valid: NAMES.join(", ") }),
        })
    }
}

/// Counts of (true class, predicted class) pairs; rows are true classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> ConfusionMatrix {
        ConfusionMatrix { classes, counts: vec![0; classes * classes] }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many examples of true class `t` were predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.classes + p]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn add(&mut self, t: usize, p: usize) {
        self.counts[t * self.classes + p] += 1;
    }

    fn ratio(num: u64, den: u64) -> f64 {
        if den == 0 { 0.0 } else { num as f64 / den as f64 }
    }

    pub fn precision(&self, c: usize) -> f64 {
        Self::ratio(self.get(c, c), (0..self.classes).map(|t| self.get(t, c)).sum())
    }

    pub fn recall(&self, c: usize) -> f64 {
        Self::ratio(self.get(c, c), (0..self.classes).map(|p| self.get(c, p)).sum())
    }

    pub fn f1(&self, c: usize) -> f64 {
        let (p, r) = (self.precision(c), self.recall(c));
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }

    pub fn accuracy(&self) -> f64 {
        Self::ratio((0..self.classes).map(|c| self.get(c, c)).sum(), self.total())
    }
}

/// A plain-text table: a header row of predicted classes, one row per true class.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let corner = "true\\pred";
        let widest = self.counts.iter().map(|c| c.to_string().len()).max().unwrap_or(1);
        let width = widest.max(self.classes.saturating_sub(1).to_string().len());
        write!(f, "{corner}")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f)?;
        for t in 0..self.classes {
            write!(f, "{t:>w$}", w = corner.len())?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.get(t, p))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A metric's current value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    Scalar(f64),
    Matrix(ConfusionMatrix),
}

impl MetricValue {
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            MetricValue::Scalar(v) => Some(*v),
            MetricValue::Matrix(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
enum State {
    Correct { correct: u64, total: u64 },
    Confusion(Option<ConfusionMatrix>),
    Error { sum: f64, count: u64 },
}

/// A streaming accumulator for one metric.
#[derive(Clone, Debug)]
pub struct Metric {
    name: String,
    spec: MetricSpec,
    state: State,
}

impl Metric {
    /// An empty accumulator; `name` is how results are labelled (`accuracy`).
    pub fn new(name: &str, spec: MetricSpec) -> Metric {
        let mut m = Metric { name: name.to_string(), spec, state: State::Correct { correct: 0, total: 0 } };
        m.reset();
        m
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> MetricSpec {
        self.spec
    }

    /// Forgets every batch seen (at the start of an epoch).
    pub fn reset(&mut self) {
        self.state = match self.spec {
            MetricSpec::Accuracy(_) => State::Correct { correct: 0, total: 0 },
            MetricSpec::Mae | MetricSpec::Mse => State::Error { sum: 0.0, count: 0 },
            _ => State::Confusion(None),
        };
    }

    /// Adds one batch.
    pub fn update(&mut self, y_true: &LabelArray, y_pred: &ArrayD<f32>) -> Result<(), MetricError> {
        self.update_view(y_true.view(), y_pred.view())
    }

    /// Adds one batch, borrowed: checks it whole, then counts it without allocating.
    pub fn update_view(
        &mut self,
        y_true: Labels<'_>,
        y_pred: ArrayViewD<'_, f32>,
    ) -> Result<(), MetricError> {
        let mode = match self.spec {
            MetricSpec::Accuracy(m)
            | MetricSpec::Precision(m)
            | MetricSpec::Recall(m)
            | MetricSpec::F1(m)
            | MetricSpec::ConfusionMatrix(m) => m,
            MetricSpec::Mae | MetricSpec::Mse => return self.add_errors(&y_true, &y_pred),
        };
        let classes = self.check_classes(mode, &y_true, &y_pred)?;
        match &mut self.state {
            State::Correct { correct, total } => for_each_pair(mode, &y_true, &y_pred, |t, p| {
                *correct += u64::from(t == p);
                *total += 1;
            }),
            State::Confusion(matrix) => {
                let m = matrix.get_or_insert_with(|| ConfusionMatrix::new(classes));
                if m.classes() != classes {
                    let reason = format!("earlier batches had {} classes, this one {classes}", m.classes());
                    return Err(self.shape_error(&y_true, &y_pred, reason));
                }
                for_each_pair(mode, &y_true, &y_pred, |t, p| m.add(t, p));
            }
            State::Error { .. } => {}
        }
        Ok(())
    }

    /// MAE and MSE: the sum of the batch's errors.
    fn add_errors(&mut self, y_true: &Labels<'_>, y_pred: &ArrayViewD<'_, f32>) -> Result<(), MetricError> {
        if y_true.len() != y_pred.len() {
            return Err(self.shape_error(y_true, y_pred, "they have different sizes".into()));
        }
        let squared = self.spec == MetricSpec::Mse;
        let add: f64 = y_true
            .values()
            .zip(y_pred.iter())
            .map(|(t, &p)| if squared { (f64::from(p) - t).powi(2) } else { (f64::from(p) - t).abs() })
            .sum();
        if let State::Error { sum, count } = &mut self.state {
            *sum += add;
            *count += y_true.len() as u64;
        }
        Ok(())
    }

    fn shape_error(&self, y_true: &Labels<'_>, y_pred: &ArrayViewD<'_, f32>, reason: String) -> MetricError {
        let (y_true, y_pred) = (y_true.shape().to_vec(), y_pred.shape().to_vec());
        MetricError::Shape { metric: self.name.clone(), y_true, y_pred, reason }
    }

    fn bad_label(&self, value: f64, reason: String) -> MetricError {
        MetricError::BadLabel { metric: self.name.clone(), value, reason }
    }

    /// The number of classes, once every label and shape of the batch is checked: a bad
    /// batch changes no count.
    fn check_classes(
        &self,
        mode: ClassMode,
        y_true: &Labels<'_>,
        y_pred: &ArrayViewD<'_, f32>,
    ) -> Result<usize, MetricError> {
        if let ClassMode::Binary { .. } = mode {
            if y_true.len() != y_pred.len() {
                return Err(self.shape_error(y_true, y_pred, "they have different sizes".into()));
            }
            let integer = matches!(y_true, Labels::I64(_));
            if let Some(t) = y_true.values().find(|&t| integer && t != 0.0 && t != 1.0) {
                return Err(self.bad_label(t, "binary labels are 0 or 1".into()));
            }
            return Ok(2);
        }
        let classes = match y_pred.shape().last() {
            Some(&c) if c > 0 => c,
            _ => return Err(self.shape_error(y_true, y_pred, "predictions need a class axis".into())),
        };
        if mode == ClassMode::Categorical {
            if y_true.shape() != y_pred.shape() {
                let reason = "one-hot labels have the predictions' shape".into();
                return Err(self.shape_error(y_true, y_pred, reason));
            }
            return Ok(classes);
        }
        if y_true.len() != y_pred.len() / classes {
            let reason = format!("expected one integer label per row of {classes} scores");
            return Err(self.shape_error(y_true, y_pred, reason));
        }
        let bad = |t: f64| t.fract() != 0.0 || t < 0.0 || t >= classes as f64;
        if let Some(t) = y_true.values().find(|&t| bad(t)) {
            return Err(self.bad_label(t, format!("class labels are integers in 0..{classes}")));
        }
        Ok(classes)
    }

    /// The value over every batch since the last reset.
    pub fn result(&self) -> MetricValue {
        let scalar = match (&self.state, self.spec) {
            (State::Correct { correct, total }, _) => ConfusionMatrix::ratio(*correct, *total),
            (State::Error { sum, count }, _) => {
                if *count == 0 {
                    0.0
                } else {
                    sum / *count as f64
                }
            }
            (State::Confusion(m), spec) => {
                let per_class: fn(&ConfusionMatrix, usize) -> f64 = match spec {
                    MetricSpec::Precision(_) => ConfusionMatrix::precision,
                    MetricSpec::Recall(_) => ConfusionMatrix::recall,
                    MetricSpec::F1(_) => ConfusionMatrix::f1,
                    _ => return MetricValue::Matrix(m.clone().unwrap_or_else(|| ConfusionMatrix::new(0))),
                };
                let binary = matches!(
                    spec,
                    MetricSpec::Precision(ClassMode::Binary { .. })
                        | MetricSpec::Recall(ClassMode::Binary { .. })
                        | MetricSpec::F1(ClassMode::Binary { .. })
                );
                match m {
                    Some(m) if m.classes() > 0 && binary => per_class(m, 1),
                    Some(m) if m.classes() > 0 => {
                        (0..m.classes()).map(|c| per_class(m, c)).sum::<f64>() / m.classes() as f64
                    }
                    _ => 0.0,
                }
            }
        };
        MetricValue::Scalar(scalar)
    }
}

/// The (true class, predicted class) of every example of a checked batch, in order.
fn for_each_pair(
    mode: ClassMode,
    y_true: &Labels<'_>,
    y_pred: &ArrayViewD<'_, f32>,
    mut f: impl FnMut(usize, usize),
) {
    let class_axis = Axis(y_pred.ndim().saturating_sub(1));
    match (mode, y_true) {
        (ClassMode::Binary { from_logits }, _) => {
            let threshold = if from_logits { 0.0 } else { 0.5 };
            let float_labels = matches!(y_true, Labels::F32(_));
            for (t, &p) in y_true.values().zip(y_pred.iter()) {
                let t = if float_labels { usize::from(t > 0.5) } else { t as usize };
                f(t, usize::from(p > threshold));
            }
        }
        (ClassMode::Categorical, Labels::F32(t)) => {
            for (t, p) in t.lanes(class_axis).into_iter().zip(y_pred.lanes(class_axis)) {
                f(argmax(t.iter().copied()), argmax(p.iter().copied()));
            }
        }
        (ClassMode::Categorical, Labels::I64(t)) => {
            for (t, p) in t.lanes(class_axis).into_iter().zip(y_pred.lanes(class_axis)) {
                f(argmax(t.iter().copied()), argmax(p.iter().copied()));
            }
        }
        (ClassMode::Sparse, _) => {
            for (t, p) in y_true.values().zip(y_pred.lanes(class_axis)) {
                f(t as usize, argmax(p.iter().copied()));
            }
        }
    }
}

/// The index of the first largest value.
fn argmax<T: PartialOrd + Copy>(values: impl IntoIterator<Item = T>) -> usize {
    let mut values = values.into_iter().enumerate();
    let Some((_, mut top)) = values.next() else { return 0 };
    let mut best = 0;
    for (i, v) in values {
        if v > top {
            (best, top) = (i, v);
        }
    }
    best
}

#[cfg(test)]
mod tests;
