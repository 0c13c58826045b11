//! Attacks on the gate itself (I3, I4): enter it in the middle, and take a
//! trap in the one-instruction window after protection is lifted.
#![allow(unsafe_code)] // these attacks jump into NK code on purpose

use super::Outcome::{self, Blocked, Succeeded};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags};

const WP: u64 = 1 << 16;
const TRAP_FLAG: u64 = 1 << 8;
/// Status the gate body returns when protection was not lifted by the gate.
const NOT_ENTERED: u64 = 2;

unsafe extern "C" {
    static nk_gate_lift: u8;
    static nk_gate_after_lift: u8;
    static nk_gate_rearm: u8;
}

fn native() -> Option<Outcome> {
    (nk::BACKEND == "native")
        .then(|| Succeeded(String::from("the native build has no gate: protection is never on to begin with")))
}

/// Jumps to `target` inside `nk_gate` as if it had been called, with `rax`
/// and `rcx` set; returns (rax, rdx) as the gate left them.
fn jump_into_gate(target: u64, rax: u64, rcx: u64, flags_or: u64) -> (u64, u64) {
    let (status, detail): (u64, u64);
    // SAFETY: deliberately enters the gate in the middle. The frame is the
    // one the gate's exit expects (saved RFLAGS above a return address), the
    // arguments ask for a no-op, and the call clobbers what a C call may.
    unsafe {
        core::arch::asm!(
            "lea r11, [rip + 2f]",
            "push r11",
            "pushfq",
            "pushfq",
            "or qword ptr [rsp], {flags_or}",
            "popfq",
            "jmp {target}",
            "2:",
            target = in(reg) target,
            flags_or = in(reg) flags_or,
            inout("rax") rax => status,
            inout("rcx") rcx => _,
            in("rdi") 0u64, in("rsi") 0u64,
            out("rdx") detail,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    (status, detail)
}

/// Jump just past the instruction that lifts protection: the gate must not
/// do work (or return) with protection off.
pub fn jump_past_lift() -> Outcome {
    if let Some(o) = native() {
        return o;
    }
    let target = &raw const nk_gate_after_lift as u64;
    let (status, _) = jump_into_gate(target, 0, 0, 0);
    let wp = Cr0::read().contains(Cr0Flags::WRITE_PROTECT);
    match (status, wp) {
        (NOT_ENTERED, true) => {
            Blocked(String::from("the gate body refused to run (protection was never lifted); WP on"))
        }
        (_, false) => Succeeded(String::from("returned to outer code with CR0.WP clear")),
        (s, true) => Succeeded(format!("the gate body ran without the gate's entry (status {})", s)),
    }
}

/// Jump to the re-arm step's CR0 write with a value that clears WP: the
/// check after the write must loop until WP is really set.
pub fn jump_to_rearm() -> Outcome {
    if let Some(o) = native() {
        return o;
    }
    let target = &raw const nk_gate_rearm as u64;
    let evil = Cr0::read_raw() & !WP;
    let _ = jump_into_gate(target, 0, evil, 0);
    if Cr0::read().contains(Cr0Flags::WRITE_PROTECT) {
        Blocked(String::from("the re-arm check rewrote WP before returning"))
    } else {
        Succeeded(String::from("returned to outer code with CR0.WP clear"))
    }
}

/// Where the single-step probe is waiting (0: off), and what it saw.
static PROBE_AT: AtomicU64 = AtomicU64::new(0);
static PROBE_SAW_WP: AtomicU64 = AtomicU64::new(u64::MAX);

/// Called by the outer trap handler for #DB. Returns true if the probe
/// consumed the trap.
pub fn on_debug_trap(frame: &mut nk::trap::TrapFrame) -> bool {
    let at = PROBE_AT.load(Ordering::Relaxed);
    if at == 0 {
        return false;
    }
    if frame.rip == at {
        // Outer code is running now, in the window inside the gate: the NK
        // must have re-asserted protection before calling us.
        PROBE_SAW_WP.store(Cr0::read_raw() & WP, Ordering::Relaxed);
        PROBE_AT.store(0, Ordering::Relaxed);
        frame.rflags &= !TRAP_FLAG;
    }
    true
}

/// Take a trap right after the lifting instruction (single-step): outer
/// code, the trap handler, must still run with protection on.
pub fn interrupt_in_window() -> Outcome {
    if let Some(o) = native() {
        return o;
    }
    let lift = &raw const nk_gate_lift as u64;
    let after = &raw const nk_gate_after_lift as u64;
    PROBE_SAW_WP.store(u64::MAX, Ordering::Relaxed);
    PROBE_AT.store(after, Ordering::Relaxed);
    let (status, _) = jump_into_gate(lift, Cr0::read_raw() & !WP, 0, TRAP_FLAG);
    PROBE_AT.store(0, Ordering::Relaxed);
    let saw = PROBE_SAW_WP.load(Ordering::Relaxed);
    let wp_now = Cr0::read().contains(Cr0Flags::WRITE_PROTECT);
    match saw {
        u64::MAX => Succeeded(format!("no trap was taken in the window (status {})", status)),
        0 => Succeeded(String::from("the trap handler ran with CR0.WP clear")),
        _ if wp_now => Blocked(String::from("the NK re-asserted WP before the trap handler ran; WP on after the gate")),
        _ => Succeeded(String::from("returned with CR0.WP clear")),
    }
}

unsafe extern "C" {
    /// The gate's body (`nk/src/gate.rs`), exported for this attack alone.
    fn nk_gate_body(op: u64, a0: u64, a1: u64, a2: u64, caller: u64) -> nk::GateResult;
}

/// The gate body's address, for a malicious module to jump to.
pub(super) fn body_address() -> u64 {
    nk_gate_body as *const () as u64
}

/// Calls the body behind the gate directly, skipping the gate: an
/// `nk_write` to the sealed system-call table (I11's write-once region).
/// With protection on, the body's first write to NK data faults and the
/// attacking thread dies having changed nothing; on `native` it runs.
pub fn body_direct() -> Outcome {
    use super::services::{VICTIM, evil, victim_is_evil};
    use crate::services::systable;
    let Some(entry) = systable::entry_address(VICTIM) else {
        return super::Outcome::NotRun("no system-call table".into());
    };
    let old = systable::lookup(VICTIM).map_or(0, |h| h as usize as u64);
    let words = alloc::boxed::Box::new([evil as *const () as usize as u64, old]);
    let src = super::direct_map(words.as_ptr() as u64);
    let op = nk::api::Op::NkWrite as u64;
    // SAFETY: none, deliberately: NK code run without its gate. On the
    // protected kernel it faults on its first NK-data write (this thread
    // dies); on `native` it writes the table, and the second call below
    // puts the real handler back.
    let r = unsafe { nk_gate_body(op, entry, src, 8, 0) };
    let redirected = victim_is_evil();
    // SAFETY: as above.
    let _ = unsafe { nk_gate_body(op, entry, src + 8, 8, 0) };
    if redirected {
        Succeeded(String::from(
            "the gate body ran from outer code and wrote the sealed system-call table: getppid redirected",
        ))
    } else {
        Blocked(format!("the gate body ran but changed nothing (status {:#x})", r.status))
    }
}
