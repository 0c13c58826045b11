//! Copies between kernel buffers and a process's memory. The process's own
//! tables are walked and the bytes moved through the direct map, so a bad
//! user pointer is an error (EFAULT), never a kernel fault, and SMAP never
//! needs lifting. A page not mapped yet, or shared copy-on-write, is
//! brought in first as a fault by the process would be.
#![allow(unsafe_code)]

use super::walk;
use nk_model::layout::{PAGE_SIZE, USER_END};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// Each user page `[va, va + len)` touches, as (direct-map address, length,
/// offset into the caller's buffer), if every page is mapped for user mode
/// (and writable, for `write`).
fn pages(root: u64, va: u64, len: usize, write: bool, mut f: impl FnMut(u64, usize, usize)) -> Result<(), Fault> {
    let end = va.checked_add(len as u64).ok_or(Fault)?;
    if end > USER_END {
        return Err(Fault);
    }
    let mut at = va;
    while at < end {
        let usable = |t: &walk::Translation| t.user && (t.writable || !write);
        let t = match walk::translate(root * PAGE_SIZE, at).filter(usable) {
            Some(t) => t,
            None if crate::proc::resolve_fault(root, at, write) => {
                walk::translate(root * PAGE_SIZE, at).filter(usable).ok_or(Fault)?
            }
            None => return Err(Fault),
        };
        let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(end - at);
        f(nk::layout::phys_to_virt(t.phys), chunk as usize, (at - va) as usize);
        at += chunk;
    }
    Ok(())
}

/// Copies `dst.len()` bytes from user address `src` of the space whose
/// root table is frame `root`.
pub fn copy_from_user(root: u64, dst: &mut [u8], src: u64) -> Result<(), Fault> {
    pages(root, src, dst.len(), false, |from, n, off| {
        // SAFETY: `from` is the direct-map address of `n` bytes of a user
        // frame (RAM, mapped by the direct map); `dst` has room for them.
        unsafe { core::ptr::copy_nonoverlapping(from as *const u8, dst[off..].as_mut_ptr(), n) }
    })
}

/// Copies `src` to user address `dst` of the space `root`.
pub fn copy_to_user(root: u64, dst: u64, src: &[u8]) -> Result<(), Fault> {
    // Check every page first, so a fault midway writes nothing.
    pages(root, dst, src.len(), true, |_, _, _| {})?;
    pages(root, dst, src.len(), true, |to, n, off| {
        // SAFETY: `to` is the direct-map address of `n` bytes of a user
        // frame the process may write; ordinary data, writable there.
        unsafe { core::ptr::copy_nonoverlapping(src[off..].as_ptr(), to as *mut u8, n) }
    })
}
