//! Traps that try to steer the NK (I3): the outer kernel owns the trap
//! handler and the local APIC, so it can make a trap land while the NK runs
//! and rewrite the frame the trap pushed, hoping the NK resumes at an
//! attacker's address.
//!
//! - `gate-single-step`: RFLAGS.TF set, then an NK call; the #DB hook waits
//!   for a step past the point where the NK starts its work and sends that
//!   context to a landing pad.
//! - `gate-nmi-rewrite`: a self-NMI (the LAPIC timer in NMI delivery mode)
//!   timed to land inside a 4096-entry `write_ptes`; the NMI hook sends the
//!   interrupted NK context to the landing pad.
//!
//! The landing pad is the attacker's code: it puts back the stack the attack
//! had before the NK call and carries on there, as if the call had returned
//! (a "longjmp"), so an NK call that never finished is visible.
//!
//! On the protected kernel neither trap ever reaches the outer handler from
//! inside the NK: the gate clears TF before lifting protection, and an NMI
//! that lands while protection is lifted is latched by the NK and delivered
//! (`int 2`) only after the re-arm. On `native` both hooks get frames in
//! the middle of the NK call and the pad runs there.
#![allow(unsafe_code)] // the landing pad takes over a context the hooks redirect

use super::NATIVE;
use super::Outcome::{self, Blocked, NotRun, Succeeded};
use crate::arch::{self, lapic};
use crate::mm::frames::{self, Frame};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use nk::api::BatchOp;
use nk::trap::TrapFrame;
use nk_model::pte::{Pte, PteFlags};
use x86_64::registers::control::Cr0;

const WP: u64 = 1 << 16;
const TRAP_FLAG: u64 = 1 << 8;

unsafe extern "C" {
    fn nk_gate(op: u64, a0: u64, a1: u64, a2: u64) -> nk::GateResult;
    static nk_gate_after_lift: u8;
    static nk_gate_rearm: u8;
}

fn in_nk_text(rip: u64) -> bool {
    nk::layout::image().nk_text.contains(rip)
}

// ---- The landing pad ----------------------------------------------------

/// The stack the pad puts back, and the pad's address (for the hooks).
static PAD_RSP: AtomicU64 = AtomicU64::new(0);
static PAD_RIP: AtomicU64 = AtomicU64::new(0);

/// Calls `f(arg)` with `flags_or` added to RFLAGS. A trap hook may end the
/// call early by sending the interrupted context to the landing pad (at
/// `PAD_RIP`): the pad puts this stack and the callee-saved registers back
/// and comes out here. `None` then; `Some(f(arg))` if `f` returned.
fn call_with_landing_pad(f: extern "C" fn(u64) -> u64, arg: u64, flags_or: u64) -> Option<u64> {
    let (returned, value): (u64, u64);
    // SAFETY: saves every callee-saved register on this stack and records
    // the stack in `PAD_RSP` before the call; both the normal return and
    // the pad (entered only by a hook, with this stack still intact below
    // `PAD_RSP`, since the callee only uses the stack beneath it) restore
    // the registers and the caller's RFLAGS from there. The call clobbers
    // what a C call may.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "mov rbp, rsp",
            "and rsp, -16",
            "pushfq",                   // the caller's RFLAGS (no TF)
            "push rbp",                 // where the pushes above are
            "mov qword ptr [rip + {pad_rsp}], rsp",
            "lea rax, [rip + 2f]",
            "mov qword ptr [rip + {pad_rip}], rax",
            "pushfq",
            "or qword ptr [rsp], rdx",
            "popfq",
            "call rsi",
            "mov ecx, 1",
            "jmp 3f",
            // The landing pad: whatever the interrupted context was, take
            // the attack's own stack back.
            "2:",
            "mov rsp, qword ptr [rip + {pad_rsp}]",
            "cld",
            "xor ecx, ecx",
            "xor eax, eax",
            "3:",
            "pop rbp",
            "popfq",
            "mov rsp, rbp",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbp",
            "pop rbx",
            pad_rsp = sym PAD_RSP,
            pad_rip = sym PAD_RIP,
            in("rdi") arg,
            in("rsi") f,
            in("rdx") flags_or,
            out("rcx") returned,
            out("rax") value,
            clobber_abi("C"),
        );
    }
    (returned != 0).then_some(value)
}

