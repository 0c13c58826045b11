//! Malicious: `mov eax, 0xc3c0220f` is an innocent instruction, but read
//! from its second byte it is `mov cr0, rax; ret`. The NK vets text at
//! every byte offset, so it refuses the page; on `native` init jumps there.
#![no_std]

nkmod::module! { name: "evil_unaligned", version: "1", license: "MIT OR Apache-2.0", init: init, exit: exit }

core::arch::global_asm!(
    ".pushsection .text.evil_hidden, \"ax\"",
    ".globl evil_hidden",
    "evil_hidden:",
    ".byte 0xb8, 0x0f, 0x22, 0xc0, 0xc3",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn evil_hidden();
}

fn init() -> Result<(), nkmod::Errno> {
    // SAFETY: one byte in, `evil_hidden` is `mov cr0, rax; ret`.
    Err(unsafe { evil::clear_wp(evil_hidden as *const () as usize + 1) })
}

fn exit() {}
