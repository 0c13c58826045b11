//! Where things are: address-space constants and the image's section bounds
//! (symbols defined by `kernel/linker.ld`).

pub use nk_model::layout::{DIRECT_MAP_BASE, DIRECT_MAP_LIMIT, KERNEL_BASE, PAGE_SIZE};

/// The direct-map address of physical address `phys`.
pub const fn phys_to_virt(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// The physical address behind a direct-map or kernel-image address.
pub const fn virt_to_phys(virt: u64) -> Option<u64> {
    if virt >= KERNEL_BASE {
        Some(virt - KERNEL_BASE)
    } else if virt >= DIRECT_MAP_BASE && virt < DIRECT_MAP_BASE + DIRECT_MAP_LIMIT {
        Some(virt - DIRECT_MAP_BASE)
    } else {
        None
    }
}

unsafe extern "C" {
    static __image_phys_start: u8;
    static __text_start: u8;
    static __nk_text_end: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __nk_data_start: u8;
    static __nk_data_end: u8;
    static __image_end: u8;
}

/// A half-open range of virtual addresses in the kernel image.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    pub start: u64,
    pub end: u64,
}

impl Section {
    pub const fn phys(&self) -> (u64, u64) {
        (self.start - KERNEL_BASE, self.end - KERNEL_BASE)
    }
    pub const fn contains(&self, va: u64) -> bool {
        va >= self.start && va < self.end
    }
}

/// The kernel image's sections as the linker placed them.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// Physical start of the whole image, including the low boot trampoline.
    pub phys_start: u64,
    /// All executable code: NK code first, then the outer kernel's.
    pub text: Section,
    /// The NK's own code, a prefix of `text`.
    pub nk_text: Section,
    pub rodata: Section,
    /// Writable data and bss, NK and outer kernel.
    pub data: Section,
    /// The NK's own data and bss, a prefix of `data`.
    pub nk_data: Section,
}

impl ImageLayout {
    /// Physical pages inside the image's range that hold nothing: the gap
    /// the linker leaves between read-only data and data. Free RAM.
    pub fn hole(&self) -> (u64, u64) {
        let start = (self.rodata.end - KERNEL_BASE).next_multiple_of(PAGE_SIZE);
        (start, (self.data.start - KERNEL_BASE).max(start))
    }
}

pub fn image() -> ImageLayout {
    // Taking the address of a linker symbol reads no memory.
    let addr = |s: &u8| s as *const u8 as u64;
    // SAFETY: these are linker-script symbols; only their addresses are used.
    unsafe {
        ImageLayout {
            phys_start: addr(&__image_phys_start),
            text: Section { start: addr(&__text_start), end: addr(&__text_end) },
            nk_text: Section { start: addr(&__text_start), end: addr(&__nk_text_end) },
            rodata: Section { start: addr(&__rodata_start), end: addr(&__rodata_end) },
            data: Section { start: addr(&__data_start), end: addr(&__image_end) },
            nk_data: Section { start: addr(&__nk_data_start), end: addr(&__nk_data_end) },
        }
    }
}
