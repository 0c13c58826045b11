//! Entry and exit gates: the only way into the nested kernel.
//!
//! `nk_gate(op, a0, a1, a2)` is the single entry. With the `wp` backend it
//! saves RFLAGS, disables interrupts, clears CR0.WP, disables interrupts
//! again (so a jump straight to the lifting instruction still ends with
//! interrupts off), switches to this CPU's NK stack and calls the body. On
//! the way out it sets CR0.WP and reads CR0 back, looping until WP is really
//! set, before it returns to outer code. A jump into the middle gains
//! nothing: the body refuses to run unless protection was lifted by the
//! gate itself, and every path out passes the re-arm loop.
//!
//! The `native` backend compiles the same entry as a plain call.

use crate::percpu::{MAX_CPUS, NK_STACK_SIZE, NK_STACKS};
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// What a gate call returns, in RAX:RDX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct GateResult {
    /// 0 on success, else an error code (see `api`).
    pub status: u64,
    /// Operation-specific detail (an error's frame, a value read).
    pub detail: u64,
}

impl GateResult {
    pub const OK: Self = Self { status: 0, detail: 0 };
}

/// Status codes the gate itself produces (operation errors start at 0x100).
pub const STATUS_BUSY: u64 = 1;
pub const STATUS_NOT_ENTERED: u64 = 2;
pub const STATUS_BAD_OP: u64 = 3;

/// Per-CPU "inside the NK" flags, set and cleared by the gate assembly, so
/// a gate call from an NMI that interrupted the NK cannot reuse its stack.
static NK_ACTIVE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

/// Gate crossings, all CPUs.
static CROSSINGS: AtomicU64 = AtomicU64::new(0);

pub fn crossings() -> u64 {
    CROSSINGS.load(Ordering::Relaxed)
}

#[cfg(not(feature = "native"))]
core::arch::global_asm!(
    r#"
    .section .text.nk_gate, "ax", @progbits
    .global nk_gate
nk_gate:
    pushfq
    cli
    mov rax, cr0
    and rax, ~{wp}
    .global nk_gate_lift
nk_gate_lift:
    mov cr0, rax
    .global nk_gate_after_lift
nk_gate_after_lift:
    cli
    /* Refuse before touching NK data if protection is not really off: a
       jump past the lifting instruction must end here, not in a fault. */
    mov rax, cr0
    test eax, {wp}
    jnz 6f
    /* This CPU's index from its task register; its NK stack's top. */
    str r11d
    sub r11d, {first_tss}
    shr r11d, 4
    cmp r11d, {max_cpus}
    jae 8f
    lea rax, [rip + {active}]
    cmp byte ptr [rax + r11], 0
    jne 7f
    mov byte ptr [rax + r11], 1
    push r11
    inc r11
    imul r11, r11, {stack_size}
    lea rax, [rip + {stacks}]
    add r11, rax
    pop rax
    xchg rsp, r11
    mov r8, [r11 + 8]           /* the caller's return address */
    push r11                    /* outer stack pointer */
    push rax                    /* cpu index */
    call {body}
    pop r11
    lea rcx, [rip + {active}]
    mov byte ptr [rcx + r11], 0
    pop r11
    mov rsp, r11
    jmp 9f
6:  mov eax, {not_entered}      /* entered past the lift: refuse */
    xor edx, edx
    jmp 9f
7:  mov eax, {busy}             /* already inside the NK on this CPU */
    xor edx, edx
    jmp 9f
8:  ud2
    /* Re-arm: set WP, read it back, loop until it is set. */
9:  mov rcx, cr0
    or rcx, {wp}
    .global nk_gate_rearm
nk_gate_rearm:
    mov cr0, rcx
    mov rcx, cr0
    test rcx, {wp}
    jz 9b
    popfq
    ret
"#,
    wp = const crate::cpu::cr0::WP,
    first_tss = const crate::gdt::FIRST_TSS as u32,
    max_cpus = const MAX_CPUS,
    stack_size = const NK_STACK_SIZE,
    active = sym NK_ACTIVE,
    stacks = sym NK_STACKS,
    busy = const STATUS_BUSY,
    not_entered = const STATUS_NOT_ENTERED,
    body = sym gate_body,
);

#[cfg(feature = "native")]
core::arch::global_asm!(
    r#"
    .section .text.nk_gate, "ax", @progbits
    .global nk_gate
nk_gate:
    mov r8, [rsp]               /* the caller's return address */
    jmp {body}
"#,
    body = sym gate_body,
);

unsafe extern "C" {
    fn nk_gate(op: u64, a0: u64, a1: u64, a2: u64) -> GateResult;
}

/// Calls the NK: the only way outer code gets NK work done. Inlined, so
/// the return address the NK sees is in the calling function.
#[inline(always)]
pub fn call(op: u64, a0: u64, a1: u64, a2: u64) -> GateResult {
    // SAFETY: `nk_gate` follows the C ABI, preserves callee-saved registers
    // and RFLAGS, and validates every argument it is given.
    unsafe { nk_gate(op, a0, a1, a2) }
}

/// `caller` is the return address the gate found on the outer stack.
extern "C" fn gate_body(op: u64, a0: u64, a1: u64, a2: u64, caller: u64) -> GateResult {
    // Protection must have been lifted by the gate, not skipped by a jump
    // into its middle: otherwise the body's writes would fault half-done.
    if cfg!(not(feature = "native")) && crate::cpu::read_cr0() & crate::cpu::cr0::WP != 0 {
        return GateResult { status: STATUS_NOT_ENTERED, detail: 0 };
    }
    CROSSINGS.fetch_add(1, Ordering::Relaxed);
    crate::api::dispatch(op, a0, a1, a2, caller)
}

/// Sets CR0.WP and checks it stuck (the trap path's re-assert).
pub(crate) fn rearm() {
    use crate::cpu::{cr0, read_cr0, write_cr0};
    loop {
        // SAFETY: setting WP only adds protection; PG and PE come from the
        // live value.
        unsafe { write_cr0(read_cr0() | cr0::WP) };
        if read_cr0() & cr0::WP != 0 {
            break;
        }
    }
}

/// Clears CR0.WP again when a trap that interrupted the NK returns to it.
pub(crate) fn lift() {
    use crate::cpu::{cr0, read_cr0, write_cr0};
    // SAFETY: only called on the way back into NK code that had protection
    // lifted by the gate, with interrupts off until the IRETQ.
    unsafe { write_cr0(read_cr0() & !cr0::WP) };
}

/// Runs `n` lift/re-arm pairs (called inside the gate, protection lifted)
/// and returns the TSC ticks they took.
pub(crate) fn measure_toggle(n: u64) -> u64 {
    let start = crate::cpu::rdtsc();
    if cfg!(not(feature = "native")) {
        for _ in 0..n {
            rearm();
            lift();
        }
    }
    crate::cpu::rdtsc() - start
}
