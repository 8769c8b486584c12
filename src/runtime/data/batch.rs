//! Batching: the validation split and the seeded per-epoch shuffle.
//!
//! A [`Batcher`] owns a shared [`Dataset`] and yields, for each epoch, the samples in an
//! order fixed by `(seed, epoch)` alone, cut into batches of `batch_size` (the last one may
//! be smaller). Batches hold what the model reads: `u8` features become `f32` times
//! `x_scale`, `i64` stays `i64` (labels, token ids), `f32` stays `f32`.
//!
//! Why no prefetching thread: a training step keeps every core busy (its team of workers
//! spins between the halves of its products), so a thread preparing the next batch only
//! ran when the OS took a core from the step. On the MNIST MLP (2 cores) the step waited
//! 20–40 µs per batch for it, against 14 µs to gather the batch in place; the rows of a
//! large batch are now gathered by the two halves of the team (`kernels::team`).

use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use super::augment::Augment;
use super::error::DataError;
use super::{Dataset, HostArray};
use crate::runtime::rng::Rng;

/// One side of a batch, in the type the model reads.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchArray {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl BatchArray {
    pub fn shape(&self) -> &[usize] {
        match self {
            BatchArray::F32(a) => a.shape(),
            BatchArray::I64(a) => a.shape(),
        }
    }
}

/// Features and labels of a few samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub x: BatchArray,
    pub y: BatchArray,
}

impl Batch {
    /// An empty batch, to be filled by [`EpochIter::fill`].
    pub fn empty() -> Batch {
        Batch {
            x: BatchArray::F32(ArrayD::zeros(IxDyn(&[0]))),
            y: BatchArray::F32(ArrayD::zeros(IxDyn(&[0]))),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.shape().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn slice_rows(a: &HostArray, from: usize, to: usize) -> HostArray {
    let s = Slice::from(from..to);
    match a {
        HostArray::U8(a) => HostArray::U8(a.slice_axis(Axis(0), s).to_owned()),
        HostArray::I64(a) => HostArray::I64(a.slice_axis(Axis(0), s).to_owned()),
        HostArray::F32(a) => HostArray::F32(a.slice_axis(Axis(0), s).to_owned()),
    }
}

/// Splits off the last `fraction` of the samples as validation data, before any shuffle,
/// as Keras' `validation_split` does: the training part keeps floor(N × (1 − fraction)).
pub fn split_validation(data: &Dataset, fraction: f64) -> Result<(Dataset, Dataset), DataError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::Usage(format!("validation fraction {fraction} is not in [0, 1)")));
    }
    let n = data.x.len();
    let at = ((n as f64) * (1.0 - fraction)).floor() as usize;
    let part = |from, to, tag: &str| Dataset {
        name: format!("{} {tag}", data.name),
        x: slice_rows(&data.x, from, to),
        y: slice_rows(&data.y, from, to),
        x_scale: data.x_scale,
        classes: data.classes,
    };
    Ok((part(0, at, "[training part]"), part(at, n, "[validation part]")))
}

fn standard(a: &HostArray) -> HostArray {
    match a {
        HostArray::U8(a) => HostArray::U8(a.as_standard_layout().into_owned()),
        HostArray::I64(a) => HostArray::I64(a.as_standard_layout().into_owned()),
        HostArray::F32(a) => HostArray::F32(a.as_standard_layout().into_owned()),
    }
}

fn is_standard(a: &HostArray) -> bool {
    match a {
        HostArray::U8(a) => a.is_standard_layout(),
        HostArray::I64(a) => a.is_standard_layout(),
        HostArray::F32(a) => a.is_standard_layout(),
    }
}

/// Cuts a dataset into shuffled batches, epoch after epoch.
#[derive(Clone, Debug)]
pub struct Batcher {
    data: Arc<Dataset>,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    augment: Option<Augment>,
}

