//! f32 buffers that start on a cache line: the compiled step's arena, the parameters and
//! optimizer slots a training step updates in place, and the matrix product's packed panels.
//!
//! Why: a `Vec<f32>` starts wherever the allocator puts it, often 16, 32 or 48 bytes past a
//! line, and where exactly changed from run to run with something as unrelated as the length
//! of the command line (it shifts every later heap allocation). Then each 64-byte load of a
//! buffer's rows straddled two lines. Measured on the MNIST MLP (Zen 5, medians of 3000
//! steps): the weight-gradient sums, which load `dY`'s 512-byte rows, took 10.3–11.0
//! instead of 7.7–8.2 µs a thread, and `X·W`, which loads W's rows, 8.3–8.5 instead of
//! 6.5 µs. The blocked product's packing buffers were 16, 32 or 48 bytes past a line in
//! every run looked at (the worker thread's B panels always 32): GEMM 1000³ on one thread
//! ran at 151–158 GFLOP/s, and at 174–178 once they started on lines.

use std::ops::{Deref, DerefMut};

/// Elements in a cache line of f32s.
pub const LINE: usize = 16;

/// One cache line of f32s, the unit the buffers are allocated in.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; LINE]);

/// A fixed-length f32 buffer whose first element starts a cache line.
#[derive(Clone)]
pub struct AlignedF32 {
    lines: Box<[Line]>,
    len: usize,
}

impl AlignedF32 {
    /// `len` zeros.
    pub fn zeros(len: usize) -> AlignedF32 {
        AlignedF32 { lines: vec![Line([0.0; LINE]); len.div_ceil(LINE)].into_boxed_slice(), len }
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[f32]) -> AlignedF32 {
        let mut buffer = AlignedF32::zeros(values.len());
        buffer.copy_from_slice(values);
        buffer
    }
}

impl Default for AlignedF32 {
    /// An empty buffer (no allocation).
    fn default() -> AlignedF32 {
        AlignedF32::zeros(0)
    }
}

impl Deref for AlignedF32 {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // Safety: `lines` holds `len.div_ceil(LINE) · LINE ≥ len` initialized f32s in one
        // allocation (`Line` is `repr(C)`: sixteen f32s, no padding), borrowed with `self`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }
}

impl DerefMut for AlignedF32 {
    fn deref_mut(&mut self) -> &mut [f32] {
        // Safety: as for `deref`, borrowed mutably with `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

impl std::fmt::Debug for AlignedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_a_line_and_hold_their_values() {
        for len in [0, 1, 15, 16, 17, 100_352] {
            let values: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut buffer = AlignedF32::from_slice(&values);
            assert_eq!(buffer.as_ptr() as usize % 64, 0, "len {len}");
            assert_eq!(&buffer[..], &values[..]);
            buffer.iter_mut().for_each(|v| *v += 1.0);
            let copy = buffer.clone();
            assert_eq!(copy.as_ptr() as usize % 64, 0, "a clone starts a line too");
            assert!(copy.iter().zip(&values).all(|(&c, &v)| c == v + 1.0));
            assert!(AlignedF32::zeros(len).iter().all(|&v| v == 0.0));
        }
        assert!(AlignedF32::default().is_empty());
    }
}
