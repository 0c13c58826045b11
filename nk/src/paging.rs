//! Boot-time construction of the kernel page tables through the vMMU's boot
//! interface: the frame table, a 4 KiB direct map of RAM and the W^X kernel
//! image, every table declared and those below the root pinned, before the
//! hand-off.
//!
//! The frame table and the tables come from RAM the NK reserves for itself
//! below 1 GiB (what the trampoline's early tables reach), reported to the
//! outer kernel as `BootInfo::nk_reserved`.

use crate::boot_info::{BootInfo, MemoryKind, PhysRange};
use crate::console::fatal;
use crate::layout::{self, DIRECT_MAP_BASE, DIRECT_MAP_LIMIT, ImageLayout, KERNEL_BASE, phys_to_virt};
use crate::vmmu::{self, DirectMap};
use nk_model::layout::{LARGE_PAGE_SIZE, PAGE_SIZE, align_up, table_index};
use nk_model::pte::{Pte, PteFlags};
use nk_model::vmmu::{FrameKind, Level, PhysMem, TABLE_FLAGS, Vmmu};

/// What the trampoline's early tables map; the NK builds with them live.
const EARLY_MAP_END: u64 = 1 << 30;
const LOW_MEMORY_END: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Frames the frame table describes: RAM up to its highest address.
fn frame_count(info: &BootInfo) -> u64 {
    info.ram_end().min(DIRECT_MAP_LIMIT) / PAGE_SIZE
}

/// The direct map spans RAM and, at least, the 32-bit device hole.
fn direct_map_end(info: &BootInfo) -> u64 {
    align_up(info.ram_end().max(4 << 30), LARGE_PAGE_SIZE).min(DIRECT_MAP_LIMIT)
}

fn chunk_has_ram(info: &BootInfo, chunk: u64) -> bool {
    info.memory_map().iter().any(|r| r.kind == MemoryKind::Ram && r.start < chunk + LARGE_PAGE_SIZE && r.end() > chunk)
}

/// The reserved range's parts: frame table, auditor scratch, tables.
struct Parts {
    frame_table: u64,
    scratch: u64,
    tables: u64,
}

fn parts(info: &BootInfo) -> Parts {
    let frames = frame_count(info);
    let frame_table = align_up(frames * 8, PAGE_SIZE);
    let scratch = align_up(frames * 4, PAGE_SIZE);
    let image = layout::image();
    let image_span = info.image.end - (image.text.start - KERNEL_BASE);
    let end = direct_map_end(info);
    let ram_chunks = (0..end / LARGE_PAGE_SIZE).filter(|&c| chunk_has_ram(info, c * LARGE_PAGE_SIZE)).count() as u64;
    // Root; direct map: one level 3, a level 2 per GiB, a level 1 per 2 MiB
    // of RAM; image: level 3 and two level 2 (in case it straddles a GiB),
    // a level 1 per 2 MiB and one for a straddle.
    let tables = 1 + 1 + end.div_ceil(GIB) + ram_chunks + 3 + image_span.div_ceil(LARGE_PAGE_SIZE) + 1;
    Parts { frame_table, scratch, tables: tables * PAGE_SIZE }
}

fn overlaps(start: u64, end: u64, r: PhysRange) -> bool {
    start < r.end && r.start < end
}

/// Chooses the RAM the NK keeps for itself: the lowest fit below 1 GiB that
/// is clear of low memory, the image and the initrd.
pub fn reserve(info: &BootInfo) -> Option<PhysRange> {
    let p = parts(info);
    let size = p.frame_table + p.scratch + p.tables;
    let ram = || info.memory_map().iter().filter(|r| r.kind == MemoryKind::Ram);
    let candidates = ram().map(|r| r.start).chain([info.image.end]).chain(info.initrd.map(|i| i.end));
    candidates
        .map(|c| align_up(c.max(LOW_MEMORY_END), PAGE_SIZE))
        .filter(|&start| {
            let end = start.saturating_add(size);
            end <= EARLY_MAP_END
                && ram().any(|r| r.start <= start && end <= r.end())
                && !overlaps(start, end, info.image)
                && !info.initrd.is_some_and(|i| overlaps(start, end, i))
        })
        .min()
        .map(|start| PhysRange { start, end: start + size })
}

fn image_hole(image: &ImageLayout) -> core::ops::Range<u64> {
    let (start, end) = image.hole();
    start..end
}

/// The permissions of the image page at physical address `pa` in its
/// kernel-image mapping.
fn image_page_flags(image: &ImageLayout, pa: u64) -> PteFlags {
    let base = PteFlags::PRESENT | PteFlags::GLOBAL;
    let va = pa + KERNEL_BASE;
    if va & !0xfff == crate::cr3::page() && cfg!(not(feature = "native")) {
        // The CR3 page: executable only inside the gate (`cr3.rs`).
        base | PteFlags::NO_EXECUTE
    } else if image.text.contains(va) {
        base
    } else if image.rodata.contains(va) || (image.nk_data.contains(va) && cfg!(not(feature = "native"))) {
        // Constants, and NK data (the NK writes it only with WP lifted).
        base | PteFlags::NO_EXECUTE
    } else {
        base | PteFlags::WRITABLE | PteFlags::NO_EXECUTE
    }
}

