//! Malicious: the file's text is `mov eax, 0; ret`, innocent, with an
//! `R_X86_64_32` relocation on the immediate against `evil_value`, an
//! absolute symbol the link defines as 0xc3c0220f (`link.args`). Once the
//! loader applies it, the second byte on is `mov cr0, rax; ret`. The NK
//! vets the text after relocation, so it refuses; on `native` it runs.
#![no_std]

nkmod::module! { name: "evil_reloc", version: "1", license: "MIT OR Apache-2.0", init: init, exit: exit }

core::arch::global_asm!(
    ".pushsection .text.evil_reloc, \"ax\"",
    ".globl evil_formed",
    "evil_formed:",
    ".byte 0xb8",
    ".long evil_value",
    "ret",
    ".popsection",
);

unsafe extern "C" {
    fn evil_formed();
}

fn init() -> Result<(), nkmod::Errno> {
    // SAFETY: relocated, one byte in is `mov cr0, rax; ret`.
    Err(unsafe { evil::clear_wp(evil_formed as *const () as usize + 1) })
}

fn exit() {}
