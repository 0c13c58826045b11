//! Per-CPU state of the nested kernel: which CPU is running, its NK stack,
//! and whether it is inside the NK.
//!
//! The CPU is identified by its task register: each CPU loads its own TSS
//! selector, and only LTR (an NK-only instruction) can change it, so outer
//! code cannot make one CPU pose as another.

use core::arch::asm;
use core::cell::UnsafeCell;

pub const MAX_CPUS: usize = 16;
pub const NK_STACK_SIZE: usize = 16 * 1024;

/// Index of the running CPU.
pub fn current() -> usize {
    let selector: u16;
    // SAFETY: STR only reads the task register.
    unsafe { asm!("str {0:x}", out(reg) selector, options(nomem, nostack, preserves_flags)) };
    (usize::from(selector).saturating_sub(usize::from(crate::gdt::FIRST_TSS)) / 16).min(MAX_CPUS - 1)
}

#[repr(C, align(16))]
pub struct NkStacks(UnsafeCell<[[u8; NK_STACK_SIZE]; MAX_CPUS]>);

// SAFETY: each CPU runs only on its own stack, only inside the gate, with
// interrupts off; Rust code never forms references into the array.
unsafe impl Sync for NkStacks {}

/// The NK stacks, one per CPU; the gate switches to the top of its CPU's.
pub static NK_STACKS: NkStacks = NkStacks(UnsafeCell::new([[0; NK_STACK_SIZE]; MAX_CPUS]));
