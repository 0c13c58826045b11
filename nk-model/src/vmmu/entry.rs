//! What a page-table entry points at, given the level of its table: the one
//! reading of an entry that the rules, the reference counts and the checker
//! share, so that they cannot disagree about which frames an entry covers.

use super::level::Level;
use crate::pte::{Pte, PteFlags};
use core::ops::Range;

/// Entries in a page-table page.
pub const ENTRIES: usize = 512;

/// The frames a present entry points at: one page-table page (non-leaf), or
/// the run of frames a leaf maps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Target {
    pub first: u64,
    pub count: u64,
    pub leaf: bool,
}

impl Target {
    pub fn contains(&self, pfn: u64) -> bool {
        pfn >= self.first && pfn - self.first < self.count
    }

    /// The frames of the run that have a descriptor (are RAM).
    pub fn in_ram(&self, frames_len: usize) -> Range<u64> {
        let end = self.first.saturating_add(self.count).min(frames_len as u64);
        self.first.min(end)..end
    }

    /// The first frame of the run beyond the frame table (device memory).
    pub fn first_beyond_ram(&self, frames_len: usize) -> Option<u64> {
        let end = self.first.saturating_add(self.count);
        (end > frames_len as u64).then(|| self.first.max(frames_len as u64))
    }
}

/// What the entry `bits`, in a table of `level`, points at; `None` when it is
/// not present (the CPU ignores every other bit then).
pub fn target(level: Level, bits: u64) -> Option<Target> {
    let pte = Pte::from_bits(bits);
    if !pte.is_present() {
        return None;
    }
    let pfn = pte.addr() >> 12;
    let table = Target { first: pfn, count: 1, leaf: false };
    Some(match level {
        Level::L1 => Target { first: pfn, count: 1, leaf: true },
        // PS is reserved at level 4: such an entry faults rather than maps a
        // page, so it is read as a pointer to a table (and refused as a leaf).
        Level::L4 => table,
        Level::L2 | Level::L3 if pte.is_huge() => {
            // The CPU ignores the low address bits of a large page (bit 12 is
            // PAT there), so the run starts at the aligned frame.
            let count = level.leaf_frames();
            Target { first: pfn & !(count - 1), count, leaf: true }
        }
        Level::L2 | Level::L3 => table,
    })
}

/// The effective rights of a leaf. Non-leaf entries are always
/// present + writable + user with NX clear, so the leaf alone decides.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rights {
    pub writable: bool,
    pub user: bool,
    pub executable: bool,
}

impl Rights {
    pub fn of(bits: u64) -> Self {
        let flags = Pte::from_bits(bits).flags();
        Self {
            writable: flags.contains(PteFlags::WRITABLE),
            user: flags.contains(PteFlags::USER),
            executable: !flags.contains(PteFlags::NO_EXECUTE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PteFlags::PRESENT.bits();
    const PS: u64 = PteFlags::HUGE.bits();

    #[test]
    fn absent_entries_point_nowhere() {
        assert_eq!(target(Level::L1, 0x1234_5000), None);
        assert_eq!(target(Level::L2, !P), None);
    }

    #[test]
    fn levels_classify_leaves_and_tables() {
        assert_eq!(target(Level::L1, 0x5000 | P | PS), Some(Target { first: 5, count: 1, leaf: true }));
        assert_eq!(target(Level::L2, 0x5000 | P), Some(Target { first: 5, count: 1, leaf: false }));
        assert_eq!(target(Level::L4, 0x5000 | P | PS), Some(Target { first: 5, count: 1, leaf: false }));
        // A 2 MiB leaf with the PAT bit (12) set still starts at the aligned frame.
        assert_eq!(target(Level::L2, 0x20_1000 | P | PS), Some(Target { first: 512, count: 512, leaf: true }));
        assert_eq!(
            target(Level::L3, 0x4000_0000 | P | PS),
            Some(Target { first: 1 << 18, count: 1 << 18, leaf: true })
        );
    }

    #[test]
    fn runs_split_at_the_end_of_ram() {
        let t = Target { first: 512, count: 512, leaf: true };
        assert_eq!(t.in_ram(700), 512..700);
        assert_eq!(t.first_beyond_ram(700), Some(700));
        assert_eq!(t.first_beyond_ram(1024), None);
        assert_eq!(t.in_ram(100), 100..100);
        assert_eq!(t.first_beyond_ram(100), Some(512));
        assert!(t.contains(1023) && !t.contains(1024) && !t.contains(511));
    }
}
