//! The physical frame allocator: a bitmap over all usable RAM, stored in
//! frames taken from that RAM before the bitmap exists.
#![allow(unsafe_code)]

use klib::bitmap::{FrameBitmap, FreeError};
use klib::memmap::{RangeSet, PAGE};
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
    /// The frame's contents, through the direct map.
    pub fn virt(self) -> *mut u8 {
        nk::layout::phys_to_virt(self.0) as *mut u8
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
    let words_slice: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(nk::layout::phys_to_virt(storage_start) as *mut u64, words)
    };
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