impl Batcher {
    /// Fails on batch size 0, an empty dataset, or features and labels of different N.
    pub fn new(data: impl Into<Arc<Dataset>>, batch_size: usize, seed: u64) -> Result<Batcher, DataError> {
        let mut data: Arc<Dataset> = data.into();
        if batch_size == 0 {
            return Err(DataError::Usage("batch size must be at least 1".into()));
        }
        if data.x.is_empty() {
            return Err(DataError::Usage(format!("dataset {} has no samples", data.name)));
        }
        if data.x.len() != data.y.len() {
            return Err(DataError::Usage(format!(
                "dataset {}: {} feature rows but {} labels",
                data.name,
                data.x.len(),
                data.y.len()
            )));
        }
        let y_bytes = matches!(data.y, HostArray::U8(_));
        if !is_standard(&data.x) || !is_standard(&data.y) || y_bytes {
            let d = Arc::make_mut(&mut data);
            d.x = standard(&d.x);
            d.y = match &d.y {
                // Labels stored as bytes are class ids: widen them once here.
                HostArray::U8(a) => HostArray::I64(a.mapv(i64::from).as_standard_layout().into_owned()),
                y => standard(y),
            };
        }
        Ok(Batcher { data, batch_size, seed, shuffle: true, augment: None })
    }

    /// Keeps the stored order (for evaluation).
    pub fn without_shuffle(mut self) -> Batcher {
        self.shuffle = false;
        self
    }

    /// Augments every batch; the features must be images `[N, H, W, C]`.
    pub fn with_augment(mut self, augment: Augment) -> Result<Batcher, DataError> {
        if self.data.x.shape().len() != 4 {
            return Err(DataError::Usage(format!(
                "augmentation needs images [N, H, W, C], but {} has features of shape {:?}",
                self.data.name,
                self.data.x.shape()
            )));
        }
        self.augment = Some(augment);
        Ok(self)
    }

    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.data.x.len().div_ceil(self.batch_size)
    }

    /// The sample order of an epoch: a function of (seed, epoch) only.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.x.len()).collect();
        if self.shuffle {
            Rng::derive(self.seed, epoch).shuffle(&mut order);
        }
        order
    }

    pub fn epoch(&self, epoch: u64) -> EpochIter {
        EpochIter { batcher: self.clone(), order: self.order(epoch), epoch, next: 0 }
    }
}

/// The batches of one epoch, in order.
#[derive(Debug)]
pub struct EpochIter {
    batcher: Batcher,
    order: Vec<usize>,
    epoch: u64,
    next: usize,
}

/// Reuses a batch array's buffer when it has the wanted type, elements and all: the
/// gather overwrites them (clearing first would write every element twice).
fn take_f32(a: &mut BatchArray) -> Vec<f32> {
    match std::mem::replace(a, BatchArray::I64(ArrayD::zeros(IxDyn(&[0])))) {
        BatchArray::F32(a) => a.into_raw_vec_and_offset().0,
        BatchArray::I64(_) => Vec::new(),
    }
}

fn take_i64(a: &mut BatchArray) -> Vec<i64> {
    match std::mem::replace(a, BatchArray::F32(ArrayD::zeros(IxDyn(&[0])))) {
        BatchArray::I64(a) => a.into_raw_vec_and_offset().0,
        BatchArray::F32(_) => Vec::new(),
    }
}

const SHAPE_OK: &str = "a gathered batch has rows × row width elements";

/// Elements from which a batch's rows are gathered by two threads (an MNIST batch of 32
/// images has 25 088).
const PARALLEL_GATHER: usize = 1 << 14;

