//! The training history: one record per epoch, saved as CSV or JSON by file extension.
//!
//! Columns, in this order: `epoch`, `seconds`, `loss`, the training metrics in first-seen
//! order, `val_loss`, then `val_<metric>`. A value a record lacks is an empty CSV cell or
//! JSON `null`; a non-finite value is written `NaN`/`inf` in CSV and `null` in JSON, which
//! has no such numbers. Files are written atomically.

use std::path::Path;

use serde_json::{Map, Value};

use crate::runtime::fsutil::write_atomic;

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// 1-based, as printed.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_metrics: Vec<(String, f64)>,
    pub val_loss: Option<f64>,
    pub val_metrics: Vec<(String, f64)>,
    pub seconds: f64,
}

/// A history file that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot write history `{path}`: the extension must be `.csv` or `.json`")]
    Extension { path: String },
    #[error("cannot write history `{path}`: {source}")]
    Write { path: String, source: std::io::Error },
}

/// All epochs so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub records: Vec<EpochRecord>,
}

impl History {
    pub fn push(&mut self, record: EpochRecord) {
        self.records.push(record);
    }

    /// The column names (see the module comment).
    pub fn columns(&self) -> Vec<String> {
        let mut train: Vec<&str> = Vec::new();
        let mut val: Vec<&str> = Vec::new();
        for r in &self.records {
            for (name, _) in &r.train_metrics {
                if !train.contains(&name.as_str()) {
                    train.push(name);
                }
            }
            for (name, _) in &r.val_metrics {
                if !val.contains(&name.as_str()) {
                    val.push(name);
                }
            }
        }
        let mut cols: Vec<String> = ["epoch", "seconds", "loss"].iter().map(|s| s.to_string()).collect();
        cols.extend(train.iter().map(|s| s.to_string()));
        if self.records.iter().any(|r| r.val_loss.is_some()) || !val.is_empty() {
            cols.push("val_loss".to_string());
        }
        cols.extend(val.iter().map(|s| format!("val_{s}")));
        cols
    }

    /// The value of `column` in `record`, if it has one.
    fn value(record: &EpochRecord, column: &str) -> Option<f64> {
        let find = |list: &[(String, f64)], name: &str| list.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        match column {
            "epoch" => Some(record.epoch as f64),
            "seconds" => Some(record.seconds),
            "loss" => Some(record.train_loss),
            "val_loss" => record.val_loss,
            c => match c.strip_prefix("val_") {
                Some(m) if find(&record.val_metrics, m).is_some() => find(&record.val_metrics, m),
                _ => find(&record.train_metrics, c),
            },
        }
    }

    pub fn to_csv(&self) -> String {
        let cols = self.columns();
        let mut out = cols.join(",");
        out.push('\n');
        for r in &self.records {
            let cells: Vec<String> =
                cols.iter().map(|c| Self::value(r, c).map(|v| v.to_string()).unwrap_or_default()).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }

    /// A JSON array with one object per epoch, keyed by column name.
    pub fn to_json(&self) -> String {
        let cols = self.columns();
        let rows: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                let mut obj = Map::new();
                for c in &cols {
                    let v = match (c.as_str(), Self::value(r, c)) {
                        ("epoch", _) => Value::from(r.epoch),
                        (_, Some(x)) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
                        (_, None) => Value::Null,
                    };
                    obj.insert(c.clone(), v);
                }
                Value::Object(obj)
            })
            .collect();
        let rows = Value::Array(rows);
        // Pretty-printing a `Value` with string keys cannot fail; `Display` is the fallback.
        serde_json::to_string_pretty(&rows).unwrap_or_else(|_| rows.to_string())
    }

    /// Writes the history as CSV or JSON, chosen by `path`'s extension, atomically.
    pub fn save(&self, path: &Path) -> Result<(), HistoryError> {
        let shown = path.display().to_string();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let text = match ext.as_deref() {
            Some("csv") => self.to_csv(),
            Some("json") => self.to_json(),
            _ => return Err(HistoryError::Extension { path: shown }),
        };
        write_atomic(path, text.as_bytes()).map_err(|source| HistoryError::Write { path: shown, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> History {
        let mut h = History::default();
        for epoch in 1..=2 {
            h.push(EpochRecord {
                epoch,
                train_loss: 1.0 / epoch as f64,
                train_metrics: vec![("accuracy".into(), 0.5 + 0.25 * epoch as f64)],
                val_loss: Some(0.75),
                val_metrics: vec![("accuracy".into(), 0.5)],
                seconds: 2.5,
            });
        }
        h
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_epoch() {
        let csv = history().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "epoch,seconds,loss,accuracy,val_loss,val_accuracy");
        assert_eq!(lines[1], "1,2.5,1,0.75,0.75,0.5");
        assert_eq!(lines[2], "2,2.5,0.5,1,0.75,0.5");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn json_parses_back_to_the_same_numbers() {
        let h = history();
        let v: Value = serde_json::from_str(&h.to_json()).expect("valid JSON");
        let rows = v.as_array().expect("array");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["epoch"], 2);
        assert_eq!(rows[1]["loss"].as_f64(), Some(0.5));
        assert_eq!(rows[0]["val_accuracy"].as_f64(), Some(0.5));
    }

    #[test]
    fn missing_values_are_empty_and_nan_is_null_in_json() {
        let mut h = history();
        h.push(EpochRecord {
            epoch: 3,
            train_loss: f64::NAN,
            train_metrics: vec![],
            val_loss: None,
            val_metrics: vec![],
            seconds: 1.0,
        });
        assert!(h.to_csv().lines().nth(3).expect("row").starts_with("3,1,NaN,,,"));
        let v: Value = serde_json::from_str(&h.to_json()).expect("valid JSON");
        assert!(v[2]["loss"].is_null() && v[2]["val_loss"].is_null());
    }

    #[test]
    fn save_picks_the_format_by_extension() {
        let dir = std::env::temp_dir().join(format!("dnnc-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let h = history();
        h.save(&dir.join("h.csv")).expect("csv");
        h.save(&dir.join("h.JSON")).expect("json");
        assert_eq!(std::fs::read_to_string(dir.join("h.csv")).expect("read"), h.to_csv());
        assert_eq!(std::fs::read_to_string(dir.join("h.JSON")).expect("read"), h.to_json());
        assert!(matches!(h.save(&dir.join("h.txt")), Err(HistoryError::Extension { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