/// Sends the interrupted context to the landing pad.
fn steer(frame: &mut TrapFrame) {
    frame.rip = PAD_RIP.load(Relaxed);
    frame.rflags &= !TRAP_FLAG;
}

// ---- gate-single-step ---------------------------------------------------

/// The #DB hook's state while `single_step` runs.
static STEPPING: AtomicBool = AtomicBool::new(false);
/// Steps seen at `nk_gate` or after it (native: the call has begun).
static ENTERED: AtomicBool = AtomicBool::new(false);
static STEPS_BEFORE_LIFT: AtomicU64 = AtomicU64::new(0);
static STEPS_PAST_LIFT: AtomicU64 = AtomicU64::new(0);
static STEERED_AT: AtomicU64 = AtomicU64::new(0);
/// How many steps into the NK's work the hook waits before steering, so
/// the NK is caught halfway through.
const STEER_AFTER: u64 = 8;

/// Where the NK's work begins, as the attacker sees it: past the lift on
/// the protected kernel (the window where protection is off), anywhere in
/// NK text once the call reached `nk_gate` on `native`.
fn past_the_lift(rip: u64) -> bool {
    if NATIVE {
        let gate = nk_gate as *const () as u64;
        ENTERED.load(Relaxed) && in_nk_text(rip) && !(gate..gate + 16).contains(&rip)
    } else {
        let (after, rearm) = (&raw const nk_gate_after_lift as u64, &raw const nk_gate_rearm as u64);
        (after..=rearm).contains(&rip)
    }
}

/// Called by the outer trap handler for #DB; true if the trap was ours.
pub fn on_debug_trap(frame: &mut TrapFrame) -> bool {
    if STACK_PAGE.load(Relaxed) != 0 {
        return on_debug_trap_stack(frame);
    }
    if !STEPPING.load(Relaxed) {
        return false;
    }
    let rip = frame.rip;
    let gate = nk_gate as *const () as u64;
    if rip == gate {
        ENTERED.store(true, Relaxed);
    }
    if STEERED_AT.load(Relaxed) != 0 {
        return true;
    }
    if past_the_lift(rip) {
        if STEPS_PAST_LIFT.fetch_add(1, Relaxed) + 1 == STEER_AFTER {
            STEERED_AT.store(rip, Relaxed);
            steer(frame);
        }
    } else if ENTERED.load(Relaxed) && in_nk_text(rip) && (gate..gate + 64).contains(&rip) {
        STEPS_BEFORE_LIFT.fetch_add(1, Relaxed);
    }
    true
}

extern "C" fn nop_call(_: u64) -> u64 {
    nk::api::nop().is_ok() as u64
}

/// Single-step into an NK call and steer it from the #DB handler.
pub fn single_step() -> Outcome {
    for a in [&STEPS_BEFORE_LIFT, &STEPS_PAST_LIFT, &STEERED_AT] {
        a.store(0, Relaxed);
    }
    ENTERED.store(false, Relaxed);
    STEPPING.store(true, Relaxed);
    let r = arch::without_interrupts(|| call_with_landing_pad(nop_call, 0, TRAP_FLAG));
    STEPPING.store(false, Relaxed);
    let at = STEERED_AT.load(Relaxed);
    match r {
        None => Succeeded(format!(
            "the #DB hook sent the NK's context at {at:#x}, {STEER_AFTER} steps into the NK call, to the \
             attacker's pad; the pad ran in the middle of the call, which never returned"
        )),
        Some(ok) if STEPS_PAST_LIFT.load(Relaxed) == 0 && ENTERED.load(Relaxed) => Blocked(format!(
            "{} single-step traps in the gate before its lift, none past it: the gate cleared TF before lifting \
             protection; nop returned {}",
            STEPS_BEFORE_LIFT.load(Relaxed),
            if ok == 1 { "ok" } else { "an error" }
        )),
        Some(_) if !ENTERED.load(Relaxed) => NotRun(String::from("no single-step trap reached the gate")),
        Some(_) => Succeeded(format!(
            "{} single-step traps past the lift reached the outer handler",
            STEPS_PAST_LIFT.load(Relaxed)
        )),
    }
}

// ---- gate-rsp-ptp-trap's #DB hook (see `stack.rs`) ----------------------

