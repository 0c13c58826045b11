//! `nk_declare` and `nk_free` at the frame level: a frame of outer-kernel
//! data becomes `Mediated`, read-only in its one mapping (the direct-map
//! alias), and back (I11, I10).

use super::alias::Alias;
use super::declare::{data_alias, page_table_alias};
use super::error::VmmuError;
use super::frame::FrameKind;
use super::phys_mem::PhysMem;
use super::state::Vmmu;

impl Vmmu<'_> {
    /// Checks that `pfn` could be protected: outer-kernel data whose only
    /// mapping is its direct-map alias. Changes nothing, so a region of
    /// many frames is checked whole before any frame changes.
    pub fn check_protect(&self, mem: &impl PhysMem, pfn: u64) -> Result<(), VmmuError> {
        self.protectable(mem, pfn).map(|_| ())
    }

    /// Free outer-kernel data whose one mapping is its direct-map alias
    /// (what `declare_ptp` and `protect` both require); that alias.
    pub(super) fn protectable(&self, mem: &impl PhysMem, pfn: u64) -> Result<Alias, VmmuError> {
        let desc = self.frame(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        match desc.kind() {
            FrameKind::Data => {}
            found => return Err(VmmuError::WrongKind { pfn, found }),
        }
        // The alias is one reference, so any other mapping (writable or not,
        // in any address space) shows up as a second one.
        match desc.refs() {
            1 => {}
            0 => return Err(VmmuError::NoDirectMapAlias { pfn }),
            refs => return Err(VmmuError::StillMapped { pfn, refs }),
        }
        self.direct_map_alias(mem, pfn).ok_or(VmmuError::NoDirectMapAlias { pfn })
    }

    /// Makes `pfn` a write-mediated frame: its contents stay, its alias turns
    /// read-only (and no-execute), and no new writable mapping of it is
    /// accepted until `unprotect`.
    pub fn protect(&mut self, mem: &mut impl PhysMem, pfn: u64) -> Result<(), VmmuError> {
        let alias = self.protectable(mem, pfn)?;
        self.frames[pfn as usize].set_kind(FrameKind::Mediated);
        mem.write_entry(alias.table, alias.index, page_table_alias(alias.value));
        // The outer kernel may hold a writable translation of the alias.
        self.tlb_stale = true;
        Ok(())
    }

    /// Gives a write-mediated frame back to the outer kernel as writable data.
    pub fn unprotect(&mut self, mem: &mut impl PhysMem, pfn: u64) -> Result<(), VmmuError> {
        let desc = self.frame(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        if desc.kind() != FrameKind::Mediated {
            return Err(VmmuError::WrongKind { pfn, found: desc.kind() });
        }
        let alias = self.direct_map_alias(mem, pfn).ok_or(VmmuError::NoDirectMapAlias { pfn })?;
        self.frames[pfn as usize].set_kind(FrameKind::Data);
        mem.write_entry(alias.table, alias.index, data_alias(alias.value));
        self.tlb_stale = true;
        Ok(())
    }
}
