//! `write_pte`: one entry of a page-table page, checked against the
//! encoding rules and the kinds of the frames it points at (I1, I2, I6, I8),
//! unless the entry is frozen: present, and in a pinned table or pointing at
//! NK memory or at a pinned table.

use super::encoding::{RESERVED_BITS, check_encoding};
use super::entry::{ENTRIES, Rights, Target, target};
use super::error::VmmuError;
use super::frame::{FrameDesc, FrameKind};
use super::level::Level;
use super::phys_mem::PhysMem;
use super::raw::{RawPfn, RawPte};
use super::rights::check_leaf_frame;
use super::state::Vmmu;

/// An entry write that passed every check.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct EntryWrite {
    table: u64,
    index: usize,
    level: Level,
    old: u64,
    new: u64,
}

impl Vmmu<'_> {
    /// Writes entry `index` of page table `ptp`, moving references from the
    /// old entry's frames to the new one's. Replacing or removing a present
    /// entry marks the TLB stale.
    pub fn write_pte(
        &mut self,
        mem: &mut impl PhysMem,
        ptp: RawPfn,
        index: usize,
        pte: RawPte,
    ) -> Result<(), VmmuError> {
        let checked = match self.check_common(mem, ptp.0, index, pte.0) {
            Some(w) => Ok(w),
            None => self.check_write(mem, ptp, index, pte),
        };
        self.counters.write_pte.record(&checked);
        let w = checked?;
        self.apply_write(mem, w);
        Ok(())
    }

    /// The common case, accepted in a few loads: an entry of an unpinned
    /// level-1 table whose old and new values are each absent or a leaf
    /// mapping one frame of outer-kernel data, unpinned, that the rights
    /// allow (what mapping, copying and tearing down user memory writes).
    /// `None` for anything else, refusals included, which `check_write`
    /// then decides. It never accepts what `check_write` refuses, and it
    /// accepts with the same `EntryWrite` (the driver checks both on every
    /// write the model tests make): every check of `check_write_as` that
    /// these entries meet is made here, in the same terms.
    #[inline]
    pub(super) fn check_common(&self, mem: &impl PhysMem, table: u64, index: usize, new: u64) -> Option<EntryWrite> {
        let desc = self.frame(table)?;
        if desc.kind() != FrameKind::Ptp(Level::L1) || desc.pinned() || index >= ENTRIES {
            return None;
        }
        let old = mem.read_entry(table, index);
        // check_unfrozen: a present old entry in an unpinned table is
        // frozen only by the kind or pin of the frame it maps.
        if let Some(t) = target(Level::L1, old) {
            self.plain_data(t.first)?;
        }
        // check_encoding, check_leaf and check_room for a level-1 leaf of data.
        if new & RESERVED_BITS != 0 {
            return None;
        }
        if let Some(t) = target(Level::L1, new) {
            let r = Rights::of(new);
            let d = self.plain_data(t.first)?;
            // Writable and executable (check_encoding), or kernel code (check_leaf_frame).
            if r.executable && (r.writable || !r.user) {
                return None;
            }
            if d.refs() == u32::MAX {
                return None;
            }
        }
        Some(EntryWrite { table, index, level: Level::L1, old, new })
    }

    /// Frame `pfn`'s descriptor when it is RAM holding unpinned outer-kernel data.
    #[inline]
    fn plain_data(&self, pfn: u64) -> Option<FrameDesc> {
        self.frame(pfn).filter(|d| d.kind() == FrameKind::Data && !d.pinned())
    }

    pub(super) fn check_write(
        &self,
        mem: &impl PhysMem,
        ptp: RawPfn,
        index: usize,
        pte: RawPte,
    ) -> Result<EntryWrite, VmmuError> {
        self.check_write_as(mem, ptp, index, pte, None)
    }

    /// `check_write`, reading frame `as_code` (if any) as `Code` whatever
    /// its kind: what `map_code` checks of the entry it will write once the
    /// frame has passed vetting, before it changes anything.
    pub(super) fn check_write_as(
        &self,
        mem: &impl PhysMem,
        ptp: RawPfn,
        index: usize,
        pte: RawPte,
        as_code: Option<u64>,
    ) -> Result<EntryWrite, VmmuError> {
        let table = ptp.0;
        let level = self.table_level(table, index)?;
        let new = pte.0;
        let old = mem.read_entry(table, index);
        if let Some(t) = target(level, old) {
            self.check_unfrozen(table, index, t)?;
        }
        if let Some(t) = check_encoding(level, new)? {
            if t.leaf {
                self.check_leaf(t, Rights::of(new), as_code)?;
            } else {
                self.check_table_target(level, t.first)?;
            }
            self.check_room(t, target(level, old))?;
        }
        Ok(EntryWrite { table, index, level, old, new })
    }

    /// A present old entry is frozen when its table is pinned, or when it
    /// points at NK memory or at a pinned table. The NK reads and writes page
    /// tables through the direct map, whose tables are pinned: were one of
    /// their leaves writable, the outer kernel could repoint the alias of a
    /// page table at a frame it controls, and the NK would then read (and
    /// count references from) the wrong frame. The other two cases keep the
    /// outer kernel from repointing the NK's own boot mappings (say, the image
    /// page holding the NK's IDT) at a frame it writes, or from swapping a
    /// pinned table for its own. An empty entry of a pinned table may still be
    /// filled: the new entry is checked like any other, and frozen once there.
    fn check_unfrozen(&self, table: u64, index: usize, old: Target) -> Result<(), VmmuError> {
        let frozen = self.frame(table).is_some_and(|d| d.pinned())
            || old.in_ram(self.frames.len()).any(|pfn| {
                let desc = self.frames[pfn as usize];
                desc.kind() == FrameKind::Nk || desc.pinned()
            });
        if frozen { Err(VmmuError::PinnedEntry { table, index }) } else { Ok(()) }
    }

    /// I1: a non-leaf entry points at a declared table of the next level.
    fn check_table_target(&self, level: Level, pfn: u64) -> Result<(), VmmuError> {
        // Level-1 entries are always leaves, so `expected` always exists.
        let Some(expected) = level.next_lower() else { return Err(VmmuError::NotDeclared { pfn }) };
        match self.kind_of(pfn) {
            None => Err(VmmuError::FrameOutOfRange { pfn }),
            Some(FrameKind::Ptp(found)) if found == expected => Ok(()),
            Some(found @ FrameKind::Ptp(_)) => Err(VmmuError::WrongLevel { pfn, expected, found }),
            Some(_) => Err(VmmuError::NotDeclared { pfn }),
        }
    }

    /// Every frame a leaf maps must allow its rights (`as_code` read as
    /// `Code`); frames beyond RAM are device memory, never executable.
    ///
    /// Image code is executable only at its boot mapping: the scan at build
    /// time read it as one contiguous run, so it vouches for no byte
    /// sequence across a frame end that a mapping elsewhere would create
    /// (a last byte `0f` before a vetted frame starting `22 c0` is
    /// `mov cr0, rax`). Its boot leaves sit in pinned tables, frozen, so
    /// no leaf `write_pte` may write is one of them. Frames `map_code`
    /// vetted passed the per-frame test, end included, and map anywhere.
    fn check_leaf(&self, t: Target, r: Rights, as_code: Option<u64>) -> Result<(), VmmuError> {
        for pfn in t.in_ram(self.frames.len()) {
            let desc = self.frames[pfn as usize];
            let kind = if as_code == Some(pfn) { FrameKind::Code } else { desc.kind() };
            check_leaf_frame(pfn, kind, r)?;
            if r.executable && kind == FrameKind::Code && desc.image_code() {
                return Err(VmmuError::ImageCodeRemapped { pfn });
            }
        }
        match t.first_beyond_ram(self.frames.len()) {
            Some(pfn) if r.executable => Err(VmmuError::ExecutableDevice { addr: pfn << 12 }),
            _ => Ok(()),
        }
    }

    /// Refuses if a frame gaining a reference is at the limit (a frame the
    /// old entry also covers keeps its count).
    fn check_room(&self, new: Target, old: Option<Target>) -> Result<(), VmmuError> {
        for pfn in new.in_ram(self.frames.len()) {
            let kept = old.is_some_and(|o| o.contains(pfn));
            if !kept && self.frames[pfn as usize].refs() == u32::MAX {
                return Err(VmmuError::RefOverflow { pfn });
            }
        }
        Ok(())
    }

    pub(super) fn apply_write(&mut self, mem: &mut impl PhysMem, w: EntryWrite) {
        if let Some(old) = target(w.level, w.old) {
            self.lower(old);
            self.tlb_stale = true;
        }
        if let Some(new) = target(w.level, w.new) {
            self.raise(new);
        }
        mem.write_entry(w.table, w.index, w.new);
    }
}
