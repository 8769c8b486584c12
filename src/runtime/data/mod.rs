//! Data sources: loaders for dataset files, batching and the data search path.
//!
//! Every loader returns a [`Dataset`]: whole arrays held in memory in their compact
//! element type (images stay `u8`), with a note on how to turn a batch into the `f32` the
//! model reads. Batching, shuffling and the validation split work on any dataset.
//!
//! Submodules:
//! - [`locate`]: the search path (`--data`, `$DNNC_DATA`, the cache) and downloads by `curl`;
//! - [`error`]: [`DataError`], the one error type of every loader;
//! - [`idx`]: IDX files (raw or gzip); [`mnist`]: MNIST and Fashion-MNIST;
//! - [`batch`]: the validation split, the seeded [`Batcher`] and its epochs' batches;
//! - [`csv`]: numeric CSV; [`npy`]: NumPy `.npy`/`.npz` (with [`zip`], a minimal ZIP reader);
//! - [`random`]: seeded synthetic datasets with learnable labels;
//! - [`cifar`]: CIFAR-10 binary batches and a stand-in written from MNIST;
//! - [`text`]: the tokenizer, vocabulary and padding; [`imdb`]: the IMDB reviews, cached encoded;
//! - [`augment`]: seeded shifts, flips and rotations of image batches;
//! - [`md5`]: checks downloads against published sums.

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod csv;
pub mod error;
pub mod idx;
pub mod imdb;
pub mod locate;
pub mod md5;
pub mod mnist;
pub mod npy;
pub mod random;
pub mod text;
pub mod zip;

pub use augment::Augment;
pub use batch::{Batch, BatchArray, Batcher, EpochIter, split_validation};
pub use cifar::{cifar10, write_standin_cifar};
pub use csv::{CsvOptions, LabelColumn, read_csv};
pub use error::DataError;
pub use imdb::{ImdbOptions, imdb};
pub use locate::DataDirs;
pub use mnist::{Split, fashion_mnist, mnist};
pub use npy::{read_npy, read_npz};
pub use text::{Pad, Vocabulary, tokenize};

use ndarray::ArrayD;

/// A host array in the element type it is stored in.
#[derive(Clone, Debug, PartialEq)]
pub enum HostArray {
    U8(ArrayD<u8>),
    I64(ArrayD<i64>),
    F32(ArrayD<f32>),
}

impl HostArray {
    pub fn shape(&self) -> &[usize] {
        match self {
            HostArray::U8(a) => a.shape(),
            HostArray::I64(a) => a.shape(),
            HostArray::F32(a) => a.shape(),
        }
    }

    /// Number of samples: the length of the first axis.
    pub fn len(&self) -> usize {
        self.shape().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> crate::shape::DType {
        match self {
            HostArray::U8(_) => crate::shape::DType::U8,
            HostArray::I64(_) => crate::shape::DType::I64,
            HostArray::F32(_) => crate::shape::DType::F32,
        }
    }
}

/// Features and labels of one split of a dataset, sample-major (axis 0 is the sample).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// For messages: `mnist (train)`.
    pub name: String,
    pub x: HostArray,
    pub y: HostArray,
    /// `u8` features are multiplied by this when a batch is made (1/255 for images).
    pub x_scale: f32,
    /// Number of classes for classification labels, when known.
    pub classes: Option<usize>,
}
