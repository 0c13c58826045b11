//! `remove_ptp`: a page-table page nothing points at any more becomes
//! outer-kernel data again.

use super::alias::Alias;
use super::declare::data_alias;
use super::entry::{ENTRIES, target};
use super::error::VmmuError;
use super::frame::FrameKind;
use super::level::Level;
use super::phys_mem::PhysMem;
use super::raw::RawPfn;
use super::state::Vmmu;

/// A removal that passed every check.
struct Removal {
    pfn: u64,
    level: Level,
    alias: Alias,
}

impl Vmmu<'_> {
    /// Drops the references the table's entries hold, makes it `Data`,
    /// flushes the TLB if anything is stale, and makes its direct-map alias
    /// writable again. The entries are left as they are: no CPU can reach
    /// them, and `declare_ptp` zeroes the frame.
    pub fn remove_ptp(&mut self, mem: &mut impl PhysMem, pfn: RawPfn) -> Result<(), VmmuError> {
        let checked = self.check_remove(mem, pfn);
        self.counters.remove.record(&checked);
        let r = checked?;
        self.apply_remove(mem, r);
        Ok(())
    }

    fn check_remove(&self, mem: &impl PhysMem, pfn: RawPfn) -> Result<Removal, VmmuError> {
        let pfn = pfn.0;
        let desc = self.frame(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        let FrameKind::Ptp(level) = desc.kind() else { return Err(VmmuError::NotDeclared { pfn }) };
        if self.kernel_root == Some(pfn) {
            return Err(VmmuError::KernelRoot);
        }
        if desc.pinned() {
            return Err(VmmuError::Pinned { pfn });
        }
        if self.live_roots.contains(&Some(pfn)) {
            return Err(VmmuError::LiveRoot { pfn });
        }
        // With its alias found below, one reference means no parent entry
        // and no other leaf points at the table.
        match desc.refs() {
            1 => {}
            0 => return Err(VmmuError::NoDirectMapAlias { pfn }),
            refs => return Err(VmmuError::InUse { pfn, refs }),
        }
        let alias = self.direct_map_alias(mem, pfn).ok_or(VmmuError::NoDirectMapAlias { pfn })?;
        Ok(Removal { pfn, level, alias })
    }

    fn apply_remove(&mut self, mem: &mut impl PhysMem, r: Removal) {
        for index in 0..ENTRIES {
            if let Some(t) = target(r.level, mem.read_entry(r.pfn, index)) {
                self.lower(t);
            }
        }
        self.frames[r.pfn as usize].set_kind(FrameKind::Data);
        // A CPU may still hold a parent entry that pointed here (cleared
        // earlier in this gate call) and walk the table: flush before the
        // outer kernel can write it.
        self.flush_if_stale(mem);
        mem.write_entry(r.alias.table, r.alias.index, data_alias(r.alias.value));
        // Not needed for safety (rights only grow), but it spares the outer
        // kernel a spurious write fault on a stale read-only translation.
        self.tlb_stale = true;
    }
}
