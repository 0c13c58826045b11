//! Reads of NK-protected memory: regions and logs the outer kernel may
//! read but, on the protected kernel, never write.
#![allow(unsafe_code)]

use alloc::vec::Vec;

/// The `len` bytes at `addr`, which must lie in a region the NK reports
/// (or its shadow): NK data or write-mediated frames, mapped readable.
pub fn read(addr: u64, len: usize) -> Vec<u8> {
    let mut out = alloc::vec![0u8; len];
    // SAFETY: the caller names memory of a region the NK reports: mapped
    // and readable by the kernel for as long as the region exists, which
    // is for good once it holds anything (regions with history are never
    // freed). The NK changes it only inside gate calls, which the compiler
    // sees as opaque calls, so a plain copy reads the current bytes.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), len) };
    out
}

/// The word at `addr`, as `read`.
pub fn read_u64(addr: u64) -> u64 {
    // SAFETY: as in `read`; the caller keeps `addr` 8-aligned.
    unsafe { (addr as *const u64).read_volatile() }
}

/// The system-call handler stored at `addr`, an entry of the table
/// `systable::install` wrote (and no other address).
pub fn handler_at(addr: u64) -> Option<super::systable::Handler> {
    let word = read_u64(addr);
    // SAFETY: `Option<fn>` is a nullable pointer, and the word is 0 or was
    // written by `install` from a `Handler`. Sealed, only the NK could change
    // it, and it refuses; on `native` (or with `nk.systable=off`) an attacker
    // can, which is what the `syscall-table-overwrite` attack shows.
    unsafe { core::mem::transmute::<usize, Option<super::systable::Handler>>(word as usize) }
}
