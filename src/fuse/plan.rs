//! Static buffer planning by liveness: every stored value gets an offset in one arena,
//! and two values share memory only when their lifetimes do not overlap.
//!
//! A lifetime is the inclusive range of instruction indices from the one that writes the
//! value to the last one that reads it. One exception makes kernels work in place: a value
//! whose last reader is an elementwise kernel that reads it element by element (`Full`
//! access) may hand its memory to an output of that same kernel, since each element is
//! loaded before the element at the same index is stored. Offsets are aligned to
//! [`ALIGN`] elements (one cache line of f32) so that no two buffers share a line.
//!
//! Invariant of [`assign`]: for any two intervals that are live at once (overlapping
//! ranges, the in-place exception aside), the assigned ranges `[offset, offset + size)`
//! are disjoint, and every range ends within the returned total.

/// Offsets are multiples of this many elements (64 bytes of f32).
pub const ALIGN: usize = 16;

/// The lifetime and size of one buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Elements.
    pub size: usize,
    /// The instruction that writes it.
    pub first: usize,
    /// The last instruction that reads it (at least `first`).
    pub last: usize,
    /// Its last reader reads it element by element and may overwrite it in place.
    pub gives_in_place: bool,
    /// Its writer is an elementwise kernel that can take a dying input's memory.
    pub takes_in_place: bool,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Assigns an offset to every interval (first fit, in order of `first`); returns the
/// offsets and the arena length they need.
pub fn assign(intervals: &[Interval]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (intervals[i].first, std::cmp::Reverse(intervals[i].size)));
    let mut offsets = vec![0; intervals.len()];
    // Live buffers: (offset, rounded size, index).
    let mut active: Vec<(usize, usize, usize)> = Vec::new();
    let mut total = 0;
    for &j in &order {
        let new = intervals[j];
        active.retain(|&(_, _, i)| intervals[i].last >= new.first);
        // A dying input of the kernel that writes `new` may hand over its memory, at its
        // own offset and to one output only: any other placement could overlap elements
        // the kernel has yet to read.
        let donor = active.iter().position(|&(_, _, i)| {
            let old = intervals[i];
            old.last == new.first && old.gives_in_place && new.takes_in_place && old.size == new.size
        });
        let size = round_up(new.size.max(1));
        let offset = match donor {
            Some(k) => active.swap_remove(k).0,
            None => {
                active.sort_unstable();
                let mut offset = 0;
                for &(o, s, _) in &active {
                    if offset + size <= o {
                        break;
                    }
                    offset = offset.max(o + s);
                }
                offset
            }
        };
        offsets[j] = offset;
        total = total.max(offset + size);
        active.push((offset, size, j));
    }
    (offsets, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(size: usize, first: usize, last: usize) -> Interval {
        Interval { size, first, last, gives_in_place: false, takes_in_place: false }
    }

    /// Checks the invariant by brute force.
    fn check(intervals: &[Interval], offsets: &[usize], total: usize) {
        for (i, a) in intervals.iter().enumerate() {
            assert!(offsets[i].is_multiple_of(ALIGN) && offsets[i] + a.size <= total);
            for (j, b) in intervals.iter().enumerate().skip(i + 1) {
                let overlap_time = a.first <= b.last && b.first <= a.last;
                let in_place = |x: &Interval, y: &Interval| {
                    x.last == y.first && x.gives_in_place && y.takes_in_place && x.size == y.size
                };
                let disjoint = offsets[i] + a.size <= offsets[j] || offsets[j] + b.size <= offsets[i];
                let handed_over = (in_place(a, b) || in_place(b, a)) && offsets[i] == offsets[j];
                if overlap_time && !disjoint {
                    // Sharing is only ever a hand-over at the very same offset.
                    assert!(handed_over, "{a:?} at {} and {b:?} at {} overlap", offsets[i], offsets[j]);
                }
            }
        }
    }

    #[test]
    fn disjoint_lifetimes_share_memory() {
        let ivs = [iv(100, 0, 1), iv(100, 2, 3), iv(50, 1, 2)];
        let (offsets, total) = assign(&ivs);
        check(&ivs, &offsets, total);
        assert_eq!(offsets[0], offsets[1], "the second buffer reuses the first's memory");
        assert!(total < 250, "total {total}");
    }

    #[test]
    fn in_place_hand_over_only_when_both_sides_allow_it() {
        let mut a = iv(64, 0, 1);
        let mut b = iv(64, 1, 2);
        let (offsets, _) = assign(&[a, b]);
        assert_ne!(offsets[0], offsets[1]);
        a.gives_in_place = true;
        b.takes_in_place = true;
        let (offsets, _) = assign(&[a, b]);
        assert_eq!(offsets[0], offsets[1]);
    }

    #[test]
    fn a_dying_input_goes_to_one_output_at_its_own_offset() {
        // The shape of a kernel that reads %8 and writes two outputs, after a small buffer
        // freed the start of the arena (a first fit used to place an output half over %8).
        let small = iv(30, 0, 1);
        let donor = Interval { size: 25, first: 1, last: 3, gives_in_place: true, takes_in_place: false };
        let bias = iv(5, 2, 4);
        let taker = Interval { size: 25, first: 3, last: 4, gives_in_place: false, takes_in_place: true };
        let ivs = [small, donor, bias, taker, taker];
        let (offsets, total) = assign(&ivs);
        check(&ivs, &offsets, total);
        let shared = [3, 4].iter().filter(|&&t| offsets[t] == offsets[1]).count();
        assert_eq!(shared, 1, "exactly one output takes the donor's memory: {offsets:?}");
    }

    #[test]
    fn random_lifetimes_never_collide() {
        let mut rng = crate::runtime::rng::Rng::new(7);
        for _ in 0..50 {
            let ivs: Vec<Interval> = (0..20)
                .map(|_| {
                    let first = rng.below(30) as usize;
                    let len = rng.below(10) as usize;
                    Interval {
                        size: 1 + rng.below(100) as usize,
                        first,
                        last: first + len,
                        gives_in_place: rng.below(2) == 0,
                        takes_in_place: rng.below(2) == 0,
                    }
                })
                .collect();
            let (offsets, total) = assign(&ivs);
            check(&ivs, &offsets, total);
        }
    }
}
