//! The context switch: save the callee-saved registers and flags of one
//! kernel thread on its stack, load another's.
#![allow(unsafe_code)]

core::arch::global_asm!(
    r#"
    .section .text.switch_context, "ax", @progbits
    .global kernel_switch_context
kernel_switch_context:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    pushfq
    mov [rdi], rsp
    mov rsp, rsi
    popfq
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

unsafe extern "C" {
    fn kernel_switch_context(save_rsp: *mut u64, load_rsp: u64);
}

/// Saves the running context's stack pointer into `*save` and resumes the
/// context whose saved stack pointer is `load`.
///
/// # Safety
/// `save` must be valid for a write, and `load` must be a stack pointer saved
/// by this function (or laid out by [`initial_stack`]) whose stack is alive
/// and not in use by any other CPU.
pub unsafe fn switch(save: *mut u64, load: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { kernel_switch_context(save, load) }
}

/// Lays out a new thread's stack so that the first switch to it "returns"
/// into `entry` with interrupts disabled. Returns the stack pointer to load.
pub fn initial_stack(stack: &mut [u64], entry: extern "C" fn() -> !) -> u64 {
    let n = stack.len();
    // From the top: a zero return address for `entry` (it never returns),
    // `entry` for `ret`, six callee-saved registers, then RFLAGS (IF clear).
    stack[n - 1] = 0;
    stack[n - 2] = entry as usize as u64;
    for slot in &mut stack[n - 8..n - 2] {
        *slot = 0;
    }
    stack[n - 9] = 0x2;
    &stack[n - 9] as *const u64 as u64
}
