//! Privileged instructions and CPU feature detection. Every write to a
//! control register or MSR in the image is in this file (or in the boot
//! trampoline), which is what lets the scanner hold outer code to zero.

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

/// # Safety
/// `value` must be a valid CR0 for long mode (PG and PE set) and must keep
/// the memory the caller is running on accessible.
pub unsafe fn write_cr0(value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { asm!("mov cr0, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// # Safety
/// `root` must be the physical address of a PML4 that maps the running code,
/// its stack and everything the caller will touch.
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// Invalidates every translation of this CPU, global ones included:
/// toggling CR4.PGE flushes what a CR3 reload keeps.
pub fn flush_tlb_all() {
    let cr4 = read_cr4();
    if cr4 & cr4::PGE == 0 {
        // SAFETY: rewriting CR3 with its own value changes no mapping.
        unsafe { asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags)) };
        return;
    }
    // SAFETY: only PGE changes, and it is restored at once; neither write
    // changes a mapping.
    unsafe {
        write_cr4(cr4 & !cr4::PGE);
        write_cr4(cr4);
    }
}

/// # Safety
/// `value` must only set features the CPU has and must keep PAE set.
pub unsafe fn write_cr4(value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe { asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Turns on the protection features the CPU offers: write protection in ring
/// 0, SMEP, SMAP, global pages, and SSE state for later user programs.
pub fn enable_protection(f: &CpuFeatures) {
    let cr0 = (read_cr0() | cr0::WP | cr0::MP) & !cr0::EM;
    // SAFETY: PG and PE stay set (read back from the live value); WP, MP and
    // clearing EM change no mapping.
    unsafe { write_cr0(cr0) };
    let mut cr4 = read_cr4() | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    if f.smep {
        cr4 |= cr4::SMEP;
    }
    if f.smap {
        cr4 |= cr4::SMAP;
    }
    // SAFETY: each bit set is backed by CPUID (PGE, FXSR are baseline on
    // x86-64); PAE stays set because it is read back from the live value.
    unsafe { write_cr4(cr4) };
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

/// # Safety
/// The MSR must exist and `value` must be valid for it and keep the
/// machine's protection intact.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller upholds the contract above.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// Descriptor-table pointer operand of LGDT/LIDT.
#[repr(C, packed)]
pub struct TablePointer {
    pub limit: u16,
    pub base: u64,
}

/// # Safety
/// The table must stay alive and valid for as long as it is loaded.
pub unsafe fn lgdt(ptr: &TablePointer) {
    // SAFETY: the caller upholds the contract above.
    unsafe { asm!("lgdt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

/// # Safety
/// The table must stay alive and valid for as long as it is loaded.
pub unsafe fn lidt(ptr: &TablePointer) {
    // SAFETY: the caller upholds the contract above.
    unsafe { asm!("lidt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

/// # Safety
/// `selector` must name an available 64-bit TSS descriptor in the loaded GDT.
pub unsafe fn ltr(selector: u16) {
    // SAFETY: the caller upholds the contract above.
    unsafe { asm!("ltr {0:x}", in(reg) selector, options(nostack, preserves_flags)) };
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
