//! Data sources named in `.dnn` files, loaded through the runtime's loaders.

use super::TrainError;
use crate::runtime::data::{self, DataDirs, Dataset, HostArray, ImdbOptions, Pad, Split};
use crate::sema::{Literal, RuntimeValue};
use std::path::PathBuf;

fn arg<'a>(r: &'a RuntimeValue, name: &str) -> Option<&'a Literal> {
    r.args.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn int(r: &RuntimeValue, name: &str, default: usize) -> usize {
    match arg(r, name) {
        Some(Literal::Int(n)) if *n > 0 => *n as usize,
        _ => default,
    }
}

fn text(r: &RuntimeValue, name: &str) -> Option<String> {
    match arg(r, name) {
        Some(Literal::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn split(r: &RuntimeValue) -> Split {
    if text(r, "split").as_deref() == Some("test") { Split::Test } else { Split::Train }
}

/// Loads the dataset a data source names. `limit` keeps only the first samples (for
/// quick runs and tests).
pub fn load(r: &RuntimeValue, dirs: &DataDirs, limit: Option<usize>) -> Result<Dataset, TrainError> {
    let data = load_all(r, dirs)?;
    Ok(match limit {
        Some(n) if n < data.x.len() => take(&data, n),
        _ => data,
    })
}

fn load_all(r: &RuntimeValue, dirs: &DataDirs) -> Result<Dataset, TrainError> {
    let seed = int(r, "seed", 0) as u64;
    let samples = int(r, "samples", 1000);
    // Synthetic test splits share the training split's teacher: draw both and keep the tail.
    let synthetic = |make: &dyn Fn(usize) -> Dataset| match split(r) {
        Split::Train => make(samples),
        Split::Test => {
            let both = make(2 * samples);
            tail(&both, samples)
        }
    };
    let d = match r.name.as_str() {
        "mnist" => data::mnist(dirs, split(r))?,
        "fashion_mnist" => data::fashion_mnist(dirs, split(r))?,
        "cifar10" => data::cifar10(dirs, split(r))?,
        "imdb" => data::imdb(
            dirs,
            &ImdbOptions {
                vocab: int(r, "vocab", 5000),
                length: int(r, "length", 100),
                split: split(r),
                pad: Pad::Front,
                cache: true,
            },
        )?,
        "random" => {
            let features = int(r, "features", 20);
            match text(r, "labels").as_deref() {
                Some("classes") => {
                    let classes = int(r, "classes", 2);
                    synthetic(&|n| data::random::classes(n, features, classes, seed))
                }
                Some("regression") => {
                    let mut d = synthetic(&|n| data::random::regression(n, features, seed));
                    // One target per sample, as the compiler typed it.
                    if let HostArray::F32(y) = &d.y {
                        let n = y.len();
                        d.y = HostArray::F32(
                            y.clone()
                                .into_shape_with_order(ndarray::IxDyn(&[n]))
                                .map_err(|e| TrainError::Setup(e.to_string()))?,
                        );
                    }
                    d
                }
                _ => synthetic(&|n| data::random::binary(n, features, seed)),
            }
        }
        "sequences" => {
            let (steps, features) = (int(r, "steps", 10), int(r, "features", 5));
            synthetic(&|n| data::random::sequences(n, steps, features, seed))
        }
        "idx" => {
            let images = PathBuf::from(text(r, "images").unwrap_or_default());
            let labels = PathBuf::from(text(r, "labels").unwrap_or_default());
            data::mnist::load_files(&images, &labels, "idx")?
        }
        "csv" => {
            let path = PathBuf::from(text(r, "path").unwrap_or_default());
            let label = match arg(r, "label") {
                Some(Literal::Str(s)) => data::LabelColumn::Name(s.clone()),
                Some(Literal::Int(i)) => data::LabelColumn::Index(*i as usize),
                _ => data::LabelColumn::Last,
            };
            let header = match arg(r, "header") {
                Some(Literal::Bool(b)) => Some(*b),
                _ => None,
            };
            data::read_csv(&path, &data::CsvOptions { label, header, ..data::CsvOptions::default() })?
        }
        "npz" => {
            let path = PathBuf::from(text(r, "path").unwrap_or_default());
            data::read_npz(
                &path,
                text(r, "x").as_deref().unwrap_or("x"),
                text(r, "y").as_deref().unwrap_or("y"),
            )?
        }
        other => return Err(TrainError::Setup(format!("unknown data source `{other}`"))),
    };
    Ok(d)
}

fn rows(a: &HostArray, from: usize, to: usize) -> HostArray {
    use ndarray::{Axis, Slice};
    let s = Slice::from(from..to);
    match a {
        HostArray::U8(a) => HostArray::U8(a.slice_axis(Axis(0), s).to_owned()),
        HostArray::I64(a) => HostArray::I64(a.slice_axis(Axis(0), s).to_owned()),
        HostArray::F32(a) => HostArray::F32(a.slice_axis(Axis(0), s).to_owned()),
    }
}

fn take(d: &Dataset, n: usize) -> Dataset {
    Dataset { x: rows(&d.x, 0, n), y: rows(&d.y, 0, n), ..d.clone() }
}

fn tail(d: &Dataset, n: usize) -> Dataset {
    let len = d.x.len();
    Dataset { x: rows(&d.x, len - n, len), y: rows(&d.y, len - n, len), ..d.clone() }
}
