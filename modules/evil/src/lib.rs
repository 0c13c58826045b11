//! What the malicious modules share (the attack catalog's `module-*`
//! attacks load them). Each hides `mov cr0, rax; ret` in its text its own
//! way; `clear_wp` jumps there to clear CR0.WP, reads CR0 back, and puts
//! it as it was. On the protected kernel the NK never maps such text
//! executable, so none of this runs; on `native` it does, and init's
//! errno, `PAYLOAD_RAN`, tells the attack so.
#![no_std]

use nkmod::Errno;

/// The errno a malicious module's init fails with once its payload ran
/// and saw CR0.WP clear (EHWPOISON: no other init returns it).
pub const PAYLOAD_RAN: i32 = 133;
/// The errno when the payload ran but WP stayed set.
pub const PAYLOAD_FAILED: i32 = 5;

const WP: u64 = 1 << 16;

fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no effect (and is no protected instruction).
    unsafe { core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Runs `mov cr0, rax; ret` at `gadget` to clear WP, then again to set it
/// back. The loader runs init with interrupts off, so nothing else runs
/// while WP is clear.
///
/// # Safety
/// `gadget` must hold `mov cr0, rax; ret`.
pub unsafe fn clear_wp(gadget: usize) -> Errno {
    let before = cr0();
    // SAFETY: the caller's contract: the gadget loads CR0 from rax and returns.
    unsafe { core::arch::asm!("call {g}", g = in(reg) gadget, in("rax") before & !WP, clobber_abi("C")) };
    let during = cr0();
    // SAFETY: as above, putting CR0 back as it was.
    unsafe { core::arch::asm!("call {g}", g = in(reg) gadget, in("rax") before, clobber_abi("C")) };
    Errno(if during & WP == 0 { PAYLOAD_RAN } else { PAYLOAD_FAILED })
}
