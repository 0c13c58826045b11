//! The first instructions: the PVH entry point (32-bit, paging off), the
//! switch to long mode, and the NK's boot sequence up to the hand-off.
//!
//! QEMU's `-kernel` finds `nk_pvh_entry` through the Xen PVH ELF note and
//! jumps to it in 32-bit protected mode with `ebx` holding the physical
//! address of `hvm_start_info`. The trampoline and its page tables live in
//! the low `.boot` sections, linked and loaded at their physical addresses;
//! everything else runs in the higher half.

use crate::boot_info::{self, BootInfo, BootStack};
use crate::{console, cpu, gdt, paging, start_info, trap};

core::arch::global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .balign 4
    .long 4                 /* name size */
    .long 4                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long nk_pvh_entry
    .balign 4

    .section .boot.text, "ax", @progbits
    .code32
    .global nk_pvh_entry
nk_pvh_entry:
    cli
    cld
    movl %ebx, %edi             /* hvm_start_info; cpuid clobbers ebx */

    /* Long mode (bit 29) and NX (bit 20) are required. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb 9f
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc 9f
    btl $20, %edx
    jnc 9f

    movl %cr4, %eax
    orl $(1 << 5), %eax         /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx      /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax   /* LME, NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 0)), %eax   /* PG, PE; WP is set at the hand-off */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $1f

9:  /* No long mode or no NX: say so on COM1 and stop. */
    movl $boot_no_long_mode, %esi
    movw $0x3f8, %dx
2:  lodsb
    testb %al, %al
    jz 3f
    outb %al, %dx
    jmp 2b
3:  hlt
    jmp 3b

    .code64
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $nk_boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl %edi, %edi             /* zero-extend the start-info address */
    movabsq $nk_start64, %rax
    call *%rax
    ud2

    .section .boot.data, "aw", @progbits
boot_no_long_mode:
    .asciz "nk: this CPU lacks long mode or NX; cannot boot\r\n"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_ptr:
    .word 23
    .long boot_gdt

    /* Early page tables: the first GiB, identity-mapped (slot 0), at the
       direct map (slot 256) and at the kernel image base (slot 511, entry
       510), with 2 MiB pages. The NK replaces them before the hand-off. */
    .balign 4096
boot_pml4:
    .quad boot_pdpt + 0x3
    .fill 255, 8, 0
    .quad boot_pdpt + 0x3
    .fill 254, 8, 0
    .quad boot_pdpt + 0x3
boot_pdpt:
    .quad boot_pd + 0x3
    .fill 509, 8, 0
    .quad boot_pd + 0x3
    .quad 0
boot_pd:
    .set boot_i, 0
    .rept 512
    .quad (boot_i << 21) + 0x83
    .set boot_i, boot_i + 1
    .endr

    .section .bss.nk_boot_stack, "aw", @nobits
    .balign 16
nk_boot_stack:
    .skip 16384
nk_boot_stack_top:
"#,
    options(att_syntax)
);

// Both sides are Rust; only a pointer crosses, so the C ABI is only a
// calling convention here.
#[allow(improper_ctypes)]
unsafe extern "C" {
    /// Defined by the outer kernel through [`crate::entry_point!`].
    fn nk_outer_entry(info: &'static BootInfo) -> !;
    static NK_OUTER_BOOT_STACK: BootStack;
}

/// Turns on the protection features the CPU offers: SMEP, SMAP, global
/// pages and SSE state in CR4 (pinned for every later CR4 write), then
/// CR0.WP, last: from here on WP is clear only inside the gate.
fn enable_protection(f: &crate::CpuFeatures) {
    use crate::cpu::{cr0, cr4};
    let mut pinned = 0;
    if f.smep {
        pinned |= cr4::SMEP;
    }
    if f.smap {
        pinned |= cr4::SMAP;
    }
    let value = cpu::read_cr4() | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT | pinned;
    // SAFETY: boot, bootstrap CPU, before any checked CR4 write; each bit
    // set is backed by CPUID (PGE, FXSR are baseline on x86-64) and PAE is
    // read back from the live value.
    unsafe {
        crate::sites::pin_cr4(pinned);
        crate::sites::write_cr4(value);
    }
    // SSE for user programs: MP set, EM clear; NE as the firmware left it.
    let free = (cpu::read_cr0() & crate::sites::CR0_FREE & !cr0::EM) | cr0::MP;
    // SAFETY: boot; WP goes on for good here.
    unsafe { crate::gate::arm_cr0(free) };
}

/// The NK's boot sequence, called by the trampoline in 64-bit mode on the
/// NK boot stack, with the early page tables live and interrupts off.
#[unsafe(no_mangle)]
extern "C" fn nk_start64(start_info_phys: u64) -> ! {
    let boot_tsc = cpu::rdtsc();
    let features = cpu::features();
    let info = match start_info::read(start_info_phys) {
        Ok(parsed) => parsed,
        Err(why) => console::fatal(why),
    };
    let nk_reserved = match paging::reserve(&info) {
        Some(range) => range,
        None => console::fatal("nk: no room below 1 GiB for the frame table and kernel page tables"),
    };
    let info = boot_info::publish(BootInfo { boot_tsc, cpu: features, nk_reserved, ..info });

    // The new tables map NK data read-only; until the hand-off CR0.WP is
    // clear, so the NK can still fill its own tables.
    paging::build_kernel_tables(info);
    gdt::init_cpu(0);
    trap::init_bsp();
    enable_protection(&features);

    // SAFETY: the stack symbol is defined by `entry_point!` in the outer
    // kernel; only its address is taken here.
    let stack_top = unsafe { NK_OUTER_BOOT_STACK.top() };
    // SAFETY: the outer entry never returns; it gets a fresh stack of its
    // own, 16-byte aligned, and `info` in `rdi` as the C ABI says.
    unsafe {
        core::arch::asm!(
            "mov rsp, {stack}",
            "xor ebp, ebp",
            "call {entry}",
            "ud2",
            stack = in(reg) stack_top,
            entry = sym nk_outer_entry,
            in("rdi") info,
            options(noreturn),
        )
    }
}
