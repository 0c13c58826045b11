//! Code reuse of the NK's privileged instructions (I3 to I9): the attacker
//! jumps straight to each privileged-instruction site in NK text, with the
//! registers it chooses and a stack of its own return addresses, as a
//! compromised outer kernel can. The NK's answer differs by site:
//!
//! - CR0: the only WP-clearing write is the gate's lift, followed by a
//!   fixed path that re-arms WP before it returns (`site-cr0`);
//! - CR3: its one `mov cr3` sits on a page that is non-executable outside
//!   the gate, so the jump takes an instruction-fetch fault (`site-cr3`);
//! - CR4, WRMSR, LGDT, LIDT, LTR: each write is followed by a read-back and
//!   a check that stops the machine if the state is not one the NK allows
//!   (these attacks end the machine on the protected kernel: they run in
//!   their own boot);
//! - any other protected opcode in NK text would be a gadget with no check:
//!   there must be none (`accidental-encoding`).
//!
//! On `native` the same jumps run the bare instructions (the checks are
//! assembled out) and do what the attacker asked; each attack then puts the
//! state back through the same site.
#![allow(unsafe_code)] // these attacks jump into NK code on purpose

use super::NATIVE;
use super::Outcome::{self, Blocked, NotRun, Succeeded};
use crate::mm::frames;
use alloc::format;
use alloc::vec::Vec;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr3, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

const WP: u64 = 1 << 16;
const MSR_EFER: u32 = 0xc000_0080;
const MSR_LSTAR: u32 = 0xc000_0082;

unsafe extern "C" {
    // Both backends.
    static nk_cr3_load: u8;
    static nk_site_cr4_write: u8;
    static nk_site_cr4_flush_off: u8;
    static nk_site_cr4_flush_on: u8;
    static nk_site_wrmsr: u8;
    static nk_site_lgdt: u8;
    static nk_site_lidt: u8;
    static nk_site_ltr: u8;
    static nk_site_arm_cr0: u8;
    // The protected kernel only.
    static nk_gate_lift: u8;
    static nk_gate_rearm: u8;
    static nk_site_measure_rearm: u8;
    // `native` only.
    static nk_native_write_cr0: u8;
}

/// The registers the attacker loads before the jump.
#[derive(Clone, Copy, Default)]
struct Regs {
    rdi: u64,
    rax: u64,
    rcx: u64,
    rdx: u64,
    /// The site's path ends in the gate's `popf; ret` without first
    /// loading RSP from r10 (the timed re-arm does): start with RSP at the
    /// RFLAGS frame, or `popf` takes a return address as the flags (TF, DF,
    /// AC, whatever the address's low bits say, which moves with the link).
    flags_frame: bool,
}

/// Jumps to `site` with `regs` and a stack of return addresses that all
/// lead back here, whichever `ret` the site's path takes; r10 points at a
/// copy of them preceded by RFLAGS 0x2, the frame the gate's exit pops.
/// Returns RAX and RDX as the site left them.
fn jump_to_site(site: u64, regs: Regs) -> (u64, u64) {
    let (rax, rdx): (u64, u64);
    // SAFETY: deliberately enters NK code in the middle. Every `ret` it can
    // reach pops one of the return addresses pushed here, and r12
    // (callee-saved, so the NK code keeps it) holds our stack.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "and rsp, -16",
            "lea r11, [rip + 2f]",
            "push r11",
            "push r11",
            "push r11",
            "push r11",
            "push 2",
            "mov r10, rsp",             // [r10]: RFLAGS, [r10 + 8]: a return address
            "add rsp, rsi",             // [rsp]: a return address, or the RFLAGS frame
            "xor r9d, r9d",             // no NMI latched for the gate's exit
            "jmp r8",
            "2:",
            "mov rsp, r12",
            in("r8") site,
            inout("rsi") if regs.flags_frame { 0u64 } else { 8 } => _,
            inout("rdi") regs.rdi => _,
            inout("rax") regs.rax => rax,
            inout("rcx") regs.rcx => _,
            inout("rdx") regs.rdx => rdx,
            out("r12") _,
            clobber_abi("C"),
        );
    }
    (rax, rdx)
}

