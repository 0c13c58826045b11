//! A frame bitmap: one bit per 4 KiB frame of a physical window, set when
//! the frame is free. Storage is borrowed, so the kernel can place it in
//! memory it carved out before any allocator exists.

/// Why a free was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FreeError {
    /// The frame is outside the window this bitmap covers.
    OutOfRange(u64),
    /// The frame is already free (a double free).
    AlreadyFree(u64),
}

pub struct FrameBitmap<'a> {
    words: &'a mut [u64],
    /// Frame number of bit 0.
    base: u64,
    frames: u64,
    free: u64,
    /// Word index where the next search starts (next fit).
    cursor: usize,
}

impl<'a> FrameBitmap<'a> {
    /// Words needed to cover `frames` frames.
    pub const fn words_for(frames: u64) -> usize {
        frames.div_ceil(64) as usize
    }

    /// A bitmap over frames `base .. base + frames`, all marked used.
    /// `words` must hold at least `words_for(frames)` words.
    pub fn new(words: &'a mut [u64], base: u64, frames: u64) -> Self {
        assert!(words.len() >= Self::words_for(frames), "bitmap storage too small");
        words.fill(0);
        Self { words, base, frames, free: 0, cursor: 0 }
    }

    pub const fn free_frames(&self) -> u64 {
        self.free
    }

    pub const fn total_frames(&self) -> u64 {
        self.frames
    }

    fn index(&self, frame: u64) -> Option<u64> {
        frame.checked_sub(self.base).filter(|&i| i < self.frames)
    }

    pub fn is_free(&self, frame: u64) -> bool {
        self.index(frame).is_some_and(|i| self.words[(i / 64) as usize] & (1 << (i % 64)) != 0)
    }

    /// Marks `frame` free. Refuses frames outside the window and double frees.
    pub fn free(&mut self, frame: u64) -> Result<(), FreeError> {
        let i = self.index(frame).ok_or(FreeError::OutOfRange(frame))?;
        let (w, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.words[w] & bit != 0 {
            return Err(FreeError::AlreadyFree(frame));
        }
        self.words[w] |= bit;
        self.free += 1;
        Ok(())
    }

    /// Marks every frame in `first .. first + count` free (used at start-up).
    pub fn free_range(&mut self, first: u64, count: u64) -> Result<(), FreeError> {
        for f in first..first.saturating_add(count) {
            self.free(f)?;
        }
        Ok(())
    }

    /// Takes one free frame.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let n = self.words.len();
        for step in 0..n {
            let w = (self.cursor + step) % n;
            let word = self.words[w];
            if word != 0 {
                let bit = word.trailing_zeros() as u64;
                self.words[w] &= !(1 << bit);
                self.free -= 1;
                self.cursor = w;
                return Some(self.base + w as u64 * 64 + bit);
            }
        }
        None
    }

    /// Takes `count` contiguous free frames whose first frame number is a
    /// multiple of `align` (a power of two). Returns the first frame.
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Option<u64> {
        if count == 0 || count > self.free || !align.is_power_of_two() {
            return None;
        }
        let mut first = self.base.next_multiple_of(align);
        while first.checked_add(count)? <= self.base + self.frames {
            match (first..first + count).find(|&f| !self.is_free(f)) {
                None => {
                    for f in first..first + count {
                        let i = f - self.base;
                        self.words[(i / 64) as usize] &= !(1 << (i % 64));
                    }
                    self.free -= count;
                    return Some(first);
                }
                // Restart past the used frame, at the next aligned frame.
                Some(used) => first = (used + 1).next_multiple_of(align),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_full_and_frees() {
        let mut words = [0u64; 2];
        let mut b = FrameBitmap::new(&mut words, 100, 100);
        assert_eq!(b.alloc(), None);
        b.free_range(150, 3).unwrap();
        assert_eq!(b.free_frames(), 3);
        let got = [b.alloc().unwrap(), b.alloc().unwrap(), b.alloc().unwrap()];
        assert!(got.iter().all(|f| (150..153).contains(f)));
        assert_eq!(b.alloc(), None);
    }

    #[test]
    fn refuses_double_free_and_out_of_range() {
        let mut words = [0u64; 1];
        let mut b = FrameBitmap::new(&mut words, 10, 20);
        assert_eq!(b.free(9), Err(FreeError::OutOfRange(9)));
        assert_eq!(b.free(30), Err(FreeError::OutOfRange(30)));
        b.free(15).unwrap();
        assert_eq!(b.free(15), Err(FreeError::AlreadyFree(15)));
        assert_eq!(b.free_frames(), 1);
    }

    #[test]
    fn contiguous_respects_alignment_and_holes() {
        let mut words = [0u64; 4];
        let mut b = FrameBitmap::new(&mut words, 0, 256);
        b.free_range(3, 200).unwrap();
        b.alloc_contiguous(1, 1).unwrap();
        let hole = 20;
        assert!(b.is_free(hole));
        // Punch a hole and make sure no run crosses it.
        let mut taken = alloc::vec::Vec::new();
        while let Some(f) = b.alloc() {
            if f == hole {
                break;
            }
            taken.push(f);
        }
        for f in taken {
            b.free(f).unwrap();
        }
        let first = b.alloc_contiguous(16, 16).unwrap();
        assert_eq!(first % 16, 0);
        assert!(first + 16 <= hole || first > hole);
        assert_eq!(b.alloc_contiguous(1000, 1), None);
    }

    extern crate alloc;

    proptest! {
        /// Alloc never hands out a frame twice, frees are checked, and the
        /// free count always equals the number of set bits.
        #[test]
        fn never_hands_out_a_frame_twice(ops in prop::collection::vec((0u8..3, 0u64..200), 1..300)) {
            let mut words = [0u64; 4];
            let mut b = FrameBitmap::new(&mut words, 1000, 200);
            let mut owned = std::collections::BTreeSet::new();
            let mut free = std::collections::BTreeSet::new();
            for (op, n) in ops {
                match op {
                    0 => {
                        let f = 1000 + n;
                        let r = b.free(f);
                        if free.contains(&f) {
                            prop_assert_eq!(r, Err(FreeError::AlreadyFree(f)));
                        } else {
                            prop_assert_eq!(r, Ok(()));
                            owned.remove(&f);
                            free.insert(f);
                        }
                    }
                    1 => if let Some(f) = b.alloc() {
                        prop_assert!(free.remove(&f), "frame {} was not free", f);
                        owned.insert(f);
                    } else {
                        prop_assert!(free.is_empty());
                    },
                    _ => if let Some(f) = b.alloc_contiguous(n % 8 + 1, 1 << (n % 3)) {
                        for g in f..f + n % 8 + 1 {
                            prop_assert!(free.remove(&g));
                            owned.insert(g);
                        }
                    },
                }
                prop_assert_eq!(b.free_frames(), free.len() as u64);
            }
        }
    }

    extern crate std;
}
