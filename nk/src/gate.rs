//! Entry and exit gates: the only way into the nested kernel.
//!
//! `nk_gate(op, a0, a1, a2)` is the single entry, and its `mov cr0` at
//! `nk_gate_lift` is the only instruction in the image that clears CR0.WP.
//! Everything from there to the re-arm is a fixed path that takes nothing
//! from the outer kernel but the call's arguments, because the outer kernel
//! may jump straight to the lift with any registers, flags and stack:
//!
//! 1. Before the lift, still on the caller's stack with protection on, the
//!    gate saves the caller's RFLAGS there and loads a known RFLAGS (IF, TF,
//!    DF, AC, NT clear).
//! 2. After the lift it trusts nothing: interrupts off again; refuse if WP
//!    is not really clear (a jump past the lift); this CPU's index from its
//!    task register; refuse a second entry on this CPU; leave the caller's
//!    stack for this CPU's NK stack and load the known RFLAGS again before
//!    anything is pushed. A trap that lands in the window never uses the
//!    caller's stack: every IDT vector has its own IST stack, and a trap
//!    taken while WP is clear is handled by the NK alone (`trap.rs`).
//! 3. On the way out it takes a latched NMI off this CPU's flag, goes back
//!    to the caller's stack without touching it, and sets WP (with the CR0
//!    bits the outer kernel may choose), reading CR0 back until WP is set.
//!    Only then does it deliver the latched NMI (`int 2`) and return.
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

/// Per-CPU "inside a gate call" flags, set and cleared by the gate with
/// protection lifted: a second entry on the same CPU is refused.
static NK_ACTIVE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

/// Per-CPU "an NMI arrived inside the NK" flags (`trap.rs` sets them); the
/// gate's exit clears its CPU's flag and delivers the NMI after the re-arm.
pub(crate) static NMI_LATCHED: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

/// Per CPU, the CR0 bits outside protection (`sites::CR0_FREE`) that the
/// gate's re-arm writes: `set_cr0` changes them, the exit applies them.
pub(crate) static CR0_FREE_BITS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Gate crossings, all CPUs.
static CROSSINGS: AtomicU64 = AtomicU64::new(0);

pub fn crossings() -> u64 {
    CROSSINGS.load(Ordering::Relaxed)
}

/// The RFLAGS every NK call runs with: only the reserved bit 1.
const KNOWN_RFLAGS: u64 = 0x2;

