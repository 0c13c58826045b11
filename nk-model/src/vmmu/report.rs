//! What the invariant checker found: counts, and the first few violations.

/// The invariants the checker can see in page tables and the frame table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Invariant {
    /// Non-leaf entries point at declared tables of the next level.
    I1,
    /// No writable or user leaf maps a page-table page.
    I2,
    /// Live roots (and the kernel root) are level-4 tables.
    I5,
    /// W^X; kernel-executable leaves map only `Code`; `Code` never writable.
    I6,
    /// Image code is executable only at its boot mapping (in a pinned
    /// table): the build-time scan vouches for it nowhere else.
    I7,
    /// No writable or user leaf maps NK memory.
    I8,
    /// No writable or user leaf maps a write-mediated region.
    I11,
    /// A frame's `refs` equals the number of entries pointing at it.
    RefCount,
}

/// One violation: which invariant, about which frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    /// The frame the violation is about: the one wrongly mapped or pointed
    /// at, the bad root, or the miscounted frame.
    pub pfn: u64,
    pub detail: &'static str,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?} at frame {:#x}: {}", self.invariant, self.pfn, self.detail)
    }
}

/// Violations kept in a report; the rest are only counted.
pub const REPORTED: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Report {
    /// Declared level-4 tables.
    pub address_spaces: usize,
    /// Declared page tables of every level.
    pub ptps: usize,
    pub frames: usize,
    pub violations: u64,
    pub first: [Option<Violation>; REPORTED],
}

impl Report {
    pub(super) fn new(frames: usize) -> Self {
        Self { address_spaces: 0, ptps: 0, frames, violations: 0, first: [None; REPORTED] }
    }

    pub fn is_clean(&self) -> bool {
        self.violations == 0
    }

    /// The violations kept, in the order found.
    pub fn kept(&self) -> impl Iterator<Item = &Violation> {
        self.first.iter().flatten()
    }

    pub(super) fn note(&mut self, invariant: Invariant, pfn: u64, detail: &'static str) {
        if let Some(slot) = self.first.get_mut(self.violations as usize) {
            *slot = Some(Violation { invariant, pfn, detail });
        }
        self.violations = self.violations.saturating_add(1);
    }
}