/// Gathers the rows `rows` of `src` into `out`, converting to the batch type.
fn gather(src: &HostArray, rows: &[usize], scale: f32, out: &mut BatchArray) {
    // An `IxDyn` of up to four axes lives inline: no allocation per batch.
    let mut shape = IxDyn(src.shape());
    shape[0] = rows.len();
    let width: usize = src.shape()[1..].iter().product();
    // Loaders and `Batcher::new` keep arrays in standard layout, so `as_slice` succeeds.
    *out = match src {
        HostArray::U8(a) => {
            let mut v = take_f32(out);
            let convert = |from: &[u8], to: &mut [f32]| {
                for (t, &b) in to.iter_mut().zip(from) {
                    *t = b as f32 * scale;
                }
            };
            gather_rows(a.as_slice().unwrap_or(&[]), rows, width, &mut v, convert);
            BatchArray::F32(ArrayD::from_shape_vec(shape, v).expect(SHAPE_OK))
        }
        HostArray::F32(a) => {
            let mut v = take_f32(out);
            gather_rows(a.as_slice().unwrap_or(&[]), rows, width, &mut v, |from, to| {
                to.copy_from_slice(from)
            });
            BatchArray::F32(ArrayD::from_shape_vec(shape, v).expect(SHAPE_OK))
        }
        HostArray::I64(a) => {
            let mut v = take_i64(out);
            gather_rows(a.as_slice().unwrap_or(&[]), rows, width, &mut v, |from, to| {
                to.copy_from_slice(from)
            });
            BatchArray::I64(ArrayD::from_shape_vec(shape, v).expect(SHAPE_OK))
        }
    };
}

/// Sets `out` to `rows.len()` rows of `width`, row `i` made by `copy` from row `rows[i]` of
/// `src` (the old elements of `out` are all overwritten); a large batch in two halves on
/// two threads of the team.
fn gather_rows<T: Sync, U: Copy + Default + Send>(
    src: &[T],
    rows: &[usize],
    width: usize,
    out: &mut Vec<U>,
    copy: impl Fn(&[T], &mut [U]) + Sync,
) {
    out.resize(rows.len() * width, U::default());
    if width == 0 {
        return;
    }
    let half = rows.len() / 2;
    if out.len() >= PARALLEL_GATHER && half > 0 {
        let (first, second) = out.split_at_mut(half * width);
        let (rows_first, rows_second) = rows.split_at(half);
        crate::kernels::team::join(
            || gather_part(src, rows_first, width, first, &copy),
            || gather_part(src, rows_second, width, second, &copy),
        );
    } else {
        gather_part(src, rows, width, out, &copy);
    }
}

fn gather_part<T, U>(src: &[T], rows: &[usize], width: usize, out: &mut [U], copy: &impl Fn(&[T], &mut [U])) {
    let row = |r: usize| &src[r * width..(r + 1) * width];
    for (i, (&r, to)) in rows.iter().zip(out.chunks_exact_mut(width)).enumerate() {
        // Shuffled rows are cache misses: ask for the row after next while this one is
        // copied (measured: the loads of source bytes were 63 % of the loop).
        if let Some(&ahead) = rows.get(i + 2) {
            prefetch(row(ahead));
        }
        copy(row(r), to);
    }
}

fn prefetch_rows<T>(src: &[T], rows: &[usize], width: usize) {
    for &r in rows {
        if let Some(row) = src.get(r * width..(r + 1) * width) {
            prefetch(row);
        }
    }
}