#[cfg(not(feature = "native"))]
core::arch::global_asm!(
    r#"
    .section .text.nk_gate, "ax", @progbits
    .global nk_gate
nk_gate:
    pushfq                      /* the caller's RFLAGS, on the caller's stack */
    push {flags}
    popfq
    mov r10, rsp                /* [r10]: RFLAGS, [r10 + 8]: return address */
    cmp rdi, {measure}
    jne 1f
    rdtsc                       /* measure_toggle: a0 := the TSC before the lift */
    shl rdx, 32
    or rax, rdx
    mov rsi, rax
1:  mov rax, cr0
    and rax, ~{wp}
    .global nk_gate_lift
nk_gate_lift:
    mov cr0, rax
    .global nk_gate_after_lift
nk_gate_after_lift:
    /* The fixed path: nothing below trusts a register but the arguments
       (rdi, rsi, rdx, rcx) and r10, which is only ever read through. */
    cli
    mov rax, cr0
    test eax, {wp}
    jnz 6f                      /* not lifted: a jump past the lift */
    cmp rdi, {measure}
    jne 2f
    rdtsc                       /* measure_toggle: a0 := the lift's ticks */
    shl rdx, 32
    or rax, rdx
    sub rax, rsi
    mov rsi, rax
2:  str r11d
    sub r11d, {first_tss}
    shr r11d, 4
    cmp r11d, {max_cpus}
    jae 8f
    lea rax, [rip + {active}]
    cmp byte ptr [rax + r11], 0
    jne 7f
    mov byte ptr [rax + r11], 1
    lea rax, [r11 + 1]
    imul rax, rax, {stack_size}
    lea r9, [rip + {stacks}]
    add rax, r9
    mov rsp, rax                /* this CPU's NK stack: the caller's is left */
    push {flags}
    popfq
    mov r8, qword ptr [r10 + 8] /* the caller's return address, for the write log */
    push r10
    push r11
    push rdi
    sub rsp, 8
    call {body}
    add rsp, 8
    pop rdi
    pop r11
    pop r10
    lea rcx, [rip + {active}]
    mov byte ptr [rcx + r11], 0
    /* Exit: a latched NMI comes off this CPU's flag now, while its flag can
       still be written, and is delivered once protection is back. */
    lea rcx, [rip + {latched}]
    xor r9d, r9d
    xchg r9b, byte ptr [rcx + r11]
    lea rcx, [rip + {free_bits}]
    mov r8, qword ptr [rcx + r11 * 8]
    and r8, {cr0_free}
    mov rcx, cr0
    and rcx, ~{cr0_free}
    or rcx, r8
    mov rsp, r10                /* back on the caller's stack; nothing pushed */
    cmp rdi, {measure}
    je 4f
    /* Re-arm: set WP, read it back, loop until it is set. */
3:  or rcx, {wp}
    .global nk_gate_rearm
nk_gate_rearm:
    mov cr0, rcx
    mov rcx, cr0
    test ecx, {wp}
    jz 3b
    test r9b, r9b
    jz 5f
    int 2                       /* the NMI that arrived inside the NK */
5:  popfq
    ret
    /* measure_toggle's exit: the same re-arm, timed; detail := lift + re-arm. */
4:  mov r8, rdx
    mov rdi, rcx
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov rsi, rax
    mov rcx, rdi
    or rcx, {wp}
    .global nk_site_measure_rearm
nk_site_measure_rearm:
    mov cr0, rcx
    mov rcx, cr0
    test ecx, {wp}
    jz 3b
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, rsi
    lea rdx, [rax + r8]
    xor eax, eax
    test r9b, r9b
    jz 5b
    int 2
    jmp 5b
6:  mov eax, {not_entered}      /* entered past the lift: refuse, on whatever stack this is */
    xor edx, edx
    xor r9d, r9d
    mov rcx, cr0
    jmp 3b
7:  mov eax, {busy}             /* already inside the NK on this CPU */
    xor edx, edx
    xor r9d, r9d
    mov rcx, cr0
    jmp 3b
8:  lea rdi, [rip + nk_msg_gate_cpu]
    mov esi, r11d
    xor edx, edx
    xor ecx, ecx
    jmp nk_fail_stop

    .section .rodata.nk_gate, "a", @progbits
nk_msg_gate_cpu: .asciz "the gate found no NK CPU in the task register"
"#,
    wp = const crate::cpu::cr0::WP,
    flags = const KNOWN_RFLAGS,
    measure = const crate::api::Op::MeasureToggle as u64,
    first_tss = const crate::gdt::FIRST_TSS as u32,
    max_cpus = const MAX_CPUS,
    stack_size = const NK_STACK_SIZE,
    active = sym NK_ACTIVE,
    latched = sym NMI_LATCHED,
    free_bits = sym CR0_FREE_BITS,
    cr0_free = const crate::sites::CR0_FREE,
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

// Sets CR0 with WP and the given free bits, reading it back until WP is
// set: the boot's last protection step. Both backends run with WP set (the
// outer kernel relies on faults for writes to read-only user pages).
core::arch::global_asm!(
    r#"
    .section .text.nk_gate, "ax", @progbits
    .global nk_arm_cr0
nk_arm_cr0:
    and rdi, {cr0_free}
    mov rax, cr0
    and rax, ~{cr0_free}
    or rax, rdi
1:  or rax, {wp}
    .global nk_site_arm_cr0
nk_site_arm_cr0:
    mov cr0, rax
    mov rax, cr0
    test eax, {wp}
    jz 1b
    ret
"#,
    wp = const crate::cpu::cr0::WP,
    cr0_free = const crate::sites::CR0_FREE,
);

#[cfg(feature = "native")]
core::arch::global_asm!(
    r#"
    .section .text.nk_gate, "ax", @progbits
    .global nk_native_write_cr0
nk_native_write_cr0:
    mov cr0, rdi
    ret
"#
);

unsafe extern "C" {
    fn nk_gate(op: u64, a0: u64, a1: u64, a2: u64) -> GateResult;
    fn nk_arm_cr0(free_bits: u64);
    #[cfg(feature = "native")]
    fn nk_native_write_cr0(value: u64);
}

/// Sets CR0.WP, with the CR0 bits outside protection as `free_bits` asks
/// (`sites::CR0_FREE`), and records them for this CPU's gate exits.
///
/// # Safety
/// Boot only: protection goes on for good on this CPU.
pub(crate) unsafe fn arm_cr0(free_bits: u64) {
    CR0_FREE_BITS[crate::percpu::current()].store(free_bits & crate::sites::CR0_FREE, Ordering::Relaxed);
    // SAFETY: only WP and free bits change; PE and PG come from the live value.
    unsafe { nk_arm_cr0(free_bits) }
}

/// # Safety
/// None on `native`: the unprotected baseline writes what it is asked.
#[cfg(feature = "native")]
pub(crate) unsafe fn native_write_cr0(value: u64) {
    // SAFETY: the caller accepts any CR0 (see above).
    unsafe { nk_native_write_cr0(value) }
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
/// Runs on this CPU's NK stack with protection lifted and RFLAGS known.
/// Exported as `nk_gate_body` so the attack catalog can call it directly
/// (`gate-body-direct`): outer code reaching it gains nothing, because its
/// first write to NK data faults while protection is on.
#[unsafe(export_name = "nk_gate_body")]
extern "C" fn gate_body(op: u64, a0: u64, a1: u64, a2: u64, caller: u64) -> GateResult {
    CROSSINGS.fetch_add(1, Ordering::Relaxed);
    crate::api::dispatch(op, a0, a1, a2, caller)
}
