//! The kernel heap: `talc` over one contiguous run of frames, reached through
//! the direct map.
#![allow(unsafe_code)]

use super::frames;
use klib::memmap::PAGE;
use talc::{TalcLock, source::Manual};

const MIN_HEAP: u64 = 4 << 20;
const MAX_HEAP: u64 = 64 << 20;

static HEAP: TalcLock<spin::Mutex<()>, Manual> = TalcLock::new(Manual);

/// The global allocator: talc behind its spin lock, taken with interrupts
/// off. Otherwise a thread preempted while holding it would leave the lock
/// held, and the next allocation made with interrupts off (in the
/// scheduler, under another lock) would spin forever on the one CPU.
struct Heap;

#[global_allocator]
static GLOBAL: Heap = Heap;

// SAFETY: each method forwards to talc's own `GlobalAlloc` with the same
// arguments; disabling interrupts around it changes nothing it relies on.
unsafe impl core::alloc::GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract.
        crate::arch::without_interrupts(|| unsafe { core::alloc::GlobalAlloc::alloc(&HEAP, layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: the caller keeps `GlobalAlloc::dealloc`'s contract.
        crate::arch::without_interrupts(|| unsafe { core::alloc::GlobalAlloc::dealloc(&HEAP, ptr, layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc_zeroed`'s contract.
        crate::arch::without_interrupts(|| unsafe { core::alloc::GlobalAlloc::alloc_zeroed(&HEAP, layout) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: core::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::realloc`'s contract.
        crate::arch::without_interrupts(|| unsafe { core::alloc::GlobalAlloc::realloc(&HEAP, ptr, layout, new_size) })
    }
}

static HEAP_SIZE: spin::Once<u64> = spin::Once::new();

pub fn init() {
    let (free, _) = frames::stats();
    // Whole frames: talc must not claim the start of a frame it was not given.
    let size = (free * PAGE / 16).clamp(MIN_HEAP, MAX_HEAP) / PAGE * PAGE;
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

/// Heap bytes that allocations made on a user's behalf leave free: the
/// kernel's own paths (a process's exit, a fault report, the shell) still
/// find room when a user has taken all it may.
pub fn user_reserve() -> u64 {
    (HEAP_SIZE.get().copied().unwrap_or(0) / 8).max(512 << 10)
}

/// Whether a system call may take `bytes` more of the heap for a user:
/// the heap keeps `user_reserve` free after it. A call that is refused
/// returns ENOMEM (or its own limit's errno) instead of exhausting the
/// heap, which would panic.
pub fn can_grow(bytes: u64) -> bool {
    room() >= bytes
}

/// Heap bytes a user's calls may still take (free bytes beyond the
/// reserve).
pub fn room() -> u64 {
    let (used, size) = stats();
    size.saturating_sub(used).saturating_sub(user_reserve())
}

crate::ktest!(
    fn heap_allocates_and_frees() {
        let (used0, size) = stats();
        crate::kassert!(size >= MIN_HEAP, "heap is {} bytes", size);
        let mut v: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
        for i in 0..100_000 {
            v.push(i);
        }
        crate::kassert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        let (used1, _) = stats();
        crate::kassert!(used1 >= used0 + 800_000, "heap use {} -> {}", used0, used1);
        drop(v);
        let big = alloc::vec![0xa5u8; 1 << 20];
        crate::kassert!(big.iter().all(|&b| b == 0xa5));
        drop(big);
        let (used2, _) = stats();
        crate::kassert!(used2 < used0 + 4096, "heap did not shrink back: {} -> {}", used0, used2);
        Ok(())
    }
);

crate::ktest!(
    fn heap_reports_exhaustion_without_crashing() {
        let layout = core::alloc::Layout::from_size_align(1 << 40, 8).map_err(|e| alloc::format!("{e}"))?;
        // Called on the allocator itself: a call through `alloc::alloc` may be
        // folded away by the optimiser, which assumes allocations succeed.
        // SAFETY: a non-zero-size layout; a null result is the expected answer.
        let p = unsafe { core::alloc::GlobalAlloc::alloc(&HEAP, layout) };
        crate::kassert!(p.is_null(), "a 1 TiB allocation returned {:p}", p);
        Ok(())
    }
);