/// A frame's direct-map alias follows its kind: page tables, NK memory,
/// code and read-only data are read-only there (except on `native`, which
/// protects nothing but what any kernel would: code and constants).
fn direct_map_flags(kind: Option<FrameKind>) -> PteFlags {
    let ro = PteFlags::PRESENT | PteFlags::NO_EXECUTE | PteFlags::GLOBAL;
    let rw = ro | PteFlags::WRITABLE;
    match kind {
        Some(FrameKind::Code | FrameKind::ReadOnly) => ro,
        Some(FrameKind::Ptp(_) | FrameKind::Nk) if cfg!(not(feature = "native")) => ro,
        _ => rw,
    }
}

struct Builder {
    vmmu: Vmmu<'static>,
    mem: DirectMap,
    next: u64,
    end: u64,
}

impl Builder {
    fn set_kind(&mut self, pfn: u64, kind: FrameKind) {
        if self.vmmu.boot_set_kind(pfn, kind).is_err() {
            fatal("nk: boot frame outside the frame table");
        }
    }

    fn set_kinds(&mut self, start: u64, end: u64, kind: FrameKind) {
        for pfn in start / PAGE_SIZE..end.div_ceil(PAGE_SIZE).min(self.vmmu.frames_len() as u64) {
            self.set_kind(pfn, kind);
        }
    }

    fn alloc_table(&mut self, level: Level) -> u64 {
        if self.next >= self.end {
            fatal("nk: boot page tables overflow their reserved range");
        }
        let pfn = self.next / PAGE_SIZE;
        self.next += PAGE_SIZE;
        if self.vmmu.boot_declare_table(&mut self.mem, pfn, level).is_err() {
            fatal("nk: boot page table outside the frame table");
        }
        pfn
    }

    fn set_entry(&mut self, table: u64, index: usize, pte: Pte) {
        if self.vmmu.boot_map(&mut self.mem, table, index, pte).is_err() {
            fatal("nk: boot mapping into something that is not a table");
        }
    }

    /// Rewrites the direct-map alias of `pfn` with the rights its kind gets.
    fn protect_alias(&mut self, root: u64, pfn: u64) {
        let va = DIRECT_MAP_BASE + pfn * PAGE_SIZE;
        let mut table = root;
        for level in [Level::L4, Level::L3, Level::L2] {
            let entry = Pte::from_bits(self.mem.read_entry(table, table_index(va, level.as_u8())));
            if !entry.is_present() || entry.is_huge() {
                fatal("nk: a boot page table has no 4 KiB direct-map alias");
            }
            table = entry.addr() / PAGE_SIZE;
        }
        let kind = self.vmmu.frame(pfn).map(|d| d.kind());
        self.set_entry(table, table_index(va, 1), Pte::new(pfn * PAGE_SIZE, direct_map_flags(kind)));
    }

    /// The direct-map address of the level-1 entry that maps `va`.
    fn leaf_entry(&self, root: u64, va: u64) -> u64 {
        let mut table = root;
        for level in [Level::L4, Level::L3, Level::L2] {
            let entry = Pte::from_bits(self.mem.read_entry(table, table_index(va, level.as_u8())));
            if !entry.is_present() || entry.is_huge() {
                fatal("nk: the CR3 page has no 4 KiB mapping");
            }
            table = entry.addr() / PAGE_SIZE;
        }
        phys_to_virt(table * PAGE_SIZE) + 8 * table_index(va, 1) as u64
    }

    /// Maps one page (a level-1 leaf, or a 2 MiB level-2 leaf) at `va`.
    fn map(&mut self, root: u64, va: u64, pa: u64, leaf: Level, flags: PteFlags) {
        let mut table = root;
        let mut level = Level::L4;
        while level != leaf {
            let Some(next) = level.next_lower() else { fatal("nk: boot mapping below level 1") };
            let index = table_index(va, level.as_u8());
            let entry = Pte::from_bits(self.mem.read_entry(table, index));
            table = if !entry.is_present() {
                let t = self.alloc_table(next);
                self.set_entry(table, index, Pte::new(t * PAGE_SIZE, TABLE_FLAGS));
                t
            } else if entry.is_huge() {
                fatal("nk: boot mapping overlaps a large page");
            } else {
                entry.addr() / PAGE_SIZE
            };
            level = next;
        }
        let index = table_index(va, leaf.as_u8());
        if Pte::from_bits(self.mem.read_entry(table, index)).is_present() {
            fatal("nk: boot mapping maps a page twice");
        }
        let flags = if leaf == Level::L2 { flags | PteFlags::HUGE } else { flags };
        self.set_entry(table, index, Pte::new(pa, flags));
    }
}

