//! The virtual address layout shared by the nested kernel and the outer kernel.

/// Base of the higher-half kernel image: physical address `p` of the image is
/// mapped at `KERNEL_BASE + p` (the linker script uses the same constant).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// Base of the direct map: physical address `p` is mapped at
/// `DIRECT_MAP_BASE + p` (PML4 slot 256, the first kernel-half slot).
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;

/// The largest physical address the direct map covers. 64 GiB bounds the
/// boot page-table pool; RAM above it is reported and left unused.
pub const DIRECT_MAP_LIMIT: u64 = 64 << 30;

/// End of the lower (user) half of the canonical address space.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

pub const PAGE_SIZE: u64 = 4096;
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

/// Index of `va` in the page table of `level` (1 = PT, 4 = PML4).
pub const fn table_index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * (level as u64 - 1))) & 0x1ff) as usize
}

/// True when `va` is canonical for 4-level paging (bits 63..47 all equal).
pub const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Rounds up; saturates at the highest aligned value instead of wrapping.
pub const fn align_up(x: u64, align: u64) -> u64 {
    match x.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => !(align - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_of_layout_bases() {
        assert_eq!(table_index(DIRECT_MAP_BASE, 4), 256);
        assert_eq!(table_index(KERNEL_BASE, 4), 511);
        assert_eq!(table_index(KERNEL_BASE, 3), 510);
        assert_eq!(table_index(KERNEL_BASE + 0x20_1000, 2), 1);
        assert_eq!(table_index(KERNEL_BASE + 0x20_1000, 1), 1);
    }

    #[test]
    fn canonical_addresses() {
        assert!(is_canonical(0));
        assert!(is_canonical(USER_END - 1));
        assert!(!is_canonical(USER_END));
        assert!(is_canonical(DIRECT_MAP_BASE));
        assert!(is_canonical(u64::MAX));
    }

    #[test]
    fn alignment_saturates() {
        assert_eq!(align_up(1, 4096), 4096);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_down(4097, 4096), 4096);
        assert_eq!(align_up(u64::MAX, 4096), !4095);
    }

    // One PML4 slot spans 512 GiB; the direct map must stay inside slot 256.
    const _: () = assert!(DIRECT_MAP_LIMIT <= 512 << 30);
}
