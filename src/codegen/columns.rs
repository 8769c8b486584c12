//! The native `slice` and `pad` along the last axis: windows of columns copied from
//! row-major matrices into one row-major matrix, row by row ([`Instr::Columns`]).
//!
//! Invariant: every part's window lies inside its source row and its destination row,
//! and the destination windows are disjoint (checked by [`Columns::slice`] and
//! [`Columns::pad`], which return `None` otherwise), so every copy stays in bounds and the
//! parts write distinct elements.
//!
//! [`Instr::Columns`]: super::specialize::Instr::Columns

/// One source of a [`Columns`] copy: `len` columns from `from_start` of rows of
/// `from_width`, to columns `to_start..` of the destination.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub from_width: usize,
    pub from_start: usize,
    pub to_start: usize,
    pub len: usize,
}

/// `rows` rows of a `[rows, to_width]` destination, each the parts' windows side by side;
/// with `zero`, the columns no part covers become 0 (a pad with gaps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    pub rows: usize,
    pub to_width: usize,
    pub zero: bool,
    pub parts: Vec<Part>,
}

impl Columns {
    /// `slice{start, len}` of a value of shape `shape` (the last axis sliced).
    pub fn slice(shape: &[usize], start: usize, len: usize) -> Option<Columns> {
        let (&width, lead) = shape.split_last()?;
        let part = Part { from_width: width, from_start: start, to_start: 0, len };
        Columns { rows: lead.iter().product(), to_width: len, zero: false, parts: vec![part] }.checked()
    }

    /// `pad{starts, total}` of values of shapes `shapes`.
    pub fn pad(shapes: &[&[usize]], starts: &[usize], total: usize) -> Option<Columns> {
        let lead = shapes.first()?.split_last()?.1;
        let mut parts = Vec::with_capacity(shapes.len());
        for (shape, &start) in shapes.iter().zip(starts) {
            let (&len, l) = shape.split_last()?;
            if l.iter().product::<usize>() != lead.iter().product::<usize>() {
                return None;
            }
            parts.push(Part { from_width: len, from_start: 0, to_start: start, len });
        }
        let covered: usize = parts.iter().map(|p| p.len).sum();
        Columns { rows: lead.iter().product(), to_width: total, zero: covered < total, parts }.checked()
    }

    /// `self` when every window fits its rows and the destination windows are disjoint.
    fn checked(self) -> Option<Columns> {
        let fits =
            |start: usize, len: usize, width: usize| start.checked_add(len).is_some_and(|e| e <= width);
        let mut windows: Vec<(usize, usize)> = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            if !fits(p.from_start, p.len, p.from_width) || !fits(p.to_start, p.len, self.to_width) {
                return None;
            }
            windows.push((p.to_start, p.to_start + p.len));
        }
        windows.sort_unstable();
        let disjoint = windows.windows(2).all(|w| w[1].0 >= w[0].1);
        disjoint.then_some(self)
    }

    /// Elements of source `i`.
    pub fn from_len(&self, i: usize) -> usize {
        self.parts.get(i).map_or(0, |p| self.rows * p.from_width)
    }

    /// Elements of the destination.
    pub fn to_len(&self) -> usize {
        self.rows * self.to_width
    }

    /// Copies the windows of `from` (source `i` with [`Columns::from_len`] elements) into
    /// `to` ([`Columns::to_len`] elements).
    pub fn run<'a>(&self, from: impl Fn(usize) -> &'a [f32], to: &mut [f32]) {
        if self.zero {
            to.fill(0.0);
        }
        for (i, p) in self.parts.iter().enumerate() {
            if p.len == 0 {
                continue;
            }
            let src = from(i);
            for (s, d) in
                src.chunks_exact(p.from_width).zip(to.chunks_exact_mut(self.to_width)).take(self.rows)
            {
                d[p.to_start..p.to_start + p.len].copy_from_slice(&s[p.from_start..p.from_start + p.len]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy element by element, as the definitions of slice and pad say.
    fn naive(c: &Columns, from: &[&[f32]]) -> Vec<f32> {
        let mut out = vec![0.0; c.to_len()];
        for (p, src) in c.parts.iter().zip(from) {
            for r in 0..c.rows {
                for j in 0..p.len {
                    out[r * c.to_width + p.to_start + j] = src[r * p.from_width + p.from_start + j];
                }
            }
        }
        out
    }

    #[test]
    fn slice_and_pad_match_the_element_by_element_copy() {
        let from: Vec<f32> = (0..3 * 8).map(|i| i as f32 + 1.0).collect();
        let s = Columns::slice(&[3, 8], 2, 5).expect("fits");
        let mut out = vec![f32::NAN; 15];
        s.run(|_| &from, &mut out);
        assert_eq!(out, naive(&s, &[&from]));
        assert_eq!(&out[..5], &[3.0, 4.0, 5.0, 6.0, 7.0]);

        let p = Columns::pad(&[&[3, 5]], &[2], 8).expect("fits");
        assert!(p.zero);
        let mut padded = vec![f32::NAN; 24];
        p.run(|_| &out, &mut padded);
        assert_eq!(padded, naive(&p, &[&out]));
        assert_eq!(&padded[..8], &[0.0, 0.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0]);
    }

    #[test]
    fn a_pad_covering_the_axis_is_a_concatenation_without_zeroing() {
        let a: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..4).map(|i| 10.0 + i as f32).collect();
        let c = Columns::pad(&[&[2, 3], &[2, 2]], &[2, 0], 5).expect("fits");
        assert!(!c.zero);
        let mut out = vec![f32::NAN; 10];
        let srcs = [a.as_slice(), b.as_slice()];
        c.run(|i| srcs[i], &mut out);
        assert_eq!(out, vec![10.0, 11.0, 0.0, 1.0, 2.0, 12.0, 13.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn windows_outside_the_row_or_overlapping_are_refused() {
        assert_eq!(Columns::slice(&[3, 8], 4, 5), None);
        assert_eq!(Columns::pad(&[&[3, 5]], &[4], 8), None);
        assert_eq!(Columns::pad(&[&[3, 2], &[3, 2]], &[0, 1], 8), None);
        assert_eq!(Columns::pad(&[&[3, 2], &[2, 2]], &[0, 2], 8), None);
        assert_eq!(Columns::slice(&[], 0, 1), None);
    }
}
