//! Every privileged write the NK makes after boot, each in one assembly
//! routine, each followed in the same straight line by the check that stops
//! the machine if the state it left is not one the NK allows.
//!
//! The outer kernel may jump to any byte of NK code with any registers,
//! flags and stack. So a privileged write is safe only if what follows it
//! cannot be skipped: here, a read-back of the state just written and a
//! compare against what the NK pins, failing into [`nk_fail_stop`]. The
//! checks sit in `.text.nk_priv`, between `__nk_priv_start` and
//! `__nk_priv_end`; a trap that lands in that range while protection is on
//! (an attacker jumped to a write with interrupts on, or sent an NMI) stops
//! the machine too (`trap.rs`), so no outer handler ever runs between a
//! write and its check. The fail-stop itself lives in the range and uses
//! neither a stack nor a call, so nothing can interrupt it into outer code.
//!
//! Two writes are not checked after the fact, and are handled elsewhere:
//! CR0, whose only WP-clearing write is the gate's lift (`gate.rs`; every
//! other CR0 write sets WP itself and loops until it reads back set), and
//! CR3, whose write changes what the next instruction is: it lives alone on
//! a page that is executable only while this CPU is inside the gate
//! (`nk_cr3_load`, `vmmu.rs`).
//!
//! The `native` backend assembles the same routines without the checks: the
//! unprotected baseline, on which every attack must succeed.

use crate::cpu::{cr0, cr4};
use crate::gdt;
use crate::percpu::MAX_CPUS;
use core::sync::atomic::{AtomicU64, Ordering};

/// CR4 bits every CR4 write must leave set: PAE, and SMEP and SMAP where
/// the CPU has them. Written once at boot, before the first checked write.
static CR4_MUST: AtomicU64 = AtomicU64::new(1 << 5);

/// CR4 bits no write may set: VMXE and SMXE (a hypervisor or SMX
/// environment below the NK would own it).
pub const CR4_NEVER: u64 = (1 << 13) | (1 << 14);

pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_SFMASK: u32 = 0xc000_0084;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;

pub const EFER_SCE: u64 = 1 << 0;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;
/// EFER bits that must stay set, and the only bits that may be set.
const EFER_PINNED: u64 = EFER_LME | EFER_LMA | EFER_NXE;
const EFER_ALLOWED: u64 = EFER_PINNED | EFER_SCE;

/// STAR: kernel CS/SS from `KERNEL_CODE`, user CS/SS for SYSRET from the
/// user data selector (GDT order: user data, then user code).
pub const STAR_VALUE: u64 = (gdt::KERNEL_CODE as u64) << 32 | ((gdt::USER_DATA & !3) as u64).wrapping_sub(8) << 48;
/// SFMASK: IF, TF, DF and AC cleared on `syscall`, so the entry runs with
/// interrupts off and SMAP in force.
pub const SFMASK_VALUE: u64 = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18);

/// CR0 bits outside protection that the outer kernel may choose: MP, EM, TS,
/// NE, AM. Every CR0 write keeps the others (PE, PG, WP) as the NK wants.
pub const CR0_FREE: u64 = cr0::MP | cr0::EM | (1 << 3) | (1 << 5) | (1 << 18);

#[cfg(not(feature = "native"))]
const PROTECT: u32 = 1;
#[cfg(feature = "native")]
const PROTECT: u32 = 0;

