//! Malicious: hooks a system call by storing a handler of the attacker's
//! into the sealed system-call table (I11). The interface exports neither
//! the table nor a handler; the attack plays a compromised loader and
//! resolves `evil_syscall_slot` (the table entry) and `evil_handler` for
//! it. On the protected kernel the table is mapped read-only and the store
//! faults; on `native` it lands, and the attack puts the entry back.
#![no_std]

nkmod::module! { name: "evil_hook", version: "1", license: "MIT OR Apache-2.0", init: init, exit: exit }

// The loader resolves these for the attack: absolute, so in data.
core::arch::global_asm!(
    ".pushsection .data.evil_args, \"aw\"",
    ".p2align 3",
    ".globl evil_hook_args",
    "evil_hook_args:",
    ".quad evil_syscall_slot, evil_handler",
    ".popsection",
);

unsafe extern "C" {
    static evil_hook_args: [u64; 2];
}

fn init() -> Result<(), nkmod::Errno> {
    // SAFETY: the loader filled the two words.
    let [slot, handler] = unsafe { evil_hook_args };
    // SAFETY: deliberately not: a store into NK-protected memory.
    unsafe { core::ptr::write_volatile(slot as *mut u64, handler) };
    Err(nkmod::Errno(evil::PAYLOAD_RAN))
}

fn exit() {}
