//! The kernel heap: `talc` over one contiguous run of frames, reached through
//! the direct map.
#![allow(unsafe_code)]

use super::frames;
use klib::memmap::PAGE;
use talc::{TalcLock, source::Manual};

const MIN_HEAP: u64 = 4 << 20;
const MAX_HEAP: u64 = 64 << 20;

#[global_allocator]
static HEAP: TalcLock<spin::Mutex<()>, Manual> = TalcLock::new(Manual);

static HEAP_SIZE: spin::Once<u64> = spin::Once::new();

pub fn init() {
    let (free, _) = frames::stats();
    let size = (free * PAGE / 16).clamp(MIN_HEAP, MAX_HEAP);
    let Some(first) = frames::alloc_contiguous(size / PAGE, 1) else {
        panic!("mm: no {} MiB of contiguous RAM for the heap", size >> 20);
    };
    // SAFETY: the frames were just taken from the allocator, so nothing else
    // uses them; they stay the heap's for the life of the kernel.
    let claimed = unsafe { HEAP.lock().claim(first.virt(), size as usize) };
    if claimed.is_none() {
        panic!("mm: talc refused the heap region");
    }
    HEAP_SIZE.call_once(|| size);
}

/// (bytes in use, heap size).
pub fn stats() -> (u64, u64) {
    let size = HEAP_SIZE.get().copied().unwrap_or(0);
    let available = crate::arch::without_interrupts(|| HEAP.lock().counters().available_bytes) as u64;
    (size.saturating_sub(available), size)
}