/// Builds the frame table and the kernel tables, switches to them and hands
/// them to the vMMU. Runs once, on the bootstrap CPU, with CR0.WP clear.
pub fn build_kernel_tables(info: &BootInfo) {
    let reserved = info.nk_reserved;
    let p = parts(info);
    let frames = frame_count(info) as usize;
    // SAFETY: `reserve` chose this range in RAM below 1 GiB, clear of the
    // image and the initrd, and the early tables map it at the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(reserved.start) as *mut u8, 0, (p.frame_table + p.scratch) as usize) };
    // SAFETY: the frame table and scratch parts of the reserved range, just
    // zeroed; the outer kernel never allocates them (`nk_reserved`).
    let (table, scratch) =
        unsafe { (vmmu::frame_table(reserved.start, frames), vmmu::scratch(reserved.start + p.frame_table, frames)) };
    let first_table = reserved.start + p.frame_table + p.scratch;
    let mut b = Builder { vmmu: Vmmu::new(table), mem: DirectMap, next: first_table, end: reserved.end };

    // Kinds first, so every mapping below is made with its frame's kind known.
    b.set_kinds(0, frames as u64 * PAGE_SIZE, FrameKind::Device);
    for r in info.memory_map().iter().filter(|r| r.kind == MemoryKind::Ram) {
        b.set_kinds(r.start, r.end(), FrameKind::Data);
    }
    let image = layout::image();
    let text_phys = image.text.start - KERNEL_BASE;
    b.set_kinds(image.phys_start, text_phys, FrameKind::Nk);
    b.set_kinds(text_phys, image.nk_text.end - KERNEL_BASE, FrameKind::Nk);
    b.set_kinds(image.nk_text.end - KERNEL_BASE, image.text.end - KERNEL_BASE, FrameKind::Code);
    b.set_kinds(image.rodata.start - KERNEL_BASE, image.rodata.end - KERNEL_BASE, FrameKind::ReadOnly);
    b.set_kinds(image.nk_data.start - KERNEL_BASE, image.nk_data.end - KERNEL_BASE, FrameKind::Nk);
    b.set_kinds(reserved.start, first_table, FrameKind::Nk);

    let root = b.alloc_table(Level::L4);

    // Kernel image at KERNEL_BASE + phys, 4 KiB pages with section rights.
    let mut pa = text_phys;
    while pa < info.image.end {
        // The hole between read-only data and data (kernel/linker.ld) is
        // ordinary RAM, not part of the image.
        if !image_hole(&image).contains(&pa) {
            b.map(root, pa + KERNEL_BASE, pa, Level::L1, image_page_flags(&image, pa));
        }
        pa += PAGE_SIZE;
    }

    // Direct map: 4 KiB pages over RAM, so every frame has its own alias
    // whose rights follow its kind; 2 MiB uncached pages over chunks that
    // hold no RAM (device memory).
    let end = direct_map_end(info);
    let mut chunk = 0;
    while chunk < end {
        if chunk_has_ram(info, chunk) {
            for pa in (chunk..chunk + LARGE_PAGE_SIZE).step_by(PAGE_SIZE as usize) {
                let kind = b.vmmu.frame(pa / PAGE_SIZE).map(|d| d.kind());
                b.map(root, DIRECT_MAP_BASE + pa, pa, Level::L1, direct_map_flags(kind));
            }
        } else {
            let flags = direct_map_flags(None) | PteFlags::CACHE_DISABLE | PteFlags::WRITE_THROUGH;
            b.map(root, DIRECT_MAP_BASE + chunk, chunk, Level::L2, flags);
        }
        chunk += LARGE_PAGE_SIZE;
    }

    // Tables allocated after their own frame's alias was mapped got the
    // alias of data: make each read-only now that all are known.
    for pfn in first_table / PAGE_SIZE..b.next / PAGE_SIZE {
        b.protect_alias(root, pfn);
    }

    // Every table but the root maps the image or the direct map: pin them,
    // so the outer kernel can never redirect what the NK itself reaches.
    for pfn in first_table / PAGE_SIZE..b.next / PAGE_SIZE {
        if pfn != root && b.vmmu.boot_pin(pfn).is_err() {
            fatal("nk: cannot pin a boot page table");
        }
    }
    b.vmmu.set_kernel_root(root);

    crate::cr3::set_entry(b.leaf_entry(root, crate::cr3::page()));
    // SAFETY: the new root maps the image (this code, the NK boot stack) at
    // the same addresses as the early tables, and the direct map over the
    // reserved range and all RAM.
    unsafe { crate::cr3::load(root * PAGE_SIZE) };
    vmmu::install(vmmu::State { vmmu: b.vmmu, scratch, table_va: phys_to_virt(reserved.start) });
}
