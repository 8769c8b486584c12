//! CIFAR-10, binary version, and a stand-in written from MNIST in the same format.
//!
//! A batch file is a run of 3073-byte records: one label byte (0..9), then a 32×32 image
//! as three 1024-byte planes, red, green, blue (channel-major, rows top to bottom). The
//! loader transposes to `u8 [N, 32, 32, 3]` (NHWC) with `x_scale` 1/255 and `i64` labels.
//! The real CIFAR-10 is not available offline, so [`write_standin_cifar`] writes files of
//! this exact format from MNIST digits (padded to 32×32, tinted with random colours) to
//! exercise the colour-image path end to end.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::error::{DataError, file_label};
use super::locate::{CIFAR10, DataDirs};
use super::mnist::Split;
use super::{Dataset, HostArray};
use crate::runtime::rng::Rng;

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;

/// The batch files of a split.
pub fn split_files(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        Split::Test => &["test_batch.bin"],
    }
}

/// Loads a split of CIFAR-10 from the `cifar10/` folder of the data search path.
pub fn cifar10(dirs: &DataDirs, split: Split) -> Result<Dataset, DataError> {
    let paths = dirs.locate(&CIFAR10, split_files(split))?;
    load_files(&paths, &format!("cifar10 ({})", split.name()))
}

/// Loads and concatenates batch files in the CIFAR-10 binary format.
pub fn load_files(paths: &[impl AsRef<Path>], name: &str) -> Result<Dataset, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let file = file_label(path);
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let whole = bytes.len() / RECORD;
        if bytes.len() % RECORD != 0 {
            return Err(DataError::Truncated {
                file,
                detail: format!(
                    "record {} is cut short: {} of its {RECORD} bytes present after {whole} whole records",
                    whole + 1,
                    bytes.len() % RECORD
                ),
            });
        }
        pixels.reserve(whole * 3 * PLANE);
        for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
            if record[0] >= 10 {
                return Err(DataError::invalid(
                    &file,
                    format!("record {}: label {} is not in 0..9", i + 1, record[0]),
                ));
            }
            labels.push(i64::from(record[0]));
            let planes = &record[1..];
            for p in 0..PLANE {
                pixels.extend([planes[p], planes[PLANE + p], planes[2 * PLANE + p]]);
            }
        }
    }
    let n = labels.len();
    let x = ArrayD::from_shape_vec(IxDyn(&[n, SIDE, SIDE, 3]), pixels)
        .map_err(|e| DataError::invalid(name, e.to_string()))?;
    let y =
        ArrayD::from_shape_vec(IxDyn(&[n]), labels).map_err(|e| DataError::invalid(name, e.to_string()))?;
    Ok(Dataset {
        name: name.to_string(),
        x: HostArray::U8(x),
        y: HostArray::I64(y),
        x_scale: 1.0 / 255.0,
        classes: Some(10),
    })
}

