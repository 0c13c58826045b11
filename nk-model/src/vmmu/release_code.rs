//! `release_code`: the unload rule. A frame `map_code` vetted becomes
//! outer-kernel data again once nothing but its read-only direct-map alias
//! maps it: the TLB is flushed (no CPU keeps an executable translation),
//! the frame zeroed, and only then is its alias made writable (I6, I7).

use super::alias::Alias;
use super::declare::data_alias;
use super::error::VmmuError;
use super::frame::FrameKind;
use super::phys_mem::PhysMem;
use super::raw::RawPfn;
use super::state::Vmmu;

impl Vmmu<'_> {
    /// Turns the vetted code frame `pfn` back into `Data`, zeroed, with a
    /// writable alias.
    ///
    /// `pfn` must be `Code` (`NotCode`), not the kernel image's
    /// (`ImageCodeReleased`), and mapped by its direct-map alias alone
    /// (`refs == 1`: `StillMapped`, or `NoDirectMapAlias` for 0 or an alias
    /// that cannot be found), so no executable mapping of it is left in any
    /// address space. A refusal changes nothing but the counter.
    pub fn release_code(&mut self, mem: &mut impl PhysMem, pfn: RawPfn) -> Result<(), VmmuError> {
        let checked = self.check_release_code(mem, pfn);
        self.counters.release_code.record(&checked);
        let (pfn, alias) = checked?;
        // No leaf maps the frame any more, but a CPU may still hold an
        // executable translation of one cleared earlier: flush before the
        // frame can be written, so the bytes written next never run.
        mem.flush_tlb();
        // Zeroed: nothing of the module's code is handed to the outer
        // kernel, and a frame vetted again starts from clean bytes.
        mem.zero_frame(pfn);
        self.frames[pfn as usize].set_kind(FrameKind::Data);
        mem.write_entry(alias.table, alias.index, data_alias(alias.value));
        // As in `remove_ptp`: rights only grew, so the flush at the gate's
        // exit merely spares the outer kernel a spurious write fault.
        self.tlb_stale = true;
        Ok(())
    }

    fn check_release_code(&self, mem: &impl PhysMem, pfn: RawPfn) -> Result<(u64, Alias), VmmuError> {
        let pfn = pfn.0;
        let desc = self.frame(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        match desc.kind() {
            // The image's text is vouched for by the build-time scan at its
            // boot mapping, which is frozen: it is never unloaded.
            FrameKind::Code if desc.image_code() => return Err(VmmuError::ImageCodeReleased { pfn }),
            FrameKind::Code => {}
            kind => return Err(VmmuError::NotCode { pfn, kind }),
        }
        // The alias is one reference, so any other mapping (executable or
        // not, in any address space) shows up as a second one.
        match desc.refs() {
            1 => {}
            0 => return Err(VmmuError::NoDirectMapAlias { pfn }),
            refs => return Err(VmmuError::StillMapped { pfn, refs }),
        }
        let alias = self.direct_map_alias(mem, pfn).ok_or(VmmuError::NoDirectMapAlias { pfn })?;
        Ok((pfn, alias))
    }
}
