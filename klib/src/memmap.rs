//! Memory-map arithmetic: which physical frames are free for the allocator,
//! given the RAM regions and the ranges that must never be handed out.

use core::ops::Range;

pub const PAGE: u64 = 4096;

/// A fixed-capacity list of disjoint, sorted, page-aligned ranges.
#[derive(Clone, Debug)]
pub struct RangeSet<const N: usize> {
    ranges: [Range<u64>; N],
    len: usize,
    /// Ranges lost because the set was full.
    pub overflowed: usize,
}

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeSet<N> {
    pub const fn new() -> Self {
        Self { ranges: [const { 0..0 }; N], len: 0, overflowed: 0 }
    }

    pub fn as_slice(&self) -> &[Range<u64>] {
        &self.ranges[..self.len]
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(|r| r.end - r.start).sum()
    }

    /// Adds `r` (shrunk to whole pages), merging with neighbours.
    pub fn insert(&mut self, r: Range<u64>) {
        let start = r.start.div_ceil(PAGE).saturating_mul(PAGE);
        let end = r.end / PAGE * PAGE;
        if start >= end {
            return;
        }
        let mut new = start..end;
        // Absorb every range that overlaps or touches `new`.
        let mut i = 0;
        while i < self.len {
            let cur = self.ranges[i].clone();
            if cur.start <= new.end && new.start <= cur.end {
                new = new.start.min(cur.start)..new.end.max(cur.end);
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        let pos = self.as_slice().iter().position(|c| c.start > new.start).unwrap_or(self.len);
        if self.len == N {
            self.overflowed += 1;
            return;
        }
        self.ranges[pos..=self.len].rotate_right(1);
        self.ranges[pos] = new;
        self.len += 1;
    }

    /// Removes every byte of `r` (widened to whole pages) from the set.
    pub fn remove(&mut self, r: Range<u64>) {
        let start = r.start / PAGE * PAGE;
        let end = r.end.div_ceil(PAGE).saturating_mul(PAGE);
        if start >= end {
            return;
        }
        let mut i = 0;
        while i < self.len {
            let cur = self.ranges[i].clone();
            if cur.end <= start || cur.start >= end {
                i += 1;
                continue;
            }
            self.remove_at(i);
            // Re-insert what is left on either side; it stays disjoint.
            if cur.start < start {
                self.insert(cur.start..start);
                i += 1;
            }
            if end < cur.end {
                self.insert(end..cur.end);
                i += 1;
            }
        }
    }

    fn remove_at(&mut self, i: usize) {
        self.ranges[i..self.len].rotate_left(1);
        self.len -= 1;
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // expected sets of one range
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_and_sorts() {
        let mut s = RangeSet::<8>::new();
        s.insert(0x5000..0x8000);
        s.insert(0x1000..0x2000);
        s.insert(0x2000..0x5000);
        assert_eq!(s.as_slice(), &[0x1000..0x8000]);
    }

    #[test]
    fn insert_shrinks_to_whole_pages() {
        let mut s = RangeSet::<8>::new();
        s.insert(0x1001..0x3fff);
        assert_eq!(s.as_slice(), &[0x2000..0x3000]);
        s.insert(0x9000..0x9fff);
        assert_eq!(s.as_slice(), &[0x2000..0x3000]);
    }

    #[test]
    fn remove_splits_and_widens() {
        let mut s = RangeSet::<8>::new();
        s.insert(0x0..0x10000);
        s.remove(0x3001..0x4001);
        assert_eq!(s.as_slice(), &[0x0..0x3000, 0x5000..0x10000]);
        s.remove(0x0..0x1000);
        s.remove(0xf000..0x20000);
        assert_eq!(s.as_slice(), &[0x1000..0x3000, 0x5000..0xf000]);
    }

    #[test]
    fn full_set_counts_overflow() {
        let mut s = RangeSet::<2>::new();
        s.insert(0x1000..0x2000);
        s.insert(0x3000..0x4000);
        s.insert(0x5000..0x6000);
        assert_eq!(s.as_slice().len(), 2);
        assert_eq!(s.overflowed, 1);
    }

    proptest! {
        /// The set always equals the page-level model: sorted, disjoint,
        /// non-touching, and holding exactly the pages inserted and not removed.
        #[test]
        fn matches_a_page_model(ops in prop::collection::vec((any::<bool>(), 0u64..64, 0u64..64), 1..60)) {
            let mut set = RangeSet::<64>::new();
            let mut model = [false; 64];
            for (add, a, b) in ops {
                let (lo, hi) = (a.min(b), a.max(b));
                if add {
                    set.insert(lo * PAGE..hi * PAGE);
                    for p in &mut model[lo as usize..hi as usize] { *p = true; }
                } else {
                    set.remove(lo * PAGE..hi * PAGE);
                    for p in &mut model[lo as usize..hi as usize] { *p = false; }
                }
            }
            let s = set.as_slice();
            for w in s.windows(2) {
                prop_assert!(w[0].end < w[1].start);
            }
            for (page, &present) in model.iter().enumerate() {
                let addr = page as u64 * PAGE;
                prop_assert_eq!(s.iter().any(|r| r.contains(&addr)), present);
            }
        }
    }
}
