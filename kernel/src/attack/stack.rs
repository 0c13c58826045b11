//! The gate entered on an attacker's stack (I2, I8, I3): the stack pointer
//! aimed into a page table or into NK memory, so that anything pushed while
//! protection is lifted (by the gate, or by the CPU for a trap) would land
//! in protected memory.
//!
//! On the protected kernel the attacker jumps straight to the lift (with
//! `iretq`, which sets RSP, RFLAGS and RIP at once): RSP and r10 (the
//! caller's stack as the gate's exit uses it) both point into the target
//! page. The fixed path after the lift never writes the caller's stack: it
//! switches to this CPU's NK stack, runs the call, re-arms WP and only then
//! pops from the caller's stack. The attacker's thread dies on the `ret`
//! (the page holds no return address, and the trap frame cannot be written
//! there either), so a parent thread compares the page before and after.
//! With TF set (`gate-rsp-ptp-trap`) the single-step trap after the lift
//! lands while protection is off: the NK stops the machine rather than let
//! the CPU or an outer handler push a frame there.
//!
//! On `native` the same attacker simply calls the gate with RSP in the
//! page: the call's pushes, the NK's own frames and (with TF) the trap
//! frames all land in it.
#![allow(unsafe_code)] // these attacks run the gate on a stack in protected memory

use super::NATIVE;
use super::Outcome::{self, Blocked, NotRun, Succeeded};
use super::traps::{STACK_PAGE, STACK_TRAPS};
use crate::mm::frames;
use crate::sched::{self, Exit};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use x86_64::registers::control::Cr0;

const WP: u64 = 1 << 16;
const TRAP_FLAG: u64 = 1 << 8;
const PAGE: u64 = 4096;

unsafe extern "C" {
    static nk_gate_lift: u8;
    fn nk_gate(op: u64, a0: u64, a1: u64, a2: u64) -> nk::GateResult;
}

fn snapshot(page: u64) -> Vec<u8> {
    // SAFETY: `page` is a page table or NK memory, both mapped readable.
    unsafe { core::slice::from_raw_parts(page as *const u8, PAGE as usize) }.to_vec()
}

/// Protected kernel: `iretq` to `nk_gate_lift` with RSP = r10 = `stack`,
/// RAX = CR0 without WP, RDI = 0 (nop) and the given RFLAGS. Never returns:
/// the gate's exit returns through whatever `stack` holds.
fn iretq_into_lift(stack: u64, rflags: u64) -> ! {
    let lift = &raw const nk_gate_lift as u64;
    let cr0 = Cr0::read_raw() & !WP;
    // SAFETY: none, deliberately: this thread gives its stack up for one
    // in protected memory and jumps into the gate past its entry. It ends
    // here (killed by the fault its return takes) or the machine stops.
    unsafe {
        core::arch::asm!(
            "mov r11, ss",
            "push r11",
            "push r10",                 // RSP := the target
            "push rdx",                 // RFLAGS
            "mov r11, cs",
            "push r11",
            "push rcx",                 // RIP := the lift
            "xor edi, edi",
            "xor esi, esi",
            "xor edx, edx",
            "xor ecx, ecx",
            "iretq",
            in("rax") cr0,
            in("r10") stack,
            in("rdx") rflags,
            in("rcx") lift,
            options(noreturn),
        )
    }
}

/// `native`: calls the gate (nop) with RSP = `stack` and `flags_or` in
/// RFLAGS; returns the status.
fn call_gate_on(stack: u64, flags_or: u64) -> u64 {
    let status: u64;
    // SAFETY: the native kernel's gate is a plain call; the stack is a page
    // this attack owns (writable on `native`), with room below `stack` for
    // the NK's frames; r12 (callee-saved) keeps ours. TF, if set, is
    // cleared by the #DB hook at the first trap on that page, and here.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "or qword ptr [rsp], rdx",
            "popfq",
            "mov r12, rsp",
            "mov rsp, r10",
            "xor edi, edi",
            "xor esi, esi",
            "xor edx, edx",
            "xor ecx, ecx",
            "call {gate}",
            "mov rsp, r12",
            "pushfq",
            "and qword ptr [rsp], -0x101",
            "popfq",
            gate = sym nk_gate,
            in("r10") stack,
            inout("rdx") flags_or => _,
            out("r12") _,
            out("rax") status,
            clobber_abi("C"),
        );
    }
    status
}

/// Runs the attack on the stack at `page + PAGE / 2` and compares the page.
fn attack_page(page: u64, what: &str, flags: u64) -> Outcome {
    let stack = page + PAGE / 2;
    let before = snapshot(page);
    let how = if NATIVE {
        STACK_TRAPS.store(0, Relaxed);
        STACK_PAGE.store(if flags & TRAP_FLAG != 0 { page } else { 0 }, Relaxed);
        let status = crate::arch::without_interrupts(|| call_gate_on(stack, flags));
        STACK_PAGE.store(0, Relaxed);
        let traps = STACK_TRAPS.load(Relaxed);
        format!("the gate call returned {status:#x}{}", if traps > 0 { ", a trap frame was taken there" } else { "" })
    } else {
        let child = sched::spawn("stack-attacker", move || {
            x86_64::instructions::interrupts::disable();
            iretq_into_lift(stack, 0x2 | flags)
        });
        match sched::join(child) {
            Some(Exit::Killed(why)) => format!("the attacking thread died ({why})"),
            Some(Exit::Returned) => String::from("the attacking thread returned"),
            None => String::from("the attacking thread vanished"),
        }
    };
    let after = snapshot(page);
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    if changed == 0 {
        Blocked(format!("{how}; the {what}'s {PAGE} bytes are unchanged"))
    } else {
        Succeeded(format!("{changed} bytes of the {what} rewritten by pushes: {how}"))
    }
}

/// A declared level-1 page table for the attack, zeroed.
fn with_ptp(f: impl FnOnce(u64) -> Outcome) -> Outcome {
    let Some(frame) = frames::alloc() else { return NotRun("out of frames".into()) };
    if let Err(e) = nk::api::declare_ptp(frame.number(), 1) {
        let _ = frames::free(frame);
        return NotRun(format!("the NK refused to declare a table: {e}"));
    }
    let outcome = f(frame.virt() as u64);
    if NATIVE {
        frame.fill(0);
    }
    if nk::api::remove_ptp(frame.number()).is_ok() {
        let _ = frames::free(frame);
    }
    outcome
}

/// RSP into a declared page table.
pub fn rsp_ptp() -> Outcome {
    with_ptp(|page| attack_page(page, "page table", 0))
}

/// RSP into a declared page table with TF set: a trap right after the lift.
pub fn rsp_ptp_trap() -> Outcome {
    with_ptp(|page| attack_page(page, "page table", TRAP_FLAG))
}

/// RSP into NK memory: the last all-zero page of NK data (so that what the
/// gate's exit pops from it is zero on both builds, and no NK call of this
/// attack uses it).
pub fn rsp_nk() -> Outcome {
    let data = nk::layout::image().nk_data;
    let first = data.start.next_multiple_of(PAGE);
    let mut page = data.end & !(PAGE - 1);
    while page > first {
        page -= PAGE;
        if snapshot(page).iter().all(|&b| b == 0) {
            let outcome = attack_page(page, "NK page", 0);
            if NATIVE {
                // SAFETY: NK memory is writable on `native`; the page was
                // all zero before the attack.
                unsafe { core::ptr::write_bytes(page as *mut u8, 0, PAGE as usize) };
            }
            return outcome;
        }
    }
    NotRun("no all-zero page in NK data".into())
}
