//! The physical frame allocator: a bitmap over all usable RAM, stored in
//! frames taken from that RAM before the bitmap exists.
#![allow(unsafe_code)]

use klib::bitmap::{FrameBitmap, FreeError};
use klib::memmap::{PAGE, RangeSet};
use spin::Mutex;

/// A physical frame (4 KiB), by its physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Frame(u64);

impl Frame {
    pub const fn addr(self) -> u64 {
        self.0
    }
    pub const fn number(self) -> u64 {
        self.0 / PAGE
    }
    /// The frame `i` frames after this one (in a contiguous allocation).
    pub const fn nth(self, i: u64) -> Frame {
        Frame(self.0 + i * PAGE)
    }
    /// The frame's contents, through the direct map.
    pub fn virt(self) -> *mut u8 {
        nk::layout::phys_to_virt(self.0) as *mut u8
    }

    /// Copies `bytes` into a frame the caller owns, at `offset`.
    pub fn write_at(self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= PAGE as usize, "write past the end of a frame");
        // SAFETY: inside the frame (checked), which is RAM mapped writable by
        // the direct map while it is ordinary data; the caller owns it.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.virt().add(offset), bytes.len()) }
    }

    /// Copies the whole of `src` into this frame, which the caller owns.
    pub fn copy_from(self, src: Frame) {
        // SAFETY: two distinct frames of RAM (the caller owns `self`, just
        // allocated, so it is not `src`), both in the direct map; `self` is
        // ordinary data, writable there.
        unsafe { core::ptr::copy_nonoverlapping(src.virt() as *const u8, self.virt(), PAGE as usize) }
    }

    /// Fills a frame the caller owns (allocated, not a page table) with `byte`.
    pub fn fill(self, byte: u8) {
        // SAFETY: a frame of RAM, mapped writable by the direct map while it
        // is ordinary data; the caller owns it, so nothing else reads it now.
        unsafe { core::ptr::write_bytes(self.virt(), byte, PAGE as usize) }
    }
}

static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);

pub fn init<const N: usize>(usable: &RangeSet<N>) {
    let ranges = usable.as_slice();
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        panic!("mm: no usable RAM");
    };
    let base = first.start / PAGE;
    let frames = last.end / PAGE - base;
    let words = FrameBitmap::words_for(frames);
    let bytes = (words * 8) as u64;
    let storage_pages = bytes.div_ceil(PAGE);
    let Some(home) = ranges.iter().find(|r| r.end - r.start >= storage_pages * PAGE) else {
        panic!("mm: no room for the frame bitmap");
    };
    let storage_start = home.start;
    // SAFETY: [storage_start, +bytes) is usable RAM that nothing else owns
    // (it is removed from the free set below and never freed), mapped by the
    // direct map; it lives for the rest of the kernel's life.
    let words_slice: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(nk::layout::phys_to_virt(storage_start) as *mut u64, words) };
    let mut bitmap = FrameBitmap::new(words_slice, base, frames);
    let mut free = usable.clone();
    free.remove(storage_start..storage_start + storage_pages * PAGE);
    for r in free.as_slice() {
        bitmap
            .free_range(r.start / PAGE, (r.end - r.start) / PAGE)
            .expect("usable ranges are disjoint and inside the bitmap");
    }
    *FRAMES.lock() = Some(bitmap);
}

fn with<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> R {
    crate::arch::without_interrupts(|| f(FRAMES.lock().as_mut().expect("frame allocator not initialised")))
}

/// One free frame, or `None` when memory is exhausted.
pub fn alloc() -> Option<Frame> {
    with(|b| b.alloc()).map(|n| Frame(n * PAGE))
}

/// `count` physically contiguous frames, the first aligned to `align` frames.
pub fn alloc_contiguous(count: u64, align: u64) -> Option<Frame> {
    with(|b| b.alloc_contiguous(count, align)).map(|n| Frame(n * PAGE))
}

/// Returns a frame. A double free or a foreign frame is refused, not absorbed.
pub fn free(frame: Frame) -> Result<(), FreeError> {
    with(|b| b.free(frame.number()))
}