core::arch::global_asm!(
    r#"
    .set NK_PROTECT, {protect}

    /* Stops the machine unless CR4 holds every pinned bit and no
       forbidden one. Clobbers rax, rdx. */
    .macro NK_CHECK_CR4
    .if NK_PROTECT
    mov rax, cr4
    mov rdx, qword ptr [rip + {cr4_must}]
    and rdx, rax
    cmp rdx, qword ptr [rip + {cr4_must}]
    jne nk_fail_cr4
    test rax, {cr4_never}
    jnz nk_fail_cr4
    .endif
    .endm

    /* The reasons nk_fail_stop prints. */
    .section .rodata.nk_fail_stop, "a", @progbits
nk_msg_prefix: .asciz "\r\nnk: FAIL-STOP: "
nk_msg_cr4:    .asciz "CR4 lost a pinned bit or gained a forbidden one"
nk_msg_msr:    .asciz "an MSR off the allow-list, or a value its rule refuses"
nk_msg_gdt:    .asciz "a GDT other than the NK's is loaded"
nk_msg_idt:    .asciz "an IDT other than the NK's is loaded"
nk_msg_tr:     .asciz "the task register names no NK TSS"

    .section .text.nk_priv, "ax", @progbits
    .balign 16

    /* nk_write_cr4(value): CR4 := value, checked. */
    .global nk_write_cr4
nk_write_cr4:
    .global nk_site_cr4_write
nk_site_cr4_write:
    mov cr4, rdi
    NK_CHECK_CR4
    ret

    /* nk_flush_tlb_all(): toggling CR4.PGE flushes every translation,
       global ones included; each of the two writes is checked. */
    .global nk_flush_tlb_all
nk_flush_tlb_all:
    mov rcx, cr4
    mov rdi, rcx
    xor rdi, {pge}
    .global nk_site_cr4_flush_off
nk_site_cr4_flush_off:
    mov cr4, rdi
    NK_CHECK_CR4
    .global nk_site_cr4_flush_on
nk_site_cr4_flush_on:
    mov cr4, rcx
    NK_CHECK_CR4
    ret

    /* nk_wrmsr(msr, value): the MSR in ecx := value; then the MSR just
       written must be one the NK allows, holding a value its rule allows. */
    .global nk_wrmsr
nk_wrmsr:
    mov ecx, edi
    mov eax, esi
    mov rdx, rsi
    shr rdx, 32
    .global nk_site_wrmsr
nk_site_wrmsr:
    wrmsr
    .if NK_PROTECT
    rdmsr
    shl rdx, 32
    or rax, rdx
    cmp ecx, {fs_base}
    je 8f
    cmp ecx, {gs_base}
    je 8f
    cmp ecx, {kgs_base}
    je 8f
    cmp ecx, {tsc_deadline}
    je 8f
    cmp ecx, {efer}
    je 2f
    cmp ecx, {star}
    je 3f
    cmp ecx, {lstar}
    je 4f
    cmp ecx, {sfmask}
    je 5f
    jmp nk_fail_msr
2:  mov rdx, rax
    and rdx, {efer_pinned}
    cmp rdx, {efer_pinned}
    jne nk_fail_msr
    test rax, ~{efer_allowed}
    jnz nk_fail_msr
    jmp 8f
3:  movabs rdx, {star_value}
    cmp rax, rdx
    jne nk_fail_msr
    jmp 8f
4:  lea rdx, [rip + __nk_text_end]
    cmp rax, rdx
    jb nk_fail_msr
    lea rdx, [rip + __text_end]
    cmp rax, rdx
    jae nk_fail_msr
    jmp 8f
5:  cmp rax, {sfmask_value}
    jne nk_fail_msr
    .endif
8:  ret

    /* nk_load_gdt(pointer): LGDT, then SGDT must name the NK's table. */
    .global nk_load_gdt
nk_load_gdt:
    .global nk_site_lgdt
nk_site_lgdt:
    lgdt [rdi]
    .if NK_PROTECT
    sub rsp, 16
    sgdt [rsp]
    movzx eax, word ptr [rsp]
    mov rdx, qword ptr [rsp + 2]
    add rsp, 16
    cmp eax, {gdt_limit}
    jne nk_fail_gdt
    lea rax, [rip + {tables}]
    cmp rdx, rax
    jne nk_fail_gdt
    .endif
    ret

    /* nk_load_idt(pointer): LIDT, then SIDT must name the NK's table. */
    .global nk_load_idt
nk_load_idt:
    .global nk_site_lidt
nk_site_lidt:
    lidt [rdi]
    .if NK_PROTECT
    sub rsp, 16
    sidt [rsp]
    movzx eax, word ptr [rsp]
    mov rdx, qword ptr [rsp + 2]
    add rsp, 16
    cmp eax, {idt_limit}
    jne nk_fail_idt
    lea rax, [rip + {idt}]
    cmp rdx, rax
    jne nk_fail_idt
    .endif
    ret

    /* nk_load_tr(selector): LTR, then STR must name one of the NK's TSSs. */
    .global nk_load_tr
nk_load_tr:
    .global nk_site_ltr
nk_site_ltr:
    ltr di
    .if NK_PROTECT
    str eax
    sub eax, {first_tss}
    jb nk_fail_tr
    test eax, 15
    jnz nk_fail_tr
    cmp eax, {tss_span}
    jae nk_fail_tr
    .endif
    ret

nk_fail_cr4:
    lea rdi, [rip + nk_msg_cr4]
    mov rsi, rax
    xor edx, edx
    xor ecx, ecx
    jmp nk_fail_stop
nk_fail_msr:
    lea rdi, [rip + nk_msg_msr]
    mov rdx, rax
    mov esi, ecx
    xor ecx, ecx
    jmp nk_fail_stop
nk_fail_gdt:
    lea rdi, [rip + nk_msg_gdt]
    mov rsi, rdx
    xor edx, edx
    xor ecx, ecx
    jmp nk_fail_stop
nk_fail_idt:
    lea rdi, [rip + nk_msg_idt]
    mov rsi, rdx
    xor edx, edx
    xor ecx, ecx
    jmp nk_fail_stop
nk_fail_tr:
    lea rdi, [rip + nk_msg_tr]
    mov esi, eax
    xor edx, edx
    xor ecx, ecx
    jmp nk_fail_stop

    /* One byte in al to COM1; clobbers ecx, edx, r11d. */
    .macro NK_PUTC
    mov r11d, eax
    mov ecx, 100000
1:  mov dx, 0x3fd
    in al, dx
    test al, 0x20
    jnz 2f
    dec ecx
    jnz 1b
2:  mov dx, 0x3f8
    mov eax, r11d
    out dx, al
    .endm

    /* The NUL-terminated string at rsi to COM1. */
    .macro NK_PUTS
3:  lodsb
    test al, al
    jz 4f
    NK_PUTC
    jmp 3b
4:
    .endm

    /* " 0x" and rbx in hex to COM1. */
    .macro NK_PUTHEX
    mov al, 0x20
    NK_PUTC
    mov al, 0x30
    NK_PUTC
    mov al, 0x78
    NK_PUTC
    mov r14d, 16
5:  rol rbx, 4
    mov eax, ebx
    and eax, 15
    cmp eax, 10
    jb 6f
    add eax, 0x27
6:  add eax, 0x30
    NK_PUTC
    dec r14d
    jnz 5b
    .endm

    /* nk_fail_stop(reason, a, b, c): prints the reason and three words on
       COM1, asks QEMU to exit with failure, and halts this CPU for good.
       No stack and no call, so neither a bad stack pointer nor a trap can
       turn it into a return: a trap that lands here while protection is on
       comes back here (it is inside `.text.nk_priv`). */
    .global nk_fail_stop
nk_fail_stop:
    cli
    cld
    mov r8, rsi
    mov r9, rdx
    mov r10, rcx
    mov r15, rdi
    lea rsi, [rip + nk_msg_prefix]
    NK_PUTS
    mov rsi, r15
    NK_PUTS
    mov rbx, r8
    NK_PUTHEX
    mov rbx, r9
    NK_PUTHEX
    mov rbx, r10
    NK_PUTHEX
    mov al, 0x0d
    NK_PUTC
    mov al, 0x0a
    NK_PUTC
    mov dx, 0xf4
    mov al, 0x11
    out dx, al
7:  cli
    hlt
    jmp 7b

    /* The one CR3 write, alone on its page: the page is mapped
       non-executable except while this CPU is inside the gate
       (`vmmu::with_cr3_page`), so outer code cannot reach it. */
    .section .text.nk_cr3, "ax", @progbits
    .balign 4096
    .global nk_cr3_load
nk_cr3_load:
    mov cr3, rdi
    ret
    .balign 4096, 0xcc
"#,
    protect = const PROTECT,
    cr4_must = sym CR4_MUST,
    cr4_never = const CR4_NEVER,
    pge = const cr4::PGE,
    fs_base = const MSR_FS_BASE,
    gs_base = const MSR_GS_BASE,
    kgs_base = const MSR_KERNEL_GS_BASE,
    tsc_deadline = const MSR_TSC_DEADLINE,
    efer = const MSR_EFER,
    star = const MSR_STAR,
    lstar = const MSR_LSTAR,
    sfmask = const MSR_SFMASK,
    efer_pinned = const EFER_PINNED,
    efer_allowed = const EFER_ALLOWED,
    star_value = const STAR_VALUE,
    sfmask_value = const SFMASK_VALUE,
    gdt_limit = const gdt::GDT_LIMIT,
    tables = sym gdt::TABLES,
    idt_limit = const crate::trap::IDT_LIMIT,
    idt = sym crate::trap::IDT,
    first_tss = const gdt::FIRST_TSS as u32,
    tss_span = const 16 * MAX_CPUS,
);

