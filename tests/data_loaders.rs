//! Integration tests of the data layer: real MNIST when the shared data folder is present
//! (found through `$DNNC_DATA`, else `/work/shared/data`), generated files otherwise, and
//! the batching guarantees the trainer relies on.

use std::path::{Path, PathBuf};

use dnnc::runtime::data::idx::encode_idx_u8;
use dnnc::runtime::data::{
    Batch, BatchArray, Batcher, DataDirs, DataError, HostArray, Split, mnist, split_validation,
};

/// The shared data root, if this machine has it; never downloads.
fn shared_data() -> Option<PathBuf> {
    let from_env = std::env::var_os("DNNC_DATA").map(PathBuf::from);
    let root = from_env.unwrap_or_else(|| PathBuf::from("/work/shared/data"));
    root.join("mnist/t10k-labels-idx1-ubyte.gz").is_file().then_some(root)
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dnnc-data-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mnist")).unwrap();
    dir
}

fn label_counts(y: &HostArray) -> Vec<usize> {
    let HostArray::I64(y) = y else { panic!("labels are not i64") };
    let mut counts = vec![0; 10];
    y.iter().for_each(|&l| counts[l as usize] += 1);
    counts
}

/// Writes a t10k split whose label counts are `counts` (label i appears counts[i] times).
fn write_generated_test_split(dir: &Path, counts: &[usize]) {
    let labels: Vec<u8> =
        counts.iter().enumerate().flat_map(|(d, &c)| std::iter::repeat_n(d as u8, c)).collect();
    let n = labels.len();
    let pixels: Vec<u8> = (0..n * 784).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(dir.join("mnist/t10k-images-idx3-ubyte.gz"), encode_idx_u8(&[n, 28, 28], &pixels, true))
        .unwrap();
    std::fs::write(dir.join("mnist/t10k-labels-idx1-ubyte.gz"), encode_idx_u8(&[n], &labels, false)).unwrap();
}

#[test]
fn mnist_test_split_has_the_published_label_counts() {
    let published = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    let (dirs, expected, scratch) = match shared_data() {
        Some(root) => (DataDirs::only(&root), published.to_vec(), None),
        None => {
            // Without the real files, a generated split with other counts checks the same path.
            let dir = temp("counts");
            let counts = vec![3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
            write_generated_test_split(&dir, &counts);
            (DataDirs::only(&dir), counts, Some(dir))
        }
    };
    let ds = mnist(&dirs, Split::Test).unwrap();
    let n: usize = expected.iter().sum();
    assert_eq!(ds.x.shape(), &[n, 28, 28]);
    assert_eq!(label_counts(&ds.y), expected);
    assert_eq!(ds.classes, Some(10));
    let HostArray::U8(x) = &ds.x else { panic!("images are not u8") };
    assert!(x.iter().any(|&p| p == 255) || scratch.is_some(), "no full-ink pixel in MNIST");
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn mnist_train_split_validation_sizes() {
    let Some(root) = shared_data() else {
        // Without the real files the split arithmetic is still checked on 60000 small rows.
        let ds = dnnc::runtime::data::Dataset {
            name: "rows".into(),
            x: HostArray::U8(ndarray::ArrayD::zeros(ndarray::IxDyn(&[60000, 1]))),
            y: HostArray::I64(ndarray::ArrayD::zeros(ndarray::IxDyn(&[60000]))),
            x_scale: 1.0,
            classes: None,
        };
        let (train, val) = split_validation(&ds, 0.2).unwrap();
        assert_eq!((train.x.len(), val.x.len()), (48000, 12000));
        return;
    };
    let ds = mnist(&DataDirs::only(&root), Split::Train).unwrap();
    assert_eq!(label_counts(&ds.y), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    let (train, val) = split_validation(&ds, 0.2).unwrap();
    assert_eq!((train.x.len(), val.x.len()), (48000, 12000));
    let HostArray::U8(all) = &ds.x else { panic!("images are not u8") };
    let HostArray::U8(last) = &val.x else { panic!("images are not u8") };
    assert_eq!(last.index_axis(ndarray::Axis(0), 0), all.index_axis(ndarray::Axis(0), 48000));
}

#[test]
fn truncated_and_foreign_files_give_named_errors() {
    let dir = temp("corrupt");
    write_generated_test_split(&dir, &[1; 10]);
    let images = dir.join("mnist/t10k-images-idx3-ubyte.gz");
    // Raw and gzip truncation alike.
    let raw = encode_idx_u8(&[10, 28, 28], &[0; 7840], false);
    std::fs::write(&images, &raw[..1234 + 16]).unwrap();
    let err = mnist(&DataDirs::only(&dir), Split::Test).unwrap_err().to_string();
    assert_eq!(
        err,
        "t10k-images-idx3-ubyte.gz: truncated: header says 10×28×28 = 7840 bytes of data, found 1234"
    );
    let gz = encode_idx_u8(&[10, 28, 28], &[0; 7840], true);
    std::fs::write(&images, &gz[..gz.len() / 2]).unwrap();
    let err = mnist(&DataDirs::only(&dir), Split::Test).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. } | DataError::Truncated { .. }), "{err}");
    assert!(err.to_string().starts_with("t10k-images-idx3-ubyte.gz: "), "{err}");
    std::fs::write(&images, b"PK\x03\x04 not an idx file").unwrap();
    let err = mnist(&DataDirs::only(&dir), Split::Test).unwrap_err().to_string();
    assert_eq!(
        err,
        "t10k-images-idx3-ubyte.gz: wrong magic number 0x504B0304, expected 0x0000080X (an IDX file)"
    );
    std::fs::remove_dir_all(dir.join("mnist")).unwrap();
    let err = mnist(&DataDirs::only(&dir), Split::Train).unwrap_err().to_string();
    assert!(
        err.contains("train-images-idx3-ubyte.gz") && err.contains("train-labels-idx1-ubyte.gz"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn batches_are_reproducible_and_refilling_matches() {
    let dir = temp("batches");
    write_generated_test_split(&dir, &[7; 10]);
    let ds = mnist(&DataDirs::only(&dir), Split::Test).unwrap();
    let batcher = Batcher::new(ds, 16, 42).unwrap();
    let first: Vec<_> = batcher.epoch(1).collect();
    assert_eq!(first, batcher.epoch(1).collect::<Vec<_>>());
    assert_ne!(first, batcher.epoch(2).collect::<Vec<_>>());
    let (mut iter, mut reused, mut refilled) = (batcher.epoch(1), Batch::empty(), Vec::new());
    while iter.fill(&mut reused) {
        refilled.push(reused.clone());
    }
    assert_eq!(first, refilled);
    let BatchArray::F32(x) = &first[0].x else { panic!("images should reach the model as f32") };
    assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(first.last().map(|b| b.len()), Some(70 % 16));
    let _ = std::fs::remove_dir_all(dir);
}
