//! Gate calls with the caller's RFLAGS set against the NK: DF, AC and NT
//! (TF is `gate-single-step`, `traps.rs`). Code that follows the C ABI
//! assumes DF clear, so an NK that ran with the caller's DF would run its
//! string copies backwards: an append lands on the bytes *before* its
//! destination, and `declare_ptp`'s zeroing clears the frame below the new
//! table and leaves what the attacker planted in the table itself.
//!
//! The protected gate loads RFLAGS = 0x2 before it lifts protection (and
//! again on its own stack), so the NK never sees the caller's flags; on
//! `native` the call is a plain call and the NK runs with them.
#![allow(unsafe_code)] // these attacks call the gate with flags no Rust code may have

use super::Outcome::{self, Blocked, NotRun, Succeeded};
use super::direct_map;
use crate::mm::frames;
use alloc::boxed::Box;
use alloc::format;
use nk::api::Op;
use nk_model::pte::{Pte, PteFlags};

const DF: u64 = 1 << 10;
const AC: u64 = 1 << 18;
const NT: u64 = 1 << 14;

unsafe extern "C" {
    fn nk_gate(op: u64, a0: u64, a1: u64, a2: u64) -> nk::GateResult;
}

/// Calls the gate with `flags` added to RFLAGS for the call alone; returns
/// (status, detail).
fn gate_with_flags(op: Op, a0: u64, a1: u64, a2: u64, flags: u64) -> (u64, u64) {
    let (status, detail): (u64, u64);
    // SAFETY: no Rust code runs with the flags: they are set right before
    // the call and cleared right after it (the kernel has no red zone, so
    // the call's push is safe). `nk_gate` follows the C ABI and checks its
    // arguments; r12 and r13 are callee-saved, so they survive it.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "or qword ptr [rsp], r12",
            "popfq",
            "call {gate}",
            "pushfq",
            "and qword ptr [rsp], r13",
            "popfq",
            gate = sym nk_gate,
            in("r12") flags,
            in("r13") !(DF | AC | NT),
            inout("rdi") op as u64 => _,
            inout("rsi") a0 => _,
            inout("rdx") a1 => detail,
            inout("rcx") a2 => _,
            out("rax") status,
            clobber_abi("C"),
        );
    }
    (status, detail)
}

/// An NK call made with DF, AC and NT set: which flags does the NK run with?
pub fn gate_flags() -> Outcome {
    let set = DF | AC | NT;
    let (status, inside) = crate::arch::without_interrupts(|| gate_with_flags(Op::Nop, 0, 0, 0, set));
    if status != 0 {
        return NotRun(format!("the NK refused nop (status {status:#x})"));
    }
    if inside & set == 0 {
        Blocked(format!("the NK ran with RFLAGS {inside:#x}: DF, AC and NT clear, whatever the caller set"))
    } else {
        Succeeded(format!("the NK ran with the caller's flags (RFLAGS {inside:#x} inside: DF, AC, NT as set)"))
    }
}

/// An append with DF set: on an NK that trusts DF, the copy runs backwards
/// and rewrites the record appended before.
pub fn df_append() -> Outcome {
    // The catalog's append-only region (`append-only-rewrite` uses it too).
    let Some(base) = super::services::append_region() else {
        return NotRun("the NK gave no append-only region".into());
    };
    let Some(r) = nk::services::region(base) else { return NotRun("the region just made is gone".into()) };
    if r.used + 32 > r.len {
        return NotRun("the region is full".into());
    }
    let first = base + r.used;
    let honest = *b"honest record 01";
    if let Err(e) = nk::api::nk_write(first, &honest) {
        return NotRun(format!("the legitimate append was refused: {e}"));
    }
    // The second record's bytes, and before them what a backwards copy
    // would take instead.
    let mut buf = Box::new([0u8; 32]);
    buf[..16].copy_from_slice(b"REWRITTEN BY DF!");
    buf[16..].copy_from_slice(b"second record 02");
    let src = direct_map(buf.as_ptr() as u64 + 16);
    let (status, _) = crate::arch::without_interrupts(|| gate_with_flags(Op::NkWrite, first + 16, src, 16, DF));
    // SAFETY: NK memory is readable; `first` is the first record's address.
    let now = unsafe { core::ptr::read_volatile(first as *const [u8; 16]) };
    if now != honest {
        Succeeded(format!(
            "an append with DF set rewrote the record before it: '{}' (status {status:#x})",
            core::str::from_utf8(&now).unwrap_or("(not text)")
        ))
    } else if status != 0 {
        Blocked(format!("the NK refused the append (status {status:#x}); the first record is intact"))
    } else {
        Blocked("the append with DF set landed where it should; the first record is intact".into())
    }
}

/// `declare_ptp` with DF set, on a frame with entries planted in it and an
/// attacker's frame below it: on an NK that trusts DF the zeroing runs
/// backwards, clears the frame below, and the planted entries survive in
/// a declared page table.
pub fn df_declare() -> Outcome {
    let Some(pair) = frames::alloc_contiguous(2, 1) else { return NotRun("no two adjacent frames".into()) };
    let (below, table) = (pair, pair.nth(1));
    below.fill(0xaa);
    // Every entry a writable mapping of the frame below.
    let planted = Pte::new(below.addr(), PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::NO_EXECUTE).bits();
    for i in 0..512 {
        table.write_at(i * 8, &planted.to_le_bytes());
    }
    let (status, _) = crate::arch::without_interrupts(|| gate_with_flags(Op::DeclarePtp, table.number(), 1, 0, DF));
    let entries = table.virt() as *const u64;
    // SAFETY: the direct map maps both frames readable, the table too.
    let survived = (0..512).filter(|&i| unsafe { entries.add(i).read_volatile() } == planted).count();
    // SAFETY: as above.
    let zeroed = (0..4096).filter(|&i| unsafe { below.virt().add(i).read_volatile() } != 0xaa).count();
    let outcome = if status != 0 {
        NotRun(format!("the NK refused to declare the frame (status {status:#x})"))
    } else if survived > 0 || zeroed > 0 {
        Succeeded(format!(
            "declare_ptp with DF set: {survived} of 512 planted entries survived in the declared table, and \
             {zeroed} bytes of the frame below it were cleared"
        ))
    } else {
        Blocked("declare_ptp zeroed the whole table and nothing else, DF or not".into())
    };
    // Give both frames back (a table the NK would not remove stays a table).
    if nk::BACKEND == "native" {
        table.fill(0);
    }
    if status != 0 || nk::api::remove_ptp(table.number()).is_ok() {
        let _ = frames::free(table);
    }
    let _ = frames::free(below);
    outcome
}