/// Native: jump to its unchecked CR0 write with WP clear, then restore.
fn native_clear_wp(cr0: u64) -> Outcome {
    let site = &raw const nk_native_write_cr0 as u64;
    jump_to_site(site, Regs { rdi: cr0 & !WP, ..Regs::default() });
    let off = !Cr0::read().contains(Cr0Flags::WRITE_PROTECT);
    jump_to_site(site, Regs { rdi: cr0, ..Regs::default() });
    match off {
        true => Succeeded("nk_native_write_cr0 cleared CR0.WP for the attacker (then set it back)".into()),
        false => Blocked("the jump to nk_native_write_cr0 left WP set".into()),
    }
}

/// Jump to the CR0 write that clears WP.
pub fn cr0() -> Outcome {
    let cr0 = Cr0::read_raw();
    crate::arch::without_interrupts(|| {
        if NATIVE {
            native_clear_wp(cr0)
        } else {
            let site = &raw const nk_gate_lift as u64;
            let (status, _) = jump_to_site(site, Regs { rdi: 0, rax: cr0 & !WP, ..Regs::default() });
            if Cr0::read().contains(Cr0Flags::WRITE_PROTECT) {
                Blocked(format!(
                    "the lift's fixed path ran the call on the NK stack (status {status:#x}) and re-armed WP \
                     before returning to the attacker"
                ))
            } else {
                Succeeded("the jump to the lift returned with CR0.WP clear".into())
            }
        }
    })
}

/// Jump to each CR0 write that sets WP (the gate's timed re-arm, the boot's
/// arm) with WP clear in the register the write takes: the check after
/// each loops back to the set. (`gate-jump-to-rearm` covers the gate's
/// plain re-arm.)
pub fn cr0_rearms() -> Outcome {
    let cr0 = Cr0::read_raw();
    crate::arch::without_interrupts(|| {
        if NATIVE {
            // Native's CR0 write sets nothing itself.
            return native_clear_wp(cr0);
        }
        let mut left_clear = Vec::new();
        for (name, site, flags_frame) in [
            ("nk_site_measure_rearm", &raw const nk_site_measure_rearm, true),
            ("nk_site_arm_cr0", &raw const nk_site_arm_cr0, false),
        ] {
            let regs = Regs { rax: cr0 & !WP, rcx: cr0 & !WP, flags_frame, ..Regs::default() };
            jump_to_site(site as u64, regs);
            if !Cr0::read().contains(Cr0Flags::WRITE_PROTECT) {
                left_clear.push(name);
            }
        }
        match left_clear.is_empty() {
            true => Blocked(
                "jumps to nk_site_measure_rearm and nk_site_arm_cr0 with WP clear in the register both \
                 returned with WP set (each loops back to its `or r, WP`)"
                    .into(),
            ),
            false => Succeeded(format!("returned with CR0.WP clear from {}", left_clear.join(", "))),
        }
    })
}

/// Jump to the first CR4 write of the TLB flush with SMEP cleared in both
/// registers the flush writes.
pub fn cr4_flush() -> Outcome {
    let cr4 = Cr4::read_raw();
    let smep = Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION.bits();
    if cr4 & smep == 0 {
        return NotRun("SMEP is not on (CPU lacks it)".into());
    }
    let off = crate::arch::without_interrupts(|| {
        jump_to_site(
            &raw const nk_site_cr4_flush_off as u64,
            Regs { rdi: cr4 & !smep, rcx: cr4 & !smep, ..Regs::default() },
        );
        let off = Cr4::read_raw() & smep == 0;
        jump_to_site(&raw const nk_site_cr4_write as u64, Regs { rdi: cr4, ..Regs::default() });
        off
    });
    match off {
        true => Succeeded("the jump into the TLB flush cleared CR4.SMEP (then set it back)".into()),
        false => Blocked("CR4.SMEP still set after the jump".into()),
    }
}

/// Jump to `mov cr3` with a root the attacker built: a copy of the live
/// root in a frame the NK never saw.
pub fn cr3() -> Outcome {
    let Some(copy) = frames::alloc() else { return NotRun("out of frames".into()) };
    let (live, flags) = Cr3::read_raw();
    let live = live.start_address().as_u64() | u64::from(flags);
    copy.write_at(0, frames::phys_slice(live & !0xfff, 4096));
    let site = &raw const nk_cr3_load as u64;
    // Protected kernel: the fetch at `nk_cr3_load` faults and this thread
    // dies here (the run reports it); the frame is leaked.
    let loaded = crate::arch::without_interrupts(|| {
        jump_to_site(site, Regs { rdi: copy.addr(), ..Regs::default() });
        let now = Cr3::read_raw().0.start_address().as_u64();
        jump_to_site(site, Regs { rdi: live, ..Regs::default() });
        now
    });
    let _ = frames::free(copy);
    if loaded == copy.addr() {
        Succeeded(format!("nk_cr3_load loaded CR3 with an undeclared root ({:#x}), then the old one", copy.addr()))
    } else {
        Blocked(format!("CR3 held {loaded:#x}, not the attacker's root"))
    }
}