/// Hints the CPU to bring `values` into cache (a no-op elsewhere than x86-64).
fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let (start, bytes) = (values.as_ptr().cast::<u8>(), std::mem::size_of_val(values));
        for offset in (0..bytes).step_by(64) {
            // Safety: a prefetch never faults, and the address is inside `values`.
            unsafe {
                std::arch::x86_64::_mm_prefetch(start.add(offset).cast(), std::arch::x86_64::_MM_HINT_T0)
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

impl EpochIter {
    /// Asks the CPU to start loading the source rows of the next batch's features, so that
    /// the next `fill`, a training step later, finds them in cache: shuffled rows of a
    /// dataset larger than the cache are memory misses, and gathering MNIST's 32 rows took
    /// 11–20 µs on 2 cores while waiting for them.
    pub fn prefetch_next(&self) {
        let b = &self.batcher;
        let end = (self.next + b.batch_size).min(self.order.len());
        let rows = &self.order[self.next.min(end)..end];
        let width: usize = b.data.x.shape()[1..].iter().product();
        match &b.data.x {
            HostArray::U8(a) => prefetch_rows(a.as_slice().unwrap_or(&[]), rows, width),
            HostArray::F32(a) => prefetch_rows(a.as_slice().unwrap_or(&[]), rows, width),
            HostArray::I64(a) => prefetch_rows(a.as_slice().unwrap_or(&[]), rows, width),
        }
    }

    /// Fills `batch` with the next batch, reusing its buffers; false once the epoch is over.
    pub fn fill(&mut self, batch: &mut Batch) -> bool {
        let b = &self.batcher;
        if self.next >= self.order.len() {
            return false;
        }
        let end = (self.next + b.batch_size).min(self.order.len());
        let rows = &self.order[self.next..end];
        let index = (self.next / b.batch_size) as u64;
        self.next = end;
        gather(&b.data.x, rows, b.data.x_scale, &mut batch.x);
        gather(&b.data.y, rows, 1.0, &mut batch.y);
        if let (Some(aug), BatchArray::F32(x)) = (&b.augment, &mut batch.x) {
            let mut rng = Rng::derive(b.seed ^ 0xA96_3E7A_u64, (self.epoch << 32) ^ index);
            // `with_augment` checked the rank, the only way `apply` can fail.
            let _ = aug.apply(x, &mut rng);
        }
        true
    }
}

impl Iterator for EpochIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut batch = Batch::empty();
        self.fill(&mut batch).then_some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample i has features [i, i+1] (as bytes) and label i.
    fn numbered(n: usize) -> Dataset {
        Dataset {
            name: "numbered".into(),
            x: HostArray::U8(ArrayD::from_shape_fn(IxDyn(&[n, 2]), |i| ((i[0] + i[1]) % 256) as u8)),
            y: HostArray::I64(ArrayD::from_shape_fn(IxDyn(&[n]), |i| i[0] as i64)),
            x_scale: 0.5,
            classes: None,
        }
    }

    fn labels(b: &Batch) -> Vec<i64> {
        match &b.y {
            BatchArray::I64(a) => a.iter().copied().collect(),
            BatchArray::F32(_) => panic!("labels should stay i64"),
        }
    }

    #[test]
    fn validation_split_takes_the_last_fraction() {
        let (train, val) = split_validation(&numbered(60000), 0.2).unwrap();
        assert_eq!((train.x.len(), val.x.len()), (48000, 12000));
        assert_eq!(val.y, HostArray::I64(ArrayD::from_shape_fn(IxDyn(&[12000]), |i| 48000 + i[0] as i64)));
        let (all, none) = split_validation(&numbered(10), 0.0).unwrap();
        assert_eq!((all.x.len(), none.x.len()), (10, 0));
        assert!(split_validation(&numbered(10), 1.0).is_err());
    }

    #[test]
    fn an_epoch_visits_every_sample_once_in_batches_with_a_partial_last() {
        let batcher = Batcher::new(numbered(10), 4, 1).unwrap();
        let batches: Vec<Batch> = batcher.epoch(0).collect();
        assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert_eq!(batcher.batches_per_epoch(), 3);
        let mut seen: Vec<i64> = batches.iter().flat_map(labels).collect();
        let order = seen.clone();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_ne!(order, seen, "the epoch was not shuffled");
        // Features follow their labels and bytes are scaled by x_scale.
        let BatchArray::F32(x) = &batches[0].x else { panic!("u8 features should become f32") };
        for (row, &label) in labels(&batches[0]).iter().enumerate() {
            assert_eq!(x[[row, 1]], (label + 1) as f32 * 0.5);
        }
    }

    #[test]
    fn order_depends_on_seed_and_epoch_only() {
        let a = Batcher::new(numbered(50), 7, 9).unwrap();
        let b = Batcher::new(numbered(50), 7, 9).unwrap();
        let run = |bt: &Batcher, e| bt.epoch(e).flat_map(|b| labels(&b)).collect::<Vec<_>>();
        assert_eq!(run(&a, 3), run(&b, 3));
        assert_ne!(run(&a, 3), run(&a, 4));
        let c = Batcher::new(numbered(50), 7, 10).unwrap();
        assert_ne!(run(&a, 3), run(&c, 3));
        let plain = a.clone().without_shuffle();
        assert_eq!(run(&plain, 5), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_refilled_batch_equals_a_fresh_one() {
        let images = Dataset {
            name: "images".into(),
            x: HostArray::U8(ArrayD::from_shape_fn(IxDyn(&[23, 4, 4, 1]), |i| {
                (i[0] * 16 + i[1] * 4 + i[2]) as u8
            })),
            y: HostArray::U8(ArrayD::from_shape_fn(IxDyn(&[23]), |i| (i[0] % 3) as u8)),
            x_scale: 1.0,
            classes: Some(3),
        };
        let aug = Augment { max_shift: 1, flip: true, max_degrees: 10.0 };
        let batcher = Batcher::new(images, 5, 2).unwrap().with_augment(aug).unwrap();
        let mut reused = Batch::empty();
        for epoch in 0..3 {
            let fresh: Vec<Batch> = batcher.epoch(epoch).collect();
            let mut refilled = Vec::new();
            let mut iter = batcher.epoch(epoch);
            // The last batch is shorter: the buffers shrink and grow again next epoch.
            while iter.fill(&mut reused) {
                refilled.push(reused.clone());
            }
            assert_eq!(fresh, refilled, "epoch {epoch}");
        }
    }

    /// Batches large enough to be gathered by two threads hold, row for row, the samples
    /// of their labels, for bytes, floats and integers, odd and even batch sizes.
    #[test]
    fn batches_gathered_on_two_threads_hold_their_samples() {
        let (n, width) = (300usize, 200usize);
        let value = |i: usize, j: usize| (i * 7 + j * 3) % 251;
        let labels_of = |n: usize| HostArray::I64(ArrayD::from_shape_fn(IxDyn(&[n]), |i| i[0] as i64));
        let sources = [
            HostArray::U8(ArrayD::from_shape_fn(IxDyn(&[n, width]), |i| value(i[0], i[1]) as u8)),
            HostArray::F32(ArrayD::from_shape_fn(IxDyn(&[n, width]), |i| value(i[0], i[1]) as f32)),
            HostArray::I64(ArrayD::from_shape_fn(IxDyn(&[n, width]), |i| value(i[0], i[1]) as i64)),
        ];
        for x in sources {
            for batch in [PARALLEL_GATHER / width + 1, 2 * (PARALLEL_GATHER / width) + 3] {
                assert!(batch * width >= PARALLEL_GATHER);
                let data = Dataset {
                    name: "rows".into(),
                    x: x.clone(),
                    y: labels_of(n),
                    x_scale: 0.5,
                    classes: None,
                };
                let scale = if matches!(x, HostArray::U8(_)) { 0.5 } else { 1.0 };
                for b in Batcher::new(data, batch, 4).unwrap().epoch(1) {
                    let got: Vec<f64> = match &b.x {
                        BatchArray::F32(a) => a.iter().map(|&v| v as f64).collect(),
                        BatchArray::I64(a) => a.iter().map(|&v| v as f64).collect(),
                    };
                    assert_eq!(got.len(), b.len() * width);
                    for (row, &label) in labels(&b).iter().enumerate() {
                        for j in 0..width {
                            let want = value(label as usize, j) as f64 * scale;
                            assert_eq!(got[row * width + j], want, "sample {label}, column {j}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        assert!(Batcher::new(numbered(3), 0, 0).unwrap_err().to_string().contains("batch size"));
        assert!(Batcher::new(numbered(0), 2, 0).unwrap_err().to_string().contains("no samples"));
        assert!(Batcher::new(numbered(3), 2, 0).unwrap().with_augment(Augment::default()).is_err());
    }
}
