//! Batching: the validation split, the seeded per-epoch shuffle and background prefetch.
//!
//! A [`Batcher`] owns a shared [`Dataset`] and yields, for each epoch, the samples in an
//! order fixed by `(seed, epoch)` alone, cut into batches of `batch_size` (the last one may
//! be smaller). Batches hold what the model reads: `u8` features become `f32` times
//! `x_scale`, `i64` stays `i64` (labels, token ids), `f32` stays `f32`. The prefetching
//! iterator runs the same code on a worker thread, so it yields exactly the same batches.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

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

    /// The same batches as [`Batcher::epoch`], each prepared on a worker thread while the
    /// previous one is in use.
    pub fn epoch_prefetch(&self, epoch: u64) -> Prefetch {
        let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = sync_channel(2);
        let (recycle, spent): (Sender<Batch>, Receiver<Batch>) = channel();
        let mut iter = self.epoch(epoch);
        let handle = std::thread::spawn(move || {
            loop {
                let mut batch = spent.try_recv().unwrap_or_else(|_| Batch::empty());
                if !iter.fill(&mut batch) || tx.send(batch).is_err() {
                    return;
                }
            }
        });
        Prefetch { rx: Some(rx), recycle, handle: Some(handle) }
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

/// Reuses a batch array's buffer when it has the wanted type.
fn take_f32(a: &mut BatchArray) -> Vec<f32> {
    match std::mem::replace(a, BatchArray::I64(ArrayD::zeros(IxDyn(&[0])))) {
        BatchArray::F32(a) => {
            let mut v = a.into_raw_vec_and_offset().0;
            v.clear();
            v
        }
        BatchArray::I64(_) => Vec::new(),
    }
}

fn take_i64(a: &mut BatchArray) -> Vec<i64> {
    match std::mem::replace(a, BatchArray::F32(ArrayD::zeros(IxDyn(&[0])))) {
        BatchArray::I64(a) => {
            let mut v = a.into_raw_vec_and_offset().0;
            v.clear();
            v
        }
        BatchArray::F32(_) => Vec::new(),
    }
}

const SHAPE_OK: &str = "a gathered batch has rows × row width elements";

/// Gathers the rows `rows` of `src` into `out`, converting to the batch type.
fn gather(src: &HostArray, rows: &[usize], scale: f32, out: &mut BatchArray) {
    let mut shape = src.shape().to_vec();
    shape[0] = rows.len();
    let width: usize = shape[1..].iter().product();
    let shape = IxDyn(&shape);
    // Loaders and `Batcher::new` keep arrays in standard layout, so `as_slice` succeeds.
    let rows_of = |r: usize| r * width..(r + 1) * width;
    *out = match src {
        HostArray::U8(a) => {
            let data = a.as_slice().unwrap_or(&[]);
            let mut v = take_f32(out);
            for (i, &r) in rows.iter().enumerate() {
                // Shuffled rows are cache misses: ask for the row after next while this one
                // converts (measured: the loads of source bytes were 63 % of this loop).
                if let Some(&ahead) = rows.get(i + 2) {
                    prefetch(&data[rows_of(ahead)]);
                }
                v.extend(data[rows_of(r)].iter().map(|&b| b as f32 * scale));
            }
            BatchArray::F32(ArrayD::from_shape_vec(shape, v).expect(SHAPE_OK))
        }
        HostArray::F32(a) => {
            let data = a.as_slice().unwrap_or(&[]);
            let mut v = take_f32(out);
            rows.iter().for_each(|&r| v.extend_from_slice(&data[rows_of(r)]));
            BatchArray::F32(ArrayD::from_shape_vec(shape, v).expect(SHAPE_OK))
        }
        HostArray::I64(a) => {
            let data = a.as_slice().unwrap_or(&[]);
            let mut v = take_i64(out);
            rows.iter().for_each(|&r| v.extend_from_slice(&data[rows_of(r)]));
            BatchArray::I64(ArrayD::from_shape_vec(shape, v).expect(SHAPE_OK))
        }
    };
}

/// Hints the CPU to bring `bytes` into cache (a no-op elsewhere than x86-64).
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // Safety: a prefetch never faults, and the address is inside `bytes`.
        unsafe { std::arch::x86_64::_mm_prefetch(line.as_ptr().cast(), std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

impl EpochIter {
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

/// Batches prepared ahead on a worker thread; dropping it stops and joins the worker.
pub struct Prefetch {
    rx: Option<Receiver<Batch>>,
    recycle: Sender<Batch>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Hands a used batch back so that its buffers are reused.
    pub fn recycle(&self, batch: Batch) {
        // The worker may have finished; a batch it never takes back is simply freed.
        let _ = self.recycle.send(batch);
    }
}

impl Iterator for Prefetch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel first makes a worker blocked on `send` return.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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
    fn prefetch_yields_the_sequential_batches() {
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
        for epoch in 0..3 {
            let plain: Vec<Batch> = batcher.epoch(epoch).collect();
            let mut fetched = Vec::new();
            let mut pre = batcher.epoch_prefetch(epoch);
            while let Some(b) = pre.next() {
                fetched.push(b.clone());
                pre.recycle(b);
            }
            assert_eq!(plain, fetched, "epoch {epoch}");
        }
        // Dropping a prefetcher half-way stops its worker.
        let mut pre = batcher.epoch_prefetch(0);
        assert!(pre.next().is_some());
        drop(pre);
    }

    #[test]
    fn bad_requests_are_errors() {
        assert!(Batcher::new(numbered(3), 0, 0).unwrap_err().to_string().contains("batch size"));
        assert!(Batcher::new(numbered(0), 2, 0).unwrap_err().to_string().contains("no samples"));
        assert!(Batcher::new(numbered(3), 2, 0).unwrap().with_augment(Augment::default()).is_err());
    }
}
