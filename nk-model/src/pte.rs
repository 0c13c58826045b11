//! Page-table entry encoding (Intel SDM vol. 3, 4.5): bits, not policy.

/// Bits of a page-table entry at any level.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PteFlags(u64);

impl PteFlags {
    pub const PRESENT: Self = Self(1 << 0);
    pub const WRITABLE: Self = Self(1 << 1);
    pub const USER: Self = Self(1 << 2);
    pub const WRITE_THROUGH: Self = Self(1 << 3);
    pub const CACHE_DISABLE: Self = Self(1 << 4);
    pub const ACCESSED: Self = Self(1 << 5);
    pub const DIRTY: Self = Self(1 << 6);
    /// Page size: a 2 MiB (level 2) or 1 GiB (level 3) leaf.
    pub const HUGE: Self = Self(1 << 7);
    pub const GLOBAL: Self = Self(1 << 8);
    pub const NO_EXECUTE: Self = Self(1 << 63);

    pub const fn empty() -> Self {
        Self(0)
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Keeps only the bits that are flags (drops the address field).
    pub const fn from_bits_truncate(bits: u64) -> Self {
        Self(bits & !Pte::ADDR_MASK)
    }
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl core::ops::BitOr for PteFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// A page-table entry: a physical address and flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Pte(u64);

impl Pte {
    /// Physical-address bits 51..12.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

    pub const fn empty() -> Self {
        Self(0)
    }
    /// An entry pointing at `phys` (low 12 bits and bits above 51 dropped).
    pub const fn new(phys: u64, flags: PteFlags) -> Self {
        Self((phys & Self::ADDR_MASK) | flags.bits())
    }
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    pub const fn addr(self) -> u64 {
        self.0 & Self::ADDR_MASK
    }
    pub const fn flags(self) -> PteFlags {
        PteFlags::from_bits_truncate(self.0)
    }
    pub const fn is_present(self) -> bool {
        self.flags().contains(PteFlags::PRESENT)
    }
    /// True for a leaf at level 2 or 3 (a large page); level-1 entries are
    /// always leaves and must not be asked this question.
    pub const fn is_huge(self) -> bool {
        self.flags().contains(PteFlags::HUGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_flags_round_trip() {
        let f = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE;
        let e = Pte::new(0x1234_5000, f);
        assert_eq!(e.addr(), 0x1234_5000);
        assert_eq!(e.flags(), f);
        assert!(e.is_present());
        assert!(!e.is_huge());
    }

    #[test]
    fn new_drops_bits_outside_the_address_field() {
        let e = Pte::new(0xfff0_0000_0000_0fff, PteFlags::empty());
        assert_eq!(e.bits(), 0xfff0_0000_0000_0fff & Pte::ADDR_MASK);
        assert_eq!(e.flags(), PteFlags::empty());
    }

    #[test]
    fn flag_set_operations() {
        let rw = PteFlags::PRESENT | PteFlags::WRITABLE;
        assert!(rw.contains(PteFlags::WRITABLE));
        assert!(!rw.without(PteFlags::WRITABLE).contains(PteFlags::WRITABLE));
        assert!(rw.without(PteFlags::WRITABLE).contains(PteFlags::PRESENT));
    }
}
