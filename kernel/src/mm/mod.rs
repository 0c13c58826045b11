//! Physical memory: which frames are free (from the boot memory map), the
//! frame allocator, and the kernel heap. All of it is reached through the
//! NK's direct map; this module maps nothing itself.

pub mod frames;
pub mod heap;
pub mod modarea;
pub mod usercopy;
pub mod vm;
pub mod walk;

use klib::memmap::RangeSet;
use nk::{BootInfo, MemoryKind};

/// The first MiB holds firmware tables and is where CPUs start; never used.
const LOW_MEMORY_END: u64 = 1 << 20;

/// What the boot memory map gave us, for `mem` and the tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhysicalSummary {
    pub ram_bytes: u64,
    pub usable_bytes: u64,
    pub usable_regions: usize,
}

static SUMMARY: spin::Once<PhysicalSummary> = spin::Once::new();

pub fn summary() -> PhysicalSummary {
    SUMMARY.get().copied().unwrap_or_default()
}

/// RAM from the memory map minus everything that is already in use.
pub fn usable_ranges(info: &BootInfo) -> RangeSet<64> {
    let mut set = RangeSet::new();
    let limit = nk::layout::DIRECT_MAP_LIMIT;
    for r in info.memory_map().iter().filter(|r| r.kind == MemoryKind::Ram) {
        set.insert(r.start.min(limit)..r.end().min(limit));
    }
    set.remove(0..LOW_MEMORY_END);
    set.remove(info.image.start..info.image.end);
    // The gap the linker leaves between read-only data and data is free RAM.
    let (hole_start, hole_end) = nk::layout::image().hole();
    if hole_end > hole_start {
        set.insert(hole_start..hole_end);
    }
    set.remove(info.nk_reserved.start..info.nk_reserved.end);
    if let Some(initrd) = info.initrd {
        set.remove(initrd.start..initrd.end);
    }
    set
}

pub fn init(info: &BootInfo) {
    let usable = usable_ranges(info);
    let ram_bytes = info.memory_map().iter().filter(|r| r.kind == MemoryKind::Ram).map(|r| r.len).sum();
    if info.ram_end() > nk::layout::DIRECT_MAP_LIMIT {
        crate::println!("mm: RAM above {} GiB is not used", nk::layout::DIRECT_MAP_LIMIT >> 30);
    }
    if usable.overflowed > 0 || info.memory_dropped > 0 {
        crate::println!("mm: memory map too fragmented; some RAM is not used");
    }
    SUMMARY.call_once(|| PhysicalSummary {
        ram_bytes,
        usable_bytes: usable.total(),
        usable_regions: usable.as_slice().len(),
    });
    frames::init(&usable);
    heap::init();
}

crate::ktest!(
    fn usable_ranges_exclude_what_is_in_use() {
        let info = crate::boot_info();
        let usable = usable_ranges(info);
        for r in usable.as_slice() {
            crate::kassert!(r.start >= LOW_MEMORY_END, "{:#x?} in low memory", r);
            let (hole_start, hole_end) = nk::layout::image().hole();
            let in_hole = r.start >= hole_start && r.end <= hole_end;
            crate::kassert!(
                in_hole || r.end <= info.image.start || r.start >= info.image.end,
                "{:#x?} overlaps the image",
                r
            );
            let nk = info.nk_reserved;
            crate::kassert!(r.end <= nk.start || r.start >= nk.end, "{:#x?} overlaps the NK's reserved RAM", r);
            if let Some(i) = info.initrd {
                crate::kassert!(r.end <= i.start || r.start >= i.end, "{:#x?} overlaps the initrd", r);
            }
            let in_ram =
                info.memory_map().iter().any(|m| m.kind == MemoryKind::Ram && m.start <= r.start && r.end <= m.end());
            crate::kassert!(in_ram, "{:#x?} is not inside one RAM region", r);
        }
        crate::kassert!(summary().usable_bytes > 0);
        Ok(())
    }
);
