//! MNIST and Fashion-MNIST: two IDX files per split, images `u8 [N, 28, 28]` and labels.
//!
//! The images stay bytes (`x_scale` = 1/255 turns them into [0, 1] per batch); labels
//! become `i64 [N]`. Images and labels must agree in N, images must be 28×28, labels < 10.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::error::{DataError, file_label};
use super::idx::{IdxData, read_idx};
use super::locate::{DataDirs, DatasetFiles, FASHION_MNIST, MNIST};
use super::{Dataset, HostArray};

/// Which part of a dataset to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// The digits 0–9 (LeCun, Cortes, Burges).
pub fn mnist(dirs: &DataDirs, split: Split) -> Result<Dataset, DataError> {
    load(dirs, &MNIST, "mnist", split)
}

/// Zalando's Fashion-MNIST: ten kinds of clothing in MNIST's exact format.
pub fn fashion_mnist(dirs: &DataDirs, split: Split) -> Result<Dataset, DataError> {
    load(dirs, &FASHION_MNIST, "fashion_mnist", split)
}

/// The two file names of a split, images first.
pub fn split_files(split: Split) -> [&'static str; 2] {
    match split {
        Split::Train => ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"],
        Split::Test => ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
    }
}

fn load(dirs: &DataDirs, files: &DatasetFiles, name: &str, split: Split) -> Result<Dataset, DataError> {
    let paths = dirs.locate(files, &split_files(split))?;
    load_files(&paths[0], &paths[1], &format!("{name} ({})", split.name()))
}

/// Loads an image file and a label file in MNIST's format.
pub fn load_files(images: &Path, labels: &Path, name: &str) -> Result<Dataset, DataError> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    let (img_file, lab_file) = (file_label(images), file_label(labels));
    let IdxData::U8(pixels) = img.data else {
        return Err(DataError::invalid(img_file, "expected unsigned bytes (type 0x08)"));
    };
    let IdxData::U8(label_bytes) = lab.data else {
        return Err(DataError::invalid(lab_file, "expected unsigned bytes (type 0x08)"));
    };
    if img.dims.len() != 3 || img.dims[1..] != [28, 28] {
        return Err(DataError::invalid(
            img_file,
            format!("expected images of shape N×28×28, found {:?}", img.dims),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(DataError::invalid(
            lab_file,
            format!("expected one dimension of labels, found {:?}", lab.dims),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::invalid(
            lab_file,
            format!("{} labels for the {} images of {img_file}", lab.dims[0], img.dims[0]),
        ));
    }
    if let Some(i) = label_bytes.iter().position(|&l| l >= 10) {
        return Err(DataError::invalid(
            lab_file,
            format!("label {} of sample {i} is not a digit 0..9", label_bytes[i]),
        ));
    }
    let n = img.dims[0];
    let x = ArrayD::from_shape_vec(IxDyn(&[n, 28, 28]), pixels)
        .map_err(|e| DataError::invalid(file_label(images), e.to_string()))?;
    let y = ArrayD::from_shape_vec(IxDyn(&[n]), label_bytes.into_iter().map(i64::from).collect())
        .map_err(|e| DataError::invalid(file_label(labels), e.to_string()))?;
    Ok(Dataset {
        name: name.to_string(),
        x: HostArray::U8(x),
        y: HostArray::I64(y),
        x_scale: 1.0 / 255.0,
        classes: Some(10),
    })
}

#[cfg(test)]
mod tests {
    use super::super::idx::encode_idx_u8;
    use super::*;

    fn write_split(dir: &Path, n: usize, labels: &[u8], image_dims: &[usize]) {
        let folder = dir.join("mnist");
        std::fs::create_dir_all(&folder).unwrap();
        let pixels: Vec<u8> = (0..image_dims.iter().product::<usize>()).map(|i| (i % 256) as u8).collect();
        std::fs::write(folder.join("t10k-images-idx3-ubyte.gz"), encode_idx_u8(image_dims, &pixels, true))
            .unwrap();
        std::fs::write(folder.join("t10k-labels-idx1-ubyte.gz"), encode_idx_u8(&[n], labels, true)).unwrap();
    }

    fn temp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dnnc-mnist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn generated_split_loads_with_its_labels() {
        let dir = temp("ok");
        write_split(&dir, 3, &[4, 0, 9], &[3, 28, 28]);
        let ds = mnist(&DataDirs::only(&dir), Split::Test).unwrap();
        assert_eq!(ds.x.shape(), &[3, 28, 28]);
        assert_eq!(ds.y, HostArray::I64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![4, 0, 9]).unwrap()));
        let HostArray::U8(x) = &ds.x else { panic!("x is not u8") };
        assert_eq!(x[[1, 0, 5]], ((28 * 28 + 5) % 256) as u8);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn disagreeing_counts_and_bad_labels_are_errors() {
        let dir = temp("bad");
        write_split(&dir, 2, &[1, 2], &[3, 28, 28]);
        let err = mnist(&DataDirs::only(&dir), Split::Test).unwrap_err().to_string();
        assert!(err.contains("2 labels for the 3 images"), "{err}");
        write_split(&dir, 3, &[1, 12, 2], &[3, 28, 28]);
        let err = mnist(&DataDirs::only(&dir), Split::Test).unwrap_err().to_string();
        assert!(err.contains("label 12 of sample 1"), "{err}");
        write_split(&dir, 3, &[1, 2, 2], &[3, 27, 28]);
        let err = mnist(&DataDirs::only(&dir), Split::Test).unwrap_err().to_string();
        assert!(err.contains("N×28×28"), "{err}");
        // Fashion-MNIST has the same files in its own folder.
        let err = fashion_mnist(&DataDirs::only(&dir), Split::Test).unwrap_err().to_string();
        assert!(err.contains(&dir.join("fashion_mnist").display().to_string()), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
