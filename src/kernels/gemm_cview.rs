//! C as the blocked product writes it: a raw view of the caller's `&mut [f32]` that can be
//! cut into blocks for two threads. The column halves of a row-major C interleave in memory,
//! so they cannot be two `&mut` slices; each view instead keeps the span from its first
//! element to the end of C, and the product writes only its own rows and columns of it.
//! Every write is bounds-checked against that span, so a wrong index panics instead of
//! writing outside C.

use std::marker::PhantomData;

/// The part of C from `ptr` on, `len` elements, of which one block of the product is
/// written through this view.
pub(crate) struct CView<'a> {
    ptr: *mut f32,
    len: usize,
    _c: PhantomData<&'a mut [f32]>,
}

// Safety: a view is only a pointer into a `&mut [f32]` the product borrows for `'a`; views
// sent to another thread (by `split_off`) write disjoint elements.
unsafe impl Send for CView<'_> {}

impl<'a> CView<'a> {
    pub(crate) fn new(c: &'a mut [f32]) -> CView<'a> {
        CView { ptr: c.as_mut_ptr(), len: c.len(), _c: PhantomData }
    }

    /// Two views: this one, and one starting `at` elements later (clamped to the end).
    ///
    /// # Safety
    /// The caller writes through each only elements no write through the other touches
    /// (disjoint blocks of an injective C), so neither view ever aliases a live write.
    pub(crate) unsafe fn split_off(self, at: usize) -> (CView<'a>, CView<'a>) {
        let at = at.min(self.len);
        // Safety: `at ≤ len`, inside the borrowed slice.
        let second = CView { ptr: unsafe { self.ptr.add(at) }, len: self.len - at, _c: PhantomData };
        (self, second)
    }

    /// A pointer to element `at`, after checking that `rows` rows of `cols` elements,
    /// `stride` apart, starting there lie inside the view.
    pub(crate) fn block(&mut self, at: usize, rows: usize, stride: usize, cols: usize) -> *mut f32 {
        let end = if rows == 0 || cols == 0 { at } else { at + (rows - 1) * stride + cols };
        assert!(end <= self.len, "C block ending at {end} outside a view of {}", self.len);
        // Safety: `at ≤ end ≤ len`.
        unsafe { self.ptr.add(at) }
    }

    /// The `cols` contiguous elements from `at`: a row of this view's block.
    pub(crate) fn row(&mut self, at: usize, cols: usize) -> &mut [f32] {
        let ptr = self.block(at, 1, 0, cols);
        // Safety: in bounds (checked by `block`) and written by this view's block only, so
        // no other reference to these elements is live while the slice is.
        unsafe { std::slice::from_raw_parts_mut(ptr, cols) }
    }

    /// Element `at`.
    pub(crate) fn at(&mut self, at: usize) -> &mut f32 {
        &mut self.row(at, 1)[0]
    }
}
