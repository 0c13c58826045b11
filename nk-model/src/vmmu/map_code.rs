//! `map_code`: the one way a frame of outer-kernel data becomes kernel code
//! after boot (I6, I7). The frame is write-protected in its one remaining
//! mapping, the TLB flushed, its bytes vetted with `crate::code` (the same
//! rules `cargo xtask scan` cross-checks against a full decoder), and only
//! then is it typed `Code` and mapped kernel-executable. Only
//! `release_code` turns it back into data, and only once no mapping but
//! its read-only alias is left.

use super::alias::Alias;
use super::declare::page_table_alias;
use super::encoding::RESERVED_BITS;
use super::entry::ENTRIES;
use super::error::VmmuError;
use super::frame::FrameKind;
use super::level::Level;
use super::phys_mem::PhysMem;
use super::raw::{RawPfn, RawPte};
use super::state::Vmmu;
use super::write::EntryWrite;
use crate::code::find_protected;
use crate::layout::PAGE_SIZE;
use crate::pte::{Pte, PteFlags};

/// Flags a code leaf never sets: writable, user, no-execute, and bit 7 (PS
/// in a directory, PAT in a page table: a code page is a plain 4 KiB page
/// of the default memory type).
const NOT_CODE: PteFlags = PteFlags::WRITABLE.union(PteFlags::USER).union(PteFlags::NO_EXECUTE).union(PteFlags::HUGE);

/// Checks that `value` is a code leaf: reserved bits clear (`ReservedBits`,
/// as `write_pte` says), present, read-only, supervisor, executable, bit 7
/// clear (`NotCodeLeaf`). Accessed, dirty, global, the cache bits and the
/// ignored bits 9..=11 are the outer kernel's, as in any leaf.
fn check_code_leaf(value: u64) -> Result<(), VmmuError> {
    if value & RESERVED_BITS != 0 {
        return Err(VmmuError::ReservedBits { bits: value & RESERVED_BITS });
    }
    let flags = Pte::from_bits(value).flags();
    if !flags.contains(PteFlags::PRESENT) || flags.bits() & NOT_CODE.bits() != 0 {
        return Err(VmmuError::NotCodeLeaf { value });
    }
    Ok(())
}

/// A `map_code` call that passed every check that can be made before the
/// frame is vetted.
enum CodeMapping {
    /// The frame is already `Code`: the entry write, exactly as `write_pte`.
    Code(EntryWrite),
    /// The frame is `Data` with its alias as its one mapping: the entry
    /// write as it will be once the frame is `Code`, if its bytes pass.
    Data { pfn: u64, alias: Alias, write: EntryWrite },
}

