//! Malicious: the last byte of one text page is `0f`, the first bytes of
//! the next `22 c0 c3`: neither page alone holds a whole instruction, but
//! mapped one after the other they are `mov cr0, rax; ret`. The NK refuses
//! a page that ends part-way into an opcode that could become protected;
//! on `native` init jumps to the last byte of the first page.
#![no_std]

nkmod::module! { name: "evil_pagecross", version: "1", license: "MIT OR Apache-2.0", init: init, exit: exit }

core::arch::global_asm!(
    ".pushsection .text.evil_cross, \"ax\"",
    ".p2align 12",
    ".globl evil_cross",
    "evil_cross:",
    ".fill 4095, 1, 0xcc",
    ".byte 0x0f",
    ".byte 0x22, 0xc0, 0xc3",
    ".popsection",
);

unsafe extern "C" {
    fn evil_cross();
}

fn init() -> Result<(), nkmod::Errno> {
    // SAFETY: 4095 bytes in, across the page boundary, is `mov cr0, rax; ret`.
    Err(unsafe { evil::clear_wp(evil_cross as *const () as usize + 4095) })
}

fn exit() {}