/// One record: a 28×28 digit centred in 32×32, drawn in colour `ink` on colour `paper`.
fn standin_record(digit: &[u8], label: u8, ink: [f32; 3], paper: [f32; 3], out: &mut Vec<u8>) {
    out.push(label);
    for channel in 0..3 {
        for y in 0..SIDE {
            for x in 0..SIDE {
                let inside = (2..30).contains(&y) && (2..30).contains(&x);
                let alpha = if inside { digit[(y - 2) * 28 + (x - 2)] as f32 / 255.0 } else { 0.0 };
                let v = paper[channel] * (1.0 - alpha) + ink[channel] * alpha;
                out.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
}

/// Writes `cifar10/data_batch_1.bin` … `data_batch_5.bin` (the training images split into
/// five equal parts, any remainder dropped) and `cifar10/test_batch.bin` under `root`, from
/// MNIST-format datasets (`u8 [N, 28, 28]`, labels 0..9). Each image gets a random ink and
/// paper colour from `seed`. Files are written to a temporary name and renamed into place.
pub fn write_standin_cifar(
    root: &Path,
    mnist_train: &Dataset,
    mnist_test: &Dataset,
    seed: u64,
) -> Result<(), DataError> {
    let folder = root.join(CIFAR10.folder);
    std::fs::create_dir_all(&folder).map_err(|e| DataError::io(&folder, e))?;
    let mut rng = Rng::new(seed);
    let per_batch = mnist_train.x.len() / 5;
    let mut jobs: Vec<(&str, &Dataset, usize, usize)> = (0..5)
        .map(|b| (split_files(Split::Train)[b], mnist_train, b * per_batch, (b + 1) * per_batch))
        .collect();
    jobs.push(("test_batch.bin", mnist_test, 0, mnist_test.x.len()));
    for (name, source, from, to) in jobs {
        let (HostArray::U8(images), HostArray::I64(labels)) = (&source.x, &source.y) else {
            return Err(DataError::Usage(format!(
                "{}: expected MNIST-style u8 images and i64 labels",
                source.name
            )));
        };
        if images.shape()[1..] != [28, 28] {
            return Err(DataError::Usage(format!(
                "{}: expected 28×28 images, got {:?}",
                source.name,
                images.shape()
            )));
        }
        let images = images.as_standard_layout();
        let flat = images.as_slice().unwrap_or(&[]);
        let mut out = Vec::with_capacity((to - from) * RECORD);
        for i in from..to {
            let label = u8::try_from(labels[i]).ok().filter(|&l| l < 10).ok_or_else(|| {
                DataError::Usage(format!("{}: label {} of sample {i} is not in 0..9", source.name, labels[i]))
            })?;
            let mut colour = || [0, 1, 2].map(|_| rng.uniform() as f32 * 255.0);
            let (ink, paper) = (colour(), colour());
            standin_record(&flat[i * 784..(i + 1) * 784], label, ink, paper, &mut out);
        }
        let path = folder.join(name);
        let part = folder.join(format!(".{name}.part"));
        std::fs::write(&part, &out).map_err(|e| DataError::io(&part, e))?;
        std::fs::rename(&part, &path).map_err(|e| DataError::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dnnc-cifar-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn channel_major_records_become_nhwc() {
        let dir = temp("layout");
        // One record built by hand: label 7, plane c holds (c + 1) * 10 except pixel (1, 2)
        // of the green plane.
        let mut record = vec![7u8];
        for c in 0..3u8 {
            record.extend(std::iter::repeat_n((c + 1) * 10, PLANE));
        }
        record[1 + PLANE + 32 + 2] = 99;
        std::fs::write(dir.join("b.bin"), &record).unwrap();
        let ds = load_files(&[dir.join("b.bin")], "t").unwrap();
        let HostArray::U8(x) = &ds.x else { panic!("x is not u8") };
        assert_eq!(x.shape(), &[1, 32, 32, 3]);
        assert_eq!((x[[0, 5, 5, 0]], x[[0, 5, 5, 1]], x[[0, 5, 5, 2]]), (10, 20, 30));
        assert_eq!(x[[0, 1, 2, 1]], 99);
        assert_eq!(ds.y, HostArray::I64(ArrayD::from_shape_vec(IxDyn(&[1]), vec![7]).unwrap()));
        let two = [record.clone(), record].concat();
        std::fs::write(dir.join("short.bin"), &two[..2 * RECORD - 5]).unwrap();
        let err = load_files(&[dir.join("short.bin")], "t").unwrap_err().to_string();
        assert_eq!(
            err,
            "short.bin: truncated: record 2 is cut short: 3068 of its 3073 bytes present after 1 whole records"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn digits(n: usize, offset: usize) -> Dataset {
        Dataset {
            name: "digits".into(),
            x: HostArray::U8(ArrayD::from_shape_fn(IxDyn(&[n, 28, 28]), |i| {
                if i[1] == i[0] + 3 { 255 } else { 0 }
            })),
            y: HostArray::I64(ArrayD::from_shape_fn(IxDyn(&[n]), |i| ((i[0] + offset) % 10) as i64)),
            x_scale: 1.0 / 255.0,
            classes: Some(10),
        }
    }

    #[test]
    fn standin_round_trips_through_the_loader() {
        let dir = temp("standin");
        write_standin_cifar(&dir, &digits(11, 0), &digits(4, 5), 3).unwrap();
        let train = cifar10(&DataDirs::only(&dir), Split::Train).unwrap();
        let test = cifar10(&DataDirs::only(&dir), Split::Test).unwrap();
        assert_eq!(train.x.shape(), &[10, 32, 32, 3], "11 digits make 5 batches of 2");
        assert_eq!(test.x.shape(), &[4, 32, 32, 3]);
        assert_eq!(train.y, digits(10, 0).y);
        assert_eq!(test.y, digits(4, 5).y);
        let HostArray::U8(x) = &test.x else { panic!("x is not u8") };
        for n in 0..4 {
            // The border is paper, the digit's ink row (28×28 row n + 3, 32×32 row n + 5) is
            // ink, and the two colours differ in some channel (by chance, nearly always).
            let paper: Vec<u8> = (0..3).map(|c| x[[n, 0, 0, c]]).collect();
            let ink: Vec<u8> = (0..3).map(|c| x[[n, n + 5, 16, c]]).collect();
            assert!((0..3).all(|c| x[[n, 31, 31, c]] == paper[c] && x[[n, n + 5, 3, c]] == ink[c]));
            assert_ne!(paper, ink);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