/// While nonzero, the page the TF variant of `gate-rsp-ptp` points the
/// stack at: the hook ends single-stepping at the first trap whose frame
/// the handler took on that page (native), and records it.
pub(super) static STACK_PAGE: AtomicU64 = AtomicU64::new(0);
pub(super) static STACK_TRAPS: AtomicU64 = AtomicU64::new(0);

fn on_debug_trap_stack(frame: &mut TrapFrame) -> bool {
    let page = STACK_PAGE.load(Relaxed);
    if frame.rsp & !0xfff == page {
        STACK_TRAPS.fetch_add(1, Relaxed);
        frame.rflags &= !TRAP_FLAG;
    }
    true
}

// ---- gate-nmi-rewrite ---------------------------------------------------

/// Set once the NMI attack has armed the timer: NMIs are ours from then on
/// (a late one after a try is consumed, not fatal).
static NMI_OURS: AtomicBool = AtomicBool::new(false);
/// The hook steers only while a try is running.
static NMI_ARMED: AtomicBool = AtomicBool::new(false);
static NMI_RIP: AtomicU64 = AtomicU64::new(0);
static NMI_WP: AtomicU64 = AtomicU64::new(0);
static NMI_STEERED: AtomicBool = AtomicBool::new(false);

/// The bytes of `int 2` (the gate's delivery of a latched NMI).
const INT2: [u8; 2] = [0xcd, 0x02];

fn after_int2(rip: u64) -> bool {
    // SAFETY: only read for RIPs inside NK text, which is mapped readable.
    in_nk_text(rip) && in_nk_text(rip - 2) && unsafe { core::ptr::read((rip - 2) as *const [u8; 2]) } == INT2
}

/// Called by the outer trap handler for NMIs; true if the NMI was ours.
pub fn on_nmi(frame: &mut TrapFrame) -> bool {
    if !NMI_OURS.load(Relaxed) {
        return false;
    }
    if NMI_ARMED.swap(false, Relaxed) {
        NMI_RIP.store(frame.rip, Relaxed);
        NMI_WP.store(Cr0::read_raw() & WP, Relaxed);
        // The attacker's rule: any frame in NK code goes to the pad.
        if in_nk_text(frame.rip) {
            NMI_STEERED.store(true, Relaxed);
            steer(frame);
        }
    }
    true
}

/// 4096 entry writes: eight rounds over a level-1 table, round `r` mapping
/// every entry at data frame `r`, so the table shows how far a batch got.
const ROUNDS: usize = 8;
const ENTRIES: usize = 512;
const OPS: usize = ROUNDS * ENTRIES;

struct RoundsTable {
    table: Frame,
    data: Vec<Frame>,
}

impl RoundsTable {
    fn new() -> Option<Self> {
        let table = frames::alloc()?;
        let mut data = Vec::new();
        for _ in 0..ROUNDS {
            match frames::alloc() {
                Some(f) => data.push(f),
                None => break,
            }
        }
        let t = Self { table, data };
        if t.data.len() < ROUNDS || nk::api::declare_ptp(table.number(), 1).is_err() {
            for f in &t.data {
                let _ = frames::free(*f);
            }
            let _ = frames::free(table);
            core::mem::forget(t);
            return None;
        }
        Some(t)
    }

    fn leaf(&self, round: usize) -> u64 {
        Pte::new(self.data[round].addr(), PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE).bits()
    }

    fn ops(&self) -> Vec<BatchOp> {
        (0..OPS)
            .map(|i| BatchOp {
                kind: BatchOp::WRITE,
                a: self.table.number(),
                b: (i % ENTRIES) as u64,
                c: self.leaf(i / ENTRIES),
            })
            .collect()
    }

    fn clear(&self) -> bool {
        let ops: Vec<BatchOp> =
            (0..ENTRIES).map(|i| BatchOp { kind: BatchOp::WRITE, a: self.table.number(), b: i as u64, c: 0 }).collect();
        nk::api::write_ptes(&ops).is_ok()
    }

    /// How many of the batch's operations are in the table.
    fn progress(&self) -> usize {
        let entries = self.table.virt() as *const u64;
        (0..ENTRIES)
            .filter_map(|j| {
                // SAFETY: reads entry `j` of the table through the direct
                // map, which maps page tables readable.
                let v = unsafe { entries.add(j).read_volatile() };
                let round = self.data.iter().position(|d| v != 0 && Pte::from_bits(v).addr() == d.addr())?;
                Some(round * ENTRIES + j + 1)
            })
            .max()
            .unwrap_or(0)
    }
}

