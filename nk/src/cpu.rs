//! Reads of CPU state and CPU feature detection. The writes are in
//! `sites.rs` (each with its check) and `gate.rs` (CR0), and in the boot
//! trampoline, which is not mapped after boot.

use crate::boot_info::CpuFeatures;
use core::arch::asm;

pub mod cr0 {
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const WP: u64 = 1 << 16;
}

pub mod cr4 {
    pub const PGE: u64 = 1 << 7;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC reads the time-stamp counter and has no other effect.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

pub struct Cpuid {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

pub fn cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    Cpuid { eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx }
}

pub fn features() -> CpuFeatures {
    let max = cpuid(0, 0).eax;
    let max_ext = cpuid(0x8000_0000, 0).eax;
    let l7 = if max >= 7 { cpuid(7, 0) } else { Cpuid { eax: 0, ebx: 0, ecx: 0, edx: 0 } };
    let e1 = if max_ext >= 0x8000_0001 { cpuid(0x8000_0001, 0).edx } else { 0 };
    let e7 = if max_ext >= 0x8000_0007 { cpuid(0x8000_0007, 0).edx } else { 0 };
    CpuFeatures {
        smep: l7.ebx & (1 << 7) != 0,
        smap: l7.ebx & (1 << 20) != 0,
        pku: l7.ecx & (1 << 3) != 0,
        pks: l7.ecx & (1 << 31) != 0,
        huge_1g: e1 & (1 << 26) != 0,
        invariant_tsc: e7 & (1 << 8) != 0,
    }
}

pub fn read_rflags() -> u64 {
    let v;
    // SAFETY: PUSHFQ/POP reads RFLAGS through the stack and changes nothing.
    unsafe { asm!("pushfq", "pop {}", out(reg) v, options(nomem, preserves_flags)) };
    v
}

pub fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Runs `f` with interrupts off on this CPU, restoring the flag after.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let flags: u64;
    // SAFETY: reads RFLAGS and clears IF; touches no memory but the stack.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
    let r = f();
    if flags & (1 << 9) != 0 {
        // SAFETY: interrupts were on when we were called.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
    r
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an MSR has no side effects; callers pass MSRs that
    // exist on every x86-64 CPU (EFER).
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Descriptor-table pointer operand of LGDT/LIDT.
#[repr(C, packed)]
pub struct TablePointer {
    pub limit: u16,
    pub base: u64,
}

/// Reloads CS and the data segment registers after a new GDT is loaded.
///
/// # Safety
/// `code` and `data` must be valid 64-bit kernel code and data selectors.
pub unsafe fn reload_segments(code: u16, data: u16) {
    // SAFETY: a far return to the next instruction with the new CS; the data
    // selectors are valid per the caller's contract.
    unsafe {
        asm!(
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            code = in(reg) u64::from(code),
            data = in(reg) data,
            tmp = out(reg) _,
            options(preserves_flags),
        )
    };
}