/// Jump to `mov cr4` with SMEP cleared.
pub fn cr4() -> Outcome {
    let cr4 = Cr4::read_raw();
    let smep = Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION.bits();
    if cr4 & smep == 0 {
        return NotRun("SMEP is not on (CPU lacks it)".into());
    }
    let site = &raw const nk_site_cr4_write as u64;
    let off = crate::arch::without_interrupts(|| {
        jump_to_site(site, Regs { rdi: cr4 & !smep, ..Regs::default() });
        let off = Cr4::read_raw() & smep == 0;
        jump_to_site(site, Regs { rdi: cr4, ..Regs::default() });
        off
    });
    match off {
        true => Succeeded("the jump to nk_site_cr4_write cleared CR4.SMEP (then set it back)".into()),
        false => Blocked("CR4.SMEP still set after the jump".into()),
    }
}

/// WRMSR at `nk_site_wrmsr`: ECX = the MSR, EDX:EAX = the value.
fn wrmsr_site(msr: u32, value: u64) {
    let site = &raw const nk_site_wrmsr as u64;
    jump_to_site(site, Regs { rcx: u64::from(msr), rax: value & 0xffff_ffff, rdx: value >> 32, ..Regs::default() });
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: reading an MSR the CPU has changes nothing.
    unsafe { Msr::new(msr).read() }
}

/// Jump to WRMSR with LSTAR := a CR0 write in NK text: every `syscall`
/// would then enter the kernel at the attacker's gadget.
pub fn wrmsr_lstar() -> Outcome {
    let gadget = if NATIVE { &raw const nk_native_write_cr0 as u64 } else { &raw const nk_gate_lift as u64 };
    let old = rdmsr(MSR_LSTAR);
    let now = crate::arch::without_interrupts(|| {
        wrmsr_site(MSR_LSTAR, gadget);
        let now = rdmsr(MSR_LSTAR);
        wrmsr_site(MSR_LSTAR, old);
        now
    });
    if now == gadget {
        Succeeded(format!("IA32_LSTAR pointed at the CR0 write at {gadget:#x} (then put back)"))
    } else {
        Blocked(format!("IA32_LSTAR read back {now:#x}"))
    }
}

/// Jump to WRMSR with an EFER bit the NK does not allow: SVME (a
/// hypervisor launched under the NK would own the machine), or FFXSR where
/// the CPU lacks SVM. Clearing NXE instead would stop the unprotected
/// machine (see `clear-nxe`).
pub fn wrmsr_efer() -> Outcome {
    let ext = core::arch::x86_64::__cpuid(0x8000_0001);
    let (bit, name) = if ext.ecx & (1 << 2) != 0 {
        (12, "SVME")
    } else if ext.edx & (1 << 25) != 0 {
        (14, "FFXSR")
    } else {
        return NotRun("the CPU has neither SVM nor FFXSR: no harmless EFER bit here to set".into());
    };
    let old = rdmsr(MSR_EFER);
    let now = crate::arch::without_interrupts(|| {
        wrmsr_site(MSR_EFER, old | 1 << bit);
        let now = rdmsr(MSR_EFER);
        wrmsr_site(MSR_EFER, old);
        now
    });
    if now & 1 << bit != 0 {
        Succeeded(format!("EFER.{name} set through nk_site_wrmsr (EFER {now:#x}; then put back)"))
    } else {
        Blocked(format!("EFER.{name} did not stick (EFER {now:#x})"))
    }
}

