//! The data sources a `train` or `evaluate` block can name, with what each yields per
//! sample, so that the compiler can check them against the model and the loss before
//! any file is read.

use super::value::Literal;
use crate::shape::{DType, Dim, TensorType};

/// One sample's features and label, as the model sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleTypes {
    /// `None` when only the file tells (idx, csv, npz): checked when the data is loaded.
    pub x: Option<TensorType>,
    pub y: Option<TensorType>,
    /// Number of classes of classification labels.
    pub classes: Option<usize>,
}

/// A source's name and its arguments with their defaults' kinds.
pub struct SourceSig {
    pub name: &'static str,
    pub args: &'static [&'static str],
    pub doc: &'static str,
}

pub const SOURCES: &[SourceSig] = &[
    SourceSig {
        name: "mnist",
        args: &["split"],
        doc: "MNIST digits: f32[28, 28] images (bytes / 255), i64 labels 0..9",
    },
    SourceSig {
        name: "fashion_mnist",
        args: &["split"],
        doc: "Fashion-MNIST: f32[28, 28] images, i64 labels 0..9",
    },
    SourceSig {
        name: "cifar10",
        args: &["split"],
        doc: "CIFAR-10 binary format: f32[32, 32, 3] images, i64 labels 0..9",
    },
    SourceSig {
        name: "imdb",
        args: &["vocab", "length", "split"],
        doc: "IMDB reviews: i64[length] word ids, i64 labels 0/1",
    },
    SourceSig {
        name: "random",
        args: &["samples", "features", "labels", "classes", "seed", "split"],
        doc: "seeded synthetic data: f32[features], labels \"binary\", \"classes\" or \"regression\"",
    },
    SourceSig {
        name: "sequences",
        args: &["samples", "steps", "features", "seed"],
        doc: "seeded synthetic sequences f32[steps, features], i64 labels 0/1",
    },
    SourceSig {
        name: "idx",
        args: &["images", "labels", "scale"],
        doc: "any pair of IDX files (gzip or raw)",
    },
    SourceSig {
        name: "csv",
        args: &["path", "label", "header"],
        doc: "a CSV file of numbers, one sample per row",
    },
    SourceSig { name: "npz", args: &["path", "x", "y"], doc: "a NumPy .npz archive (or .npy pair)" },
];

fn arg<'a>(args: &'a [(String, Literal)], name: &str) -> Option<&'a Literal> {
    args.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn int_arg(args: &[(String, Literal)], name: &str, default: i64) -> Result<i64, String> {
    match arg(args, name) {
        None => Ok(default),
        Some(Literal::Int(n)) if *n > 0 => Ok(*n),
        Some(other) => Err(format!("`{name}` must be a positive integer, got {other:?}")),
    }
}

/// What a source yields per sample, or why its arguments are wrong.
pub fn sample_types(name: &str, args: &[(String, Literal)]) -> Result<SampleTypes, String> {
    let scalar_label =
        |classes| SampleTypes { x: None, y: Some(TensorType::scalar(DType::I64)), classes: Some(classes) };
    let image = |h: i64, w: i64, c: Option<i64>| {
        let mut shape = vec![Dim::Const(h), Dim::Const(w)];
        shape.extend(c.map(Dim::Const));
        Some(TensorType::new(DType::F32, shape))
    };
    if let Some(Literal::Str(split)) = arg(args, "split")
        && split != "train"
        && split != "test"
    {
        return Err(format!("`split` must be \"train\" or \"test\", got \"{split}\""));
    }
    Ok(match name {
        "mnist" | "fashion_mnist" => SampleTypes { x: image(28, 28, None), ..scalar_label(10) },
        "cifar10" => SampleTypes { x: image(32, 32, Some(3)), ..scalar_label(10) },
        "imdb" => {
            let length = int_arg(args, "length", 100)?;
            int_arg(args, "vocab", 5000)?;
            SampleTypes { x: Some(TensorType::new(DType::I64, vec![Dim::Const(length)])), ..scalar_label(2) }
        }
        "random" => {
            let features = int_arg(args, "features", 20)?;
            int_arg(args, "samples", 1000)?;
            let x = Some(TensorType::new(DType::F32, vec![Dim::Const(features)]));
            match arg(args, "labels") {
                None => SampleTypes { x, ..scalar_label(2) },
                Some(Literal::Str(s)) if s == "binary" => SampleTypes { x, ..scalar_label(2) },
                Some(Literal::Str(s)) if s == "classes" => {
                    SampleTypes { x, ..scalar_label(int_arg(args, "classes", 2)? as usize) }
                }
                Some(Literal::Str(s)) if s == "regression" => {
                    SampleTypes { x, y: Some(TensorType::scalar(DType::F32)), classes: None }
                }
                Some(other) => {
                    return Err(format!(
                        "`labels` must be \"binary\", \"classes\" or \"regression\", got {other:?}"
                    ));
                }
            }
        }
        "sequences" => {
            let steps = int_arg(args, "steps", 10)?;
            let features = int_arg(args, "features", 5)?;
            SampleTypes {
                x: Some(TensorType::new(DType::F32, vec![Dim::Const(steps), Dim::Const(features)])),
                ..scalar_label(2)
            }
        }
        "idx" | "csv" | "npz" => SampleTypes { x: None, y: None, classes: None },
        _ => return Err(format!("unknown data source `{name}`")),
    })
}
