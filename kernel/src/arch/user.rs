//! The user/kernel boundary: the `syscall` entry stub, the return with
//! `sysretq`, and the first entry into user mode with `iretq`.
//!
//! One CPU runs the outer kernel today, so the stub keeps the user stack
//! pointer and the kernel stack to switch to in two statics (reached
//! RIP-relative, needing no free register). A second CPU will need them per
//! CPU, behind `swapgs`, with the interrupt entry swapping too.

use core::sync::atomic::{AtomicU64, Ordering};

/// The registers a system call saw, in the order the stub pushes them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// The call number on entry, the result on return.
    pub rax: u64,
    /// User RIP after the `syscall` instruction (saved by the CPU in RCX).
    pub rip: u64,
    /// User RFLAGS (saved by the CPU in R11).
    pub rflags: u64,
    pub rsp: u64,
}

#[unsafe(no_mangle)]
static SYSCALL_USER_RSP: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
static SYSCALL_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);

/// The kernel stack the next `syscall` on this CPU runs on: the running
/// user thread's. The scheduler sets it on every switch to a user thread.
pub fn set_syscall_stack(top: u64) {
    SYSCALL_KERNEL_RSP.store(top, Ordering::Relaxed);
}

unsafe extern "C" {
    fn user_syscall_entry();
}

/// The address the NK points `syscall` at.
pub fn syscall_entry() -> u64 {
    user_syscall_entry as *const () as u64
}

core::arch::global_asm!(
    r#"
    .section .text.user_syscall_entry, "ax", @progbits
    .global user_syscall_entry
user_syscall_entry:
    mov [rip + SYSCALL_USER_RSP], rsp
    mov rsp, [rip + SYSCALL_KERNEL_RSP]
    push qword ptr [rip + SYSCALL_USER_RSP]
    push r11
    push rcx
    push rax
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    call {dispatch}
    cli
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    pop rax
    pop rcx
    pop r11
    pop rsp
    sysretq
"#,
    dispatch = sym syscall_dispatch,
);

extern "C" fn syscall_dispatch(frame: &mut SyscallFrame) {
    let nr = frame.rax;
    crate::proc::syscall::dispatch(frame);
    crate::proc::signal::deliver_syscall(frame, nr);
    // `sysretq` to a non-canonical RIP would fault in ring 0 on the user's
    // stack; and the user gets back only flags it may hold, IF set.
    if !nk_model::layout::is_canonical(frame.rip) || frame.rip >= nk_model::layout::USER_END {
        crate::proc::kill_current("return address outside user space");
    }
    frame.rflags = (frame.rflags & USER_FLAGS) | IF;
}

const IF: u64 = 1 << 9;
/// CF, PF, AF, ZF, SF, TF, DF, OF, RF, AC, ID: what user code may set.
pub const USER_FLAGS: u64 = 0x0025_4dd5;

/// Returns to user mode with the registers in `frame`, as the end of a
/// system call does: how a forked child first runs.
pub fn resume_user(frame: &SyscallFrame) -> ! {
    let mut f = *frame;
    if !nk_model::layout::is_canonical(f.rip) || f.rip >= nk_model::layout::USER_END {
        crate::proc::kill_current("return address outside user space");
    }
    f.rflags = (f.rflags & USER_FLAGS) | IF;
    // SAFETY: pops a `SyscallFrame` (laid out as the entry stub pushes it)
    // into the registers and returns to ring 3 as the stub does; interrupts
    // are off from before RSP leaves the kernel stack until `sysretq`.
    unsafe {
        core::arch::asm!(
            "cli",
            "mov rsp, {frame}",
            "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
            "pop r9", "pop r8", "pop r10", "pop rdx", "pop rsi", "pop rdi",
            "pop rax", "pop rcx", "pop r11", "pop rsp",
            "sysretq",
            frame = in(reg) &raw const f,
            options(noreturn),
        )
    }
}

/// Returns to user mode with every register in `regs` (RCX and R11
/// included, which `sysretq` would clobber): the end of `rt_sigreturn`.
/// Interrupts must be off.
pub fn return_to_user(regs: &crate::proc::signal::UserRegs) -> ! {
    let mut r = *regs;
    if !nk_model::layout::is_canonical(r.rip) || r.rip >= nk_model::layout::USER_END {
        crate::proc::kill_current("return address outside user space");
    }
    r.rflags = (r.rflags & USER_FLAGS) | IF;
    let (cs, ss) = (u64::from(nk::USER_CODE), u64::from(nk::USER_DATA));
    // SAFETY: builds an interrupt-return frame to ring 3 with the GDT's user
    // selectors and a user RIP (checked above) and RFLAGS (masked), then
    // loads every general register from `r` (`UserRegs` field order, RAX,
    // the pointer, last) and returns; interrupts are off until `iretq`.
    unsafe {
        core::arch::asm!(
            "push {ss}",
            "push qword ptr [rax + 15*8]",
            "push qword ptr [rax + 17*8]",
            "push {cs}",
            "push qword ptr [rax + 16*8]",
            "mov r8, [rax + 0*8]", "mov r9, [rax + 1*8]", "mov r10, [rax + 2*8]", "mov r11, [rax + 3*8]",
            "mov r12, [rax + 4*8]", "mov r13, [rax + 5*8]", "mov r14, [rax + 6*8]", "mov r15, [rax + 7*8]",
            "mov rdi, [rax + 8*8]", "mov rsi, [rax + 9*8]", "mov rbp, [rax + 10*8]", "mov rbx, [rax + 11*8]",
            "mov rdx, [rax + 12*8]", "mov rcx, [rax + 14*8]", "mov rax, [rax + 13*8]",
            "iretq",
            ss = in(reg) ss,
            cs = in(reg) cs,
            in("rax") &raw const r,
            options(noreturn),
        )
    }
}

/// Enters user mode at `rip` with stack `rsp`, interrupts on. The caller
/// has loaded the address space and set this thread's kernel stacks.
pub fn enter_user(rip: u64, rsp: u64) -> ! {
    let (cs, ss) = (u64::from(nk::USER_CODE), u64::from(nk::USER_DATA));
    // SAFETY: builds an interrupt-return frame to ring 3 with the GDT's user
    // selectors; the address space maps `rip` and `rsp` for user mode (the
    // caller's contract), and general registers are cleared so no kernel
    // value leaks.
    unsafe {
        core::arch::asm!(
            "push {ss}",
            "push {rsp}",
            "push {flags}",
            "push {cs}",
            "push {rip}",
            "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx",
            "xor esi, esi", "xor edi, edi", "xor ebp, ebp",
            "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
            "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
            "iretq",
            ss = in(reg) ss,
            rsp = in(reg) rsp,
            flags = in(reg) IF | 2,
            cs = in(reg) cs,
            rip = in(reg) rip,
            options(noreturn),
        )
    }
}
