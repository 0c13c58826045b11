//! The entry encoding rules of docs/vmmu.md, which hold at every level and
//! whatever the entry points at.

use super::entry::{Rights, Target, target};
use super::error::VmmuError;
use super::level::Level;
use crate::layout::LARGE_PAGE_SIZE;
use crate::pte::{Pte, PteFlags};

/// Bits 52..=62: software-available and protection-key bits, which the NK
/// keeps for itself in every entry, present or not.
pub const RESERVED_BITS: u64 = 0x7ff << 52;

/// The one encoding of a non-leaf entry: every right is granted here, so the
/// leaf alone decides what a translation allows.
pub const TABLE_FLAGS: PteFlags = PteFlags::PRESENT.union(PteFlags::WRITABLE).union(PteFlags::USER);

/// Checks the encoding of `bits` for a table of `level`; returns what a
/// present entry points at, `None` for an absent one.
pub fn check_encoding(level: Level, bits: u64) -> Result<Option<Target>, VmmuError> {
    if bits & RESERVED_BITS != 0 {
        return Err(VmmuError::ReservedBits { bits: bits & RESERVED_BITS });
    }
    let Some(t) = target(level, bits) else { return Ok(None) };
    let pte = Pte::from_bits(bits);
    match level {
        Level::L4 | Level::L3 if pte.is_huge() => return Err(VmmuError::HugePageRefused { level }),
        Level::L2 if pte.is_huge() && pte.addr() & (LARGE_PAGE_SIZE - 1) != 0 => {
            return Err(VmmuError::Misaligned { addr: pte.addr() });
        }
        _ => {}
    }
    if t.leaf {
        let r = Rights::of(bits);
        if r.writable && r.executable {
            return Err(VmmuError::WritableExecutable { value: bits });
        }
    } else {
        // The CPU sets Accessed in table entries it walks, so an entry read
        // back and written again may carry it; every other bit is refused.
        let flags = pte.flags().without(PteFlags::ACCESSED);
        if flags != TABLE_FLAGS {
            return Err(VmmuError::BadTableEntryFlags { value: bits });
        }
    }
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PteFlags::PRESENT.bits();
    const W: u64 = PteFlags::WRITABLE.bits();
    const U: u64 = PteFlags::USER.bits();
    const A: u64 = PteFlags::ACCESSED.bits();
    const PS: u64 = PteFlags::HUGE.bits();
    const NX: u64 = PteFlags::NO_EXECUTE.bits();

    #[test]
    fn reserved_bits_refused_even_when_absent() {
        assert_eq!(check_encoding(Level::L1, 1 << 52), Err(VmmuError::ReservedBits { bits: 1 << 52 }));
        assert_eq!(check_encoding(Level::L1, 1 << 62 | P), Err(VmmuError::ReservedBits { bits: 1 << 62 }));
        assert_eq!(check_encoding(Level::L1, 0xdead_0000), Ok(None));
    }

    #[test]
    fn table_entries_have_one_encoding() {
        for level in [Level::L4, Level::L3, Level::L2] {
            assert!(check_encoding(level, 0x5000 | P | W | U).is_ok());
            assert!(check_encoding(level, 0x5000 | P | W | U | A).is_ok());
            for bad in [P | W, P | U, P | W | U | NX, P | W | U | (1 << 9), P | W | U | PteFlags::CACHE_DISABLE.bits()]
            {
                assert_eq!(
                    check_encoding(level, 0x5000 | bad),
                    Err(VmmuError::BadTableEntryFlags { value: 0x5000 | bad })
                );
            }
        }
    }

    #[test]
    fn large_pages() {
        assert_eq!(check_encoding(Level::L4, P | W | U | PS), Err(VmmuError::HugePageRefused { level: Level::L4 }));
        assert_eq!(check_encoding(Level::L3, P | NX | PS), Err(VmmuError::HugePageRefused { level: Level::L3 }));
        assert_eq!(check_encoding(Level::L2, 0x20_1000 | P | PS), Err(VmmuError::Misaligned { addr: 0x20_1000 }));
        assert!(check_encoding(Level::L2, 0x20_0000 | P | PS | NX | W).is_ok());
    }

    #[test]
    fn leaves_are_never_writable_and_executable() {
        assert_eq!(check_encoding(Level::L1, P | W), Err(VmmuError::WritableExecutable { value: P | W }));
        assert!(check_encoding(Level::L1, P | W | NX).is_ok());
        assert!(check_encoding(Level::L1, P).is_ok());
    }
}