impl Drop for RoundsTable {
    fn drop(&mut self) {
        // A table the NK would not clear or remove stays a table: leak it.
        if self.clear() && nk::api::remove_ptp(self.table.number()).is_ok() {
            let _ = frames::free(self.table);
        }
        for f in &self.data {
            let _ = frames::free(*f);
        }
    }
}

extern "C" fn write_ptes_call(ops: u64) -> u64 {
    // SAFETY: `nmi_rewrite` passes a pointer to its live batch.
    let ops = unsafe { &*(ops as *const Vec<BatchOp>) };
    nk::api::write_ptes(ops).is_ok() as u64
}

const TRIES: u64 = 200;

/// An NMI inside a long NK call, with the frame rewritten by the hook.
pub fn nmi_rewrite() -> Outcome {
    let Some(table) = RoundsTable::new() else { return NotRun("no frames for the scratch table".into()) };
    let ops = table.ops();
    let ops_arg = &ops as *const Vec<BatchOp> as u64;
    // How long the batch takes, in LAPIC timer ticks.
    if !table.clear() {
        return NotRun("the NK refused to clear the scratch table".into());
    }
    let (ok, ticks) = arch::without_interrupts(|| {
        let saved = lapic::timer_state();
        let r = lapic::ticks_of(|| write_ptes_call(ops_arg));
        lapic::restore_timer(saved);
        r
    });
    if ok != 1 {
        return NotRun("the NK refused the 4096-entry batch".into());
    }
    NMI_OURS.store(true, Relaxed);
    let (mut latched_seen, mut misses) = (None, 0);
    // Why tries missed: no NMI during the call, an NMI in outer code, an
    // NMI in NK code before the batch began or after it ended.
    let (mut none, mut outside, mut edge) = (0, 0, 0);
    for attempt in 0..TRIES {
        if !table.clear() {
            return NotRun("the NK refused to clear the scratch table".into());
        }
        // Spread the delays over the batch: 10%, 50%, 90%, 30%, ...
        let delay = (u64::from(ticks) * (1 + (attempt * 4) % 9) / 10).max(1) as u32;
        NMI_STEERED.store(false, Relaxed);
        NMI_RIP.store(0, Relaxed);
        let latched = nk::trap::nmis_latched();
        let landed = arch::without_interrupts(|| {
            let saved = lapic::timer_state();
            NMI_ARMED.store(true, Relaxed);
            lapic::one_shot_nmi(delay);
            let r = call_with_landing_pad(write_ptes_call, ops_arg, 0);
            lapic::restore_timer(saved);
            NMI_ARMED.store(false, Relaxed);
            r
        });
        let progress = table.progress();
        let rip = NMI_RIP.load(Relaxed);
        if landed.is_none() && (1..OPS).contains(&progress) {
            return Succeeded(format!(
                "an NMI {delay} timer ticks into the batch landed in the NK at {rip:#x}; the hook sent it to the \
                 attacker's pad after {progress} of {OPS} entry writes: the NK call never finished (try {})",
                attempt + 1
            ));
        }
        let grew = nk::trap::nmis_latched() > latched;
        if grew && rip != 0 && after_int2(rip) && NMI_WP.load(Relaxed) != 0 {
            latched_seen = Some((attempt + 1, rip, progress, NMI_STEERED.load(Relaxed)));
            break;
        }
        misses += 1;
        match rip {
            0 => none += 1,
            r if !in_nk_text(r) => outside += 1,
            _ => edge += 1,
        }
    }
    let why =
        format!("{none} with no NMI during the call, {outside} in outer code, {edge} in NK code outside the batch");
    match latched_seen {
        Some((attempt, rip, progress, steered)) => Blocked(format!(
            "the NMI landed inside the NK (try {attempt}, after {misses} misses), which latched it; the hook got it \
             only after the re-arm, with WP on, at {rip:#x} right after the gate's int 2, with {progress} of {OPS} \
             entry writes done{}",
            if steered { " (its redirect skipped only the gate's return)" } else { "" }
        )),
        None => {
            NotRun(format!("no NMI landed inside the NK call in {TRIES} tries, the batch taking {ticks} ticks: {why}"))
        }
    }
}