/// What LGDT and LIDT load: a limit and a base.
#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Jump to LGDT or LIDT with a copy of the live table at another address.
fn load_copy(site: u64, which: &str, read: fn() -> (u16, u64)) -> Outcome {
    let (limit, base) = read();
    let copy: Vec<u8> = frames::phys_slice(nk::layout::virt_to_phys(base).unwrap_or(0), u64::from(limit) + 1).to_vec();
    let evil = TablePointer { limit, base: copy.as_ptr() as u64 };
    let real = TablePointer { limit, base };
    let loaded = crate::arch::without_interrupts(|| {
        jump_to_site(site, Regs { rdi: &evil as *const TablePointer as u64, ..Regs::default() });
        let now = read().1;
        jump_to_site(site, Regs { rdi: &real as *const TablePointer as u64, ..Regs::default() });
        now
    });
    if loaded == copy.as_ptr() as u64 {
        Succeeded(format!("the CPU ran on the attacker's copy of the {which} at {loaded:#x} (then the NK's again)"))
    } else {
        Blocked(format!("the {which} base read back {loaded:#x}"))
    }
}

fn sgdt() -> (u16, u64) {
    let p = x86_64::instructions::tables::sgdt();
    (p.limit, p.base.as_u64())
}

fn sidt() -> (u16, u64) {
    let p = x86_64::instructions::tables::sidt();
    (p.limit, p.base.as_u64())
}

pub fn lgdt() -> Outcome {
    load_copy(&raw const nk_site_lgdt as u64, "GDT", sgdt)
}

pub fn lidt() -> Outcome {
    load_copy(&raw const nk_site_lidt as u64, "IDT", sidt)
}

/// Jump to LTR with the live TSS selector. The CPU refuses a busy TSS, so
/// on `native` the attacker first clears the busy bit in the (writable)
/// GDT; on the protected kernel the GDT is read-only and the LTR faults
/// between the write and its check.
pub fn ltr() -> Outcome {
    let selector: u16;
    // SAFETY: STR only reads the task register.
    unsafe { core::arch::asm!("str {0:x}", out(reg) selector, options(nomem, nostack, preserves_flags)) };
    let site = &raw const nk_site_ltr as u64;
    crate::arch::without_interrupts(|| {
        if NATIVE {
            let access = (sgdt().1 + u64::from(selector) + 5) as *mut u8;
            // SAFETY: the TSS descriptor's type byte in the live GDT, which
            // the native kernel leaves writable: busy (0xb) -> available (0x9).
            unsafe { access.write_volatile(access.read_volatile() & !0x2) };
        }
        jump_to_site(site, Regs { rdi: u64::from(selector), ..Regs::default() });
    });
    Succeeded(format!("LTR through nk_site_ltr reloaded the task register (selector {selector:#x})"))
}

/// Every protected opcode in NK text that is not one of the named sites:
/// a gadget no check follows.
pub fn accidental_encoding() -> Outcome {
    let text = nk::layout::image().nk_text;
    let mut named: Vec<u64> = [
        &raw const nk_cr3_load,
        &raw const nk_site_cr4_write,
        &raw const nk_site_cr4_flush_off,
        &raw const nk_site_cr4_flush_on,
        &raw const nk_site_wrmsr,
        &raw const nk_site_lgdt,
        &raw const nk_site_lidt,
        &raw const nk_site_ltr,
        &raw const nk_site_arm_cr0,
    ]
    .iter()
    .map(|p| *p as u64)
    .collect();
    if NATIVE {
        named.push(&raw const nk_native_write_cr0 as u64);
    } else {
        named.extend(
            [&raw const nk_gate_lift, &raw const nk_gate_rearm, &raw const nk_site_measure_rearm].map(|p| p as u64),
        );
    }
    // SAFETY: NK text is mapped readable (the CR3 page too: it is only
    // non-executable).
    let bytes = unsafe { core::slice::from_raw_parts(text.start as *const u8, (text.end - text.start) as usize) };
    // A site's label may sit on a prefix byte before the opcode.
    let is_named = |va: u64| named.iter().any(|&s| va == s || va == s + 1);
    let found: Vec<(u64, &str)> = (0..bytes.len())
        .filter_map(|i| nk_model::code::protected_at(&bytes[i..]).map(|what| (text.start + i as u64, what)))
        .filter(|&(va, _)| !is_named(va))
        .collect();
    match found.first() {
        None if NATIVE => NotRun(format!(
            "no protected opcode in NK text outside its {} named sites on this build either: nothing to jump to",
            named.len()
        )),
        None => Blocked(format!(
            "no protected opcode in the {} bytes of NK text outside its {} named sites: nothing to jump to",
            bytes.len(),
            named.len()
        )),
        // Not jumped to: what follows an accidental opcode is unknown.
        Some((va, what)) => Succeeded(format!(
            "{} protected opcodes in NK text outside the named sites, the first at {va:#x} ({what})",
            found.len()
        )),
    }
}
