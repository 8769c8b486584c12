//! Metric tests: small hand-computed cases, properties (F1 is the harmonic mean, the
//! confusion matrix sums to N, streaming equals one big batch), and naive recomputation.

use super::*;
use crate::runtime::rng::Rng;
use ndarray::IxDyn;

fn f32s(shape: &[usize], v: &[f32]) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).expect("shape")
}

fn i64s(v: &[i64]) -> LabelArray {
    LabelArray::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).expect("shape"))
}

fn metric(name: &str, kind: LabelKind, from_logits: bool) -> Metric {
    Metric::new(name, MetricSpec::from_name(name, kind, from_logits).expect("known metric"))
}

fn scalar(m: &Metric) -> f64 {
    m.result().as_scalar().expect("scalar metric")
}

#[test]
fn binary_accuracy_thresholds_probabilities_and_logits() {
    // Probabilities: predicted classes 1, 0, 1, 0 against labels 1, 0, 0, 0 → 3 of 4.
    let mut m = metric("accuracy", LabelKind::Binary, false);
    m.update(&i64s(&[1, 0, 0, 0]), &f32s(&[4, 1], &[0.9, 0.2, 0.6, 0.5])).expect("valid");
    assert_eq!(scalar(&m), 0.75);
    // Logits: the threshold is 0, so 0.2 and 0.6 are both class 1 → 2 of 4.
    let mut m = metric("accuracy", LabelKind::Binary, true);
    let labels = LabelArray::F32(f32s(&[4], &[1.0, 0.0, 0.0, 0.0]));
    m.update(&labels, &f32s(&[4], &[0.9, 0.2, 0.6, -0.5])).expect("valid");
    assert_eq!(scalar(&m), 0.5);
}

#[test]
fn categorical_and_sparse_accuracy_agree_on_the_same_labels() {
    let mut rng = Rng::new(4);
    let (n, c) = (50, 5);
    let preds = f32s(&[n, c], &(0..n * c).map(|_| rng.normal() as f32).collect::<Vec<_>>());
    let labels: Vec<i64> = (0..n).map(|_| rng.below(c as u64) as i64).collect();
    let mut one_hot = vec![0.0f32; n * c];
    labels.iter().enumerate().for_each(|(i, &l)| one_hot[i * c + l as usize] = 1.0);
    let mut sparse = metric("accuracy", LabelKind::Sparse, true);
    sparse.update(&i64s(&labels), &preds).expect("valid");
    let mut cat = metric("accuracy", LabelKind::Categorical, true);
    cat.update(&LabelArray::F32(f32s(&[n, c], &one_hot)), &preds).expect("valid");
    // A naive count: the label's score is strictly the largest in its row.
    let naive = (0..n)
        .filter(|&i| {
            let row = &preds.as_slice().expect("contiguous")[i * c..(i + 1) * c];
            let l = labels[i] as usize;
            row.iter().enumerate().all(|(j, &v)| j == l || v < row[l])
        })
        .count() as f64
        / n as f64;
    assert_eq!(scalar(&sparse), naive);
    assert_eq!(scalar(&cat), naive);
}

#[test]
fn streaming_equals_one_batch() {
    let preds = f32s(&[6, 3], &[1., 2., 3., 3., 2., 1., 0., 5., 0., 1., 1., 0., 2., 0., 1., 0., 0., 9.]);
    let labels = [2i64, 0, 1, 1, 2, 2];
    for name in ["accuracy", "precision", "recall", "f1"] {
        let mut whole = metric(name, LabelKind::Sparse, false);
        whole.update(&i64s(&labels), &preds).expect("valid");
        let mut parts = metric(name, LabelKind::Sparse, false);
        let top = preds.slice(ndarray::s![..2, ..]).to_owned().into_dyn();
        let rest = preds.slice(ndarray::s![2.., ..]).to_owned().into_dyn();
        parts.update(&i64s(&labels[..2]), &top).expect("valid");
        parts.update(&i64s(&labels[2..]), &rest).expect("valid");
        assert_eq!(scalar(&whole), scalar(&parts), "{name}");
    }
}

#[test]
fn binary_precision_recall_f1_by_hand() {
    // Labels 1 1 1 0 0 0, predictions 1 1 0 1 0 0: TP 2, FN 1, FP 1, TN 2.
    let labels = i64s(&[1, 1, 1, 0, 0, 0]);
    let preds = f32s(&[6], &[0.9, 0.8, 0.1, 0.7, 0.3, 0.2]);
    let get = |name: &str| {
        let mut m = metric(name, LabelKind::Binary, false);
        m.update(&labels, &preds).expect("valid");
        scalar(&m)
    };
    let (p, r, f1) = (get("precision"), get("recall"), get("f1"));
    assert!((p - 2.0 / 3.0).abs() < 1e-12 && (r - 2.0 / 3.0).abs() < 1e-12);
    assert!((f1 - 2.0 * p * r / (p + r)).abs() < 1e-12, "F1 is the harmonic mean");
}

