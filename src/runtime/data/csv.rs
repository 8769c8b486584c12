//! CSV files of numbers: one sample per line, one column of them the label.
//!
//! The first line is a header when any of its fields is not a number (or when the caller
//! says so). The label column is chosen by name or index, by default the last. Features
//! become `f32 [N, F]`; labels `i64 [N]` when every one is an integer (then `classes` is
//! max + 1 if none is negative), else `f32 [N]`. Fields may be surrounded by spaces or
//! double quotes; blank lines are skipped. A bad field is reported as `file:line:column`.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::error::{DataError, file_label};
use super::{Dataset, HostArray};

/// Which column holds the labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LabelColumn {
    #[default]
    Last,
    /// 0-based.
    Index(usize),
    /// A header name; needs a header line.
    Name(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    pub label: LabelColumn,
    /// `None`: a header is recognised by a non-numeric field on the first line.
    pub header: Option<bool>,
    pub delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { label: LabelColumn::Last, header: None, delimiter: ',' }
    }
}

pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let file = file_label(path);
    let text =
        String::from_utf8(bytes).map_err(|e| DataError::invalid(&file, format!("not UTF-8 text: {e}")))?;
    parse_csv(&file, &text, options)
}

/// A field of a line, with the 1-based column where it starts.
fn fields(line: &str, delimiter: char) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in line.split(delimiter) {
        let lead = piece.len() - piece.trim_start().len();
        let column = line[..start + lead].chars().count() + 1;
        let value = piece.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        out.push((column, value));
        start += piece.len() + delimiter.len_utf8();
    }
    out
}

/// Parses CSV text; `file` names it in errors.
pub fn parse_csv(file: &str, text: &str, options: &CsvOptions) -> Result<Dataset, DataError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let Some((first_no, first)) = lines.next() else {
        return Err(DataError::invalid(file, "no data rows"));
    };
    let first_fields = fields(first, options.delimiter);
    let has_header =
        options.header.unwrap_or_else(|| first_fields.iter().any(|(_, f)| f.parse::<f64>().is_err()));
    let width = first_fields.len();
    let label_at = match &options.label {
        LabelColumn::Last => width - 1,
        LabelColumn::Index(i) if *i < width => *i,
        LabelColumn::Index(i) => {
            return Err(DataError::invalid(
                file,
                format!("label column {i} does not exist: rows have {width} fields"),
            ));
        }
        LabelColumn::Name(name) => {
            let names: Vec<&str> = first_fields.iter().map(|(_, f)| *f).collect();
            match names.iter().position(|n| n == name) {
                Some(i) if has_header => i,
                _ => {
                    return Err(DataError::invalid(
                        file,
                        format!("no column named `{name}` in the header line ({})", names.join(", ")),
                    ));
                }
            }
        }
    };
    if width < 2 {
        return Err(DataError::invalid(file, "need at least two columns: features and a label"));
    }
    let data_lines = (!has_header).then_some((first_no, first)).into_iter().chain(lines);
    let mut features: Vec<f32> = Vec::new();
    let mut labels: Vec<f64> = Vec::new();
    for (line_no, line) in data_lines {
        let row = fields(line, options.delimiter);
        if row.len() != width {
            let column = line.chars().count() + 1;
            let detail = format!("expected {width} fields like line {first_no}, found {}", row.len());
            return Err(DataError::Field { file: file.into(), line: line_no, column, detail });
        }
        for (i, (column, text)) in row.into_iter().enumerate() {
            let value: f64 = text.parse().map_err(|_| DataError::Field {
                file: file.into(),
                line: line_no,
                column,
                detail: format!("field {} `{text}` is not a number", i + 1),
            })?;
            if i == label_at {
                labels.push(value);
            } else {
                features.push(value as f32);
            }
        }
    }
    let n = labels.len();
    if n == 0 {
        return Err(DataError::invalid(file, "no data rows after the header"));
    }
    let x = ArrayD::from_shape_vec(IxDyn(&[n, width - 1]), features)
        .map_err(|e| DataError::invalid(file, e.to_string()))?;
    let integral = labels.iter().all(|v| v.fract() == 0.0 && v.abs() < 9.0e15);
    let (y, classes) = if integral {
        let ints: Vec<i64> = labels.iter().map(|&v| v as i64).collect();
        let min = ints.iter().copied().min().unwrap_or(0);
        let max = ints.iter().copied().max().unwrap_or(0);
        let classes = (min >= 0).then_some(max as usize + 1);
        (
            HostArray::I64(
                ArrayD::from_shape_vec(IxDyn(&[n]), ints)
                    .map_err(|e| DataError::invalid(file, e.to_string()))?,
            ),
            classes,
        )
    } else {
        let floats: Vec<f32> = labels.iter().map(|&v| v as f32).collect();
        (
            HostArray::F32(
                ArrayD::from_shape_vec(IxDyn(&[n]), floats)
                    .map_err(|e| DataError::invalid(file, e.to_string()))?,
            ),
            None,
        )
    };
    Ok(Dataset { name: file.to_string(), x: HostArray::F32(x), y, x_scale: 1.0, classes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(a: &HostArray) -> Vec<f32> {
        match a {
            HostArray::F32(a) => a.iter().copied().collect(),
            other => panic!("not f32: {other:?}"),
        }
    }

    #[test]
    fn header_is_detected_and_label_defaults_to_last() {
        let ds = parse_csv("d.csv", "a,b,label\n1,2,0\n\n3.5, 4 ,2\r\n", &CsvOptions::default()).unwrap();
        assert_eq!(ds.x.shape(), &[2, 2]);
        assert_eq!(f32s(&ds.x), vec![1.0, 2.0, 3.5, 4.0]);
        assert_eq!(ds.y, HostArray::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![0, 2]).unwrap()));
        assert_eq!(ds.classes, Some(3));
    }

    #[test]
    fn label_by_name_or_index_and_float_labels() {
        let text = "t,\"u\",v\n0.5,1,2\n1.5,3,4\n";
        let by_name = CsvOptions { label: LabelColumn::Name("t".into()), ..CsvOptions::default() };
        let ds = parse_csv("d.csv", text, &by_name).unwrap();
        assert_eq!(f32s(&ds.y), vec![0.5, 1.5]);
        assert_eq!(f32s(&ds.x), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ds.classes, None);
        let by_index =
            CsvOptions { label: LabelColumn::Index(1), header: Some(false), ..CsvOptions::default() };
        let ds = parse_csv("d.csv", "1,2,3\n4,5,6\n", &by_index).unwrap();
        assert_eq!(f32s(&ds.x), vec![1.0, 3.0, 4.0, 6.0]);
        let err = parse_csv("d.csv", text, &CsvOptions { label: LabelColumn::Name("w".into()), ..by_name });
        assert!(err.unwrap_err().to_string().contains("no column named `w` in the header line (t, u, v)"));
    }

    #[test]
    fn bad_fields_are_located_by_line_and_column() {
        let err = parse_csv("d.csv", "x,y\n1,2\n3, abc\n", &CsvOptions::default()).unwrap_err().to_string();
        assert_eq!(err, "d.csv:3:4: field 2 `abc` is not a number");
        let err = parse_csv("d.csv", "1,2\n1,2,3\n", &CsvOptions::default()).unwrap_err().to_string();
        assert_eq!(err, "d.csv:2:6: expected 2 fields like line 1, found 3");
        assert!(parse_csv("d.csv", "x,y\n", &CsvOptions::default()).is_err());
        assert!(parse_csv("d.csv", "", &CsvOptions::default()).is_err());
    }
}
