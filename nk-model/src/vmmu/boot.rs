//! The trusted boot interface: how the NK builds the first page tables
//! before the hand-off (and tests build machines). No rule is checked, but
//! reference counts stay exact, so the validated interface can take over.

use super::entry::target;
use super::error::VmmuError;
use super::frame::FrameKind;
use super::level::Level;
use super::phys_mem::PhysMem;
use super::state::Vmmu;
use crate::pte::Pte;

impl Vmmu<'_> {
    /// Sets a frame's kind. Fails only for a frame outside the table.
    ///
    /// A frame made `Code` here is the kernel image's code: the build-time
    /// scan checked it as part of one contiguous run, never on its own, so
    /// `write_pte` and `map_code` refuse any kernel-executable leaf of it
    /// (`ImageCodeRemapped`). Its only executable mapping is the one the
    /// boot makes with `boot_map`, in a table the boot then pins.
    pub fn boot_set_kind(&mut self, pfn: u64, kind: FrameKind) -> Result<(), VmmuError> {
        let i = self.slot(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        self.frames[i].set_kind(kind);
        if kind == FrameKind::Code {
            self.frames[i].mark_image_code();
        }
        Ok(())
    }

    /// Zeroes a frame and makes it a page table of `level`. The caller
    /// makes sure nothing but read-only mappings of it will exist.
    pub fn boot_declare_table(&mut self, mem: &mut impl PhysMem, pfn: u64, level: Level) -> Result<(), VmmuError> {
        let i = self.slot(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        mem.zero_frame(pfn);
        self.frames[i].set_kind(FrameKind::Ptp(level));
        Ok(())
    }

    /// Writes an entry into a page table, moving the references from the
    /// old entry's frames to the new one's. Fails only when `table` is not a
    /// page table (its level decides what the entry covers) or `index` is
    /// beyond it.
    pub fn boot_map(&mut self, mem: &mut impl PhysMem, table: u64, index: usize, pte: Pte) -> Result<(), VmmuError> {
        let level = self.table_level(table, index)?;
        if let Some(old) = target(level, mem.read_entry(table, index)) {
            self.lower(old);
        }
        if let Some(new) = target(level, pte.bits()) {
            self.raise(new);
        }
        mem.write_entry(table, index, pte.bits());
        Ok(())
    }

    /// Pins a declared page table for good: it can never be removed, and
    /// `write_pte` changes neither its present entries nor any entry pointing
    /// at it. The NK pins every boot table but the kernel root (the direct
    /// map's and the image's), so the outer kernel cannot rewrite a
    /// direct-map leaf (the NK reads and writes page tables through them) or
    /// swap a table that maps the NK for its own. The root stays unpinned:
    /// its empty entries are the outer kernel's, while those pointing at
    /// pinned tables are frozen all the same.
    pub fn boot_pin(&mut self, pfn: u64) -> Result<(), VmmuError> {
        let i = self.slot(pfn).ok_or(VmmuError::FrameOutOfRange { pfn })?;
        let FrameKind::Ptp(_) = self.frames[i].kind() else { return Err(VmmuError::NotDeclared { pfn }) };
        self.frames[i].pin();
        Ok(())
    }

    /// Names the kernel root: the source of every address space's kernel
    /// half and the start of every direct-map alias walk.
    pub fn set_kernel_root(&mut self, pfn: u64) {
        self.kernel_root = Some(pfn);
    }
}