unsafe extern "C" {
    fn nk_write_cr4(value: u64);
    fn nk_flush_tlb_all();
    fn nk_wrmsr(msr: u32, value: u64);
    fn nk_load_gdt(pointer: *const crate::cpu::TablePointer);
    fn nk_load_idt(pointer: *const crate::cpu::TablePointer);
    fn nk_load_tr(selector: u16);
    pub(crate) fn nk_cr3_load(root: u64);
    pub(crate) fn nk_fail_stop(reason: *const u8, a: u64, b: u64, c: u64) -> !;
}

/// Pins the CR4 bits the checks hold every later write to.
///
/// # Safety
/// Boot only, before the first checked CR4 write, on the bootstrap CPU.
pub(crate) unsafe fn pin_cr4(must: u64) {
    CR4_MUST.store(must | (1 << 5), Ordering::Relaxed);
}

/// Writes CR4; the machine stops if a pinned bit is missing after it.
///
/// # Safety
/// `value` may only set features the CPU has, and must keep the memory the
/// caller runs on mapped (PAE stays set: the check enforces it).
pub(crate) unsafe fn write_cr4(value: u64) {
    // SAFETY: the caller upholds the contract; the routine checks after.
    unsafe { nk_write_cr4(value) }
}

/// Invalidates every translation of this CPU, global ones included.
pub(crate) fn flush_tlb_all() {
    // SAFETY: toggling PGE twice leaves CR4 as it was and changes no
    // mapping; both writes are checked.
    unsafe { nk_flush_tlb_all() }
}