#[test]
fn macro_scores_average_per_class_scores_from_a_naive_count() {
    let mut rng = Rng::new(8);
    let (n, c) = (200, 4);
    let preds = f32s(&[n, c], &(0..n * c).map(|_| rng.uniform() as f32).collect::<Vec<_>>());
    let labels: Vec<i64> = (0..n).map(|_| rng.below(c as u64) as i64).collect();
    let predicted: Vec<usize> = (0..n)
        .map(|i| {
            let row = &preds.as_slice().expect("contiguous")[i * c..(i + 1) * c];
            (0..c).fold(0, |b, j| if row[j] > row[b] { j } else { b })
        })
        .collect();
    let (mut prec, mut rec, mut f1) = (0.0, 0.0, 0.0);
    for k in 0..c {
        let tp = (0..n).filter(|&i| predicted[i] == k && labels[i] as usize == k).count() as f64;
        let pp = predicted.iter().filter(|&&p| p == k).count() as f64;
        let ap = labels.iter().filter(|&&l| l as usize == k).count() as f64;
        let (p, r) = (tp / pp, tp / ap);
        prec += p / c as f64;
        rec += r / c as f64;
        f1 += 2.0 * p * r / (p + r) / c as f64;
    }
    for (name, want) in [("precision", prec), ("recall", rec), ("f1", f1)] {
        let mut m = metric(name, LabelKind::Sparse, false);
        m.update(&i64s(&labels), &preds).expect("valid");
        assert!((scalar(&m) - want).abs() < 1e-12, "{name}: {} vs {want}", scalar(&m));
    }
}

#[test]
fn confusion_matrix_counts_pairs_and_sums_to_n() {
    let mut m = metric("confusion_matrix", LabelKind::Sparse, false);
    let preds = f32s(&[5, 3], &[1., 0., 0., 0., 1., 0., 0., 1., 0., 0., 0., 1., 1., 0., 0.]);
    // Predicted 0 1 1 2 0 against true 0 1 2 2 1.
    m.update(&i64s(&[0, 1, 2, 2, 1]), &preds).expect("valid");
    let MetricValue::Matrix(cm) = m.result() else { panic!("a matrix") };
    assert_eq!(cm.total(), 5);
    let want = [[1, 0, 0], [1, 1, 0], [0, 1, 1]];
    for (t, row) in want.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            assert_eq!(cm.get(t, p), count, "true {t} predicted {p}");
        }
    }
    assert_eq!(cm.accuracy(), 0.6);
    let table = cm.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines, ["true\\pred 0 1 2", "        0 1 0 0", "        1 1 1 0", "        2 0 1 1"]);
}

#[test]
fn mae_and_mse_match_direct_sums() {
    let labels = LabelArray::F32(f32s(&[4], &[1.0, 2.0, 3.0, 4.0]));
    let preds = f32s(&[4, 1], &[1.5, 1.0, 3.0, 6.0]);
    let mut mae = metric("mae", LabelKind::Regression, false);
    let mut mse = metric("mse", LabelKind::Regression, false);
    mae.update(&labels, &preds).expect("valid");
    mse.update(&labels, &preds).expect("valid");
    assert_eq!(scalar(&mae), (0.5 + 1.0 + 0.0 + 2.0) / 4.0);
    assert_eq!(scalar(&mse), (0.25 + 1.0 + 0.0 + 4.0) / 4.0);
}

#[test]
fn bad_inputs_are_errors_naming_the_metric() {
    let mut m = metric("accuracy", LabelKind::Sparse, false);
    let err = m.update(&i64s(&[0, 3]), &f32s(&[2, 3], &[0.0; 6])).unwrap_err();
    assert!(matches!(&err, MetricError::BadLabel { value, .. } if *value == 3.0), "{err}");
    assert!(m.update(&i64s(&[0, 1, 2]), &f32s(&[2, 3], &[0.0; 6])).is_err());
    let mut b = metric("accuracy", LabelKind::Binary, false);
    assert!(b.update(&i64s(&[2]), &f32s(&[1], &[0.7])).is_err());
    let mut c = metric("accuracy", LabelKind::Categorical, false);
    assert!(c.update(&LabelArray::F32(f32s(&[2, 2], &[1., 0., 0., 1.])), &f32s(&[2, 3], &[0.0; 6])).is_err());
    assert!(matches!(
        MetricSpec::from_name("accuracy", LabelKind::Regression, false),
        Err(MetricError::NeedsClasses(_))
    ));
    let e = MetricSpec::from_name("acc", LabelKind::Binary, false).unwrap_err();
    assert!(e.to_string().contains("accuracy, binary_accuracy"), "{e}");
    for name in metric_names() {
        assert!(MetricSpec::from_name(name, LabelKind::Sparse, false).is_ok(), "{name}");
    }
}

#[test]
fn reset_forgets_and_empty_reports_zero() {
    let mut m = metric("accuracy", LabelKind::Sparse, false);
    assert_eq!(scalar(&m), 0.0);
    m.update(&i64s(&[0]), &f32s(&[1, 2], &[1.0, 0.0])).expect("valid");
    assert_eq!(scalar(&m), 1.0);
    m.reset();
    m.update(&i64s(&[1]), &f32s(&[1, 2], &[1.0, 0.0])).expect("valid");
    assert_eq!(scalar(&m), 0.0);
}
