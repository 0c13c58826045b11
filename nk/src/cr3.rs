//! The one CR3 write in the image, and the page it lives on.
//!
//! A CR3 write cannot be checked after the fact: the new root decides what
//! the next instruction is, so a jump to a `mov cr3` with an attacker's root
//! would run the attacker's mappings before any check. Instead the write is
//! unreachable from outer code. `nk_cr3_load` (`mov cr3, rdi; ret`) sits
//! alone on a page of NK text that the kernel tables map non-executable;
//! [`load`] makes the page executable, calls it, and makes it
//! non-executable again (each change followed by INVLPG), all inside the
//! gate with interrupts off. A jump to it from outer code takes an
//! instruction-fetch page fault.
//!
//! Sound on one CPU: the page is executable only while this CPU is inside
//! the gate, when no outer code runs on it. With more CPUs running outer
//! code, another CPU could fetch from the page while it is open; SMP needs
//! a per-CPU mapping of this page (per-CPU kernel tables, or PCID-tagged
//! copies), see docs/threat-model.md.

use core::sync::atomic::{AtomicU64, Ordering};
use nk_model::pte::PteFlags;

/// The direct-map address of the level-1 entry that maps `nk_cr3_load`'s
/// page in the kernel tables (0 before boot found it, and on `native`).
static PTE_VA: AtomicU64 = AtomicU64::new(0);

/// The virtual address of the CR3 page.
pub(crate) fn page() -> u64 {
    crate::sites::nk_cr3_load as *const () as u64 & !0xfff
}

/// Records where the CR3 page's entry is (boot, once).
pub(crate) fn set_entry(entry_va: u64) {
    PTE_VA.store(entry_va, Ordering::Relaxed);
}

fn invlpg(va: u64) {
    // SAFETY: INVLPG only drops a translation; it writes no memory.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

fn set_no_execute(entry: *mut u64, on: bool) {
    let nx = PteFlags::NO_EXECUTE.bits();
    // SAFETY: `entry` is the kernel tables' level-1 entry for the CR3 page,
    // found by boot in a pinned table; the NK writes it with protection
    // lifted, and only its NX bit changes.
    unsafe {
        let v = entry.read_volatile();
        entry.write_volatile(if on { v | nx } else { v & !nx });
    }
    invlpg(page());
}

/// Loads CR3 with `root` (a physical address).
///
/// # Safety
/// `root` must be a level-4 table that maps the NK (its code, this stack)
/// as the current one does. Inside the gate (or at boot), interrupts off.
pub(crate) unsafe fn load(root: u64) {
    let entry = PTE_VA.load(Ordering::Relaxed) as *mut u64;
    if cfg!(feature = "native") || entry.is_null() {
        // SAFETY: the caller upholds the contract; on `native` the page is
        // executable all along (the unprotected baseline).
        unsafe { crate::sites::nk_cr3_load(root) };
        return;
    }
    set_no_execute(entry, false);
    // SAFETY: as above; the page is executable until the next line.
    unsafe { crate::sites::nk_cr3_load(root) };
    set_no_execute(entry, true);
}