/// Writes an MSR; the machine stops if it is not one the NK allows or
/// holds a value its rule refuses (see the routine).
///
/// # Safety
/// The MSR must exist and `value` must be valid for it.
pub(crate) unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller upholds the contract; the routine checks after.
    unsafe { nk_wrmsr(msr, value) }
}

/// # Safety
/// The table must stay alive and valid for as long as it is loaded.
pub(crate) unsafe fn load_gdt(pointer: &crate::cpu::TablePointer) {
    // SAFETY: the caller upholds the contract; the routine checks after.
    unsafe { nk_load_gdt(pointer) }
}

/// # Safety
/// The table must stay alive and valid for as long as it is loaded.
pub(crate) unsafe fn load_idt(pointer: &crate::cpu::TablePointer) {
    // SAFETY: the caller upholds the contract; the routine checks after.
    unsafe { nk_load_idt(pointer) }
}

/// # Safety
/// `selector` must name an available 64-bit TSS descriptor in the loaded GDT.
pub(crate) unsafe fn load_tr(selector: u16) {
    // SAFETY: the caller upholds the contract; the routine checks after.
    unsafe { nk_load_tr(selector) }
}

/// Stops the machine with a report: `reason` and three words.
pub(crate) fn fail_stop(reason: &'static core::ffi::CStr, a: u64, b: u64, c: u64) -> ! {
    // SAFETY: `reason` is NUL-terminated static text; the routine never
    // returns and touches no memory but that text and the serial port.
    unsafe { nk_fail_stop(reason.as_ptr().cast(), a, b, c) }
}
