//! `declare_ptp`: a frame of free outer-kernel data becomes a page-table
//! page, read-only in its one remaining mapping (I1, I2, I10).

use super::alias::Alias;
use super::entry::target;
use super::error::VmmuError;
use super::frame::FrameKind;
use super::level::Level;
use super::phys_mem::PhysMem;
use super::raw::{RawLevel, RawPfn};
use super::state::Vmmu;
use crate::pte::PteFlags;
use core::ops::Range;

/// The kernel half of a level-4 table: copied from the kernel root into
/// every new root, so every address space maps the kernel and the NK.
pub(super) const KERNEL_HALF: Range<usize> = 256..512;

/// A declaration that passed every check.
struct Declaration {
    pfn: u64,
    level: Level,
    alias: Alias,
}

/// The alias of a page-table page: read-only, supervisor, no-execute (the
/// rights a leaf may give a `Ptp`), whatever the outer kernel had made it.
/// `map_code` gives a frame it vets (and keeps, as `Code`) the same alias.
pub(super) fn page_table_alias(value: u64) -> u64 {
    let taken = PteFlags::WRITABLE.union(PteFlags::USER).bits();
    (value & !taken) | PteFlags::NO_EXECUTE.bits()
}

/// The alias of a frame given back as data (`remove_ptp`, `release_code`,
/// `unprotect`): the read-only alias above with W again, still no-execute,
/// which is exactly the alias the boot gives a data frame.
pub(super) fn data_alias(value: u64) -> u64 {
    value | PteFlags::WRITABLE.bits()
}

impl Vmmu<'_> {
    /// Makes `pfn` a page table of `level`: write-protects its direct-map
    /// alias, flushes the TLB, zeroes it (a level-4 table gets the kernel
    /// half) and types it.
    pub fn declare_ptp(&mut self, mem: &mut impl PhysMem, pfn: RawPfn, level: RawLevel) -> Result<(), VmmuError> {
        let checked = self.check_declare(mem, pfn, level);
        self.counters.declare.record(&checked);
        let d = checked?;
        self.apply_declare(mem, d);
        Ok(())
    }

    fn check_declare(&self, mem: &impl PhysMem, pfn: RawPfn, level: RawLevel) -> Result<Declaration, VmmuError> {
        let pfn = pfn.0;
        self.frame(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        let level = Level::from_u8(level.0).ok_or(VmmuError::BadLevel { level: level.0 })?;
        let alias = self.protectable(mem, pfn)?;
        if level == Level::L4 {
            self.check_kernel_half_room(mem)?;
        }
        Ok(Declaration { pfn, level, alias })
    }

    /// Copying the kernel half adds a reference to each table it points at;
    /// refuses if one of them would overflow.
    fn check_kernel_half_room(&self, mem: &impl PhysMem) -> Result<(), VmmuError> {
        let Some(root) = self.kernel_root else { return Ok(()) };
        let pointee = |i: usize| target(Level::L4, mem.read_entry(root, i)).map(|t| t.first);
        for i in KERNEL_HALF {
            let Some(pfn) = pointee(i) else { continue };
            let Some(desc) = self.frame(pfn) else { continue };
            // Fast path: 256 copies cannot overflow a count this far below
            // the limit; only near it are the copies counted exactly.
            if desc.refs() <= u32::MAX - KERNEL_HALF.len() as u32 {
                continue;
            }
            let copies = KERNEL_HALF.filter(|&j| pointee(j) == Some(pfn)).count() as u32;
            if u32::MAX - desc.refs() < copies {
                return Err(VmmuError::RefOverflow { pfn });
            }
        }
        Ok(())
    }

    fn apply_declare(&mut self, mem: &mut impl PhysMem, d: Declaration) {
        // Write-protect the last mapping and flush before zeroing: from then
        // on no CPU can write the frame, even through a translation cached
        // before this call (or before an earlier operation of its batch
        // removed another mapping of the frame).
        mem.write_entry(d.alias.table, d.alias.index, page_table_alias(d.alias.value));
        mem.flush_tlb();
        self.tlb_stale = false;
        mem.zero_frame(d.pfn);
        if let (Level::L4, Some(root)) = (d.level, self.kernel_root) {
            for i in KERNEL_HALF {
                let entry = mem.read_entry(root, i);
                if entry != 0 {
                    mem.write_entry(d.pfn, i, entry);
                }
                if let Some(t) = target(Level::L4, entry) {
                    self.raise(t);
                }
            }
        }
        self.frames[d.pfn as usize].set_kind(FrameKind::Ptp(d.level));
    }
}