impl Vmmu<'_> {
    /// Writes a kernel-executable leaf, first turning the frame it maps into `Code` if it is still `Data`.
    ///
    /// `table` must be a declared level-1 table, `pte` a code leaf (present,
    /// read-only, supervisor, executable, 4 KiB). A `Code` frame is mapped
    /// exactly as `write_pte` would. A `Data` frame must be mapped by its
    /// direct-map alias alone, and the write must pass every rule of
    /// `write_pte` for a `Code` frame; then its alias is write-protected and
    /// the TLB flushed (no CPU can write it any more), its 4096 bytes are
    /// vetted at every byte offset, and it becomes `Code` (never writable,
    /// declarable or removable; data again only through `release_code`,
    /// once unmapped everywhere) before the entry is written. If the
    /// bytes hold a protected opcode, the alias is put back as it was and
    /// the TLB flushed again: the call leaves memory, the frame table and
    /// every counter but its own as they were. Any other kind is refused
    /// with the rule `write_pte` names for a kernel-executable leaf of it.
    pub fn map_code(
        &mut self,
        mem: &mut impl PhysMem,
        table: RawPfn,
        index: usize,
        pte: RawPte,
    ) -> Result<(), VmmuError> {
        let result = match self.check_map_code(mem, table, index, pte) {
            Ok(CodeMapping::Code(write)) => {
                self.apply_write(mem, write);
                Ok(())
            }
            Ok(CodeMapping::Data { pfn, alias, write }) => self.vet_and_map(mem, pfn, alias, write),
            Err(e) => Err(e),
        };
        self.counters.map_code.record(&result);
        result
    }

    fn check_map_code(
        &self,
        mem: &impl PhysMem,
        table: RawPfn,
        index: usize,
        pte: RawPte,
    ) -> Result<CodeMapping, VmmuError> {
        let t = table.0;
        match self.kind_of(t) {
            None => return Err(VmmuError::FrameOutOfRange { pfn: t }),
            Some(FrameKind::Ptp(Level::L1)) => {}
            Some(found @ FrameKind::Ptp(_)) => {
                return Err(VmmuError::WrongLevel { pfn: t, expected: Level::L1, found });
            }
            Some(_) => return Err(VmmuError::NotDeclared { pfn: t }),
        }
        if index >= ENTRIES {
            return Err(VmmuError::BadIndex { index });
        }
        check_code_leaf(pte.0)?;
        let pfn = Pte::from_bits(pte.0).addr() >> 12;
        let desc = match self.frame(pfn) {
            Some(desc) if desc.kind() == FrameKind::Data => desc,
            Some(desc) if desc.kind() == FrameKind::Code => {
                return self.check_write(mem, table, index, pte).map(CodeMapping::Code);
            }
            other => {
                // `write_pte` refuses a kernel-executable leaf of any other
                // kind (Ptp, ReadOnly, Nk, Device) or beyond RAM, and names
                // the rule. The second refusal is never reached; it keeps
                // anything but `Data` and `Code` from being mapped here even
                // if the rights table changed.
                self.check_write(mem, table, index, pte)?;
                return Err(match other {
                    Some(desc) => VmmuError::ExecutableMapping { pfn, kind: desc.kind() },
                    None => VmmuError::ExecutableDevice { addr: pfn << 12 },
                });
            }
        };
        // The alias is one reference, so any other mapping (writable or not,
        // in any address space, this very entry included) shows up as a
        // second one: through it the frame could change after vetting.
        match desc.refs() {
            1 => {}
            0 => return Err(VmmuError::NoDirectMapAlias { pfn }),
            refs => return Err(VmmuError::StillMapped { pfn, refs }),
        }
        let alias = self.direct_map_alias(mem, pfn).ok_or(VmmuError::NoDirectMapAlias { pfn })?;
        // Everything the final write needs, checked now: once the alias has
        // changed, only the vetting may still refuse.
        let write = self.check_write_as(mem, table, index, pte, Some(pfn))?;
        Ok(CodeMapping::Data { pfn, alias, write })
    }

    fn vet_and_map(
        &mut self,
        mem: &mut impl PhysMem,
        pfn: u64,
        alias: Alias,
        write: EntryWrite,
    ) -> Result<(), VmmuError> {
        // Write-protect the last mapping and flush before reading: from then
        // on no CPU can write the frame, even through a translation cached
        // earlier, so the bytes vetted are the bytes that will run.
        mem.write_entry(alias.table, alias.index, page_table_alias(alias.value));
        mem.flush_tlb();
        self.tlb_stale = false;
        let mut bytes = [0u8; PAGE_SIZE as usize];
        for (index, chunk) in bytes.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&mem.read_entry(pfn, index).to_le_bytes());
        }
        if let Some(found) = find_protected(&bytes) {
            // Refused: the frame stays data, writable through its alias as
            // before, and no CPU keeps the read-only translation.
            mem.write_entry(alias.table, alias.index, alias.value);
            mem.flush_tlb();
            return Err(VmmuError::ProtectedInstruction { pfn, offset: found.offset });
        }
        // `Code` is never mapped writable (rights), never declared (declare),
        // never removed (remove), and its alias stays read-only until
        // `release_code` finds no mapping but the alias and zeroes it.
        self.frames[pfn as usize].set_kind(FrameKind::Code);
        self.apply_write(mem, write);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PteFlags::PRESENT.bits();

    #[test]
    fn code_leaves() {
        let ok = [P, P | PteFlags::GLOBAL.bits() | PteFlags::ACCESSED.bits() | PteFlags::DIRTY.bits(), P | 0xe00];
        for value in ok {
            assert_eq!(check_code_leaf(0x5000 | value), Ok(()));
        }
        for bad in [0, PteFlags::WRITABLE.bits(), PteFlags::USER.bits(), PteFlags::NO_EXECUTE.bits(), 1 << 7] {
            let value = 0x5000 | bad | if bad == 0 { 0 } else { P };
            assert_eq!(check_code_leaf(value), Err(VmmuError::NotCodeLeaf { value }));
        }
        assert_eq!(check_code_leaf(0x5000 | P | 1 << 60), Err(VmmuError::ReservedBits { bits: 1 << 60 }));
    }
}