pub fn is_free(frame: Frame) -> bool {
    with(|b| b.is_free(frame.number()))
}

/// (free frames, frames the bitmap covers).
pub fn stats() -> (u64, u64) {
    with(|b| (b.free_frames(), b.total_frames()))
}

crate::ktest!(
    fn alloc_gives_distinct_usable_frames() {
        let info = crate::boot_info();
        let (free_before, _) = stats();
        let mut got = alloc::vec::Vec::new();
        for _ in 0..64 {
            got.push(alloc().ok_or("out of frames")?);
        }
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        crate::kassert_eq!(sorted.len(), got.len());
        for f in &got {
            crate::kassert!(f.addr() % PAGE == 0);
            crate::kassert!(f.addr() >= 1 << 20, "frame {:#x} in low memory", f.addr());
            let (hole_start, hole_end) = nk::layout::image().hole();
            let in_hole = f.addr() >= hole_start && f.addr() + PAGE <= hole_end;
            crate::kassert!(
                in_hole || f.addr() >= info.image.end || f.addr() + PAGE <= info.image.start,
                "frame {:#x} inside the kernel image",
                f.addr()
            );
            crate::kassert!(!is_free(*f));
        }
        crate::kassert_eq!(stats().0, free_before - 64);
        for f in got {
            free(f).map_err(|e| alloc::format!("{:?}", e))?;
        }
        crate::kassert_eq!(stats().0, free_before);
        Ok(())
    }
);

crate::ktest!(
    fn frames_hold_data_through_the_direct_map() {
        let f = alloc().ok_or("out of frames")?;
        let words = f.virt() as *mut u64;
        for i in 0..512 {
            // SAFETY: the frame is ours until freed below; 512 words fill it.
            unsafe { words.add(i).write_volatile(f.addr() ^ i as u64) };
        }
        for i in 0..512 {
            // SAFETY: as above.
            let v = unsafe { words.add(i).read_volatile() };
            crate::kassert_eq!(v, f.addr() ^ i as u64);
        }
        free(f).map_err(|e| alloc::format!("{:?}", e))?;
        Ok(())
    }
);

crate::ktest!(
    fn double_free_is_refused() {
        let f = alloc().ok_or("out of frames")?;
        crate::kassert_eq!(free(f), Ok(()));
        crate::kassert_eq!(free(f), Err(FreeError::AlreadyFree(f.number())));
        crate::kassert_eq!(free(Frame(0)), Err(FreeError::OutOfRange(0)));
        Ok(())
    }
);

crate::ktest!(
    fn contiguous_runs_are_aligned_and_whole() {
        let first = alloc_contiguous(512, 512).ok_or("no 2 MiB run")?;
        crate::kassert_eq!(first.addr() % (2 << 20), 0);
        for i in 0..512 {
            crate::kassert!(!is_free(Frame(first.addr() + i * PAGE)));
        }
        for i in 0..512 {
            free(Frame(first.addr() + i * PAGE)).map_err(|e| alloc::format!("{:?}", e))?;
        }
        Ok(())
    }
);

crate::ktest!(
    fn all_usable_ram_is_reachable() {
        let usable = super::usable_ranges(crate::boot_info());
        for r in usable.as_slice() {
            for addr in [r.start, r.end - 8] {
                let p = nk::layout::phys_to_virt(addr) as *const u64;
                // SAFETY: a read of usable RAM through the direct map; the value
                // is not used, only the absence of a fault matters.
                let _ = unsafe { p.read_volatile() };
            }
        }
        crate::kassert!(!usable.as_slice().is_empty());
        Ok(())
    }
);

/// `len` bytes of RAM at `phys`, read-only, through the direct map: for
/// memory the kernel never reuses (the initrd).
pub fn phys_slice(phys: u64, len: u64) -> &'static [u8] {
    // SAFETY: callers pass RAM excluded from allocation for the kernel's
    // life (the initrd), which the direct map covers.
    unsafe { core::slice::from_raw_parts(nk::layout::phys_to_virt(phys) as *const u8, len as usize) }
}
