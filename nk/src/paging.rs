//! Boot-time construction of the kernel page tables: the direct map of
//! physical memory and the higher-half kernel image, both W^X.
//!
//! The tables come from a fixed pool in NK memory, so the NK needs no frame
//! allocator of the outer kernel's before the hand-off.

use crate::boot_info::{BootInfo, MemoryKind};
use crate::console::fatal;
use crate::cpu;
use crate::layout::{self, DIRECT_MAP_BASE, DIRECT_MAP_LIMIT, ImageLayout, KERNEL_BASE};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};
use nk_model::layout::{LARGE_PAGE_SIZE, PAGE_SIZE, align_up, table_index};
use nk_model::pte::{Pte, PteFlags};

/// Enough for the root, the image tables and a 64 GiB direct map.
const POOL_TABLES: usize = 96;

#[repr(C, align(4096))]
struct Table([u64; 512]);

struct TablePool {
    tables: UnsafeCell<[Table; POOL_TABLES]>,
    used: AtomicUsize,
}

// SAFETY: the pool is filled by the bootstrap CPU before any other CPU runs;
// each table is handed out once (`used` only grows).
unsafe impl Sync for TablePool {}

static POOL: TablePool =
    TablePool { tables: UnsafeCell::new([const { Table([0; 512]) }; POOL_TABLES]), used: AtomicUsize::new(0) };

/// Takes a zeroed table from the pool; returns its physical address.
fn alloc_table() -> u64 {
    let i = POOL.used.fetch_add(1, Ordering::Relaxed);
    if i >= POOL_TABLES {
        fatal("nk: boot page-table pool exhausted");
    }
    // The pool is in the kernel image, which is linked at KERNEL_BASE + phys.
    let va = POOL.tables.get() as u64 + (i * size_of::<Table>()) as u64;
    va - KERNEL_BASE
}

/// The entries of the table at `phys`, through its kernel-image address.
///
/// # Safety
/// `phys` must be a table handed out by `alloc_table`, and the caller must be
/// the only one touching the tables (boot, one CPU).
unsafe fn entries<'a>(phys: u64) -> &'a mut [u64; 512] {
    // SAFETY: pool tables live in the image, mapped at KERNEL_BASE + phys by
    // both the early and the final tables; exclusivity is the caller's.
    unsafe { &mut (*((phys + KERNEL_BASE) as *mut Table)).0 }
}

/// Maps one page of `size` (4 KiB or 2 MiB) at `va` to `pa` under `root`.
fn map(root: u64, va: u64, pa: u64, size: u64, flags: PteFlags) {
    let leaf_level = if size == LARGE_PAGE_SIZE { 2 } else { 1 };
    let mut table = root;
    for level in (leaf_level + 1..=4).rev() {
        // SAFETY: every table reached from `root` came from the pool; boot is
        // single-threaded.
        let e = unsafe { &mut entries(table)[table_index(va, level)] };
        let pte = Pte::from_bits(*e);
        table = if pte.is_present() {
            if pte.is_huge() {
                fatal("nk: boot mapping overlaps a large page");
            }
            pte.addr()
        } else {
            let next = alloc_table();
            *e = Pte::new(next, PteFlags::PRESENT | PteFlags::WRITABLE).bits();
            next
        };
    }
    let leaf_flags = if leaf_level == 2 { flags | PteFlags::HUGE } else { flags };
    // SAFETY: as above.
    let e = unsafe { &mut entries(table)[table_index(va, leaf_level)] };
    if Pte::from_bits(*e).is_present() {
        fatal("nk: boot mapping maps a page twice");
    }
    *e = Pte::new(pa, leaf_flags).bits();
}

/// The permissions of the image page at physical address `pa`, for its
/// kernel-image mapping (`exec`) or its direct-map alias (never executable).
fn image_page_flags(image: &ImageLayout, pa: u64, exec: bool) -> PteFlags {
    let base = PteFlags::PRESENT | PteFlags::GLOBAL;
    let va = pa + KERNEL_BASE;
    if image.text.contains(va) {
        if exec { base } else { base | PteFlags::NO_EXECUTE }
    } else if image.rodata.contains(va) {
        base | PteFlags::NO_EXECUTE
    } else if image.nk_data.contains(va) && cfg!(not(feature = "native")) {
        // NK data (descriptor tables, page-table pool, stacks, boot
        // information): the NK writes it only with protection lifted (I8, I9).
        base | PteFlags::NO_EXECUTE
    } else {
        base | PteFlags::WRITABLE | PteFlags::NO_EXECUTE
    }
}

/// Builds the final kernel tables and switches to them.
pub fn build_kernel_tables(info: &BootInfo) {
    let image = layout::image();
    let root = alloc_table();
    let global_rw = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE | PteFlags::GLOBAL;

    // Kernel image at KERNEL_BASE + phys, 4 KiB pages with section rights.
    let (img_start, img_end) = (image.text.start - KERNEL_BASE, info.image.end);
    let mut pa = img_start;
    while pa < img_end {
        map(root, pa + KERNEL_BASE, pa, PAGE_SIZE, image_page_flags(&image, pa, true));
        pa += PAGE_SIZE;
    }

    // Direct map of RAM and the 32-bit MMIO hole. 2 MiB pages, except around
    // the image, where 4 KiB pages keep its code and read-only data
    // read-only in this alias too. Chunks holding no RAM are device memory
    // and get uncached mappings.
    let top = align_up(info.ram_end().max(4 << 30), LARGE_PAGE_SIZE).min(DIRECT_MAP_LIMIT);
    let image_chunks = (info.image.start & !(LARGE_PAGE_SIZE - 1), align_up(img_end, LARGE_PAGE_SIZE));
    let mut chunk = 0;
    while chunk < top {
        let va = DIRECT_MAP_BASE + chunk;
        if chunk >= image_chunks.0 && chunk < image_chunks.1 {
            let mut pa = chunk;
            while pa < chunk + LARGE_PAGE_SIZE {
                let flags =
                    if pa >= img_start && pa < img_end { image_page_flags(&image, pa, false) } else { global_rw };
                map(root, DIRECT_MAP_BASE + pa, pa, PAGE_SIZE, flags);
                pa += PAGE_SIZE;
            }
        } else {
            let has_ram = info
                .memory_map()
                .iter()
                .any(|r| r.kind == MemoryKind::Ram && r.start < chunk + LARGE_PAGE_SIZE && r.end() > chunk);
            let flags = if has_ram { global_rw } else { global_rw | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH };
            map(root, va, chunk, LARGE_PAGE_SIZE, flags);
        }
        chunk += LARGE_PAGE_SIZE;
    }

    // SAFETY: the new root maps the image (this code, the NK boot stack and
    // the pool) at the same addresses as the early tables, and the direct map.
    unsafe { cpu::write_cr3(root) };
}
