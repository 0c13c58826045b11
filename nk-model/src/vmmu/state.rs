//! The vMMU's state: the frame table, the kernel root, the roots loaded in
//! each CPU, and whether the TLB may hold a translation that no longer
//! exists. Every change to it goes through the operations of this module.

use super::counters::Counters;
use super::entry::ENTRIES;
use super::entry::Target;
use super::error::VmmuError;
use super::frame::{FrameDesc, FrameKind};
use super::level::Level;
use super::phys_mem::PhysMem;

/// CPUs whose CR3 the vMMU tracks.
pub const MAX_CPUS: usize = 16;

/// The vMMU over a frame table (index = frame number). Frames beyond the
/// table are outside RAM: device memory, mappable but never executable and
/// never a page table.
pub struct Vmmu<'t> {
    pub(super) frames: &'t mut [FrameDesc],
    pub(super) kernel_root: Option<u64>,
    pub(super) live_roots: [Option<u64>; MAX_CPUS],
    pub(super) tlb_stale: bool,
    pub(super) counters: Counters,
}

impl<'t> Vmmu<'t> {
    /// A vMMU over `frames`, as the NK filled it (normally all `DATA`).
    pub fn new(frames: &'t mut [FrameDesc]) -> Self {
        Self {
            frames,
            kernel_root: None,
            live_roots: [None; MAX_CPUS],
            tlb_stale: false,
            counters: Counters::default(),
        }
    }

    pub fn frame(&self, pfn: u64) -> Option<FrameDesc> {
        self.slot(pfn).map(|i| self.frames[i])
    }

    pub fn frames_len(&self) -> usize {
        self.frames.len()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn kernel_root(&self) -> Option<u64> {
        self.kernel_root
    }

    /// The root each CPU last loaded through `load_cr3`.
    pub fn live_roots(&self) -> &[Option<u64>; MAX_CPUS] {
        &self.live_roots
    }

    /// True when an operation since the last `finish` removed or replaced a
    /// present entry or declared a page table.
    pub fn tlb_stale(&self) -> bool {
        self.tlb_stale
    }

    /// Flushes the TLB if an operation left stale translations. The NK
    /// calls it before it leaves the gate, so the outer kernel never runs
    /// with a translation the vMMU has taken away (I10).
    pub fn finish(&mut self, mem: &mut impl PhysMem) {
        self.flush_if_stale(mem);
    }

    /// Flushes now if anything is stale. `declare_ptp` and `remove_ptp` also
    /// call it before a frame's content starts or stops being trusted: on
    /// another CPU, a stale translation could otherwise write a table the
    /// vMMU has just zeroed, or walk one it has just handed back as data,
    /// before this CPU reaches `finish`.
    pub(super) fn flush_if_stale(&mut self, mem: &mut impl PhysMem) {
        if self.tlb_stale {
            mem.flush_tlb();
            self.tlb_stale = false;
        }
    }

    pub(super) fn slot(&self, pfn: u64) -> Option<usize> {
        usize::try_from(pfn).ok().filter(|&i| i < self.frames.len())
    }

    /// The level of page table `table`, for an entry `index` in it: what
    /// every entry write checks first.
    pub(super) fn table_level(&self, table: u64, index: usize) -> Result<Level, VmmuError> {
        let level = match self.kind_of(table) {
            None => return Err(VmmuError::FrameOutOfRange { pfn: table }),
            Some(FrameKind::Ptp(level)) => level,
            Some(_) => return Err(VmmuError::NotDeclared { pfn: table }),
        };
        if index >= ENTRIES {
            return Err(VmmuError::BadIndex { index });
        }
        Ok(level)
    }

    pub(super) fn kind_of(&self, pfn: u64) -> Option<FrameKind> {
        self.frame(pfn).map(|d| d.kind())
    }

    /// Counts one more entry pointing at every RAM frame of `t`. Callers
    /// have checked the room; saturating keeps a slip from wrapping.
    pub(super) fn raise(&mut self, t: Target) {
        for pfn in t.in_ram(self.frames.len()) {
            let d = &mut self.frames[pfn as usize];
            d.set_refs(d.refs().saturating_add(1));
        }
    }

    /// Counts one entry fewer pointing at every RAM frame of `t`.
    pub(super) fn lower(&mut self, t: Target) {
        for pfn in t.in_ram(self.frames.len()) {
            let d = &mut self.frames[pfn as usize];
            d.set_refs(d.refs().saturating_sub(1));
        }
    }
}
